package dns

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"k8s.io/apimachinery/pkg/runtime"
)

// tcpStub marks a writer as TCP's (no truncation); the sink receives the response.
type tcpStub struct{ net.Conn }

// askWire runs one packed query through s's packet path and returns the packed response, or nil.
func askWire(t testing.TB, s *Server, q []byte, tcp bool, peer netip.AddrPort) []byte {
	t.Helper()
	var out []byte
	w := &writer{t: s.transport, peer: peer, sink: func(b []byte) { out = bytes.Clone(b) }}
	if tcp {
		w.tcp = tcpStub{}
	}
	s.transport.servePacket(context.Background(), q, w)
	return out
}

// queryVariant is how a question is asked.
type queryVariant struct {
	edns   uint16 // EDNS0 buffer size; 0: no EDNS0
	do, cd bool
	noRD   bool
	tcp    bool
}

func (v queryVariant) String() string {
	return fmt.Sprintf("edns=%d do=%v cd=%v rd=%v tcp=%v", v.edns, v.do, v.cd, !v.noRD, v.tcp)
}

func (v queryVariant) pack(t testing.TB, name string, qtype uint16, id uint16) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = id
	m.RecursionDesired = !v.noRD
	m.CheckingDisabled = v.cd
	if v.edns > 0 {
		m.SetEdns0(v.edns, v.do)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var queryVariants = func() []queryVariant {
	var vs []queryVariant
	for _, edns := range []uint16{0, 512, 1232, 4096} {
		for _, do := range []bool{false, true} {
			if do && edns == 0 {
				continue
			}
			for _, tcp := range []bool{false, true} {
				vs = append(vs, queryVariant{edns: edns, do: do, tcp: tcp}, queryVariant{edns: edns, do: do, tcp: tcp, cd: true, noRD: true})
			}
		}
	}
	return vs
}()

// spell returns name with letters in upper case where rng says so (DNS 0x20).
func spell(rng *rand.Rand, name string) string {
	b := []byte(name)
	for i, c := range b {
		if 'a' <= c && c <= 'z' && rng.Intn(2) == 0 {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// sameAnswer fails unless got (served from the packed cache) answers q as want (built afresh) does: the
// same header, the question echoed byte for byte, the same records in the same order. Names may differ
// in case only, except that answer records to which the fresh response gives the question's spelling
// have it in both.
func sameAnswer(t testing.TB, what string, q, got, want []byte) {
	t.Helper()
	if (got == nil) != (want == nil) {
		t.Errorf("%s: response %v, fresh response %v", what, got != nil, want != nil)
		return
	}
	if got == nil {
		return
	}
	var g, w, qm dns.Msg
	if err := g.Unpack(got); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := w.Unpack(want); err != nil {
		t.Fatalf("%s: fresh: %v", what, err)
	}
	if err := qm.Unpack(q); err != nil {
		t.Fatalf("%s: query: %v", what, err)
	}
	if len(w.Question) == 0 { // a bare header: NOTIMP, FORMERR
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got  %x\n want %x", what, got, want)
		}
		return
	}
	if g.MsgHdr != w.MsgHdr {
		t.Errorf("%s: header\n got  %+v\n want %+v", what, g.MsgHdr, w.MsgHdr)
	}
	if len(g.Question) != 1 || g.Question[0] != qm.Question[0] || len(w.Question) != 1 || w.Question[0] != qm.Question[0] {
		t.Errorf("%s: question %v (fresh %v), asked %v", what, g.Question, w.Question, qm.Question)
	}
	qname := qm.Question[0].Name
	section := func(name string, gs, ws []dns.RR, owners bool) {
		if len(gs) != len(ws) {
			t.Errorf("%s: %s section: %d records, fresh %d\n%s\n%s", what, name, len(gs), len(ws), &g, &w)
			return
		}
		for i := range gs {
			if !strings.EqualFold(gs[i].String(), ws[i].String()) {
				t.Errorf("%s: %s record %d:\n got  %s\n want %s", what, name, i, gs[i], ws[i])
			}
			if owners && ws[i].Header().Name == qname && gs[i].Header().Name != qname {
				t.Errorf("%s: %s record %d owned by %s, want the question's spelling %s", what, name, i, gs[i].Header().Name, qname)
			}
		}
	}
	section("answer", g.Answer, w.Answer, true)
	section("authority", g.Ns, w.Ns, false)
	section("additional", g.Extra, w.Extra, false)
}

// packedFixture is the fixture with a large headless service and an ExternalName to an upstream name.
func packedFixture() []runtime.Object {
	return append(append(fixture(), bigService(60)...), externalName("testns", "ext2", "ext.example"))
}

// packedQuestions are the questions of the comparison tests: every kind of answer the zone and the
// forwarder give, positive and negative, small and larger than 512 and 1232 bytes.
var packedQuestions = []struct {
	name  string
	qtype uint16
}{
	{"svc1.testns.svc.cluster.local.", dns.TypeA},
	{"svc1.testns.svc.cluster.local.", dns.TypeAAAA},
	{"svc1.testns.svc.cluster.local.", dns.TypeSRV},
	{"svc1.testns.svc.cluster.local.", dns.TypeTXT},
	{"dual.testns.svc.cluster.local.", dns.TypeAAAA},
	{"hdls1.testns.svc.cluster.local.", dns.TypeA},
	{"_http._tcp.hdls1.testns.svc.cluster.local.", dns.TypeSRV},
	{"web-0.web.testns.svc.cluster.local.", dns.TypeA},
	{"_http._tcp.web.testns.svc.cluster.local.", dns.TypeSRV},
	{"mypod.sub.testns.svc.cluster.local.", dns.TypeA},
	{"big.testns.svc.cluster.local.", dns.TypeA},
	{"nope.testns.svc.cluster.local.", dns.TypeA},
	{"www.example.com.testns.svc.cluster.local.", dns.TypeA},
	{"testns.svc.cluster.local.", dns.TypeA},
	{"cluster.local.", dns.TypeSOA},
	{"cluster.local.", dns.TypeNS},
	{"dns-version.cluster.local.", dns.TypeTXT},
	{"external.testns.svc.cluster.local.", dns.TypeA},
	{"ext2.testns.svc.cluster.local.", dns.TypeA},
	{"external-to-service.testns.svc.cluster.local.", dns.TypeA},
	{"1.0.0.10.in-addr.arpa.", dns.TypePTR},
	{"5.0.244.10.in-addr.arpa.", dns.TypePTR},
	{"1.2.0.192.in-addr.arpa.", dns.TypePTR},
	{"www.example.", dns.TypeA},
	{"www.example.", dns.TypeAAAA},
	{"nope.example.", dns.TypeA},
	{"big.example.", dns.TypeTXT},
	{".", dns.TypeNS},
	{"cluster.local.", dns.TypeAXFR},
	{"svc1.testns.svc.cluster.local.", dns.TypeOPT},
}

// A response served from the packed cache is the response built afresh for the same query, whatever
// the spelling of the query that filled the entry and of the one served, its ID, RD and CD bits, EDNS0
// buffer size and DO bit, and its transport.
func TestPackedEqualsFresh(t *testing.T) {
	up := startUpstream(t, zoneAnswers)
	clock := &fakeClock{t: testNow}
	cached := newFixtureServer(t, Config{Upstreams: []string{up.addr}, now: clock.now}, packedFixture()...)
	fresh := newFixtureServer(t, Config{Upstreams: []string{up.addr}, now: clock.now, PackedCacheBytes: -1}, packedFixture()...)
	if fresh.packed != nil || cached.packed == nil {
		t.Fatal("PackedCacheBytes does not switch the cache")
	}
	rng := rand.New(rand.NewSource(1))
	kept := 0
	for _, pq := range packedQuestions {
		for _, v := range queryVariants {
			what := fmt.Sprintf("%s/%s %s", pq.name, dns.TypeToString[pq.qtype], v)
			// Filled by a query spelled otherwise, with another ID and the other RD bit.
			fv := v
			fv.noRD = !v.noRD
			fill := fv.pack(t, spell(rng, pq.name), pq.qtype, uint16(rng.Intn(1<<16)))
			askWire(t, cached, fill, v.tcp, netip.AddrPort{})
			q := v.pack(t, spell(rng, pq.name), pq.qtype, uint16(rng.Intn(1<<16)))
			var wq wireQuery
			if parseWireQuery(q, &wq) {
				if e := cached.packed.get(&wq); e != nil {
					if _, ok := cached.packed.fresh(e); ok {
						kept++
					}
				}
			}
			sameAnswer(t, what, q, askWire(t, cached, q, v.tcp, netip.AddrPort{}), askWire(t, fresh, q, v.tcp, netip.AddrPort{}))
		}
	}
	// Everything but the errors (AXFR, OPT) and big.example (over 4096 bytes over UDP) is kept.
	if min := (len(packedQuestions) - 2) * len(queryVariants) * 9 / 10; kept < min {
		t.Errorf("%d responses kept, want at least %d", kept, min)
	}
}

// The specification's table holds when the answers come from the packed cache: each question is asked
// twice, and both answers checked.
func TestPackedSpec(t *testing.T) {
	s := newFixtureServer(t, Config{}, fixture()...)
	s.kube.external = stubExternal // not kept: the stub gives no stamp
	for _, tc := range specCases {
		for i := 0; i < 2; i++ {
			for _, edns := range []uint16{0, 1232} {
				m := tc.msg()
				if edns > 0 && m.IsEdns0() == nil {
					m.SetEdns0(edns, false)
				}
				q, err := m.Pack()
				if err != nil {
					t.Fatal(err)
				}
				out := askWire(t, s, q, false, netip.AddrPort{})
				r := new(dns.Msg)
				if err := r.Unpack(out); err != nil {
					t.Fatalf("%s: %v", tc, err)
				}
				check(t, tc, r)
			}
		}
	}
	if n, _ := s.PackedCacheStats(); n == 0 {
		t.Error("nothing kept")
	}
}

// Upstream TTLs count down in answers served from the packed cache, exactly as from the forwarder's
// cache, and the answer expires with it; the zone's own records keep their TTL.
func TestPackedTTLCountdown(t *testing.T) {
	up := startUpstream(t, zoneAnswers)
	clock := &fakeClock{t: testNow}
	s := newFixtureServer(t, Config{Upstreams: []string{up.addr}, now: clock.now}, packedFixture()...)
	soa := func(ttl int) string {
		return fmt.Sprintf("example. %d IN SOA ns.example. admin.example. 1 7200 1800 86400 30", ttl)
	}
	steps := []struct {
		advance time.Duration
		tc      testCase
		asked   int // times the upstream has been asked for the name, after the step
	}{
		{0, testCase{qname: "www.example.", qtype: dns.TypeA, answer: []string{"www.example. 60 IN A 192.0.2.1"}}, 1},
		{0, testCase{qname: "www.example.", qtype: dns.TypeA, answer: []string{"www.example. 60 IN A 192.0.2.1"}}, 1},
		{999 * time.Millisecond, testCase{qname: "WWW.example.", qtype: dns.TypeA, answer: []string{"WWW.example. 60 IN A 192.0.2.1"}}, 1},
		{time.Millisecond, testCase{qname: "www.EXAMPLE.", qtype: dns.TypeA, answer: []string{"www.EXAMPLE. 59 IN A 192.0.2.1"}}, 1},
		{49 * time.Second, testCase{qname: "www.example.", qtype: dns.TypeA, answer: []string{"www.example. 10 IN A 192.0.2.1"}}, 1},
		{9 * time.Second, testCase{qname: "wWw.example.", qtype: dns.TypeA, answer: []string{"wWw.example. 1 IN A 192.0.2.1"}}, 1},
		{time.Second, testCase{qname: "www.example.", qtype: dns.TypeA, answer: []string{"www.example. 60 IN A 192.0.2.1"}}, 2},

		{0, testCase{qname: "nope.example.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{soa(300)}}, 1},
		{20 * time.Second, testCase{qname: "nope.example.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{soa(280)}}, 1},
		{10 * time.Second, testCase{qname: "nope.example.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{soa(300)}}, 2},

		// A CNAME chased out of the zone: the zone's CNAME keeps its TTL, the upstream's record counts down.
		{0, testCase{qname: "ext2.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
			"ext2.testns.svc.cluster.local. 5 IN CNAME ext.example.", "ext.example. 120 IN A 192.0.2.2"}}, 1},
		{30 * time.Second, testCase{qname: "EXT2.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
			"EXT2.testns.svc.cluster.local. 5 IN CNAME ext.example.", "ext.example. 90 IN A 192.0.2.2"}}, 1},
		{90 * time.Second, testCase{qname: "ext2.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
			"ext2.testns.svc.cluster.local. 5 IN CNAME ext.example.", "ext.example. 120 IN A 192.0.2.2"}}, 2},
	}
	for i, st := range steps {
		clock.advance(st.advance)
		for _, edns := range []uint16{0, 1232} {
			v := queryVariant{edns: edns}
			out := askWire(t, s, v.pack(t, st.tc.qname, st.tc.qtype, uint16(i)), false, netip.AddrPort{})
			r := new(dns.Msg)
			if err := r.Unpack(out); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			check(t, st.tc, r)
		}
		name := st.tc.qname
		if strings.HasPrefix(strings.ToLower(name), "ext2.") {
			name = "ext.example."
		}
		if n := up.count(name); n != st.asked {
			t.Errorf("step %d: upstream asked %d times for %s, want %d", i, n, name, st.asked)
		}
	}
}

// A change to the index is seen in the next answer, whatever the packed cache holds.
func TestPackedIndexChange(t *testing.T) {
	s := newFixtureServer(t, Config{}, fixture()...)
	soaAt := func(serial int64) string {
		return fmt.Sprintf("cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. %d 7200 1800 86400 5", serial)
	}
	steps := []struct {
		what   string
		change func()
		tc     testCase
	}{
		{"before", func() {}, testCase{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"}}},
		{"cluster IP changed", func() {
			update(s, clusterIP("testns", "svc1", []string{"10.0.0.1"}, tcp("http", 80)), clusterIP("testns", "svc1", []string{"10.0.0.99"}, tcp("http", 80)))
		}, testCase{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"svc1.testns.svc.cluster.local. 5 IN A 10.0.0.99"}}},
		{"reverse of the old IP", func() {}, testCase{qname: "1.0.0.10.in-addr.arpa.", qtype: dns.TypePTR, rcode: dns.RcodeServerFailure}},
		{"reverse of the new IP", func() {}, testCase{qname: "99.0.0.10.in-addr.arpa.", qtype: dns.TypePTR, answer: []string{"99.0.0.10.in-addr.arpa. 5 IN PTR svc1.testns.svc.cluster.local."}}},
		{"service deleted", func() { remove(s, clusterIP("testns", "svc1", []string{"10.0.0.99"}, tcp("http", 80))) },
			testCase{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}}},
		{"reverse after the delete", func() {}, testCase{qname: "99.0.0.10.in-addr.arpa.", qtype: dns.TypePTR, rcode: dns.RcodeServerFailure}},
		{"service created", func() { feed(s, clusterIP("testns", "svc1", []string{"10.0.0.1"}, tcp("http", 80))) },
			testCase{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"}}},
		{"endpoint added", func() {
			feed(s, epSlice("testns", "hdls1", "hdls1-v4b", nil, ep("172.0.0.9", true, "")))
		}, testCase{qname: "hdls1.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
			"hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2", "hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.3",
			"hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4", "hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5",
			"hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.9"}}},
		{"namespace deleted", func() { remove(s, ns("empty")) },
			testCase{qname: "empty.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}}},
		{"a second later, a change moves the serial of negative answers", func() {
			s.ix.now = func() time.Time { return testNow.Add(time.Second) }
			feed(s, ns("empty"))
		}, testCase{qname: "nope.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{soaAt(testSerial + 1)}}},
	}
	// The reverse zone of 10.0.0.0/8 has no upstream here: a PTR the index does not answer is SERVFAIL.
	for _, st := range steps {
		// Asked before the change too, so that the cache holds the old answer.
		askWire(t, s, st.tc.msgPacked(t), false, netip.AddrPort{})
		st.change()
		for i := 0; i < 2; i++ {
			r := new(dns.Msg)
			if err := r.Unpack(askWire(t, s, st.tc.msgPacked(t), false, netip.AddrPort{})); err != nil {
				t.Fatalf("%s: %v", st.what, err)
			}
			check(t, st.tc, r)
		}
		if t.Failed() {
			t.Fatalf("after %q", st.what)
		}
	}
}

func (tc testCase) msgPacked(t testing.TB) []byte {
	b, err := tc.msg().Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A response kept for a client with a large EDNS0 buffer is not served to one with a smaller buffer:
// that one gets it truncated.
func TestPackedLargeAnswer(t *testing.T) {
	s := newFixtureServer(t, Config{}, append(fixture(), bigService(100)...)...)
	name := "big.testns.svc.cluster.local."
	for _, c := range []struct {
		v         queryVariant
		truncated bool
	}{
		{queryVariant{edns: 4096}, false},
		{queryVariant{edns: 4096}, false},
		{queryVariant{edns: 1232}, true},
		{queryVariant{edns: 512}, true},
		{queryVariant{edns: 4096}, false},
		{queryVariant{}, true},
		{queryVariant{tcp: true}, false},
		{queryVariant{}, true},
	} {
		out := askWire(t, s, c.v.pack(t, name, dns.TypeA, 7), c.v.tcp, netip.AddrPort{})
		r := new(dns.Msg)
		if err := r.Unpack(out); err != nil {
			t.Fatal(err)
		}
		limit := max(int(c.v.edns), dns.MinMsgSize)
		if c.v.tcp {
			limit = dns.MaxMsgSize
		}
		if r.Truncated != c.truncated || len(out) > limit || (!c.truncated && len(r.Answer) != 100) {
			t.Errorf("%v: %d bytes, %d answers, TC %v; want TC %v within %d bytes", c.v, len(out), len(r.Answer), r.Truncated, c.truncated, limit)
		}
	}
}

// Autopath answers a pod's search-path expansions for that pod: the packed cache never answers them
// with what it kept for another client, nor keeps the pod's answer for others.
func TestPackedAutopath(t *testing.T) {
	up := startUpstream(t, zoneAnswers)
	objs := append(fixture(), testPod("testns", "client", "", "", "10.244.9.9", true))
	s := newFixtureServer(t, Config{Upstreams: []string{up.addr}, Autopath: true}, objs...)
	podAddr := netip.MustParseAddrPort("10.244.9.9:5353")
	other := netip.MustParseAddrPort("10.244.9.10:5353")
	nx := testCase{qname: "www.example.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}}
	found := testCase{qname: "www.example.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
		"www.example.testns.svc.cluster.local. 60 IN CNAME www.example.",
		"www.example. 60 IN A 192.0.2.1",
	}}
	for i, c := range []struct {
		peer netip.AddrPort
		tc   testCase
	}{{other, nx}, {other, nx}, {podAddr, found}, {podAddr, found}, {other, nx}, {podAddr, found}} {
		r := new(dns.Msg)
		if err := r.Unpack(askWire(t, s, c.tc.msgPacked(t), false, c.peer)); err != nil {
			t.Fatal(err)
		}
		check(t, c.tc, r)
		if t.Failed() {
			t.Fatalf("query %d from %v", i, c.peer)
		}
	}
	var wq wireQuery
	if !parseWireQuery(nx.msgPacked(t), &wq) || !s.transport.bypass(podAddr, wq.name()) || s.transport.bypass(other, wq.name()) {
		t.Error("bypass does not tell the pod's expansions")
	}
}

func TestParseWireQuery(t *testing.T) {
	base := func(edit func(*dns.Msg)) []byte {
		m := new(dns.Msg)
		m.SetQuestion("Svc1.TestNS.svc.cluster.local.", dns.TypeA)
		if edit != nil {
			edit(m)
		}
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var ref wireQuery
	if !parseWireQuery(base(nil), &ref) {
		t.Fatal("plain query not parsed")
	}
	if string(ref.name()) != "\x04svc1\x06testns\x03svc\x07cluster\x05local\x00" || ref.qtype != dns.TypeA || ref.edns || ref.size != 512 {
		t.Fatalf("parsed %q %v", ref.name(), ref)
	}
	compressed := base(nil)
	compressed = append(compressed[:12], 0xc0, 12, 0, 1, 0, 1)
	for _, c := range []struct {
		name    string
		pkt     []byte
		ok      bool
		sameKey bool
		size    int
	}{
		{"another spelling", base(func(m *dns.Msg) { m.Question[0].Name = "svc1.testns.SVC.cluster.local." }), true, true, 512},
		{"another ID, RD off", base(func(m *dns.Msg) { m.Id = 4711; m.RecursionDesired = false }), true, true, 512},
		{"CD", base(func(m *dns.Msg) { m.CheckingDisabled = true }), true, false, 512},
		{"EDNS0", base(func(m *dns.Msg) { m.SetEdns0(1232, false) }), true, false, 1232},
		{"EDNS0 small buffer", base(func(m *dns.Msg) { m.SetEdns0(100, false) }), true, false, 512},
		{"EDNS0 huge buffer", base(func(m *dns.Msg) { m.SetEdns0(65000, false) }), true, false, maxUDPSize},
		{"EDNS0 DO", base(func(m *dns.Msg) { m.SetEdns0(1232, true) }), true, false, 1232},
		{"AAAA", base(func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAAAA }), true, false, 512},
		{"EDNS0 version 1", base(func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }), false, false, 0},
		{"EDNS0 option", base(func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		}), false, false, 0},
		{"CHAOS", base(func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), false, false, 0},
		{"compressed name", compressed, false, false, 0},
		{"truncated", base(nil)[:20], false, false, 0},
		{"no class", base(nil)[:len(base(nil))-2], false, false, 0},
		{"an answer record", base(func(m *dns.Msg) { rr, _ := dns.NewRR("x. 1 IN A 1.2.3.4"); m.Answer = []dns.RR{rr} }), false, false, 0},
		{"two additional records", base(func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			rr, _ := dns.NewRR("x. 1 IN A 1.2.3.4")
			m.Extra = append(m.Extra, rr)
		}), false, false, 0},
	} {
		var q wireQuery
		ok := parseWireQuery(c.pkt, &q)
		if ok != c.ok {
			t.Errorf("%s: parsed %v, want %v", c.name, ok, c.ok)
			continue
		}
		if !ok {
			continue
		}
		if same := string(q.key[:q.klen]) == string(ref.key[:ref.klen]); same != c.sameKey {
			t.Errorf("%s: same key %v, want %v", c.name, same, c.sameKey)
		}
		if q.size != c.size {
			t.Errorf("%s: size %d, want %d", c.name, q.size, c.size)
		}
	}
}

// The packed cache stays within its bound, keeping what is asked again.
func TestPackedBound(t *testing.T) {
	const bound = 64 << 10
	s := newFixtureServer(t, Config{PackedCacheBytes: bound}, fixture()...)
	hot := testCase{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA}.msgPacked(t)
	for i := 0; i < 5000; i++ {
		askWire(t, s, testCase{qname: fmt.Sprintf("nope%d.testns.svc.cluster.local.", i), qtype: dns.TypeA}.msgPacked(t), false, netip.AddrPort{})
		askWire(t, s, hot, false, netip.AddrPort{})
	}
	n, size := s.PackedCacheStats()
	if size > bound || n == 0 {
		t.Errorf("%d entries, %d bytes; bound %d", n, size, bound)
	}
	var wq wireQuery
	parseWireQuery(hot, &wq)
	if s.packed.get(&wq) == nil {
		t.Error("the question asked all along was evicted")
	}
}

// FuzzPackedEqualsFresh asks a server with the packed cache each input twice, and one without it once:
// the second answer, from the cache when it was kept, must be the fresh one. Run with
// go test -fuzz FuzzPackedEqualsFresh ./internal/dns.
func FuzzPackedEqualsFresh(f *testing.F) {
	objs := append(fixture(), bigService(120)...)
	cached := newFixtureServer(f, Config{PodRecords: PodsInsecure}, objs...)
	fresh := newFixtureServer(f, Config{PodRecords: PodsInsecure, PackedCacheBytes: -1}, objs...)
	cached.kube.external, fresh.kube.external = stubExternal, stubExternal
	for _, tc := range specCases {
		for _, v := range []queryVariant{{}, {edns: 1232, do: true}, {edns: 4096, cd: true, noRD: true}} {
			f.Add(v.pack(f, tc.qname, tc.qtype, 1), "")
		}
	}
	f.Add(queryVariant{edns: 1232}.pack(f, "big.testns.svc.cluster.local.", dns.TypeA, 2), "Big.TestNS.svc.Cluster.local.")
	f.Add(queryVariant{}.pack(f, "web-0.web.testns.svc.cluster.local.", dns.TypeA, 3), "WEB-0.web.testns.svc.cluster.local.")
	f.Fuzz(func(t *testing.T, q []byte, respell string) {
		askWire(t, cached, q, false, netip.AddrPort{})
		// Asked again, possibly spelled otherwise: same length, letters may change case.
		if len(respell) > 0 && len(q) > 12 {
			q = bytes.Clone(q)
			for i := 0; i < len(respell) && 12+i < len(q); i++ {
				if c := q[12+i]; strings.EqualFold(string(c), string(respell[i])) {
					q[12+i] = respell[i]
				}
			}
		}
		got := askWire(t, cached, q, false, netip.AddrPort{})
		want := askWire(t, fresh, q, false, netip.AddrPort{})
		if got == nil || want == nil || len(q) < 12 {
			if (got == nil) != (want == nil) {
				t.Fatalf("response %v, fresh response %v", got != nil, want != nil)
			}
			return
		}
		var qm dns.Msg
		if qm.Unpack(q) != nil || len(qm.Question) != 1 {
			if !bytes.Equal(got, want) {
				t.Fatalf("to a query that does not parse:\n got  %x\n want %x", got, want)
			}
			return
		}
		sameAnswer(t, "fuzz", q, got, want)
	})
}

// What the forwarder does not cache is not kept packed either: each question goes upstream again.
func TestPackedNotKept(t *testing.T) {
	var serial atomic.Int32
	up := startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		switch strings.ToLower(r.Question[0].Name) {
		case "zero.example.":
			rr, _ := dns.NewRR(fmt.Sprintf("%s 0 IN A 192.0.2.%d", r.Question[0].Name, serial.Add(1)))
			m.Answer = []dns.RR{rr}
		default:
			m.Rcode = dns.RcodeServerFailure
		}
		w.WriteMsg(m)
	})
	s := newFixtureServer(t, Config{Upstreams: []string{up.addr}}, fixture()...)
	for _, c := range []struct {
		name  string
		rcode int
	}{{"zero.example.", dns.RcodeSuccess}, {"fail.example.", dns.RcodeServerFailure}} {
		var answers []string
		for i := 0; i < 3; i++ {
			r := new(dns.Msg)
			if err := r.Unpack(askWire(t, s, testCase{qname: c.name, qtype: dns.TypeA}.msgPacked(t), false, netip.AddrPort{})); err != nil {
				t.Fatal(err)
			}
			if r.Rcode != c.rcode {
				t.Errorf("%s: %s, want %s", c.name, dns.RcodeToString[r.Rcode], dns.RcodeToString[c.rcode])
			}
			for _, rr := range r.Answer {
				answers = append(answers, rr.String())
			}
		}
		if n := up.count(c.name); n != 3 {
			t.Errorf("%s: upstream asked %d times, want 3 (answers %v)", c.name, n, answers)
		}
	}
}

// Readers hit, fill and evict the packed cache while the index changes under them: every answer is one
// the index held at some point, and once the changes stop, the last one is served.
func TestPackedConcurrent(t *testing.T) {
	s := newFixtureServer(t, Config{PackedCacheBytes: 16 << 10}, fixture()...)
	ips := []string{"10.0.0.1", "10.0.0.2"}
	svc := func(i int) runtime.Object {
		return clusterIP("testns", "svc1", []string{ips[i%2]}, tcp("http", 80))
	}
	done := make(chan struct{})
	var changes sync.WaitGroup
	changes.Add(1)
	go func() {
		defer changes.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			update(s, svc(i), svc(i+1))
		}
	}()
	var readers sync.WaitGroup
	for g := 0; g < 4; g++ {
		readers.Add(1)
		go func(g int) {
			defer readers.Done()
			rng := rand.New(rand.NewSource(int64(g)))
			for i := 0; i < 2000; i++ {
				name := "svc1.testns.svc.cluster.local."
				if i%2 == 1 {
					name = fmt.Sprintf("nope%d.testns.svc.cluster.local.", rng.Intn(300))
				}
				r := new(dns.Msg)
				if err := r.Unpack(askWire(t, s, queryVariant{edns: uint16(512 * (i % 3))}.pack(t, spell(rng, name), dns.TypeA, uint16(i)), false, netip.AddrPort{})); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					if len(r.Answer) != 1 || !slices.Contains(ips, r.Answer[0].(*dns.A).A.String()) {
						t.Errorf("answer %v", r.Answer)
						return
					}
				} else if r.Rcode != dns.RcodeNameError {
					t.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
					return
				}
			}
		}(g)
	}
	readers.Wait()
	close(done)
	changes.Wait()
	// The writer stopped after an update to an unknown one of the two IPs: ask the index directly.
	want := s.kube.lookup("svc1.testns.svc.cluster.local.", "svc1.testns.svc.cluster.local.", dns.TypeA).answer[0].(*dns.A).A.String()
	for i := 0; i < 2; i++ {
		check(t, testCase{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"svc1.testns.svc.cluster.local. 5 IN A " + want}},
			mustUnpack(t, askWire(t, s, testCase{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA}.msgPacked(t), false, netip.AddrPort{})))
	}
}

func mustUnpack(t testing.TB, b []byte) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatal(err)
	}
	return m
}
