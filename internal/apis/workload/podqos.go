package workload

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// PreparePodForCreate is kube-apiserver's pod create preparation: the status starts Pending with
// the pod's QoS class, which is immutable from then on.
func PreparePodForCreate(pod *corev1.Pod) {
	pod.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: PodQOS(pod)}
}

// PodQOS is kube's QoS class of a pod from its containers' CPU and memory requests and limits:
// BestEffort with none, Guaranteed when every container limits both and requests equal limits,
// Burstable otherwise.
func PodQOS(pod *corev1.Pod) corev1.PodQOSClass {
	if pod.Spec.Resources != nil {
		return qosOf(pod.Spec.Resources.Requests, pod.Spec.Resources.Limits, true)
	}
	requests := corev1.ResourceList{}
	limits := corev1.ResourceList{}
	guaranteed := true
	any := false
	all := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range all {
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[name]
			lim, hasLim := c.Resources.Limits[name]
			if hasReq && !req.IsZero() {
				any = true
				add(requests, name, req)
			}
			if hasLim && !lim.IsZero() {
				any = true
				add(limits, name, lim)
			} else {
				guaranteed = false
			}
			if hasReq && hasLim && req.Cmp(lim) != 0 {
				guaranteed = false
			}
		}
	}
	switch {
	case !any:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

func qosOf(requests, limits corev1.ResourceList, _ bool) corev1.PodQOSClass {
	any, guaranteed := false, true
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := requests[name]
		lim, hasLim := limits[name]
		any = any || (hasReq && !req.IsZero()) || (hasLim && !lim.IsZero())
		if !hasLim || (hasReq && req.Cmp(lim) != 0) {
			guaranteed = false
		}
	}
	switch {
	case !any:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

func add(l corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) {
	cur := l[name]
	cur.Add(q)
	l[name] = cur
}
