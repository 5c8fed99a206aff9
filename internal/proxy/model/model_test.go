package model

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func e(ip, node string, ready, serving, terminating bool, zones ...string) Endpoint {
	ep := Endpoint{IP: netip.MustParseAddr(ip), Port: 80, NodeName: node, Ready: ready, Serving: serving, Terminating: terminating}
	if len(zones) > 0 {
		ep.Hints = &Hints{Zones: zones}
	}
	return ep
}

func ips(eps []Endpoint) []string {
	if eps == nil {
		return nil
	}
	out := []string{}
	for _, e := range eps {
		out = append(out, e.IP.String())
	}
	return out
}

func TestCategorize(t *testing.T) {
	node := Node{Name: "n1", Zone: "a"}
	cluster := &ServicePort{NodePort: 0}
	etpLocal := &ServicePort{NodePort: 30000, ExternalPolicyLocal: true}
	itpLocal := &ServicePort{InternalPolicyLocal: true}
	cases := []struct {
		name           string
		sp             *ServicePort
		eps            []Endpoint
		cluster, local []string
		hasAny         bool
		topology       string
	}{
		{"no endpoints", cluster, nil, nil, nil, false, ""},
		{"ready only", cluster, []Endpoint{e("10.0.0.1", "n1", true, true, false), e("10.0.0.2", "n2", false, false, false)},
			[]string{"10.0.0.1"}, nil, true, ""},
		{"terminating fallback", cluster, []Endpoint{e("10.0.0.1", "n1", false, true, true), e("10.0.0.2", "n2", false, false, true)},
			[]string{"10.0.0.1"}, nil, true, ""},
		{"ready beats terminating", cluster, []Endpoint{e("10.0.0.1", "n1", false, true, true), e("10.0.0.2", "n2", true, true, false)},
			[]string{"10.0.0.2"}, nil, true, ""},
		{"not ready, not serving: nothing", cluster, []Endpoint{e("10.0.0.1", "n1", false, false, false)}, []string{}, nil, false, ""},
		{"eTP local", etpLocal, []Endpoint{e("10.0.0.1", "n1", true, true, false), e("10.0.0.2", "n2", true, true, false)},
			[]string{"10.0.0.1", "10.0.0.2"}, []string{"10.0.0.1"}, true, ""},
		{"eTP local, only remote", etpLocal, []Endpoint{e("10.0.0.2", "n2", true, true, false)},
			[]string{"10.0.0.2"}, []string{}, true, ""},
		{"eTP local, local terminating", etpLocal, []Endpoint{e("10.0.0.1", "n1", false, true, true), e("10.0.0.2", "n2", true, true, false)},
			[]string{"10.0.0.2"}, []string{"10.0.0.1"}, true, ""},
		{"iTP local", itpLocal, []Endpoint{e("10.0.0.1", "n1", true, true, false), e("10.0.0.2", "n2", true, true, false)},
			nil, []string{"10.0.0.1"}, true, ""},
		{"iTP local, remote only", itpLocal, []Endpoint{e("10.0.0.2", "n2", true, true, false)}, nil, []string{}, true, ""},
		{"zone hints", cluster, []Endpoint{e("10.0.0.1", "n2", true, true, false, "a"), e("10.0.0.2", "n3", true, true, false, "b")},
			[]string{"10.0.0.1"}, nil, true, corev1.ServiceTrafficDistributionPreferSameZone},
		{"zone hints, none for our zone", cluster, []Endpoint{e("10.0.0.1", "n2", true, true, false, "b"), e("10.0.0.2", "n3", true, true, false, "c")},
			[]string{"10.0.0.1", "10.0.0.2"}, nil, true, ""},
		{"zone hints, one missing", cluster, []Endpoint{e("10.0.0.1", "n2", true, true, false, "a"), e("10.0.0.2", "n3", true, true, false)},
			[]string{"10.0.0.1", "10.0.0.2"}, nil, true, ""},
		{"node hints", cluster, []Endpoint{{IP: netip.MustParseAddr("10.0.0.1"), Ready: true, Serving: true, Hints: &Hints{Nodes: []string{"n1"}, Zones: []string{"a"}}},
			{IP: netip.MustParseAddr("10.0.0.2"), Ready: true, Serving: true, Hints: &Hints{Nodes: []string{"n2"}, Zones: []string{"a"}}}},
			[]string{"10.0.0.1"}, nil, true, corev1.ServiceTrafficDistributionPreferSameNode},
	}
	for _, tc := range shuffled(cases) {
		t.Run(tc.name, func(t *testing.T) {
			d := Categorize(tc.sp, tc.eps, node)
			if diff := cmp.Diff(tc.cluster, ips(d.Cluster)); diff != "" {
				t.Errorf("cluster (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.local, ips(d.Local)); diff != "" {
				t.Errorf("local (-want +got):\n%s", diff)
			}
			if d.HasAny != tc.hasAny || d.Topology != tc.topology {
				t.Errorf("hasAny=%v topology=%q, want %v %q", d.HasAny, d.Topology, tc.hasAny, tc.topology)
			}
		})
	}
}

func shuffled[T any](in []T) []T {
	out := append([]T(nil), in...)
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func TestMergeSlicesOrderIndependent(t *testing.T) {
	svc := types.NamespacedName{Namespace: "ns", Name: "s"}
	mk := func(name string, ready bool, ips ...string) *Slice {
		s := &Slice{Service: svc, Name: name, Ports: []SlicePort{{Name: "http", Protocol: TCP, Port: 8080}}}
		for _, ip := range ips {
			s.Endpoints = append(s.Endpoints, Endpoint{IP: netip.MustParseAddr(ip), Ready: ready, Serving: ready})
		}
		return s
	}
	in := []*Slice{mk("a", false, "10.0.0.1", "10.0.0.3"), mk("b", true, "10.0.0.1", "10.0.0.2"), mk("c", true, "10.0.0.4")}
	want := MergeSlices(svc, in)
	name := ServicePortName{Namespace: "ns", Name: "s", Port: "http", Protocol: TCP}
	if got := ips(want[name]); !cmp.Equal(got, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}) {
		t.Fatalf("merged %v", got)
	}
	if !want[name][0].Ready {
		t.Errorf("the ready copy of a duplicated endpoint should win")
	}
	for range 20 {
		if diff := cmp.Diff(want, MergeSlices(svc, shuffled(in))); diff != "" {
			t.Fatalf("order dependent:\n%s", diff)
		}
	}
}

func TestConversions(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "lb"},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.96.0.5", ExternalIPs: []string{"192.0.2.2", "192.0.2.1", "2001:db8::1"},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal, HealthCheckNodePort: 32000,
			LoadBalancerSourceRanges: []string{"10.1.0.0/16 ", "10.0.0.0/8", "bad"},
			SessionAffinity:          corev1.ServiceAffinityClientIP,
			Ports: []corev1.ServicePort{{Name: "a", Port: 80, NodePort: 30080}, {Name: "b", Protocol: corev1.ProtocolUDP, Port: 53},
				{Name: "bad", Protocol: "ICMP", Port: 1}},
		},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
			{IP: "172.31.0.100"}, {IP: "172.31.0.101", IPMode: ptr.To(corev1.LoadBalancerIPModeProxy)}, {Hostname: "x"},
			{IP: "172.31.0.102", IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)}}}},
	}
	ports := ServicePorts(svc)
	if len(ports) != 2 {
		t.Fatalf("ports: %v", ports)
	}
	p := ports[0]
	want := &ServicePort{
		Name: ServicePortName{Namespace: "ns", Name: "lb", Port: "a", Protocol: TCP}, ClusterIP: netip.MustParseAddr("10.96.0.5"), Port: 80, NodePort: 30080,
		ExternalIPs:         []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")},
		LoadBalancerVIPs:    []netip.Addr{netip.MustParseAddr("172.31.0.100"), netip.MustParseAddr("172.31.0.102")},
		SourceRanges:        []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.1.0.0/16")},
		ExternalPolicyLocal: true, HealthCheckNodePort: 32000, AffinityTimeout: 3 * time.Hour,
	}
	if !p.Equal(want) {
		t.Errorf("converted\n%+v\nwant\n%+v", p, want)
	}
	for _, ignored := range []*corev1.Service{
		{Spec: corev1.ServiceSpec{ClusterIP: "None", Ports: svc.Spec.Ports}},
		{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "x"}},
		{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{ServiceProxyNameLabel: "x"}}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.6", Ports: svc.Spec.Ports}},
		{Spec: corev1.ServiceSpec{ClusterIP: "fd00::1", Ports: svc.Spec.Ports}},
	} {
		if got := ServicePorts(ignored); got != nil {
			t.Errorf("%+v should be ignored, got %v", ignored.Spec, got)
		}
	}

	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "lb-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "lb"},
			Annotations: map[string]string{corev1.EndpointsLastChangeTriggerTime: "2025-01-02T03:04:05.123Z"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("a"), Port: ptr.To[int32](8080)}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.1.5"}, NodeName: ptr.To("n1")},
			{Addresses: []string{"10.244.1.6"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)}},
			{Addresses: nil},
		},
	}
	s := FromEndpointSlice(es)
	if s == nil || len(s.Endpoints) != 2 || !s.Endpoints[0].Ready || s.Endpoints[1].Ready || !s.Endpoints[1].Terminating || s.TriggerTime.IsZero() {
		t.Errorf("slice %+v", s)
	}
	if s.Ports[0] != (SlicePort{Name: "a", Protocol: TCP, Port: 8080}) {
		t.Errorf("slice port %+v", s.Ports[0])
	}
}

// TestMergeSharesWhatItCan: the endpoints of the usual slice (one port, each endpoint once, in
// order) are held once, shared by the slice and the merged port; anything else is copied, sorted
// and deduplicated, with each port's number set.
func TestMergeSharesWhatItCan(t *testing.T) {
	svc := types.NamespacedName{Namespace: "ns", Name: "s"}
	ready := discoveryv1.EndpointConditions{Ready: ptr.To(true)}
	mk := func(ports []discoveryv1.EndpointPort, addrs ...string) *discoveryv1.EndpointSlice {
		s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s-1", Labels: map[string]string{discoveryv1.LabelServiceName: "s"}},
			AddressType: discoveryv1.AddressTypeIPv4, Ports: ports}
		for _, a := range addrs {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: ready})
		}
		return s
	}
	http := discoveryv1.EndpointPort{Name: ptr.To("http"), Port: ptr.To[int32](8080)}
	dns := discoveryv1.EndpointPort{Name: ptr.To("dns"), Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To[int32](53)}
	httpName := ServicePortName{Namespace: "ns", Name: "s", Port: "http", Protocol: TCP}
	dnsName := ServicePortName{Namespace: "ns", Name: "s", Port: "dns", Protocol: UDP}
	for _, tc := range []struct {
		name   string
		slice  *discoveryv1.EndpointSlice
		want   map[ServicePortName][]string // addr:port per port
		shared bool
	}{
		{"one port, sorted", mk([]discoveryv1.EndpointPort{http}, "10.0.0.1", "10.0.0.2"),
			map[ServicePortName][]string{httpName: {"10.0.0.1:8080", "10.0.0.2:8080"}}, true},
		{"one port, unsorted", mk([]discoveryv1.EndpointPort{http}, "10.0.0.2", "10.0.0.1"),
			map[ServicePortName][]string{httpName: {"10.0.0.1:8080", "10.0.0.2:8080"}}, false},
		{"one port, duplicate", mk([]discoveryv1.EndpointPort{http}, "10.0.0.1", "10.0.0.1"),
			map[ServicePortName][]string{httpName: {"10.0.0.1:8080"}}, false},
		{"two ports", mk([]discoveryv1.EndpointPort{http, dns}, "10.0.0.1", "10.0.0.2"),
			map[ServicePortName][]string{httpName: {"10.0.0.1:8080", "10.0.0.2:8080"}, dnsName: {"10.0.0.1:53", "10.0.0.2:53"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := FromEndpointSlice(tc.slice)
			merged := MergeSlices(svc, []*Slice{s})
			got := map[ServicePortName][]string{}
			for n, eps := range merged {
				for _, e := range eps {
					got[n] = append(got[n], e.String())
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("merged (-want +got):\n%s", diff)
			}
			eps := merged[httpName]
			if shared := &eps[0] == &s.Endpoints[0]; shared != tc.shared {
				t.Errorf("shares the slice's array: %v, want %v", shared, tc.shared)
			}
			if cap(eps) != len(eps) && tc.shared {
				t.Errorf("a shared array must be clipped (appending to it would write into the slice's)")
			}
		})
	}
}

// TestFilterShares: Categorize keeps the caller's array when every endpoint is used, and never
// writes into it.
func TestFilterShares(t *testing.T) {
	all := []Endpoint{e("10.0.0.1", "n1", true, true, false), e("10.0.0.2", "n2", true, true, false)}
	some := []Endpoint{e("10.0.0.1", "n1", true, true, false), e("10.0.0.2", "n2", false, false, false), e("10.0.0.3", "n2", true, true, false)}
	for _, tc := range []struct {
		name   string
		eps    []Endpoint
		want   []string
		shared bool
	}{
		{"all ready", all, []string{"10.0.0.1", "10.0.0.2"}, true},
		{"one not ready", some, []string{"10.0.0.1", "10.0.0.3"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := slices.Clone(tc.eps)
			d := Categorize(&ServicePort{}, tc.eps, Node{Name: "n1"})
			if diff := cmp.Diff(tc.want, ips(d.Cluster)); diff != "" {
				t.Errorf("cluster (-want +got):\n%s", diff)
			}
			if shared := &d.Cluster[0] == &tc.eps[0]; shared != tc.shared {
				t.Errorf("shared: %v, want %v", shared, tc.shared)
			}
			if cap(d.Cluster) != len(d.Cluster) && tc.shared {
				t.Errorf("a shared result must be clipped")
			}
			if !slices.EqualFunc(before, tc.eps, Endpoint.Equal) {
				t.Errorf("the input was modified")
			}
		})
	}
}
