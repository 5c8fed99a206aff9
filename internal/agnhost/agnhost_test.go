package agnhost

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runSync runs a subcommand that is expected to return by itself.
func runSync(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runSyncOpts(t, nil, args...)
}

func runSyncOpts(t *testing.T, mod func(*options), args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	opts := defaultOptions()
	opts.listenHost = "127.0.0.1" // never listen on every address in tests
	if mod != nil {
		mod(&opts)
	}
	var out, errOut syncBuffer
	code = run(ctx, args, &out, &errOut, opts)
	if ctx.Err() != nil {
		t.Fatalf("agnhost %v did not return by itself", args)
	}
	return code, out.String(), errOut.String()
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestBadInvocations(t *testing.T) {
	cases := []struct {
		name       string
		args       []string
		wantStderr []string
	}{
		{"unknown subcommand", []string{"frobnicate"}, []string{`unknown command "frobnicate" for "agnhost"`, "agnhost --help"}},
		{"unknown subcommand after /agnhost", []string{"/agnhost", "nettest-ish"}, []string{`unknown command "nettest-ish"`}},
		{"bad int flag", []string{"netexec", "--http-port=abc"},
			[]string{`invalid argument "abc" for "--http-port" flag`, "Run 'agnhost netexec --help' for usage"}},
		{"unknown flag", []string{"netexec", "--no-such-flag"}, []string{"unknown flag: --no-such-flag"}},
		{"bad bool flag", []string{"serve-hostname", "--tcp=maybe"}, []string{`invalid argument "maybe" for "--tcp" flag`}},
		{"extra args", []string{"netexec", "extra"}, []string{`accepts at most 0 arg(s), received 1`}},
		{"connect without destination", []string{"connect"}, []string{"accepts 1 arg(s), received 0"}},
		{"bad duration", []string{"connect", "127.0.0.1:1", "--timeout=soon"}, []string{`invalid argument "soon" for "--timeout" flag`}},
		{"bad udp listen address", []string{"netexec", "--http-port=0", "--udp-port=0", "--udp-listen-addresses=not-an-ip"},
			[]string{"parseAddress: invalid address not-an-ip"}},
		{"tls key missing", []string{"netexec", "--http-port=0", "--udp-port=-1", "--tls-cert-file=/nonexistent/cert"},
			[]string{"--tls-cert-file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runSync(t, c.args...)
			if code == 0 {
				t.Errorf("exit code 0, want non-zero")
			}
			for _, w := range c.wantStderr {
				if !contains(stderr, w) {
					t.Errorf("stderr %q does not contain %q", stderr, w)
				}
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	code, stdout, _ := runSync(t, "--version")
	if code != 0 || !contains(stdout, version) {
		t.Errorf("--version: %d %q", code, stdout)
	}
	code, stdout, _ = runSync(t, "netexec", "--help")
	if code != 0 || !contains(stdout, "--http-port") {
		t.Errorf("netexec --help: %d %q", code, stdout)
	}
}

func TestPause(t *testing.T) {
	for _, args := range [][]string{{"pause"}, {"agnhost", "pause"}, {"/agnhost"}, nil} {
		ctx, cancel := context.WithCancel(context.Background())
		var out, errOut syncBuffer
		done := make(chan int, 1)
		go func() { done <- run(ctx, args, &out, &errOut, defaultOptions()) }()
		deadline := time.Now().Add(waitLimit)
		for out.String() != "Paused\n" {
			if time.Now().After(deadline) {
				t.Fatalf("%v: stdout %q, want Paused", args, out.String())
			}
			select {
			case code := <-done:
				t.Fatalf("%v returned %d before ctx ended; stderr %q", args, code, errOut.String())
			case <-time.After(5 * time.Millisecond):
			}
		}
		cancel()
		select {
		case code := <-done:
			if code != pauseSIGTERMExitCode {
				t.Errorf("%v: exit code %d, want %d (SIGTERM)", args, code, pauseSIGTERMExitCode)
			}
		case <-time.After(waitLimit):
			t.Fatalf("%v: pause did not return", args)
		}
	}
}

func TestDNSCommands(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kubelet := write("resolv.conf", "search ns1.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n")
	twoServers := write("two", "nameserver 10.0.0.1 10.0.0.2\nnameserver 10.0.0.3\n")
	empty := write("empty", "# nothing\n")
	hosts := write("hosts", "127.0.0.1\tlocalhost\n10.244.1.5\tpod-a\n")

	cases := []struct {
		name       string
		args       []string
		resolvConf string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"dns-suffix", []string{"dns-suffix"}, kubelet, 0, "ns1.svc.cluster.local,svc.cluster.local,cluster.local\n", ""},
		{"dns-server-list", []string{"dns-server-list"}, kubelet, 0, "10.96.0.10\n", ""},
		{"dns-server-list first line only", []string{"/agnhost", "dns-server-list"}, twoServers, 0, "10.0.0.1,10.0.0.2\n", ""},
		{"dns-suffix missing", []string{"dns-suffix"}, empty, panicExitCode, "", "Could not find DNS search list"},
		{"dns-server-list missing file", []string{"dns-server-list"}, filepath.Join(dir, "nope"), panicExitCode, "", "no such file"},
		{"etc-hosts", []string{"etc-hosts"}, kubelet, 0, "127.0.0.1\tlocalhost\n10.244.1.5\tpod-a\n\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runSyncOpts(t, func(o *options) {
				o.resolvConf = c.resolvConf
				o.etcHosts = hosts
			}, c.args...)
			if code != c.wantCode || stdout != c.wantStdout || !contains(stderr, c.wantStderr) {
				t.Errorf("got code %d stdout %q stderr %q; want %d %q %q", code, stdout, stderr, c.wantCode, c.wantStdout, c.wantStderr)
			}
		})
	}
}
