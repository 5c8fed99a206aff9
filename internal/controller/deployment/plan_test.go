package deployment

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
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

func ios(s string) *intstr.IntOrString {
	v := intstr.Parse(s)
	return &v
}

// deploy is a RollingUpdate Deployment with the given size and fenceposts.
func deploy(replicas int32, surge, unavailable string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "d-uid", Generation: 1},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "v2"}}}},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: ios(surge), MaxUnavailable: ios(unavailable)}},
			RevisionHistoryLimit:    ptr.To(int32(10)),
			ProgressDeadlineSeconds: ptr.To(int32(600)),
		},
	}
}

// rs is a ReplicaSet of the given spec size and available pods, created age minutes ago.
func rs(name string, spec, available int32, age int) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name),
			CreationTimestamp: metav1.NewTime(now.Add(-time.Duration(age) * time.Minute))},
		Spec:   appsv1.ReplicaSetSpec{Replicas: ptr.To(spec)},
		Status: appsv1.ReplicaSetStatus{Replicas: spec, ReadyReplicas: available, AvailableReplicas: available},
	}
}

func withAnn(r *appsv1.ReplicaSet, kv ...string) *appsv1.ReplicaSet {
	if r.Annotations == nil {
		r.Annotations = map[string]string{}
	}
	for i := 0; i < len(kv); i += 2 {
		r.Annotations[kv[i]] = kv[i+1]
	}
	return r
}

func render(plan []resize) string {
	var out []string
	for _, s := range plan {
		out = append(out, fmt.Sprintf("%s=%d", s.rs.Name, s.to))
	}
	return strings.Join(out, " ")
}

func TestResolveFenceposts(t *testing.T) {
	tests := []struct {
		surge, unavailable string
		desired            int32
		wantSurge, wantU   int32
	}{
		{"25%", "25%", 10, 3, 2}, // surge rounds up, unavailable down
		{"25%", "25%", 1, 1, 0},
		{"25%", "25%", 4, 1, 1},
		{"50%", "50%", 3, 2, 1},
		{"0", "10%", 5, 0, 1}, // both zero after rounding: unavailable becomes 1
		{"0%", "0", 0, 0, 1},
		{"2", "0", 3, 2, 0},
		{"100%", "0", 7, 7, 0},
		{"0", "100%", 7, 0, 7},
	}
	for _, tt := range tests {
		s, u, err := ResolveFenceposts(ios(tt.surge), ios(tt.unavailable), tt.desired)
		if err != nil || s != tt.wantSurge || u != tt.wantU {
			t.Errorf("(%s, %s, %d) = %d, %d, %v; want %d, %d", tt.surge, tt.unavailable, tt.desired, s, u, err, tt.wantSurge, tt.wantU)
		}
	}
	if _, _, err := ResolveFenceposts(ios("x%"), nil, 3); err == nil {
		t.Error("bad percentage accepted")
	}
}

func TestMaxSurgeAndUnavailable(t *testing.T) {
	recreate := deploy(5, "1", "1")
	recreate.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	tests := []struct {
		name        string
		d           *appsv1.Deployment
		surge, unav int32
	}{
		{"rolling", deploy(10, "25%", "25%"), 3, 2},
		{"unavailable capped at replicas", deploy(3, "0", "5"), 0, 3},
		{"zero replicas", deploy(0, "1", "1"), 1, 0},
		{"recreate", recreate, 0, 0},
	}
	for _, tt := range tests {
		if s, u := MaxSurge(tt.d), MaxUnavailable(tt.d); s != tt.surge || u != tt.unav {
			t.Errorf("%s: surge %d unavailable %d, want %d %d", tt.name, s, u, tt.surge, tt.unav)
		}
	}
}

func TestNewRSNewReplicas(t *testing.T) {
	recreate := deploy(5, "1", "1")
	recreate.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	tests := []struct {
		name   string
		d      *appsv1.Deployment
		newRS  *appsv1.ReplicaSet
		oldRSs []*appsv1.ReplicaSet
		want   int32
	}{
		{"first step uses the whole surge", deploy(10, "25%", "25%"), rs("new", 0, 0, 1), []*appsv1.ReplicaSet{rs("old", 10, 10, 9)}, 3},
		{"what is left of the surge", deploy(10, "25%", "25%"), rs("new", 3, 0, 1), []*appsv1.ReplicaSet{rs("old", 8, 8, 9)}, 5},
		{"never above replicas", deploy(10, "25%", "25%"), rs("new", 9, 0, 1), []*appsv1.ReplicaSet{rs("old", 1, 1, 9)}, 10},
		{"no room", deploy(3, "1", "0"), rs("new", 1, 0, 1), []*appsv1.ReplicaSet{rs("old", 3, 3, 9)}, 1},
		{"brand new deployment", deploy(3, "1", "0"), rs("new", 0, 0, 1), nil, 3},
		{"recreate", recreate, rs("new", 0, 0, 1), []*appsv1.ReplicaSet{rs("old", 5, 5, 9)}, 5},
	}
	for _, tt := range tests {
		got, err := NewRSNewReplicas(tt.d, append(tt.oldRSs, tt.newRS), tt.newRS)
		if err != nil || got != tt.want {
			t.Errorf("%s: %d, %v; want %d", tt.name, got, err, tt.want)
		}
	}
}

func TestPlanOldScaleDown(t *testing.T) {
	tests := []struct {
		name   string
		d      *appsv1.Deployment
		newRS  *appsv1.ReplicaSet
		oldRSs []*appsv1.ReplicaSet
		want   string
	}{
		{"new pod not available yet: wait", deploy(3, "1", "0"), rs("new", 1, 0, 1),
			[]*appsv1.ReplicaSet{rs("old", 3, 3, 9)}, ""},
		{"new pod available: one old goes", deploy(3, "1", "0"), rs("new", 1, 1, 1),
			[]*appsv1.ReplicaSet{rs("old", 3, 3, 9)}, "old=2"},
		{"unhealthy old replicas first, within the budget", deploy(3, "0", "1"), rs("new", 1, 0, 1),
			[]*appsv1.ReplicaSet{rs("old1", 2, 1, 9), rs("old2", 1, 1, 5)}, "old1=1"},
		{"oldest first across sets", deploy(4, "0", "2"), rs("new", 1, 1, 1),
			[]*appsv1.ReplicaSet{rs("old2", 2, 2, 5), rs("old1", 1, 1, 9)}, "old1=0 old2=1"},
		{"unhealthy then healthy", deploy(4, "0", "2"), rs("new", 2, 2, 1),
			[]*appsv1.ReplicaSet{rs("old", 2, 0, 9)}, "old=0"},
		{"nothing old", deploy(3, "1", "0"), rs("new", 3, 3, 1), nil, ""},
		{"availability at the floor", deploy(4, "1", "1"), rs("new", 2, 0, 1),
			[]*appsv1.ReplicaSet{rs("old", 3, 3, 9)}, ""},
	}
	for _, tt := range tests {
		all := append(slices.Clone(tt.oldRSs), tt.newRS)
		if got := render(planOldScaleDown(tt.d, all, tt.oldRSs, tt.newRS)); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestPlanScale(t *testing.T) {
	maxAnn := func(n int) []string {
		return []string{MaxReplicasAnnotation, strconv.Itoa(n), DesiredReplicasAnnotation, "10"}
	}
	saturated := withAnn(rs("new", 5, 5, 1), DesiredReplicasAnnotation, "5")
	tests := []struct {
		name   string
		d      *appsv1.Deployment
		newRS  *appsv1.ReplicaSet
		oldRSs []*appsv1.ReplicaSet
		want   string
	}{
		{"lone active set takes the size", deploy(5, "1", "0"), rs("new", 3, 3, 1),
			[]*appsv1.ReplicaSet{rs("old", 0, 0, 9)}, "new=5"},
		{"lone active old set", deploy(5, "1", "0"), rs("new", 0, 0, 1),
			[]*appsv1.ReplicaSet{rs("old", 3, 3, 9)}, "old=5"},
		{"already the size", deploy(3, "1", "0"), rs("new", 3, 3, 1), nil, ""},
		{"saturated new set: old ones to zero", deploy(5, "1", "0"), saturated,
			[]*appsv1.ReplicaSet{rs("old", 1, 1, 9)}, "old=0"},
		{"proportional up", deploy(20, "2", "0"), withAnn(rs("new", 6, 0, 1), maxAnn(12)...),
			[]*appsv1.ReplicaSet{withAnn(rs("old", 6, 6, 9), maxAnn(12)...)}, "new=11 old=11"},
		{"proportional down, older first on ties", deploy(4, "2", "0"), withAnn(rs("new", 6, 0, 1), maxAnn(12)...),
			[]*appsv1.ReplicaSet{withAnn(rs("old", 6, 6, 9), maxAnn(12)...)}, "old=3 new=3"},
		{"rounding leftover to the largest, newer on ties", deploy(11, "2", "0"), withAnn(rs("new", 4, 0, 1), maxAnn(12)...),
			[]*appsv1.ReplicaSet{withAnn(rs("mid", 4, 4, 5), maxAnn(12)...), withAnn(rs("old", 4, 4, 9), maxAnn(12)...)},
			"new=5 mid=4 old=4"},
		{"larger set grows first", deploy(11, "2", "0"), withAnn(rs("new", 7, 0, 1), maxAnn(12)...),
			[]*appsv1.ReplicaSet{withAnn(rs("old", 5, 5, 9), maxAnn(12)...)}, "new=8 old=5"},
		{"to zero", deploy(0, "2", "0"), withAnn(rs("new", 6, 0, 1), maxAnn(12)...),
			[]*appsv1.ReplicaSet{withAnn(rs("old", 6, 6, 9), maxAnn(12)...)}, "old=0 new=0"},
	}
	for _, tt := range tests {
		if got := render(planScale(tt.d, tt.newRS, tt.oldRSs)); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestCleanupCandidates(t *testing.T) {
	old := func(name string, rev int, spec int32) *appsv1.ReplicaSet {
		r := withAnn(rs(name, spec, spec, 10-rev), RevisionAnnotation, strconv.Itoa(rev))
		r.Generation, r.Status.ObservedGeneration = 1, 1
		return r
	}
	unobserved := old("r3", 3, 0)
	unobserved.Generation = 2
	deleting := old("r0", 0, 0)
	deleting.DeletionTimestamp = &metav1.Time{Time: now}
	tests := []struct {
		name  string
		limit *int32
		rss   []*appsv1.ReplicaSet
		want  []string
	}{
		{"within the limit", ptr.To(int32(5)), []*appsv1.ReplicaSet{old("r1", 1, 0), old("r2", 2, 0)}, nil},
		{"lowest revisions beyond the limit, scaled-down ones only", ptr.To(int32(2)),
			[]*appsv1.ReplicaSet{old("r4", 4, 0), old("r1", 1, 2), old("r2", 2, 0), unobserved, deleting}, []string{"r2"}},
		{"limit zero deletes every idle old set", ptr.To(int32(0)),
			[]*appsv1.ReplicaSet{old("r2", 2, 0), old("r1", 1, 0)}, []string{"r1", "r2"}},
		{"no limit", nil, []*appsv1.ReplicaSet{old("r1", 1, 0)}, nil},
	}
	for _, tt := range tests {
		d := deploy(1, "1", "0")
		d.Spec.RevisionHistoryLimit = tt.limit
		in := slices.Clone(tt.rss)
		rand.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
		var got []string
		for _, r := range cleanupCandidates(d, in) {
			got = append(got, r.Name)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestCalculateStatus(t *testing.T) {
	d := deploy(4, "1", "1")
	d.Generation = 7
	newRS := rs("new", 3, 2, 1)
	newRS.Status.TerminatingReplicas = ptr.To(int32(1))
	newRS.Status.ObservedGeneration = 1
	old := rs("old", 2, 2, 9)
	old.Status.TerminatingReplicas = ptr.To(int32(0))
	old.Status.ObservedGeneration = 1
	st := calculateStatus([]*appsv1.ReplicaSet{old, newRS}, newRS, d, now)
	if st.ObservedGeneration != 7 || st.Replicas != 5 || st.UpdatedReplicas != 3 || st.ReadyReplicas != 4 ||
		st.AvailableReplicas != 4 || st.UnavailableReplicas != 1 || ptr.Deref(st.TerminatingReplicas, -1) != 1 {
		t.Errorf("status %+v", st)
	}
	c := getCondition(st, appsv1.DeploymentAvailable)
	if c == nil || c.Status != corev1.ConditionTrue || c.Reason != MinimumReplicasAvailable || c.Message != "Deployment has minimum availability." {
		t.Errorf("available condition %+v", c)
	}
	// Below replicas - maxUnavailable: not available.
	newRS.Status.AvailableReplicas = 0
	old.Status.AvailableReplicas = 1
	st = calculateStatus([]*appsv1.ReplicaSet{old, newRS}, newRS, d, now)
	if c := getCondition(st, appsv1.DeploymentAvailable); c.Status != corev1.ConditionFalse || c.Reason != MinimumReplicasUnavailable {
		t.Errorf("unavailable condition %+v", c)
	}
	if st.UnavailableReplicas != 4 {
		t.Errorf("unavailable %d", st.UnavailableReplicas)
	}
	// A synced ReplicaSet without terminatingReplicas makes the sum unknown.
	old.Status.TerminatingReplicas = nil
	if st := calculateStatus([]*appsv1.ReplicaSet{old, newRS}, newRS, d, now); st.TerminatingReplicas != nil {
		t.Errorf("terminating %v, want nil", *st.TerminatingReplicas)
	}
}

func TestRolloutStatusProgressing(t *testing.T) {
	cond := func(reason string, status corev1.ConditionStatus, updatedAgo time.Duration) appsv1.DeploymentCondition {
		c := newCondition(appsv1.DeploymentProgressing, status, reason, "", now.Add(-time.Hour))
		c.LastUpdateTime = metav1.NewTime(now.Add(-updatedAgo))
		return c
	}
	tests := []struct {
		name       string
		prev       appsv1.DeploymentStatus
		newRS      *appsv1.ReplicaSet
		old        *appsv1.ReplicaSet
		wantReason string
		wantStatus corev1.ConditionStatus
		wantMsg    string
	}{
		{"complete", appsv1.DeploymentStatus{Conditions: []appsv1.DeploymentCondition{cond(ReplicaSetUpdatedReason, corev1.ConditionTrue, time.Minute)}},
			rs("web-abc", 3, 3, 1), rs("old", 0, 0, 9), NewRSAvailableReason, corev1.ConditionTrue, `ReplicaSet "web-abc" has successfully progressed.`},
		{"progress", appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1, Conditions: []appsv1.DeploymentCondition{cond(NewReplicaSetReason, corev1.ConditionTrue, time.Minute)}},
			rs("web-abc", 2, 1, 1), rs("old", 2, 2, 9), ReplicaSetUpdatedReason, corev1.ConditionTrue, `ReplicaSet "web-abc" is progressing.`},
		{"stuck past the deadline", appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 2, ReadyReplicas: 3, AvailableReplicas: 3,
			Conditions: []appsv1.DeploymentCondition{cond(ReplicaSetUpdatedReason, corev1.ConditionTrue, 11*time.Minute)}},
			func() *appsv1.ReplicaSet { r := rs("web-abc", 2, 1, 1); r.Status.ReadyReplicas = 1; return r }(),
			rs("old", 2, 2, 9), TimedOutReason, corev1.ConditionFalse, `ReplicaSet "web-abc" has timed out progressing.`},
		{"stuck within the deadline", appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 2, ReadyReplicas: 3, AvailableReplicas: 3,
			Conditions: []appsv1.DeploymentCondition{cond(ReplicaSetUpdatedReason, corev1.ConditionTrue, 5*time.Minute)}},
			func() *appsv1.ReplicaSet { r := rs("web-abc", 2, 1, 1); r.Status.ReadyReplicas = 1; return r }(),
			rs("old", 2, 2, 9), ReplicaSetUpdatedReason, corev1.ConditionTrue, ""},
	}
	for _, tt := range tests {
		d := deploy(3, "1", "0")
		d.Status = tt.prev
		st := rolloutStatus([]*appsv1.ReplicaSet{tt.old, tt.newRS}, tt.newRS, d, now)
		c := getCondition(st, appsv1.DeploymentProgressing)
		if c == nil || c.Reason != tt.wantReason || c.Status != tt.wantStatus || c.Message != tt.wantMsg {
			t.Errorf("%s: progressing %+v, want %s/%s %q", tt.name, c, tt.wantReason, tt.wantStatus, tt.wantMsg)
		}
	}
	// Progress keeps lastTransitionTime and refreshes lastUpdateTime.
	d := deploy(3, "1", "0")
	prev := cond(ReplicaSetUpdatedReason, corev1.ConditionTrue, time.Minute)
	d.Status = appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1, Conditions: []appsv1.DeploymentCondition{prev}}
	st := rolloutStatus([]*appsv1.ReplicaSet{rs("old", 2, 2, 9), rs("new", 2, 0, 1)}, rs("new", 2, 0, 1), d, now)
	c := getCondition(st, appsv1.DeploymentProgressing)
	if !c.LastTransitionTime.Equal(&prev.LastTransitionTime) || !c.LastUpdateTime.Time.Equal(now) {
		t.Errorf("progress condition times %+v", c)
	}
	// Without a deadline there is no Progressing condition.
	d.Spec.ProgressDeadlineSeconds = nil
	if st := rolloutStatus(nil, nil, d, now); getCondition(st, appsv1.DeploymentProgressing) != nil {
		t.Error("progressing condition without a deadline")
	}
}

func TestReplicaFailurePromoted(t *testing.T) {
	d := deploy(3, "1", "0")
	failing := rs("new", 3, 0, 1)
	failing.Status.Conditions = []appsv1.ReplicaSetCondition{{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue,
		Reason: "FailedCreate", Message: "quota"}}
	st := rolloutStatus([]*appsv1.ReplicaSet{failing}, failing, d, now)
	if c := getCondition(st, appsv1.DeploymentReplicaFailure); c == nil || c.Reason != "FailedCreate" || c.Message != "quota" {
		t.Errorf("replica failure %+v", c)
	}
	d.Status = st
	ok := rs("new", 3, 0, 1)
	if st := rolloutStatus([]*appsv1.ReplicaSet{ok}, ok, d, now); getCondition(st, appsv1.DeploymentReplicaFailure) != nil {
		t.Error("replica failure not cleared")
	}
}

func TestProgressCheckAfter(t *testing.T) {
	d := deploy(3, "1", "0")
	c := newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReplicaSetUpdatedReason, "", now.Add(-4*time.Minute))
	d.Status.Conditions = []appsv1.DeploymentCondition{c}
	if got := progressCheckAfter(d, appsv1.DeploymentStatus{}, now); got != 6*time.Minute+time.Second {
		t.Errorf("after %v", got)
	}
	d.Status.Conditions[0].LastUpdateTime = metav1.NewTime(now.Add(-20 * time.Minute))
	if got := progressCheckAfter(d, appsv1.DeploymentStatus{}, now); got != 0 {
		t.Errorf("overdue: %v", got)
	}
	complete := appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3, ObservedGeneration: 1}
	if got := progressCheckAfter(d, complete, now); got != -1 {
		t.Errorf("complete: %v", got)
	}
}

func TestComputeHash(t *testing.T) {
	d := deploy(3, "1", "0")
	h1 := ComputeHash(&d.Spec.Template, nil)
	if h1 != ComputeHash(d.Spec.Template.DeepCopy(), nil) {
		t.Error("hash not deterministic")
	}
	for _, c := range h1 {
		if !strings.ContainsRune("bcdfghjklmnpqrstvwxz2456789", c) {
			t.Errorf("hash %q has unsafe character %q", h1, c)
		}
	}
	if h1 == ComputeHash(&d.Spec.Template, ptr.To(int32(1))) {
		t.Error("collision count does not change the hash")
	}
	if ComputeHash(&d.Spec.Template, ptr.To(int32(1))) == ComputeHash(&d.Spec.Template, ptr.To(int32(2))) {
		t.Error("collision counts 1 and 2 hash alike")
	}
	other := d.Spec.Template.DeepCopy()
	other.Spec.Containers[0].Image = "v3"
	if h1 == ComputeHash(other, nil) {
		t.Error("template change does not change the hash")
	}
	// Map order never matters.
	a, b := d.Spec.Template.DeepCopy(), d.Spec.Template.DeepCopy()
	a.Labels = map[string]string{"x": "1", "y": "2", "z": "3"}
	b.Labels = map[string]string{"z": "3", "y": "2", "x": "1"}
	if ComputeHash(a, nil) != ComputeHash(b, nil) {
		t.Error("label order changes the hash")
	}
}

func TestNewReplicaSetAnnotations(t *testing.T) {
	d := deploy(3, "1", "0")
	d.Annotations = map[string]string{"team": "a", RevisionAnnotation: "9", lastAppliedAnnotation: "{}"}
	r := rs("new", 0, 0, 1)
	if !setNewReplicaSetAnnotations(d, r, "4", false) {
		t.Fatal("no change reported")
	}
	want := map[string]string{"team": "a", RevisionAnnotation: "4", DesiredReplicasAnnotation: "3", MaxReplicasAnnotation: "4"}
	if fmt.Sprint(r.Annotations) != fmt.Sprint(want) {
		t.Errorf("annotations %v, want %v", r.Annotations, want)
	}
	if setNewReplicaSetAnnotations(d, r, "4", true) {
		t.Error("second sync reported a change")
	}
	// Reused at a higher revision (a rollback): the old revision goes to the history.
	setNewReplicaSetAnnotations(d, r, "6", true)
	setNewReplicaSetAnnotations(d, r, "8", true)
	if r.Annotations[RevisionAnnotation] != "8" || r.Annotations[RevisionHistoryAnnotation] != "4,6" {
		t.Errorf("after rollbacks %v", r.Annotations)
	}
	// A lower revision never lowers the annotation.
	if setNewReplicaSetAnnotations(d, r, "5", true) || r.Annotations[RevisionAnnotation] != "8" {
		t.Errorf("revision lowered: %v", r.Annotations)
	}
}

func TestFindReplicaSets(t *testing.T) {
	d := deploy(3, "1", "0")
	cur := rs("web-new", 1, 0, 1)
	cur.Spec.Template = *d.Spec.Template.DeepCopy()
	cur.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = "abc"
	dup := cur.DeepCopy()
	dup.Name, dup.UID, dup.CreationTimestamp = "web-dup", "uid-dup", metav1.NewTime(now)
	oldT := rs("web-old", 2, 2, 9)
	oldT.Spec.Template = *d.Spec.Template.DeepCopy()
	oldT.Spec.Template.Spec.Containers[0].Image = "v1"
	idle := rs("web-idle", 0, 0, 20)
	idle.Spec.Template = *oldT.Spec.Template.DeepCopy()
	list := []*appsv1.ReplicaSet{dup, idle, oldT, cur}
	if got := findNewReplicaSet(d, list); got == nil || got.Name != "web-new" {
		t.Errorf("new %v, want the oldest matching web-new", got)
	}
	// The younger duplicate of the new template counts as old, so that it is scaled away.
	withReplicas, all := findOldReplicaSets(d, list)
	var names []string
	for _, r := range withReplicas {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"web-dup", "web-old"}) || len(all) != 3 {
		t.Errorf("old with replicas %v, all %d", names, len(all))
	}
}

func TestOldPodsRunning(t *testing.T) {
	newRS := rs("new", 1, 0, 1)
	running := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	done := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}
	tests := []struct {
		name string
		old  *appsv1.ReplicaSet
		pods map[string][]*corev1.Pod
		want bool
	}{
		{"old set reports pods", rs("old", 0, 0, 9), nil, false},
		{"old pod running", rs("old", 0, 0, 9), map[string][]*corev1.Pod{"uid-old": {running}}, true},
		{"old pods finished", rs("old", 0, 0, 9), map[string][]*corev1.Pod{"uid-old": {done}}, false},
		{"new pods do not count", rs("old", 0, 0, 9), map[string][]*corev1.Pod{"uid-new": {running}}, false},
	}
	for _, tt := range tests {
		if got := oldPodsRunning(newRS, []*appsv1.ReplicaSet{tt.old}, tt.pods); got != tt.want {
			t.Errorf("%s: %v", tt.name, got)
		}
	}
	busy := rs("old", 0, 0, 9)
	busy.Status.Replicas = 1
	if !oldPodsRunning(newRS, []*appsv1.ReplicaSet{busy}, nil) {
		t.Error("old status replicas ignored")
	}
}

func TestDecideClaim(t *testing.T) {
	d := deploy(1, "1", "0")
	mine := rs("a", 1, 1, 1)
	mine.OwnerReferences = []metav1.OwnerReference{{Kind: "Deployment", Name: "web", UID: d.UID, Controller: ptr.To(true)}}
	theirs := rs("b", 1, 1, 1)
	theirs.OwnerReferences = []metav1.OwnerReference{{Kind: "Deployment", Name: "x", UID: "x", Controller: ptr.To(true)}}
	orphan := rs("c", 1, 1, 1)
	for _, tt := range []struct {
		obj     *appsv1.ReplicaSet
		matches bool
		want    claimAction
	}{
		{mine, true, claimKeep}, {mine, false, claimRelease}, {theirs, true, claimIgnore},
		{orphan, true, claimAdopt}, {orphan, false, claimIgnore},
	} {
		if got := decideClaim(d, tt.obj, tt.matches); got != tt.want {
			t.Errorf("%s matches=%v: %v, want %v", tt.obj.Name, tt.matches, got, tt.want)
		}
	}
}
