package userspace

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/svcnet/svcnet/internal/proxy/model"
)

const testNode = "node-1"

var (
	nodeIP    = netip.MustParseAddr("172.31.0.11")
	npAddrs   = []netip.Addr{localhost, nodeIP}
	ap        = netip.MustParseAddrPort
	addr      = netip.MustParseAddr
	localEP   = ap("10.244.1.5:8080")
	remoteEP  = ap("10.244.2.6:8080")
	bothEPs   = []netip.AddrPort{localEP, remoteEP}
	localOnly = []netip.AddrPort{localEP}
)

func svc(name, clusterIP string, mutate func(*corev1.Service), ports ...corev1.ServicePort) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: clusterIP, ClusterIPs: []string{clusterIP}, Ports: ports},
	}
	if mutate != nil {
		mutate(s)
	}
	return s
}

func port(proto corev1.Protocol, p int32) corev1.ServicePort {
	return corev1.ServicePort{Name: "p", Protocol: proto, Port: p}
}

// slice makes an EndpointSlice for svcName with the endpoints (ip -> node), all ready unless
// listed in notReady (then serving and terminating).
func slice(svcName string, proto corev1.Protocol, p int32, eps map[string]string, terminating ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: svcName + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("p"), Protocol: ptr.To(proto), Port: ptr.To(p)}},
	}
	ips := make([]string, 0, len(eps))
	for ip := range eps {
		ips = append(ips, ip)
	}
	slices.Sort(ips)
	for _, ip := range ips {
		e := discoveryv1.Endpoint{Addresses: []string{ip}, NodeName: ptr.To(eps[ip])}
		if slices.Contains(terminating, ip) {
			e.Conditions = discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)}
		}
		s.Endpoints = append(s.Endpoints, e)
	}
	return s
}

func state(objs ...any) *model.State {
	st := &model.State{Services: map[model.ServicePortName]*model.ServicePort{}, Endpoints: map[model.ServicePortName][]model.Endpoint{},
		Node: model.Node{Name: testNode}}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Service:
			for _, sp := range model.ServicePorts(o) {
				st.Services[sp.Name] = sp
			}
		case *discoveryv1.EndpointSlice:
			ms := model.FromEndpointSlice(o)
			for n, eps := range model.MergeSlices(ms.Service, []*model.Slice{ms}) {
				st.Endpoints[n] = eps
			}
		}
	}
	return st
}

var twoEPs = map[string]string{"10.244.1.5": testNode, "10.244.2.6": "node-2"}

func key(proto model.Protocol, s string) ListenKey { return ListenKey{Proto: proto, Addr: ap(s)} }

func TestBuildPlan(t *testing.T) {
	type want struct {
		key   ListenKey
		kind  Kind
		eps   []netip.AddrPort
		split bool
		local []netip.AddrPort
	}
	tests := []struct {
		name      string
		objs      []any
		listeners []want
		addresses []string
	}{{
		name: "ClusterIP TCP and UDP, two endpoints",
		objs: []any{
			svc("web", "10.96.0.10", nil, port(corev1.ProtocolTCP, 80)), slice("web", corev1.ProtocolTCP, 8080, twoEPs),
			svc("dns", "10.96.0.53", nil, port(corev1.ProtocolUDP, 53)), slice("dns", corev1.ProtocolUDP, 8080, twoEPs),
		},
		listeners: []want{
			{key: key(model.TCP, "10.96.0.10:80"), kind: KindClusterIP, eps: bothEPs},
			{key: key(model.UDP, "10.96.0.53:53"), kind: KindClusterIP, eps: bothEPs},
		},
		addresses: []string{"10.96.0.10", "10.96.0.53"},
	}, {
		name: "no endpoints: an address, an empty route",
		objs: []any{svc("empty", "10.96.0.11", nil, port(corev1.ProtocolTCP, 80))},
		listeners: []want{
			{key: key(model.TCP, "10.96.0.11:80"), kind: KindClusterIP},
		},
		addresses: []string{"10.96.0.11"},
	}, {
		name: "NodePort on the node addresses and 127.0.0.1; externalIP",
		objs: []any{svc("np", "10.96.0.12", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.Ports[0].NodePort = 30080
			s.Spec.ExternalIPs = []string{"192.0.2.7"}
		}, port(corev1.ProtocolTCP, 80)), slice("np", corev1.ProtocolTCP, 8080, twoEPs)},
		listeners: []want{
			{key: key(model.TCP, "10.96.0.12:80"), kind: KindClusterIP, eps: bothEPs},
			{key: key(model.TCP, "127.0.0.1:30080"), kind: KindNodePort, eps: bothEPs},
			{key: key(model.TCP, "172.31.0.11:30080"), kind: KindNodePort, eps: bothEPs},
			{key: key(model.TCP, "192.0.2.7:80"), kind: KindExternalIP, eps: bothEPs},
		},
		addresses: []string{"10.96.0.12", "192.0.2.7"},
	}, {
		name: "externalTrafficPolicy Local: outside clients get the local endpoint only",
		objs: []any{svc("lb", "10.96.0.20", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeLoadBalancer
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.Ports[0].NodePort = 30090
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "172.31.0.100"}}
		}, port(corev1.ProtocolTCP, 80)), slice("lb", corev1.ProtocolTCP, 8080, twoEPs)},
		listeners: []want{
			{key: key(model.TCP, "10.96.0.20:80"), kind: KindClusterIP, eps: bothEPs},
			{key: key(model.TCP, "127.0.0.1:30090"), kind: KindNodePort, eps: bothEPs, split: true, local: localOnly},
			{key: key(model.TCP, "172.31.0.11:30090"), kind: KindNodePort, eps: bothEPs, split: true, local: localOnly},
			{key: key(model.TCP, "172.31.0.100:80"), kind: KindLoadBalancer, eps: bothEPs, split: true, local: localOnly},
		},
		addresses: []string{"10.96.0.20", "172.31.0.100"},
	}, {
		name: "internalTrafficPolicy Local",
		objs: []any{svc("itp", "10.96.0.21", func(s *corev1.Service) {
			s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
		}, port(corev1.ProtocolTCP, 80)), slice("itp", corev1.ProtocolTCP, 8080, twoEPs)},
		listeners: []want{{key: key(model.TCP, "10.96.0.21:80"), kind: KindClusterIP, eps: localOnly}},
		addresses: []string{"10.96.0.21"},
	}, {
		name: "terminating fallback: serving-terminating endpoints only when none is ready",
		objs: []any{svc("term", "10.96.0.22", nil, port(corev1.ProtocolTCP, 80)),
			slice("term", corev1.ProtocolTCP, 8080, twoEPs, "10.244.1.5", "10.244.2.6")},
		listeners: []want{{key: key(model.TCP, "10.96.0.22:80"), kind: KindClusterIP, eps: bothEPs}},
		addresses: []string{"10.96.0.22"},
	}, {
		name:      "SCTP: an address, no listener",
		objs:      []any{svc("sctp", "10.96.0.23", nil, port(corev1.ProtocolSCTP, 80)), slice("sctp", corev1.ProtocolSCTP, 8080, twoEPs)},
		addresses: []string{"10.96.0.23"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Results must not depend on the order objects arrive in.
			objs := slices.Clone(tt.objs)
			rand.Shuffle(len(objs), func(i, j int) { objs[i], objs[j] = objs[j], objs[i] })
			p := BuildPlan(state(objs...), PlanOptions{NodePortAddrs: npAddrs})
			var keys []ListenKey
			for _, w := range tt.listeners {
				keys = append(keys, w.key)
				r := p.Listeners[w.key]
				if r == nil {
					t.Errorf("no listener %s", w.key)
					continue
				}
				if r.Kind != w.kind || !slices.Equal(r.Endpoints, w.eps) || r.Split != w.split || !slices.Equal(r.Local, w.local) {
					t.Errorf("%s: got %+v, want %+v", w.key, *r, w)
				}
				if r.Empty() != (len(w.eps) == 0 && len(w.local) == 0) {
					t.Errorf("%s: Empty() = %v", w.key, r.Empty())
				}
			}
			if got := p.SortedKeys(); !slices.Equal(got, keys) {
				t.Errorf("listeners %v, want %v", got, keys)
			}
			var addrs []string
			for a := range p.Addresses {
				addrs = append(addrs, a.String())
			}
			slices.Sort(addrs)
			if !slices.Equal(addrs, tt.addresses) {
				t.Errorf("addresses %v, want %v", addrs, tt.addresses)
			}
		})
	}
}

func TestBuildPlanTakenAddresses(t *testing.T) {
	// kube-dns's ClusterIP is a local address of the node (the node-local DNS server's): not
	// served by the proxy. An external IP that is the node's own address is.
	st := state(
		svc("kube-dns", "10.96.0.10", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"172.31.0.11"} }, port(corev1.ProtocolUDP, 53)),
		slice("kube-dns", corev1.ProtocolUDP, 53, twoEPs),
	)
	p := BuildPlan(st, PlanOptions{Taken: map[netip.Addr]bool{addr("10.96.0.10"): true, nodeIP: true}})
	if got := p.SortedKeys(); !slices.Equal(got, []ListenKey{key(model.UDP, "172.31.0.11:53")}) {
		t.Errorf("listeners %v", got)
	}
	if len(p.Addresses) != 0 || !slices.Equal(p.Skipped, []ListenKey{key(model.UDP, "10.96.0.10:53")}) {
		t.Errorf("addresses %v, skipped %v", p.Addresses, p.Skipped)
	}
}

func TestBuildPlanConflict(t *testing.T) {
	st := state(
		svc("a", "10.96.0.30", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"192.0.2.1"} }, port(corev1.ProtocolTCP, 80)),
		svc("b", "10.96.0.31", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"192.0.2.1"} }, port(corev1.ProtocolTCP, 80)),
	)
	p := BuildPlan(st, PlanOptions{})
	if r := p.Listeners[key(model.TCP, "192.0.2.1:80")]; r == nil || r.Name.Name != "a" || len(p.Conflicts) != 1 {
		t.Errorf("conflict: listener %+v, conflicts %v", r, p.Conflicts)
	}
}

func TestRouteTargetsAndSourceRanges(t *testing.T) {
	r := &Route{Endpoints: bothEPs, Split: true, Local: localOnly, SourceRanges: []netip.Prefix{netip.MustParsePrefix("172.31.0.0/24")}}
	if got := r.Targets(true); !slices.Equal(got, bothEPs) {
		t.Errorf("inside client: %v", got)
	}
	if got := r.Targets(false); !slices.Equal(got, localOnly) {
		t.Errorf("outside client: %v", got)
	}
	if !r.Allowed(addr("172.31.0.200")) || r.Allowed(addr("192.0.2.1")) {
		t.Error("source ranges not applied")
	}
	// Policy Local with no local endpoint: not empty (pods and the node are still served), but
	// outside clients get nothing.
	r = &Route{Endpoints: []netip.AddrPort{remoteEP}, Split: true, Local: []netip.AddrPort{}}
	if r.Empty() || len(r.Targets(false)) != 0 {
		t.Errorf("split route without local endpoints: empty %v, outside targets %v", r.Empty(), r.Targets(false))
	}
}

func TestAffinity(t *testing.T) {
	now := time.Unix(1000, 0)
	a := NewAffinity(10 * time.Second)
	client := addr("10.244.3.9")
	first := func(int) int { return 0 }
	second := func(int) int { return 1 }
	if got := a.Pick(client, bothEPs, now, second); got != remoteEP {
		t.Fatalf("first pick %v", got)
	}
	// Sticks within the timeout, whatever the random choice; each use refreshes it.
	for i := range 5 {
		now = now.Add(8 * time.Second)
		if got := a.Pick(client, bothEPs, now, first); got != remoteEP {
			t.Fatalf("pick %d: %v, want the affine %v", i, got, remoteEP)
		}
	}
	// Another client is independent.
	if got := a.Pick(addr("10.244.3.10"), bothEPs, now, first); got != localEP {
		t.Errorf("other client: %v", got)
	}
	// Expired: a new choice.
	now = now.Add(11 * time.Second)
	if got := a.Pick(client, bothEPs, now, first); got != localEP {
		t.Errorf("after the timeout: %v, want a new choice", got)
	}
	// The affine endpoint went away: a new choice among those left.
	if got := a.Pick(client, []netip.AddrPort{remoteEP}, now, first); got != remoteEP {
		t.Errorf("after the endpoint went: %v", got)
	}
	// Expired entries are swept.
	now = now.Add(time.Hour)
	a.Pick(client, bothEPs, now, first)
	if a.Len() != 1 {
		t.Errorf("%d entries after a sweep, want 1", a.Len())
	}
}

func TestPickerRandomAndExclude(t *testing.T) {
	p := Picker{Now: time.Now, Choose: rand.New(rand.NewPCG(1, 2)).IntN}
	eps := []netip.AddrPort{ap("10.0.0.1:1"), ap("10.0.0.2:1"), ap("10.0.0.3:1")}
	seen := map[netip.AddrPort]int{}
	for range 3000 {
		seen[p.Pick(nil, addr("10.244.3.9"), eps, nil)]++
	}
	for _, e := range eps {
		if seen[e] < 800 {
			t.Errorf("endpoint %v chosen %d times of 3000: not uniform (%v)", e, seen[e], seen)
		}
	}
	// Failed endpoints are skipped while another is left; with affinity, the entry moves.
	aff := NewAffinity(time.Hour)
	client := addr("10.244.3.9")
	pin := Picker{Now: time.Now, Choose: func(int) int { return 0 }}
	if got := pin.Pick(aff, client, eps, nil); got != eps[0] {
		t.Fatal(got)
	}
	if got := pin.Pick(aff, client, eps, eps[:1]); got != eps[1] {
		t.Errorf("excluding the failed endpoint: %v", got)
	}
	if got := pin.Pick(aff, client, eps, nil); got != eps[1] {
		t.Errorf("affinity after a failure: %v, want %v", got, eps[1])
	}
	if got := pin.Pick(nil, client, eps[:1], eps[:1]); got != eps[0] {
		t.Errorf("all failed: %v, want the only one", got)
	}
}

func TestSessions(t *testing.T) {
	now := time.Unix(1000, 0)
	tab := NewSessions()
	mk := func(client string, backend netip.AddrPort, inside bool, last time.Time) *session {
		s := &session{client: ap(client), backend: backend, inside: inside}
		s.touch(last)
		if _, ok := tab.add(s); !ok {
			t.Fatalf("session %s added twice", client)
		}
		return s
	}
	a := mk("10.244.3.9:1000", localEP, true, now)
	b := mk("10.244.3.9:1001", remoteEP, true, now.Add(-50*time.Second))
	c := mk("172.31.0.200:1000", remoteEP, false, now)
	if old, ok := tab.add(&session{client: a.client}); ok || old != a {
		t.Error("a second session for one client")
	}
	if tab.get(a.client) != a || tab.Len() != 3 {
		t.Fatal("lookup")
	}
	// Idle sessions expire.
	if n := tab.Expire(now, 30*time.Second); n != 1 || tab.get(b.client) != nil || !b.closed.Load() {
		t.Errorf("expire: %d", n)
	}
	// The remote endpoint goes for outside clients (policy Local): c is closed, a stays.
	r := &Route{Endpoints: bothEPs, Split: true, Local: localOnly}
	if n := tab.Retarget(r); n != 1 || tab.get(c.client) != nil || tab.get(a.client) != a {
		t.Errorf("retarget: %d", n)
	}
	tab.remove(a)
	tab.remove(a)
	if tab.Len() != 0 || !a.closed.Load() {
		t.Error("remove")
	}
}
