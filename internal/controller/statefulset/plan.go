package statefulset

import (
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

type stepKind int

const (
	stepCreate stepKind = iota
	stepDelete
	stepUpdate // restore the pod's identity labels
)

func (k stepKind) String() string {
	return [...]string{"create", "delete", "update"}[k]
}

// step is one pod operation the controller decided on.
type step struct {
	kind stepKind
	pod  *corev1.Pod
	why  string
}

// phase is a group of steps that run one by one, or concurrently (in growing batches) when
// concurrent is set.
type phase struct {
	steps      []step
	concurrent bool
}

// plan is the outcome of one StatefulSet sync: phases run in order and a failing phase stops the
// later ones. status is what the sync reports.
type plan struct {
	phases []phase
	status appsv1.StatefulSetStatus
}

// String renders the steps, e.g. "create web-1, delete web-3 (scale down)", for logs.
func (p plan) String() string {
	var out []string
	for _, ph := range p.phases {
		for _, s := range ph.steps {
			out = append(out, fmt.Sprintf("%s %s (%s)", s.kind, s.pod.Name, s.why))
		}
	}
	return strings.Join(out, ", ")
}

// input is what a sync decides from.
type input struct {
	set  *appsv1.StatefulSet
	pods []*corev1.Pod // the pods the set controls
	// currentRevision and updateRevision name the revisions of the pods to keep and of the current
	// template; currentTemplate is the template of currentRevision when known (nil: unknown).
	currentRevision, updateRevision string
	currentTemplate                 *corev1.PodTemplateSpec
	collisionCount                  int32
	now                             time.Time
}

// slot is an ordinal of the set: an existing pod, or one to create.
type slot struct {
	pod     *corev1.Pod
	created bool
}

// decide is kube's updateStatefulSet as a pure function. Pods in the ordinal range are the
// replicas, those beyond it are condemned. Replicas are processed in ordinal order: a finished pod
// is deleted (to be recreated under the same name), a missing one is created, an identity that
// drifted is restored. With OrderedReady (monotonic) processing stops at the first pod created,
// deleted, terminating, or not Running and Ready (and available): ordinal i is created only once
// 0..i-1 are Running and Ready. Then condemned pods are deleted from the highest ordinal, in
// OrderedReady one at a time and only while all others are healthy. Finally a RollingUpdate
// deletes the pods not at updateRevision, from the highest ordinal down to the partition, at most
// maxUnavailable unavailable at a time; they come back at the new revision.
func decide(in input) plan {
	set := in.set
	minReady := set.Spec.MinReadySeconds
	burst := set.Spec.PodManagementPolicy == appsv1.ParallelPodManagement
	var p plan
	p.status = appsv1.StatefulSetStatus{
		ObservedGeneration: set.Generation,
		CurrentRevision:    in.currentRevision,
		UpdateRevision:     in.updateRevision,
		CollisionCount:     &in.collisionCount,
	}

	start, end := startOrdinal(set), endOrdinal(set)
	replicas := make([]slot, max(end-start+1, 0))
	var condemned []*corev1.Pod
	for _, pod := range in.pods {
		switch o := ordinalOf(pod); {
		case o < 0:
			// Not a name this set gives: ignored.
		case o >= start && o <= end:
			replicas[o-start] = slot{pod: pod, created: true}
		default:
			condemned = append(condemned, pod)
		}
	}
	for i := range replicas {
		if replicas[i].pod == nil {
			replicas[i].pod = newVersionedPod(in, start+i)
		}
	}
	sort.Slice(condemned, func(i, j int) bool { return ordinalOf(condemned[i]) > ordinalOf(condemned[j]) })

	var firstUnhealthy *corev1.Pod
	for i := range replicas {
		if isUnavailable(replicas[i].pod, minReady, in.now) {
			firstUnhealthy = replicas[i].pod
			break
		}
	}
	if firstUnhealthy == nil {
		for i := len(condemned) - 1; i >= 0; i-- {
			if isUnavailable(condemned[i], minReady, in.now) {
				firstUnhealthy = condemned[i]
				break
			}
		}
	}
	finish := func(deletedForUpdate int) plan {
		p.status = countStatus(p.status, minReady, in.now, replicas, condemned)
		p.status.CurrentReplicas -= int32(deletedForUpdate)
		return p
	}
	if set.DeletionTimestamp != nil {
		return finish(0)
	}
	monotonic := !burst
	add := func(steps []step) { p.phases = append(p.phases, phase{steps: steps, concurrent: burst}) }

	// Replicas.
	var steps []step
	for i := range replicas {
		pod := replicas[i].pod
		if replicas[i].created && isFinished(pod) {
			if !isTerminating(pod) {
				steps = append(steps, step{kind: stepDelete, pod: pod, why: "finished"})
			}
			if monotonic {
				add(steps)
				return finish(0)
			}
			continue
		}
		if !replicas[i].created {
			steps = append(steps, step{kind: stepCreate, pod: pod, why: "missing"})
			if monotonic {
				add(steps)
				return finish(0)
			}
			continue
		}
		if monotonic && (isTerminating(pod) || !isRunningAndReady(pod) || !isRunningAndAvailable(pod, minReady, in.now)) {
			add(steps)
			return finish(0)
		}
		if !identityMatches(set, pod) {
			fixed := pod.DeepCopy()
			updateIdentity(set, fixed)
			steps = append(steps, step{kind: stepUpdate, pod: fixed, why: "identity"})
		}
	}
	add(steps)

	// Condemned pods, highest ordinal first.
	steps = nil
	for _, pod := range condemned {
		if isTerminating(pod) {
			if monotonic {
				add(steps)
				return finish(0)
			}
			continue
		}
		if monotonic && pod != firstUnhealthy &&
			(!isRunningAndReady(pod) || !isRunningAndAvailable(pod, minReady, in.now)) {
			add(steps)
			return finish(0)
		}
		steps = append(steps, step{kind: stepDelete, pod: pod, why: "scale down"})
		if monotonic {
			add(steps)
			return finish(0)
		}
	}
	add(steps)

	if set.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return finish(0)
	}

	// Rolling update, highest ordinal first, within maxUnavailable.
	maxUnavail, err := maxUnavailable(set)
	if err != nil {
		return finish(0)
	}
	unavailable := 0
	for i := range replicas {
		if !replicas[i].created || isUnavailable(replicas[i].pod, minReady, in.now) {
			unavailable++
		}
	}
	if unavailable > maxUnavail {
		return finish(0)
	}
	steps = nil
	budget := maxUnavail - unavailable
	updateMin := partition(set)
	for target := len(replicas) - 1; target >= updateMin && len(steps) < budget; target-- {
		pod := replicas[target].pod
		if podRevision(pod) != in.updateRevision && !isTerminating(pod) {
			steps = append(steps, step{kind: stepDelete, pod: pod, why: "update"})
		}
	}
	// Update deletions run in order, as in kube.
	p.phases = append(p.phases, phase{steps: steps})
	return finish(len(steps))
}

// newVersionedPod is the pod to create for ordinal: at the current revision below the partition of
// a RollingUpdate (when that revision's template is known), else at the update revision.
func newVersionedPod(in input, ordinal int) *corev1.Pod {
	set := in.set
	st := set.Spec.UpdateStrategy
	current := false
	if st.Type == appsv1.RollingUpdateStatefulSetStrategyType {
		if st.RollingUpdate == nil {
			current = ordinal < startOrdinal(set)+int(set.Status.CurrentReplicas)
		} else {
			current = ordinal < startOrdinal(set)+partition(set)
		}
	}
	if current && in.currentTemplate != nil && in.currentRevision != in.updateRevision {
		return newPod(set, in.currentTemplate, in.currentRevision, ordinal)
	}
	return newPod(set, &set.Spec.Template, in.updateRevision, ordinal)
}

// countStatus fills the replica counts from the existing pods: replicas, ready (Running and
// Ready), available, and current/updated (not terminating, at each revision).
func countStatus(st appsv1.StatefulSetStatus, minReady int32, now time.Time, replicas []slot, condemned []*corev1.Pod) appsv1.StatefulSetStatus {
	st.Replicas, st.ReadyReplicas, st.AvailableReplicas, st.CurrentReplicas, st.UpdatedReplicas = 0, 0, 0, 0, 0
	count := func(pod *corev1.Pod) {
		st.Replicas++
		if isRunningAndReady(pod) {
			st.ReadyReplicas++
			if isRunningAndAvailable(pod, minReady, now) {
				st.AvailableReplicas++
			}
		}
		if !isTerminating(pod) {
			rev := podRevision(pod)
			if rev == st.CurrentRevision {
				st.CurrentReplicas++
			}
			if rev == st.UpdateRevision {
				st.UpdatedReplicas++
			}
		}
	}
	for _, s := range replicas {
		if s.created {
			count(s.pod)
		}
	}
	for _, pod := range condemned {
		count(pod)
	}
	return st
}

// completeRollingUpdate marks a finished RollingUpdate: every replica updated and ready makes the
// update revision the current one.
func completeRollingUpdate(set *appsv1.StatefulSet, st *appsv1.StatefulSetStatus) {
	if set.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType &&
		st.UpdatedReplicas == st.Replicas && st.ReadyReplicas == st.Replicas {
		st.CurrentReplicas = st.UpdatedReplicas
		st.CurrentRevision = st.UpdateRevision
	}
}

// statusChanged: st says something set.Status does not.
func statusChanged(set *appsv1.StatefulSet, st *appsv1.StatefulSetStatus) bool {
	cur := set.Status
	return st.ObservedGeneration > cur.ObservedGeneration ||
		st.Replicas != cur.Replicas ||
		st.CurrentReplicas != cur.CurrentReplicas ||
		st.ReadyReplicas != cur.ReadyReplicas ||
		st.UpdatedReplicas != cur.UpdatedReplicas ||
		st.CurrentRevision != cur.CurrentRevision ||
		st.AvailableReplicas != cur.AvailableReplicas ||
		st.UpdateRevision != cur.UpdateRevision
}
