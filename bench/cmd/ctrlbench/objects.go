package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const (
	benchNS    = "ctrlbench" // the namespace, or the prefix of the namespaces, of every Service and pod
	nodePrefix = "ctrlbench-node-"
	partOf     = "app.kubernetes.io/part-of"
)

var zones = []string{"zone-a", "zone-b", "zone-c"}

// layout names the benchmark's objects: Service s selects app=svc-s; pod i = s*perService+k is
// svc-s-k, runs on node i % nodes and has IP 10.(100+node).x.y, unique per pod. Service s and its pods
// live in namespace ctrlbench, or ctrlbench-(s % namespaces) when there are several.
type layout struct{ services, perService, nodes, namespaces int }

func newLayout(o options) layout {
	return layout{services: o.services, perService: o.podsPerService, nodes: o.nodes, namespaces: o.namespaces}
}

func (l layout) namespace(s int) string {
	if l.namespaces <= 1 {
		return benchNS
	}
	return fmt.Sprintf("%s-%d", benchNS, s%l.namespaces)
}

// ours tells the benchmark's namespaces from the others.
func ours(ns string) bool { return ns == benchNS || strings.HasPrefix(ns, benchNS+"-") }

func (l layout) pods() int { return l.services * l.perService }

func (l layout) serviceName(s int) string { return fmt.Sprintf("svc-%05d", s) }

func (l layout) podName(i int) string {
	return fmt.Sprintf("svc-%05d-%d", i/l.perService, i%l.perService)
}

// podIndex is the inverse of podName; ok is false for names that are not the benchmark's.
func (l layout) podIndex(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "svc-")
	if !ok {
		return 0, false
	}
	s, k, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	si, err1 := strconv.Atoi(s)
	ki, err2 := strconv.Atoi(k)
	if err1 != nil || err2 != nil || si < 0 || si >= l.services || ki < 0 || ki >= l.perService {
		return 0, false
	}
	return si*l.perService + ki, true
}

func (l layout) nodeName(n int) string { return fmt.Sprintf("%s%02d", nodePrefix, n) }

func (l layout) node(n int) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: l.nodeName(n), Labels: map[string]string{
		partOf: "ctrlbench", corev1.LabelTopologyZone: zones[n%len(zones)], corev1.LabelHostname: l.nodeName(n)}}}
}

func (l layout) service(s int) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: l.serviceName(s), Namespace: l.namespace(s), Labels: map[string]string{partOf: "ctrlbench"}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": l.serviceName(s)},
			Ports:    []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
}

// pod is pod i as created: scheduled to its node, no status yet.
func (l layout) pod(i int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: l.podName(i), Namespace: l.namespace(i / l.perService),
			Labels: map[string]string{"app": l.serviceName(i / l.perService), partOf: "ctrlbench"}},
		Spec: corev1.PodSpec{
			NodeName: l.nodeName(i % l.nodes),
			Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}}},
		},
	}
}

// podIP is pod i's address: 10.(100+node).hi.lo with hi.lo = 1 + the pod's index on its node.
func (l layout) podIP(i int) string {
	n, j := i%l.nodes, i/l.nodes+1
	return netip.AddrFrom4([4]byte{10, byte(100 + n), byte(j >> 8), byte(j)}).String()
}

// withStatus is pod i with the status a kubelet would report: Running, its IP, Ready or not. Sent
// without a resourceVersion, it is an unconditional status update.
func (l layout) withStatus(i int, ready bool) *corev1.Pod {
	p := l.pod(i)
	cond := corev1.ConditionFalse
	if ready {
		cond = corev1.ConditionTrue
	}
	since := metav1.Now()
	ip, host := l.podIP(i), fmt.Sprintf("172.31.0.%d", 10+i%l.nodes)
	p.Status = corev1.PodStatus{
		// The API server sets the QoS class at create and refuses any change to it.
		QOSClass: corev1.PodQOSBestEffort,
		Phase:    corev1.PodRunning,
		HostIP:   host, HostIPs: []corev1.HostIP{{IP: host}},
		PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: since},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: since},
			{Type: corev1.ContainersReady, Status: cond, LastTransitionTime: since},
			{Type: corev1.PodReady, Status: cond, LastTransitionTime: since},
		},
	}
	return p
}
