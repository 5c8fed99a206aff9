package podclaim

import (
	"encoding/json"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func pod(name string, opts ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)}}
	for _, o := range opts {
		o(p)
	}
	return p
}

func TestDecideClaim(t *testing.T) {
	del := metav1.NewTime(now)
	owner := func(deleting bool) *appsv1.ReplicaSet {
		rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "rs", Namespace: "ns", UID: "me"}}
		if deleting {
			rs.DeletionTimestamp = &del
		}
		return rs
	}
	owned := func(uid types.UID) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "x", UID: uid, Controller: ptr.To(true)}}
		}
	}
	deleting := func(p *corev1.Pod) { p.DeletionTimestamp = &del }
	tests := []struct {
		name          string
		ownerDeleting bool
		pod           *corev1.Pod
		matches       bool
		want          Action
	}{
		{"ours and matching", false, pod("a", owned("me")), true, Keep},
		{"ours, matching, owner deleting", true, pod("a", owned("me")), true, Keep},
		{"ours, not matching", false, pod("a", owned("me")), false, Release},
		{"ours, not matching, owner deleting", true, pod("a", owned("me")), false, Ignore},
		{"someone else's", false, pod("a", owned("other")), true, Ignore},
		{"orphan matching", false, pod("a"), true, Adopt},
		{"orphan not matching", false, pod("a"), false, Ignore},
		{"orphan matching, owner deleting", true, pod("a"), true, Ignore},
		{"orphan matching but being deleted", false, pod("a", deleting), true, Ignore},
		{"orphan in another namespace", false, pod("a", func(p *corev1.Pod) { p.Namespace = "other" }), true, Ignore},
		{"non-controller owner is an orphan", false, pod("a", func(p *corev1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{{Kind: "Thing", Name: "t", UID: "t"}}
		}), true, Adopt},
	}
	for _, tt := range tests {
		if got := Decide(owner(tt.ownerDeleting), tt.pod, tt.matches); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestClaimPatches(t *testing.T) {
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web", UID: "rs-uid"}}
	var adopt struct {
		Metadata struct {
			UID             types.UID               `json:"uid"`
			OwnerReferences []metav1.OwnerReference `json:"ownerReferences"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(AdoptPatch(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"), "pod-uid"), &adopt); err != nil {
		t.Fatal(err)
	}
	ref := adopt.Metadata.OwnerReferences[0]
	if adopt.Metadata.UID != "pod-uid" || ref.APIVersion != "apps/v1" || ref.Kind != "ReplicaSet" || ref.Name != "web" ||
		ref.UID != "rs-uid" || !*ref.Controller || !*ref.BlockOwnerDeletion {
		t.Errorf("adopt patch %+v", adopt)
	}
	want := `{"metadata":{"ownerReferences":[{"$patch":"delete","uid":"rs-uid"}],"uid":"pod-uid"}}`
	if got := string(ReleasePatch("rs-uid", "pod-uid")); got != want {
		t.Errorf("release patch %s, want %s", got, want)
	}
}
