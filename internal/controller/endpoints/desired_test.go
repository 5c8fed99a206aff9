package endpoints

import (
	"bytes"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/dump"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

const testNS = "ns"

type podOpt func(*corev1.Pod)

// pod returns a running, ready pod in testNS labelled app=my-app on node-1.
func pod(name, ip string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, UID: types.UID("uid-" + name),
			Labels: map[string]string{"app": "my-app"}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c", Image: "i"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	if ip != "" {
		p.Status.PodIP = ip
		p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func labelled(kv ...string) podOpt {
	return func(p *corev1.Pod) {
		p.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Labels[kv[i]] = kv[i+1]
		}
	}
}

func notReady(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }

func noReadyCondition(p *corev1.Pod) { p.Status.Conditions = nil }

func terminating(p *corev1.Pod) {
	p.DeletionTimestamp = &metav1.Time{Time: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func phase(ph corev1.PodPhase) podOpt { return func(p *corev1.Pod) { p.Status.Phase = ph } }

func inNamespace(ns string) podOpt { return func(p *corev1.Pod) { p.Namespace = ns } }

func onNode(n string) podOpt { return func(p *corev1.Pod) { p.Spec.NodeName = n } }

func hostname(host, sub string) podOpt {
	return func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = host, sub }
}

func ips(list ...string) podOpt {
	return func(p *corev1.Pod) {
		p.Status.PodIP = list[0]
		p.Status.PodIPs = nil
		for _, ip := range list {
			p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
		}
	}
}

func containerPort(name string, port int32, proto corev1.Protocol) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports,
			corev1.ContainerPort{Name: name, ContainerPort: port, Protocol: proto})
	}
}

func sidecarPort(name string, port int32) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: "side", Image: "i",
			RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
			Ports:         []corev1.ContainerPort{{Name: name, ContainerPort: port, Protocol: corev1.ProtocolTCP}}})
	}
}

func initPort(name string, port int32) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: "init", Image: "i",
			Ports: []corev1.ContainerPort{{Name: name, ContainerPort: port, Protocol: corev1.ProtocolTCP}}})
	}
}

type svcOpt func(*corev1.Service)

// service returns a ClusterIP Service "my-svc" in testNS selecting app=my-app.
func service(opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "my-svc", Namespace: testNS},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.0.20",
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, Selector: map[string]string{"app": "my-app"}},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func port(name string, p int32, target intstr.IntOrString) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: name, Port: p, TargetPort: target, Protocol: corev1.ProtocolTCP})
	}
}

func udpPort(name string, p int32, target intstr.IntOrString) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: name, Port: p, TargetPort: target, Protocol: corev1.ProtocolUDP})
	}
}

func selector(kv ...string) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.Selector = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Spec.Selector[kv[i]] = kv[i+1]
		}
	}
}

func headless(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone }

func publishNotReady(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = true }

// addr is the address Desired makes for pod name at ip on node-1.
func addr(ip, name string) corev1.EndpointAddress {
	return corev1.EndpointAddress{IP: ip, NodeName: ptr.To("node-1"),
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: testNS, Name: name, UID: types.UID("uid-" + name)}}
}

func withHost(a corev1.EndpointAddress, h string) corev1.EndpointAddress { a.Hostname = h; return a }

func withNode(a corev1.EndpointAddress, n string) corev1.EndpointAddress { a.NodeName = &n; return a }

func tcp(name string, p int32) corev1.EndpointPort {
	return corev1.EndpointPort{Name: name, Port: p, Protocol: corev1.ProtocolTCP}
}

// sortedPorts lists ports in kube's order within a subset (by hash), which a reader cannot write down.
func sortedPorts(p ...corev1.EndpointPort) []corev1.EndpointPort {
	hash := func(v corev1.EndpointPort) []byte { h := md5.Sum([]byte(dump.ForHash(v))); return h[:] }
	slices.SortFunc(p, func(a, b corev1.EndpointPort) int { return bytes.Compare(hash(a), hash(b)) })
	return p
}

func as(a ...corev1.EndpointAddress) []corev1.EndpointAddress { return a }

func ps(p ...corev1.EndpointPort) []corev1.EndpointPort { return p }

type desiredCase struct {
	name string
	svc  *corev1.Service
	pods []*corev1.Pod
	// want nil means Desired must return nil. Subsets may be listed in any order; addresses and
	// ports within a subset must be listed in kube's order.
	want       []corev1.EndpointSubset
	wantNil    bool
	wantLabels map[string]string
}

func desiredCases() []desiredCase {
	mixed := func(n string, ip string, metrics int32, opts ...podOpt) *corev1.Pod {
		return pod(n, ip, append([]podOpt{containerPort("metrics", metrics, corev1.ProtocolTCP)}, opts...)...)
	}
	return []desiredCase{
		{
			name: "selector app=my-app, port 80 -> targetPort 8080",
			svc:  service(port("http", 80, intstr.FromInt32(8080))),
			pods: []*corev1.Pod{pod("a", "10.244.1.3"), pod("b", "10.244.1.2"), pod("other", "10.244.1.9", labelled("app", "other"))},
			want: []corev1.EndpointSubset{{Addresses: as(addr("10.244.1.2", "b"), addr("10.244.1.3", "a")), Ports: ps(tcp("http", 8080))}},
		},
		{
			name: "two-label selector, pods matching one label only are not endpoints",
			svc:  service(selector("app", "my-app", "tier", "web"), port("http", 80, intstr.FromInt32(8080))),
			pods: []*corev1.Pod{
				pod("app-only", "10.244.1.2"),
				pod("tier-only", "10.244.1.3", labelled("tier", "web")),
				pod("both", "10.244.1.4", labelled("app", "my-app", "tier", "web", "extra", "x")),
			},
			want: []corev1.EndpointSubset{{Addresses: as(addr("10.244.1.4", "both")), Ports: ps(tcp("http", 8080))}},
		},
		{
			name: "two-label selector, no pod matches both",
			svc:  service(selector("app", "my-app", "tier", "web"), port("http", 80, intstr.FromInt32(8080))),
			pods: []*corev1.Pod{pod("app-only", "10.244.1.2"), pod("tier-only", "10.244.1.3", labelled("tier", "web"))},
			want: []corev1.EndpointSubset{},
		},
		{
			name: "named targetPorts resolving differently per pod make separate subsets",
			svc:  service(port("http", 80, intstr.FromInt32(8080)), port("metrics", 9090, intstr.FromString("metrics"))),
			pods: []*corev1.Pod{
				mixed("a", "10.244.1.2", 9100), mixed("b", "10.244.1.3", 9200), mixed("c", "10.244.1.4", 9100),
			},
			// kube's RepackSubsets groups ports by the set of addresses serving them: every pod
			// serves http:8080, so that port gets a subset of its own listing all three.
			want: []corev1.EndpointSubset{
				{Addresses: as(addr("10.244.1.2", "a"), addr("10.244.1.3", "b"), addr("10.244.1.4", "c")), Ports: ps(tcp("http", 8080))},
				{Addresses: as(addr("10.244.1.2", "a"), addr("10.244.1.4", "c")), Ports: ps(tcp("metrics", 9100))},
				{Addresses: as(addr("10.244.1.3", "b")), Ports: ps(tcp("metrics", 9200))},
			},
		},
		{
			name: "ports served by the same pods share one subset",
			svc: service(port("http", 80, intstr.FromInt32(8080)), port("metrics", 9090, intstr.FromString("metrics")),
				port("admin", 9000, intstr.FromString("admin"))),
			pods: []*corev1.Pod{
				mixed("a", "10.244.1.2", 9100, containerPort("admin", 9001, corev1.ProtocolTCP)),
				mixed("b", "10.244.1.3", 9100, containerPort("admin", 9001, corev1.ProtocolTCP)),
				mixed("c", "10.244.1.4", 9200, containerPort("admin", 9002, corev1.ProtocolTCP)),
				mixed("d", "10.244.1.5", 9200, containerPort("admin", 9002, corev1.ProtocolTCP), notReady),
			},
			want: []corev1.EndpointSubset{
				{Addresses: as(addr("10.244.1.2", "a"), addr("10.244.1.3", "b"), addr("10.244.1.4", "c")),
					NotReadyAddresses: as(addr("10.244.1.5", "d")), Ports: ps(tcp("http", 8080))},
				{Addresses: as(addr("10.244.1.2", "a"), addr("10.244.1.3", "b")), Ports: sortedPorts(tcp("admin", 9001), tcp("metrics", 9100))},
				{Addresses: as(addr("10.244.1.4", "c")), NotReadyAddresses: as(addr("10.244.1.5", "d")),
					Ports: sortedPorts(tcp("admin", 9002), tcp("metrics", 9200))},
			},
		},
		{
			name: "a pod without the named port is left out of that port only",
			svc:  service(port("http", 80, intstr.FromInt32(8080)), port("metrics", 9090, intstr.FromString("metrics"))),
			pods: []*corev1.Pod{mixed("a", "10.244.1.2", 9100), pod("plain", "10.244.1.3")},
			want: []corev1.EndpointSubset{
				{Addresses: as(addr("10.244.1.2", "a"), addr("10.244.1.3", "plain")), Ports: ps(tcp("http", 8080))},
				{Addresses: as(addr("10.244.1.2", "a")), Ports: ps(tcp("metrics", 9100))},
			},
		},
		{
			name: "named targetPort must match the protocol too",
			svc:  service(udpPort("dns", 53, intstr.FromString("dns"))),
			pods: []*corev1.Pod{
				pod("tcp-only", "10.244.1.2", containerPort("dns", 5353, corev1.ProtocolTCP)),
				pod("udp", "10.244.1.3", containerPort("dns", 1053, corev1.ProtocolUDP)),
			},
			want: []corev1.EndpointSubset{{Addresses: as(addr("10.244.1.3", "udp")),
				Ports: ps(corev1.EndpointPort{Name: "dns", Port: 1053, Protocol: corev1.ProtocolUDP})}},
		},
		{
			name: "named targetPort found in a sidecar, not in a plain init container",
			svc:  service(port("http", 80, intstr.FromString("web"))),
			pods: []*corev1.Pod{pod("side", "10.244.1.2", sidecarPort("web", 8081)), pod("init", "10.244.1.3", initPort("web", 8082))},
			want: []corev1.EndpointSubset{{Addresses: as(addr("10.244.1.2", "side")), Ports: ps(tcp("http", 8081))}},
		},
		{
			name: "appProtocol is carried to the endpoint port",
			svc: service(func(s *corev1.Service) {
				s.Spec.Ports = []corev1.ServicePort{{Name: "grpc", Port: 80, TargetPort: intstr.FromInt32(9000),
					Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To("kubernetes.io/h2c")}}
			}),
			pods: []*corev1.Pod{pod("a", "10.244.1.2")},
			want: []corev1.EndpointSubset{{Addresses: as(addr("10.244.1.2", "a")),
				Ports: ps(corev1.EndpointPort{Name: "grpc", Port: 9000, Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To("kubernetes.io/h2c")})}},
		},
		{
			name: "readiness: not ready pods are notReadyAddresses, a missing condition is not ready",
			svc:  service(port("http", 80, intstr.FromInt32(8080))),
			pods: []*corev1.Pod{pod("a", "10.244.1.2"), pod("b", "10.244.1.3", notReady), pod("c", "10.244.1.4", noReadyCondition)},
			want: []corev1.EndpointSubset{{Addresses: as(addr("10.244.1.2", "a")),
				NotReadyAddresses: as(addr("10.244.1.3", "b"), addr("10.244.1.4", "c")), Ports: ps(tcp("http", 8080))}},
		},
		{
			name: "not ready and ready pods with different ports",
			svc:  service(port("metrics", 9090, intstr.FromString("metrics"))),
			pods: []*corev1.Pod{mixed("a", "10.244.1.2", 9100), mixed("b", "10.244.1.3", 9200, notReady)},
			want: []corev1.EndpointSubset{
				{Addresses: as(addr("10.244.1.2", "a")), Ports: ps(tcp("metrics", 9100))},
				{NotReadyAddresses: as(addr("10.244.1.3", "b")), Ports: ps(tcp("metrics", 9200))},
			},
		},
		{
			name: "terminating, terminal and IP-less pods are left out",
			svc:  service(port("http", 80, intstr.FromInt32(8080))),
			pods: []*corev1.Pod{
				pod("ok", "10.244.1.2"),
				pod("terminating", "10.244.1.3", terminating),
				pod("succeeded", "10.244.1.4", phase(corev1.PodSucceeded)),
				pod("failed", "10.244.1.5", phase(corev1.PodFailed)),
				pod("pending", ""),
				pod("pending-phase", "10.244.1.6", phase(corev1.PodPending), notReady),
			},
			want: []corev1.EndpointSubset{{Addresses: as(addr("10.244.1.2", "ok")),
				NotReadyAddresses: as(addr("10.244.1.6", "pending-phase")), Ports: ps(tcp("http", 8080))}},
		},
		{
			name: "publishNotReadyAddresses: not ready and terminating pods are ready addresses, terminal still out",
			svc:  service(publishNotReady, port("http", 80, intstr.FromInt32(8080))),
			pods: []*corev1.Pod{
				pod("ok", "10.244.1.2"),
				pod("unready", "10.244.1.3", notReady),
				pod("terminating", "10.244.1.4", terminating, notReady),
				pod("failed", "10.244.1.5", phase(corev1.PodFailed)),
				pod("no-ip", ""),
			},
			want: []corev1.EndpointSubset{{Addresses: as(addr("10.244.1.2", "ok"), addr("10.244.1.3", "unready"),
				addr("10.244.1.4", "terminating")), Ports: ps(tcp("http", 8080))}},
		},
		{
			name: "hostname only when the subdomain is the service",
			svc:  service(port("http", 80, intstr.FromInt32(8080))),
			pods: []*corev1.Pod{
				pod("a", "10.244.1.2", hostname("web-0", "my-svc")),
				pod("b", "10.244.1.3", hostname("web-1", "other-svc")),
				pod("c", "10.244.1.4", hostname("", "my-svc")),
			},
			want: []corev1.EndpointSubset{{Addresses: as(withHost(addr("10.244.1.2", "a"), "web-0"), addr("10.244.1.3", "b"),
				addr("10.244.1.4", "c")), Ports: ps(tcp("http", 8080))}},
		},
		{
			name: "pods in other namespaces are ignored",
			svc:  service(port("http", 80, intstr.FromInt32(8080))),
			pods: []*corev1.Pod{pod("a", "10.244.1.2"), pod("elsewhere", "10.244.1.3", inNamespace("other"))},
			want: []corev1.EndpointSubset{{Addresses: as(addr("10.244.1.2", "a")), Ports: ps(tcp("http", 8080))}},
		},
		{
			name:       "headless without ports lists addresses with no ports",
			svc:        service(headless),
			pods:       []*corev1.Pod{pod("a", "10.244.1.2"), pod("b", "10.244.1.3", notReady)},
			want:       []corev1.EndpointSubset{{Addresses: as(addr("10.244.1.2", "a")), NotReadyAddresses: as(addr("10.244.1.3", "b"))}},
			wantLabels: map[string]string{corev1.IsHeadlessService: ""},
		},
		{
			name:       "headless with ports behaves like any service",
			svc:        service(headless, func(s *corev1.Service) { s.Labels = map[string]string{"team": "a"} }, port("http", 80, intstr.FromInt32(8080))),
			pods:       []*corev1.Pod{pod("a", "10.244.1.2")},
			want:       []corev1.EndpointSubset{{Addresses: as(addr("10.244.1.2", "a")), Ports: ps(tcp("http", 8080))}},
			wantLabels: map[string]string{"team": "a", corev1.IsHeadlessService: ""},
		},
		{
			name: "service labels are copied; a headless label on a ClusterIP service is dropped",
			svc: service(func(s *corev1.Service) {
				s.Labels = map[string]string{"team": "a", corev1.IsHeadlessService: ""}
			}, port("http", 80, intstr.FromInt32(8080))),
			want:       []corev1.EndpointSubset{},
			wantLabels: map[string]string{"team": "a"},
		},
		{
			name: "hostNetwork pods on one node share the node IP and stay distinct by UID",
			svc:  service(port("http", 80, intstr.FromInt32(8080))),
			pods: []*corev1.Pod{
				pod("hn-b", "172.31.0.11", func(p *corev1.Pod) { p.Spec.HostNetwork = true }),
				pod("hn-a", "172.31.0.11", func(p *corev1.Pod) { p.Spec.HostNetwork = true }),
				pod("x", "172.31.0.12", onNode("node-2")),
			},
			want: []corev1.EndpointSubset{{Addresses: as(addr("172.31.0.11", "hn-a"), addr("172.31.0.11", "hn-b"),
				withNode(addr("172.31.0.12", "x"), "node-2")), Ports: ps(tcp("http", 8080))}},
		},
		{
			name: "dual-stack pods: the address of the service's primary family",
			svc: service(func(s *corev1.Service) {
				s.Spec.ClusterIP, s.Spec.IPFamilies = "fd00:10:96::20", []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
			}, port("http", 80, intstr.FromInt32(8080))),
			pods: []*corev1.Pod{
				pod("dual", "", ips("10.244.1.2", "fd00:10:244:1::2")),
				pod("v4-only", "10.244.1.3"),
			},
			want: []corev1.EndpointSubset{{Addresses: as(addr("fd00:10:244:1::2", "dual")), Ports: ps(tcp("http", 8080))}},
		},
		{
			name: "no IP families recorded on a headless service: the family of the pod IP",
			svc:  service(headless, func(s *corev1.Service) { s.Spec.IPFamilies = nil }, port("http", 80, intstr.FromInt32(8080))),
			pods: []*corev1.Pod{
				pod("v6-first", "", ips("fd00:10:244:1::2", "10.244.1.2")),
				pod("v4-first", "", ips("10.244.1.3", "fd00:10:244:1::3")),
			},
			want: []corev1.EndpointSubset{{Addresses: as(addr("10.244.1.3", "v4-first"), addr("fd00:10:244:1::2", "v6-first")),
				Ports: ps(tcp("http", 8080))}},
			wantLabels: map[string]string{corev1.IsHeadlessService: ""},
		},
		{
			name: "no IP families recorded on a ClusterIP service: the family of the cluster IP",
			svc: service(func(s *corev1.Service) { s.Spec.ClusterIP, s.Spec.IPFamilies = "fd00:10:96::20", nil },
				port("http", 80, intstr.FromInt32(8080))),
			pods: []*corev1.Pod{pod("v4-first", "", ips("10.244.1.3", "fd00:10:244:1::3")), pod("v4-only", "10.244.1.4")},
			want: []corev1.EndpointSubset{{Addresses: as(addr("fd00:10:244:1::3", "v4-first")), Ports: ps(tcp("http", 8080))}},
		},
		{
			name: "only podIP set (no podIPs) still counts",
			svc:  service(port("http", 80, intstr.FromInt32(8080))),
			pods: []*corev1.Pod{pod("a", "10.244.1.2", func(p *corev1.Pod) { p.Status.PodIPs = nil })},
			want: []corev1.EndpointSubset{{Addresses: as(addr("10.244.1.2", "a")), Ports: ps(tcp("http", 8080))}},
		},
		{
			name: "empty selector selects every pod in the namespace",
			svc:  service(selector(), port("http", 80, intstr.FromInt32(8080))),
			pods: []*corev1.Pod{pod("a", "10.244.1.2"), pod("b", "10.244.1.3", labelled())},
			want: []corev1.EndpointSubset{{Addresses: as(addr("10.244.1.2", "a"), addr("10.244.1.3", "b")), Ports: ps(tcp("http", 8080))}},
		},
		{
			name:    "no selector: not managed",
			svc:     service(func(s *corev1.Service) { s.Spec.Selector = nil }, port("http", 80, intstr.FromInt32(8080))),
			pods:    []*corev1.Pod{pod("a", "10.244.1.2")},
			wantNil: true,
		},
		{
			name: "ExternalName: not managed",
			svc: service(func(s *corev1.Service) {
				s.Spec.Type, s.Spec.ClusterIP, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "", "example.com"
			}),
			pods:    []*corev1.Pod{pod("a", "10.244.1.2")},
			wantNil: true,
		},
	}
}

// TestDesired runs the table in shuffled order, and each case with its pods in several orders: the
// result must not depend on either.
func TestDesired(t *testing.T) {
	cases := desiredCases()
	rand.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
	trigger := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			first := Desired(tc.svc, tc.pods, trigger)
			for i := 0; i < 8; i++ {
				shuffled := slices.Clone(tc.pods)
				rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				got := Desired(tc.svc, shuffled, trigger)
				if !equality.Semantic.DeepEqual(got, first) {
					t.Fatalf("result depends on pod order:\n%s\nvs\n%s", js(got), js(first))
				}
			}
			if tc.wantNil {
				if first != nil {
					t.Fatalf("want nil, got %s", js(first))
				}
				return
			}
			if first == nil {
				t.Fatal("got nil")
			}
			if first.Name != tc.svc.Name || first.Namespace != tc.svc.Namespace {
				t.Errorf("name %s/%s", first.Namespace, first.Name)
			}
			assertKubeOrder(t, first.Subsets)
			if got, want := canonical(first.Subsets), canonical(tc.want); got != want {
				t.Errorf("subsets:\n got %s\nwant %s", got, want)
			}
			wantLabels := tc.wantLabels
			if wantLabels == nil {
				wantLabels = map[string]string{}
			}
			if !equality.Semantic.DeepEqual(first.Labels, wantLabels) {
				t.Errorf("labels %v, want %v", first.Labels, wantLabels)
			}
			wantAnn := map[string]string{corev1.EndpointsLastChangeTriggerTime: "2025-06-01T11:00:00.123456789Z"}
			if !equality.Semantic.DeepEqual(first.Annotations, wantAnn) {
				t.Errorf("annotations %v, want %v", first.Annotations, wantAnn)
			}
		})
	}
}

func TestDesiredNoTriggerTime(t *testing.T) {
	got := Desired(service(port("http", 80, intstr.FromInt32(8080))), nil, time.Time{})
	if len(got.Annotations) != 0 {
		t.Errorf("annotations %v, want none", got.Annotations)
	}
}

// canonical renders subsets in a fixed subset order (by JSON), keeping the order inside each subset.
func canonical(subsets []corev1.EndpointSubset) string {
	var parts []string
	for _, s := range subsets {
		// nil and empty are the same once stored.
		if len(s.Addresses) == 0 {
			s.Addresses = nil
		}
		if len(s.NotReadyAddresses) == 0 {
			s.NotReadyAddresses = nil
		}
		if len(s.Ports) == 0 {
			s.Ports = nil
		}
		parts = append(parts, js(s))
	}
	slices.Sort(parts)
	return "[" + strings.Join(parts, ",\n") + "]"
}

func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// assertKubeOrder checks the ordering kube's endpoints.SortSubsets produces, computed here
// independently: addresses by IP bytes then UID, ports and subsets by the MD5 of their hash dump.
func assertKubeOrder(t *testing.T, subsets []corev1.EndpointSubset) {
	t.Helper()
	hash := func(v any) []byte { h := md5.Sum([]byte(dump.ForHash(v))); return h[:] }
	for i, s := range subsets {
		for _, list := range [][]corev1.EndpointAddress{s.Addresses, s.NotReadyAddresses} {
			for j := 1; j < len(list); j++ {
				a, b := list[j-1], list[j]
				if a.IP > b.IP || (a.IP == b.IP && a.TargetRef.UID >= b.TargetRef.UID) {
					t.Errorf("subset %d: address %s/%s before %s/%s", i, a.IP, a.TargetRef.UID, b.IP, b.TargetRef.UID)
				}
			}
		}
		for j := 1; j < len(s.Ports); j++ {
			if bytes.Compare(hash(s.Ports[j-1]), hash(s.Ports[j])) > 0 {
				t.Errorf("subset %d: ports out of hash order", i)
			}
		}
		if i > 0 && bytes.Compare(hash(subsets[i-1]), hash(s)) > 0 {
			t.Errorf("subsets %d and %d out of hash order", i-1, i)
		}
	}
}

// TestTruncation covers the 1000-address cap: ready addresses first, then not ready ones, shared
// between subsets in proportion to their size.
func TestTruncation(t *testing.T) {
	many := func(n int, prefix string, third byte, opts ...podOpt) []*corev1.Pod {
		var out []*corev1.Pod
		for i := 0; i < n; i++ {
			out = append(out, pod(fmt.Sprintf("%s-%04d", prefix, i), fmt.Sprintf("10.244.%d.%d", int(third)+i/250, i%250+1), opts...))
		}
		return out
	}
	type counts struct{ ready, notReady int }
	tests := []struct {
		name      string
		svc       *corev1.Service
		pods      []*corev1.Pod
		want      []counts // per subset, in subset order
		truncated bool
	}{
		{
			name: "exactly 1000 is not truncated",
			svc:  service(port("http", 80, intstr.FromInt32(8080))),
			pods: many(1000, "r", 0),
			want: []counts{{1000, 0}},
		},
		{
			name:      "1100 ready pods keep the first 1000",
			svc:       service(port("http", 80, intstr.FromInt32(8080))),
			pods:      many(1100, "r", 0),
			want:      []counts{{1000, 0}},
			truncated: true,
		},
		{
			name:      "ready first: 900 ready and 200 not ready keep 100 not ready",
			svc:       service(port("http", 80, intstr.FromInt32(8080))),
			pods:      append(many(900, "r", 0), many(200, "n", 10, notReady)...),
			want:      []counts{{900, 100}},
			truncated: true,
		},
		{
			name:      "too many ready: every not ready address goes",
			svc:       service(port("http", 80, intstr.FromInt32(8080))),
			pods:      append(many(1200, "r", 0), many(10, "n", 10, notReady)...),
			want:      []counts{{1000, 0}},
			truncated: true,
		},
		{
			name: "two subsets share the cap in proportion",
			svc:  service(port("metrics", 9090, intstr.FromString("metrics"))),
			pods: append(many(900, "a", 0, containerPort("metrics", 9100, corev1.ProtocolTCP)),
				many(300, "b", 10, containerPort("metrics", 9200, corev1.ProtocolTCP))...),
			truncated: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Desired(tc.svc, tc.pods, time.Time{})
			_, isTruncated := got.Annotations[corev1.EndpointsOverCapacity]
			if isTruncated != tc.truncated {
				t.Fatalf("over-capacity annotation: %v, want %v", got.Annotations, tc.truncated)
			}
			if tc.truncated && got.Annotations[corev1.EndpointsOverCapacity] != "truncated" {
				t.Errorf("annotation value %q", got.Annotations[corev1.EndpointsOverCapacity])
			}
			total := 0
			var have []counts
			for _, s := range got.Subsets {
				total += len(s.Addresses) + len(s.NotReadyAddresses)
				have = append(have, counts{len(s.Addresses), len(s.NotReadyAddresses)})
				// Truncation keeps a prefix of the sorted addresses.
				for j := 1; j < len(s.Addresses); j++ {
					if compareAddress(s.Addresses[j-1], s.Addresses[j]) >= 0 {
						t.Fatal("addresses not sorted after truncation")
					}
				}
			}
			if total > maxCapacity {
				t.Errorf("%d addresses, cap %d", total, maxCapacity)
			}
			if tc.want != nil && !slices.Equal(have, tc.want) {
				t.Errorf("counts %v, want %v", have, tc.want)
			}
			if tc.want == nil {
				// 900:300 of 1000 -> ceil(750) and the remaining 250, whichever subset comes first.
				slices.SortFunc(have, func(a, b counts) int { return b.ready - a.ready })
				if !slices.Equal(have, []counts{{750, 0}, {250, 0}}) {
					t.Errorf("counts %v, want 750 and 250", have)
				}
			}
		})
	}
}

func TestUpToDateAndMerge(t *testing.T) {
	svc := service(func(s *corev1.Service) { s.Labels = map[string]string{"team": "a"} }, port("http", 80, intstr.FromInt32(8080)))
	desired := Desired(svc, []*corev1.Pod{pod("a", "10.244.1.2")}, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	stored := merge(nil, desired)
	stored.ResourceVersion = "7"
	stored.Annotations["user"] = "kept"

	if !upToDate(stored, desired) {
		t.Fatal("freshly merged object is not up to date")
	}
	// The trigger time alone never causes a write.
	later := Desired(svc, []*corev1.Pod{pod("a", "10.244.1.2")}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if !upToDate(stored, later) {
		t.Error("a different trigger time alone made the object stale")
	}
	noTrigger := Desired(svc, []*corev1.Pod{pod("a", "10.244.1.2")}, time.Time{})
	if !upToDate(stored, noTrigger) {
		t.Error("a missing trigger time alone made the object stale")
	}
	// A pod resourceVersion in a target reference is ignored.
	withRV := stored.DeepCopy()
	withRV.Subsets[0].Addresses[0].TargetRef.ResourceVersion = "99"
	if !upToDate(withRV, desired) {
		t.Error("target reference resourceVersion made the object stale")
	}
	// nil and empty collections are the same once stored.
	empty := Desired(svc, nil, time.Time{})
	emptyStored := merge(nil, empty)
	emptyStored.Subsets = nil
	if !upToDate(emptyStored, empty) {
		t.Error("nil subsets differ from empty ones")
	}

	for name, edit := range map[string]func(*corev1.Endpoints){
		"subsets":        func(e *corev1.Endpoints) { e.Subsets = nil },
		"address":        func(e *corev1.Endpoints) { e.Subsets[0].Addresses[0].IP = "10.0.0.1" },
		"extra label":    func(e *corev1.Endpoints) { e.Labels["x"] = "y" },
		"headless label": func(e *corev1.Endpoints) { e.Labels[corev1.IsHeadlessService] = "" },
		"over-capacity":  func(e *corev1.Endpoints) { e.Annotations[corev1.EndpointsOverCapacity] = "truncated" },
		"empty over-cap": func(e *corev1.Endpoints) { e.Annotations[corev1.EndpointsOverCapacity] = "" },
	} {
		e := stored.DeepCopy()
		edit(e)
		if upToDate(e, desired) {
			t.Errorf("%s: edit not detected", name)
		}
		m := merge(e, later)
		if !upToDate(m, later) {
			t.Errorf("%s: merge did not repair", name)
		}
		if m.Annotations["user"] != "kept" || m.ResourceVersion != "7" {
			t.Errorf("%s: merge lost metadata: %v rv %s", name, m.Annotations, m.ResourceVersion)
		}
		if _, ok := m.Annotations[corev1.EndpointsOverCapacity]; ok {
			t.Errorf("%s: over-capacity annotation not removed", name)
		}
		if m.Annotations[corev1.EndpointsLastChangeTriggerTime] != "2026-01-01T00:00:00Z" {
			t.Errorf("%s: trigger time %q", name, m.Annotations[corev1.EndpointsLastChangeTriggerTime])
		}
	}
	// With no trigger time the annotation is removed, as kube does.
	if m := merge(stored, noTrigger); m.Annotations[corev1.EndpointsLastChangeTriggerTime] != "" {
		t.Errorf("trigger time kept: %v", m.Annotations)
	}
}
