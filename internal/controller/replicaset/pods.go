package replicaset

import (
	"math"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/kubectl/pkg/util/podutils"
)

// PodDeletionCostAnnotation ranks pods for scale-down: lower costs go first (kube's
// controller.kubernetes.io/pod-deletion-cost).
const PodDeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// podFromTemplate is the pod a controller creates for a template: kube's GetPodFromTemplate. The name
// is left to the API server (generateName "<parent>-" plus a random suffix).
func podFromTemplate(tmpl *corev1.PodTemplateSpec, parentName string, ref *metav1.OwnerReference) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Labels:       copyMap(tmpl.Labels),
			Annotations:  copyMap(tmpl.Annotations),
			GenerateName: podPrefix(parentName),
			Finalizers:   append([]string(nil), tmpl.Finalizers...),
		},
	}
	if ref != nil {
		pod.OwnerReferences = append(pod.OwnerReferences, *ref)
	}
	pod.Spec = *tmpl.Spec.DeepCopy()
	return pod
}

// podPrefix is "<name>-" unless that is not a valid pod name prefix, as in kube.
func podPrefix(name string) string {
	prefix := name + "-"
	if len(apivalidation.NameIsDNSSubdomain(prefix, true)) != 0 {
		return name
	}
	return prefix
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// isPodActive: not finished and not being deleted (kube's controller.IsPodActive).
func isPodActive(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil
}

// isPodTerminating: being deleted but not yet finished (kube's controller.IsPodTerminating).
func isPodTerminating(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp != nil
}

func filterPods(pods []*corev1.Pod, keep func(*corev1.Pod) bool) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range pods {
		if keep(p) {
			out = append(out, p)
		}
	}
	return out
}

// filterClaimed keeps the pods controlled by owner that its selector still matches.
func filterClaimed(owner metav1.Object, sel labels.Selector, pods []*corev1.Pod) []*corev1.Pod {
	return filterPods(pods, func(p *corev1.Pod) bool {
		return metav1.IsControlledBy(p, owner) && sel.Matches(labels.Set(p.Labels))
	})
}

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

// deletionCost reads the pod-deletion-cost annotation; missing or invalid values count as 0.
func deletionCost(p *corev1.Pod) int32 {
	v, ok := p.Annotations[PodDeletionCostAnnotation]
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0
	}
	return int32(n)
}

// podRanks orders the pods of a scale-down the way kube's ActivePodsWithRanks does: the pods that
// sort first are deleted first.
type podRanks struct {
	pods []*corev1.Pod
	// rank is the number of related active pods on the same node; more means delete sooner.
	rank []int
	now  time.Time
}

func (s podRanks) Len() int { return len(s.pods) }

func (s podRanks) Swap(i, j int) {
	s.pods[i], s.pods[j] = s.pods[j], s.pods[i]
	s.rank[i], s.rank[j] = s.rank[j], s.rank[i]
}

var phaseOrdinal = map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}

func (s podRanks) Less(i, j int) bool {
	pi, pj := s.pods[i], s.pods[j]
	// 1. Unassigned < assigned.
	if pi.Spec.NodeName != pj.Spec.NodeName && (pi.Spec.NodeName == "" || pj.Spec.NodeName == "") {
		return pi.Spec.NodeName == ""
	}
	// 2. Pending < Unknown < Running.
	if phaseOrdinal[pi.Status.Phase] != phaseOrdinal[pj.Status.Phase] {
		return phaseOrdinal[pi.Status.Phase] < phaseOrdinal[pj.Status.Phase]
	}
	// 3. Not ready < ready.
	ri, rj := podutils.IsPodReady(pi), podutils.IsPodReady(pj)
	if ri != rj {
		return !ri
	}
	// 4. Lower pod-deletion-cost < higher.
	if ci, cj := deletionCost(pi), deletionCost(pj); ci != cj {
		return ci < cj
	}
	// 5. Doubled up (more related pods on the node) < not doubled up.
	if s.rank[i] != s.rank[j] {
		return s.rank[i] > s.rank[j]
	}
	// 6. Ready for less time < more time, compared on a logarithmic scale.
	if ri && rj {
		ti, tj := readyTime(pi), readyTime(pj)
		if !ti.Equal(tj) {
			if s.now.IsZero() || ti.IsZero() || tj.IsZero() {
				return afterOrZero(ti, tj)
			}
			if d := logRankDiff(ti, tj, s.now); d != 0 {
				return d < 0
			}
			return pi.UID < pj.UID
		}
	}
	// 7. More container restarts < fewer.
	if res := compareRestarts(pi, pj); res != 0 {
		return res > 0
	}
	// 8. Newer (or no creation time) < older, on a logarithmic scale.
	ci, cj := pi.CreationTimestamp.Time, pj.CreationTimestamp.Time
	if !ci.Equal(cj) {
		if s.now.IsZero() || ci.IsZero() || cj.IsZero() {
			return afterOrZero(ci, cj)
		}
		if d := logRankDiff(ci, cj, s.now); d != 0 {
			return d < 0
		}
		return pi.UID < pj.UID
	}
	return false
}

// afterOrZero: t1 after t2, with a zero time counting as the latest.
func afterOrZero(t1, t2 time.Time) bool {
	if t1.IsZero() || t2.IsZero() {
		return t1.IsZero()
	}
	return t1.After(t2)
}

// logRankDiff compares the ages of two times in powers of two, so that pods of about the same age
// are treated as equal and the tie is broken at random (by UID) rather than always by newest.
func logRankDiff(t1, t2, now time.Time) int64 {
	d1, d2 := now.Sub(t1), now.Sub(t2)
	r1, r2 := int64(-1), int64(-1)
	if d1 > 0 {
		r1 = int64(math.Log2(float64(d1)))
	}
	if d2 > 0 {
		r2 = int64(math.Log2(float64(d2)))
	}
	return r1 - r2
}

func readyTime(p *corev1.Pod) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// compareRestarts is 1 when pi restarted more (regular containers first, then sidecars), -1 when pj
// did, 0 when equal.
func compareRestarts(pi, pj *corev1.Pod) int {
	ri, si := maxRestarts(pi)
	rj, sj := maxRestarts(pj)
	switch {
	case ri != rj:
		return sign(ri > rj)
	case si != sj:
		return sign(si > sj)
	}
	return 0
}

func sign(b bool) int {
	if b {
		return 1
	}
	return -1
}

func maxRestarts(p *corev1.Pod) (regular, sidecar int32) {
	for _, c := range p.Status.ContainerStatuses {
		regular = max(regular, c.RestartCount)
	}
	sidecars := map[string]bool{}
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars[c.Name] = true
		}
	}
	for _, c := range p.Status.InitContainerStatuses {
		if sidecars[c.Name] {
			sidecar = max(sidecar, c.RestartCount)
		}
	}
	return regular, sidecar
}

// PodsToDelete picks which diff of the pods a scale-down removes, as kube does: unscheduled before
// scheduled, pending before running, not ready before ready, low deletion cost first, pods sharing a
// node with more related pods first, then the most recently ready, the most restarted and the
// newest. related are the active pods of every ReplicaSet with the same owner (the Deployment), used
// to count co-located pods.
func PodsToDelete(pods, related []*corev1.Pod, diff int, now time.Time) []*corev1.Pod {
	if diff <= 0 {
		return nil
	}
	if diff >= len(pods) {
		return pods
	}
	onNode := map[string]int{}
	for _, p := range related {
		if isPodActive(p) {
			onNode[p.Spec.NodeName]++
		}
	}
	ranked := podRanks{pods: append([]*corev1.Pod(nil), pods...), rank: make([]int, len(pods)), now: now}
	for i, p := range ranked.pods {
		ranked.rank[i] = onNode[p.Spec.NodeName]
	}
	// Stable, so that pods equal in every respect keep their input order.
	sort.Stable(ranked)
	return ranked.pods[:diff]
}

// podNames is for log messages and tests.
func podNames(pods []*corev1.Pod) []string {
	out := make([]string, 0, len(pods))
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}
