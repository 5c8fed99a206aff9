package dns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

const (
	// upstreamTimeout bounds one exchange with one upstream.
	upstreamTimeout = 2 * time.Second
	// forwardBudget bounds all the attempts for one question; clients retry after 5 s (glibc's default).
	forwardBudget = 4 * time.Second
	// upstreamUDPSize is the EDNS0 buffer size offered to upstreams (the DNS flag day 2020 value).
	upstreamUDPSize = 1232
	// loopReprobe is how often an upstream found to loop back to us is checked again.
	loopReprobe = 30 * time.Second
)

var errNoUpstream = errors.New("no usable upstream resolver")

type upstream struct {
	addr    string
	looping atomic.Bool // a probe sent to it came back to us
}

// forwarder answers names outside the cluster zone from its cache or its upstream resolvers. Concurrent
// identical questions share one upstream exchange, which also damps forwarding loops: a question that
// comes back to us waits for the one in flight instead of being sent again. Upstreams that loop back to
// us are found by probing them with a random name and watching for it (as CoreDNS's loop plugin does).
type forwarder struct {
	// dial opens connections to upstreams (Config.Dial); nil: the process's own network.
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	upstreams []*upstream
	cache     *answerCache
	flight    singleflight.Group
	preferred atomic.Int32 // index of the upstream that answered last
	metrics   *metrics
	log       *slog.Logger
	timeout   time.Duration

	probeMu sync.Mutex
	probes  map[string]*probe // live probe names -> their upstream
	probing atomic.Int32      // len(probes), read on every query
}

type probe struct {
	up   *upstream
	seen atomic.Bool
}

func newForwarder(addrs []string, c *answerCache, m *metrics, log *slog.Logger) *forwarder {
	f := &forwarder{cache: c, metrics: m, log: log, timeout: upstreamTimeout, probes: map[string]*probe{}}
	for _, a := range addrs {
		f.upstreams = append(f.upstreams, &upstream{addr: a})
	}
	return f
}

// ServeDNS answers a question outside the zone.
func (f *forwarder) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	q := r.Question[0]
	lname := strings.ToLower(q.Name)
	if f.probing.Load() > 0 && f.sawProbe(lname) {
		return dns.RcodeServerFailure, nil // our own probe came back: answer at once, ending the loop
	}
	m, st, err := f.lookupStamped(ctx, lname, q.Qtype, doBit(r), r.CheckingDisabled)
	if err != nil {
		return dns.RcodeServerFailure, err
	}
	m.SetRcode(r, m.Rcode)
	m.RecursionAvailable = true
	fixCase(m, q.Name)
	if h := hintOf(w); h != nil && st.ttl > 0 {
		h.keep = true
		h.upstream(st, 0, true, true)
	}
	if err := w.WriteMsg(m); err != nil {
		return m.Rcode, err
	}
	return m.Rcode, nil
}

// fixCase gives records owned by the question name the question's spelling (DNS 0x20 clients check it).
func fixCase(m *dns.Msg, qname string) {
	for _, rr := range m.Answer {
		if h := rr.Header(); h.Name != qname && strings.EqualFold(h.Name, qname) {
			h.Name = qname
		}
	}
}

func doBit(r *dns.Msg) bool {
	if o := r.IsEdns0(); o != nil {
		return o.Do()
	}
	return false
}

// stampKey is the context key under which a caller of lookup (kube, chasing a CNAME out of the zone)
// leaves a *stamp for lookup to fill in.
type stampKey struct{}

// lookup returns the answer for (name, qtype) from the cache or upstream. The message is the caller's.
// When ctx carries a *stamp (stampKey), lookup sets it to the answer's.
func (f *forwarder) lookup(ctx context.Context, lname string, qtype uint16, do, cd bool) (*dns.Msg, error) {
	m, st, err := f.lookupStamped(ctx, lname, qtype, do, cd)
	if p, ok := ctx.Value(stampKey{}).(*stamp); ok {
		*p = st
	}
	return m, err
}

// flightResult is what one shared upstream exchange hands every waiter.
type flightResult struct {
	m  *dns.Msg
	st stamp
}

// lookupStamped is lookup, returning the answer's stamp (ttl 0 when the answer is not cached).
func (f *forwarder) lookupStamped(ctx context.Context, lname string, qtype uint16, do, cd bool) (*dns.Msg, stamp, error) {
	k := cacheKey{name: lname, qtype: qtype}
	if do {
		k.flags |= flagDO
	}
	if cd {
		k.flags |= flagCD
	}
	if m, st := f.cache.getStamped(k); m != nil {
		f.metrics.cacheHits.Inc()
		return m, st, nil
	}
	if len(f.upstreams) == 0 {
		f.metrics.cacheMisses.Inc()
		return nil, stamp{}, errNoUpstream
	}
	if inline(ctx) {
		return nil, stamp{}, errWouldBlock // counted as a miss when it runs again, off the reader
	}
	f.metrics.cacheMisses.Inc()
	ch := f.flight.DoChan(lname+"/"+strconv.Itoa(int(qtype))+"/"+strconv.Itoa(int(k.flags)), func() (any, error) {
		m, err := f.exchange(lname, qtype, do, cd)
		if err != nil {
			return nil, err
		}
		return flightResult{m: m, st: f.cache.put(k, m)}, nil
	})
	select {
	case <-ctx.Done():
		return nil, stamp{}, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return nil, stamp{}, res.Err
		}
		// Shared by every waiter and owned by the cache now: each caller gets its own copy.
		fr := res.Val.(flightResult)
		m := fr.m
		out := new(dns.Msg)
		out.Rcode = m.Rcode
		out.Answer = copyRRs(m.Answer, 0)
		out.Ns = copyRRs(m.Ns, 0)
		for _, rr := range m.Extra {
			if _, ok := rr.(*dns.OPT); !ok {
				out.Extra = append(out.Extra, dns.Copy(rr))
			}
		}
		return out, fr.st, nil
	}
}

// exchange asks the upstreams in turn, starting with the one that answered last, within forwardBudget.
func (f *forwarder) exchange(lname string, qtype uint16, do, cd bool) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(lname, qtype)
	q.RecursionDesired = true
	q.CheckingDisabled = cd
	q.SetEdns0(upstreamUDPSize, do)
	deadline := time.Now().Add(forwardBudget)
	n := len(f.upstreams)
	start := int(f.preferred.Load())
	var lastErr error = errNoUpstream
	var fallback *dns.Msg
	for i := 0; i < n; i++ {
		idx := (start + i) % n
		u := f.upstreams[idx]
		if u.looping.Load() {
			continue
		}
		timeout := min(f.timeout, time.Until(deadline))
		if timeout <= 0 {
			break
		}
		began := time.Now()
		m, err := exchangeOne(f.dial, u.addr, q, timeout)
		f.metrics.forwardDuration.Observe(time.Since(began).Seconds())
		if err != nil {
			f.metrics.forwardErrors.Inc()
			lastErr = fmt.Errorf("upstream %s: %w", u.addr, err)
			continue
		}
		if m.Rcode == dns.RcodeServerFailure || m.Rcode == dns.RcodeRefused {
			fallback = m // try the next one, but keep this answer if nobody does better
			continue
		}
		f.preferred.Store(int32(idx))
		return m, nil
	}
	if fallback != nil {
		return fallback, nil
	}
	return nil, lastErr
}

// exchangeOne sends q to addr over UDP, and again over TCP when the answer is truncated.
func exchangeOne(dial func(ctx context.Context, network, addr string) (net.Conn, error), addr string, q *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	q = q.Copy()
	q.Id = dns.Id()
	c := &dns.Client{Net: "udp", Timeout: timeout, UDPSize: upstreamUDPSize}
	exchange := func() (*dns.Msg, error) {
		if dial == nil {
			m, _, err := c.Exchange(q, addr)
			return m, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		conn, err := dial(ctx, c.Net, addr)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		m, _, err := c.ExchangeWithConnContext(ctx, q, &dns.Conn{Conn: conn, UDPSize: upstreamUDPSize})
		return m, err
	}
	m, err := exchange()
	if err == nil && m.Truncated {
		c.Net = "tcp"
		m, err = exchange()
	}
	if err != nil {
		return nil, err
	}
	if len(m.Question) != 1 || m.Question[0].Qtype != q.Question[0].Qtype || !strings.EqualFold(m.Question[0].Name, q.Question[0].Name) {
		return nil, errors.New("answer does not match the question")
	}
	return m, nil
}

// sawProbe reports whether lname is one of our loop probes, and marks its upstream as looping.
func (f *forwarder) sawProbe(lname string) bool {
	f.probeMu.Lock()
	p := f.probes[lname]
	f.probeMu.Unlock()
	if p == nil {
		return false
	}
	if !p.seen.Swap(true) {
		p.up.looping.Store(true)
		f.metrics.loops.Inc()
		f.log.Error("forwarding loop: upstream sends our queries back to us; not using it", "upstream", p.up.addr)
	}
	return true
}

// probeLoops sends each upstream a query for a random name under .invalid (RFC 6761) and marks the ones
// whose probe comes back to us. Upstreams marked looping are probed again every loopReprobe until ctx ends.
func (f *forwarder) probeLoops(ctx context.Context) {
	check := func(u *upstream) {
		var b [8]byte
		rand.Read(b[:])
		name := "svcnet-loop-" + hex.EncodeToString(b[:]) + ".invalid."
		p := &probe{up: u}
		f.probeMu.Lock()
		f.probes[name] = p
		f.probing.Add(1)
		f.probeMu.Unlock()
		defer func() {
			f.probeMu.Lock()
			delete(f.probes, name)
			f.probing.Add(-1)
			f.probeMu.Unlock()
		}()
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeHINFO)
		q.RecursionDesired = true
		exchangeOne(f.dial, u.addr, q, f.timeout)
		if !p.seen.Load() && u.looping.Swap(false) {
			f.log.Info("upstream no longer loops back to us", "upstream", u.addr)
		}
	}
	var wg sync.WaitGroup
	for _, u := range f.upstreams {
		wg.Add(1)
		go func() { defer wg.Done(); check(u) }()
	}
	wg.Wait()
	t := time.NewTicker(loopReprobe)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, u := range f.upstreams {
			if u.looping.Load() {
				check(u)
			}
		}
	}
}
