package scheduler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

type nodeOpt func(*corev1.Node)

// node returns a Ready, schedulable node with room for 110 pods.
func node(name string, opts ...nodeOpt) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110")},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

func cordoned(n *corev1.Node) { n.Spec.Unschedulable = true }

func withLabels(kv ...string) nodeOpt {
	return func(n *corev1.Node) {
		for i := 0; i+1 < len(kv); i += 2 {
			n.Labels[kv[i]] = kv[i+1]
		}
	}
}

func taint(key, value string, effect corev1.TaintEffect) nodeOpt {
	return func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Value: value, Effect: effect})
	}
}

func readyStatus(s corev1.ConditionStatus) nodeOpt {
	return func(n *corev1.Node) { n.Status.Conditions[0].Status = s }
}

func noConditions(n *corev1.Node) { n.Status.Conditions = nil }

func maxPods(v string) nodeOpt {
	return func(n *corev1.Node) {
		if v == "" {
			delete(n.Status.Allocatable, corev1.ResourcePods)
			return
		}
		n.Status.Allocatable[corev1.ResourcePods] = resource.MustParse(v)
	}
}

type podOpt func(*corev1.Pod)

func pod(opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-1", UID: "uid-web-1"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func selector(kv ...string) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.NodeSelector = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Spec.NodeSelector[kv[i]] = kv[i+1]
		}
	}
}

// required adds a required node affinity with the given ORed terms.
func required(terms ...corev1.NodeSelectorTerm) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}}
	}
}

func expr(key string, op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorTerm {
	return corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

func nameIn(names ...string) corev1.NodeSelectorTerm {
	return corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: names}}}
}

func tolerate(t corev1.Toleration) podOpt {
	return func(p *corev1.Pod) { p.Spec.Tolerations = append(p.Spec.Tolerations, t) }
}

func hostPort(port int32, proto corev1.Protocol, ip string) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports,
			corev1.ContainerPort{ContainerPort: port, HostPort: port, Protocol: proto, HostIP: ip})
	}
}

func sidecarHostPort(port int32) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: "side", Image: "i",
			RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
			Ports:         []corev1.ContainerPort{{ContainerPort: port, HostPort: port}}})
	}
}

// usage builds podsPerNode from "node=count" and "node:ip/proto/port" entries.
func usage(entries ...string) map[string]*NodeUsage {
	out := map[string]*NodeUsage{}
	get := func(n string) *NodeUsage {
		if out[n] == nil {
			out[n] = &NodeUsage{}
		}
		return out[n]
	}
	for _, e := range entries {
		if n, count, ok := strings.Cut(e, "="); ok {
			get(n).Pods = atoi(count)
			continue
		}
		n, spec, _ := strings.Cut(e, ":")
		parts := strings.Split(spec, "/")
		u := get(n)
		if u.HostPorts == nil {
			u.HostPorts = map[HostPort]int{}
		}
		u.HostPorts[HostPort{IP: parts[0], Protocol: corev1.Protocol(parts[1]), Port: int32(atoi(parts[2]))}]++
	}
	return out
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

func TestPick(t *testing.T) {
	cases := []struct {
		name   string
		pod    *corev1.Pod
		nodes  []*corev1.Node
		usage  map[string]*NodeUsage
		want   string // node, or the failure message
		reason string // expected success explanation, when set
	}{
		{name: "fewest pods wins", pod: pod(),
			nodes: []*corev1.Node{node("node-1"), node("node-2"), node("node-3")},
			usage: usage("node-1=2", "node-2=1", "node-3=3"), want: "node-2",
			reason: "3/3 nodes fit, node-2 has the fewest pods (1)"},
		{name: "tie broken by name", pod: pod(),
			nodes: []*corev1.Node{node("node-b"), node("node-c"), node("node-a")},
			usage: usage("node-a=1", "node-b=0", "node-c=0"), want: "node-b"},
		{name: "empty cluster", pod: pod(), want: NoNodesAvailable},
		{name: "missing usage is an empty node", pod: pod(),
			nodes: []*corev1.Node{node("node-1"), node("node-2")}, usage: usage("node-1=1"), want: "node-2"},

		{name: "kube's message: counts per reason, sorted", pod: pod(selector("disk", "ssd")),
			nodes: []*corev1.Node{node("node-1", cordoned, withLabels("disk", "ssd")), node("node-2", withLabels("disk", "hdd")), node("node-3", cordoned)},
			want:  "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 node(s) were unschedulable."},
		{name: "cordoned node tolerated", pod: pod(tolerate(corev1.Toleration{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})),
			nodes: []*corev1.Node{node("node-1", cordoned)}, want: "node-1"},

		{name: "untolerated NoSchedule taint", pod: pod(),
			nodes: []*corev1.Node{node("node-1", taint("dedicated", "gpu", corev1.TaintEffectNoSchedule))},
			want:  "0/1 nodes are available: 1 node(s) had untolerated taint(s)."},
		{name: "untolerated NoExecute taint", pod: pod(),
			nodes: []*corev1.Node{node("node-1", taint("dedicated", "gpu", corev1.TaintEffectNoExecute))},
			want:  "0/1 nodes are available: 1 node(s) had untolerated taint(s)."},
		{name: "PreferNoSchedule does not filter", pod: pod(),
			nodes: []*corev1.Node{node("node-1", taint("dedicated", "gpu", corev1.TaintEffectPreferNoSchedule))}, want: "node-1"},
		{name: "toleration Equal", pod: pod(tolerate(corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule})),
			nodes: []*corev1.Node{node("node-1", taint("dedicated", "gpu", corev1.TaintEffectNoSchedule))}, want: "node-1"},
		{name: "toleration with another value", pod: pod(tolerate(corev1.Toleration{Key: "dedicated", Value: "db"})),
			nodes: []*corev1.Node{node("node-1", taint("dedicated", "gpu", corev1.TaintEffectNoSchedule))},
			want:  "0/1 nodes are available: 1 node(s) had untolerated taint(s)."},
		{name: "tolerate everything", pod: pod(tolerate(corev1.Toleration{Operator: corev1.TolerationOpExists})),
			nodes: []*corev1.Node{node("node-1", taint("a", "", corev1.TaintEffectNoSchedule), taint("b", "x", corev1.TaintEffectNoExecute))}, want: "node-1"},
		{name: "cordon is checked before taints", pod: pod(),
			nodes: []*corev1.Node{node("node-1", cordoned, taint(corev1.TaintNodeUnschedulable, "", corev1.TaintEffectNoSchedule))},
			want:  "0/1 nodes are available: 1 node(s) were unschedulable."},

		{name: "not ready", pod: pod(),
			nodes: []*corev1.Node{node("node-1", readyStatus(corev1.ConditionFalse)), node("node-2", readyStatus(corev1.ConditionUnknown)), node("node-3", noConditions)},
			want:  "0/3 nodes are available: 3 node(s) were not ready."},
		{name: "an unreachable node's taint is reported as kube does", pod: pod(),
			nodes: []*corev1.Node{node("node-1", readyStatus(corev1.ConditionUnknown), taint(corev1.TaintNodeUnreachable, "", corev1.TaintEffectNoSchedule))},
			want:  "0/1 nodes are available: 1 node(s) had untolerated taint(s)."},
		{name: "a tolerated unreachable node is still not ready", pod: pod(tolerate(corev1.Toleration{Operator: corev1.TolerationOpExists})),
			nodes: []*corev1.Node{node("node-1", readyStatus(corev1.ConditionUnknown), taint(corev1.TaintNodeUnreachable, "", corev1.TaintEffectNoSchedule))},
			want:  "0/1 nodes are available: 1 node(s) were not ready."},

		{name: "nodeSelector", pod: pod(selector("zone", "b")),
			nodes: []*corev1.Node{node("node-1", withLabels("zone", "a")), node("node-2", withLabels("zone", "b")), node("node-3")},
			usage: usage("node-2=5"), want: "node-2"},
		{name: "affinity In", pod: pod(required(expr("zone", corev1.NodeSelectorOpIn, "b", "c"))),
			nodes: []*corev1.Node{node("node-1", withLabels("zone", "a")), node("node-2", withLabels("zone", "c"))}, want: "node-2"},
		{name: "affinity NotIn", pod: pod(required(expr("zone", corev1.NodeSelectorOpNotIn, "a"))),
			nodes: []*corev1.Node{node("node-1", withLabels("zone", "a")), node("node-2")}, usage: usage("node-2=9"), want: "node-2"},
		{name: "affinity Exists", pod: pod(required(expr("gpu", corev1.NodeSelectorOpExists))),
			nodes: []*corev1.Node{node("node-1"), node("node-2", withLabels("gpu", ""))}, usage: usage("node-2=9"), want: "node-2"},
		{name: "affinity DoesNotExist", pod: pod(required(expr("gpu", corev1.NodeSelectorOpDoesNotExist))),
			nodes: []*corev1.Node{node("node-1", withLabels("gpu", "a100")), node("node-2")}, usage: usage("node-2=9"), want: "node-2"},
		{name: "affinity Gt", pod: pod(required(expr("cores", corev1.NodeSelectorOpGt, "8"))),
			nodes: []*corev1.Node{node("node-1", withLabels("cores", "8")), node("node-2", withLabels("cores", "16"))}, usage: usage("node-2=9"), want: "node-2"},
		{name: "affinity terms are ORed", pod: pod(required(expr("zone", corev1.NodeSelectorOpIn, "a"), expr("zone", corev1.NodeSelectorOpIn, "b"))),
			nodes: []*corev1.Node{node("node-1", withLabels("zone", "a")), node("node-2", withLabels("zone", "b")), node("node-3", withLabels("zone", "c"))},
			usage: usage("node-1=3", "node-2=2"), want: "node-2"},
		{name: "matchFields metadata.name", pod: pod(required(nameIn("node-3"))),
			nodes: []*corev1.Node{node("node-1"), node("node-2"), node("node-3")}, usage: usage("node-3=7"), want: "node-3"},
		{name: "nodeSelector and affinity both apply", pod: pod(selector("zone", "a"), required(expr("disk", corev1.NodeSelectorOpIn, "ssd"))),
			nodes: []*corev1.Node{node("node-1", withLabels("zone", "a")), node("node-2", withLabels("disk", "ssd"))},
			want:  "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."},
		{name: "an empty term matches nothing", pod: pod(required(corev1.NodeSelectorTerm{})),
			nodes: []*corev1.Node{node("node-1")},
			want:  "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."},

		{name: "host port taken", pod: pod(hostPort(80, "", "")),
			nodes: []*corev1.Node{node("node-1"), node("node-2")}, usage: usage("node-1:0.0.0.0/TCP/80", "node-2=5"), want: "node-2"},
		{name: "host port taken everywhere", pod: pod(hostPort(80, corev1.ProtocolTCP, "")),
			nodes: []*corev1.Node{node("node-1"), node("node-2")}, usage: usage("node-1:0.0.0.0/TCP/80", "node-2:10.0.0.2/TCP/80"),
			want: "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports."},
		{name: "same port, other protocol", pod: pod(hostPort(53, corev1.ProtocolUDP, "")),
			nodes: []*corev1.Node{node("node-1")}, usage: usage("node-1:0.0.0.0/TCP/53"), want: "node-1"},
		{name: "same port, other address", pod: pod(hostPort(80, "", "10.0.0.1")),
			nodes: []*corev1.Node{node("node-1")}, usage: usage("node-1:10.0.0.2/TCP/80"), want: "node-1"},
		{name: "one address against every address", pod: pod(hostPort(80, "", "10.0.0.1")),
			nodes: []*corev1.Node{node("node-1")}, usage: usage("node-1:0.0.0.0/TCP/80"),
			want: "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."},
		{name: "sidecar host ports count", pod: pod(sidecarHostPort(9100)),
			nodes: []*corev1.Node{node("node-1")}, usage: usage("node-1:0.0.0.0/TCP/9100"),
			want: "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."},

		{name: "pods capacity", pod: pod(),
			nodes: []*corev1.Node{node("node-1", maxPods("2")), node("node-2", maxPods("3"))}, usage: usage("node-1=2", "node-2=2"), want: "node-2"},
		{name: "pods capacity reached", pod: pod(),
			nodes: []*corev1.Node{node("node-1", maxPods("2")), node("node-2", maxPods("0"))}, usage: usage("node-1=2"),
			want: "0/2 nodes are available: 2 Too many pods."},
		{name: "no allocatable pods means no limit", pod: pod(),
			nodes: []*corev1.Node{node("node-1", maxPods(""))}, usage: usage("node-1=500"), want: "node-1"},

		{name: "first failing check counts, across reasons", pod: pod(selector("zone", "a"), hostPort(80, "", "")),
			nodes: []*corev1.Node{
				node("node-1", cordoned),
				node("node-2", taint("k", "v", corev1.TaintEffectNoSchedule), withLabels("zone", "a")),
				node("node-3", readyStatus(corev1.ConditionFalse)),
				node("node-4"),
				node("node-5", withLabels("zone", "a")),
				node("node-6", withLabels("zone", "a"), maxPods("1")),
				node("node-7", withLabels("zone", "a")),
			},
			usage: usage("node-5:0.0.0.0/TCP/80", "node-6=1", "node-7=4"), want: "node-7"},
		{name: "every reason at once", pod: pod(selector("zone", "a"), hostPort(80, "", "")),
			nodes: []*corev1.Node{
				node("node-1", cordoned),
				node("node-2", taint("k", "v", corev1.TaintEffectNoSchedule), withLabels("zone", "a")),
				node("node-3", readyStatus(corev1.ConditionFalse)),
				node("node-4"),
				node("node-5", withLabels("zone", "a")),
				node("node-6", withLabels("zone", "a"), maxPods("1")),
				node("node-7"),
			},
			usage: usage("node-5:0.0.0.0/TCP/80", "node-6=1"),
			want: "0/7 nodes are available: 1 Too many pods, 1 node(s) didn't have free ports for the requested pod ports, " +
				"1 node(s) had untolerated taint(s), 1 node(s) were not ready, 1 node(s) were unschedulable, " +
				"2 node(s) didn't match Pod's node affinity/selector."},
	}
	rand.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The answer must not depend on the order the informer lists nodes in.
			for attempt := 0; attempt < 6; attempt++ {
				nodes := slices.Clone(tc.nodes)
				rand.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
				got, reason := Pick(tc.pod, nodes, tc.usage)
				if got == "" {
					got = reason
				} else if tc.reason != "" && reason != tc.reason {
					t.Errorf("reason = %q, want %q", reason, tc.reason)
				}
				if got != tc.want {
					t.Fatalf("Pick(nodes in order %v) = %q, want %q", names(nodes), got, tc.want)
				}
			}
		})
	}
}

func names(nodes []*corev1.Node) []string {
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out
}

func TestUntoleratedTaint(t *testing.T) {
	n := node("node-1", taint("soft", "", corev1.TaintEffectPreferNoSchedule), taint("dedicated", "gpu", corev1.TaintEffectNoSchedule))
	got, ok := UntoleratedTaint(pod(), n)
	if !ok || got.ToString() != "dedicated=gpu:NoSchedule" {
		t.Fatalf("UntoleratedTaint = %v, %v", got.ToString(), ok)
	}
	if _, ok := UntoleratedTaint(pod(tolerate(corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpExists})), n); ok {
		t.Fatal("tolerated taint reported")
	}
}

// TestCacheSpread places pods one after the other through the cache, as the controller does,
// and checks that assumed pods count: six pods on three nodes end two per node.
func TestCacheSpread(t *testing.T) {
	c := newPodCache()
	nodes := []*corev1.Node{node("node-1"), node("node-2"), node("node-3")}
	// One pod already runs on node-3; one finished pod on node-1 does not count.
	running := pod(func(p *corev1.Pod) { p.UID, p.Name, p.Spec.NodeName = "uid-running", "running", "node-3" })
	done := pod(func(p *corev1.Pod) {
		p.UID, p.Name, p.Spec.NodeName, p.Status.Phase = "uid-done", "done", "node-1", corev1.PodSucceeded
	})
	c.observe(running)
	c.observe(done)
	var pods []*corev1.Pod
	for i := 0; i < 5; i++ {
		p := pod()
		p.UID = types.UID(fmt.Sprintf("uid-%d", i))
		pods = append(pods, p)
		if n, reason, placed := c.place(p, nodes); n == "" || placed {
			t.Fatalf("place %d: %q %q %v", i, n, reason, placed)
		}
	}
	if got := c.snapshot(); got["node-1"] != 2 || got["node-2"] != 2 || got["node-3"] != 2 {
		t.Fatalf("usage = %v, want two per node", got)
	}
	// Placing a pod twice is refused while it is assumed.
	if _, _, placed := c.place(pods[0], nodes); !placed {
		t.Fatal("assumed pod placed again")
	}
	// The informer shows the binding: still counted once.
	bound := pods[0].DeepCopy()
	bound.Spec.NodeName = "node-1"
	c.observe(bound)
	if got := c.snapshot(); got["node-1"] != 2 {
		t.Fatalf("after confirmation usage = %v", got)
	}
	// A failed binding frees the node; a confirmed one is not dropped as "assumed".
	if !c.forget(pods[1].UID, true) || c.forget(bound.UID, true) {
		t.Fatal("forget(assumedOnly) dropped the wrong pods")
	}
	// The pod finishing frees its place.
	bound.Status.Phase = corev1.PodSucceeded
	if !c.observe(bound) {
		t.Fatal("finished pod did not free its node")
	}
	if got := c.snapshot(); got["node-1"]+got["node-2"]+got["node-3"] != 4 {
		t.Fatalf("usage = %v, want 4 pods", got)
	}
}
