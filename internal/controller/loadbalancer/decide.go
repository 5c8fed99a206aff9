// Package loadbalancer allocates addresses from the LoadBalancer pool to Services of type
// LoadBalancer and records them in status.loadBalancer (the MetalLB controller role). The node
// agents announce what is recorded here; this package only decides who holds which address.
package loadbalancer

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/svcnet/svcnet/internal/lbpool"
)

// The annotations a user requests an address with: MetalLB's current name and the older one it
// still reads. When both are present the current one wins, as in MetalLB.
const (
	AnnotationLoadBalancerIPs           = "metallb.io/loadBalancerIPs"
	DeprecatedAnnotationLoadBalancerIPs = "metallb.universe.tf/loadBalancerIPs"
)

// Event reasons, MetalLB's, so that runbooks written for MetalLB read the same here.
const (
	ReasonIPAllocated      = "IPAllocated"
	ReasonAllocationFailed = "AllocationFailed"
)

// Decision is what should become of one Service: the address it holds afterwards, the ingress its
// status should show and what to tell the user. It is a value so that it can be logged and tested
// apart from the API.
type Decision struct {
	// IP is the address the Service holds once the decision is applied; the zero Addr for none.
	// Every other address the Service held is released once the status no longer shows it.
	IP netip.Addr
	// SetIngress says whether status.loadBalancer.ingress is ours to set; when it is, Ingress is
	// what it should be.
	SetIngress bool
	Ingress    []corev1.LoadBalancerIngress
	// EventType, Reason and Message are the Event to report on the Service; Reason is "" for none.
	EventType, Reason, Message string
	// Waiting says that the Service wants an address that another Service's release could give
	// it, so it is worth retrying then.
	Waiting bool
}

// Decide chooses the address of svc given owners (every address in use, to the namespace/name key
// of the Service holding it, including svc itself) and the pool. The rules, in order:
//
//   - A Service that is not of type LoadBalancer holds nothing, and loses the pool addresses its
//     status still shows.
//   - A Service with a loadBalancerClass belongs to another implementation: its status is left
//     alone, unless it holds an address from us (its class was set after we gave it one; the
//     apiserver allows that only across a change of type), which it then loses.
//   - An IPv6-only Service cannot be served from an IPv4 pool.
//   - An address requested by metallb.io/loadBalancerIPs (or its deprecated name) or
//     spec.loadBalancerIP, never both, must be one IPv4 address of the pool that no other Service
//     holds.
//   - Otherwise the Service keeps the first pool address its status shows that no other Service
//     holds; then one it holds already (our own write that the status does not show yet); then it
//     takes the first free address of the pool.
//
// A Service that gets no address loses any it had, as in MetalLB, so that the status never shows
// an address other than the one asked for.
func Decide(svc *corev1.Service, owners map[netip.Addr]string, pool lbpool.Pool) Decision {
	key := svc.Namespace + "/" + svc.Name
	ingress := svc.Status.LoadBalancer.Ingress
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return Decision{SetIngress: true, Ingress: withoutPool(ingress, pool)}
	}
	if svc.Spec.LoadBalancerClass != nil {
		if len(heldBy(owners, key)) == 0 {
			return Decision{}
		}
		return Decision{SetIngress: true, Ingress: withoutPool(ingress, pool)}
	}
	fail := func(waiting bool, format string, args ...any) Decision {
		return Decision{
			SetIngress: true,
			Ingress:    withoutPool(ingress, pool),
			EventType:  corev1.EventTypeWarning,
			Reason:     ReasonAllocationFailed,
			Message:    fmt.Sprintf("Failed to allocate IP for %q: ", key) + fmt.Sprintf(format, args...),
			Waiting:    waiting,
		}
	}
	freeFor := func(a netip.Addr) bool {
		o, ok := owners[a]
		return !ok || o == key
	}
	if ipv6Only(svc) {
		return fail(false, "the Service is IPv6-only (spec.ipFamilies %v) and the address pool has only IPv4 addresses", svc.Spec.IPFamilies)
	}
	want, err := requested(svc)
	if err != nil {
		return fail(false, "%v", err)
	}
	if want.IsValid() {
		if !pool.Contains(want) {
			return fail(false, "%q is not allowed in config", []string{want.String()})
		}
		if !freeFor(want) {
			return fail(true, "%q is already in use by %s", []string{want.String()}, owners[want])
		}
		return assign(want, ingress)
	}
	for _, ing := range ingress {
		if a, ok := parseIPv4(ing.IP); ok && pool.Contains(a) && freeFor(a) {
			return assign(a, ingress)
		}
	}
	if held := heldBy(owners, key); len(held) > 0 {
		return assign(held[0], ingress)
	}
	if a, ok := pool.First(freeFor); ok {
		return assign(a, ingress)
	}
	return fail(true, "no available IPs")
}

// assign gives the Service a. IPAllocated is reported only when the status did not show a yet, so
// that keeping an address (after a restart, say) tells the user nothing new.
func assign(a netip.Addr, current []corev1.LoadBalancerIngress) Decision {
	d := Decision{
		IP:         a,
		SetIngress: true,
		Ingress:    []corev1.LoadBalancerIngress{{IP: a.String(), IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)}},
	}
	shown := slices.ContainsFunc(current, func(ing corev1.LoadBalancerIngress) bool {
		b, ok := parseIPv4(ing.IP)
		return ok && b == a
	})
	if !shown {
		d.EventType, d.Reason = corev1.EventTypeNormal, ReasonIPAllocated
		d.Message = fmt.Sprintf("Assigned IP %q", []string{a.String()})
	}
	return d
}

// requested returns the address the user asked for, the zero Addr when none, with MetalLB's rules
// for reading it: the annotation or the (deprecated) spec field, not both.
func requested(svc *corev1.Service) (netip.Addr, error) {
	var name, value string
	for _, n := range []string{AnnotationLoadBalancerIPs, DeprecatedAnnotationLoadBalancerIPs} {
		if v, ok := svc.Annotations[n]; ok {
			name, value = n, v
			break
		}
	}
	field := svc.Spec.LoadBalancerIP
	switch {
	case value == "" && field == "":
		return netip.Addr{}, nil
	case value != "" && field != "":
		return netip.Addr{}, fmt.Errorf("service can not have both %s and svc.Spec.LoadBalancerIP", name)
	case field != "":
		a, err := netip.ParseAddr(field)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("invalid spec.loadBalancerIP %q", field)
		}
		return onlyIPv4([]netip.Addr{a})
	}
	var addrs []netip.Addr
	for _, s := range strings.Split(value, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return netip.Addr{}, fmt.Errorf("invalid %s: %q", name, value)
		}
		addrs = append(addrs, a)
	}
	return onlyIPv4(addrs)
}

// onlyIPv4 accepts exactly one IPv4 address: the pool has no IPv6 addresses, so a dual-stack
// request could only be half met, and MetalLB fails those rather than meet them in part.
func onlyIPv4(addrs []netip.Addr) (netip.Addr, error) {
	strs := make([]string, len(addrs))
	for i, a := range addrs {
		strs[i] = a.String()
	}
	if len(addrs) != 1 {
		return netip.Addr{}, fmt.Errorf("%q: only one IPv4 address can be requested", strs)
	}
	a := addrs[0].Unmap()
	if !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%q: only IPv4 addresses can be allocated", strs)
	}
	return a, nil
}

func ipv6Only(svc *corev1.Service) bool {
	// Unset families (an object not defaulted by an apiserver) are read as IPv4, the default.
	return len(svc.Spec.IPFamilies) > 0 && !slices.Contains(svc.Spec.IPFamilies, corev1.IPv4Protocol)
}

func parseIPv4(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	a = a.Unmap()
	return a, a.Is4()
}

// withoutPool drops the pool's addresses from ingress, keeping what others wrote (hostnames,
// addresses outside the pool): only the pool's addresses are ours to take back.
func withoutPool(ingress []corev1.LoadBalancerIngress, pool lbpool.Pool) []corev1.LoadBalancerIngress {
	var out []corev1.LoadBalancerIngress
	for _, ing := range ingress {
		if a, ok := parseIPv4(ing.IP); ok && pool.Contains(a) {
			continue
		}
		out = append(out, ing)
	}
	return out
}

// heldBy lists, lowest first, the addresses owners gives to key.
func heldBy(owners map[netip.Addr]string, key string) []netip.Addr {
	var out []netip.Addr
	for a, o := range owners {
		if o == key {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
