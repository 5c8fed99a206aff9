package proxy

import (
	"net/netip"

	"github.com/svcnet/svcnet/internal/proxy/conntrack"
	"github.com/svcnet/svcnet/internal/proxy/model"
	"github.com/svcnet/svcnet/internal/proxy/nft"
)

// frontends lists the addresses clients use to reach a Service port.
func frontends(sp *model.ServicePort) []conntrack.Frontend {
	out := []conntrack.Frontend{{Addr: sp.ClusterIP, Port: sp.Port}}
	for _, a := range sp.ExternalIPs {
		out = append(out, conntrack.Frontend{Addr: a, Port: sp.Port})
	}
	for _, a := range sp.LoadBalancerVIPs {
		out = append(out, conntrack.Frontend{Addr: a, Port: sp.Port})
	}
	if sp.NodePort != 0 {
		out = append(out, conntrack.Frontend{Port: sp.NodePort})
	}
	return out
}

// staleFlows decides which UDP conntrack entries a sync made stale: flows to a UDP Service port
// answered by an endpoint the node no longer uses (they would keep going to it), and flows that
// were not DNATed because the port had no endpoint (they would keep bypassing NAT now that it has).
func staleFlows(changes map[model.ServicePortName]nft.Change) *conntrack.Filter {
	f := &conntrack.Filter{}
	for name, c := range changes {
		if name.Protocol != model.UDP {
			continue
		}
		var before, after []netip.AddrPort
		if c.Old != nil {
			before = c.Old.Reachable()
		}
		if c.New != nil {
			after = c.New.Reachable()
		}
		still := map[netip.AddrPort]bool{}
		for _, ep := range after {
			still[ep] = true
		}
		if c.Old != nil {
			for _, ep := range before {
				if !still[ep] {
					for _, fe := range frontends(c.Old.Port) {
						f.AddStale(fe, ep)
					}
				}
			}
		}
		if len(before) == 0 && len(after) > 0 {
			for _, fe := range frontends(c.New.Port) {
				f.AddUnanswered(fe)
			}
		}
	}
	return f
}
