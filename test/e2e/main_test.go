// Package e2e drives the svcnet binary the way a user does: `svcnet up`, the real kubectl and
// `svcnet kubectl`, kill -9 and restart, several API servers over one etcd. The binary is built once
// per run.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

var svcnetBin string

func TestMain(m *testing.M) {
	// The test binary doubles as a client run inside the cluster's namespaces (svcnet exec).
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	dir, err := os.MkdirTemp("", "svcnet-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	svcnetBin = filepath.Join(dir, "svcnet")
	build := exec.Command("go", "build", "-o", svcnetBin, "github.com/svcnet/svcnet/cmd/svcnet")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build svcnet:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a svcnet process started by a test; it is killed (by its PID) when the test ends.
type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	ready chan string
	done  chan struct{}
}

// start runs svcnet with args and waits for its "ready" line.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(svcnetBin, args...), ready: make(chan string, 1), done: make(chan struct{})}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = io.Discard
	if testing.Verbose() {
		p.cmd.Stderr = os.Stderr
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			line := s.Text()
			p.mu.Lock()
			p.lines = append(p.lines, line)
			p.mu.Unlock()
			if strings.Contains(line, "ready") {
				select {
				case p.ready <- line:
				default:
				}
			}
		}
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill(syscall.SIGKILL) })
	select {
	case <-p.ready:
	case <-p.done:
		t.Fatalf("svcnet %v exited before ready: %v", args, p.output())
	case <-time.After(60 * time.Second):
		t.Fatalf("svcnet %v not ready within 60s: %v", args, p.output())
	}
	return p
}

func (p *proc) output() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// kill sends sig to the process this test started and waits (bounded) for it to exit.
func (p *proc) kill(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// up starts `svcnet up` on a free port with its own data dir.
func up(t *testing.T, dataDir string) *proc {
	t.Helper()
	return start(t, "up", "--data-dir", dataDir, "--port", fmt.Sprint(freePort(t)), "--nodes", "0")
}

func clientFor(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	cfg.WarningHandler = rest.NoWarnings{} // the v1 Endpoints deprecation warning, on purpose
	return kubernetes.NewForConfigOrDie(cfg)
}

// kubectl is one way to run kubectl: the real binary or svcnet's embedded one.
type kubectl struct {
	name string
	argv func(kubeconfig string, args ...string) []string
}

func kubectls(t *testing.T) []kubectl {
	ks := []kubectl{{name: "svcnet-kubectl", argv: func(dataDirKubeconfig string, args ...string) []string {
		return append([]string{svcnetBin, "kubectl", "--kubeconfig", dataDirKubeconfig}, args...)
	}}}
	if path, err := exec.LookPath("kubectl"); err == nil {
		ks = append(ks, kubectl{name: "kubectl", argv: func(kc string, args ...string) []string {
			return append([]string{path, "--kubeconfig", kc}, args...)
		}})
	} else if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but no kubectl on PATH: install kubectl v1.32 (the machines have /usr/bin/kubectl)")
	} else {
		t.Logf("no kubectl on PATH; testing only svcnet kubectl")
	}
	return ks
}

// run runs a kubectl invocation and returns its combined output.
func (k kubectl) run(t *testing.T, kubeconfig string, env []string, stdin string, args ...string) (string, error) {
	t.Helper()
	argv := k.argv(kubeconfig, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (k kubectl) must(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	out, err := k.run(t, kubeconfig, nil, "", args...)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", k.name, args, err, out)
	}
	return out
}
