package nft_test

import (
	"flag"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"

	"github.com/svcnet/svcnet/internal/proxy/model"
	"github.com/svcnet/svcnet/internal/proxy/nft"
	"github.com/svcnet/svcnet/internal/proxy/tracer"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// Addresses used by the scenarios.
var (
	podClient  = netip.MustParseAddr("10.244.1.99") // a pod on this node
	outside    = netip.MustParseAddr("172.31.0.200")
	inRange    = netip.MustParseAddr("172.31.0.5")
	localhost  = netip.MustParseAddr("127.0.0.1")
	httpPorts  = []discoveryv1.EndpointPort{eport("http", corev1.ProtocolTCP, 8080)}
	localEP    = ep{ip: "10.244.1.5", node: nodeName}
	remoteEP   = ep{ip: "10.244.2.6", node: "node-2"}
	localEP2   = ep{ip: "10.244.1.7", node: nodeName}
	remoteEP2  = ep{ip: "10.244.2.7", node: "node-2"}
	lbIngress  = func(ips ...string) []corev1.LoadBalancerIngress { return ingress(nil, ips...) }
	proxyMode  = ptr.To(corev1.LoadBalancerIPModeProxy)
	tcpProto   = model.TCP
	udpProto   = model.UDP
	sctpProto  = model.SCTP
	nodeClient = nodeIP
)

func ingress(mode *corev1.LoadBalancerIPMode, ips ...string) []corev1.LoadBalancerIngress {
	var out []corev1.LoadBalancerIngress
	for _, ip := range ips {
		out = append(out, corev1.LoadBalancerIngress{IP: ip, IPMode: mode})
	}
	return out
}

type trace struct {
	name string
	pkt  tracer.Packet
	want []string // tracer.Outcome.String() of every outcome
}

func pkt(src netip.Addr, dst string, proto model.Protocol, port uint16) tracer.Packet {
	return tracer.Packet{Src: src, Dst: netip.MustParseAddr(dst), Proto: proto, DPort: port, Local: src == nodeClient || src == localhost}
}

type scenario struct {
	name   string
	objs   []any
	opts   *nft.Options
	traces []trace
}

func scenarios() []scenario {
	nodePort := func(np int32) func(*corev1.Service) {
		return func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.Ports[0].NodePort = np
		}
	}
	allAddrs := testOpt
	allAddrs.NodePortAddresses = nil
	noLocalhost := testOpt
	noLocalhost.LocalhostNodePorts = false
	return []scenario{
		{
			name: "clusterip",
			objs: []any{
				svc("web", "10.96.0.10", nil, tcp("http", 80, 8080), udp("dns", 53)),
				slice("web", "web-1", []discoveryv1.EndpointPort{eport("http", corev1.ProtocolTCP, 8080), eport("dns", corev1.ProtocolUDP, 5353)}, localEP, remoteEP),
			},
			traces: []trace{
				{"pod to ClusterIP: both endpoints, no masquerade", pkt(podClient, "10.96.0.10", tcpProto, 80),
					[]string{"accept dnat=10.244.1.5:8080 out p=0.500", "accept dnat=10.244.2.6:8080 out p=0.500"}},
				{"outside the pod network: masqueraded", pkt(outside, "10.96.0.10", tcpProto, 80),
					[]string{"accept dnat=10.244.1.5:8080 masq out p=0.500", "accept dnat=10.244.2.6:8080 masq out p=0.500"}},
				{"node to ClusterIP: masqueraded", pkt(nodeClient, "10.96.0.10", tcpProto, 80),
					[]string{"accept dnat=10.244.1.5:8080 masq out p=0.500", "accept dnat=10.244.2.6:8080 masq out p=0.500"}},
				{"udp port", pkt(podClient, "10.96.0.10", udpProto, 53),
					[]string{"accept dnat=10.244.1.5:5353 out p=0.500", "accept dnat=10.244.2.6:5353 out p=0.500"}},
				{"hairpin: the endpoint reaching itself is masqueraded", pkt(netip.MustParseAddr("10.244.1.5"), "10.96.0.10", tcpProto, 80),
					[]string{"accept dnat=10.244.1.5:8080 masq out p=0.500", "accept dnat=10.244.2.6:8080 out p=0.500"}},
				{"unknown port of a ClusterIP: TCP reset", pkt(podClient, "10.96.0.10", tcpProto, 81), []string{"reject-rst p=1.000"}},
				{"unknown UDP port: ICMP port unreachable", pkt(podClient, "10.96.0.10", udpProto, 54), []string{"reject p=1.000"}},
				{"unallocated service address: drop", pkt(podClient, "10.100.0.1", tcpProto, 80), []string{"drop p=1.000"}},
				{"unallocated, from the node", pkt(nodeClient, "10.100.0.1", tcpProto, 80), []string{"drop p=1.000"}},
				{"outside the service CIDR: untouched", pkt(podClient, "192.0.2.1", tcpProto, 80), []string{"accept out p=1.000"}},
			},
		},
		{
			name: "no-endpoints",
			objs: []any{
				svc("empty", "10.96.0.11", nodePort(30011), tcp("http", 80, 8080)),
				svc("empty-udp", "10.96.0.12", nil, udp("dns", 53)),
			},
			traces: []trace{
				{"ClusterIP, TCP: reset", pkt(podClient, "10.96.0.11", tcpProto, 80), []string{"reject-rst p=1.000"}},
				{"ClusterIP, from the node", pkt(nodeClient, "10.96.0.11", tcpProto, 80), []string{"reject-rst p=1.000"}},
				{"ClusterIP, UDP: port unreachable", pkt(podClient, "10.96.0.12", udpProto, 53), []string{"reject p=1.000"}},
				{"NodePort from outside", pkt(outside, nodeIP.String(), tcpProto, 30011), []string{"reject-rst p=1.000"}},
				{"NodePort on 127.0.0.1", pkt(localhost, "127.0.0.1", tcpProto, 30011), []string{"reject-rst p=1.000"}},
			},
		},
		{
			name: "nodeport",
			objs: []any{
				svc("np", "10.96.0.13", nodePort(30013), tcp("http", 80, 8080)),
				slice("np", "np-1", httpPorts, localEP, remoteEP),
			},
			traces: []trace{
				{"NodePort from outside: every endpoint, masqueraded", pkt(outside, nodeIP.String(), tcpProto, 30013),
					[]string{"accept dnat=10.244.1.5:8080 masq out p=0.500", "accept dnat=10.244.2.6:8080 masq out p=0.500"}},
				{"NodePort on 127.0.0.1 from the node", pkt(localhost, "127.0.0.1", tcpProto, 30013),
					[]string{"accept dnat=10.244.1.5:8080 masq out p=0.500", "accept dnat=10.244.2.6:8080 masq out p=0.500"}},
				{"NodePort on the node IP from the node", pkt(nodeClient, nodeIP.String(), tcpProto, 30013),
					[]string{"accept dnat=10.244.1.5:8080 masq out p=0.500", "accept dnat=10.244.2.6:8080 masq out p=0.500"}},
				{"127.0.0.1 from the network: dropped", tracer.Packet{Src: outside, Dst: localhost, Proto: tcpProto, DPort: 30013},
					[]string{"drop p=1.000"}},
				{"another port of the node: untouched", pkt(outside, nodeIP.String(), tcpProto, 22), []string{"accept local p=1.000"}},
			},
		},
		{
			name: "nodeport-all-addresses",
			opts: &allAddrs,
			objs: []any{
				svc("np", "10.96.0.13", nodePort(30013), tcp("http", 80, 8080)),
				slice("np", "np-1", httpPorts, localEP),
			},
			traces: []trace{
				{"NodePort on the node IP", pkt(outside, nodeIP.String(), tcpProto, 30013), []string{"accept dnat=10.244.1.5:8080 masq out p=1.000"}},
			},
		},
		{
			name: "no-localhost-nodeports",
			opts: &noLocalhost,
			objs: []any{
				svc("np", "10.96.0.13", nodePort(30013), tcp("http", 80, 8080)),
				slice("np", "np-1", httpPorts, localEP),
			},
			traces: []trace{
				{"127.0.0.1 is not a NodePort address", pkt(localhost, "127.0.0.1", tcpProto, 30013), []string{"accept local p=1.000"}},
			},
		},
		{
			name: "external-traffic-policy-local",
			objs: []any{
				svc("lb", "10.96.0.14", func(s *corev1.Service) {
					s.Spec.Type = corev1.ServiceTypeLoadBalancer
					s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
					s.Spec.HealthCheckNodePort = 32000
					s.Spec.Ports[0].NodePort = 30014
					s.Status.LoadBalancer.Ingress = lbIngress("172.31.0.100")
				}, tcp("http", 80, 8080)),
				slice("lb", "lb-1", httpPorts, localEP2, remoteEP2),
			},
			traces: []trace{
				{"LB IP from outside: local endpoint only, source kept", pkt(outside, "172.31.0.100", tcpProto, 80),
					[]string{"accept dnat=10.244.1.7:8080 out p=1.000"}},
				{"NodePort from outside: local endpoint only", pkt(outside, nodeIP.String(), tcpProto, 30014),
					[]string{"accept dnat=10.244.1.7:8080 out p=1.000"}},
				{"pod to LB IP: short-circuit to every endpoint", pkt(podClient, "172.31.0.100", tcpProto, 80),
					[]string{"accept dnat=10.244.1.7:8080 out p=0.500", "accept dnat=10.244.2.7:8080 out p=0.500"}},
				{"node to LB IP: every endpoint, masqueraded", pkt(nodeClient, "172.31.0.100", tcpProto, 80),
					[]string{"accept dnat=10.244.1.7:8080 masq out p=0.500", "accept dnat=10.244.2.7:8080 masq out p=0.500"}},
				{"ClusterIP keeps policy Cluster", pkt(podClient, "10.96.0.14", tcpProto, 80),
					[]string{"accept dnat=10.244.1.7:8080 out p=0.500", "accept dnat=10.244.2.7:8080 out p=0.500"}},
			},
		},
		{
			name: "external-traffic-policy-local-no-local-endpoints",
			objs: []any{
				svc("lb", "10.96.0.15", func(s *corev1.Service) {
					s.Spec.Type = corev1.ServiceTypeLoadBalancer
					s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
					s.Spec.HealthCheckNodePort = 32001
					s.Spec.Ports[0].NodePort = 30015
					s.Status.LoadBalancer.Ingress = lbIngress("172.31.0.100")
				}, tcp("http", 80, 8080)),
				slice("lb", "lb-1", httpPorts, remoteEP2),
			},
			traces: []trace{
				{"LB IP from outside: dropped (the load balancer should not send here)", pkt(outside, "172.31.0.100", tcpProto, 80), []string{"drop p=1.000"}},
				{"NodePort from outside: dropped", pkt(outside, nodeIP.String(), tcpProto, 30015), []string{"drop p=1.000"}},
				{"pod to LB IP: short-circuit", pkt(podClient, "172.31.0.100", tcpProto, 80), []string{"accept dnat=10.244.2.7:8080 out p=1.000"}},
			},
		},
		{
			name: "external-ips",
			objs: []any{
				svc("ext", "10.96.0.16", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"192.0.2.10"} }, tcp("http", 80, 8080)),
				slice("ext", "ext-1", httpPorts, remoteEP),
			},
			traces: []trace{
				{"external IP from outside: masqueraded", pkt(outside, "192.0.2.10", tcpProto, 80), []string{"accept dnat=10.244.2.6:8080 masq out p=1.000"}},
				{"external IP, other port: untouched", pkt(outside, "192.0.2.10", tcpProto, 81), []string{"accept out p=1.000"}},
			},
		},
		{
			name: "loadbalancer-source-ranges",
			objs: []any{
				svc("fw", "10.96.0.17", func(s *corev1.Service) {
					s.Spec.Type = corev1.ServiceTypeLoadBalancer
					s.Spec.Ports[0].NodePort = 30017
					s.Spec.LoadBalancerSourceRanges = []string{"172.31.0.0/28", " 198.51.100.0/24"}
					s.Status.LoadBalancer.Ingress = append(lbIngress("172.31.0.101"), ingress(proxyMode, "172.31.0.102")...)
				}, tcp("http", 80, 8080)),
				slice("fw", "fw-1", httpPorts, remoteEP),
			},
			traces: []trace{
				{"LB IP from an allowed source", pkt(inRange, "172.31.0.101", tcpProto, 80), []string{"accept dnat=10.244.2.6:8080 masq out p=1.000"}},
				{"LB IP from elsewhere: dropped", pkt(outside, "172.31.0.101", tcpProto, 80), []string{"drop p=1.000"}},
				{"ipMode Proxy address: no rules", pkt(outside, "172.31.0.102", tcpProto, 80), []string{"accept out p=1.000"}},
				{"NodePort is not subject to source ranges", pkt(outside, nodeIP.String(), tcpProto, 30017), []string{"accept dnat=10.244.2.6:8080 masq out p=1.000"}},
			},
		},
		{
			name: "session-affinity",
			objs: []any{
				svc("sticky", "10.96.0.18", func(s *corev1.Service) {
					s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
					s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](60)}}
				}, tcp("http", 80, 8080)),
				slice("sticky", "sticky-1", httpPorts, localEP, remoteEP),
			},
			traces: []trace{
				{"first connection: either endpoint", pkt(podClient, "10.96.0.18", tcpProto, 80),
					[]string{"accept dnat=10.244.1.5:8080 out p=0.500", "accept dnat=10.244.2.6:8080 out p=0.500"}},
			},
		},
		{
			name: "session-affinity-nodeport-local",
			objs: []any{
				svc("sticky-np", "10.96.0.27", func(s *corev1.Service) {
					s.Spec.Type = corev1.ServiceTypeNodePort
					s.Spec.Ports[0].NodePort = 30027
					s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
					s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
				}, tcp("http", 80, 8080)),
				slice("sticky-np", "sticky-np-1", httpPorts, localEP, remoteEP),
			},
			traces: []trace{
				{"NodePort from outside: local endpoint, source kept", pkt(outside, nodeIP.String(), tcpProto, 30027),
					[]string{"accept dnat=10.244.1.5:8080 out p=1.000"}},
				{"pod to NodePort: short-circuit to both", pkt(podClient, nodeIP.String(), tcpProto, 30027),
					[]string{"accept dnat=10.244.1.5:8080 out p=0.500", "accept dnat=10.244.2.6:8080 out p=0.500"}},
				{"ClusterIP from outside: masqueraded", pkt(outside, "10.96.0.27", tcpProto, 80),
					[]string{"accept dnat=10.244.1.5:8080 masq out p=0.500", "accept dnat=10.244.2.6:8080 masq out p=0.500"}},
			},
		},
		{
			name: "internal-traffic-policy-local",
			objs: []any{
				svc("itp", "10.96.0.19", func(s *corev1.Service) {
					s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
				}, tcp("http", 80, 8080)),
				slice("itp", "itp-1", httpPorts, localEP, remoteEP),
				svc("itp-remote", "10.96.0.20", func(s *corev1.Service) {
					s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
				}, tcp("http", 80, 8080)),
				slice("itp-remote", "itp-remote-1", httpPorts, remoteEP),
			},
			traces: []trace{
				{"only this node's endpoint", pkt(podClient, "10.96.0.19", tcpProto, 80), []string{"accept dnat=10.244.1.5:8080 out p=1.000"}},
				{"no endpoint on this node: dropped", pkt(podClient, "10.96.0.20", tcpProto, 80), []string{"drop p=1.000"}},
			},
		},
		{
			name: "topology-prefer-close",
			objs: []any{
				svc("topo", "10.96.0.21", func(s *corev1.Service) {
					s.Spec.TrafficDistribution = ptr.To(corev1.ServiceTrafficDistributionPreferClose)
				}, tcp("http", 80, 8080)),
				slice("topo", "topo-1", httpPorts,
					ep{ip: "10.244.2.8", node: "node-2", zones: []string{"zone-a"}},
					ep{ip: "10.244.3.8", node: "node-3", zones: []string{"zone-b"}}),
				svc("topo-missing", "10.96.0.22", nil, tcp("http", 80, 8080)),
				slice("topo-missing", "topo-missing-1", httpPorts,
					ep{ip: "10.244.2.9", node: "node-2", zones: []string{"zone-a"}},
					ep{ip: "10.244.3.9", node: "node-3"}),
			},
			traces: []trace{
				{"same zone only", pkt(podClient, "10.96.0.21", tcpProto, 80), []string{"accept dnat=10.244.2.8:8080 out p=1.000"}},
				{"an endpoint without hints: hints ignored", pkt(podClient, "10.96.0.22", tcpProto, 80),
					[]string{"accept dnat=10.244.2.9:8080 out p=0.500", "accept dnat=10.244.3.9:8080 out p=0.500"}},
			},
		},
		{
			name: "terminating-fallback",
			objs: []any{
				svc("term", "10.96.0.23", nil, tcp("http", 80, 8080)),
				slice("term", "term-1", httpPorts, ep{ip: "10.244.2.10", node: "node-2", terminating: true},
					ep{ip: "10.244.2.11", node: "node-2", terminating: true}, ep{ip: "10.244.2.12", node: "node-2", terminating: true, notServing: true}),
				svc("mixed", "10.96.0.24", nil, tcp("http", 80, 8080)),
				slice("mixed", "mixed-1", httpPorts, ep{ip: "10.244.2.13", node: "node-2", terminating: true}, ep{ip: "10.244.2.14", node: "node-2"},
					ep{ip: "10.244.2.15", node: "node-2", notReady: true}),
			},
			traces: []trace{
				{"no ready endpoint: serving-terminating ones", pkt(podClient, "10.96.0.23", tcpProto, 80),
					[]string{"accept dnat=10.244.2.10:8080 out p=0.500", "accept dnat=10.244.2.11:8080 out p=0.500"}},
				{"a ready endpoint wins", pkt(podClient, "10.96.0.24", tcpProto, 80), []string{"accept dnat=10.244.2.14:8080 out p=1.000"}},
			},
		},
		{
			name: "three-endpoints-and-sctp",
			objs: []any{
				svc("sctp", "10.96.0.25", nil, corev1.ServicePort{Name: "s", Protocol: corev1.ProtocolSCTP, Port: 9000}),
				slice("sctp", "sctp-1", []discoveryv1.EndpointPort{eport("s", corev1.ProtocolSCTP, 9000)},
					ep{ip: "10.244.2.20", node: "node-2"}, ep{ip: "10.244.2.21", node: "node-2"}, ep{ip: "10.244.2.22", node: "node-2"}),
			},
			traces: []trace{
				{"uniform over three", pkt(podClient, "10.96.0.25", sctpProto, 9000), []string{
					"accept dnat=10.244.2.20:9000 out p=0.333", "accept dnat=10.244.2.21:9000 out p=0.333", "accept dnat=10.244.2.22:9000 out p=0.333"}},
				{"tcp to an sctp-only port", pkt(podClient, "10.96.0.25", tcpProto, 9000), []string{"reject-rst p=1.000"}},
			},
		},
		{
			name: "ignored-services",
			objs: []any{
				svc("headless", "None", nil, tcp("http", 80, 8080)),
				slice("headless", "headless-1", httpPorts, localEP),
				svc("extname", "", func(s *corev1.Service) {
					s.Spec.Type = corev1.ServiceTypeExternalName
					s.Spec.ExternalName = "example.com"
				}),
				svc("other-proxy", "10.96.0.26", func(s *corev1.Service) {
					s.Labels = map[string]string{model.ServiceProxyNameLabel: "someone-else"}
				}, tcp("http", 80, 8080)),
				slice("other-proxy", "other-proxy-1", httpPorts, localEP),
			},
			traces: []trace{
				{"another proxy's Service: not ours, its address is unallocated here", pkt(podClient, "10.96.0.26", tcpProto, 80), []string{"drop p=1.000"}},
			},
		},
	}
}

func shuffled[T any](in []T) []T {
	out := append([]T(nil), in...)
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// TestScenarios checks every Service shape three ways: the ruleset against its golden dump, the
// packets through the tracer, and the same result whatever order the objects arrive in.
func TestScenarios(t *testing.T) {
	for _, sc := range shuffled(scenarios()) {
		t.Run(sc.name, func(t *testing.T) {
			opts := testOpt
			if sc.opts != nil {
				opts = *sc.opts
			}
			fake, _ := apply(t, state(testNode, shuffled(sc.objs)...), opts)
			dump := fake.Dump()
			golden := filepath.Join("testdata", sc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(dump), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), dump); diff != "" {
				t.Errorf("ruleset differs from %s (-want +got):\n%s", golden, diff)
			}

			tr, err := tracer.New(fake, nodeIP)
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range sc.traces {
				got, err := tr.Trace(tc.pkt)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				var gotS []string
				for _, o := range got {
					gotS = append(gotS, o.String())
				}
				if diff := cmp.Diff(tc.want, gotS); diff != "" {
					t.Errorf("%s: %v -> outcomes (-want +got):\n%s", tc.name, tc.pkt, diff)
				}
			}

			// Order independence: other arrival orders give the same table.
			for range 3 {
				f2, _ := apply(t, state(testNode, shuffled(sc.objs)...), opts)
				if d := f2.Dump(); d != dump {
					t.Fatalf("ruleset depends on object order:\n%s", cmp.Diff(dump, d))
				}
			}
		})
	}
}

func TestSessionAffinitySticks(t *testing.T) {
	sc := scenarios()
	var objs []any
	for _, s := range sc {
		if s.name == "session-affinity" {
			objs = s.objs
		}
	}
	fake, _ := apply(t, state(testNode, objs...), testOpt)
	tr, err := tracer.New(fake, nodeIP)
	if err != nil {
		t.Fatal(err)
	}
	p := pkt(podClient, "10.96.0.18", tcpProto, 80)
	first, err := tr.Trace(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 {
		t.Fatalf("first connection: %v", first)
	}
	for _, chosen := range first {
		tr, _ := tracer.New(fake, nodeIP)
		tr.Commit(p.Src, chosen)
		again, err := tr.Trace(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(again) != 1 || again[0].DNAT != chosen.DNAT || again[0].Prob != 1 {
			t.Errorf("after %v, the next connection went to %v", chosen, again)
		}
		// Another client is not affected.
		other, _ := tr.Trace(pkt(netip.MustParseAddr("10.244.1.98"), "10.96.0.18", tcpProto, 80))
		if len(other) != 2 {
			t.Errorf("another client: %v", other)
		}
	}
}

// TestParseRoundTrip: every rule the scenarios emit parses back into terms that render identically.
func TestParseRoundTrip(t *testing.T) {
	for _, sc := range scenarios() {
		opts := testOpt
		if sc.opts != nil {
			opts = *sc.opts
		}
		base, svcs, pickers := nft.Build(state(testNode, sc.objs...), opts)
		objs := []*nft.Objects{base, pickers}
		for _, s := range svcs {
			objs = append(objs, &s.Objects)
		}
		for _, o := range objs {
			for _, c := range o.Chains {
				for _, r := range c.Rules {
					terms, err := nft.ParseRule(r.String())
					if err != nil {
						t.Fatalf("%s: %v", c.Name, err)
					}
					if got := (nft.Rule{Terms: terms}).String(); got != r.String() {
						t.Errorf("round trip: %q -> %q", r.String(), got)
					}
				}
			}
		}
	}
}

func TestParseRejectsUnknownShapes(t *testing.T) {
	for _, bad := range []string{
		"ip daddr 10.0.0.1 counter accept",
		"tcp dport 80 drop",
		"numgen random mod 3 1 drop",
		"ip saddr . ip daddr drop",
		"ip6 daddr ::1 drop",
		"dnat to 10.0.0.1",
		"meta mark set 0x1",
		"log prefix \"x\" drop",
	} {
		if _, err := nft.ParseRule(bad); err == nil {
			t.Errorf("ParseRule(%q) accepted an unknown shape", bad)
		}
	}
}

func TestChainNames(t *testing.T) {
	n := nft.NamesFor(model.ServicePortName{Namespace: "ns1", Name: "svc1", Port: "p80", Protocol: model.TCP}, 80)
	if !strings.HasPrefix(n.Cluster, "service-") || !strings.HasSuffix(n.Cluster, "-ns1/svc1/tcp/p80") || len(n.Cluster) != len("service-12345678-ns1/svc1/tcp/p80") {
		t.Errorf("cluster chain name %q", n.Cluster)
	}
	unnamed := nft.NamesFor(model.ServicePortName{Namespace: "ns1", Name: "svc1", Protocol: model.UDP}, 53)
	if !strings.HasSuffix(unnamed.External, "-ns1/svc1/udp/53") || !strings.HasPrefix(unnamed.External, "external-") {
		t.Errorf("unnamed port chain name %q", unnamed.External)
	}
	if again := nft.NamesFor(model.ServicePortName{Namespace: "ns1", Name: "svc1", Port: "p80", Protocol: model.TCP}, 80); again != n {
		t.Errorf("names are not deterministic")
	}
}
