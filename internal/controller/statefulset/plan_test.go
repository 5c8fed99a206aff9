package statefulset

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func sts(replicas int32, opts ...func(*appsv1.StatefulSet)) *appsv1.StatefulSet {
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "set-uid", Generation: 2},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(replicas),
			ServiceName:         "nginx",
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To(int32(0))}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "v2"}}}},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func parallel(s *appsv1.StatefulSet) { s.Spec.PodManagementPolicy = appsv1.ParallelPodManagement }
func partitioned(n int32) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) { s.Spec.UpdateStrategy.RollingUpdate.Partition = ptr.To(n) }
}
func onDelete(s *appsv1.StatefulSet) {
	s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
}

// spod is pod web-<ord> at revision rev ("cur" or "upd"); state is one of ready, pending, failed,
// terminating, unready.
func spod(ord int, rev, state string) *corev1.Pod {
	set := sts(1)
	p := newPod(set, &set.Spec.Template, rev, ord)
	p.UID = types.UID(fmt.Sprintf("uid-%d", ord))
	switch state {
	case "ready":
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady,
			Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-time.Hour))}}}
	case "pending":
		p.Status.Phase = corev1.PodPending
	case "unready":
		p.Status.Phase = corev1.PodRunning
	case "failed":
		p.Status.Phase = corev1.PodFailed
	case "terminating":
		p.Status.Phase = corev1.PodRunning
		p.DeletionTimestamp = &metav1.Time{Time: now}
	}
	return p
}

func render(p plan) string {
	var out []string
	for _, ph := range p.phases {
		for _, s := range ph.steps {
			out = append(out, s.kind.String()+" "+s.pod.Name)
		}
	}
	return strings.Join(out, ", ")
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name string
		set  *appsv1.StatefulSet
		pods []*corev1.Pod
		want string
	}{
		{"ordered: first pod only", sts(3), nil, "create web-0"},
		{"ordered: wait for web-0 to be ready", sts(3), []*corev1.Pod{spod(0, "upd", "pending")}, ""},
		{"ordered: running but not ready", sts(3), []*corev1.Pod{spod(0, "upd", "unready")}, ""},
		{"ordered: next ordinal once ready", sts(3), []*corev1.Pod{spod(0, "upd", "ready")}, "create web-1"},
		{"ordered: a gap is filled first", sts(3), []*corev1.Pod{spod(0, "upd", "ready"), spod(2, "upd", "ready")}, "create web-1"},
		{"ordered: failed pod is deleted to be recreated", sts(3),
			[]*corev1.Pod{spod(0, "upd", "ready"), spod(1, "upd", "failed"), spod(2, "upd", "ready")}, "delete web-1"},
		{"ordered: terminating pod blocks", sts(3),
			[]*corev1.Pod{spod(0, "upd", "terminating"), spod(1, "upd", "ready")}, ""},
		{"parallel: all at once", sts(3, parallel), nil, "create web-0, create web-1, create web-2"},
		{"parallel: does not wait for readiness", sts(3, parallel), []*corev1.Pod{spod(0, "upd", "pending")}, "create web-1, create web-2"},
		{"ordered: scale down from the highest, one at a time", sts(2),
			[]*corev1.Pod{spod(0, "upd", "ready"), spod(1, "upd", "ready"), spod(2, "upd", "ready"), spod(3, "upd", "ready")}, "delete web-3"},
		{"ordered: an unhealthy condemned pod waits unless it is the first unhealthy one", sts(1),
			[]*corev1.Pod{spod(0, "upd", "ready"), spod(1, "upd", "unready"), spod(2, "upd", "unready")}, ""},
		{"ordered: healthy highest condemned pod goes despite an unhealthy one below", sts(1),
			[]*corev1.Pod{spod(0, "upd", "ready"), spod(1, "upd", "unready"), spod(2, "upd", "ready")}, "delete web-2"},
		{"ordered: the first unhealthy condemned pod may go", sts(1),
			[]*corev1.Pod{spod(0, "upd", "ready"), spod(1, "upd", "ready"), spod(2, "upd", "unready")}, "delete web-2"},
		{"ordered: scale down waits for a terminating pod", sts(1),
			[]*corev1.Pod{spod(0, "upd", "ready"), spod(1, "upd", "ready"), spod(2, "upd", "terminating")}, ""},
		{"parallel: scale down all at once", sts(1, parallel),
			[]*corev1.Pod{spod(0, "upd", "ready"), spod(1, "upd", "unready"), spod(2, "upd", "ready")}, "delete web-2, delete web-1"},
		{"rolling update from the highest ordinal", sts(3),
			[]*corev1.Pod{spod(0, "cur", "ready"), spod(1, "cur", "ready"), spod(2, "cur", "ready")}, "delete web-2"},
		{"rolling update continues below updated pods", sts(3),
			[]*corev1.Pod{spod(0, "cur", "ready"), spod(1, "cur", "ready"), spod(2, "upd", "ready")}, "delete web-1"},
		{"rolling update waits for the replaced pod", sts(3, parallel),
			[]*corev1.Pod{spod(0, "cur", "ready"), spod(1, "cur", "ready"), spod(2, "upd", "pending")}, ""},
		{"partition protects lower ordinals", sts(3, partitioned(2)),
			[]*corev1.Pod{spod(0, "cur", "ready"), spod(1, "cur", "ready"), spod(2, "upd", "ready")}, ""},
		{"maxUnavailable 2", sts(4, parallel, func(s *appsv1.StatefulSet) {
			s.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromInt32(2))
		}), []*corev1.Pod{spod(0, "cur", "ready"), spod(1, "cur", "ready"), spod(2, "cur", "ready"), spod(3, "cur", "ready")},
			"delete web-3, delete web-2"},
		{"OnDelete never deletes for an update", sts(2, onDelete),
			[]*corev1.Pod{spod(0, "cur", "ready"), spod(1, "cur", "ready")}, ""},
		{"lost identity label is restored", sts(2),
			[]*corev1.Pod{func() *corev1.Pod {
				p := spod(0, "upd", "ready")
				delete(p.Labels, appsv1.StatefulSetPodNameLabel)
				return p
			}(), spod(1, "upd", "ready")}, "update web-0"},
		{"pods of other names are ignored", sts(1),
			[]*corev1.Pod{spod(0, "upd", "ready"), func() *corev1.Pod { p := spod(0, "upd", "ready"); p.Name = "web-x"; return p }()}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pods := slices.Clone(tt.pods)
			rand.Shuffle(len(pods), func(i, j int) { pods[i], pods[j] = pods[j], pods[i] })
			p := decide(input{set: tt.set, pods: pods, currentRevision: "cur", updateRevision: "upd", now: now})
			if got := render(p); got != tt.want {
				t.Errorf("steps %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecideCreatesPodsWithIdentity(t *testing.T) {
	set := sts(2)
	p := decide(input{set: set, currentRevision: "web-abc", updateRevision: "web-abc", now: now})
	pod := p.phases[0].steps[0].pod
	want := map[string]string{"app": "web", appsv1.StatefulSetPodNameLabel: "web-0", appsv1.PodIndexLabel: "0",
		appsv1.StatefulSetRevisionLabel: "web-abc"}
	if pod.Name != "web-0" || pod.Namespace != "ns" || pod.Spec.Hostname != "web-0" || pod.Spec.Subdomain != "nginx" ||
		fmt.Sprint(pod.Labels) != fmt.Sprint(want) || pod.GenerateName != "web-" {
		t.Errorf("pod %s/%s hostname %q subdomain %q labels %v", pod.Namespace, pod.Name, pod.Spec.Hostname, pod.Spec.Subdomain, pod.Labels)
	}
	if ref := metav1.GetControllerOf(pod); ref == nil || ref.UID != "set-uid" || ref.Kind != "StatefulSet" || !*ref.BlockOwnerDeletion {
		t.Errorf("owner %+v", pod.OwnerReferences)
	}
}

func TestDecidePartitionKeepsCurrentRevision(t *testing.T) {
	set := sts(3, partitioned(2))
	old := set.Spec.Template.DeepCopy()
	old.Spec.Containers[0].Image = "v1"
	// web-0 is missing: below the partition it comes back at the current revision and template.
	in := input{set: set, pods: []*corev1.Pod{spod(1, "cur", "ready"), spod(2, "upd", "ready")},
		currentRevision: "cur", updateRevision: "upd", currentTemplate: old, now: now}
	pod := decide(in).phases[0].steps[0].pod
	if pod.Labels[appsv1.StatefulSetRevisionLabel] != "cur" || pod.Spec.Containers[0].Image != "v1" {
		t.Errorf("web-0 at %s image %s", pod.Labels[appsv1.StatefulSetRevisionLabel], pod.Spec.Containers[0].Image)
	}
	// Without the old template (after a restart) it is created at the update revision.
	in.currentTemplate = nil
	pod = decide(in).phases[0].steps[0].pod
	if pod.Labels[appsv1.StatefulSetRevisionLabel] != "upd" || pod.Spec.Containers[0].Image != "v2" {
		t.Errorf("web-0 at %s image %s", pod.Labels[appsv1.StatefulSetRevisionLabel], pod.Spec.Containers[0].Image)
	}
}

func TestDecideStatus(t *testing.T) {
	set := sts(3)
	pods := []*corev1.Pod{spod(0, "cur", "ready"), spod(1, "upd", "ready"), spod(2, "upd", "pending"), spod(3, "cur", "terminating")}
	p := decide(input{set: set, pods: pods, currentRevision: "cur", updateRevision: "upd", collisionCount: 1, now: now})
	st := p.status
	if st.Replicas != 4 || st.ReadyReplicas != 2 || st.AvailableReplicas != 2 || st.CurrentReplicas != 1 || st.UpdatedReplicas != 2 ||
		st.ObservedGeneration != 2 || st.CurrentRevision != "cur" || st.UpdateRevision != "upd" || *st.CollisionCount != 1 {
		t.Errorf("status %+v", st)
	}
	// A pod deleted for the update no longer counts as current.
	set = sts(2)
	p = decide(input{set: set, pods: []*corev1.Pod{spod(0, "cur", "ready"), spod(1, "cur", "ready")},
		currentRevision: "cur", updateRevision: "upd", now: now})
	if render(p) != "delete web-1" || p.status.CurrentReplicas != 1 {
		t.Errorf("steps %q current %d", render(p), p.status.CurrentReplicas)
	}
	// minReadySeconds: ready but not yet available.
	set = sts(1)
	set.Spec.MinReadySeconds = 7200
	p = decide(input{set: set, pods: []*corev1.Pod{spod(0, "upd", "ready")}, currentRevision: "upd", updateRevision: "upd", now: now})
	if p.status.ReadyReplicas != 1 || p.status.AvailableReplicas != 0 {
		t.Errorf("status %+v", p.status)
	}
}

func TestCompleteRollingUpdate(t *testing.T) {
	set := sts(2)
	st := appsv1.StatefulSetStatus{Replicas: 2, ReadyReplicas: 2, UpdatedReplicas: 2, CurrentReplicas: 0, CurrentRevision: "a", UpdateRevision: "b"}
	completeRollingUpdate(set, &st)
	if st.CurrentRevision != "b" || st.CurrentReplicas != 2 {
		t.Errorf("not completed: %+v", st)
	}
	st = appsv1.StatefulSetStatus{Replicas: 2, ReadyReplicas: 1, UpdatedReplicas: 2, CurrentRevision: "a", UpdateRevision: "b"}
	completeRollingUpdate(set, &st)
	if st.CurrentRevision != "a" {
		t.Errorf("completed too early: %+v", st)
	}
	if !statusChanged(set, &st) {
		t.Error("change not seen")
	}
	set.Status = st
	if statusChanged(set, &st) {
		t.Error("same status seen as a change")
	}
}

func TestRevisionName(t *testing.T) {
	set := sts(3)
	a, err := RevisionName(set, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a, "web-") || len(a) < len("web-")+5 {
		t.Errorf("revision %q", a)
	}
	b, _ := RevisionName(set.DeepCopy(), 0)
	scaled := set.DeepCopy()
	scaled.Spec.Replicas = ptr.To(int32(9))
	c, _ := RevisionName(scaled, 0)
	if a != b || a != c {
		t.Errorf("revision depends on more than the template: %s %s %s", a, b, c)
	}
	changed := set.DeepCopy()
	changed.Spec.Template.Spec.Containers[0].Image = "v3"
	if d, _ := RevisionName(changed, 0); d == a {
		t.Error("template change keeps the revision")
	}
	if e, _ := RevisionName(set, 1); e == a {
		t.Error("collision count does not change the revision")
	}
	patch, _ := templatePatch(set)
	if !strings.HasPrefix(string(patch), `{"spec":{"template":{"$patch":"replace","metadata":`) {
		t.Errorf("patch %s", patch)
	}
}

func TestOrdinals(t *testing.T) {
	tests := []struct {
		name   string
		parent string
		ord    int
	}{
		{"web-0", "web", 0}, {"web-12", "web", 12}, {"my-web-3", "my-web", 3}, {"web", "", -1}, {"web-x", "", -1},
		{"web-99999999999", "web", -1},
	}
	for _, tt := range tests {
		p, o := parentAndOrdinal(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: tt.name}})
		if p != tt.parent || o != tt.ord {
			t.Errorf("%s: %q %d, want %q %d", tt.name, p, o, tt.parent, tt.ord)
		}
	}
	set := sts(3, func(s *appsv1.StatefulSet) { s.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 5} })
	p := decide(input{set: set, currentRevision: "r", updateRevision: "r", now: now})
	if render(p) != "create web-5" {
		t.Errorf("with start ordinal 5: %q", render(p))
	}
}

func TestMaxUnavailable(t *testing.T) {
	tests := []struct {
		v    *intstr.IntOrString
		n    int32
		want int
	}{
		{nil, 5, 1}, {ptr.To(intstr.FromInt32(3)), 5, 3}, {ptr.To(intstr.FromString("50%")), 5, 2},
		{ptr.To(intstr.FromString("10%")), 5, 1}, // rounds down to 0, raised to 1
	}
	for _, tt := range tests {
		set := sts(tt.n)
		set.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = tt.v
		if got, err := maxUnavailable(set); err != nil || got != tt.want {
			t.Errorf("%v of %d: %d %v, want %d", tt.v, tt.n, got, err, tt.want)
		}
	}
}
