package agent

import (
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ctrSnapshot is what the status needs of a container, copied under the worker's lock.
type ctrSnapshot struct {
	Running    bool
	StartedAt  time.Time
	Restarts   int32
	Term       *corev1.ContainerStateTerminated
	LastTerm   *corev1.ContainerStateTerminated
	Waiting    string
	WaitingMsg string
	Ready      bool
	Started    bool
	ID         string
}

func (c *ctr) snapshot() ctrSnapshot {
	s := ctrSnapshot{Running: c.running, StartedAt: c.startedAt, Restarts: c.restarts, Term: c.term, LastTerm: c.lastTerm,
		Waiting: c.waiting, WaitingMsg: c.waitingMsg, Ready: c.ready && c.running, Started: c.started && c.running}
	if c.running {
		s.ID = containerID(c)
	}
	return s
}

// podStatus is the pod's status from its containers' states, the kubelet's rules: phase from the
// containers and the restart policy, Ready when every container is ready, transition times kept
// while a condition does not change.
func podStatus(pod *corev1.Pod, podIP, hostIP netip.Addr, ctrs map[string]ctrSnapshot, now time.Time) corev1.PodStatus {
	// The API keeps times to the second; a status with finer times would never equal the stored
	// one, and the agent would rewrite it on every pass.
	now = now.Truncate(time.Second)
	old := pod.Status
	st := corev1.PodStatus{
		QOSClass:          old.QOSClass,
		NominatedNodeName: old.NominatedNodeName,
		StartTime:         old.StartTime,
	}
	if st.StartTime == nil {
		t := metav1.NewTime(now)
		st.StartTime = &t
	}
	if hostIP.IsValid() {
		st.HostIP = hostIP.String()
		st.HostIPs = []corev1.HostIP{{IP: st.HostIP}}
	}
	if podIP.IsValid() {
		st.PodIP = podIP.String()
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	}
	allReady, running, waiting := true, 0, 0
	terminated, succeeded := 0, 0
	for _, c := range pod.Spec.Containers {
		s, ok := ctrs[c.Name]
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: c.Image, RestartCount: s.Restarts,
			Ready: s.Ready, Started: &s.Started, ContainerID: s.ID}
		switch {
		case !ok:
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
			waiting++
		case s.Running:
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(s.StartedAt.Truncate(time.Second))}
			running++
		case s.Waiting != "":
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: s.Waiting, Message: s.WaitingMsg}
			waiting++
		case s.Term != nil:
			t := truncTerm(*s.Term)
			cs.State.Terminated = &t
			terminated++
			if t.ExitCode == 0 {
				succeeded++
			}
		default:
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
			waiting++
		}
		if s.LastTerm != nil {
			t := truncTerm(*s.LastTerm)
			cs.LastTerminationState.Terminated = &t
		}
		if !cs.Ready {
			allReady = false
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	n := len(pod.Spec.Containers)
	switch policy := pod.Spec.RestartPolicy; {
	case terminated == n && n > 0 && policy != corev1.RestartPolicyAlways && (policy == corev1.RestartPolicyNever || succeeded == n):
		if succeeded == n {
			st.Phase = corev1.PodSucceeded
		} else {
			st.Phase = corev1.PodFailed
		}
	case running > 0 || (terminated > 0 && waiting == 0) || (running == 0 && terminated > 0 && restartedOnce(ctrs)):
		st.Phase = corev1.PodRunning
	default:
		st.Phase = corev1.PodPending
	}
	ready := allReady && n > 0 && st.Phase == corev1.PodRunning
	for _, g := range pod.Spec.ReadinessGates {
		gateOK := false
		for _, c := range old.Conditions {
			if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
				gateOK = true
			}
		}
		ready = ready && gateOK
	}
	b := func(v bool) corev1.ConditionStatus {
		if v {
			return corev1.ConditionTrue
		}
		return corev1.ConditionFalse
	}
	reason := func(ok bool, r string) string {
		if ok {
			return ""
		}
		return r
	}
	sandboxOK := podIP.IsValid()
	conds := []corev1.PodCondition{
		{Type: corev1.PodReadyToStartContainers, Status: b(sandboxOK)},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue},
		{Type: corev1.ContainersReady, Status: b(allReady && n > 0), Reason: reason(allReady && n > 0, "ContainersNotReady")},
		{Type: corev1.PodReady, Status: b(ready), Reason: reason(ready, "ContainersNotReady")},
	}
	if !ready {
		var names []string
		for _, cs := range st.ContainerStatuses {
			if !cs.Ready {
				names = append(names, cs.Name)
			}
		}
		msg := "containers with unready status: [" + join(names) + "]"
		conds[2].Message, conds[3].Message = msg, msg
	}
	if st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed {
		conds[3].Reason, conds[2].Reason = "PodCompleted", "PodCompleted"
		conds[3].Message, conds[2].Message = "", ""
	}
	for i := range conds {
		conds[i].LastTransitionTime = metav1.NewTime(now)
		for _, o := range old.Conditions {
			if o.Type == conds[i].Type && o.Status == conds[i].Status {
				conds[i].LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	// Conditions the agent does not own (PodScheduled, readiness gates, DisruptionTarget) stay.
	for _, o := range old.Conditions {
		owned := false
		for _, c := range conds {
			owned = owned || c.Type == o.Type
		}
		if !owned {
			st.Conditions = append(st.Conditions, o)
		}
	}
	st.Conditions = append(st.Conditions, conds...)
	return st
}

func restartedOnce(ctrs map[string]ctrSnapshot) bool {
	for _, c := range ctrs {
		if c.Restarts > 0 || c.LastTerm != nil {
			return true
		}
	}
	return false
}

func join(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += " "
		}
		out += v
	}
	return out
}

// statusEqual compares statuses ignoring heartbeat-like times that do not mean a change.
func statusEqual(a, b *corev1.PodStatus) bool {
	return apiequality.Semantic.DeepEqual(a, b)
}

func truncTerm(t corev1.ContainerStateTerminated) corev1.ContainerStateTerminated {
	t.StartedAt = t.StartedAt.Rfc3339Copy()
	t.FinishedAt = t.FinishedAt.Rfc3339Copy()
	return t
}
