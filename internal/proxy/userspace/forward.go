package userspace

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// forwarder is what listeners share: how to reach endpoints and how to choose them.
type forwarder struct {
	ctx     context.Context
	log     *slog.Logger
	picker  Picker
	inside  func(netip.Addr) bool // a pod or the node itself
	dialTCP func(ctx context.Context, ep netip.AddrPort) (*net.TCPConn, error)
	dialUDP func(ep netip.AddrPort) (*net.UDPConn, error)
	udpIdle time.Duration

	mu    sync.Mutex
	conns map[*net.TCPConn]struct{} // spliced connections, closed at shutdown
	wg    sync.WaitGroup
}

func (f *forwarder) track(cs ...*net.TCPConn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		return false // shut down
	}
	for _, c := range cs {
		f.conns[c] = struct{}{}
	}
	return true
}

func (f *forwarder) untrack(cs ...*net.TCPConn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		delete(f.conns, c)
	}
}

// shutdown closes every spliced connection and waits for their goroutines.
func (f *forwarder) shutdown() {
	f.mu.Lock()
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
	f.wg.Wait()
}

// binding is a listener's current route and the affinity table of its Service port (nil without
// affinity).
type binding struct {
	route *Route
	aff   *Affinity
}

// listener serves one Service address and port.
type listener struct {
	key      ListenKey
	f        *forwarder
	cur      atomic.Pointer[binding]
	tcp      *net.TCPListener
	udp      *net.UDPConn
	sessions *Sessions
	done     chan struct{}
}

func newListener(key ListenKey, f *forwarder, b *binding, tcp *net.TCPListener, udp *net.UDPConn) *listener {
	l := &listener{key: key, f: f, tcp: tcp, udp: udp, sessions: NewSessions(), done: make(chan struct{})}
	l.cur.Store(b)
	if tcp != nil {
		go l.serveTCP()
	} else {
		go l.serveUDP()
	}
	return l
}

// update installs a new route; UDP sessions whose endpoint the route no longer gives their client
// are closed, so their next packet picks a current endpoint.
func (l *listener) update(b *binding) {
	l.cur.Store(b)
	if l.udp != nil {
		if n := l.sessions.Retarget(b.route); n > 0 {
			l.f.log.Debug("closed UDP sessions to removed endpoints", "listener", l.key.String(), "count", n)
		}
	}
}

// close stops accepting (the kernel then refuses new connections) and ends the UDP sessions;
// spliced TCP connections keep going.
func (l *listener) close() {
	if l.tcp != nil {
		_ = l.tcp.Close()
	} else {
		_ = l.udp.Close()
	}
	<-l.done
	l.sessions.CloseAll()
}

func (l *listener) serveTCP() {
	defer close(l.done)
	for {
		c, err := l.tcp.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.f.log.Warn("userspace proxy accept failed", "listener", l.key.String(), "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		l.f.wg.Add(1)
		go func() {
			defer l.f.wg.Done()
			l.handleTCP(c)
		}()
	}
}

// reset closes c with a TCP reset.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

func addrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.UDPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

func (l *listener) handleTCP(c *net.TCPConn) {
	b := l.cur.Load()
	client := addrPortOf(c.RemoteAddr()).Addr()
	if !b.route.Allowed(client) {
		reset(c)
		return
	}
	targets := b.route.Targets(l.f.inside(client))
	if len(targets) == 0 {
		reset(c)
		return
	}
	// Try up to three endpoints (one that refuses or cannot be reached is skipped), as
	// kube-proxy's userspace mode did.
	var failed []netip.AddrPort
	for range min(len(targets), 3) {
		ep := l.f.picker.Pick(b.aff, client, targets, failed)
		be, err := l.f.dialTCP(l.f.ctx, ep)
		if err == nil {
			l.f.splice(c, be)
			return
		}
		l.f.log.Debug("userspace proxy: endpoint unreachable", "servicePort", b.route.Name.String(), "endpoint", ep.String(), "err", err)
		failed = append(failed, ep)
		if l.f.ctx.Err() != nil {
			break
		}
	}
	reset(c)
}

// splice copies both ways until both sides have finished sending: an EOF from one side is passed
// on as a half-close (shutdown of writing), an error (a reset) resets both.
func (f *forwarder) splice(a, b *net.TCPConn) {
	if !f.track(a, b) {
		reset(a)
		reset(b)
		return
	}
	defer f.untrack(a, b)
	errc := make(chan error, 1)
	cp := func(dst, src *net.TCPConn) error {
		_, err := io.Copy(dst, src) // splice(2) on Linux
		if err == nil {
			_ = dst.CloseWrite()
			return nil
		}
		_ = dst.SetLinger(0)
		_ = src.SetLinger(0)
		_ = dst.Close()
		_ = src.Close()
		return err
	}
	go func() { errc <- cp(b, a) }()
	_ = cp(a, b)
	<-errc
	_ = a.Close()
	_ = b.Close()
}

func (l *listener) serveUDP() {
	defer close(l.done)
	buf := make([]byte, 65535)
	for {
		n, from, err := l.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ECONNREFUSED reported for an earlier answer
		}
		client := netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		now := time.Now()
		s := l.sessions.get(client)
		if s == nil {
			if s = l.newSession(client); s == nil {
				continue // dropped: no ICMP can be sent from userspace
			}
		}
		s.touch(now)
		if _, err := s.conn.Write(buf[:n]); err != nil && s.closed.Load() {
			continue
		}
	}
}

func (l *listener) newSession(client netip.AddrPort) *session {
	b := l.cur.Load()
	if !b.route.Allowed(client.Addr()) {
		return nil
	}
	inside := l.f.inside(client.Addr())
	targets := b.route.Targets(inside)
	if len(targets) == 0 {
		return nil
	}
	ep := l.f.picker.Pick(b.aff, client.Addr(), targets, nil)
	conn, err := l.f.dialUDP(ep)
	if err != nil {
		l.f.log.Debug("userspace proxy: UDP endpoint unreachable", "servicePort", b.route.Name.String(), "endpoint", ep.String(), "err", err)
		return nil
	}
	s := &session{client: client, backend: ep, inside: inside, conn: conn}
	s.touch(time.Now())
	l.sessions.add(s) // only this goroutine adds: always new
	go l.replies(s)
	return s
}

// replies sends the endpoint's answers back to the client from the Service address, until the
// session is idle for the timeout or closed.
func (l *listener) replies(s *session) {
	buf := make([]byte, 65535)
	for {
		_ = s.conn.SetReadDeadline(time.Now().Add(l.f.udpIdle))
		n, err := s.conn.Read(buf)
		if err != nil {
			switch {
			case s.closed.Load() || errors.Is(err, net.ErrClosed):
				return
			case errors.Is(err, os.ErrDeadlineExceeded):
				if s.idleSince(time.Now()) >= l.f.udpIdle {
					l.sessions.remove(s)
					return
				}
			case isConnRefused(err):
				// The endpoint's port is closed (ICMP): keep the session, the client may retry.
			default:
				l.sessions.remove(s)
				return
			}
			continue
		}
		s.touch(time.Now())
		_, _ = l.udp.WriteToUDPAddrPort(buf[:n], s.client)
	}
}

func isConnRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
