package userspace

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests forward on 127.0.0.1 only (no namespace, no root): the listener code with the
// endpoints being local servers.

func testForwarder(t *testing.T) *forwarder {
	ctx, cancel := context.WithCancel(context.Background())
	f := &forwarder{ctx: ctx, log: slog.New(slog.DiscardHandler), picker: defaultPicker(), inside: func(netip.Addr) bool { return true },
		dialTCP: func(ctx context.Context, ep netip.AddrPort) (*net.TCPConn, error) {
			c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp4", ep.String())
			if err != nil {
				return nil, err
			}
			return c.(*net.TCPConn), nil
		},
		dialUDP: func(ep netip.AddrPort) (*net.UDPConn, error) {
			return net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(ep))
		},
		udpIdle: 200 * time.Millisecond, conns: map[*net.TCPConn]struct{}{}}
	t.Cleanup(func() { cancel(); f.shutdown() })
	return f
}

func tcpListen(t *testing.T) *net.TCPListener {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.(*net.TCPListener)
}

func addrPort(a net.Addr) netip.AddrPort { return addrPortOf(a) }

// TestTCPSpliceHalfClose: the client sends, shuts down writing; the endpoint reads to EOF, then
// answers and closes: the answer arrives after the client's half-close.
func TestTCPSpliceHalfClose(t *testing.T) {
	f := testForwarder(t)
	back := tcpListen(t)
	go func() {
		c, err := back.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c) // until the client's half-close
		_, _ = c.Write([]byte("got " + string(b)))
	}()
	front := tcpListen(t)
	l := newListener(ListenKey{Proto: "tcp", Addr: addrPort(front.Addr())}, f,
		&binding{route: &Route{Endpoints: []netip.AddrPort{addrPort(back.Addr())}}}, front, nil)
	defer l.close()
	c, err := net.Dial("tcp4", front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "got hello" {
		t.Fatalf("answer %q, %v", b, err)
	}
}

// TestTCPNoEndpointsAndFailover: a route without endpoints for the client resets the connection;
// an endpoint that refuses is skipped for another.
func TestTCPNoEndpointsAndFailover(t *testing.T) {
	f := testForwarder(t)
	front := tcpListen(t)
	l := newListener(ListenKey{Proto: "tcp", Addr: addrPort(front.Addr())}, f, &binding{route: &Route{}}, front, nil)
	defer l.close()
	// The reset may arrive while connecting or at the first read.
	c, err := net.Dial("tcp4", front.Addr().String())
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("no endpoints: %v, want a reset", err)
	}

	// A closed port (refuses) and a live one: every connection reaches the live one.
	dead := tcpListen(t)
	deadAddr := addrPort(dead.Addr())
	dead.Close()
	live := tcpListen(t)
	go func() {
		for {
			c, err := live.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("live"))
			c.Close()
		}
	}()
	l.update(&binding{route: &Route{Endpoints: []netip.AddrPort{deadAddr, addrPort(live.Addr())}}})
	for range 10 {
		c, err := net.Dial("tcp4", front.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if string(b) != "live" {
			t.Fatalf("answer %q, %v", b, err)
		}
	}
}

// TestUDPSessions: answers come back from the listener's address; one client stays on its
// endpoint; a session whose endpoint is removed moves at once; idle sessions expire.
func TestUDPSessions(t *testing.T) {
	f := testForwarder(t)
	backend := func(name string) netip.AddrPort {
		u, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { u.Close() })
		go func() {
			buf := make([]byte, 100)
			for {
				n, from, err := u.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = u.WriteTo([]byte(name+" "+string(buf[:n])), from)
			}
		}()
		return addrPort(u.LocalAddr())
	}
	b1, b2 := backend("b1"), backend("b2")
	front, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	l := newListener(ListenKey{Proto: "udp", Addr: addrPort(front.LocalAddr())}, f,
		&binding{route: &Route{Endpoints: []netip.AddrPort{b1, b2}}}, nil, front)
	defer l.close()

	c, err := net.DialUDP("udp4", nil, front.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ask := func() string {
		buf := make([]byte, 100)
		_, _ = c.Write([]byte("q"))
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		if from != addrPort(front.LocalAddr()) {
			t.Errorf("answer from %v, want the service address %v", from, front.LocalAddr())
		}
		name, _, _ := strings.Cut(string(buf[:n]), " ")
		return name
	}
	first := ask()
	for range 5 {
		if got := ask(); got != first {
			t.Fatalf("one client answered by %s then %s", first, got)
		}
	}
	if l.sessions.Len() != 1 {
		t.Errorf("%d sessions, want 1", l.sessions.Len())
	}
	// Remove the endpoint that answered: the next packet goes to the other.
	keep, keepName := b2, "b2"
	if first == "b2" {
		keep, keepName = b1, "b1"
	}
	l.update(&binding{route: &Route{Endpoints: []netip.AddrPort{keep}}})
	if got := ask(); got != keepName {
		t.Errorf("after removing %s: answered by %s", first, got)
	}
	// Idle: the session goes.
	deadline := time.Now().Add(3 * time.Second)
	for l.sessions.Len() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := l.sessions.Len(); n != 0 {
		t.Errorf("%d sessions left after the idle timeout", n)
	}
}
