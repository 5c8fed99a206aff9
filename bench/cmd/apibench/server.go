package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// server is one process started by the benchmark: `svcnet up`, or with -split `svcnet etcd` or
// `svcnet apiserver`.
type server struct {
	name    string // in messages and table rows: "svcnet up", "etcd", "apiserver"
	cmd     *exec.Cmd
	data    string    // its --data-dir, fresh and empty at start
	logFile string    // its stdout and stderr
	started time.Time // just before exec
	ready   chan time.Time
	exited  chan struct{}
	waitErr error // how it exited; read after exited is closed
}

// start execs `svcnet up --nodes 0` on a free loopback port with a fresh data dir under dir.
func start(bin, dir string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	return launch("svcnet up", bin, data, filepath.Join(dir, "svcnet.log"), "ready",
		"up", "--data-dir", data, "--bind-address", "127.0.0.1", "--port", strconv.Itoa(port), "--nodes", "0")
}

// launch execs bin with args, its stdout and stderr going to logFile, and marks in ready the first
// stdout output that contains readyOn. data is the process's --data-dir, created if missing.
func launch(name, bin, data, logFile, readyOn string, args ...string) (*server, error) {
	s := &server{name: name, data: data, logFile: logFile, ready: make(chan time.Time, 1), exited: make(chan struct{})}
	if err := os.MkdirAll(s.data, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.Create(s.logFile)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout = &readyWriter{pattern: []byte(readyOn), at: s.ready, out: logf}
	s.cmd.Stderr = logf
	s.cmd.SysProcAttr = sysProcAttr()
	s.cmd.WaitDelay = 5 * time.Second
	s.started = time.Now()
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("exec %s: %w", bin, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		logf.Close()
		close(s.exited)
	}()
	return s, nil
}

// stop ends the process by its PID: SIGTERM, then SIGKILL after 10 s.
func (s *server) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited // bounded by WaitDelay
	}
}

// waitAPI polls, every 5 ms for at most limit, until an authenticated GET /api/v1/namespaces/default
// with the kubeconfig in the data dir (written by `svcnet up`, or with -split by the benchmark)
// succeeds. It returns that config and when the GET returned.
func (s *server) waitAPI(ctx context.Context, limit time.Duration) (*rest.Config, time.Time, error) {
	deadline := time.Now().Add(limit)
	var cfg *rest.Config
	var cs kubernetes.Interface
	lastErr := fmt.Errorf("no kubeconfig yet")
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return nil, time.Time{}, fmt.Errorf("%s exited before serving (%v); its log ends:\n%s", s.name, s.waitErr, s.logTail())
		case <-ctx.Done():
			return nil, time.Time{}, ctx.Err()
		default:
		}
		if cs == nil {
			if b, err := os.ReadFile(filepath.Join(s.data, "kubeconfig")); err == nil {
				cfg, lastErr = clientcmd.RESTConfigFromKubeConfig(b)
				if lastErr == nil {
					cs, lastErr = newClient(cfg)
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
	return nil, time.Time{}, fmt.Errorf("no successful GET /api/v1/namespaces/default within %s: %v\n%s", limit, lastErr, s.logTail())
}

// waitReady waits, for at most limit, for the server's ready line.
func (s *server) waitReady(ctx context.Context, limit time.Duration) error {
	select {
	case <-s.ready:
		return nil
	case <-s.exited:
		return fmt.Errorf("%s exited before its ready line (%v); its log ends:\n%s", s.name, s.waitErr, s.logTail())
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(limit):
		return fmt.Errorf("%s printed no ready line within %s; its log ends:\n%s", s.name, limit, s.logTail())
	}
}

// logTail is the end of the server's log, for error messages.
func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logFile)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return "  " + strings.Join(lines[max(0, len(lines)-15):], "\n  ")
}

// newClient returns a client-go clientset with no client-side rate limit and its own connection: the
// Dial function keeps client-go from sharing one cached transport between clientsets.
func newClient(cfg *rest.Config) (*kubernetes.Clientset, error) {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = -1, 0 // QPS < 0: no rate limiter
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

// readyWriter copies the server's stdout to out and sends the time of the first output that contains
// pattern.
type readyWriter struct {
	mu      sync.Mutex
	pattern []byte
	seen    []byte
	found   bool
	at      chan<- time.Time
	out     *os.File
}

func (w *readyWriter) Write(p []byte) (int, error) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.found {
		w.seen = append(w.seen, p...)
		if bytes.Contains(w.seen, w.pattern) {
			w.found, w.seen = true, nil
			w.at <- now
		}
	}
	return w.out.Write(p)
}

// procStatus reads the kB fields of /proc/PID/status (VmRSS, VmHWM, RssAnon, ...).
func procStatus(pid int) (map[string]int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	kb := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if f := strings.Fields(v); ok && len(f) == 2 && f[1] == "kB" {
			if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				kb[k] = n
			}
		}
	}
	return kb, sc.Err()
}

// cpuTime is the user+system CPU time of a process ("self" or a PID) from /proc/PID/stat, assuming the
// usual 100 clock ticks per second.
func cpuTime(pid string) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command name start at field 3 (state); utime and stime are 14 and 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%s/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%s/stat: bad utime or stime", pid)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// cpuTimes is cpuTime of each of pids, in order.
func cpuTimes(pids []int) ([]time.Duration, error) {
	var out []time.Duration
	for _, pid := range pids {
		d, err := cpuTime(strconv.Itoa(pid))
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}
