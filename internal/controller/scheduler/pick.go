package scheduler

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

// The reasons a node does not fit, worded as kube-scheduler's filter plugins word them, so that
// FailedScheduling messages read the same as in Kubernetes.
const (
	// ReasonUnschedulable is the NodeUnschedulable plugin's: spec.unschedulable (cordoned).
	ReasonUnschedulable = "node(s) were unschedulable"
	// ReasonTaints is the TaintToleration plugin's since Kubernetes 1.35, which no longer names
	// the taint (keys and values may be sensitive); the taint is logged at debug level instead.
	ReasonTaints = "node(s) had untolerated taint(s)"
	// ReasonNotReady is for nodes whose Ready condition is not True. kube-scheduler leaves this
	// to the node.kubernetes.io/not-ready and unreachable taints; svcnet also checks the
	// condition, with the wording of kube's former CheckNodeCondition predicate.
	ReasonNotReady = "node(s) were not ready"
	// ReasonAffinity is the NodeAffinity plugin's: spec.nodeSelector or required node affinity.
	ReasonAffinity = "node(s) didn't match Pod's node affinity/selector"
	// ReasonPorts is the NodePorts plugin's: a requested hostPort is taken on the node.
	ReasonPorts = "node(s) didn't have free ports for the requested pod ports"
	// ReasonTooManyPods is the NodeResourcesFit plugin's for the pods resource.
	ReasonTooManyPods = "Too many pods"
	// NoNodesAvailable is kube-scheduler's message when the cluster has no nodes at all.
	NoNodesAvailable = "no nodes available to schedule pods"
)

// HostPort is one host port a pod binds, normalised as kube-scheduler's HostPortInfo does: an
// empty IP means 0.0.0.0 (every address) and an empty protocol means TCP.
type HostPort struct {
	IP       string
	Protocol corev1.Protocol
	Port     int32
}

const allAddresses = "0.0.0.0"

// NodeUsage is what is already placed on one node, as far as Pick cares: pods bound to it that
// have not finished, plus pods this scheduler has bound there and the informer has not shown yet.
type NodeUsage struct {
	Pods      int
	HostPorts map[HostPort]int // number of pods using each host port
}

// HostPorts lists the host ports a pod asks for: those of its containers and of its sidecars
// (restartable init containers), as kube-scheduler counts them.
func HostPorts(pod *corev1.Pod) []HostPort {
	var out []HostPort
	add := func(ports []corev1.ContainerPort) {
		for _, p := range ports {
			if p.HostPort <= 0 {
				continue
			}
			hp := HostPort{IP: p.HostIP, Protocol: p.Protocol, Port: p.HostPort}
			if hp.IP == "" {
				hp.IP = allAddresses
			}
			if hp.Protocol == "" {
				hp.Protocol = corev1.ProtocolTCP
			}
			out = append(out, hp)
		}
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			add(c.Ports)
		}
	}
	for i := range pod.Spec.Containers {
		add(pod.Spec.Containers[i].Ports)
	}
	return out
}

// conflicts reports whether a wanted host port is already taken: a port on every address
// conflicts with the same port on any address, and a port on one address with the same port on
// that address or on every address.
func (u *NodeUsage) conflicts(want HostPort) bool {
	if u == nil || len(u.HostPorts) == 0 {
		return false
	}
	if want.IP == allAddresses {
		for used := range u.HostPorts {
			if used.Protocol == want.Protocol && used.Port == want.Port {
				return true
			}
		}
		return false
	}
	if u.HostPorts[want] > 0 {
		return true
	}
	all := want
	all.IP = allAddresses
	return u.HostPorts[all] > 0
}

// Pick chooses the node for a pod that has none: among the nodes the pod fits on, the one with the
// fewest pods, ties broken by name. The result does not depend on the order of nodes.
// podsPerNode holds each node's current usage (a missing entry is an empty node).
//
// On success reason explains the choice for the log; when no node fits node is empty and reason
// is kube-scheduler's message, "0/3 nodes are available: 1 node(s) didn't match Pod's node
// affinity/selector, 2 node(s) were unschedulable.", counting each node under the first check it
// fails, in kube-scheduler's filter order.
func Pick(pod *corev1.Pod, nodes []*corev1.Node, podsPerNode map[string]*NodeUsage) (node string, reason string) {
	if len(nodes) == 0 {
		return "", NoNodesAvailable
	}
	affinity := nodeaffinity.GetRequiredNodeAffinity(pod)
	ports := HostPorts(pod)
	failed := map[string]int{}
	best, bestPods, feasible := "", 0, 0
	for _, n := range nodes {
		u := podsPerNode[n.Name]
		if r := misfit(pod, n, u, affinity, ports); r != "" {
			failed[r]++
			continue
		}
		feasible++
		pods := 0
		if u != nil {
			pods = u.Pods
		}
		if best == "" || pods < bestPods || (pods == bestPods && n.Name < best) {
			best, bestPods = n.Name, pods
		}
	}
	if best == "" {
		return "", fitError(len(nodes), failed)
	}
	return best, fmt.Sprintf("%d/%d nodes fit, %s has the fewest pods (%d)", feasible, len(nodes), best, bestPods)
}

// misfit returns why the pod cannot go to the node, or "" when it can. The checks run in
// kube-scheduler's filter order: NodeUnschedulable, TaintToleration, (Ready), NodeAffinity,
// NodePorts, NodeResourcesFit.
func misfit(pod *corev1.Pod, node *corev1.Node, u *NodeUsage, affinity nodeaffinity.RequiredNodeAffinity, ports []HostPort) string {
	if node.Spec.Unschedulable && !tolerates(pod, &corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}) {
		return ReasonUnschedulable
	}
	for i := range node.Spec.Taints {
		t := &node.Spec.Taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if !tolerates(pod, t) {
			return ReasonTaints
		}
	}
	if !ready(node) {
		return ReasonNotReady
	}
	// An invalid selector (which validation rejects) matches no node, as in kube-scheduler.
	if ok, err := affinity.Match(node); err != nil || !ok {
		return ReasonAffinity
	}
	for _, p := range ports {
		if u.conflicts(p) {
			return ReasonPorts
		}
	}
	// A node that does not publish allocatable pods is not limited (kube would treat it as 0).
	if q, ok := node.Status.Allocatable[corev1.ResourcePods]; ok {
		used := 0
		if u != nil {
			used = u.Pods
		}
		if int64(used+1) > q.Value() {
			return ReasonTooManyPods
		}
	}
	return ""
}

// UntoleratedTaint returns the first NoSchedule or NoExecute taint of the node that the pod does
// not tolerate, for logs.
func UntoleratedTaint(pod *corev1.Pod, node *corev1.Node) (corev1.Taint, bool) {
	for _, t := range node.Spec.Taints {
		if (t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute) && !tolerates(pod, &t) {
			return t, true
		}
	}
	return corev1.Taint{}, false
}

func tolerates(pod *corev1.Pod, t *corev1.Taint) bool {
	for i := range pod.Spec.Tolerations {
		// Lt/Gt operators are behind an alpha feature gate in 1.35; like kube with the gate off,
		// they tolerate nothing.
		if pod.Spec.Tolerations[i].ToleratesTaint(klog.Background(), t, false) {
			return true
		}
	}
	return false
}

func ready(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// fitError is kube-scheduler's FitError message: per reason the number of nodes, sorted as text.
func fitError(total int, failed map[string]int) string {
	parts := make([]string, 0, len(failed))
	for r, n := range failed {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	return fmt.Sprintf("0/%d nodes are available: %s.", total, strings.Join(parts, ", "))
}
