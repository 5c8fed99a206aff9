package controlplane

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/svcnet/svcnet/bench/internal/proc"
)

func TestUp(t *testing.T) {
	c := Up("/bin/svcnet", "/d/data", "/d/svcnet.log", 4242)
	want := []string{"up", "--data-dir", "/d/data", "--bind-address", "127.0.0.1", "--port", "4242", "--nodes", "0"}
	if c.Name != "svcnet up" || c.Bin != "/bin/svcnet" || c.DataDir != "/d/data" || c.LogFile != "/d/svcnet.log" ||
		c.Deathsig != syscall.SIGKILL || !slices.Equal(c.Args, want) || c.StdoutMark != "" {
		t.Errorf("Up = %+v", c)
	}
}

func TestNewClient(t *testing.T) {
	cfg := &rest.Config{Host: "https://127.0.0.1:1", QPS: 5, Burst: 10, Timeout: 7 * time.Second}
	for _, tc := range []struct {
		timeout, want time.Duration
	}{
		{0, 7 * time.Second}, // the config's own
		{30 * time.Second, 30 * time.Second},
	} {
		cs, err := NewClient(cfg, tc.timeout)
		if err != nil {
			t.Fatal(err)
		}
		rc, ok := cs.CoreV1().RESTClient().(*rest.RESTClient)
		if !ok {
			t.Fatalf("REST client %T", cs.CoreV1().RESTClient())
		}
		if rc.Client.Timeout != tc.want {
			t.Errorf("NewClient(timeout %v): request limit %v, want %v", tc.timeout, rc.Client.Timeout, tc.want)
		}
	}
	if cfg.QPS != 5 || cfg.Burst != 10 || cfg.Dial != nil || cfg.Timeout != 7*time.Second {
		t.Errorf("NewClient changed the config it was given: %+v", cfg)
	}
}

func TestBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "svcnet")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	if got, err := Binary("svcnet"); err != nil || got != bin {
		t.Errorf("Binary(svcnet) = %q, %v; want %q", got, err, bin)
	}
	_, err := Binary("missing")
	if err == nil || !strings.HasPrefix(err.Error(), "svcnet binary: stat "+filepath.Join(dir, "missing")) ||
		!strings.HasSuffix(err.Error(), "(build it with `go build -o /tmp/svcnet ./cmd/svcnet`)") {
		t.Errorf("Binary(missing): %v", err)
	}
}

const sampleMetrics = `# HELP apiserver_request_total Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",resource="endpointslices",verb="POST"} 100
apiserver_request_total{code="200",resource="endpoints",verb="PUT"} 40
# TYPE workqueue_depth gauge
workqueue_depth{name="endpointslice"} 0
`

func TestParseMetrics(t *testing.T) {
	families, err := ParseMetrics([]byte(sampleMetrics))
	if err != nil {
		t.Fatal(err)
	}
	f := families["apiserver_request_total"]
	if f == nil || len(f.Metric) != 2 || families["workqueue_depth"] == nil {
		t.Fatalf("families %v", families)
	}
	lb := Labels(f.Metric[0])
	if len(lb) != 3 || lb["resource"] != "endpointslices" || lb["verb"] != "POST" || lb["code"] != "201" {
		t.Errorf("Labels = %v", lb)
	}
	if _, err := ParseMetrics([]byte("not { metrics")); err == nil || !strings.HasPrefix(err.Error(), "parse /metrics: ") {
		t.Errorf("bad page: %v", err)
	}
}

// sleeper starts a process that does nothing for 30 s, with its data dir in a temp dir.
func sleeper(t *testing.T, script string) *proc.Process {
	t.Helper()
	dir := t.TempDir()
	p, err := proc.Start(proc.Config{Name: "fake", Bin: "/bin/sh", Args: []string{"-c", script},
		DataDir: filepath.Join(dir, "data"), LogFile: filepath.Join(dir, "fake.log"), Deathsig: syscall.SIGKILL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(time.Second) })
	return p
}

func TestWaitAPI(t *testing.T) {
	const token = "s3cret"
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/api/v1/namespaces/default" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"default"}}`))
	}))
	defer srv.Close()
	p := sleeper(t, "exec sleep 30")

	// The kubeconfig shows up a little after the start, as `svcnet up` writes it.
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: srv.URL,
		CertificateAuthorityData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})}
	kc.AuthInfos["a"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["x"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "a"}
	kc.CurrentContext = "x"
	go func() {
		time.Sleep(50 * time.Millisecond)
		_ = clientcmd.WriteToFile(*kc, filepath.Join(p.DataDir, "kubeconfig"))
	}()
	cfg, at, err := WaitAPI(context.Background(), p, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != srv.URL || cfg.BearerToken != token || at.Before(p.Started.Add(50*time.Millisecond)) {
		t.Errorf("config host %s token %q, answered at %v (start %v)", cfg.Host, cfg.BearerToken, at, p.Started)
	}
}

func TestWaitAPIFails(t *testing.T) {
	exits := sleeper(t, "echo bye; exit 2")
	<-exits.Exited()
	_, _, err := WaitAPI(context.Background(), exits, time.Minute)
	if err == nil || !strings.HasPrefix(err.Error(), "fake exited before serving (exit status 2); its log ends:\n  bye") {
		t.Errorf("process gone: %v", err)
	}
	silent := sleeper(t, "exec sleep 30")
	_, _, err = WaitAPI(context.Background(), silent, 100*time.Millisecond)
	if err == nil || !strings.HasPrefix(err.Error(), "no successful GET /api/v1/namespaces/default within 100ms: no kubeconfig yet") {
		t.Errorf("no kubeconfig: %v", err)
	}
}
