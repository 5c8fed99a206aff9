package agnhost

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

func TestServeHostname(t *testing.T) {
	host := hostname(t)
	cases := []struct {
		name      string
		args      []string
		listeners []string
		wantClose bool // HTTP answers with Connection: close
	}{
		{name: "http is the default", args: nil, listeners: []string{"http"}},
		{name: "http close", args: []string{"--close"}, listeners: []string{"http"}, wantClose: true},
		{name: "tcp", args: []string{"--tcp", "--http=false"}, listeners: []string{"tcp"}},
		{name: "udp", args: []string{"--udp", "--http=false"}, listeners: []string{"udp"}},
		{name: "tcp and udp", args: []string{"--tcp", "--udp", "--http=false"}, listeners: []string{"tcp", "udp"}},
	}
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			if fam.host == "::1" {
				ipv6Available(t)
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					args := append([]string{"serve-hostname", "--port=0"}, c.args...)
					in := startOn(t, fam.host, args, nil)
					if len(in.addrs) != len(c.listeners) {
						t.Fatalf("listeners %v, want %v", in.addrs, c.listeners)
					}
					for _, l := range c.listeners {
						addr := net.JoinHostPort(fam.host, strconv.Itoa(in.port(l)))
						var got string
						switch l {
						case "http":
							res := httpGet(t, newClient(), "http://"+addr+"/any/path", nil)
							if res.err != nil || res.status != 200 {
								t.Fatalf("http: %d %v", res.status, res.err)
							}
							got = res.body
							if res.close != c.wantClose {
								t.Errorf("Connection: close = %v, want %v", res.close, c.wantClose)
							}
						case "tcp":
							conn, err := net.DialTimeout("tcp", addr, waitLimit)
							if err != nil {
								t.Fatal(err)
							}
							conn.SetDeadline(time.Now().Add(waitLimit))
							data, err := io.ReadAll(conn) // the server closes after writing
							conn.Close()
							if err != nil {
								t.Fatalf("tcp read: %v", err)
							}
							got = string(data)
						case "udp":
							conn, err := net.DialUDP("udp", nil, in.addrs["udp"].(*net.UDPAddr))
							if err != nil {
								t.Fatal(err)
							}
							got = udpExchange(t, conn, "anything at all, longer than 16 bytes")
							conn.Close()
						}
						if got != host {
							t.Errorf("%s: got %q, want %q", l, got, host)
						}
					}
					in.cancel()
					if code := in.wait(); code != 0 {
						t.Errorf("exit code %d, want 0", code)
					}
				})
			}
		})
	}
}

func TestServeHostnameRejectsHTTPWithRawModes(t *testing.T) {
	for _, flag := range []string{"--tcp", "--udp"} {
		t.Run(flag, func(t *testing.T) {
			code, _, stderr := runSync(t, "serve-hostname", "--port=0", flag)
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if want := "Can't server TCP/UDP mode and HTTP mode at the same time"; !contains(stderr, want) {
				t.Errorf("stderr %q does not mention %q", stderr, want)
			}
		})
	}
}

func TestServeHostnamePortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	code, _, stderr := runSyncOpts(t, func(o *options) { o.listenHost = "127.0.0.1" }, "serve-hostname", fmt.Sprintf("--port=%d", port))
	if code != 1 || !contains(stderr, "address already in use") {
		t.Errorf("code %d stderr %q, want 1 and address already in use", code, stderr)
	}
}
