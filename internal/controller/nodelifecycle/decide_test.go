package nodelifecycle

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var (
	now     = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	created = now.Add(-time.Hour)
	grace   = 40 * time.Second
	earlier = metav1.NewTime(now.Add(-2 * time.Hour))
)

func ago(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }

type nodeOpt func(*corev1.Node)

func testNode(opts ...nodeOpt) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", CreationTimestamp: metav1.NewTime(created)}}
	for _, o := range opts {
		o(n)
	}
	return n
}

// cond adds a condition posted by the agent: status, and its heartbeat that long ago.
func cond(t corev1.NodeConditionType, s corev1.ConditionStatus, heartbeat time.Duration) nodeOpt {
	return func(n *corev1.Node) {
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: t, Status: s,
			Reason: "Agent" + string(s), Message: "from the agent", LastHeartbeatTime: ago(heartbeat), LastTransitionTime: earlier})
	}
}

// stamped adds a condition as this controller writes it.
func stamped(t corev1.NodeConditionType, heartbeat time.Duration) nodeOpt {
	return func(n *corev1.Node) {
		n.Status.Conditions = append(n.Status.Conditions, unknown(t, heartbeat, earlier))
	}
}

func unknown(t corev1.NodeConditionType, heartbeat time.Duration, transition metav1.Time) corev1.NodeCondition {
	return corev1.NodeCondition{Type: t, Status: corev1.ConditionUnknown, Reason: ReasonNodeStatusUnknown,
		Message: MessageNodeStatusUnknown, LastHeartbeatTime: ago(heartbeat), LastTransitionTime: transition}
}

func tainted(ts ...corev1.Taint) nodeOpt {
	return func(n *corev1.Node) { n.Spec.Taints = append(n.Spec.Taints, ts...) }
}

func createdAgo(d time.Duration) nodeOpt {
	return func(n *corev1.Node) { n.CreationTimestamp = ago(d) }
}

func lease(renewed time.Duration) *coordinationv1.Lease {
	t := metav1.NewMicroTime(now.Add(-renewed))
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: corev1.NamespaceNodeLease, Name: "node-1"},
		Spec: coordinationv1.LeaseSpec{RenewTime: &t}}
}

var (
	nowTS       = metav1.NewTime(now)
	old         = metav1.NewTime(now.Add(-10 * time.Minute))
	dedicated   = corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}
	unreachNS   = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule, TimeAdded: &nowTS}
	unreachNE   = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: &nowTS}
	oldUnreachS = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule, TimeAdded: &old}
	oldUnreachE = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: &old}
	notReadyNS  = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule, TimeAdded: &nowTS}
	notReadyNE  = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute, TimeAdded: &nowTS}
	oldNotReady = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule, TimeAdded: &old}
)

func TestDecide(t *testing.T) {
	cases := []struct {
		name  string
		node  *corev1.Node
		lease *coordinationv1.Lease
		want  Decision
	}{
		{name: "fresh lease, old status: healthy (kubelet posts status rarely)",
			node:  testNode(cond(corev1.NodeReady, corev1.ConditionTrue, 5*time.Minute)),
			lease: lease(10 * time.Second),
			want:  Decision{LastHeartbeat: now.Add(-10 * time.Second), RecheckAfter: 30*time.Second + time.Millisecond}},
		{name: "fresh status, no lease: healthy",
			node: testNode(cond(corev1.NodeReady, corev1.ConditionTrue, 40*time.Second)),
			want: Decision{LastHeartbeat: now.Add(-40 * time.Second), RecheckAfter: time.Millisecond}},
		{name: "newest heartbeat wins",
			node:  testNode(cond(corev1.NodeReady, corev1.ConditionTrue, 3*time.Second)),
			lease: lease(time.Minute),
			want:  Decision{LastHeartbeat: now.Add(-3 * time.Second), RecheckAfter: 37*time.Second + time.Millisecond}},
		{name: "a lease without renewTime is no heartbeat",
			node:  testNode(cond(corev1.NodeReady, corev1.ConditionTrue, 20*time.Second)),
			lease: &coordinationv1.Lease{},
			want:  Decision{LastHeartbeat: now.Add(-20 * time.Second), RecheckAfter: 20*time.Second + time.Millisecond}},
		{name: "heartbeat from a clock ahead: healthy",
			node: testNode(cond(corev1.NodeReady, corev1.ConditionTrue, -5*time.Second)),
			want: Decision{LastHeartbeat: now.Add(5 * time.Second), RecheckAfter: 45*time.Second + time.Millisecond}},

		{name: "agent stopped: conditions Unknown, unreachable taints, pods not ready",
			node: testNode(
				cond(corev1.NodeReady, corev1.ConditionTrue, 2*time.Minute),
				cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, 2*time.Minute),
				cond(corev1.NodeNetworkUnavailable, corev1.ConditionFalse, 2*time.Minute),
				tainted(dedicated)),
			lease: lease(41 * time.Second),
			want: Decision{Stale: true, LastHeartbeat: now.Add(-41 * time.Second), NotReadyNow: true, MarkPodsNotReady: true,
				Conditions: []corev1.NodeCondition{
					unknown(corev1.NodeReady, 2*time.Minute, nowTS),
					unknown(corev1.NodeMemoryPressure, 2*time.Minute, nowTS),
					// NetworkUnavailable belongs to the network plugin: untouched.
					{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse, Reason: "AgentFalse", Message: "from the agent",
						LastHeartbeatTime: ago(2 * time.Minute), LastTransitionTime: earlier},
				},
				Taints: []corev1.Taint{dedicated, unreachNS, unreachNE}, TaintsChanged: true}},
		{name: "already marked: nothing to write, pods still held not ready",
			node: testNode(stamped(corev1.NodeReady, 5*time.Minute),
				tainted(oldUnreachS, dedicated, oldUnreachE)),
			lease: lease(5 * time.Minute),
			want: Decision{Stale: true, LastHeartbeat: now.Add(-5 * time.Minute), MarkPodsNotReady: true,
				Taints: []corev1.Taint{oldUnreachS, dedicated, oldUnreachE}}},
		{name: "half marked (taint write failed): the missing taint is added",
			node:  testNode(stamped(corev1.NodeReady, 5*time.Minute), tainted(oldUnreachS)),
			lease: lease(5 * time.Minute),
			want: Decision{Stale: true, LastHeartbeat: now.Add(-5 * time.Minute), MarkPodsNotReady: true,
				Taints: []corev1.Taint{oldUnreachS, unreachNE}, TaintsChanged: true}},
		{name: "agent that reported NotReady then stopped: not-ready taint swapped for unreachable",
			node:  testNode(cond(corev1.NodeReady, corev1.ConditionFalse, time.Minute), tainted(oldNotReady)),
			lease: lease(time.Minute),
			want: Decision{Stale: true, LastHeartbeat: now.Add(-time.Minute), MarkPodsNotReady: true,
				Conditions: []corev1.NodeCondition{unknown(corev1.NodeReady, time.Minute, nowTS)},
				Taints:     []corev1.Taint{unreachNS, unreachNE}, TaintsChanged: true}},

		{name: "heartbeat resumed but Ready still Unknown: taints stay until the agent posts Ready",
			node:  testNode(stamped(corev1.NodeReady, 5*time.Minute), tainted(oldUnreachS, oldUnreachE)),
			lease: lease(time.Second),
			want: Decision{LastHeartbeat: now.Add(-time.Second), RecheckAfter: 39*time.Second + time.Millisecond,
				Taints: []corev1.Taint{oldUnreachS, oldUnreachE}}},
		{name: "agent back with Ready=True: taints removed, others kept",
			node:  testNode(cond(corev1.NodeReady, corev1.ConditionTrue, time.Second), tainted(oldUnreachS, dedicated, oldUnreachE)),
			lease: lease(time.Second),
			want: Decision{LastHeartbeat: now.Add(-time.Second), RecheckAfter: 39*time.Second + time.Millisecond,
				Taints: []corev1.Taint{dedicated}, TaintsChanged: true}},
		{name: "live agent reporting NotReady: not-ready taints, pods left to the agent",
			node:  testNode(cond(corev1.NodeReady, corev1.ConditionFalse, time.Second)),
			lease: lease(time.Second),
			want: Decision{LastHeartbeat: now.Add(-time.Second), RecheckAfter: 39*time.Second + time.Millisecond,
				Taints: []corev1.Taint{notReadyNS, notReadyNE}, TaintsChanged: true}},

		{name: "new node, no status yet: startup grace (60s) not over",
			node: testNode(createdAgo(50 * time.Second)),
			want: Decision{LastHeartbeat: now.Add(-50 * time.Second), RecheckAfter: 10*time.Second + time.Millisecond}},
		{name: "new node with a lease but no status yet: healthy",
			node:  testNode(createdAgo(5 * time.Minute)),
			lease: lease(2 * time.Second),
			want:  Decision{LastHeartbeat: now.Add(-2 * time.Second), RecheckAfter: 58*time.Second + time.Millisecond}},
		{name: "node that never posted status: Ready added as never updated, pods untouched",
			node: testNode(createdAgo(61 * time.Second)),
			want: Decision{Stale: true, LastHeartbeat: now.Add(-61 * time.Second),
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown,
					Reason: ReasonNodeStatusNeverUpdated, Message: MessageNodeStatusNeverUpdated,
					LastHeartbeatTime: ago(61 * time.Second), LastTransitionTime: nowTS}},
				Taints: []corev1.Taint{unreachNS, unreachNE}, TaintsChanged: true}},
	}
	rand.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.node.DeepCopy()
			got := Decide(tc.node, tc.lease, now, grace)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tc.node); diff != "" {
				t.Errorf("Decide modified its input (-before +after):\n%s", diff)
			}
		})
	}
}

func TestPodNotReady(t *testing.T) {
	pod := func(conds ...corev1.PodCondition) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{Conditions: conds}}
	}
	scheduled := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: earlier}
	ready := func(s corev1.ConditionStatus) corev1.PodCondition {
		return corev1.PodCondition{Type: corev1.PodReady, Status: s, Reason: "R", Message: "m", LastTransitionTime: earlier}
	}
	notReady := corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "R", Message: "m", LastTransitionTime: nowTS}
	cases := []struct {
		name   string
		pod    *corev1.Pod
		want   *corev1.Pod
		wantOK bool
	}{
		{name: "ready pod: status and transition time change, reason kept",
			pod: pod(scheduled, ready(corev1.ConditionTrue)), want: pod(scheduled, notReady), wantOK: true},
		{name: "unknown readiness", pod: pod(ready(corev1.ConditionUnknown)), want: pod(notReady), wantOK: true},
		{name: "already not ready", pod: pod(ready(corev1.ConditionFalse)), want: pod(ready(corev1.ConditionFalse))},
		{name: "no Ready condition", pod: pod(scheduled), want: pod(scheduled)},
	}
	rand.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.pod.DeepCopy()
			got, ok := PodNotReady(tc.pod, now)
			if ok != tc.wantOK {
				t.Errorf("ok = %v, want %v", ok, tc.wantOK)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("PodNotReady (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tc.pod); diff != "" {
				t.Errorf("PodNotReady modified its input:\n%s", diff)
			}
		})
	}
}
