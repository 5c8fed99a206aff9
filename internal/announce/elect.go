// Package announce makes LoadBalancer addresses reachable on the node network: the MetalLB speaker's
// role in layer-2 mode. For each address of the pool that a Service holds, exactly one node, chosen
// the same way by every agent from the same API data, owns the address: its kernel answers ARP for
// it, and its Service proxy sends the traffic on to the endpoints. When the choice moves (the node
// fails, its endpoints go), the new owner takes the address and tells the segment with gratuitous
// ARP.
package announce

import (
	"crypto/sha256"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/svcnet/svcnet/internal/lbpool"
)

// LabelExclude keeps a node out of external load balancers, as in Kubernetes.
const LabelExclude = corev1.LabelNodeExcludeBalancers

// SlicesFunc returns the EndpointSlices of a Service.
type SlicesFunc func(namespace, service string) []*discoveryv1.EndpointSlice

// Desired returns the addresses node must own: the pool addresses in the status of the
// LoadBalancer Services (without a loadBalancerClass: those with one belong to another
// implementation) that Elect gives to node, sorted.
func Desired(node string, pool lbpool.Pool, services []*corev1.Service, nodes []*corev1.Node, slicesOf SlicesFunc) []netip.Addr {
	if pool.Empty() {
		return nil
	}
	eligible := eligibleNodes(nodes)
	var out []netip.Addr
	for _, svc := range services {
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.LoadBalancerClass != nil || svc.DeletionTimestamp != nil {
			continue
		}
		var ips []netip.Addr
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(ing.IP); err == nil && pool.Contains(a) {
				ips = append(ips, a.Unmap())
			}
		}
		if len(ips) == 0 {
			continue
		}
		candidates := eligible
		if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
			// Only nodes with a ready endpoint of their own keep the client's address and still
			// deliver. With none anywhere, any node answers, so that clients get the proxy's
			// reject at once rather than an ARP timeout.
			if local := withReadyEndpoints(eligible, slicesOf(svc.Namespace, svc.Name)); len(local) > 0 {
				candidates = local
			}
		}
		for _, ip := range ips {
			if Elect(ip, candidates) == node {
				out = append(out, ip)
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out)
}

// Elect picks the owner of ip among candidates, "" if there are none. Every agent computes the same
// owner from the same candidates; the hash spreads addresses over nodes and, unlike a sort by name,
// moves only the addresses of a node that leaves (MetalLB's rule: the least sha256(node#ip)).
func Elect(ip netip.Addr, candidates []string) string {
	var best string
	var bestSum [sha256.Size]byte
	for _, n := range candidates {
		sum := sha256.Sum256([]byte(n + "#" + ip.String()))
		if best == "" || string(sum[:]) < string(bestSum[:]) {
			best, bestSum = n, sum
		}
	}
	return best
}

// eligibleNodes are the Ready nodes that are not excluded from load balancers and not going away.
func eligibleNodes(nodes []*corev1.Node) []string {
	var out []string
	for _, n := range nodes {
		if n.DeletionTimestamp != nil {
			continue
		}
		if _, ok := n.Labels[LabelExclude]; ok {
			continue
		}
		ready := false
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready = c.Status == corev1.ConditionTrue
			}
		}
		if ready {
			out = append(out, n.Name)
		}
	}
	return out
}

// withReadyEndpoints keeps the nodes that host a ready endpoint of the slices.
func withReadyEndpoints(nodes []string, slices []*discoveryv1.EndpointSlice) []string {
	has := map[string]bool{}
	for _, s := range slices {
		for _, ep := range s.Endpoints {
			// A nil ready condition means ready (discovery/v1's rule).
			if ep.NodeName != nil && (ep.Conditions.Ready == nil || *ep.Conditions.Ready) {
				has[*ep.NodeName] = true
			}
		}
	}
	var out []string
	for _, n := range nodes {
		if has[n] {
			out = append(out, n)
		}
	}
	return out
}
