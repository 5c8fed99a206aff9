package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// cluster is one `svcnet up` started by the benchmark.
type cluster struct {
	bin, name string
	data      string // its --data-dir, under the benchmark's temp dir
	port      int    // its --port on 127.0.0.1
	logFile   string // its stdout and stderr
	cmd       *exec.Cmd
	started   time.Time // just before exec
	ready     chan readyLine
	exited    chan struct{}
	waitErr   error // how it exited; read after exited is closed
	downDone  bool
}

// readyLine is the first stdout line containing "ready" and when it was read.
type readyLine struct {
	at   time.Time
	text string
}

// newName is a cluster name nobody else uses: nb and 8 random hex digits.
func newName() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "nb" + hex.EncodeToString(b)
}

// startCluster execs `svcnet up --nodes N --name NAME --data-dir DIR --port P` with a new name, a new
// data dir under root and a free loopback port.
func startCluster(bin, root string, nodes int) (*cluster, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, name: newName(), port: port, ready: make(chan readyLine, 1), exited: make(chan struct{})}
	c.data = filepath.Join(root, c.name)
	c.logFile = filepath.Join(root, c.name+".log")
	if err := os.MkdirAll(c.data, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(c.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	c.cmd = exec.Command(bin, "up", "--nodes", strconv.Itoa(nodes), "--name", c.name, "--data-dir", c.data,
		"--bind-address", "127.0.0.1", "--port", strconv.Itoa(port))
	c.cmd.Stdout = &lineWriter{contains: "ready", at: c.ready, out: logf}
	c.cmd.Stderr = logf
	c.cmd.SysProcAttr = sysProcAttr()
	c.cmd.WaitDelay = 5 * time.Second
	c.started = time.Now()
	if err := c.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("exec %s: %w", bin, err)
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		logf.Close()
		close(c.exited)
	}()
	return c, nil
}

// waitReady waits for the ready line.
func (c *cluster) waitReady(ctx context.Context, limit time.Duration) (readyLine, error) {
	select {
	case r := <-c.ready:
		return r, nil
	case <-c.exited:
		return readyLine{}, fmt.Errorf("svcnet up exited before its ready line (%v); its log ends:\n%s", c.waitErr, tail(c.logFile, 15))
	case <-ctx.Done():
		return readyLine{}, ctx.Err()
	case <-time.After(limit):
		return readyLine{}, fmt.Errorf("no ready line within %s; the log ends:\n%s", limit, tail(c.logFile, 15))
	}
}

// stop ends `svcnet up` by its PID: SIGTERM, then SIGKILL after limit. It returns how long the
// process took to exit and whether SIGTERM alone was enough.
func (c *cluster) stop(limit time.Duration) (time.Duration, bool) {
	select {
	case <-c.exited:
		return 0, true
	default:
	}
	t0 := time.Now()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return time.Since(t0), true
	case <-time.After(limit):
		log.Printf("cluster %s: svcnet up (pid %d) still running %s after SIGTERM: SIGKILL", c.name, c.cmd.Process.Pid, limit)
		_ = c.cmd.Process.Kill()
		<-c.exited // bounded by WaitDelay
		return time.Since(t0), false
	}
}

// down stops the cluster if it still runs, copies its logs when asked to, runs `svcnet down` on its
// data dir and checks that none of its network namespaces is left. It is safe to call twice.
func (c *cluster) down(logDir string) error {
	if c.downDone {
		return nil
	}
	c.downDone = true
	c.stop(30 * time.Second)
	if logDir != "" {
		c.copyLogs(logDir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, c.bin, "--data-dir", c.data, "down").CombinedOutput()
	took := time.Since(t0)
	msg := strings.TrimSpace(string(out))
	// A cluster that never got as far as its nodes has no state file: nothing for down to do.
	if err != nil && !strings.Contains(msg, "no cluster with nodes") {
		log.Printf("cluster %s: svcnet down: %v: %s", c.name, err, msg)
	}
	left, lerr := leftNamespaces(c.name)
	if lerr != nil {
		return fmt.Errorf("cluster %s: list network namespaces: %w", c.name, lerr)
	}
	if len(left) > 0 {
		return fmt.Errorf("cluster %s: network namespaces left after svcnet down (%s): %s", c.name, dur(took), strings.Join(left, " "))
	}
	return nil
}

// copyLogs copies the up log and every agent log into dir/NAME/.
func (c *cluster) copyLogs(dir string) {
	dst := filepath.Join(dir, c.name)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		log.Printf("copy logs: %v", err)
		return
	}
	cp := func(from, to string) {
		if b, err := os.ReadFile(from); err == nil {
			_ = os.WriteFile(filepath.Join(dst, to), b, 0o644)
		}
	}
	cp(c.logFile, "up.log")
	nodes, _ := filepath.Glob(filepath.Join(c.data, "nodes", "*", "agent.log"))
	for _, f := range nodes {
		cp(f, filepath.Base(filepath.Dir(f))+"-agent.log")
	}
}

// agentLog is where node's agent logs.
func (c *cluster) agentLog(node string) string {
	return filepath.Join(c.data, "nodes", node, "agent.log")
}

// nodeNetns is the path of node's network namespace.
func (c *cluster) nodeNetns(node string) string {
	return filepath.Join(netnsDir, "svcnet-"+c.name+"-"+node)
}

const netnsDir = "/run/netns"

// leftNamespaces lists the named network namespaces of cluster name.
func leftNamespaces(name string) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var left []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "svcnet-"+name+"-") || e.Name() == "svcnet-"+name {
			left = append(left, e.Name())
		}
	}
	return left, nil
}

// restConfig reads the cluster's admin kubeconfig.
func (c *cluster) restConfig() (*rest.Config, error) {
	b, err := os.ReadFile(filepath.Join(c.data, "kubeconfig"))
	if err != nil {
		return nil, err
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(b)
	if err != nil {
		return nil, err
	}
	if h := cfg.Host; !strings.Contains(h, "127.0.0.1:") {
		return nil, fmt.Errorf("kubeconfig points at %s, not 127.0.0.1", h)
	}
	return cfg, nil
}

// newClient returns a client-go clientset with no client-side rate limit, a 30 s limit per request,
// and its own connection (the Dial function keeps client-go from sharing one cached transport).
func newClient(cfg *rest.Config) (*kubernetes.Clientset, error) {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = -1, 0
	c.Timeout = 30 * time.Second
	c.Dial = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return kubernetes.NewForConfig(c)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lineWriter copies output to out and sends the first complete line containing a string, with the
// time the write that completed it arrived.
type lineWriter struct {
	mu       sync.Mutex
	contains string
	partial  []byte
	found    bool
	at       chan<- readyLine
	out      io.Writer
}

func (w *lineWriter) Write(p []byte) (int, error) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.found {
		w.partial = append(w.partial, p...)
		for {
			i := bytes.IndexByte(w.partial, '\n')
			if i < 0 {
				break
			}
			line := string(w.partial[:i])
			w.partial = w.partial[i+1:]
			if strings.Contains(line, w.contains) {
				w.found, w.partial = true, nil
				w.at <- readyLine{at: now, text: line}
				break
			}
		}
	}
	return w.out.Write(p)
}

// readyInRE finds svcnet's own count in its ready line ("svcnet ready in 1.234s: ...").
var readyInRE = regexp.MustCompile(`ready in ([0-9.]+[a-zµ]+)`)

// tail is the last n lines of a file, indented, for error messages.
func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return "  (" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return "  " + strings.Join(lines[max(0, len(lines)-n):], "\n  ")
}

// exeAbs checks that the svcnet binary exists and returns its absolute path.
func exeAbs(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("svcnet binary: %w (build it with `go build -o /tmp/svcnet ./cmd/svcnet`)", err)
	}
	return abs, nil
}
