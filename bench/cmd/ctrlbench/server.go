package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
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

// Lines the server prints that the benchmark times.
const (
	readyLine       = "svcnet ready"        // stdout, once the API serves and the kubeconfig is written
	controllersLine = "controllers started" // stderr (slog), once the controllers' informers have synced
)

// server is one process started by the benchmark: `svcnet up`, or with -split one of `svcnet etcd`,
// `svcnet apiserver` and `svcnet controller-manager`.
type server struct {
	name          string   // in messages and table rows: "svcnet up", "etcd", "apiserver", "controller-manager"
	bin           string   // the svcnet binary
	args          []string // its arguments, kept to exec it again on a restart
	data          string   // its --data-dir
	logFile       string   // its stdout and stderr, appended to across restarts
	readyOn       string   // the stdout line marked in ready ("" for none)
	controllersOn string   // the stderr line marked in controllers ("" for none)
	env           []string // added to the benchmark's own environment
	cmd           *exec.Cmd
	started       time.Time // just before exec
	ready         chan time.Time
	controllers   chan time.Time
	exited        chan struct{}
	waitErr       error // how it exited; read after exited is closed
}

// start execs `svcnet up --nodes 0` on 127.0.0.1:port with the data dir data (created if missing,
// reused if not: a restart).
func start(bin, data, logFile string, port int) (*server, error) {
	return launch(&server{name: "svcnet up", bin: bin, data: data, logFile: logFile, readyOn: readyLine, controllersOn: controllersLine,
		args: []string{"up", "--data-dir", data, "--bind-address", "127.0.0.1", "--port", strconv.Itoa(port), "--nodes", "0"}})
}

// again execs the same command once more, on the same data dir and log: a restart.
func (s *server) again() (*server, error) {
	return launch(&server{name: s.name, bin: s.bin, args: s.args, data: s.data, logFile: s.logFile,
		readyOn: s.readyOn, controllersOn: s.controllersOn, env: s.env})
}

// launch execs s.bin with s.args, its output appended to s.logFile with the marked lines timed.
func launch(s *server) (*server, error) {
	s.ready, s.controllers, s.exited = make(chan time.Time, 1), make(chan time.Time, 1), make(chan struct{})
	if err := os.MkdirAll(s.data, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(s.bin, s.args...)
	s.cmd.Stdout = marked(s.readyOn, s.ready, logf)
	s.cmd.Stderr = marked(s.controllersOn, s.controllers, logf)
	s.cmd.SysProcAttr = sysProcAttr()
	if len(s.env) > 0 {
		s.cmd.Env = append(os.Environ(), s.env...)
	}
	s.cmd.WaitDelay = 5 * time.Second
	s.started = time.Now()
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("exec %s: %w", s.bin, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		logf.Close()
		close(s.exited)
	}()
	return s, nil
}

// marked copies to out, sending to at when pattern shows up, or just copies if there is no pattern.
func marked(pattern string, at chan<- time.Time, out io.Writer) io.Writer {
	if pattern == "" {
		return out
	}
	return &markWriter{pattern: []byte(pattern), at: at, out: out}
}

// stop ends the process by its PID: SIGTERM, then SIGKILL after 10 s. It reports whether SIGTERM
// alone was enough.
func (s *server) stop() (graceful bool) {
	select {
	case <-s.exited:
		return true
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return true
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited // bounded by WaitDelay
		return false
	}
}

// waitAPI polls, every 5 ms for at most limit, until an authenticated GET /api/v1/namespaces/default
// with the kubeconfig in the data dir (written by `svcnet up`, or with -split by the benchmark) succeeds. It returns that config and when the GET returned.
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

// waitLine waits for the time a marked line appeared (the ready line, the controllers' start).
func (s *server) waitLine(ctx context.Context, ch <-chan time.Time, what string, limit time.Duration) (time.Time, error) {
	select {
	case at := <-ch:
		return at, nil
	case <-s.exited:
		return time.Time{}, fmt.Errorf("%s exited before printing %q (%v); its log ends:\n%s", s.name, what, s.waitErr, s.logTail())
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	case <-time.After(limit):
		return time.Time{}, fmt.Errorf("no %q line within %s; the log ends:\n%s", what, limit, s.logTail())
	}
}

// logTail is the end of the server's log, for error messages.
func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logFile)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return "  " + strings.Join(lines[max(0, len(lines)-15):], "\n  ")
}

// newClient returns a client-go clientset with no client-side rate limit, a 30 s limit per request, and
// its own connection: the Dial function keeps client-go from sharing one cached transport between
// clientsets.
func newClient(cfg *rest.Config) (*kubernetes.Clientset, error) {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = -1, 0 // QPS < 0: no rate limiter
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

// markWriter copies the server's output to out and sends the time of the first write that completes
// pattern. It keeps only a pattern-sized tail of what it saw, so a pattern split over two writes is
// still found.
type markWriter struct {
	mu      sync.Mutex
	pattern []byte
	tail    []byte
	found   bool
	at      chan<- time.Time
	out     io.Writer
}

func (w *markWriter) Write(p []byte) (int, error) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.found {
		buf := append(w.tail, p...)
		if bytes.Contains(buf, w.pattern) {
			w.found, w.tail = true, nil
			w.at <- now
		} else {
			w.tail = append(w.tail[:0], buf[max(0, len(buf)-len(w.pattern)+1):]...)
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

// cpuMeter measures the CPU time the server processes and the benchmark use over an interval.
type cpuMeter struct {
	pids   []string
	server []time.Duration
	self   time.Duration
	ok     bool
}

func startCPU(pids ...int) cpuMeter {
	m := cpuMeter{ok: true}
	for _, pid := range pids {
		m.pids = append(m.pids, strconv.Itoa(pid))
	}
	m.server, m.self, m.ok = m.read()
	return m
}

// read is the CPU time of each of the meter's processes and of the benchmark.
func (m cpuMeter) read() (server []time.Duration, self time.Duration, ok bool) {
	for _, pid := range m.pids {
		d, err := cpuTime(pid)
		if err != nil {
			return nil, 0, false
		}
		server = append(server, d)
	}
	self, err := cpuTime("self")
	return server, self, err == nil
}

// since renders "server / benchmark of wall x cores" for the interval since startCPU, with one server
// figure per process in the order given, or "" when /proc could not be read.
func (m cpuMeter) since(wall time.Duration, cores int) string {
	server, self, ok := m.read()
	if !m.ok || !ok {
		return ""
	}
	var parts []string
	for i := range server {
		parts = append(parts, dur(server[i]-m.server[i]))
	}
	return fmt.Sprintf("%s / %s of %s (%d cores)", strings.Join(parts, " / "), dur(self-m.self), dur(wall*time.Duration(cores)), cores)
}

// memory reads a server's resident set (VmRSS) and its peak (VmHWM); name is its name in the log.
func memory(pid int, name, figure string, t *table) error {
	kb, err := procStatus(pid)
	if err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	mb := func(k string) float64 { return float64(kb[k]) / 1024 }
	log.Printf("%s memory: VmRSS %.0f MB (anon %.0f, file %.0f), VmHWM %.0f MB", name, mb("VmRSS"), mb("RssAnon"), mb("RssFile"), mb("VmHWM"))
	t.add(figure, fmt.Sprintf("%.0f MB / %.0f MB (anon %.0f MB, file %.0f MB)", mb("VmRSS"), mb("VmHWM"), mb("RssAnon"), mb("RssFile")), "", true)
	return nil
}
