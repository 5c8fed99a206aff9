// Package conntrack removes stale UDP conntrack entries through netlink, so that UDP flows move at
// once when a Service's endpoints change instead of being black-holed until their entry times out.
//
// Which entries are stale is decided by a pure value, Filter (built by the proxy from what a sync
// changed and tested without a kernel); Cleaner applies it with one dump of the conntrack table.
package conntrack

import (
	"fmt"
	"net/netip"
	"strings"
)

// Frontend is an address UDP clients send to: an address and port (ClusterIP, external or
// load-balancer IP), or a NodePort (Addr invalid: any local address).
type Frontend struct {
	Addr netip.Addr
	Port uint16
}

func (f Frontend) String() string {
	if !f.Addr.IsValid() {
		return fmt.Sprintf("*:%d", f.Port)
	}
	return netip.AddrPortFrom(f.Addr, f.Port).String()
}

// Filter selects the UDP conntrack entries to delete.
type Filter struct {
	// Stale: entries to a frontend that were answered by (DNATed to) an endpoint that is gone.
	Stale map[Frontend]map[netip.AddrPort]bool
	// Unanswered: entries to a frontend that were not DNATed, left from when it had no endpoints
	// (its packets were rejected); now that it has some, they would keep bypassing NAT.
	Unanswered map[Frontend]bool
}

// Empty reports whether the filter selects nothing.
func (f *Filter) Empty() bool { return len(f.Stale) == 0 && len(f.Unanswered) == 0 }

// AddStale records that endpoint ep no longer serves frontend fe.
func (f *Filter) AddStale(fe Frontend, ep netip.AddrPort) {
	if f.Stale == nil {
		f.Stale = map[Frontend]map[netip.AddrPort]bool{}
	}
	if f.Stale[fe] == nil {
		f.Stale[fe] = map[netip.AddrPort]bool{}
	}
	f.Stale[fe][ep] = true
}

// AddUnanswered records that frontend fe just got endpoints.
func (f *Filter) AddUnanswered(fe Frontend) {
	if f.Unanswered == nil {
		f.Unanswered = map[Frontend]bool{}
	}
	f.Unanswered[fe] = true
}

// Entry is the part of a conntrack entry the filter looks at: the original destination and the
// reply's source (the endpoint that answered).
type Entry struct {
	Protocol uint8
	OrigDst  netip.AddrPort
	ReplySrc netip.AddrPort
}

// Match reports whether the entry is to be deleted.
func (f *Filter) Match(e Entry) bool {
	if e.Protocol != 17 { // UDP
		return false
	}
	for _, fe := range []Frontend{{Addr: e.OrigDst.Addr(), Port: e.OrigDst.Port()}, {Port: e.OrigDst.Port()}} {
		if f.Stale[fe][e.ReplySrc] {
			return true
		}
		if f.Unanswered[fe] && e.ReplySrc == e.OrigDst {
			return true
		}
	}
	return false
}

func (f *Filter) String() string {
	var parts []string
	for fe, eps := range f.Stale {
		for ep := range eps {
			parts = append(parts, fe.String()+"<-"+ep.String())
		}
	}
	for fe := range f.Unanswered {
		parts = append(parts, fe.String()+"<-unNATed")
	}
	return strings.Join(parts, " ")
}
