package deployment

import (
	"fmt"
	"math"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// resize is one decided step: set rs to replicas. op ("up", "down" or "") only words the event; an
// empty op with an unchanged size still refreshes the replica annotations.
type resize struct {
	rs  *appsv1.ReplicaSet
	to  int32
	op  string
	ann bool // also refresh the desired/max replica annotations when the size is unchanged
}

// NewRSNewReplicas is the size the new ReplicaSet may grow to in one step: for RollingUpdate as
// many as fit under spec.replicas + maxSurge counting every ReplicaSet's spec, never above
// spec.replicas; for Recreate spec.replicas.
func NewRSNewReplicas(d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (int32, error) {
	switch d.Spec.Strategy.Type {
	case appsv1.RollingUpdateDeploymentStrategyType:
		maxTotal := replicas(d) + MaxSurge(d)
		current := sumSpec(allRSs)
		if current >= maxTotal {
			return rsReplicas(newRS), nil
		}
		up := min(maxTotal-current, replicas(d)-rsReplicas(newRS))
		return rsReplicas(newRS) + up, nil
	case appsv1.RecreateDeploymentStrategyType:
		return replicas(d), nil
	}
	return 0, fmt.Errorf("deployment strategy %q is not supported", d.Spec.Strategy.Type)
}

// planOldScaleDown is how a rolling update shrinks the old ReplicaSets (kube's
// reconcileOldReplicaSets): first it removes old replicas that are not available, which cannot
// lower availability, as far as the unavailability budget allows (max scaled down = all pods -
// minAvailable - unavailable new pods); then it removes available old replicas while more than
// spec.replicas - maxUnavailable pods are available. Oldest ReplicaSets go first. oldRSs are the
// old ReplicaSets with replicas.
func planOldScaleDown(d *appsv1.Deployment, allRSs, oldRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) []resize {
	if sumSpec(oldRSs) == 0 {
		return nil
	}
	minAvailable := replicas(d) - MaxUnavailable(d)
	newUnavailable := rsReplicas(newRS) - newRS.Status.AvailableReplicas
	maxScaledDown := sumSpec(allRSs) - minAvailable - newUnavailable
	if maxScaledDown <= 0 {
		return nil
	}
	olds := append([]*appsv1.ReplicaSet(nil), oldRSs...)
	sort.Sort(byCreation(olds))
	sizes := make([]int32, len(olds))
	for i, rs := range olds {
		sizes[i] = rsReplicas(rs)
	}
	var plan []resize

	// Unhealthy replicas first.
	var cleaned int32
	for i, rs := range olds {
		if cleaned >= maxScaledDown {
			break
		}
		if sizes[i] == 0 || sizes[i] == rs.Status.AvailableReplicas {
			continue
		}
		n := min(maxScaledDown-cleaned, sizes[i]-rs.Status.AvailableReplicas)
		if n <= 0 {
			continue
		}
		sizes[i] -= n
		cleaned += n
		plan = append(plan, resize{rs: rs, to: sizes[i], op: "down"})
	}

	// Then available replicas, keeping minAvailable.
	available := newRS.Status.AvailableReplicas
	for _, rs := range olds {
		available += rs.Status.AvailableReplicas
	}
	if available <= minAvailable {
		return plan
	}
	budget := available - minAvailable
	var scaled int32
	for i, rs := range olds {
		if scaled >= budget {
			break
		}
		if sizes[i] == 0 {
			continue
		}
		n := min(sizes[i], budget-scaled)
		sizes[i] -= n
		scaled += n
		plan = append(plan, resize{rs: rs, to: sizes[i], op: "down"})
	}
	return plan
}

// findActiveOrLatest is the only ReplicaSet with replicas, or the newest one when none has any; nil
// when several have replicas (they must be scaled proportionally).
func findActiveOrLatest(newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	if newRS == nil && len(oldRSs) == 0 {
		return nil
	}
	olds := append([]*appsv1.ReplicaSet(nil), oldRSs...)
	sort.Sort(sort.Reverse(byCreation(olds)))
	all := active(append(olds, newRS))
	switch len(all) {
	case 0:
		if newRS != nil {
			return newRS
		}
		return olds[0]
	case 1:
		return all[0]
	}
	return nil
}

// planScale is the reaction to a change of spec.replicas (kube's scale): a lone active ReplicaSet
// takes the new size; a saturated new ReplicaSet means the old ones go to zero; otherwise, during
// a rolling update, the replicas to add or remove are spread over the active ReplicaSets in
// proportion to their size, the largest first, leftovers going to the largest.
func planScale(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) []resize {
	if rs := findActiveOrLatest(newRS, oldRSs); rs != nil {
		if rsReplicas(rs) == replicas(d) {
			return nil
		}
		return []resize{{rs: rs, to: replicas(d)}}
	}
	if isSaturated(d, newRS) {
		var plan []resize
		for _, rs := range active(oldRSs) {
			plan = append(plan, resize{rs: rs, to: 0})
		}
		return plan
	}
	if !isRollingUpdate(d) {
		return nil
	}
	all := active(append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS))
	allowed := int32(0)
	if replicas(d) > 0 {
		allowed = replicas(d) + MaxSurge(d)
	}
	toAdd := allowed - sumSpec(all)
	op := ""
	switch {
	case toAdd > 0:
		sort.Sort(bySizeNewer(all))
		op = "up"
	case toAdd < 0:
		sort.Sort(bySizeOlder(all))
		op = "down"
	}
	sizes := make([]int32, len(all))
	var added int32
	for i, rs := range all {
		sizes[i] = rsReplicas(rs)
		if toAdd != 0 {
			p := proportion(rs, d, toAdd, added)
			sizes[i] += p
			added += p
		}
	}
	plan := make([]resize, 0, len(all))
	for i, rs := range all {
		if i == 0 && toAdd != 0 {
			sizes[i] = max(sizes[i]+toAdd-added, 0)
		}
		plan = append(plan, resize{rs: rs, to: sizes[i], op: op, ann: true})
	}
	return plan
}

// proportion is how many replicas rs gains (or loses) of toAdd, given added so far: its share of
// the new max size relative to the max size it was last sized for (the max-replicas annotation),
// bounded by what is left to add.
func proportion(rs *appsv1.ReplicaSet, d *appsv1.Deployment, toAdd, added int32) int32 {
	if rs == nil || rsReplicas(rs) == 0 || toAdd == 0 || toAdd == added {
		return 0
	}
	fraction := fraction(rs, d)
	allowed := toAdd - added
	if toAdd > 0 {
		return min(fraction, allowed)
	}
	return max(fraction, allowed)
}

func fraction(rs *appsv1.ReplicaSet, d *appsv1.Deployment) int32 {
	if replicas(d) == 0 {
		return -rsReplicas(rs)
	}
	newMax := replicas(d) + MaxSurge(d)
	oldMax, ok := intAnnotation(rs, MaxReplicasAnnotation)
	if !ok || oldMax == 0 {
		oldMax = d.Status.Replicas
		if oldMax == 0 {
			return 0
		}
	}
	size := float64(rsReplicas(rs)*newMax) / float64(oldMax)
	return int32(math.Round(size)) - rsReplicas(rs)
}

// cleanupCandidates are the old ReplicaSets to delete beyond revisionHistoryLimit: the lowest
// revisions first, and only those scaled to zero, fully observed and not already being deleted.
func cleanupCandidates(d *appsv1.Deployment, oldRSs []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	if !hasRevisionHistoryLimit(d) {
		return nil
	}
	var alive []*appsv1.ReplicaSet
	for _, rs := range oldRSs {
		if rs != nil && rs.DeletionTimestamp == nil {
			alive = append(alive, rs)
		}
	}
	diff := len(alive) - int(*d.Spec.RevisionHistoryLimit)
	if diff <= 0 {
		return nil
	}
	sort.Sort(byRevision(alive))
	var out []*appsv1.ReplicaSet
	for _, rs := range alive[:diff] {
		if rs.Status.Replicas != 0 || rsReplicas(rs) != 0 || rs.Generation > rs.Status.ObservedGeneration {
			continue
		}
		out = append(out, rs)
	}
	return out
}

// calculateStatus sums the ReplicaSets' statuses into the Deployment's and sets the Available
// condition: True (MinimumReplicasAvailable) while at least spec.replicas - maxUnavailable pods are
// available.
func calculateStatus(allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment, now time.Time) appsv1.DeploymentStatus {
	available := sumStatus(allRSs, availableReplicas)
	unavailable := max(sumSpec(allRSs)-available, 0)
	st := appsv1.DeploymentStatus{
		ObservedGeneration:  d.Generation,
		Replicas:            sumStatus(allRSs, actualReplicas),
		UpdatedReplicas:     sumStatus([]*appsv1.ReplicaSet{newRS}, actualReplicas),
		ReadyReplicas:       sumStatus(allRSs, readyReplicas),
		AvailableReplicas:   available,
		UnavailableReplicas: unavailable,
		TerminatingReplicas: terminatingReplicas(allRSs),
		CollisionCount:      d.Status.CollisionCount,
	}
	st.Conditions = append(st.Conditions, d.Status.Conditions...)
	if available >= replicas(d)-MaxUnavailable(d) {
		setCondition(&st, newCondition(appsv1.DeploymentAvailable, corev1.ConditionTrue, MinimumReplicasAvailable,
			"Deployment has minimum availability.", now))
	} else {
		setCondition(&st, newCondition(appsv1.DeploymentAvailable, corev1.ConditionFalse, MinimumReplicasUnavailable,
			"Deployment does not have minimum availability.", now))
	}
	return st
}

// rolloutStatus is calculateStatus plus the Progressing condition of a rollout (kube's
// syncRolloutStatus): NewReplicaSetAvailable once complete, ReplicaSetUpdated (with a fresh
// lastUpdateTime) whenever the rollout made progress, ProgressDeadlineExceeded when it made none for
// progressDeadlineSeconds; and the ReplicaFailure condition of the ReplicaSets, the new one first.
func rolloutStatus(allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment, now time.Time) appsv1.DeploymentStatus {
	st := calculateStatus(allRSs, newRS, d, now)
	if !hasProgressDeadline(d) {
		removeCondition(&st, appsv1.DeploymentProgressing)
	}
	cur := getCondition(d.Status, appsv1.DeploymentProgressing)
	complete := st.Replicas == st.UpdatedReplicas && cur != nil && cur.Reason == NewRSAvailableReason
	if hasProgressDeadline(d) && !complete {
		name := fmt.Sprintf("Deployment %q", d.Name)
		if newRS != nil {
			name = fmt.Sprintf("ReplicaSet %q", newRS.Name)
		}
		switch {
		case deploymentComplete(d, &st):
			setCondition(&st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, NewRSAvailableReason,
				name+" has successfully progressed.", now))
		case deploymentProgressing(d, &st):
			c := newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReplicaSetUpdatedReason, name+" is progressing.", now)
			// Progress refreshes lastUpdateTime even with an unchanged reason.
			if cur != nil {
				if cur.Status == corev1.ConditionTrue {
					c.LastTransitionTime = cur.LastTransitionTime
				}
				removeCondition(&st, appsv1.DeploymentProgressing)
			}
			setCondition(&st, c)
		case deploymentTimedOut(d, &st, now):
			setCondition(&st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, TimedOutReason,
				name+" has timed out progressing.", now))
		}
	}
	if f := replicaFailure(allRSs, newRS); f != nil {
		setCondition(&st, *f)
	} else {
		removeCondition(&st, appsv1.DeploymentReplicaFailure)
	}
	return st
}

// replicaFailure promotes a ReplicaSet's ReplicaFailure condition, the new ReplicaSet's first.
func replicaFailure(allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) *appsv1.DeploymentCondition {
	for _, rss := range [][]*appsv1.ReplicaSet{{newRS}, allRSs} {
		for _, rs := range rss {
			if rs == nil {
				continue
			}
			for _, c := range rs.Status.Conditions {
				if c.Type == appsv1.ReplicaSetReplicaFailure {
					return &appsv1.DeploymentCondition{Type: appsv1.DeploymentConditionType(c.Type), Status: c.Status,
						LastTransitionTime: c.LastTransitionTime, LastUpdateTime: c.LastTransitionTime, Reason: c.Reason, Message: c.Message}
				}
			}
		}
	}
	return nil
}

// progressCheckAfter is when a rollout without progress must be looked at again to notice its
// deadline: -1 never (no deadline, complete, or already timed out), else the remaining time (0:
// now).
func progressCheckAfter(d *appsv1.Deployment, st appsv1.DeploymentStatus, now time.Time) time.Duration {
	cur := getCondition(d.Status, appsv1.DeploymentProgressing)
	if !hasProgressDeadline(d) || cur == nil || deploymentComplete(d, &st) || cur.Reason == TimedOutReason {
		return -1
	}
	after := cur.LastUpdateTime.Add(time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second).Sub(now)
	if after < time.Second {
		return 0
	}
	// A second more against millisecond skew.
	return after + time.Second
}

// oldPodsRunning: a Recreate rollout must wait while an old ReplicaSet reports pods or any pod not
// of the new ReplicaSet is not finished. podsByRS maps ReplicaSet UIDs to their pods.
func oldPodsRunning(newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet, podsByRS map[string][]*corev1.Pod) bool {
	if sumStatus(oldRSs, actualReplicas) > 0 {
		return true
	}
	for uid, pods := range podsByRS {
		if newRS != nil && string(newRS.UID) == uid {
			continue
		}
		for _, p := range pods {
			if p.Status.Phase != corev1.PodFailed && p.Status.Phase != corev1.PodSucceeded {
				return true
			}
		}
	}
	return false
}
