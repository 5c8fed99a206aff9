package proc

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func shell(t *testing.T, script string) Config {
	t.Helper()
	dir := t.TempDir()
	return Config{Name: "sh", Bin: "/bin/sh", Args: []string{"-c", script}, DataDir: filepath.Join(dir, "data"),
		LogFile: filepath.Join(dir, "sh.log"), Deathsig: syscall.SIGKILL}
}

func TestProcessMarksAndStop(t *testing.T) {
	c := shell(t, `echo starting; echo "$GREETING ready"; echo "controllers started" >&2; exec sleep 30`)
	c.Env = []string{"GREETING=svcnet"}
	c.StdoutMark, c.StderrMark = "svcnet ready", "controllers started"
	p, err := Start(c)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Second)
	if fi, err := os.Stat(c.DataDir); err != nil || !fi.IsDir() {
		t.Errorf("data dir not made: %v", err)
	}
	ctx := context.Background()
	ready, err := p.WaitMark(ctx, p.Stdout, "ready line", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ready.At.Before(p.Started) {
		t.Errorf("ready at %v, before the start %v", ready.At, p.Started)
	}
	if _, err := p.WaitMark(ctx, p.Stderr, "controllers line", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	took, graceful := p.Stop(5 * time.Second)
	if !graceful || took > 5*time.Second {
		t.Errorf("Stop = %v, %v; want a graceful stop", took, graceful)
	}
	if took, graceful := p.Stop(5 * time.Second); took != 0 || !graceful {
		t.Errorf("second Stop = %v, %v; want 0, true", took, graceful)
	}
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "terminated") {
		t.Errorf("exit: %v, want terminated by SIGTERM", err)
	}
	// stdout and stderr are copied to the log by two goroutines: their lines may interleave either way.
	log, _ := os.ReadFile(c.LogFile)
	if lines := strings.Split(strings.TrimSpace(string(log)), "\n"); !slices.Equal(slices.Sorted(slices.Values(lines)),
		[]string{"controllers started", "starting", "svcnet ready"}) {
		t.Errorf("log %q", log)
	}

	// Again runs the same command, appending to the same log.
	q, err := p.Again()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.WaitMark(ctx, q.Stdout, "ready line", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	q.Stop(5 * time.Second)
	if log, _ := os.ReadFile(c.LogFile); strings.Count(string(log), "svcnet ready") != 2 {
		t.Errorf("log after the restart %q", log)
	}
}

func TestProcessStopKills(t *testing.T) {
	// The shell ignores SIGTERM and exec keeps it ignored in sleep: only SIGKILL ends it.
	c := shell(t, `trap "" TERM; echo up; exec sleep 30`)
	c.StdoutMark = "up"
	p, err := Start(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitMark(context.Background(), p.Stdout, "up line", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	took, graceful := p.Stop(200 * time.Millisecond)
	if graceful || took < 200*time.Millisecond {
		t.Errorf("Stop = %v, %v; want SIGKILL after 200ms", took, graceful)
	}
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("exit: %v, want killed", err)
	}
}

func TestWaitMarkErrors(t *testing.T) {
	exits, err := Start(shell(t, `echo one; echo two; exit 3`))
	if err != nil {
		t.Fatal(err)
	}
	<-exits.Exited()
	_, err = exits.WaitMark(context.Background(), exits.Stdout, "ready line", 10*time.Second)
	if err == nil || !strings.HasPrefix(err.Error(), "sh exited before its ready line (exit status 3); its log ends:\n  one\n  two") {
		t.Errorf("error %q", err)
	}

	quiet := shell(t, `echo nothing to see; exec sleep 30`)
	quiet.StdoutMark = "ready"
	p, err := Start(quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Second)
	_, err = p.WaitMark(context.Background(), p.Stdout, "ready line", 300*time.Millisecond)
	if err == nil || !strings.HasPrefix(err.Error(), "sh printed no ready line within 300ms; its log ends:\n  nothing to see") {
		t.Errorf("error %q", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.WaitMark(ctx, p.Stdout, "ready line", time.Minute); err != context.Canceled {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

func TestStartFails(t *testing.T) {
	c := shell(t, "")
	c.Bin = filepath.Join(t.TempDir(), "no-such-binary")
	if _, err := Start(c); err == nil || !strings.HasPrefix(err.Error(), "exec "+c.Bin) {
		t.Errorf("error %v", err)
	}
}

func TestTail(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for i := range 20 {
		lines = append(lines, "line "+strconv.Itoa(i))
	}
	file := filepath.Join(dir, "log")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file string
		n    int
		want string
	}{
		{file, 2, "  line 18\n  line 19"},
		{file, 1, "  line 19"},
		{file, 50, "  " + strings.Join(lines, "\n  ")},
		{filepath.Join(dir, "missing"), 2, "  (open " + filepath.Join(dir, "missing") + ": no such file or directory)"},
	} {
		if got := Tail(tc.file, tc.n); got != tc.want {
			t.Errorf("Tail(%s, %d) = %q, want %q", tc.file, tc.n, got, tc.want)
		}
	}
}

func TestFreePort(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("port %d: %v", port, err)
	}
	l.Close()
}
