package nodelifecycle

import (
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The condition reasons and messages kube's node lifecycle controller writes.
const (
	ReasonNodeStatusUnknown       = "NodeStatusUnknown"
	MessageNodeStatusUnknown      = "Kubelet stopped posting node status."
	ReasonNodeStatusNeverUpdated  = "NodeStatusNeverUpdated"
	MessageNodeStatusNeverUpdated = "Kubelet never posted node status."
)

// DefaultGracePeriod is kube-controller-manager's --node-monitor-grace-period.
const DefaultGracePeriod = 40 * time.Second

// startupGrace is the grace of a node whose agent never posted a Ready condition: kube's
// --node-startup-grace-period (60s) is 1.5 times its default monitor grace period (40s).
func startupGrace(grace time.Duration) time.Duration { return grace * 3 / 2 }

// unknownConditions are the conditions set to Unknown when the agent goes silent. kube leaves
// NetworkUnavailable alone (the network plugin owns it); so does svcnet.
var unknownConditions = []corev1.NodeConditionType{
	corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure,
}

// Decision is the verdict on one node at one instant.
type Decision struct {
	// Stale: neither the Lease nor the Ready condition's heartbeat moved within the grace period.
	Stale bool
	// LastHeartbeat is the newest of the Lease's renewTime and the Ready condition's
	// lastHeartbeatTime, or the node's creation when it has neither.
	LastHeartbeat time.Time
	// Conditions is the node's status.conditions after the verdict; nil when they stay as they are.
	Conditions []corev1.NodeCondition
	// NotReadyNow: Ready goes from True to Unknown with this verdict (kube's NodeNotReady event).
	NotReadyNow bool
	// Taints is the node's spec.taints after the verdict, valid when TaintsChanged.
	Taints        []corev1.Taint
	TaintsChanged bool
	// MarkPodsNotReady: the pods on the node must have their Ready condition set to False. It holds
	// for as long as the node is stale and its agent had posted status at some point.
	MarkPodsNotReady bool
	// RecheckAfter is how long a fresh node stays fresh if nothing more is heard; zero when stale.
	RecheckAfter time.Duration
}

// Decide judges a node from its heartbeats: the Lease the agent renews in kube-node-lease (nil when
// there is none) and the Ready condition's lastHeartbeatTime. A node silent for longer than grace
// (1.5 times grace if it never posted a Ready condition) gets its Ready, MemoryPressure,
// DiskPressure and PIDPressure conditions set to Unknown, as kube's node lifecycle controller does.
// Whatever the heartbeats, the node's taints follow its Ready condition: Unknown gets
// node.kubernetes.io/unreachable, False node.kubernetes.io/not-ready, both as NoSchedule and
// NoExecute, and True neither, so the taints go once the agent posts Ready=True again.
func Decide(node *corev1.Node, lease *coordinationv1.Lease, now time.Time, grace time.Duration) Decision {
	ready := findCondition(node.Status.Conditions, corev1.NodeReady)
	last := node.CreationTimestamp.Time
	g := grace
	if ready == nil {
		g = startupGrace(grace)
	} else if hb := ready.LastHeartbeatTime.Time; hb.After(last) {
		last = hb
	}
	if lease != nil && lease.Spec.RenewTime != nil && lease.Spec.RenewTime.Time.After(last) {
		last = lease.Spec.RenewTime.Time
	}
	d := Decision{LastHeartbeat: last}
	if age := now.Sub(last); age <= g {
		d.RecheckAfter = g - age + time.Millisecond
	} else {
		d.Stale = true
	}

	conds := node.Status.Conditions
	if d.Stale {
		if next, changed := markUnknown(node, now); changed {
			d.Conditions, conds = next, next
		}
		d.NotReadyNow = ready != nil && ready.Status == corev1.ConditionTrue
		d.MarkPodsNotReady = ready != nil && ready.Reason != ReasonNodeStatusNeverUpdated
	}
	status := corev1.ConditionStatus("")
	if r := findCondition(conds, corev1.NodeReady); r != nil {
		status = r.Status
	}
	d.Taints, d.TaintsChanged = Taints(node.Spec.Taints, status, now)
	return d
}

// markUnknown returns the node's conditions with those of unknownConditions set to Unknown; a
// missing Ready condition is added as never updated. Conditions the agent never posted other than
// Ready are not invented.
func markUnknown(node *corev1.Node, now time.Time) ([]corev1.NodeCondition, bool) {
	out := make([]corev1.NodeCondition, len(node.Status.Conditions), len(node.Status.Conditions)+1)
	copy(out, node.Status.Conditions)
	changed := false
	ts := metav1.NewTime(now)
	for _, t := range unknownConditions {
		c := findCondition(out, t)
		if c == nil {
			if t == corev1.NodeReady {
				out = append(out, corev1.NodeCondition{Type: t, Status: corev1.ConditionUnknown,
					Reason: ReasonNodeStatusNeverUpdated, Message: MessageNodeStatusNeverUpdated,
					LastHeartbeatTime: node.CreationTimestamp, LastTransitionTime: ts})
				changed = true
			}
			continue
		}
		if c.Status != corev1.ConditionUnknown {
			c.Status = corev1.ConditionUnknown
			c.Reason = ReasonNodeStatusUnknown
			c.Message = MessageNodeStatusUnknown
			c.LastTransitionTime = ts
			changed = true
		}
	}
	return out, changed
}

// Taints returns a node's taints with the not-ready and unreachable NoSchedule/NoExecute taints
// made to match the Ready condition's status ("" when the node has none), and whether that
// changed them. Other taints keep their place; added ones carry timeAdded = now.
func Taints(current []corev1.Taint, ready corev1.ConditionStatus, now time.Time) ([]corev1.Taint, bool) {
	var wantKey string
	switch ready {
	case corev1.ConditionFalse:
		wantKey = corev1.TaintNodeNotReady
	case corev1.ConditionUnknown:
		wantKey = corev1.TaintNodeUnreachable
	}
	effects := []corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectNoExecute}
	managed := func(t *corev1.Taint) bool {
		return (t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable) &&
			(t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute)
	}
	out := make([]corev1.Taint, 0, len(current)+2)
	changed := false
	have := map[corev1.TaintEffect]bool{}
	for i := range current {
		t := current[i]
		if managed(&t) {
			if t.Key != wantKey {
				changed = true
				continue
			}
			if have[t.Effect] {
				// A duplicate (validation forbids them); keep one.
				changed = true
				continue
			}
			have[t.Effect] = true
		}
		out = append(out, t)
	}
	if wantKey != "" {
		ts := metav1.NewTime(now)
		for _, e := range effects {
			if !have[e] {
				out = append(out, corev1.Taint{Key: wantKey, Effect: e, TimeAdded: &ts})
				changed = true
			}
		}
	}
	if len(out) == 0 {
		out = nil
	}
	return out, changed
}

func findCondition(conds []corev1.NodeCondition, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// PodNotReady returns the pod with its Ready condition set to False, as kube's MarkPodsNotReady
// does: only the status and lastTransitionTime change (reason and message stay), and a pod
// without a Ready condition, or already not ready, is left alone (ok is false).
func PodNotReady(pod *corev1.Pod, now time.Time) (_ *corev1.Pod, ok bool) {
	for i := range pod.Status.Conditions {
		c := &pod.Status.Conditions[i]
		if c.Type != corev1.PodReady {
			continue
		}
		if c.Status == corev1.ConditionFalse {
			return pod, false
		}
		out := pod.DeepCopy()
		out.Status.Conditions[i].Status = corev1.ConditionFalse
		out.Status.Conditions[i].LastTransitionTime = metav1.NewTime(now)
		return out, true
	}
	return pod, false
}
