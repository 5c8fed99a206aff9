package replicaset

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestCalculateStatus(t *testing.T) {
	rs := func(replicas int32, minReady int32, conds ...appsv1.ReplicaSetCondition) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: "rs", Generation: 3},
			Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(replicas), MinReadySeconds: minReady,
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "tier": "fe"}}}},
			Status: appsv1.ReplicaSetStatus{Conditions: conds},
		}
	}
	full := func(p *corev1.Pod) { p.Labels = map[string]string{"app": "web", "tier": "fe", "extra": "x"} }
	partial := func(p *corev1.Pod) { p.Labels = map[string]string{"app": "web"} }
	failure := appsv1.ReplicaSetCondition{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate"}
	tests := []struct {
		name        string
		rs          *appsv1.ReplicaSet
		active      []*corev1.Pod
		terminating int
		err         error
		want        appsv1.ReplicaSetStatus
	}{
		{name: "counts", rs: rs(3, 0),
			active:      []*corev1.Pod{pod("a", full, ready), pod("b", partial, ready), pod("c", full)},
			terminating: 2,
			want: appsv1.ReplicaSetStatus{Replicas: 3, FullyLabeledReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2,
				TerminatingReplicas: ptr.To(int32(2))}},
		{name: "minReadySeconds", rs: rs(2, 60),
			active: []*corev1.Pod{pod("a", full, readyFor(2*time.Minute)), pod("b", full, readyFor(10*time.Second))},
			want: appsv1.ReplicaSetStatus{Replicas: 2, FullyLabeledReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 1,
				TerminatingReplicas: ptr.To(int32(0))}},
		{name: "create failure sets ReplicaFailure", rs: rs(3, 0), active: []*corev1.Pod{pod("a", full)}, err: errors.New("quota"),
			want: appsv1.ReplicaSetStatus{Replicas: 1, FullyLabeledReplicas: 1, TerminatingReplicas: ptr.To(int32(0)),
				Conditions: []appsv1.ReplicaSetCondition{{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue,
					Reason: "FailedCreate", Message: "quota", LastTransitionTime: metav1.NewTime(now)}}}},
		{name: "delete failure", rs: rs(0, 0), active: []*corev1.Pod{pod("a", full)}, err: errors.New("boom"),
			want: appsv1.ReplicaSetStatus{Replicas: 1, FullyLabeledReplicas: 1, TerminatingReplicas: ptr.To(int32(0)),
				Conditions: []appsv1.ReplicaSetCondition{{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue,
					Reason: "FailedDelete", Message: "boom", LastTransitionTime: metav1.NewTime(now)}}}},
		{name: "existing failure kept on another error", rs: rs(3, 0, failure), err: errors.New("again"),
			want: appsv1.ReplicaSetStatus{TerminatingReplicas: ptr.To(int32(0)), Conditions: []appsv1.ReplicaSetCondition{failure}}},
		{name: "success clears ReplicaFailure", rs: rs(0, 0, failure),
			want: appsv1.ReplicaSetStatus{TerminatingReplicas: ptr.To(int32(0))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			term := make([]*corev1.Pod, tt.terminating)
			got := calculateStatus(tt.rs, tt.active, term, tt.err, now)
			if got.Replicas != tt.want.Replicas || got.FullyLabeledReplicas != tt.want.FullyLabeledReplicas ||
				got.ReadyReplicas != tt.want.ReadyReplicas || got.AvailableReplicas != tt.want.AvailableReplicas ||
				!ptr.Equal(got.TerminatingReplicas, tt.want.TerminatingReplicas) {
				t.Errorf("counts %+v, want %+v", got, tt.want)
			}
			if len(got.Conditions) != len(tt.want.Conditions) {
				t.Fatalf("conditions %+v, want %+v", got.Conditions, tt.want.Conditions)
			}
			for i := range got.Conditions {
				if got.Conditions[i] != tt.want.Conditions[i] {
					t.Errorf("condition %+v, want %+v", got.Conditions[i], tt.want.Conditions[i])
				}
			}
		})
	}
}

func TestStatusUpToDate(t *testing.T) {
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Generation: 2},
		Status: appsv1.ReplicaSetStatus{Replicas: 1, ObservedGeneration: 2, TerminatingReplicas: ptr.To(int32(0))}}
	st := *rs.Status.DeepCopy()
	if !statusUpToDate(rs, st) {
		t.Error("same status reported as changed")
	}
	st.TerminatingReplicas = ptr.To(int32(1))
	if statusUpToDate(rs, st) {
		t.Error("terminating change not seen")
	}
	rs.Generation = 3
	if statusUpToDate(rs, *rs.Status.DeepCopy()) {
		t.Error("new generation not seen")
	}
}

func TestExpectations(t *testing.T) {
	clock := now
	e := newExpectations(func() time.Time { return clock })
	steps := []struct {
		do   func()
		want bool
	}{
		{func() {}, true}, // never set
		{func() { e.expectCreations("k", 2) }, false},
		{func() { e.creationObserved("k") }, false},
		{func() { e.creationObserved("k") }, true},
		{func() { e.expectDeletions("k", []string{"ns/a", "ns/b"}) }, false},
		{func() { e.deletionObserved("k", "ns/a") }, false},
		{func() { e.deletionObserved("k", "ns/a") }, false}, // the same pod twice counts once
		{func() { e.deletionObserved("k", "ns/zzz") }, false},
		{func() { e.deletionObserved("k", "ns/b") }, true},
		{func() { e.expectCreations("k", 5) }, false},
		{func() { clock = clock.Add(expectationsTimeout + time.Second) }, true}, // expired
		{func() { e.expectCreations("k", 1); e.forget("k") }, true},
	}
	for i, s := range steps {
		s.do()
		if got := e.satisfied("k"); got != s.want {
			t.Fatalf("step %d: satisfied %v, want %v", i, got, s.want)
		}
	}
}

func TestSlowStartBatch(t *testing.T) {
	tests := []struct {
		count, failAt int // failAt: the call number (1-based) that fails; 0 none
		wantOK        int
		wantCalls     int
	}{
		{count: 0, wantOK: 0, wantCalls: 0},
		{count: 10, wantOK: 10, wantCalls: 10},
		{count: 10, failAt: 1, wantOK: 0, wantCalls: 1},   // batch 1 fails: stop
		{count: 10, failAt: 2, wantOK: 2, wantCalls: 3},   // batches 1, 2(fails one)
		{count: 10, failAt: 5, wantOK: 6, wantCalls: 7},   // batches 1, 2, 4(fails one)
		{count: 10, failAt: 10, wantOK: 9, wantCalls: 10}, // last batch of 3
	}
	for _, tt := range tests {
		var calls atomic.Int32
		ok, err := slowStartBatch(tt.count, 1, func() error {
			if n := calls.Add(1); int(n) == tt.failAt {
				return errors.New("fail")
			}
			return nil
		})
		if ok != tt.wantOK || int(calls.Load()) != tt.wantCalls || (err != nil) != (tt.failAt > 0) {
			t.Errorf("count %d failAt %d: ok %d calls %d err %v; want ok %d calls %d",
				tt.count, tt.failAt, ok, calls.Load(), err, tt.wantOK, tt.wantCalls)
		}
	}
}
