package dns

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// startServer serves objs on a random 127.0.0.1 port (UDP and TCP) and returns its address.
func startServer(t testing.TB, cfg Config, objs ...runtime.Object) (*Server, string) {
	t.Helper()
	cfg.Listen = []string{"127.0.0.1:0"}
	s := newFixtureServer(t, cfg, objs...)
	if err := s.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s, s.Addrs()[0].String()
}

func exchange(t testing.TB, net, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: net, Timeout: 2 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s: %v", net, m.Question[0].Name, err)
	}
	return r
}

// bigService is a headless service with n ready endpoints 10.1.x.y.
func bigService(n int) []runtime.Object {
	var eps []discoveryv1.Endpoint
	for i := 0; i < n; i++ {
		eps = append(eps, ep(fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), true, ""))
	}
	return []runtime.Object{headless("testns", "big", tcp("http", 80)),
		epSlice("testns", "big", "big-1", []discoveryv1.EndpointPort{epPort("http", corev1.ProtocolTCP, 80)}, eps...)}
}

func TestUDPAndTCP(t *testing.T) {
	_, addr := startServer(t, Config{}, fixture()...)
	tc := testCase{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"}}
	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, network, addr, tc.msg())
		check(t, tc, r)
		if !r.Authoritative || !r.Response {
			t.Errorf("%s: want an authoritative response, got %v", network, r.MsgHdr)
		}
	}
	// Several queries on one TCP connection, answered in order.
	conn, err := dns.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i, name := range []string{"svc1.testns.svc.cluster.local.", "svc0.testns.svc.cluster.local.", "web-0.web.testns.svc.cluster.local."} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		if err := conn.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
		r, err := conn.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		if r.Id != m.Id || (i == 1) != (r.Rcode == dns.RcodeNameError) {
			t.Errorf("query %d on one connection: %v", i, r)
		}
	}
	// Query is `svcnet dns query`.
	r, err := Query(context.Background(), addr, "web.testns.svc.cluster.local", dns.TypeSRV)
	if err != nil || len(r.Answer) != 4 {
		t.Fatalf("Query: %v %v", r, err)
	}
}

// A large answer is truncated over UDP to the client's buffer (512 bytes without EDNS0) with TC set,
// and comes whole over TCP.
func TestTruncation(t *testing.T) {
	_, addr := startServer(t, Config{}, append(fixture(), bigService(200)...)...)
	q := func(size uint16) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion("big.testns.svc.cluster.local.", dns.TypeA)
		if size > 0 {
			m.SetEdns0(size, false)
		}
		return m
	}
	packed := func(m *dns.Msg) int { m.Compress = true; b, _ := m.Pack(); return len(b) }
	for _, c := range []struct {
		size    uint16
		limit   int
		trunced bool
	}{{0, 512, true}, {512, 512, true}, {1232, 1232, true}, {100, 512, true}, {4096, 4096, false}, {65000, 4096, false}} {
		r := exchange(t, "udp", addr, q(c.size))
		if n := packed(r); n > c.limit || r.Truncated != c.trunced {
			t.Errorf("EDNS0 size %d: %d bytes, %d answers, TC %v; want at most %d bytes, TC %v", c.size, n, len(r.Answer), r.Truncated, c.limit, c.trunced)
		}
		if c.size > 0 && r.IsEdns0() == nil {
			t.Errorf("EDNS0 size %d: no OPT in the response", c.size)
		}
		if c.size == 0 && r.IsEdns0() != nil {
			t.Errorf("no EDNS0 in the query but an OPT in the response")
		}
		if c.trunced && len(r.Answer) == 0 {
			t.Errorf("EDNS0 size %d: truncated to nothing", c.size)
		}
	}
	if r := exchange(t, "tcp", addr, q(0)); len(r.Answer) != 200 || r.Truncated {
		t.Errorf("tcp: %d answers, TC %v; want 200", len(r.Answer), r.Truncated)
	}
	r, err := Query(context.Background(), addr, "big.testns.svc.cluster.local", dns.TypeA)
	if err != nil || len(r.Answer) != 200 {
		t.Errorf("Query falls back to TCP: %d answers, %v", len(r.Answer), err)
	}
}

// rawUDP sends b and returns the response, or nil when none comes within wait.
func rawUDP(t *testing.T, addr string, b []byte, wait time.Duration) []byte {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func packQuery(t *testing.T, edit func(*dns.Msg)) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("svc1.testns.svc.cluster.local.", dns.TypeA)
	m.Id = 0xbeef
	if edit != nil {
		edit(m)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Malformed packets, unknown opcodes and classes get FORMERR, NOTIMP or REFUSED (or nothing, when
// answering could reflect), and the server keeps serving.
func TestBadInput(t *testing.T) {
	_, addr := startServer(t, Config{}, fixture()...)
	valid := packQuery(t, nil)
	header := func(flags, qd, an, ns, ar uint16) []byte {
		b := make([]byte, 12)
		binary.BigEndian.PutUint16(b[0:], 0xbeef)
		binary.BigEndian.PutUint16(b[2:], flags)
		binary.BigEndian.PutUint16(b[4:], qd)
		binary.BigEndian.PutUint16(b[6:], an)
		binary.BigEndian.PutUint16(b[8:], ns)
		binary.BigEndian.PutUint16(b[10:], ar)
		return b
	}
	oversized := append(header(0, 1, 0, 0, 0), make([]byte, 5000)...)
	loop := append(header(0, 1, 0, 0, 0), 0xc0, 12, 0, 1, 0, 1) // a name pointing at itself
	twoOPT := packQuery(t, func(m *dns.Msg) {
		m.SetEdns0(1232, false)
		m.Extra = append(m.Extra, m.Extra[0])
	})
	cases := []struct {
		name  string
		pkt   []byte
		rcode int // -1: no response
	}{
		{"empty", nil, -1},
		{"short", []byte{1, 2, 3, 4, 5}, -1},
		{"a response", packQuery(t, func(m *dns.Msg) { m.Response = true }), -1},
		{"header only", header(0, 0, 0, 0, 0), dns.RcodeFormatError},
		{"two questions", append(header(0, 2, 0, 0, 0), valid[12:]...), dns.RcodeFormatError},
		{"truncated question", valid[:len(valid)-3], dns.RcodeFormatError},
		{"answer records in a query", packQuery(t, func(m *dns.Msg) {
			rr, _ := dns.NewRR("x. 1 IN A 1.2.3.4")
			m.Answer = []dns.RR{rr}
		}), dns.RcodeFormatError},
		{"compression loop", loop, dns.RcodeFormatError},
		{"oversized", oversized, dns.RcodeFormatError},
		{"two OPT records", twoOPT, dns.RcodeFormatError},
		{"NOTIFY", packQuery(t, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), dns.RcodeNotImplemented},
		{"UPDATE", packQuery(t, func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }), dns.RcodeNotImplemented},
		{"STATUS", packQuery(t, func(m *dns.Msg) { m.Opcode = dns.OpcodeStatus }), dns.RcodeNotImplemented},
		{"opcode 9", packQuery(t, func(m *dns.Msg) { m.Opcode = 9 }), dns.RcodeNotImplemented},
		{"CHAOS class", packQuery(t, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), dns.RcodeRefused},
		{"class 4711", packQuery(t, func(m *dns.Msg) { m.Question[0].Qclass = 4711 }), dns.RcodeRefused},
		{"ANY class", packQuery(t, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassANY }), dns.RcodeRefused},
		{"AXFR over UDP", packQuery(t, func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAXFR }), dns.RcodeRefused},
		{"EDNS version 1", packQuery(t, func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }), dns.RcodeBadVers},
		{"unknown type", packQuery(t, func(m *dns.Msg) { m.Question[0].Qtype = 65280 }), dns.RcodeSuccess},
	}
	for _, c := range cases {
		wait := time.Second
		if c.rcode < 0 {
			wait = 200 * time.Millisecond
		}
		resp := rawUDP(t, addr, c.pkt, wait)
		if c.rcode < 0 {
			if resp != nil {
				t.Errorf("%s: got a %d-byte response, want none", c.name, len(resp))
			}
			continue
		}
		if resp == nil {
			t.Errorf("%s: no response, want %s", c.name, dns.RcodeToString[c.rcode])
			continue
		}
		if len(resp) > len(c.pkt) && c.rcode == dns.RcodeFormatError {
			t.Errorf("%s: the error response (%d bytes) is larger than the query (%d)", c.name, len(resp), len(c.pkt))
		}
		m := new(dns.Msg)
		if err := m.Unpack(resp); err != nil {
			t.Errorf("%s: unparseable response: %v", c.name, err)
			continue
		}
		if m.Id != 0xbeef || !m.Response || m.Rcode != c.rcode {
			t.Errorf("%s: got id %#x rcode %s, want id 0xbeef rcode %s", c.name, m.Id, dns.RcodeToString[m.Rcode], dns.RcodeToString[c.rcode])
		}
	}
	// Still serving.
	check(t, testCase{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"}},
		exchange(t, "udp", addr, testCase{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA}.msg()))
	// TCP: a garbage length prefix or a short message closes the connection; the server lives on.
	for _, b := range [][]byte{{0, 3, 1, 2, 3}, {0, 0}, append([]byte{0xff, 0xff}, valid...)} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(b)
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		c.Read(make([]byte, 100))
		c.Close()
	}
	exchange(t, "tcp", addr, testCase{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA}.msg())
}

// The DO bit is mirrored in the response's OPT, whose buffer size is the server's.
func TestEDNS(t *testing.T) {
	_, addr := startServer(t, Config{}, fixture()...)
	r := exchange(t, "udp", addr, testCase{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA, do: true}.msg())
	o := r.IsEdns0()
	if o == nil || !o.Do() || o.UDPSize() != maxUDPSize || o.Version() != 0 {
		t.Fatalf("OPT = %v", o)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, addr := startServer(t, Config{Registerer: reg}, fixture()...)
	for i := 0; i < 3; i++ {
		exchange(t, "udp", addr, testCase{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA}.msg())
	}
	exchange(t, "udp", addr, testCase{qname: "nope.testns.svc.cluster.local.", qtype: dns.TypeAAAA}.msg())
	exchange(t, "tcp", addr, testCase{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeSRV}.msg())
	// A second server on the same registry (the agent restarting it) keeps counting in the same series.
	_, addr2 := startServer(t, Config{Registerer: reg}, fixture()...)
	exchange(t, "udp", addr2, testCase{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA}.msg())
	want := map[string]float64{
		"svcnet_dns_queries_total,rcode=NOERROR,type=A":     4,
		"svcnet_dns_queries_total,rcode=NXDOMAIN,type=AAAA": 1,
		"svcnet_dns_queries_total,rcode=NOERROR,type=SRV":   1,
		"svcnet_dns_query_duration_seconds":                 6,
		"svcnet_dns_objects,kind=service":                   18,
	}
	// A query is counted after its answer is written, so the client can read the last answer
	// before the server has counted it: poll (bounded) instead of reading once.
	var got map[string]float64
	deadline := time.Now().Add(5 * time.Second)
	for {
		got = gather(t, reg)
		match := true
		for k, w := range want {
			match = match && got[k] == w
		}
		if match || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
}

// gather returns every series of reg as "name,label=value,..." -> value (a histogram's sample count).
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += fmt.Sprintf(",%s=%s", l.GetName(), l.GetValue())
			}
			got[key] = value(m)
		}
	}
	return got
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// A slow upstream does not hold up answers from the index.
func TestNeverStall(t *testing.T) {
	var release atomic.Bool
	up := startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		for !release.Load() {
			time.Sleep(10 * time.Millisecond)
		}
		m := new(dns.Msg)
		m.SetReply(r)
		w.WriteMsg(m)
	})
	defer release.Store(true)
	_, addr := startServer(t, Config{Upstreams: []string{up.addr}, Readers: 1}, fixture()...)
	for i := 0; i < 20; i++ {
		go func(i int) {
			m := new(dns.Msg)
			m.SetQuestion(fmt.Sprintf("slow%d.example.", i), dns.TypeA)
			c := &dns.Client{Timeout: 3 * time.Second}
			c.Exchange(m, addr)
		}(i)
	}
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	for i := 0; i < 50; i++ {
		exchange(t, "udp", addr, testCase{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA}.msg())
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("50 cluster queries took %v while the upstream hung", d)
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatal(addr)
	}
}
