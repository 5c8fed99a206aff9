// Package model is the proxy's slim view of the API: Services, EndpointSlices and the Node, converted
// at the edge into small structs holding only what the dataplane needs (DESIGN.md convention 8). Every
// other proxy package works on these types, never on API objects, so the ruleset is a pure function of
// them.
//
// The dataplane is IPv4 only for now: IPv6 addresses in Services and EndpointSlices are ignored.
package model

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ServiceProxyNameLabel marks Services handled by another proxy; svcnet ignores them, as kube-proxy does.
const ServiceProxyNameLabel = "service.kubernetes.io/service-proxy-name"

// HeadlessLabel marks EndpointSlices (and Services) of headless Services.
const HeadlessLabel = "service.kubernetes.io/headless"

// Protocol is a lower-case L4 protocol name as nftables spells it: tcp, udp or sctp.
type Protocol string

// The protocols a Service port can use.
const (
	TCP  Protocol = "tcp"
	UDP  Protocol = "udp"
	SCTP Protocol = "sctp"
)

// Number is the IANA protocol number.
func (p Protocol) Number() uint8 {
	switch p {
	case TCP:
		return 6
	case UDP:
		return 17
	case SCTP:
		return 132
	}
	return 0
}

func protocolOf(p corev1.Protocol) (Protocol, bool) {
	switch p {
	case corev1.ProtocolTCP, "":
		return TCP, true
	case corev1.ProtocolUDP:
		return UDP, true
	case corev1.ProtocolSCTP:
		return SCTP, true
	}
	return "", false
}

// ServicePortName identifies one port of one Service.
type ServicePortName struct {
	Namespace string
	Name      string
	Port      string // the port's name; "" for the single unnamed port
	Protocol  Protocol
}

// Service returns the Service the port belongs to.
func (n ServicePortName) Service() types.NamespacedName {
	return types.NamespacedName{Namespace: n.Namespace, Name: n.Name}
}

// String is "namespace/name/protocol/port", the form used in nftables object names.
func (n ServicePortName) String() string {
	return n.Namespace + "/" + n.Name + "/" + string(n.Protocol) + "/" + n.Port
}

// Compare orders names by namespace, name, protocol and port.
func (n ServicePortName) Compare(o ServicePortName) int {
	return cmp.Or(strings.Compare(n.Namespace, o.Namespace), strings.Compare(n.Name, o.Name),
		strings.Compare(string(n.Protocol), string(o.Protocol)), strings.Compare(n.Port, o.Port))
}

// ServicePort is everything the dataplane needs to know about one Service port.
type ServicePort struct {
	Name      ServicePortName
	ClusterIP netip.Addr
	Port      uint16
	// NodePort is 0 when the port has none.
	NodePort uint16
	// ExternalIPs and LoadBalancerVIPs (status ingress IPs with ipMode VIP or unset) are sorted.
	ExternalIPs      []netip.Addr
	LoadBalancerVIPs []netip.Addr
	// SourceRanges is spec.loadBalancerSourceRanges, sorted; it applies to LoadBalancerVIPs only.
	SourceRanges []netip.Prefix
	// ExternalPolicyLocal: externalTrafficPolicy Local on an externally reachable port.
	ExternalPolicyLocal bool
	// InternalPolicyLocal: internalTrafficPolicy Local.
	InternalPolicyLocal bool
	// HealthCheckNodePort is the Service's healthCheckNodePort (LoadBalancer with policy Local), or 0.
	HealthCheckNodePort uint16
	// AffinityTimeout is the ClientIP session affinity timeout; 0 means no affinity.
	AffinityTimeout time.Duration
}

// ExternallyAccessible reports whether the port has a NodePort, an external IP or a load-balancer IP.
func (p *ServicePort) ExternallyAccessible() bool {
	return p.NodePort != 0 || len(p.ExternalIPs) > 0 || len(p.LoadBalancerVIPs) > 0
}

// UsesClusterEndpoints reports whether some traffic to the port is spread over the whole cluster's
// endpoints: internal traffic with policy Cluster, or external traffic at all (pods and the node
// itself reaching an external address are sent to the cluster-wide endpoints even with policy Local).
func (p *ServicePort) UsesClusterEndpoints() bool {
	return !p.InternalPolicyLocal || p.ExternallyAccessible()
}

// UsesLocalEndpoints reports whether some traffic to the port is restricted to this node's endpoints.
func (p *ServicePort) UsesLocalEndpoints() bool {
	return p.InternalPolicyLocal || (p.ExternalPolicyLocal && p.ExternallyAccessible())
}

// Equal compares two ports field by field.
func (p *ServicePort) Equal(o *ServicePort) bool {
	if p == nil || o == nil {
		return p == o
	}
	return p.Name == o.Name && p.ClusterIP == o.ClusterIP && p.Port == o.Port && p.NodePort == o.NodePort &&
		slices.Equal(p.ExternalIPs, o.ExternalIPs) && slices.Equal(p.LoadBalancerVIPs, o.LoadBalancerVIPs) &&
		slices.Equal(p.SourceRanges, o.SourceRanges) && p.ExternalPolicyLocal == o.ExternalPolicyLocal &&
		p.InternalPolicyLocal == o.InternalPolicyLocal && p.HealthCheckNodePort == o.HealthCheckNodePort &&
		p.AffinityTimeout == o.AffinityTimeout
}

// ServicePorts converts a Service into its ports. It returns nil for Services the proxy ignores:
// headless and ExternalName Services, Services without an IPv4 ClusterIP, and Services labelled with
// service.kubernetes.io/service-proxy-name.
func ServicePorts(svc *corev1.Service) []*ServicePort {
	if svc == nil || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	if _, ok := svc.Labels[ServiceProxyNameLabel]; ok {
		return nil
	}
	clusterIP, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil || !clusterIP.Is4() {
		return nil // "None" (headless), unset, or IPv6
	}
	externalIPs := parseAddrs(svc.Spec.ExternalIPs)
	var lbIPs []string
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if ing.IP == "" || (ing.IPMode != nil && *ing.IPMode == corev1.LoadBalancerIPModeProxy) {
				continue // Proxy mode: the load balancer delivers to the NodePort, not to its VIP
			}
			lbIPs = append(lbIPs, ing.IP)
		}
	}
	lbVIPs := parseAddrs(lbIPs)
	var ranges []netip.Prefix
	if len(lbVIPs) > 0 {
		for _, r := range svc.Spec.LoadBalancerSourceRanges {
			if p, err := netip.ParsePrefix(strings.TrimSpace(r)); err == nil && p.Addr().Is4() {
				ranges = append(ranges, p.Masked())
			}
		}
		slices.SortFunc(ranges, comparePrefix)
		ranges = slices.Compact(ranges)
	}
	externallyAccessible := svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer ||
		len(externalIPs) > 0
	externalLocal := externallyAccessible && svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	internalLocal := svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
	var affinity time.Duration
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		affinity = 10800 * time.Second
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil && *c.ClientIP.TimeoutSeconds > 0 {
			affinity = time.Duration(*c.ClientIP.TimeoutSeconds) * time.Second
		}
	}
	var hc uint16
	if externalLocal && svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		hc = uint16(svc.Spec.HealthCheckNodePort)
	}
	var out []*ServicePort
	for _, p := range svc.Spec.Ports {
		proto, ok := protocolOf(p.Protocol)
		if !ok || p.Port <= 0 || p.Port > 65535 {
			continue
		}
		out = append(out, &ServicePort{
			Name:                ServicePortName{Namespace: svc.Namespace, Name: svc.Name, Port: p.Name, Protocol: proto},
			ClusterIP:           clusterIP,
			Port:                uint16(p.Port),
			NodePort:            uint16(p.NodePort),
			ExternalIPs:         externalIPs,
			LoadBalancerVIPs:    lbVIPs,
			SourceRanges:        ranges,
			ExternalPolicyLocal: externalLocal,
			InternalPolicyLocal: internalLocal,
			HealthCheckNodePort: hc,
			AffinityTimeout:     affinity,
		})
	}
	return out
}

func parseAddrs(in []string) []netip.Addr {
	var out []netip.Addr
	for _, s := range in {
		if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil && a.Is4() {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// Endpoint is one backend address of a Service port. The proxy holds one for every endpoint of
// the cluster (100,000 and more): the fields are ordered to pack it into 56 bytes.
type Endpoint struct {
	IP       netip.Addr
	NodeName string
	// Hints are the topology hints; nil when the endpoint has none (most have none).
	Hints *Hints
	Port  uint16
	// Conditions as in the EndpointSlice, with kube's defaults for unset ones.
	Ready, Serving, Terminating bool
}

// Hints are an endpoint's topology hints: the zones and nodes it is meant for (sorted).
type Hints struct {
	Zones, Nodes []string
}

// ZoneHints are the zones the endpoint is hinted for.
func (e Endpoint) ZoneHints() []string {
	if e.Hints == nil {
		return nil
	}
	return e.Hints.Zones
}

// NodeHints are the nodes the endpoint is hinted for.
func (e Endpoint) NodeHints() []string {
	if e.Hints == nil {
		return nil
	}
	return e.Hints.Nodes
}

// String is "ip:port".
func (e Endpoint) String() string { return netip.AddrPortFrom(e.IP, e.Port).String() }

// AddrPort is the endpoint's address and port.
func (e Endpoint) AddrPort() netip.AddrPort { return netip.AddrPortFrom(e.IP, e.Port) }

// Compare orders endpoints by address and port.
func (e Endpoint) Compare(o Endpoint) int {
	return cmp.Or(e.IP.Compare(o.IP), cmp.Compare(e.Port, o.Port))
}

// Equal compares every field.
func (e Endpoint) Equal(o Endpoint) bool {
	return e.IP == o.IP && e.Port == o.Port && e.NodeName == o.NodeName && e.Ready == o.Ready &&
		e.Serving == o.Serving && e.Terminating == o.Terminating && slices.Equal(e.ZoneHints(), o.ZoneHints()) &&
		slices.Equal(e.NodeHints(), o.NodeHints())
}

// Slice is the slim form of one EndpointSlice.
type Slice struct {
	Service types.NamespacedName
	Name    string
	Ports   []SlicePort
	// Endpoints has one entry per endpoint (its first address), with Port set to the slice's port
	// when it has exactly one (MergeSlices then shares the array), unset otherwise.
	Endpoints []Endpoint
	// TriggerTime is the endpoints.kubernetes.io/last-change-trigger-time annotation (zero if absent).
	TriggerTime time.Time
}

// SlicePort is one port of an EndpointSlice.
type SlicePort struct {
	Name     string
	Protocol Protocol
	Port     uint16
}

// FromEndpointSlice converts an EndpointSlice; it returns nil for slices the proxy does not use
// (no service-name label, not IPv4).
func FromEndpointSlice(s *discoveryv1.EndpointSlice) *Slice {
	if s == nil || s.AddressType != discoveryv1.AddressTypeIPv4 {
		return nil
	}
	svcName := s.Labels[discoveryv1.LabelServiceName]
	if svcName == "" {
		return nil
	}
	out := &Slice{Service: types.NamespacedName{Namespace: s.Namespace, Name: svcName}, Name: s.Name,
		Ports: make([]SlicePort, 0, len(s.Ports)), Endpoints: make([]Endpoint, 0, len(s.Endpoints))}
	if t, ok := s.Annotations[corev1.EndpointsLastChangeTriggerTime]; ok {
		if tt, err := time.Parse(time.RFC3339Nano, t); err == nil {
			out.TriggerTime = tt
		}
	}
	for _, p := range s.Ports {
		if p.Port == nil || *p.Port <= 0 || *p.Port > 65535 {
			continue
		}
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		pr, ok := protocolOf(proto)
		if !ok {
			continue
		}
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		out.Ports = append(out.Ports, SlicePort{Name: name, Protocol: pr, Port: uint16(*p.Port)})
	}
	for _, e := range s.Endpoints {
		if len(e.Addresses) == 0 {
			continue
		}
		ip, err := netip.ParseAddr(e.Addresses[0])
		if err != nil || !ip.Is4() {
			continue
		}
		ep := Endpoint{
			IP:          ip,
			Ready:       e.Conditions.Ready == nil || *e.Conditions.Ready,
			Serving:     e.Conditions.Serving == nil || *e.Conditions.Serving,
			Terminating: e.Conditions.Terminating != nil && *e.Conditions.Terminating,
		}
		if e.NodeName != nil {
			ep.NodeName = *e.NodeName
		}
		if len(out.Ports) == 1 {
			ep.Port = out.Ports[0].Port
		}
		if e.Hints != nil && (len(e.Hints.ForZones) > 0 || len(e.Hints.ForNodes) > 0) {
			h := &Hints{}
			for _, z := range e.Hints.ForZones {
				h.Zones = append(h.Zones, z.Name)
			}
			for _, n := range e.Hints.ForNodes {
				h.Nodes = append(h.Nodes, n.Name)
			}
			slices.Sort(h.Zones)
			slices.Sort(h.Nodes)
			ep.Hints = h
		}
		out.Endpoints = append(out.Endpoints, ep)
	}
	return out
}

// MergeSlices combines a Service's slices into endpoints per port, sorted by address and port. An
// endpoint listed in several slices (as happens briefly while the controller moves it) is kept once,
// preferring the ready, then the serving copy, then the one in the slice with the smallest name, so the
// result does not depend on the order the slices arrived in.
func MergeSlices(svc types.NamespacedName, in []*Slice) map[ServicePortName][]Endpoint {
	if len(in) == 1 {
		return mergeOne(svc, in[0])
	}
	sorted := slices.Clone(in)
	slices.SortFunc(sorted, func(a, b *Slice) int { return strings.Compare(a.Name, b.Name) })
	type key struct {
		port ServicePortName
		ap   netip.AddrPort
	}
	best := map[key]Endpoint{}
	for _, s := range sorted {
		for _, p := range s.Ports {
			name := ServicePortName{Namespace: svc.Namespace, Name: svc.Name, Port: p.Name, Protocol: p.Protocol}
			for _, e := range s.Endpoints {
				e.Port = p.Port
				k := key{name, e.AddrPort()}
				if old, ok := best[k]; ok && rank(old) >= rank(e) {
					continue
				}
				best[k] = e
			}
		}
	}
	out := map[ServicePortName][]Endpoint{}
	for k, e := range best {
		out[k.port] = append(out[k.port], e)
	}
	for _, eps := range out {
		slices.SortFunc(eps, Endpoint.Compare)
	}
	return out
}

// mergeOne is MergeSlices for the common case of a single slice.
func mergeOne(svc types.NamespacedName, s *Slice) map[ServicePortName][]Endpoint {
	out := make(map[ServicePortName][]Endpoint, len(s.Ports))
	for _, p := range s.Ports {
		name := ServicePortName{Namespace: svc.Namespace, Name: svc.Name, Port: p.Name, Protocol: p.Protocol}
		if len(s.Ports) == 1 && out[name] == nil && strictlySorted(s.Endpoints) {
			// The usual slice: one port (already set on its endpoints), each endpoint once and in
			// order. Endpoint slices are never modified in place: the array is shared.
			out[name] = slices.Clip(s.Endpoints)
			continue
		}
		eps := make([]Endpoint, 0, len(s.Endpoints)+len(out[name]))
		eps = append(eps, out[name]...)
		for _, e := range s.Endpoints {
			e.Port = p.Port
			eps = append(eps, e)
		}
		if strictlySorted(eps) {
			out[name] = eps // the usual slice: each endpoint once, in order
			continue
		}
		// Sort by address, the best copy of a duplicate first, then keep the first of each.
		slices.SortStableFunc(eps, func(a, b Endpoint) int { return cmp.Or(a.Compare(b), cmp.Compare(rank(b), rank(a))) })
		out[name] = slices.CompactFunc(eps, func(a, b Endpoint) bool { return a.Compare(b) == 0 })
	}
	return out
}

// strictlySorted reports whether eps are in increasing order of address and port, without
// duplicates.
func strictlySorted(eps []Endpoint) bool {
	for i := 1; i < len(eps); i++ {
		if eps[i-1].Compare(eps[i]) >= 0 {
			return false
		}
	}
	return true
}

func rank(e Endpoint) int {
	switch {
	case e.Ready:
		return 2
	case e.Serving:
		return 1
	}
	return 0
}

// Node is what the proxy needs of its own Node.
type Node struct {
	Name string
	Zone string // topology.kubernetes.io/zone
}

// FromNode converts the proxy's Node.
func FromNode(n *corev1.Node) Node {
	if n == nil {
		return Node{}
	}
	return Node{Name: n.Name, Zone: n.Labels[corev1.LabelTopologyZone]}
}

// State is the complete input of the ruleset: every Service port, its endpoints, and the node.
type State struct {
	Services  map[ServicePortName]*ServicePort
	Endpoints map[ServicePortName][]Endpoint
	Node      Node
}

// SortedNames returns the state's service port names in order.
func (s *State) SortedNames() []ServicePortName {
	names := make([]ServicePortName, 0, len(s.Services))
	for n := range s.Services {
		names = append(names, n)
	}
	slices.SortFunc(names, ServicePortName.Compare)
	return names
}

// GoString helps test failure messages.
func (p *ServicePort) GoString() string { return fmt.Sprintf("ServicePort(%s)", p.Name) }
