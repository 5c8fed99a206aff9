// Package controlplane starts svcnet's control plane for a benchmark, on 127.0.0.1 only: `svcnet up`
// as one process, or `svcnet etcd` and `svcnet apiserver` as two (Split) with the credentials made
// here as `svcnet up` makes them; and it waits for, and makes clients of, the API server.
package controlplane

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/svcnet/svcnet/bench/internal/proc"
	"github.com/svcnet/svcnet/internal/pki"
)

// Lines the split processes print on stdout once they serve.
const (
	EtcdReadyLine      = "svcnet etcd ready"
	APIServerReadyLine = "svcnet apiserver ready"
)

// Up is the configuration of `svcnet up --nodes 0` on 127.0.0.1:port with the data dir data,
// logging to logFile, killed by the kernel should the benchmark die. The caller sets what to mark.
func Up(bin, data, logFile string, port int) proc.Config {
	return proc.Config{Name: "svcnet up", Bin: bin, DataDir: data, LogFile: logFile, Deathsig: syscall.SIGKILL,
		Args: []string{"up", "--data-dir", data, "--bind-address", "127.0.0.1", "--port", strconv.Itoa(port), "--nodes", "0"}}
}

// Split is `svcnet etcd` and `svcnet apiserver` over it, as two processes sharing one data dir.
type Split struct {
	Etcd, APIServer *proc.Process // nil until started
	EtcdURL         string        // etcd's client URL
	PKI             pki.Files     // the credentials; PKI.Kubeconfig is the admin kubeconfig
}

// Start starts etcd, waits for its ready line, makes the CA, serving certificate, admin token and
// kubeconfig in data, then starts the API server over that etcd and waits until it answers an
// authenticated GET, whose config it returns. Each process listens on its own free 127.0.0.1 port,
// logs to dir/etcd.log and dir/apiserver.log and is killed by the kernel should the benchmark die.
// What it started is in s, to be stopped, also when it fails.
func (s *Split) Start(ctx context.Context, bin, dir, data string) (*rest.Config, error) {
	etcdPort, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	apiPort, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	s.EtcdURL = fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	config := func(name, readyOn string, args ...string) proc.Config {
		return proc.Config{Name: name, Bin: bin, DataDir: data, LogFile: filepath.Join(dir, name+".log"),
			StdoutMark: readyOn, Deathsig: syscall.SIGKILL, Args: append([]string{name, "--data-dir", data}, args...)}
	}
	if s.Etcd, err = proc.Start(config("etcd", EtcdReadyLine, "--listen-client-urls", s.EtcdURL)); err != nil {
		return nil, err
	}
	if _, err := s.Etcd.WaitMark(ctx, s.Etcd.Stdout, "ready line", time.Minute); err != nil {
		return nil, err
	}

	s.PKI = pki.In(data)
	token, err := s.PKI.Ensure(nil)
	if err != nil {
		return nil, err
	}
	if err := s.PKI.WriteKubeconfig(fmt.Sprintf("https://127.0.0.1:%d", apiPort), token); err != nil {
		return nil, err
	}
	s.APIServer, err = proc.Start(config("apiserver", APIServerReadyLine, "--etcd-servers", s.EtcdURL,
		"--secure-port", strconv.Itoa(apiPort), "--bind-address", "127.0.0.1",
		"--tls-cert-file", s.PKI.ServerCert, "--tls-private-key-file", s.PKI.ServerKey, "--token-auth-file", s.PKI.Tokens))
	if err != nil {
		return nil, err
	}
	cfg, _, err := WaitAPI(ctx, s.APIServer, time.Minute)
	if err != nil {
		select {
		case <-s.Etcd.Exited():
			err = fmt.Errorf("%w\netcd exited (%v); its log ends:\n%s", err, s.Etcd.Err(), s.Etcd.LogTail())
		default:
		}
		return nil, err
	}
	return cfg, nil
}

// Binary checks that the svcnet binary at path exists and returns its absolute path.
func Binary(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("svcnet binary: %w (build it with `go build -o /tmp/svcnet ./cmd/svcnet`)", err)
	}
	return abs, nil
}

// WaitAPI polls, every 5 ms for at most limit, until an authenticated GET /api/v1/namespaces/default
// with the kubeconfig in p's data dir (written by `svcnet up`, or by Split.Start) succeeds. It returns
// that config and when the GET returned.
func WaitAPI(ctx context.Context, p *proc.Process, limit time.Duration) (*rest.Config, time.Time, error) {
	deadline := time.Now().Add(limit)
	var cfg *rest.Config
	var cs kubernetes.Interface
	lastErr := fmt.Errorf("no kubeconfig yet")
	for time.Now().Before(deadline) {
		select {
		case <-p.Exited():
			return nil, time.Time{}, fmt.Errorf("%s exited before serving (%v); its log ends:\n%s", p.Name, p.Err(), p.LogTail())
		case <-ctx.Done():
			return nil, time.Time{}, ctx.Err()
		default:
		}
		if cs == nil {
			if b, err := os.ReadFile(filepath.Join(p.DataDir, "kubeconfig")); err == nil {
				cfg, lastErr = clientcmd.RESTConfigFromKubeConfig(b)
				if lastErr == nil {
					cs, lastErr = NewClient(cfg, 0)
				}
			}
		}
		if cs != nil {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := cs.CoreV1().Namespaces().Get(rctx, "default", metav1.GetOptions{})
			cancel()
			if err == nil {
				return cfg, time.Now(), nil
			}
			lastErr = err
			if apierrors.IsUnauthorized(err) {
				cs = nil // maybe read a half-written kubeconfig: read it again
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil, time.Time{}, fmt.Errorf("no successful GET /api/v1/namespaces/default within %s: %v\n%s", limit, lastErr, p.LogTail())
}

// NewClient returns a client-go clientset with no client-side rate limit, a limit of timeout per
// request (0 leaves cfg's, none unless it says), and its own connection: the Dial function keeps client-go from sharing one
// cached transport between clientsets.
func NewClient(cfg *rest.Config, timeout time.Duration) (*kubernetes.Clientset, error) {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = -1, 0 // QPS < 0: no rate limiter
	if timeout > 0 {
		c.Timeout = timeout
	}
	c.Dial = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return kubernetes.NewForConfig(c)
}
