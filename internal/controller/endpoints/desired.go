// Package endpoints is the legacy core/v1 Endpoints controller: for every Service with a selector it
// keeps the Endpoints object of the same name listing the Service's pods, as kube-controller-manager
// v1.35's endpoints controller (pkg/controller/endpoint) does.
//
// The decision is a pure function, Desired, of the Service and the pods; the Controller around it only
// decides when to call it and writes the result when it differs from what is stored.
package endpoints

import (
	"bytes"
	"crypto/md5"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/dump"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilnet "k8s.io/utils/net"
)

const (
	// maxCapacity is how many addresses (ready and not ready together) kube stores in one Endpoints
	// object; beyond it the object is truncated and annotated. EndpointSlices carry the full set.
	maxCapacity = 1000
	// truncated is the value of the over-capacity annotation on a truncated Endpoints object.
	truncated = "truncated"
)

// Desired returns the Endpoints object kube's endpoints controller wants for svc, given pods (any
// pods: those outside the Service's namespace or not matching its selector are ignored), or nil when
// the controller does not manage the Service's Endpoints: Services without a selector (their
// Endpoints are written by users) and ExternalName Services.
//
// triggerTime is the last change of a pod or the Service that led to this computation (see
// endpointsliceutil.TriggerTimeTracker); the zero time leaves the last-change-trigger-time
// annotation out, as kube does.
//
// The result carries name, namespace, labels, the two annotations this controller owns and the
// subsets; it does not depend on the order of pods.
func Desired(svc *corev1.Service, pods []*corev1.Pod, triggerTime time.Time) *corev1.Endpoints {
	if svc == nil || svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Spec.Selector == nil {
		return nil
	}
	ep := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{
			Name:        svc.Name,
			Namespace:   svc.Namespace,
			Labels:      desiredLabels(svc),
			Annotations: map[string]string{},
		},
		Subsets: Subsets(svc, pods),
	}
	if !triggerTime.IsZero() {
		ep.Annotations[corev1.EndpointsLastChangeTriggerTime] = triggerTime.UTC().Format(time.RFC3339Nano)
	}
	if truncate(ep.Subsets) {
		ep.Annotations[corev1.EndpointsOverCapacity] = truncated
	}
	return ep
}

// desiredLabels copies the Service's labels and marks headless Services, whose label kube adds so
// that consumers can tell them apart without reading the Service.
func desiredLabels(svc *corev1.Service) map[string]string {
	out := make(map[string]string, len(svc.Labels)+1)
	for k, v := range svc.Labels {
		out[k] = v
	}
	if svc.Spec.ClusterIP == corev1.ClusterIPNone || svc.Spec.ClusterIP == "" {
		out[corev1.IsHeadlessService] = ""
	} else {
		delete(out, corev1.IsHeadlessService)
	}
	return out
}

// Subsets returns the repacked, sorted and untruncated subsets of svc's Endpoints, in kube's
// canonical form (endpoints.RepackSubsets): each resolved port goes to the subset of the addresses
// serving it, and ports served by exactly the same addresses (with the same readiness) share one
// subset. Pods whose named targetPorts resolve differently thus land in different subsets.
func Subsets(svc *corev1.Service, pods []*corev1.Pod) []corev1.EndpointSubset {
	if svc.Spec.Selector == nil {
		return []corev1.EndpointSubset{}
	}
	selector := labels.Set(svc.Spec.Selector).AsSelectorPreValidated()
	// Pods are visited in name order so that the rare ties kube resolves by visiting order (two
	// objects sharing an IP and UID) come out the same whatever order the caller lists them in.
	sorted := make([]*corev1.Pod, 0, len(pods))
	for _, pod := range pods {
		if pod != nil && pod.Namespace == svc.Namespace && selector.Matches(labels.Set(pod.Labels)) {
			sorted = append(sorted, pod)
		}
	}
	slices.SortFunc(sorted, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })

	r := newRepacker()
	for _, pod := range sorted {
		if !shouldPodBeInEndpoints(pod, svc.Spec.PublishNotReadyAddresses) {
			continue
		}
		addr, ok := podAddress(svc, pod)
		if !ok {
			// No IP of the Service's primary family (a single-stack pod behind a Service of the
			// other family): kube skips the pod.
			continue
		}
		ready := svc.Spec.PublishNotReadyAddresses || isPodReady(pod)
		if len(svc.Spec.Ports) == 0 {
			// Only headless Services may have no ports; their pods are still listed, without ports.
			if svc.Spec.ClusterIP == corev1.ClusterIPNone {
				r.add(addr, nil, ready)
			}
			continue
		}
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			num, err := findPort(pod, sp)
			if err != nil {
				// A named targetPort this pod does not declare: kube leaves the pod out of this port.
				continue
			}
			r.add(addr, &corev1.EndpointPort{Name: sp.Name, Port: int32(num), Protocol: sp.Protocol, AppProtocol: sp.AppProtocol}, ready)
		}
	}
	return r.subsets()
}

// shouldPodBeInEndpoints is kube's rule (k8s.io/endpointslice/util.ShouldPodBeInEndpoints): a pod
// takes part unless it is terminal, has no IP yet, or is being deleted while the Service does not
// publish not-ready addresses (publishNotReadyAddresses keeps terminating pods listed).
func shouldPodBeInEndpoints(pod *corev1.Pod, includeTerminating bool) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	if pod.Status.PodIP == "" && len(pod.Status.PodIPs) == 0 {
		return false
	}
	if !includeTerminating && pod.DeletionTimestamp != nil {
		return false
	}
	return true
}

func isPodReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podAddress builds the pod's address for svc: the first pod IP of the Service's primary IP family
// (kube's podToEndpointAddressForService). hostNetwork pods need nothing special: their pod IP is
// the node's IP.
func podAddress(svc *corev1.Service, pod *corev1.Pod) (corev1.EndpointAddress, bool) {
	var v6 bool
	switch {
	case len(svc.Spec.IPFamilies) > 0:
		v6 = svc.Spec.IPFamilies[0] == corev1.IPv6Protocol
	case svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone:
		v6 = utilnet.IsIPv6String(svc.Spec.ClusterIP)
	default:
		v6 = utilnet.IsIPv6String(pod.Status.PodIP)
	}
	ips := pod.Status.PodIPs
	if len(ips) == 0 {
		// kube's API server always fills podIPs from podIP; a pod built by hand may only have podIP.
		ips = []corev1.PodIP{{IP: pod.Status.PodIP}}
	}
	for _, ip := range ips {
		if utilnet.IsIPv6String(ip.IP) == v6 {
			addr := corev1.EndpointAddress{
				IP:       ip.IP,
				NodeName: &pod.Spec.NodeName,
				TargetRef: &corev1.ObjectReference{
					Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
				},
			}
			// Only pods that name this Service as their subdomain get DNS hostnames through it.
			if pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name && svc.Namespace == pod.Namespace {
				addr.Hostname = pod.Spec.Hostname
			}
			return addr, true
		}
	}
	return corev1.EndpointAddress{}, false
}

// findPort resolves a Service port's targetPort on a pod, as kube's podutil.FindPort: a number is
// used as is; a name must match a container port of the same protocol, in the app containers and
// then in sidecars (restartable init containers).
func findPort(pod *corev1.Pod, sp *corev1.ServicePort) (int, error) {
	switch sp.TargetPort.Type {
	case intstr.String:
		name := sp.TargetPort.StrVal
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == name && p.Protocol == sp.Protocol {
					return int(p.ContainerPort), nil
				}
			}
		}
		for _, c := range pod.Spec.InitContainers {
			if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				continue
			}
			for _, p := range c.Ports {
				if p.Name == name && p.Protocol == sp.Protocol {
					return int(p.ContainerPort), nil
				}
			}
		}
	case intstr.Int:
		return sp.TargetPort.IntValue(), nil
	}
	return 0, fmt.Errorf("no container port named %q in pod %s/%s", sp.TargetPort.StrVal, pod.Namespace, pod.Name)
}

// repacker is kube's endpoints.RepackSubsets, fed one (address, port) pair at a time: it maps each
// distinct port to the addresses serving it, then groups ports served by identical address sets into
// one subset.
type repacker struct {
	// addrs dedups addresses by IP and pod UID; the first one seen wins, as in kube.
	addrs map[addressKey]*corev1.EndpointAddress
	// byPort maps each port to its addresses and whether each is ready. A nil port (headless Service
	// without ports) is kept under noPort so its addresses are not lost.
	byPort map[portKey]*portAddrs
}

type addressKey struct {
	ip  string
	uid types.UID
}

type portKey struct {
	name, protocol, appProtocol string
	hasAppProtocol              bool
	port                        int32
}

// noPort stands for "no ports" (kube uses a sentinel port -1 the same way).
var noPort = portKey{port: -1}

type portAddrs struct {
	port *corev1.EndpointPort
	// ready per address; not ready wins when an address is seen both ways.
	ready map[*corev1.EndpointAddress]bool
}

func newRepacker() *repacker {
	return &repacker{addrs: map[addressKey]*corev1.EndpointAddress{}, byPort: map[portKey]*portAddrs{}}
}

func (r *repacker) add(addr corev1.EndpointAddress, port *corev1.EndpointPort, ready bool) {
	ak := addressKey{ip: addr.IP}
	if addr.TargetRef != nil {
		ak.uid = addr.TargetRef.UID
	}
	a := r.addrs[ak]
	if a == nil {
		a = &addr
		r.addrs[ak] = a
	}
	pk := noPort
	if port != nil {
		pk = portKey{name: port.Name, protocol: string(port.Protocol), port: port.Port}
		if port.AppProtocol != nil {
			pk.hasAppProtocol, pk.appProtocol = true, *port.AppProtocol
		}
	}
	pa := r.byPort[pk]
	if pa == nil {
		pa = &portAddrs{port: port, ready: map[*corev1.EndpointAddress]bool{}}
		r.byPort[pk] = pa
	}
	if was, found := pa.ready[a]; !found || was {
		pa.ready[a] = ready
	}
}

func (r *repacker) subsets() []corev1.EndpointSubset {
	type group struct {
		ready map[*corev1.EndpointAddress]bool
		ports []corev1.EndpointPort
	}
	groups := map[string]*group{}
	for pk, pa := range r.byPort {
		key := addressSetKey(pa.ready)
		g := groups[key]
		if g == nil {
			g = &group{ready: pa.ready}
			groups[key] = g
		}
		if pk != noPort {
			g.ports = append(g.ports, *pa.port)
		}
	}
	out := []corev1.EndpointSubset{}
	for _, g := range groups {
		// Slices stay nil when empty, as kube builds them: the nil-ness feeds the hash that orders
		// subsets.
		var ready, notReady []corev1.EndpointAddress
		for a, ok := range g.ready {
			if ok {
				ready = append(ready, *a)
			} else {
				notReady = append(notReady, *a)
			}
		}
		out = append(out, corev1.EndpointSubset{Addresses: ready, NotReadyAddresses: notReady, Ports: g.ports})
	}
	return sortSubsets(out)
}

// addressSetKey names a set of (address, ready) pairs; addresses are unique by IP and UID.
func addressSetKey(set map[*corev1.EndpointAddress]bool) string {
	keys := make([]string, 0, len(set))
	for a, ready := range set {
		uid := types.UID("")
		if a.TargetRef != nil {
			uid = a.TargetRef.UID
		}
		keys = append(keys, fmt.Sprintf("%s/%s/%t", a.IP, uid, ready))
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// sortSubsets orders addresses by IP then pod UID, and ports and subsets by the MD5 of their
// spew dump, exactly as kube's endpoints.SortSubsets, so the stored order matches kube's.
func sortSubsets(subsets []corev1.EndpointSubset) []corev1.EndpointSubset {
	for i := range subsets {
		s := &subsets[i]
		slices.SortFunc(s.Addresses, compareAddress)
		slices.SortFunc(s.NotReadyAddresses, compareAddress)
		sortByHash(s.Ports)
	}
	sortByHash(subsets)
	return subsets
}

func compareAddress(a, b corev1.EndpointAddress) int {
	if c := bytes.Compare([]byte(a.IP), []byte(b.IP)); c != 0 {
		return c
	}
	switch {
	case a.TargetRef == nil && b.TargetRef == nil:
		return 0
	case a.TargetRef == nil:
		return -1
	case b.TargetRef == nil:
		return 1
	}
	return strings.Compare(string(a.TargetRef.UID), string(b.TargetRef.UID))
}

// sortByHash sorts by kube's DeepHashObject (MD5 of dump.ForHash); equal hashes mean equal values.
func sortByHash[T any](items []T) {
	if len(items) < 2 {
		return
	}
	type hashed struct {
		sum  [md5.Size]byte
		item T
	}
	hs := make([]hashed, len(items))
	for i, it := range items {
		hs[i] = hashed{md5.Sum([]byte(dump.ForHash(it))), it}
	}
	slices.SortStableFunc(hs, func(a, b hashed) int { return bytes.Compare(a.sum[:], b.sum[:]) })
	for i := range hs {
		items[i] = hs[i].item
	}
}

// truncate cuts subsets down to maxCapacity addresses in place and reports whether it did. Ready
// addresses go first; each subset keeps a share proportional to its size, rounded up (kube's
// truncateEndpoints).
func truncate(subsets []corev1.EndpointSubset) bool {
	totalReady, totalNotReady := 0, 0
	for _, s := range subsets {
		totalReady += len(s.Addresses)
		totalNotReady += len(s.NotReadyAddresses)
	}
	if totalReady+totalNotReady <= maxCapacity {
		return false
	}
	truncateReady := totalReady > maxCapacity
	limit, total := maxCapacity-totalReady, totalNotReady
	if truncateReady {
		limit, total = maxCapacity, totalReady
	}
	left := limit
	for i := range subsets {
		s := &subsets[i]
		n := len(s.NotReadyAddresses)
		if truncateReady {
			n = len(s.Addresses)
		}
		keep := min(int(math.Ceil(float64(n)/float64(total)*float64(limit))), left)
		if truncateReady {
			s.Addresses = s.Addresses[:min(keep, len(s.Addresses))]
			s.NotReadyAddresses = []corev1.EndpointAddress{}
			left -= len(s.Addresses)
		} else {
			s.NotReadyAddresses = s.NotReadyAddresses[:min(keep, len(s.NotReadyAddresses))]
			left -= len(s.NotReadyAddresses)
		}
	}
	return true
}

// semanticIgnoreResourceVersion compares like equality.Semantic (nil and empty slices are equal)
// but ignores the resourceVersion of target references, so pod updates that do not change an
// address do not rewrite Endpoints.
var semanticIgnoreResourceVersion = conversion.EqualitiesOrDie(func(a, b corev1.ObjectReference) bool {
	a.ResourceVersion, b.ResourceVersion = "", ""
	return a == b
})

// upToDate reports whether current already says what desired says: the same subsets, labels and
// over-capacity annotation. The trigger-time annotation alone never causes a write.
func upToDate(current, desired *corev1.Endpoints) bool {
	return semanticIgnoreResourceVersion.DeepEqual(current.Subsets, desired.Subsets) &&
		equality.Semantic.DeepEqual(current.Labels, desired.Labels) &&
		sameAnnotation(current, desired, corev1.EndpointsOverCapacity)
}

func sameAnnotation(a, b *corev1.Endpoints, key string) bool {
	va, oka := a.Annotations[key]
	vb, okb := b.Annotations[key]
	return oka == okb && va == vb
}

// merge returns the object to write: current (or a new object) with desired's subsets and labels,
// and the annotations this controller owns set or removed; other annotations are kept.
func merge(current, desired *corev1.Endpoints) *corev1.Endpoints {
	var out *corev1.Endpoints
	if current == nil {
		out = &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: desired.Name, Namespace: desired.Namespace}}
	} else {
		out = current.DeepCopy()
	}
	out.Subsets = desired.Subsets
	out.Labels = desired.Labels
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	for _, k := range []string{corev1.EndpointsLastChangeTriggerTime, corev1.EndpointsOverCapacity} {
		if v, ok := desired.Annotations[k]; ok {
			out.Annotations[k] = v
		} else {
			delete(out.Annotations, k)
		}
	}
	return out
}
