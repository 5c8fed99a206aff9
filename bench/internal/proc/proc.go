// Package proc starts, stops and measures the processes a benchmark runs: a Process is execed with
// its output appended to a log file, the first line that shows a pattern timed (MarkWriter), a
// parent-death signal, and stopped by its PID (SIGTERM, then SIGKILL). It also reads what Linux
// says about processes in /proc: the kB fields of /proc/PID/status and CPU time from /proc/PID/stat.
package proc

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Config says how to start a process.
type Config struct {
	Name    string   // in messages and table rows, e.g. "svcnet up", "etcd"
	Bin     string   // the executable
	Args    []string // its arguments
	Env     []string // added to the benchmark's own environment
	DataDir string   // created (0700) if missing before the exec; "" for none
	LogFile string   // its stdout and stderr, appended to (across restarts too)

	// StdoutMark and StderrMark are patterns whose first appearance in the process's stdout or
	// stderr is sent on Process.Stdout or Process.Stderr; "" marks nothing.
	StdoutMark, StderrMark string
	// WholeLines sends a mark only once the line holding the pattern is complete, with that line.
	WholeLines bool

	// Deathsig is the signal the kernel sends the process should the benchmark itself die (Linux);
	// 0 for none.
	Deathsig syscall.Signal
}

// Process is one running (or exited) process started by Start.
type Process struct {
	Config
	Cmd     *exec.Cmd
	Started time.Time // just before exec

	// Stdout and Stderr receive the mark of Config.StdoutMark and Config.StderrMark, at most once.
	Stdout, Stderr <-chan Mark

	exited  chan struct{}
	waitErr error
}

// Start execs c.Bin with c.Args, its output appended to c.LogFile with the marked patterns timed.
func Start(c Config) (*Process, error) {
	if c.DataDir != "" {
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return nil, err
		}
	}
	logf, err := os.OpenFile(c.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	stdout, stderr := make(chan Mark, 1), make(chan Mark, 1)
	p := &Process{Config: c, Stdout: stdout, Stderr: stderr, exited: make(chan struct{})}
	p.Cmd = exec.Command(c.Bin, c.Args...)
	p.Cmd.Stdout = marked(logf, c.StdoutMark, c.WholeLines, stdout)
	p.Cmd.Stderr = marked(logf, c.StderrMark, c.WholeLines, stderr)
	p.Cmd.SysProcAttr = SysProcAttr(c.Deathsig)
	if len(c.Env) > 0 {
		p.Cmd.Env = append(os.Environ(), c.Env...)
	}
	p.Cmd.WaitDelay = 5 * time.Second
	p.Started = time.Now()
	if err := p.Cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("exec %s: %w", c.Bin, err)
	}
	go func() {
		p.waitErr = p.Cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// marked copies to out, marking pattern, or just copies if there is no pattern.
func marked(out io.Writer, pattern string, wholeLines bool, at chan<- Mark) io.Writer {
	if pattern == "" {
		return out
	}
	return NewMarkWriter(out, pattern, wholeLines, at)
}

// Again execs the same command once more, with the same log file and data dir: a restart.
func (p *Process) Again() (*Process, error) { return Start(p.Config) }

// Pid is the process's PID.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is how the process exited; read it once Exited is closed.
func (p *Process) Err() error { return p.waitErr }

// Stop ends the process by its PID: SIGTERM, then SIGKILL after limit. It returns how long the
// process took to exit (0 if it had already) and whether SIGTERM alone was enough.
func (p *Process) Stop(limit time.Duration) (took time.Duration, graceful bool) {
	select {
	case <-p.exited:
		return 0, true
	default:
	}
	t0 := time.Now()
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return time.Since(t0), true
	case <-time.After(limit):
		_ = p.Cmd.Process.Kill()
		<-p.exited // bounded by WaitDelay
		return time.Since(t0), false
	}
}

// WaitMark waits, for at most limit, for the mark on ch (p.Stdout or p.Stderr). what names it in the
// errors: "ready line" gives "svcnet up exited before its ready line" or "etcd printed no ready line
// within 1m0s".
func (p *Process) WaitMark(ctx context.Context, ch <-chan Mark, what string, limit time.Duration) (Mark, error) {
	select {
	case m := <-ch:
		return m, nil
	case <-p.exited:
		return Mark{}, fmt.Errorf("%s exited before its %s (%v); its log ends:\n%s", p.Name, what, p.waitErr, p.LogTail())
	case <-ctx.Done():
		return Mark{}, ctx.Err()
	case <-time.After(limit):
		return Mark{}, fmt.Errorf("%s printed no %s within %s; its log ends:\n%s", p.Name, what, limit, p.LogTail())
	}
}

// LogTail is the last 15 lines of the process's log, indented, for error messages.
func (p *Process) LogTail() string { return Tail(p.LogFile, 15) }

// Tail is the last n lines of a file, indented, for error messages.
func Tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return "  (" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return "  " + strings.Join(lines[max(0, len(lines)-n):], "\n  ")
}

// FreePort is a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// InParentNetNS reports whether this process is in its parent's network namespace (it is not when
// started by `ip netns exec` from a shell).
func InParentNetNS() (bool, error) {
	self, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return false, err
	}
	parent, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", os.Getppid()))
	if err != nil {
		return false, err
	}
	return os.SameFile(self, parent), nil
}
