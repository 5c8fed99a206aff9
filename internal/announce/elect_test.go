package announce

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/svcnet/svcnet/internal/lbpool"
)

func node(name string, ready bool, labels ...string) *corev1.Node {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}}}
	for _, l := range labels {
		n.Labels[l] = ""
	}
	return n
}

func lbService(name string, etp corev1.ServiceExternalTrafficPolicy, ips ...string) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: etp}}
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return s
}

func slice(svc string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: svc + "-x",
		Labels: map[string]string{discoveryv1.LabelServiceName: svc}}, Endpoints: eps}
}

func ep(node string, ready *bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{"10.244.0.9"}, NodeName: ptr.To(node), Conditions: discoveryv1.EndpointConditions{Ready: ready}}
}

// owners returns, for each node, the addresses Desired gives it.
func owners(pool lbpool.Pool, svcs []*corev1.Service, nodes []*corev1.Node, sl []*discoveryv1.EndpointSlice) map[string][]string {
	slicesOf := func(ns, name string) []*discoveryv1.EndpointSlice {
		var out []*discoveryv1.EndpointSlice
		for _, s := range sl {
			if s.Namespace == ns && s.Labels[discoveryv1.LabelServiceName] == name {
				out = append(out, s)
			}
		}
		return out
	}
	out := map[string][]string{}
	for _, n := range nodes {
		for _, a := range Desired(n.Name, pool, svcs, nodes, slicesOf) {
			out[n.Name] = append(out[n.Name], a.String())
		}
	}
	return out
}

func TestDesired(t *testing.T) {
	pool, err := lbpool.Parse("172.31.0.100-172.31.0.150")
	if err != nil {
		t.Fatal(err)
	}
	three := []*corev1.Node{node("node-1", true), node("node-2", true), node("node-3", true)}
	ip := "172.31.0.100"
	owner := Elect(netip.MustParseAddr(ip), []string{"node-1", "node-2", "node-3"})
	withClass := lbService("classy", corev1.ServiceExternalTrafficPolicyCluster, ip)
	withClass.Spec.LoadBalancerClass = ptr.To("example.com/other")
	nodePort := lbService("np", corev1.ServiceExternalTrafficPolicyCluster, ip)
	nodePort.Spec.Type = corev1.ServiceTypeNodePort

	for _, tc := range []struct {
		name   string
		svcs   []*corev1.Service
		nodes  []*corev1.Node
		slices []*discoveryv1.EndpointSlice
		want   map[string][]string
	}{
		{name: "one address, one owner", svcs: []*corev1.Service{lbService("web", "", ip)}, nodes: three,
			want: map[string][]string{owner: {ip}}},
		{name: "addresses outside the pool are someone else's", svcs: []*corev1.Service{lbService("web", "", "203.0.113.7")}, nodes: three,
			want: map[string][]string{}},
		{name: "no status yet", svcs: []*corev1.Service{lbService("web", "")}, nodes: three, want: map[string][]string{}},
		{name: "a loadBalancerClass is another implementation's", svcs: []*corev1.Service{withClass}, nodes: three, want: map[string][]string{}},
		{name: "not a LoadBalancer any more", svcs: []*corev1.Service{nodePort}, nodes: three, want: map[string][]string{}},
		{name: "not-ready and excluded nodes never own", svcs: []*corev1.Service{lbService("web", "", ip)},
			nodes: []*corev1.Node{node("node-1", false), node("node-2", true, LabelExclude), node("node-3", true)},
			want:  map[string][]string{"node-3": {ip}}},
		{name: "no eligible node: nobody", svcs: []*corev1.Service{lbService("web", "", ip)},
			nodes: []*corev1.Node{node("node-1", false)}, want: map[string][]string{}},
		{name: "Local: the node with the ready endpoint", svcs: []*corev1.Service{lbService("web", corev1.ServiceExternalTrafficPolicyLocal, ip)},
			nodes: three, slices: []*discoveryv1.EndpointSlice{slice("web", ep("node-2", ptr.To(true)), ep("node-3", ptr.To(false)))},
			want: map[string][]string{"node-2": {ip}}},
		{name: "Local: nil ready means ready", svcs: []*corev1.Service{lbService("web", corev1.ServiceExternalTrafficPolicyLocal, ip)},
			nodes: three, slices: []*discoveryv1.EndpointSlice{slice("web", ep("node-3", nil))},
			want: map[string][]string{"node-3": {ip}}},
		{name: "Local: no ready endpoint anywhere, any node answers (with the proxy's reject)",
			svcs:  []*corev1.Service{lbService("web", corev1.ServiceExternalTrafficPolicyLocal, ip)},
			nodes: three, slices: []*discoveryv1.EndpointSlice{slice("web", ep("node-3", ptr.To(false)))},
			want: map[string][]string{owner: {ip}}},
		{name: "Local: an endpoint on a not-ready node does not count",
			svcs:  []*corev1.Service{lbService("web", corev1.ServiceExternalTrafficPolicyLocal, ip)},
			nodes: []*corev1.Node{node("node-1", true), node("node-2", false)}, slices: []*discoveryv1.EndpointSlice{slice("web", ep("node-2", ptr.To(true)))},
			want: map[string][]string{"node-1": {ip}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := owners(pool, tc.svcs, tc.nodes, tc.slices)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("owners = %v, want %v", got, tc.want)
			}
		})
	}
}

// Every address has exactly one owner, addresses spread over the nodes, and a node leaving moves
// only its own addresses.
func TestElectSpreadsAndMovesLittle(t *testing.T) {
	nodes := []string{"node-1", "node-2", "node-3", "node-4"}
	before := map[netip.Addr]string{}
	count := map[string]int{}
	a := netip.MustParseAddr("172.31.0.100")
	for i := 0; i < 51; i++ {
		o := Elect(a, nodes)
		if !slices.Contains(nodes, o) {
			t.Fatalf("Elect(%s) = %q, not a candidate", a, o)
		}
		before[a] = o
		count[o]++
		a = a.Next()
	}
	for _, n := range nodes {
		if count[n] == 0 {
			t.Errorf("node %s owns nothing of 51 addresses: %v", n, count)
		}
	}
	rest := []string{"node-1", "node-3", "node-4"}
	for ip, o := range before {
		now := Elect(ip, rest)
		if o != "node-2" && now != o {
			t.Errorf("%s moved from %s to %s when node-2 left", ip, o, now)
		}
		if now == "node-2" {
			t.Errorf("%s still on node-2", ip)
		}
	}
	if Elect(a, nil) != "" {
		t.Error("Elect with no candidates chose someone")
	}
}

func TestDiff(t *testing.T) {
	p := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, x := range s {
			out = append(out, netip.MustParseAddr(x))
		}
		return out
	}
	add, del := diff(p("10.0.0.1", "10.0.0.2", "10.0.0.2"), p("10.0.0.2", "10.0.0.3"))
	if fmt.Sprint(add) != "[10.0.0.1]" || fmt.Sprint(del) != "[10.0.0.3]" {
		t.Errorf("diff: add %v del %v", add, del)
	}
}

func TestGARPPacket(t *testing.T) {
	mac := []byte{0x02, 0, 0, 0, 0, 0x42}
	got := fmt.Sprintf("% x", garpPacket(mac, netip.MustParseAddr("172.31.0.100")))
	want := "ff ff ff ff ff ff 02 00 00 00 00 42 08 06 " + // Ethernet: broadcast, from mac, ARP
		"00 01 08 00 06 04 00 01 " + // Ethernet/IPv4, request
		"02 00 00 00 00 42 ac 1f 00 64 " + // sender: mac, 172.31.0.100
		"00 00 00 00 00 00 ac 1f 00 64" // target: unknown, 172.31.0.100
	if got != want {
		t.Errorf("packet\n got %s\nwant %s", got, want)
	}
}
