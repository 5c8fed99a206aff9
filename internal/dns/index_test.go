package dns

import (
	"math/rand"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Answers do not depend on the order events arrive in: the table holds for any order of the fixture.
func TestEventOrder(t *testing.T) {
	for i := 0; i < 20; i++ {
		objs := fixture()
		rand.Shuffle(len(objs), func(i, j int) { objs[i], objs[j] = objs[j], objs[i] })
		s := newFixtureServer(t, Config{}, objs...)
		s.kube.external = stubExternal
		runTable(t, s.transport.handler, specCases)
		if t.Failed() {
			t.Fatalf("order %d failed", i)
		}
	}
}

// remove deletes objects the way delete events do: with a newly transformed copy.
func remove(s *Server, objs ...runtime.Object) {
	tr := &transformer{strs: newInterner(), podIPs: s.ix.indexPods}
	for _, o := range objs {
		slim, _ := tr.transform(o)
		switch v := slim.(type) {
		case *service:
			s.ix.setService(v, nil)
		case *slice:
			s.ix.setSlice(v, nil)
		case *pod:
			s.ix.setPod(v, nil)
		case *podStub:
			s.ix.counts[countPods].Add(-1)
		case *namespace:
			s.ix.setNamespace(v.name, false)
		}
	}
}

// update replaces old by cur the way update events do (old is the stored object).
func update(s *Server, old, cur runtime.Object) {
	tr := &transformer{strs: newInterner(), podIPs: s.ix.indexPods}
	o, _ := tr.transform(old)
	c, _ := tr.transform(cur)
	switch v := c.(type) {
	case *service:
		s.ix.setService(o.(*service), v)
	case *slice:
		s.ix.setSlice(o.(*slice), v)
	case *pod:
		s.ix.setPod(o.(*pod), v)
	}
}

func TestIndexUpdates(t *testing.T) {
	httpPort := []discoveryv1.EndpointPort{epPort("http", corev1.ProtocolTCP, 80)}
	sl := epSlice("app", "api", "api-1", httpPort, ep("10.1.0.1", true, ""), ep("10.1.0.2", true, ""))
	svc := headless("app", "api", tcp("http", 80))
	s := newFixtureServer(t, Config{}, ns("app"), sl) // the slice before its service
	h := s.transport.handler
	nx := func(name string, qtype uint16) testCase {
		return testCase{qname: name, qtype: qtype, rcode: dns.RcodeNameError, ns: []string{testSOA}}
	}
	check(t, nx("api.app.svc.cluster.local.", dns.TypeA), serve(t, h, nx("api.app.svc.cluster.local.", dns.TypeA).msg()))

	feed(s, svc)
	both := testCase{qname: "api.app.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
		"api.app.svc.cluster.local. 5 IN A 10.1.0.1", "api.app.svc.cluster.local. 5 IN A 10.1.0.2"}}
	runTable(t, h, []testCase{both})

	// An endpoint goes away: its address and its PTR go too.
	sl2 := epSlice("app", "api", "api-1", httpPort, ep("10.1.0.1", true, ""), ep("10.1.0.3", true, ""))
	update(s, sl, sl2)
	runTable(t, h, []testCase{
		{qname: "api.app.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
			"api.app.svc.cluster.local. 5 IN A 10.1.0.1", "api.app.svc.cluster.local. 5 IN A 10.1.0.3"}},
		{qname: "3.0.1.10.in-addr.arpa.", qtype: dns.TypePTR, answer: []string{"3.0.1.10.in-addr.arpa. 5 IN PTR 10-1-0-3.api.app.svc.cluster.local."}},
		{qname: "2.0.1.10.in-addr.arpa.", qtype: dns.TypePTR, rcode: dns.RcodeServerFailure},
	})

	// The same pod behind a second service: both PTRs; removing one keeps the other.
	other := clusterIP("app", "other", []string{"10.96.5.5"}, tcp("http", 80))
	otherSlice := epSlice("app", "other", "other-1", httpPort, ep("10.1.0.1", true, "pod-a"))
	feed(s, other, otherSlice)
	runTable(t, h, []testCase{{qname: "1.0.1.10.in-addr.arpa.", qtype: dns.TypePTR, answer: []string{
		"1.0.1.10.in-addr.arpa. 5 IN PTR 10-1-0-1.api.app.svc.cluster.local.",
		"1.0.1.10.in-addr.arpa. 5 IN PTR pod-a.other.app.svc.cluster.local.",
	}}})
	remove(s, sl2)
	runTable(t, h, []testCase{
		{qname: "1.0.1.10.in-addr.arpa.", qtype: dns.TypePTR, answer: []string{"1.0.1.10.in-addr.arpa. 5 IN PTR pod-a.other.app.svc.cluster.local."}},
		nx("api.app.svc.cluster.local.", dns.TypeA), // headless without endpoints
	})

	// A cluster IP changes: the old PTR goes.
	other2 := clusterIP("app", "other", []string{"10.96.5.6"}, tcp("http", 80))
	update(s, other, other2)
	runTable(t, h, []testCase{
		{qname: "6.5.96.10.in-addr.arpa.", qtype: dns.TypePTR, answer: []string{"6.5.96.10.in-addr.arpa. 5 IN PTR other.app.svc.cluster.local."}},
		{qname: "5.5.96.10.in-addr.arpa.", qtype: dns.TypePTR, rcode: dns.RcodeServerFailure},
		{qname: "other.app.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"other.app.svc.cluster.local. 5 IN A 10.96.5.6"}},
	})

	// The namespace goes: its names go, though its objects are still being deleted.
	remove(s, ns("app"))
	runTable(t, h, []testCase{nx("other.app.svc.cluster.local.", dns.TypeA), nx("app.svc.cluster.local.", dns.TypeA)})
	feed(s, ns("app"))
	runTable(t, h, []testCase{{qname: "other.app.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"other.app.svc.cluster.local. 5 IN A 10.96.5.6"}}})

	// Everything deleted: nothing is left behind in the index.
	remove(s, other2, otherSlice, svc, ns("app"))
	if len(s.ix.namespaces) != 0 || len(s.ix.svcIPs.one) != 0 || len(s.ix.epIPs.one) != 0 || len(s.ix.epIPs.more) != 0 {
		t.Errorf("index not empty: %d namespaces, %d service IPs, %d+%d endpoint IPs",
			len(s.ix.namespaces), len(s.ix.svcIPs.one), len(s.ix.epIPs.one), len(s.ix.epIPs.more))
	}
	for i := range s.ix.counts {
		if n := s.ix.counts[i].Load(); n != 0 {
			t.Errorf("count %d = %d after deleting everything", i, n)
		}
	}
}

func TestFixtureDrainsIndex(t *testing.T) {
	objs := fixture()
	s := newFixtureServer(t, Config{Autopath: true}, objs...)
	rand.Shuffle(len(objs), func(i, j int) { objs[i], objs[j] = objs[j], objs[i] })
	remove(s, objs...)
	if len(s.ix.namespaces) != 0 || len(s.ix.svcIPs.one)+len(s.ix.epIPs.one)+len(s.ix.podIPs.one) != 0 {
		t.Errorf("index not empty after removing the fixture: %d namespaces", len(s.ix.namespaces))
	}
}

func TestTransformIdempotent(t *testing.T) {
	tr := &transformer{strs: newInterner()}
	for _, o := range fixture() {
		slim, err := tr.transform(o)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := tr.transform(slim)
		if again != slim {
			t.Errorf("transform of a slim %T is not the identity", slim)
		}
	}
}

func TestMultimap(t *testing.T) {
	m := newMultimap[int]()
	a := netip.MustParseAddr("10.0.0.1")
	for _, v := range []int{1, 2, 3} {
		m.add(a, v)
	}
	m.remove(a, 1)
	m.remove(a, 3)
	var got []int
	m.each(a, func(v int) bool { got = append(got, v); return true })
	if len(got) != 1 || got[0] != 2 {
		t.Errorf("got %v, want [2]", got)
	}
	m.remove(a, 2)
	if len(m.one) != 0 || len(m.more) != 0 {
		t.Errorf("not empty: %v %v", m.one, m.more)
	}
}
