package endpointslicemirroring

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	endpointsliceutil "k8s.io/endpointslice/util"
	netutils "k8s.io/utils/net"
)

const (
	// controllerName is the value of the managed-by label on every slice this controller owns. Kube's
	// value, so that slices written by kube-controller-manager and by svcnet are interchangeable.
	controllerName = "endpointslicemirroring-controller.k8s.io"

	// DefaultMaxEndpointsPerSubset is kube-controller-manager's --mirroring-max-endpoints-per-subset
	// default. It is also the most endpoints one EndpointSlice may hold, so it is the ceiling.
	DefaultMaxEndpointsPerSubset = 1000
)

// Why a plan mirrors nothing; logged, and tested.
const (
	reasonMirrored        = ""
	reasonNoEndpoints     = "endpointsAbsent"
	reasonSkipMirror      = "skipMirrorLabel"
	reasonLeaderElection  = "leaderElectionRecord"
	reasonNoService       = "serviceAbsent"
	reasonServiceSelector = "serviceHasSelector"
)

// plan is the decision for one Endpoints: which mirrored slices to create, update and delete. It is a
// value so that it can be logged and table-tested; the controller only executes it.
type plan struct {
	// reason is empty when the Endpoints is mirrored, else why its slices are all deleted.
	reason string
	create []*discovery.EndpointSlice // GenerateName set, Name empty
	update []*discovery.EndpointSlice // Name and ResourceVersion of the slice they replace
	delete []*discovery.EndpointSlice // the existing slices, as listed
	// invalidAddresses are addresses that are not IPs; skippedAddresses counts those plus the ones
	// left out because a subset held more than maxEndpointsPerSubset. Both feed kube's Warning events.
	invalidAddresses int
	skippedAddresses int
}

func (p plan) writes() int { return len(p.create) + len(p.update) + len(p.delete) }

// mirrorable reports whether an Endpoints should be mirrored at all, judged on the object alone (the
// informer handlers use this before any Service is looked at), and if not, why.
func mirrorable(ep *corev1.Endpoints) (bool, string) {
	switch {
	case ep == nil:
		return false, reasonNoEndpoints
	case ep.Labels[discovery.LabelSkipMirror] == "true":
		return false, reasonSkipMirror
	case hasLeaderElectionRecord(ep.Annotations):
		// Old-style leader election writes its lock into an Endpoints; those are not services.
		return false, reasonLeaderElection
	}
	return true, reasonMirrored
}

// hasLeaderElectionRecord is kube's check for the control-plane.alpha.kubernetes.io/leader annotation.
func hasLeaderElectionRecord(annotations map[string]string) bool {
	_, ok := annotations[resourcelock.LeaderElectionRecordAnnotationKey]
	return ok
}

// shouldMirror is kube's full rule: a mirrorable Endpoints whose Service exists and has no selector
// (a Service with a selector has its slices written by the EndpointSlice controller instead).
func shouldMirror(ep *corev1.Endpoints, svc *corev1.Service) (bool, string) {
	if ok, reason := mirrorable(ep); !ok {
		return false, reason
	}
	if svc == nil {
		return false, reasonNoService
	}
	// kube tests for nil, not for emptiness; kept so the two controllers agree on every object.
	if svc.Spec.Selector != nil {
		return false, reasonServiceSelector
	}
	return true, reasonMirrored
}

// computePlan decides, from an Endpoints and its Service (either nil when absent) and the slices this
// controller already mirrored for that name, what to write. It does not modify its arguments and its
// result does not depend on the order of existing or of the addresses in the Endpoints.
func computePlan(ep *corev1.Endpoints, svc *corev1.Service, existing []*discovery.EndpointSlice, maxEndpointsPerSubset int32) plan {
	existing = sortedByName(existing)
	if ok, reason := shouldMirror(ep, svc); !ok {
		return plan{reason: reason, delete: existing}
	}
	d := computeDesired(ep, maxEndpointsPerSubset)
	p := plan{invalidAddresses: d.invalid, skippedAddresses: d.skipped}

	existingByKey := map[sliceKey][]*discovery.EndpointSlice{}
	for _, s := range existing {
		k := keyOfSlice(s)
		existingByKey[k] = append(existingByKey[k], s)
	}
	labels, annotations := sliceLabels(ep), sliceAnnotations(ep)
	for _, k := range d.keys {
		want := d.slices[k]
		candidates := existingByKey[k]
		delete(existingByKey, k)
		if len(candidates) == 0 {
			p.create = append(p.create, newSlice(ep, want, labels, annotations, nil))
			continue
		}
		// One slice per key is kube's layout; extra ones (a create raced a stale cache) go. Keeping a
		// slice that is already right, when there is one, makes the cheapest plan.
		keep := candidates[0]
		for _, c := range candidates {
			if upToDate(c, want, ep, labels, annotations) {
				keep = c
				break
			}
		}
		for _, c := range candidates {
			if c != keep {
				p.delete = append(p.delete, c)
			}
		}
		if !upToDate(keep, want, ep, labels, annotations) {
			p.update = append(p.update, newSlice(ep, want, labels, annotations, keep))
		}
	}
	// Port sets and address families nobody wants any more.
	for _, k := range sortedKeys(existingByKey) {
		p.delete = append(p.delete, existingByKey[k]...)
	}
	sortByName(p.delete)
	recycle(&p)
	if ep.DeletionTimestamp != nil {
		// As kube: an Endpoints on its way out gets no new slices, but existing ones are still kept
		// right until the garbage collector removes them with their owner.
		p.create = nil
	}
	sortByName(p.update)
	sortByName(p.delete)
	return p
}

// sliceKey identifies one mirrored slice: kube writes exactly one per address family and port set.
type sliceKey struct {
	addressType discovery.AddressType
	ports       endpointsliceutil.PortMapKey
}

func (k sliceKey) less(o sliceKey) bool {
	if k.addressType != o.addressType {
		return k.addressType < o.addressType
	}
	return k.ports < o.ports
}

func sortedKeys[V any](m map[sliceKey]V) []sliceKey {
	keys := slices.Collect(maps.Keys(m))
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	return keys
}

// keyOfSlice computes an existing slice's key without sorting the informer cache's Ports in place,
// which NewPortMapKey would otherwise do.
func keyOfSlice(s *discovery.EndpointSlice) sliceKey {
	ports := slices.Clone(s.Ports)
	return sliceKey{addressType: s.AddressType, ports: endpointsliceutil.NewPortMapKey(ports)}
}

// wantSlice is the content one mirrored slice should have.
type wantSlice struct {
	key       sliceKey
	ports     []discovery.EndpointPort
	endpoints []discovery.Endpoint
}

type desired struct {
	slices           map[sliceKey]*wantSlice
	keys             []sliceKey // sorted, so plans are deterministic
	invalid, skipped int
}

// computeDesired turns an Endpoints into the content of its slices, as kube's reconciler does: the
// subsets are first repacked into canonical form (so overlapping or split subsets mirror the same way
// as their tidy equivalent), then every subset contributes at most maxEndpointsPerSubset addresses,
// ready ones first, each to the slice of its address family and the subset's ports.
func computeDesired(ep *corev1.Endpoints, maxEndpointsPerSubset int32) desired {
	d := desired{slices: map[sliceKey]*wantSlice{}}
	for _, subset := range repackSubsets(ep.Subsets) {
		ports := toSlicePorts(subset.Ports)
		// NewPortMapKey sorts ports by hash; that order is also the order the slice gets.
		portKey := endpointsliceutil.NewPortMapKey(ports)
		added := 0
		add := func(addrs []corev1.EndpointAddress, ready bool) {
			for _, a := range addrs {
				// Counting stops at the limit; what is left over, valid or not, is "skipped".
				if added >= int(maxEndpointsPerSubset) {
					return
				}
				e, addrType, ok := toEndpoint(a, ready)
				if !ok {
					d.invalid++
					continue
				}
				added++
				k := sliceKey{addressType: addrType, ports: portKey}
				w := d.slices[k]
				if w == nil {
					w = &wantSlice{key: k, ports: ports}
					d.slices[k] = w
				}
				w.add(e)
			}
		}
		add(subset.Addresses, true)
		add(subset.NotReadyAddresses, false)
		d.skipped += len(subset.Addresses) + len(subset.NotReadyAddresses) - added
	}
	d.keys = sortedKeys(d.slices)
	return d
}

// add appends an endpoint unless one with the same identity is already there, in which case the later
// one replaces it, matching the set kube builds.
func (w *wantSlice) add(e discovery.Endpoint) {
	id := identity(&e)
	for i := range w.endpoints {
		if identity(&w.endpoints[i]) == id {
			w.endpoints[i] = e
			return
		}
	}
	w.endpoints = append(w.endpoints, e)
}

// endpointID is what kube's EndpointSet hashes to tell endpoints apart: addresses, hostname and the
// target's namespace/name. Everything else is an attribute that can be updated in place.
type endpointID struct {
	addresses, hostname, namespace, name string
}

func identity(e *discovery.Endpoint) endpointID {
	addrs := slices.Clone(e.Addresses)
	slices.Sort(addrs)
	id := endpointID{addresses: strings.Join(addrs, ",")}
	if e.Hostname != nil {
		id.hostname = *e.Hostname
	}
	if e.TargetRef != nil {
		id.namespace, id.name = e.TargetRef.Namespace, e.TargetRef.Name
	}
	return id
}

// toEndpoint converts an Endpoints address. The IP is parsed and printed again so that irregular
// spellings (leading zeros, IPv4-mapped IPv6) are stored the way EndpointSlice validation wants them.
func toEndpoint(a corev1.EndpointAddress, ready bool) (discovery.Endpoint, discovery.AddressType, bool) {
	ip := netutils.ParseIPSloppy(a.IP)
	if ip == nil {
		return discovery.Endpoint{}, "", false
	}
	addrType := discovery.AddressTypeIPv4
	if ip.To4() == nil {
		addrType = discovery.AddressTypeIPv6
	}
	e := discovery.Endpoint{
		Addresses:  []string{ip.String()},
		Conditions: discovery.EndpointConditions{Ready: &ready},
	}
	if a.TargetRef != nil {
		ref := *a.TargetRef
		e.TargetRef = &ref
	}
	if a.NodeName != nil {
		n := *a.NodeName
		e.NodeName = &n
	}
	if a.Hostname != "" {
		h := a.Hostname
		e.Hostname = &h
	}
	return e, addrType, true
}

func toSlicePorts(ports []corev1.EndpointPort) []discovery.EndpointPort {
	out := make([]discovery.EndpointPort, 0, len(ports))
	for _, p := range ports {
		name, port, proto := p.Name, p.Port, p.Protocol
		sp := discovery.EndpointPort{Name: &name, Port: &port, Protocol: &proto}
		if p.AppProtocol != nil {
			ap := *p.AppProtocol
			sp.AppProtocol = &ap
		}
		out = append(out, sp)
	}
	return out
}

// sliceLabels are the Endpoints' labels plus the two that tie a slice to its Service and to us.
func sliceLabels(ep *corev1.Endpoints) map[string]string {
	l := make(map[string]string, len(ep.Labels)+2)
	maps.Copy(l, ep.Labels)
	l[discovery.LabelServiceName] = ep.Name
	l[discovery.LabelManagedBy] = controllerName
	return l
}

// sliceAnnotations are the Endpoints' annotations except the two kube does not mirror: the trigger
// time describes the Endpoints write, not the slice, and kubectl's last-applied configuration would
// make kubectl think it had applied the slice.
func sliceAnnotations(ep *corev1.Endpoints) map[string]string {
	a := make(map[string]string, len(ep.Annotations))
	for k, v := range ep.Annotations {
		if k == corev1.EndpointsLastChangeTriggerTime || k == corev1.LastAppliedConfigAnnotation {
			continue
		}
		a[k] = v
	}
	return a
}

// newSlice builds a complete slice. With a previous slice it is an update of it: same name, and its
// resourceVersion, so that a write based on a stale cache fails with a conflict and is retried.
func newSlice(ep *corev1.Endpoints, w *wantSlice, labels, annotations map[string]string, prev *discovery.EndpointSlice) *discovery.EndpointSlice {
	s := &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       ep.Namespace,
			Labels:          maps.Clone(labels),
			Annotations:     maps.Clone(annotations),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ep, corev1.SchemeGroupVersion.WithKind("Endpoints"))},
		},
		AddressType: w.key.addressType,
		Ports:       slices.Clone(w.ports),
		Endpoints:   slices.Clone(w.endpoints),
	}
	if s.Endpoints == nil {
		s.Endpoints = []discovery.Endpoint{}
	}
	if prev == nil {
		s.GenerateName = slicePrefix(ep.Name)
	} else {
		s.Name, s.ResourceVersion, s.GenerateName = prev.Name, prev.ResourceVersion, prev.GenerateName
	}
	return s
}

// slicePrefix is "<service>-", or the bare name if the dash would make an invalid prefix.
func slicePrefix(service string) string {
	if p := service + "-"; len(apimachineryvalidation.NameIsDNSSubdomain(p, true)) == 0 {
		return p
	}
	return service
}

// upToDate reports whether an existing slice already has what we would write, comparing what kube
// compares: the endpoints (as a set, attributes beyond identity included), labels, annotations, and
// whether it is owned by an older Endpoints of the same name (which the garbage collector would delete).
func upToDate(s *discovery.EndpointSlice, w *wantSlice, ep *corev1.Endpoints, labels, annotations map[string]string) bool {
	return sameEndpoints(s.Endpoints, w.endpoints) &&
		equalMaps(s.Labels, labels) && equalMaps(s.Annotations, annotations) &&
		!ownedByOtherEndpoints(s, ep)
}

func sameEndpoints(have, want []discovery.Endpoint) bool {
	if len(have) != len(want) {
		return false
	}
	byID := make(map[endpointID]*discovery.Endpoint, len(want))
	for i := range want {
		byID[identity(&want[i])] = &want[i]
	}
	for i := range have {
		id := identity(&have[i])
		w, ok := byID[id]
		if !ok || !endpointsliceutil.EndpointsEqualBeyondHash(w, &have[i]) {
			return false
		}
		delete(byID, id) // a duplicate in have then fails the lookup
	}
	return len(byID) == 0
}

func ownedByOtherEndpoints(s *discovery.EndpointSlice, ep *corev1.Endpoints) bool {
	for _, ref := range s.OwnerReferences {
		if ref.Kind == "Endpoints" && ref.Name == ep.Name && ref.UID != ep.UID {
			return true
		}
	}
	return false
}

// equalMaps treats nil and empty as equal, as the API does.
func equalMaps(a, b map[string]string) bool {
	return len(a) == len(b) && maps.Equal(a, b)
}

// recycle turns a create plus a delete of the same address family into one update of the slice that
// would have been deleted (address type is immutable, ports are not): one write instead of two, and
// watchers see a change rather than a slice vanishing and another appearing.
func recycle(p *plan) {
	if len(p.create) == 0 || len(p.delete) == 0 {
		return
	}
	var creates []*discovery.EndpointSlice
	deletes := p.delete
	for _, c := range p.create {
		i := slices.IndexFunc(deletes, func(d *discovery.EndpointSlice) bool { return d.AddressType == c.AddressType })
		if i < 0 {
			creates = append(creates, c)
			continue
		}
		d := deletes[i]
		deletes = slices.Delete(slices.Clone(deletes), i, i+1)
		c.Name, c.ResourceVersion, c.GenerateName = d.Name, d.ResourceVersion, d.GenerateName
		p.update = append(p.update, c)
	}
	p.create, p.delete = creates, deletes
}

func sortedByName(in []*discovery.EndpointSlice) []*discovery.EndpointSlice {
	out := slices.Clone(in)
	sortByName(out)
	return out
}

func sortByName(s []*discovery.EndpointSlice) {
	sort.SliceStable(s, func(i, j int) bool { return s[i].Name < s[j].Name })
}

// repackSubsets is kube's endpoints.RepackSubsets (pkg/api/v1/endpoints), which the mirroring
// reconciler applies first: every (address, port) pair is expanded, an address that is not ready on a
// port stays not ready there, and ports served by exactly the same addresses with the same readiness
// are grouped back into one subset. Addresses are told apart by IP and target UID; the first occurrence
// supplies hostname, nodeName and targetRef. Subsets without ports vanish, as in kube.
func repackSubsets(subsets []corev1.EndpointSubset) []corev1.EndpointSubset {
	type addrKey struct {
		ip  string
		uid types.UID
	}
	addrs := map[addrKey]*corev1.EndpointAddress{}
	var portOrder []portID
	ports := map[portID]corev1.EndpointPort{}
	readiness := map[portID]map[addrKey]bool{}
	note := func(a *corev1.EndpointAddress, p portID, ready bool) {
		k := addrKey{ip: a.IP}
		if a.TargetRef != nil {
			k.uid = a.TargetRef.UID
		}
		if _, ok := addrs[k]; !ok {
			c := *a
			addrs[k] = &c
		}
		m := readiness[p]
		if wasReady, seen := m[k]; !seen || wasReady {
			m[k] = ready // not ready wins
		}
	}
	for _, ss := range subsets {
		for _, port := range ss.Ports {
			p := portIDOf(port)
			if _, ok := ports[p]; !ok {
				ports[p] = port
				portOrder = append(portOrder, p)
				readiness[p] = map[addrKey]bool{}
			}
			for i := range ss.Addresses {
				note(&ss.Addresses[i], p, true)
			}
			for i := range ss.NotReadyAddresses {
				note(&ss.NotReadyAddresses[i], p, false)
			}
		}
	}
	// Group ports by the exact (address, readiness) set they are served by.
	signature := func(m map[addrKey]bool) string {
		parts := make([]string, 0, len(m))
		for k, r := range m {
			parts = append(parts, fmt.Sprintf("%q/%q/%t", k.ip, k.uid, r))
		}
		slices.Sort(parts)
		return strings.Join(parts, ",")
	}
	var groups []string
	bySig := map[string]*corev1.EndpointSubset{}
	for _, p := range portOrder {
		m := readiness[p]
		if len(m) == 0 {
			continue // a port nobody serves contributes nothing to mirror
		}
		sig := signature(m)
		ss := bySig[sig]
		if ss == nil {
			ss = &corev1.EndpointSubset{}
			for k, ready := range m {
				if ready {
					ss.Addresses = append(ss.Addresses, *addrs[k])
				} else {
					ss.NotReadyAddresses = append(ss.NotReadyAddresses, *addrs[k])
				}
			}
			sort.Slice(ss.Addresses, func(i, j int) bool { return lessAddress(&ss.Addresses[i], &ss.Addresses[j]) })
			sort.Slice(ss.NotReadyAddresses, func(i, j int) bool {
				return lessAddress(&ss.NotReadyAddresses[i], &ss.NotReadyAddresses[j])
			})
			bySig[sig] = ss
			groups = append(groups, sig)
		}
		ss.Ports = append(ss.Ports, ports[p])
	}
	slices.Sort(groups)
	out := make([]corev1.EndpointSubset, 0, len(groups))
	for _, g := range groups {
		out = append(out, *bySig[g])
	}
	return out
}

// portID compares Endpoints ports by value (kube's map key compares the appProtocol pointer, which
// only ever makes it split ports that are in fact equal).
type portID struct {
	name, protocol, appProtocol string
	port                        int32
	hasAppProtocol              bool
}

func portIDOf(p corev1.EndpointPort) portID {
	id := portID{name: p.Name, protocol: string(p.Protocol), port: p.Port}
	if p.AppProtocol != nil {
		id.appProtocol, id.hasAppProtocol = *p.AppProtocol, true
	}
	return id
}

// lessAddress is kube's LessEndpointAddress: by IP bytes, then target UID, untargeted first. Its order
// decides which addresses survive the per-subset limit.
func lessAddress(a, b *corev1.EndpointAddress) bool {
	if c := bytes.Compare([]byte(a.IP), []byte(b.IP)); c != 0 {
		return c < 0
	}
	if b.TargetRef == nil {
		return false
	}
	if a.TargetRef == nil {
		return true
	}
	return a.TargetRef.UID < b.TargetRef.UID
}
