package replicaset

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// pod builds a test pod; opts tweak it.
func pod(name string, opts ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name),
		CreationTimestamp: metav1.NewTime(now.Add(-time.Hour))},
		Spec:   corev1.PodSpec{NodeName: "node-1"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	for _, o := range opts {
		o(p)
	}
	return p
}

func unscheduled(p *corev1.Pod) { p.Spec.NodeName = "" }
func pending(p *corev1.Pod)     { p.Status.Phase = corev1.PodPending }
func unknown(p *corev1.Pod)     { p.Status.Phase = corev1.PodUnknown }
func onNode(n string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Spec.NodeName = n }
}
func readyFor(d time.Duration) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue,
			LastTransitionTime: metav1.NewTime(now.Add(-d))}}
	}
}
func ready(p *corev1.Pod) { readyFor(time.Hour)(p) }
func createdAgo(d time.Duration) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(now.Add(-d)) }
}
func cost(c int) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Annotations = map[string]string{PodDeletionCostAnnotation: strconv.Itoa(c)}
	}
}
func restarts(n int32) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", RestartCount: n}}
	}
}

func TestPodsToDelete(t *testing.T) {
	tests := []struct {
		name    string
		pods    []*corev1.Pod
		related []*corev1.Pod // nil: the pods themselves
		diff    int
		want    []string
	}{
		{name: "nothing to delete", pods: []*corev1.Pod{pod("a", ready)}, diff: 0, want: nil},
		{name: "all", pods: []*corev1.Pod{pod("a", ready), pod("b")}, diff: 2, want: []string{"a", "b"}},
		{name: "unscheduled before scheduled", diff: 1, want: []string{"u"},
			pods: []*corev1.Pod{pod("s", ready), pod("u", unscheduled, pending)}},
		{name: "pending before unknown before running", diff: 2, want: []string{"p", "k"},
			pods: []*corev1.Pod{pod("r"), pod("k", unknown), pod("p", pending)}},
		{name: "not ready before ready", diff: 1, want: []string{"n"},
			pods: []*corev1.Pod{pod("r", ready), pod("n")}},
		{name: "lower deletion cost first, even if ready longer", diff: 1, want: []string{"cheap"},
			pods: []*corev1.Pod{pod("dear", readyFor(time.Minute), cost(10)), pod("cheap", readyFor(100*time.Hour), cost(-5))}},
		{name: "invalid cost counts as zero", diff: 1, want: []string{"neg"},
			pods: []*corev1.Pod{pod("bad", ready, func(p *corev1.Pod) {
				p.Annotations = map[string]string{PodDeletionCostAnnotation: "x"}
			}), pod("neg", ready, cost(-1))}},
		{name: "doubled up on a node first", diff: 1, want: []string{"crowded"},
			pods: []*corev1.Pod{pod("alone", ready, onNode("n1")), pod("crowded", ready, onNode("n2"))},
			related: []*corev1.Pod{pod("alone", ready, onNode("n1")), pod("crowded", ready, onNode("n2")),
				pod("other", ready, onNode("n2"))}},
		{name: "recently ready first (log scale)", diff: 1, want: []string{"young"},
			pods: []*corev1.Pod{pod("old", readyFor(10*time.Hour)), pod("young", readyFor(time.Minute))}},
		{name: "more restarts first", diff: 1, want: []string{"crashy"},
			pods: []*corev1.Pod{pod("calm", restarts(0)), pod("crashy", restarts(3))}},
		{name: "newer first", diff: 1, want: []string{"new"},
			pods: []*corev1.Pod{pod("old", createdAgo(10*time.Hour)), pod("new", createdAgo(time.Minute))}},
		{name: "no creation time first", diff: 1, want: []string{"zero"},
			pods: []*corev1.Pod{pod("old"), pod("zero", func(p *corev1.Pod) { p.CreationTimestamp = metav1.Time{} })}},
		{name: "phase beats readiness and cost", diff: 2, want: []string{"u", "p"},
			pods: []*corev1.Pod{pod("r1", ready, cost(-100)), pod("p", pending), pod("u", unscheduled, pending), pod("r2", ready)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for round := 0; round < 5; round++ {
				in := slices.Clone(tt.pods)
				rand.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
				related := tt.related
				if related == nil {
					related = in
				}
				got := podNames(PodsToDelete(in, related, tt.diff, now))
				slices.Sort(got)
				want := slices.Clone(tt.want)
				slices.Sort(want)
				if len(got) == 0 && len(want) == 0 {
					continue
				}
				if !slices.Equal(got, want) {
					t.Fatalf("round %d: deleted %v, want %v", round, got, want)
				}
			}
		})
	}
}

func TestPodsToDeleteSameAgeIsRandomByUID(t *testing.T) {
	// Two pods ready within the same power-of-two age bucket: kube breaks the tie by UID, not by
	// the exact ready time, so scale-down does not always hit the newest pod.
	a := pod("a", readyFor(70*time.Minute))
	b := pod("b", readyFor(65*time.Minute))
	a.UID, b.UID = "2", "1"
	got := podNames(PodsToDelete([]*corev1.Pod{a, b}, nil, 1, now))
	if !slices.Equal(got, []string{"b"}) {
		t.Fatalf("deleted %v, want [b] (lower UID)", got)
	}
}

func TestPodFromTemplate(t *testing.T) {
	tmpl := &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"a": "b"},
			Finalizers: []string{"f"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img"}}},
	}
	ref := &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "u1",
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
	p := podFromTemplate(tmpl, "web", ref)
	if p.GenerateName != "web-" || p.Name != "" {
		t.Errorf("name %q generateName %q", p.Name, p.GenerateName)
	}
	if p.Labels["app"] != "web" || p.Annotations["a"] != "b" || len(p.Finalizers) != 1 || len(p.OwnerReferences) != 1 ||
		p.Spec.Containers[0].Image != "img" {
		t.Errorf("pod %+v", p)
	}
	p.Labels["app"] = "changed"
	if tmpl.Labels["app"] != "web" {
		t.Error("pod shares the template's labels")
	}
	if got := podPrefix("bad_name"); got != "bad_name" {
		t.Errorf("prefix of an invalid name: %q", got)
	}
}

func TestTerminatingAndActive(t *testing.T) {
	del := metav1.NewTime(now)
	tests := []struct {
		name                string
		p                   *corev1.Pod
		active, terminating bool
	}{
		{"running", pod("a"), true, false},
		{"deleting", pod("b", func(p *corev1.Pod) { p.DeletionTimestamp = &del }), false, true},
		{"failed", pod("c", func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }), false, false},
		{"succeeded and deleting", pod("d", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodSucceeded
			p.DeletionTimestamp = &del
		}), false, false},
	}
	for _, tt := range tests {
		if isPodActive(tt.p) != tt.active || isPodTerminating(tt.p) != tt.terminating {
			t.Errorf("%s: active %v terminating %v", tt.name, isPodActive(tt.p), isPodTerminating(tt.p))
		}
	}
}
