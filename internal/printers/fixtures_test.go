package printers_test

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// now is the instant every golden table is aged against.
var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return now }

func ago(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }

func microAgo(d time.Duration) metav1.MicroTime { return metav1.NewMicroTime(now.Add(-d)) }

const day = 24 * time.Hour

func objMeta(name string, created time.Duration) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default", CreationTimestamp: ago(created), ResourceVersion: "100"}
}

func clusterMeta(name string, created time.Duration) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, CreationTimestamp: ago(created), ResourceVersion: "100"}
}

func tcp(port int32) corev1.ServicePort {
	return corev1.ServicePort{Port: port, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(port)}
}

func serviceList() *corev1.ServiceList {
	nodePort := func(p corev1.ServicePort, np int32) corev1.ServicePort { p.NodePort = np; return p }
	return &corev1.ServiceList{
		ListMeta: metav1.ListMeta{ResourceVersion: "4711"},
		Items: []corev1.Service{
			{ObjectMeta: objMeta("kubernetes", 30*day), Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.0.1", ClusterIPs: []string{"10.96.0.1"},
				Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}},
			}},
			{ObjectMeta: objMeta("kube-dns", 30*day), Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
				Ports: []corev1.ServicePort{
					{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
					{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP},
					{Name: "metrics", Port: 9153, Protocol: corev1.ProtocolTCP},
				},
				Selector: map[string]string{"k8s-app": "kube-dns"},
			}},
			{ObjectMeta: objMeta("web-nodeport", 2*time.Hour), Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeNodePort, ClusterIP: "10.96.12.34", ClusterIPs: []string{"10.96.12.34"},
				Ports:    []corev1.ServicePort{nodePort(tcp(80), 30007)},
				Selector: map[string]string{"app": "web", "tier": "frontend"},
			}},
			{ObjectMeta: objMeta("web-lb-pending", 90*time.Second), Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.96.50.1", ClusterIPs: []string{"10.96.50.1"},
				Ports:    []corev1.ServicePort{nodePort(tcp(80), 31080), nodePort(tcp(443), 31443)},
				Selector: map[string]string{"app": "web"},
			}},
			{ObjectMeta: objMeta("web-lb", 5*time.Minute+30*time.Second), Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.96.50.2", ClusterIPs: []string{"10.96.50.2"},
				Ports:    []corev1.ServicePort{nodePort(tcp(80), 31081)},
				Selector: map[string]string{"app": "web"},
			}, Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
				{IP: "172.31.0.100"},
			}}}},
			{ObjectMeta: objMeta("web-lb-mixed", 3*day), Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.96.50.3", ClusterIPs: []string{"10.96.50.3"},
				Ports:       []corev1.ServicePort{nodePort(tcp(8080), 32000)},
				ExternalIPs: []string{"198.51.100.7"},
				Selector:    map[string]string{"app": "web"},
			}, Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
				{IP: "172.31.0.101"},
				{Hostname: "web.lb.example.com"},
				{IP: "172.31.0.101"},
			}}}},
			{ObjectMeta: objMeta("ext-ips", 45*time.Minute), Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.7.7", ClusterIPs: []string{"10.96.7.7"},
				ExternalIPs: []string{"172.31.0.50", "172.31.0.51"},
				Ports:       []corev1.ServicePort{tcp(8443)},
			}},
			{ObjectMeta: objMeta("db-headless", 400*day), Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeClusterIP, ClusterIP: corev1.ClusterIPNone, ClusterIPs: []string{corev1.ClusterIPNone},
				Ports:    []corev1.ServicePort{tcp(5432)},
				Selector: map[string]string{"app": "db"},
			}},
			{ObjectMeta: objMeta("headless-noports", 10*time.Second), Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeClusterIP, ClusterIP: corev1.ClusterIPNone, ClusterIPs: []string{corev1.ClusterIPNone},
				Selector: map[string]string{"app": "db"},
			}},
			{ObjectMeta: objMeta("my-db", 3*time.Hour+20*time.Minute), Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com",
			}},
			{ObjectMeta: objMeta("dual-stack", 7*day+5*time.Hour), Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeClusterIP, ClusterIPs: []string{"10.96.0.20", "fd00:10:96::20"},
				Ports: []corev1.ServicePort{
					{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
					{Name: "sctp", Port: 9899, Protocol: corev1.ProtocolSCTP},
				},
				Selector: map[string]string{"app": "dual"},
			}},
		},
	}
}

func running(since time.Duration) corev1.ContainerState {
	return corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: ago(since)}}
}

func waiting(reason string) corev1.ContainerState {
	return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}
}

func terminated(reason string, code int32, finished time.Duration) corev1.ContainerState {
	return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: code, FinishedAt: ago(finished)}}
}

func containers(names ...string) []corev1.Container {
	out := make([]corev1.Container, len(names))
	for i, n := range names {
		out[i] = corev1.Container{Name: n, Image: "registry.example/" + n + ":1"}
	}
	return out
}

func cond(t corev1.PodConditionType, s corev1.ConditionStatus) corev1.PodCondition {
	return corev1.PodCondition{Type: t, Status: s}
}

var readyConds = []corev1.PodCondition{
	cond(corev1.PodInitialized, corev1.ConditionTrue),
	cond(corev1.PodReady, corev1.ConditionTrue),
	cond(corev1.ContainersReady, corev1.ConditionTrue),
	cond(corev1.PodScheduled, corev1.ConditionTrue),
}

func podList() *corev1.PodList {
	deleting := func(m metav1.ObjectMeta) metav1.ObjectMeta {
		m.DeletionTimestamp = ptr.To(ago(10 * time.Second))
		return m
	}
	sidecar := containers("proxy")[0]
	sidecar.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)

	return &corev1.PodList{
		ListMeta: metav1.ListMeta{ResourceVersion: "5000", Continue: "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ", RemainingItemCount: ptr.To[int64](12)},
		Items: []corev1.Pod{
			{ObjectMeta: objMeta("web-7d4b9c-abcde", 5*day), Spec: corev1.PodSpec{Containers: containers("web"), NodeName: "node-1"},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.1.5", PodIPs: []corev1.PodIP{{IP: "10.244.1.5"}}, Conditions: readyConds,
					ContainerStatuses: []corev1.ContainerStatus{{Name: "web", Ready: true, State: running(5 * day)}}}},
			{ObjectMeta: objMeta("pending", 20*time.Second), Spec: corev1.PodSpec{Containers: containers("app")},
				Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
					{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable}}}},
			{ObjectMeta: objMeta("creating", 8*time.Second), Spec: corev1.PodSpec{Containers: containers("app", "log"), NodeName: "node-2"},
				Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{
					{Name: "app", State: waiting("ContainerCreating")}, {Name: "log", State: waiting("ContainerCreating")}}}},
			{ObjectMeta: deleting(objMeta("terminating", 2*time.Hour)), Spec: corev1.PodSpec{Containers: containers("web"), NodeName: "node-1"},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.1.6", Conditions: readyConds,
					ContainerStatuses: []corev1.ContainerStatus{{Name: "web", Ready: true, State: running(2 * time.Hour)}}}},
			{ObjectMeta: objMeta("crashloop", 40*time.Minute), Spec: corev1.PodSpec{Containers: containers("app"), NodeName: "node-2"},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.2.7",
					ContainerStatuses: []corev1.ContainerStatus{{Name: "app", RestartCount: 5, State: waiting("CrashLoopBackOff"),
						LastTerminationState: terminated("Error", 1, 5*time.Minute)}}}},
			{ObjectMeta: objMeta("completed", 3*day), Spec: corev1.PodSpec{Containers: containers("job"), NodeName: "node-1", RestartPolicy: corev1.RestartPolicyNever},
				Status: corev1.PodStatus{Phase: corev1.PodSucceeded, PodIP: "10.244.1.9",
					ContainerStatuses: []corev1.ContainerStatus{{Name: "job", State: terminated("Completed", 0, 3*day)}}}},
			{ObjectMeta: deleting(objMeta("completed-deleting", 3*day)), Spec: corev1.PodSpec{Containers: containers("job"), NodeName: "node-1"},
				Status: corev1.PodStatus{Phase: corev1.PodSucceeded,
					ContainerStatuses: []corev1.ContainerStatus{{Name: "job", State: terminated("Completed", 0, 3*day)}}}},
			{ObjectMeta: objMeta("evicted", 6*time.Hour), Spec: corev1.PodSpec{Containers: containers("app"), NodeName: "node-2"},
				Status: corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted"}},
			{ObjectMeta: objMeta("signal-killed", time.Hour), Spec: corev1.PodSpec{Containers: containers("app"), NodeName: "node-2"},
				Status: corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{Name: "app",
					State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Signal: 9, ExitCode: 137}}}}}},
			{ObjectMeta: objMeta("half-failed", time.Hour), Spec: corev1.PodSpec{Containers: containers("a", "b"), NodeName: "node-2"},
				Status: corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{
					{Name: "a", State: terminated("Completed", 0, 50*time.Minute)},
					{Name: "b", State: terminated("Error", 2, 50*time.Minute)}}}},
			{ObjectMeta: objMeta("not-ready", 15*time.Minute), Spec: corev1.PodSpec{Containers: containers("main", "helper"), NodeName: "node-1"},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.1.10",
					Conditions: []corev1.PodCondition{cond(corev1.PodReady, corev1.ConditionFalse)},
					ContainerStatuses: []corev1.ContainerStatus{
						{Name: "main", State: terminated("Completed", 0, time.Minute)},
						{Name: "helper", Ready: true, State: running(15 * time.Minute)}}}},
			{ObjectMeta: objMeta("init-progress", 30*time.Second), Spec: corev1.PodSpec{InitContainers: containers("migrate", "seed"), Containers: containers("app"), NodeName: "node-1"},
				Status: corev1.PodStatus{Phase: corev1.PodPending, PodIP: "10.244.1.11",
					InitContainerStatuses: []corev1.ContainerStatus{
						{Name: "migrate", State: terminated("Completed", 0, 10*time.Second)},
						{Name: "seed", State: running(10 * time.Second)}},
					ContainerStatuses: []corev1.ContainerStatus{{Name: "app", State: waiting("PodInitializing")}}}},
			{ObjectMeta: objMeta("init-error", 4*time.Minute), Spec: corev1.PodSpec{InitContainers: containers("migrate"), Containers: containers("app"), NodeName: "node-1"},
				Status: corev1.PodStatus{Phase: corev1.PodPending,
					InitContainerStatuses: []corev1.ContainerStatus{{Name: "migrate", RestartCount: 2, State: terminated("Error", 1, 30*time.Second),
						LastTerminationState: terminated("Error", 1, 2*time.Minute)}},
					ContainerStatuses: []corev1.ContainerStatus{{Name: "app", State: waiting("PodInitializing")}}}},
			{ObjectMeta: objMeta("init-backoff", 4*time.Minute), Spec: corev1.PodSpec{InitContainers: containers("migrate"), Containers: containers("app"), NodeName: "node-1"},
				Status: corev1.PodStatus{Phase: corev1.PodPending,
					InitContainerStatuses: []corev1.ContainerStatus{{Name: "migrate", RestartCount: 3, State: waiting("CrashLoopBackOff"),
						LastTerminationState: terminated("Error", 1, 40*time.Second)}},
					ContainerStatuses: []corev1.ContainerStatus{{Name: "app", State: waiting("PodInitializing")}}}},
			{ObjectMeta: objMeta("with-sidecar", 2*day), Spec: corev1.PodSpec{InitContainers: []corev1.Container{sidecar}, Containers: containers("app"), NodeName: "node-2"},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.2.12", Conditions: readyConds,
					InitContainerStatuses: []corev1.ContainerStatus{{Name: "proxy", Ready: true, Started: ptr.To(true), RestartCount: 1,
						State: running(2 * day), LastTerminationState: terminated("Error", 1, 2*day)}},
					ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, State: running(2 * day)}}}},
			{ObjectMeta: deleting(objMeta("node-lost", 9*day)), Spec: corev1.PodSpec{Containers: containers("app"), NodeName: "node-3"},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, Reason: "NodeLost", PodIP: "10.244.3.4",
					ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, State: running(9 * day)}}}},
			{ObjectMeta: objMeta("gated", time.Minute), Spec: corev1.PodSpec{Containers: containers("app"),
				SchedulingGates: []corev1.PodSchedulingGate{{Name: "example.com/quota"}}},
				Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
					{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonSchedulingGated}}}},
			{ObjectMeta: objMeta("gates-and-nominated", 3*time.Minute), Spec: corev1.PodSpec{Containers: containers("app"),
				ReadinessGates: []corev1.PodReadinessGate{{ConditionType: "example.com/lb-ready"}, {ConditionType: "example.com/warm"}}},
				Status: corev1.PodStatus{Phase: corev1.PodPending, NominatedNodeName: "node-2", PodIPs: []corev1.PodIP{{IP: "fd00:10:244::9"}},
					Conditions: []corev1.PodCondition{cond("example.com/lb-ready", corev1.ConditionTrue), cond("example.com/warm", corev1.ConditionFalse)}}},
		},
	}
}

func epAddrs(ips ...string) []corev1.EndpointAddress {
	out := make([]corev1.EndpointAddress, len(ips))
	for i, ip := range ips {
		out[i] = corev1.EndpointAddress{IP: ip}
	}
	return out
}

func endpointsList() *corev1.EndpointsList {
	return &corev1.EndpointsList{
		ListMeta: metav1.ListMeta{ResourceVersion: "777"},
		Items: []corev1.Endpoints{
			{ObjectMeta: objMeta("kubernetes", 30*day), Subsets: []corev1.EndpointSubset{{
				Addresses: epAddrs("172.31.0.11"), Ports: []corev1.EndpointPort{{Name: "https", Port: 6443, Protocol: corev1.ProtocolTCP}}}}},
			{ObjectMeta: objMeta("web", 2*time.Hour), Subsets: []corev1.EndpointSubset{{
				Addresses: epAddrs("10.244.1.5", "10.244.2.7", "10.244.1.8", "10.244.2.9", "10.244.3.2"),
				Ports:     []corev1.EndpointPort{{Port: 8080, Protocol: corev1.ProtocolTCP}}}}},
			{ObjectMeta: objMeta("exactly-three", 2*time.Hour), Subsets: []corev1.EndpointSubset{{
				Addresses: epAddrs("10.244.1.5", "10.244.2.7", "10.244.1.8"),
				Ports:     []corev1.EndpointPort{{Port: 80, Protocol: corev1.ProtocolTCP}}}}},
			{ObjectMeta: objMeta("multi-port", time.Hour), Subsets: []corev1.EndpointSubset{{
				Addresses: epAddrs("10.244.1.5", "10.244.2.7"),
				Ports: []corev1.EndpointPort{
					{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP},
					{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}}}}},
			{ObjectMeta: objMeta("two-subsets", time.Hour), Subsets: []corev1.EndpointSubset{
				{Addresses: epAddrs("10.244.1.5", "10.244.2.7"), Ports: []corev1.EndpointPort{{Port: 80, Protocol: corev1.ProtocolTCP}}},
				{Addresses: epAddrs("10.244.3.1", "10.244.3.2", "10.244.3.3"), Ports: []corev1.EndpointPort{{Port: 8080, Protocol: corev1.ProtocolTCP}}}}},
			{ObjectMeta: objMeta("headless-noports", 10*time.Second), Subsets: []corev1.EndpointSubset{{
				Addresses: epAddrs("10.244.1.20", "10.244.2.21")}}},
			{ObjectMeta: objMeta("no-endpoints", 10*time.Second)},
			{ObjectMeta: objMeta("none-ready", 10*time.Second), Subsets: []corev1.EndpointSubset{{
				NotReadyAddresses: epAddrs("10.244.1.30"), Ports: []corev1.EndpointPort{{Port: 80, Protocol: corev1.ProtocolTCP}}}}},
			{ObjectMeta: objMeta("ipv6", 10*time.Second), Subsets: []corev1.EndpointSubset{{
				Addresses: epAddrs("fd00:10:244::5"), Ports: []corev1.EndpointPort{{Port: 80, Protocol: corev1.ProtocolTCP}}}}},
		},
	}
}

func sliceEndpoints(addrs ...string) []discoveryv1.Endpoint {
	out := make([]discoveryv1.Endpoint, len(addrs))
	for i, a := range addrs {
		out[i] = discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(i%2 == 0)}}
	}
	return out
}

func slicePort(name string, port int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr.To(name), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}
}

func endpointSliceList() *discoveryv1.EndpointSliceList {
	return &discoveryv1.EndpointSliceList{
		ListMeta: metav1.ListMeta{ResourceVersion: "778"},
		Items: []discoveryv1.EndpointSlice{
			{ObjectMeta: objMeta("web-x7k2p", 2*time.Hour), AddressType: discoveryv1.AddressTypeIPv4,
				Ports:     []discoveryv1.EndpointPort{slicePort("", 8080)},
				Endpoints: sliceEndpoints("10.244.1.5", "10.244.2.7", "10.244.1.8", "10.244.2.9", "10.244.3.2")},
			{ObjectMeta: objMeta("multi-port-9qz4d", time.Hour), AddressType: discoveryv1.AddressTypeIPv4,
				Ports:     []discoveryv1.EndpointPort{slicePort("http", 80), slicePort("https", 443), slicePort("metrics", 9090), slicePort("admin", 8081)},
				Endpoints: sliceEndpoints("10.244.1.5")},
			{ObjectMeta: objMeta("unnamed-ports-c5v8b", time.Hour), AddressType: discoveryv1.AddressTypeIPv4,
				Ports:     []discoveryv1.EndpointPort{{Name: ptr.To("grpc")}, {}},
				Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.5", "10.244.1.6"}}}},
			{ObjectMeta: objMeta("empty-m2n4l", 10*time.Second), AddressType: discoveryv1.AddressTypeIPv4},
			{ObjectMeta: objMeta("dual-ipv6-r8t5w", 7*day), AddressType: discoveryv1.AddressTypeIPv6,
				Ports:     []discoveryv1.EndpointPort{slicePort("dns", 53)},
				Endpoints: sliceEndpoints("fd00:10:244::5", "fd00:10:244::6")},
		},
	}
}

func nodeList() *corev1.NodeList {
	ready := func(s corev1.ConditionStatus) []corev1.NodeCondition {
		return []corev1.NodeCondition{
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
			{Type: corev1.NodeReady, Status: s},
		}
	}
	info := corev1.NodeSystemInfo{KubeletVersion: "v1.35.0", OSImage: "Debian GNU/Linux 12 (bookworm)", KernelVersion: "6.8.0-45-generic", ContainerRuntimeVersion: "svcnet://0.1.0"}
	internal := func(ip string) []corev1.NodeAddress {
		return []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "h"}, {Type: corev1.NodeInternalIP, Address: ip}}
	}
	return &corev1.NodeList{
		ListMeta: metav1.ListMeta{ResourceVersion: "900"},
		Items: []corev1.Node{
			{ObjectMeta: metav1.ObjectMeta{Name: "node-1", CreationTimestamp: ago(30 * day),
				Labels: map[string]string{"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "", "kubernetes.io/hostname": "node-1"}},
				Status: corev1.NodeStatus{Conditions: ready(corev1.ConditionTrue), Addresses: internal("172.31.0.11"), NodeInfo: info}},
			{ObjectMeta: metav1.ObjectMeta{Name: "node-2", CreationTimestamp: ago(30 * day)},
				Status: corev1.NodeStatus{Conditions: ready(corev1.ConditionTrue), NodeInfo: info,
					Addresses: append(internal("172.31.0.12"), corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "198.51.100.12"})}},
			{ObjectMeta: metav1.ObjectMeta{Name: "node-3", CreationTimestamp: ago(2 * time.Hour), Labels: map[string]string{"kubernetes.io/role": "worker"}},
				Spec:   corev1.NodeSpec{Unschedulable: true},
				Status: corev1.NodeStatus{Conditions: ready(corev1.ConditionUnknown), Addresses: internal("172.31.0.13"), NodeInfo: info}},
			{ObjectMeta: metav1.ObjectMeta{Name: "node-4", CreationTimestamp: ago(time.Minute)},
				Spec:   corev1.NodeSpec{Unschedulable: true},
				Status: corev1.NodeStatus{Conditions: ready(corev1.ConditionFalse), Addresses: internal("172.31.0.14"), NodeInfo: info}},
			{ObjectMeta: metav1.ObjectMeta{Name: "registering", CreationTimestamp: ago(5 * time.Second), Labels: map[string]string{"node-role.kubernetes.io/": ""}}},
		},
	}
}

func namespaceList() *corev1.NamespaceList {
	return &corev1.NamespaceList{
		ListMeta: metav1.ListMeta{ResourceVersion: "901"},
		Items: []corev1.Namespace{
			{ObjectMeta: clusterMeta("default", 30*day), Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}},
			{ObjectMeta: clusterMeta("kube-system", 30*day), Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}},
			{ObjectMeta: clusterMeta("doomed", 3*time.Hour), Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}},
		},
	}
}

func eventList() *corev1.EventList {
	ref := func(kind, name, field string) corev1.ObjectReference {
		return corev1.ObjectReference{Kind: kind, Namespace: "default", Name: name, FieldPath: field}
	}
	return &corev1.EventList{
		ListMeta: metav1.ListMeta{ResourceVersion: "902"},
		Items: []corev1.Event{
			{ObjectMeta: objMeta("crashloop.17d2a1b2c3d4e5f6", 40*time.Minute), InvolvedObject: ref("Pod", "crashloop", "spec.containers{app}"),
				Reason: "BackOff", Message: "Back-off restarting failed container app in pod crashloop_default(1234)", Type: corev1.EventTypeWarning,
				Source: corev1.EventSource{Component: "kubelet", Host: "node-2"}, FirstTimestamp: ago(38 * time.Minute), LastTimestamp: ago(2 * time.Minute), Count: 9},
			{ObjectMeta: objMeta("web.17d2a1b2c3d4e5f7", 2*time.Hour), InvolvedObject: ref("Service", "web-lb", ""),
				Reason: "IPAllocated", Message: "Assigned IP [\"172.31.0.100\"]  \n", Type: corev1.EventTypeNormal,
				EventTime: microAgo(30 * time.Second), ReportingController: "svcnet.io/lb-ipam", ReportingInstance: "controller-manager-1"},
			{ObjectMeta: objMeta("series.17d2a1b2c3d4e5f8", 3*time.Hour), InvolvedObject: ref("Endpoints", "web", ""),
				Reason: "FailedToUpdateEndpoint", Message: "Failed to update endpoint default/web:\nconflict", Type: corev1.EventTypeWarning,
				EventTime: microAgo(3 * time.Hour), ReportingController: "endpoint-controller",
				Series: &corev1.EventSeries{Count: 7, LastObservedTime: microAgo(61 * time.Second)}},
			{ObjectMeta: clusterMeta("node-3.17d2a1b2c3d4e5f9", 2*time.Hour), InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "node-3"},
				Reason: "NodeNotReady", Message: "Node node-3 status is now: NodeNotReady", Type: corev1.EventTypeNormal,
				Source: corev1.EventSource{Component: "node-controller"}, FirstTimestamp: ago(time.Hour), LastTimestamp: ago(time.Hour), Count: 1},
			{ObjectMeta: clusterMeta("kindonly.17d2a1b2c3d4e5fa", time.Minute), InvolvedObject: corev1.ObjectReference{Kind: "ClusterCIDR"},
				Reason: "Rebuilt", Message: "allocator rebuilt", Type: corev1.EventTypeNormal},
		},
	}
}

func deploymentList() *appsv1.DeploymentList {
	tmpl := func(names ...string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers(names...)}}
	}
	return &appsv1.DeploymentList{
		ListMeta: metav1.ListMeta{ResourceVersion: "903"},
		Items: []appsv1.Deployment{
			{ObjectMeta: objMeta("web", 5*day), Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, Template: tmpl("web")},
				Status: appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 3}},
			{ObjectMeta: objMeta("rolling", 10*time.Minute), Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](4),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "rolling"},
					MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "track", Operator: metav1.LabelSelectorOpIn, Values: []string{"stable", "canary"}}}},
				Template: tmpl("app", "sidecar")},
				Status: appsv1.DeploymentStatus{Replicas: 5, UpdatedReplicas: 2, ReadyReplicas: 1, AvailableReplicas: 1}},
			{ObjectMeta: objMeta("scaled-to-zero", 400*day), Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](0),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "idle"}}, Template: tmpl("idle")}},
			{ObjectMeta: objMeta("bad-selector", time.Minute), Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1),
				Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Bogus"}}}, Template: tmpl("x")}},
		},
	}
}

func replicaSetList() *appsv1.ReplicaSetList {
	tmpl := corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers("web")}}
	return &appsv1.ReplicaSetList{
		ListMeta: metav1.ListMeta{ResourceVersion: "904"},
		Items: []appsv1.ReplicaSet{
			{ObjectMeta: objMeta("web-7d4b9c", 5*day), Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](3),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "pod-template-hash": "7d4b9c"}}, Template: tmpl},
				Status: appsv1.ReplicaSetStatus{Replicas: 3, ReadyReplicas: 2, AvailableReplicas: 2}},
			{ObjectMeta: objMeta("web-5f6a7b", 9*day), Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](0),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "pod-template-hash": "5f6a7b"}}, Template: tmpl}},
			{ObjectMeta: objMeta("no-selector", time.Minute), Spec: appsv1.ReplicaSetSpec{Template: tmpl}},
		},
	}
}

func statefulSetList() *appsv1.StatefulSetList {
	return &appsv1.StatefulSetList{
		ListMeta: metav1.ListMeta{ResourceVersion: "905"},
		Items: []appsv1.StatefulSet{
			{ObjectMeta: objMeta("db", 12*day), Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3), ServiceName: "db-headless",
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers("postgres", "exporter")}}},
				Status: appsv1.StatefulSetStatus{Replicas: 3, ReadyReplicas: 2}},
			{ObjectMeta: objMeta("cache", 90*time.Second), Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1),
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers("redis")}}},
				Status: appsv1.StatefulSetStatus{Replicas: 1, ReadyReplicas: 1}},
		},
	}
}

func leaseList() *coordinationv1.LeaseList {
	return &coordinationv1.LeaseList{
		ListMeta: metav1.ListMeta{ResourceVersion: "906"},
		Items: []coordinationv1.Lease{
			{ObjectMeta: metav1.ObjectMeta{Name: "svcnet-controller-manager", Namespace: "kube-system", CreationTimestamp: ago(30 * day)},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("node-1_5b0c7a9e"), LeaseDurationSeconds: ptr.To[int32](15)}},
			{ObjectMeta: metav1.ObjectMeta{Name: "node-2", Namespace: "kube-node-lease", CreationTimestamp: ago(30 * day)},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("node-2")}},
			{ObjectMeta: metav1.ObjectMeta{Name: "released", Namespace: "kube-system", CreationTimestamp: ago(time.Hour)}},
		},
	}
}
