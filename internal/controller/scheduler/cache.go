package scheduler

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// placement is one pod counted on a node.
type placement struct {
	node  string
	ports []HostPort
	// assumed: this scheduler bound (or is binding) the pod and the informer has not shown it yet.
	assumed bool
}

// podCache counts the pods on each node: those the informer shows bound and not finished, and
// those this scheduler assumed. Decisions are taken under its lock one pod at a time, so two
// workers never pick the same "emptiest" node for two pods.
type podCache struct {
	mu     sync.Mutex
	usage  map[string]*NodeUsage
	placed map[types.UID]placement
}

func newPodCache() *podCache {
	return &podCache{usage: map[string]*NodeUsage{}, placed: map[types.UID]placement{}}
}

func counted(pod *corev1.Pod) bool {
	return pod.Spec.NodeName != "" && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

// observe records the informer's view of a pod. It returns true when the pod stopped counting on
// a node (it finished), which may let waiting pods fit.
func (c *podCache) observe(pod *corev1.Pod) (freed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev, had := c.placed[pod.UID]
	if counted(pod) {
		if had && !prev.assumed && prev.node == pod.Spec.NodeName {
			return false
		}
		if had {
			c.remove(pod.UID)
		}
		c.add(pod.UID, placement{node: pod.Spec.NodeName, ports: HostPorts(pod)})
		return false
	}
	if had && (!prev.assumed || pod.Spec.NodeName != "") {
		// Finished, or (assumed) bound and finished before the informer showed it bound.
		c.remove(pod.UID)
		return true
	}
	// Not bound in the informer's view yet: an assumption stays until the binding shows up.
	return false
}

// forget drops a pod: it was deleted, or its binding failed (assumedOnly).
func (c *podCache) forget(uid types.UID, assumedOnly bool) (freed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.placed[uid]
	if !ok || (assumedOnly && !p.assumed) {
		return false
	}
	c.remove(uid)
	return true
}

// place picks a node for the pod and assumes it there, in one step. placed reports that the pod
// is already counted (a binding in flight or not yet seen), in which case nothing is decided.
func (c *podCache) place(pod *corev1.Pod, nodes []*corev1.Node) (node, reason string, placed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.placed[pod.UID]; ok {
		return "", "", true
	}
	node, reason = Pick(pod, nodes, c.usage)
	if node != "" {
		c.add(pod.UID, placement{node: node, ports: HostPorts(pod), assumed: true})
	}
	return node, reason, false
}

func (c *podCache) add(uid types.UID, p placement) {
	u := c.usage[p.node]
	if u == nil {
		u = &NodeUsage{}
		c.usage[p.node] = u
	}
	u.Pods++
	for _, hp := range p.ports {
		if u.HostPorts == nil {
			u.HostPorts = map[HostPort]int{}
		}
		u.HostPorts[hp]++
	}
	c.placed[uid] = p
}

func (c *podCache) remove(uid types.UID) {
	p, ok := c.placed[uid]
	if !ok {
		return
	}
	delete(c.placed, uid)
	u := c.usage[p.node]
	if u == nil {
		return
	}
	u.Pods--
	for _, hp := range p.ports {
		if u.HostPorts[hp]--; u.HostPorts[hp] <= 0 {
			delete(u.HostPorts, hp)
		}
	}
	if u.Pods <= 0 && len(u.HostPorts) == 0 {
		delete(c.usage, p.node)
	}
}

// snapshot returns the pod count per node, for tests.
func (c *podCache) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for n, u := range c.usage {
		out[n] = u.Pods
	}
	return out
}
