package dns

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeUpstream is a miekg/dns server on 127.0.0.1 (UDP and TCP on one port) playing an upstream resolver.
type fakeUpstream struct {
	addr    string
	queries atomic.Int32
	mu      sync.Mutex
	byName  map[string]int
}

func (u *fakeUpstream) count(name string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.byName[strings.ToLower(name)]
}

func startUpstream(t testing.TB, h func(w dns.ResponseWriter, r *dns.Msg)) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{byName: map[string]int{}}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.queries.Add(1)
		u.mu.Lock()
		u.byName[strings.ToLower(r.Question[0].Name)]++
		u.mu.Unlock()
		h(w, r)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	u.addr = l.Addr().String()
	udpSrv := &dns.Server{PacketConn: pc, Handler: handler}
	tcpSrv := &dns.Server{Listener: l, Handler: handler}
	go udpSrv.ActivateAndServe()
	go tcpSrv.ActivateAndServe()
	t.Cleanup(func() { udpSrv.Shutdown(); tcpSrv.Shutdown() })
	return u
}

// zoneAnswers answers from a few records, like an authoritative server for example.
func zoneAnswers(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	q := r.Question[0]
	soa, _ := dns.NewRR("example. 300 IN SOA ns.example. admin.example. 1 7200 1800 86400 30")
	switch strings.ToLower(q.Name) {
	case "www.example.":
		if q.Qtype == dns.TypeA {
			rr, _ := dns.NewRR(q.Name + " 60 IN A 192.0.2.1")
			m.Answer = []dns.RR{rr}
		} else {
			m.Ns = []dns.RR{soa}
		}
	case "ext.example.":
		if q.Qtype == dns.TypeA {
			rr, _ := dns.NewRR(q.Name + " 120 IN A 192.0.2.2")
			m.Answer = []dns.RR{rr}
		}
	case "big.example.":
		for i := 0; i < 100; i++ {
			rr, _ := dns.NewRR(q.Name + " 60 IN TXT \"" + strings.Repeat("x", 50) + "\"")
			m.Answer = append(m.Answer, rr)
		}
		if w.RemoteAddr().Network() == "udp" {
			m.Truncate(512)
		}
	case "nosoa.example.":
		m.Rcode = dns.RcodeNameError
	default:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{soa}
	}
	w.WriteMsg(m)
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func query(t testing.TB, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return exchange(t, "udp", addr, m)
}

func TestForwardCache(t *testing.T) {
	up := startUpstream(t, zoneAnswers)
	clock := &fakeClock{t: testNow}
	reg := prometheus.NewRegistry()
	s, addr := startServer(t, Config{Upstreams: []string{up.addr}, now: clock.now, Registerer: reg}, fixture()...)

	check(t, testCase{qname: "www.example.", qtype: dns.TypeA, answer: []string{"www.example. 60 IN A 192.0.2.1"}}, query(t, addr, "www.example.", dns.TypeA))
	clock.advance(10 * time.Second)
	// A hit: the TTL has counted down, the question's case is kept.
	check(t, testCase{qname: "WWW.Example.", qtype: dns.TypeA, answer: []string{"WWW.Example. 50 IN A 192.0.2.1"}}, query(t, addr, "WWW.Example.", dns.TypeA))
	if n := up.count("www.example."); n != 1 {
		t.Errorf("upstream asked %d times, want 1", n)
	}
	// Expired: asked again.
	clock.advance(51 * time.Second)
	check(t, testCase{qname: "www.example.", qtype: dns.TypeA, answer: []string{"www.example. 60 IN A 192.0.2.1"}}, query(t, addr, "www.example.", dns.TypeA))
	if n := up.count("www.example."); n != 2 {
		t.Errorf("after expiry: upstream asked %d times, want 2", n)
	}

	// Negative answers are cached for the SOA's negative TTL (min(300, 30)).
	nx := testCase{qname: "nope.example.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
		ns: []string{"example. 300 IN SOA ns.example. admin.example. 1 7200 1800 86400 30"}}
	check(t, nx, query(t, addr, "nope.example.", dns.TypeA))
	clock.advance(20 * time.Second)
	nx.ns = []string{"example. 280 IN SOA ns.example. admin.example. 1 7200 1800 86400 30"}
	check(t, nx, query(t, addr, "nope.example.", dns.TypeA))
	if n := up.count("nope.example."); n != 1 {
		t.Errorf("NXDOMAIN: upstream asked %d times, want 1", n)
	}
	clock.advance(11 * time.Second)
	query(t, addr, "nope.example.", dns.TypeA)
	if n := up.count("nope.example."); n != 2 {
		t.Errorf("NXDOMAIN after its TTL: upstream asked %d times, want 2", n)
	}
	// NODATA is negative too.
	query(t, addr, "www.example.", dns.TypeAAAA)
	query(t, addr, "www.example.", dns.TypeAAAA)
	if n := up.count("www.example."); n != 3 {
		t.Errorf("NODATA: upstream asked %d times for www.example., want 3", n)
	}
	// Without SOA, a negative answer is kept a few seconds only.
	query(t, addr, "nosoa.example.", dns.TypeA)
	query(t, addr, "nosoa.example.", dns.TypeA)
	clock.advance(negativeTTLNoSOA * time.Second)
	query(t, addr, "nosoa.example.", dns.TypeA)
	if n := up.count("nosoa.example."); n != 2 {
		t.Errorf("NXDOMAIN without SOA: upstream asked %d times, want 2", n)
	}
	if s.cache.len() == 0 {
		t.Error("cache is empty")
	}
	m := gather(t, reg)
	if m["svcnet_dns_cache_hits_total"] != 4 || m["svcnet_dns_cache_misses_total"] != 7 || m["svcnet_dns_cache_entries"] != 4 {
		t.Errorf("cache metrics: %v hits, %v misses, %v entries; want 4, 7, 4",
			m["svcnet_dns_cache_hits_total"], m["svcnet_dns_cache_misses_total"], m["svcnet_dns_cache_entries"])
	}
}

// The cache stays within its bounds, evicting the least recently used answers.
func TestCacheBounds(t *testing.T) {
	c := newCache(cacheShards*4096, cacheShards*4, nil)
	for i := 0; i < 10000; i++ {
		m := new(dns.Msg)
		rr, _ := dns.NewRR("n" + strconv.Itoa(i) + ".example. 300 IN A 192.0.2.1")
		m.Answer = []dns.RR{rr}
		c.put(cacheKey{name: "n" + strconv.Itoa(i) + ".example.", qtype: dns.TypeA}, m)
	}
	if n := c.len(); n > cacheShards*4 {
		t.Errorf("%d entries, bound %d", n, cacheShards*4)
	}
	if b := c.bytes(); b > cacheShards*4096 {
		t.Errorf("%d bytes, bound %d", b, cacheShards*4096)
	}
	if c.get(cacheKey{name: "n9999.example.", qtype: dns.TypeA}) == nil {
		t.Error("the most recent answer was evicted")
	}
}

// A truncated upstream answer is fetched again over TCP; a large answer reaches the client whole over
// TCP and truncated over UDP.
func TestForwardTruncated(t *testing.T) {
	up := startUpstream(t, zoneAnswers)
	_, addr := startServer(t, Config{Upstreams: []string{up.addr}}, fixture()...)
	m := new(dns.Msg)
	m.SetQuestion("big.example.", dns.TypeTXT)
	if r := exchange(t, "tcp", addr, m); len(r.Answer) != 100 || r.Truncated {
		t.Errorf("tcp: %d answers, TC %v; want 100", len(r.Answer), r.Truncated)
	}
	if r := exchange(t, "udp", addr, m); !r.Truncated {
		t.Errorf("udp: %d answers, want TC", len(r.Answer))
	}
}

// ExternalName targets outside the zone are chased upstream.
func TestExternalNameUpstream(t *testing.T) {
	up := startUpstream(t, zoneAnswers)
	_, addr := startServer(t, Config{Upstreams: []string{up.addr}}, append(fixture(), externalName("testns", "ext2", "ext.example"))...)
	check(t, testCase{qname: "ext2.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
		"ext2.testns.svc.cluster.local. 5 IN CNAME ext.example.",
		"ext.example. 120 IN A 192.0.2.2",
	}}, query(t, addr, "ext2.testns.svc.cluster.local.", dns.TypeA))
}

// Nothing in the zone goes upstream, even when it does not exist.
func TestZoneNeverForwarded(t *testing.T) {
	up := startUpstream(t, zoneAnswers)
	_, addr := startServer(t, Config{Upstreams: []string{up.addr}}, fixture()...)
	for _, name := range []string{"example.com.testns.svc.cluster.local.", "example.com.svc.cluster.local.", "example.com.cluster.local.", "cluster.local."} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX} {
			query(t, addr, name, qt)
		}
	}
	if n := up.queries.Load(); n != 0 {
		t.Errorf("upstream got %d queries for names in the zone", n)
	}
}

// The next upstream answers when the first does not.
func TestForwardFailover(t *testing.T) {
	dead, err := net.ListenPacket("udp", "127.0.0.1:0") // never answers
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	up := startUpstream(t, zoneAnswers)
	_, addr := startServer(t, Config{Upstreams: []string{dead.LocalAddr().String(), up.addr}, upstreamTimeout: 700 * time.Millisecond}, fixture()...)
	check(t, testCase{qname: "www.example.", qtype: dns.TypeA, answer: []string{"www.example. 60 IN A 192.0.2.1"}}, query(t, addr, "www.example.", dns.TypeA))
	// The one that answered is asked first from now on: no more waiting.
	start := time.Now()
	query(t, addr, "other.example.", dns.TypeA)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("second question took %v: the dead upstream was tried first again", d)
	}
}

// Identical concurrent questions share one upstream exchange.
func TestForwardSingleflight(t *testing.T) {
	var release = make(chan struct{})
	up := startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		<-release
		zoneAnswers(w, r)
	})
	_, addr := startServer(t, Config{Upstreams: []string{up.addr}}, fixture()...)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); query(t, addr, "www.example.", dns.TypeA) }()
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := up.count("www.example."); n != 1 {
		t.Errorf("upstream asked %d times, want 1", n)
	}
}

// Forwarding-loop protection: an upstream that is this server is dropped; two servers forwarding to
// each other find the loop with their probes and answer SERVFAIL at once instead of bouncing queries.
func TestForwardLoop(t *testing.T) {
	port := freePort(t)
	self := "127.0.0.1:" + itoa(port)
	s := newFixtureServer(t, Config{Listen: []string{self}, Upstreams: []string{self}}, fixture()...)
	if len(s.fwd.upstreams) != 0 {
		t.Fatalf("upstreams %v: self not dropped", s.fwd.upstreams)
	}

	pa, pb := freePort(t), freePort(t)
	a := newFixtureServer(t, Config{Listen: []string{"127.0.0.1:" + itoa(pa)}, Upstreams: []string{"127.0.0.1:" + itoa(pb)}, upstreamTimeout: time.Second}, fixture()...)
	b := newFixtureServer(t, Config{Listen: []string{"127.0.0.1:" + itoa(pb)}, Upstreams: []string{"127.0.0.1:" + itoa(pa)}, upstreamTimeout: time.Second}, fixture()...)
	for _, s := range []*Server{a, b} {
		if err := s.Listen(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Shutdown)
	}
	addrA := a.Addrs()[0].String()

	// Before any probe: the loop costs one exchange each way, not a storm (shared in-flight questions).
	r := query(t, addrA, "loop1.example.", dns.TypeA)
	if r.Rcode != dns.RcodeServerFailure {
		t.Errorf("looping question: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.fwd.probeLoops(ctx)
	go b.fwd.probeLoops(ctx)
	deadline := time.Now().Add(3 * time.Second)
	// Once one side stops forwarding, the other's probe no longer comes back: one detection breaks the loop.
	for !(a.fwd.upstreams[0].looping.Load() || b.fwd.upstreams[0].looping.Load()) {
		if time.Now().After(deadline) {
			t.Fatal("loop not detected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, s := range []*Server{a, b} {
		start := time.Now()
		r = query(t, s.Addrs()[0].String(), "loop2.example.", dns.TypeA)
		if r.Rcode != dns.RcodeServerFailure || time.Since(start) > 500*time.Millisecond {
			t.Errorf("after detection: %s in %v, want SERVFAIL at once", dns.RcodeToString[r.Rcode], time.Since(start))
		}
	}
	// Cluster names are unaffected.
	check(t, testCase{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"}},
		query(t, addrA, "svc1.testns.svc.cluster.local.", dns.TypeA))
}

// A healthy upstream passes the probe.
func TestLoopProbeHealthy(t *testing.T) {
	up := startUpstream(t, zoneAnswers)
	s, _ := startServer(t, Config{Upstreams: []string{up.addr}}, fixture()...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.fwd.probeLoops(ctx); close(done) }()
	deadline := time.Now().Add(2 * time.Second)
	for up.queries.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	<-done
	if up.queries.Load() != 1 || s.fwd.upstreams[0].looping.Load() {
		t.Errorf("probe: %d queries upstream, looping %v", up.queries.Load(), s.fwd.upstreams[0].looping.Load())
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestResolvConf(t *testing.T) {
	rc := parseResolvConf([]byte("# comment\nnameserver 10.0.0.2\nnameserver 127.0.0.53 ; stub\nnameserver fd00::53\nsearch Corp.Example. example.com\noptions ndots:2\n"))
	if len(rc.nameservers) != 3 || strings.Join(rc.search, " ") != "corp.example. example.com." {
		t.Fatalf("%+v", rc)
	}
	dir := t.TempDir()
	stub := filepath.Join(dir, "resolv.conf")
	real := filepath.Join(dir, "real.conf")
	os.WriteFile(stub, []byte("nameserver 127.0.0.53\nsearch lan.\n"), 0o644)
	os.WriteFile(real, []byte("nameserver 192.0.2.53\nnameserver 10.96.0.10\nsearch lan.\n"), 0o644)
	old := resolvConfPaths
	defer func() { resolvConfPaths = old }()
	resolvConfPaths = []string{stub, real}
	ups, search := defaultUpstreams([]netip.Addr{netip.MustParseAddr("10.96.0.10")})
	if strings.Join(ups, ",") != "192.0.2.53:53" || strings.Join(search, ",") != "lan." {
		t.Errorf("upstreams %v search %v", ups, search)
	}
	resolvConfPaths = []string{filepath.Join(dir, "missing")}
	if ups, _ := defaultUpstreams(nil); len(ups) != 0 {
		t.Errorf("no resolv.conf: %v", ups)
	}
}

// Autopath: a pod's first search-path expansion gets the answer of its whole search.
func TestAutopath(t *testing.T) {
	up := startUpstream(t, zoneAnswers)
	objs := append(fixture(), testPod("testns", "client", "", "", "127.0.0.1", true))
	s := newFixtureServer(t, Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{up.addr}, Autopath: true}, objs...)
	s.transport.handler.(*router).autopath.search = []string{"corp.test."} // the node's search path
	if err := s.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	addr := s.Addrs()[0].String()
	runTableAt(t, addr, []testCase{
		// example.com from a pod in testns: found upstream at the end of the search.
		{qname: "www.example.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
			"www.example.testns.svc.cluster.local. 60 IN CNAME www.example.",
			"www.example. 60 IN A 192.0.2.1",
		}},
		// "kubernetes.default": found at the second element.
		{qname: "kubernetes.default.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
			"kubernetes.default.testns.svc.cluster.local. 5 IN CNAME kubernetes.default.svc.cluster.local.",
			"kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1",
		}},
		// Found at once: no CNAME.
		{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"}},
		// Found nowhere: the first answer, as is.
		{qname: "nothere.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
		// Not the pod's namespace: no search.
		{qname: "www.example.default.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	})
	if n := up.count("www.example.corp.test."); n != 1 {
		t.Errorf("node search domain asked %d times, want 1", n)
	}
}

func runTableAt(t *testing.T, addr string, cases []testCase) {
	t.Helper()
	for _, tc := range cases {
		check(t, tc, exchange(t, "udp", addr, tc.msg()))
	}
}
