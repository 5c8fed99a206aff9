package userspace

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// session is one UDP client of a Service address: its packets go to one endpoint through conn (a
// socket connected to the endpoint), and the endpoint's answers go back from the Service address.
type session struct {
	client  netip.AddrPort
	backend netip.AddrPort
	inside  bool         // the client is a pod or the node (which endpoints it may use)
	conn    *net.UDPConn // nil in tests
	last    atomic.Int64 // unix nanoseconds of the last packet either way
	closed  atomic.Bool
}

func (s *session) touch(now time.Time) { s.last.Store(now.UnixNano()) }

func (s *session) idleSince(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, s.last.Load()))
}

func (s *session) close() {
	if s.closed.CompareAndSwap(false, true) && s.conn != nil {
		_ = s.conn.Close()
	}
}

// Sessions is the UDP session table of one listener, keyed by client address and port.
type Sessions struct {
	mu sync.Mutex
	m  map[netip.AddrPort]*session
}

// NewSessions returns an empty table.
func NewSessions() *Sessions { return &Sessions{m: map[netip.AddrPort]*session{}} }

// Len is the number of sessions.
func (t *Sessions) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

func (t *Sessions) get(client netip.AddrPort) *session {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[client]
}

// add stores s unless the client already has a session, which is returned instead.
func (t *Sessions) add(s *session) (*session, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.m[s.client]; old != nil {
		return old, false
	}
	t.m[s.client] = s
	return s, true
}

// remove drops s (if it is still the client's session) and closes it.
func (t *Sessions) remove(s *session) {
	t.mu.Lock()
	if t.m[s.client] == s {
		delete(t.m, s.client)
	}
	t.mu.Unlock()
	s.close()
}

// Expire closes the sessions idle for longer than idle, and returns how many it closed.
func (t *Sessions) Expire(now time.Time, idle time.Duration) int {
	return t.drop(func(s *session) bool { return s.idleSince(now) > idle })
}

// Retarget closes the sessions whose endpoint is no longer one the route gives their client, so
// that the client's next packet picks a current endpoint at once (what deleting stale conntrack
// entries does for the nftables dataplane). It returns how many it closed.
func (t *Sessions) Retarget(r *Route) int {
	return t.drop(func(s *session) bool {
		for _, ep := range r.Targets(s.inside) {
			if ep == s.backend {
				return false
			}
		}
		return true
	})
}

// CloseAll closes every session.
func (t *Sessions) CloseAll() int { return t.drop(func(*session) bool { return true }) }

func (t *Sessions) drop(match func(*session) bool) int {
	t.mu.Lock()
	var gone []*session
	for c, s := range t.m {
		if match(s) {
			delete(t.m, c)
			gone = append(gone, s)
		}
	}
	t.mu.Unlock()
	for _, s := range gone {
		s.close()
	}
	return len(gone)
}
