// Package testenv starts a real svcnet control plane (embedded etcd and the API server) inside a test
// process, on loopback and free ports, and tears it down when the test ends.
package testenv

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/svcnet/svcnet/internal/apiserver"
	"github.com/svcnet/svcnet/internal/etcd"
	"github.com/svcnet/svcnet/internal/pki"
)

// Env is a running control plane.
type Env struct {
	DataDir    string
	Kubeconfig string
	Config     *rest.Config
	Client     kubernetes.Interface
	EtcdURL    string
	// Stop ends the API server (etcd stays up until the test ends); for restart tests.
	Stop func()
}

// Options change the API server's configuration.
type Options struct {
	ServiceCIDR   string
	NodePortRange string
	// EtcdURL reuses an existing etcd instead of starting one.
	EtcdURL string
	DataDir string
}

// Start runs etcd and an API server for the test.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := o.DataDir
	if dir == "" {
		dir = t.TempDir()
	}
	etcdURL := o.EtcdURL
	if etcdURL == "" {
		e, err := etcd.Start(ctx, etcd.Config{DataDir: filepath.Join(dir, "etcd"), ClientURL: "http://127.0.0.1:0", Quiet: true})
		if err != nil {
			t.Fatalf("start etcd: %v", err)
		}
		t.Cleanup(e.Close)
		etcdURL = e.ClientURL
	}
	files := pki.In(dir)
	token, err := files.Ensure(nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := apiserver.New(apiserver.Config{
		EtcdServers: []string{etcdURL}, Listener: l, CertFile: files.ServerCert, KeyFile: files.ServerKey,
		TokenFile: files.Tokens, ServiceCIDR: o.ServiceCIDR, NodePortRange: o.NodePortRange, WatchCache: true,
	})
	if err != nil {
		t.Fatalf("new apiserver: %v", err)
	}
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ready) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("apiserver exited: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("apiserver not ready within 60s")
	}
	server := "https://127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	if err := files.WriteKubeconfig(server, token); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", files.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 1000, 2000
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("apiserver did not stop within 30s")
		}
	}
	t.Cleanup(stop)
	return &Env{DataDir: dir, Kubeconfig: files.Kubeconfig, Config: cfg, Client: kubernetes.NewForConfigOrDie(cfg), EtcdURL: etcdURL, Stop: stop}
}
