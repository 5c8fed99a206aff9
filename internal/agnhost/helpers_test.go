package agnhost

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitLimit bounds every wait in these tests.
const waitLimit = 10 * time.Second

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a running Main.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// instance is one agnhost run in the background.
type instance struct {
	t      *testing.T
	addrs  map[string]net.Addr
	cancel context.CancelFunc
	done   chan int
	stdout *syncBuffer
	stderr *syncBuffer
}

// startOn runs agnhost with args, listening on host only, and waits until its sockets are bound.
func startOn(t *testing.T, host string, args []string, mod func(*options)) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{
		t:      t,
		cancel: cancel,
		done:   make(chan int, 1),
		stdout: &syncBuffer{},
		stderr: &syncBuffer{},
	}
	readyCh := make(chan map[string]net.Addr, 1)
	opts := defaultOptions()
	opts.listenHost = host
	opts.onReady = func(m map[string]net.Addr) { readyCh <- m }
	if mod != nil {
		mod(&opts)
	}
	go func() { in.done <- run(ctx, args, in.stdout, in.stderr, opts) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-in.done:
		case <-time.After(waitLimit):
			t.Errorf("agnhost %v did not return after cancel", args)
		}
	})
	select {
	case in.addrs = <-readyCh:
	case code := <-in.done:
		in.done <- code
		t.Fatalf("agnhost %v exited early with %d; stderr:\n%s", args, code, in.stderr.String())
	case <-time.After(waitLimit):
		t.Fatalf("agnhost %v did not become ready", args)
	}
	return in
}

func start(t *testing.T, args ...string) *instance {
	t.Helper()
	return startOn(t, "127.0.0.1", args, nil)
}

// port returns the bound port of the named listener ("http", "udp", "tcp").
func (in *instance) port(name string) int {
	in.t.Helper()
	a, ok := in.addrs[name]
	if !ok {
		in.t.Fatalf("no %s listener; have %v", name, in.addrs)
	}
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.Port
	case *net.UDPAddr:
		return a.Port
	}
	in.t.Fatalf("unexpected address type %T", a)
	return 0
}

// wait returns the exit code of Main, failing the test if it does not come within waitLimit.
func (in *instance) wait() int {
	in.t.Helper()
	select {
	case code := <-in.done:
		in.done <- code // for Cleanup
		return code
	case <-time.After(waitLimit):
		in.t.Fatalf("agnhost did not exit")
		return -1
	}
}

// exited reports whether Main has returned.
func (in *instance) exited() bool {
	select {
	case code := <-in.done:
		in.done <- code
		return true
	default:
		return false
	}
}

type httpResult struct {
	status int
	body   string
	header http.Header
	local  string // the client's address for this request
	close  bool   // the server asked to close the connection
	err    error
}

// httpGet fetches url without following redirects, recording the local address used.
func httpGet(t *testing.T, client *http.Client, url string, header map[string]string) httpResult {
	t.Helper()
	var res httpResult
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		res.local = info.Conn.LocalAddr().String()
	}}
	ctx, cancel := context.WithTimeout(httptrace.WithClientTrace(context.Background(), trace), waitLimit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		res.err = err
		return res
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	res.status, res.body, res.header, res.close, res.err = resp.StatusCode, string(body), resp.Header, resp.Close, err
	return res
}

func newClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Timeout: waitLimit,
	}
}

func hostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// udpExchange sends msg to addr and returns the first datagram that comes back.
func udpExchange(t *testing.T, conn *net.UDPConn, msg string) string {
	t.Helper()
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
	return udpRead(t, conn)
}

func udpRead(t *testing.T, conn *net.UDPConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(waitLimit))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("udp read: %v", err)
	}
	return string(buf[:n])
}

// freePort returns a loopback port that nothing listens on (for both TCP and UDP, most likely).
func freePort(t *testing.T, network, host string) string {
	t.Helper()
	switch {
	case strings.HasPrefix(network, "udp"):
		c, err := net.ListenPacket(network, net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return portOf(c.LocalAddr())
	default:
		l, err := net.Listen(network, net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return portOf(l.Addr())
	}
}

func portOf(a net.Addr) string {
	_, p, _ := net.SplitHostPort(a.String())
	return p
}

func ipv6Available(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("IPv6 loopback not available: %v", err)
	}
	l.Close()
}
