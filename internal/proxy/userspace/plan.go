package userspace

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/svcnet/svcnet/internal/proxy/model"
)

// Kind is the kind of Service address a listener serves.
type Kind uint8

// The kinds of listeners.
const (
	KindClusterIP Kind = iota
	KindExternalIP
	KindLoadBalancer
	KindNodePort
)

func (k Kind) String() string {
	switch k {
	case KindClusterIP:
		return "clusterIP"
	case KindExternalIP:
		return "externalIP"
	case KindLoadBalancer:
		return "loadBalancer"
	case KindNodePort:
		return "nodePort"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ListenKey is one socket the proxy listens on.
type ListenKey struct {
	Proto model.Protocol // tcp or udp
	Addr  netip.AddrPort
}

func (k ListenKey) String() string { return string(k.Proto) + "/" + k.Addr.String() }

func (k ListenKey) compare(o ListenKey) int {
	return cmp.Or(cmp.Compare(k.Proto, o.Proto), k.Addr.Compare(o.Addr))
}

// Route is what one listener forwards to: the value decided at each sync, logged and tested on its
// own. It is immutable once built; listeners swap it atomically.
type Route struct {
	Name model.ServicePortName
	Kind Kind
	// Endpoints serve every client, or, when Split, clients from the cluster CIDR and the node.
	Endpoints []netip.AddrPort
	// Split (externalTrafficPolicy Local on an external address or NodePort): clients from outside
	// the cluster are sent to Local, this node's endpoints, only.
	Split bool
	Local []netip.AddrPort
	// SourceRanges (load-balancer addresses with loadBalancerSourceRanges): other clients are refused.
	SourceRanges []netip.Prefix
	// AffinityTimeout is the ClientIP session affinity timeout; 0: no affinity.
	AffinityTimeout time.Duration
}

// Empty reports whether no client can be served: the listener is then closed, so the kernel
// refuses connections (TCP reset, ICMP port unreachable) at once.
func (r *Route) Empty() bool {
	return len(r.Endpoints) == 0 && (!r.Split || len(r.Local) == 0)
}

// Allowed reports whether the client may use the route (loadBalancerSourceRanges).
func (r *Route) Allowed(client netip.Addr) bool {
	if len(r.SourceRanges) == 0 {
		return true
	}
	for _, p := range r.SourceRanges {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

// Targets returns the endpoints for a client; inside tells whether the client is a pod or the
// node itself.
func (r *Route) Targets(inside bool) []netip.AddrPort {
	if r.Split && !inside {
		return r.Local
	}
	return r.Endpoints
}

// Equal compares two routes.
func (r *Route) Equal(o *Route) bool {
	if r == nil || o == nil {
		return r == o
	}
	return r.Name == o.Name && r.Kind == o.Kind && slices.Equal(r.Endpoints, o.Endpoints) && r.Split == o.Split &&
		slices.Equal(r.Local, o.Local) && slices.Equal(r.SourceRanges, o.SourceRanges) && r.AffinityTimeout == o.AffinityTimeout
}

// PlanOptions are the node's side of a plan.
type PlanOptions struct {
	// NodePortAddrs are the addresses NodePorts listen on (127.0.0.1 included when wanted).
	NodePortAddrs []netip.Addr
	// Taken are addresses already local to the node that the proxy did not add. A ClusterIP among
	// them is served by whoever added it (the node-local DNS server on the kube-dns ClusterIP,
	// whose queries the nftables dataplane also leaves alone): the proxy neither listens on it nor
	// adds it. Other kinds of address in Taken are served (an external IP may be the node's own).
	Taken map[netip.Addr]bool
}

// Plan is the desired state: the listeners and the Service addresses the node must have.
type Plan struct {
	Listeners map[ListenKey]*Route
	// Addresses are the ClusterIPs, external IPs and load-balancer IPs of every Service, with or
	// without endpoints (an address present without a listener refuses at once).
	Addresses map[netip.Addr]bool
	// Conflicts are listeners claimed by more than one Service port (the first by name wins).
	Conflicts []string
	// Skipped are ClusterIP listeners left to a local server (PlanOptions.Taken).
	Skipped []ListenKey
}

// BuildPlan computes the desired state from the Services, their endpoints and the node: a pure
// function. SCTP ports are skipped (no userspace SCTP).
func BuildPlan(st *model.State, o PlanOptions) *Plan {
	p := &Plan{Listeners: map[ListenKey]*Route{}, Addresses: map[netip.Addr]bool{}}
	for _, name := range st.SortedNames() {
		sp := st.Services[name]
		for _, a := range append(append([]netip.Addr{sp.ClusterIP}, sp.ExternalIPs...), sp.LoadBalancerVIPs...) {
			if !o.Taken[a] {
				p.Addresses[a] = true
			}
		}
		if sp.Name.Protocol != model.TCP && sp.Name.Protocol != model.UDP {
			continue
		}
		d := model.Categorize(sp, st.Endpoints[name], st.Node)
		cluster, local := addrPorts(d.Cluster), addrPorts(d.Local)
		internal := &Route{Name: name, Kind: KindClusterIP, Endpoints: cluster, AffinityTimeout: sp.AffinityTimeout}
		if sp.InternalPolicyLocal {
			internal.Endpoints = local
		}
		external := func(k Kind) *Route {
			r := &Route{Name: name, Kind: k, Endpoints: cluster, AffinityTimeout: sp.AffinityTimeout}
			if sp.ExternalPolicyLocal {
				r.Split, r.Local = true, local
			}
			if k == KindLoadBalancer {
				r.SourceRanges = sp.SourceRanges
			}
			return r
		}
		add := func(a netip.Addr, port uint16, r *Route) {
			k := ListenKey{Proto: name.Protocol, Addr: netip.AddrPortFrom(a, port)}
			if old, ok := p.Listeners[k]; ok {
				p.Conflicts = append(p.Conflicts, fmt.Sprintf("%s: %s and %s", k, old.Name, name))
				return
			}
			p.Listeners[k] = r
		}
		if o.Taken[sp.ClusterIP] {
			p.Skipped = append(p.Skipped, ListenKey{Proto: name.Protocol, Addr: netip.AddrPortFrom(sp.ClusterIP, sp.Port)})
		} else {
			add(sp.ClusterIP, sp.Port, internal)
		}
		for _, a := range sp.ExternalIPs {
			add(a, sp.Port, external(KindExternalIP))
		}
		for _, a := range sp.LoadBalancerVIPs {
			add(a, sp.Port, external(KindLoadBalancer))
		}
		if sp.NodePort != 0 {
			np := external(KindNodePort)
			for _, a := range o.NodePortAddrs {
				add(a, sp.NodePort, np)
			}
		}
	}
	return p
}

func addrPorts(eps []model.Endpoint) []netip.AddrPort {
	if eps == nil {
		return nil
	}
	out := make([]netip.AddrPort, 0, len(eps))
	for _, e := range eps {
		out = append(out, e.AddrPort())
	}
	return out
}

// SortedKeys returns the plan's listeners in order.
func (p *Plan) SortedKeys() []ListenKey {
	keys := make([]ListenKey, 0, len(p.Listeners))
	for k := range p.Listeners {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, ListenKey.compare)
	return keys
}
