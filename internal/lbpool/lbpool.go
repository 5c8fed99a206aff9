// Package lbpool parses and queries the address pool that LoadBalancer Services take their
// ingress IPs from (the MetalLB role: the controller-manager allocates, the node agents announce).
package lbpool

import (
	"fmt"
	"net/netip"
	"strings"
)

// Pool is an ordered set of IPv4 ranges. The zero Pool is empty: nothing is allocated or announced.
type Pool struct {
	ranges []Range
}

// Range is the inclusive range First..Last.
type Range struct{ First, Last netip.Addr }

// maxSize bounds a pool so that scanning it for a free address stays cheap; a /16 is far more
// LoadBalancer addresses than any one cluster uses.
const maxSize = 1 << 16

// Parse reads a comma-separated list of ranges, each "A.B.C.D-E.F.G.H", a CIDR "A.B.C.D/N" (every
// address of it: a pool on a shared L2 segment has no network or broadcast address to skip) or one
// address. "" is the empty pool.
func Parse(s string) (Pool, error) {
	var p Pool
	total := 0
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		r, err := parseRange(part)
		if err != nil {
			return Pool{}, err
		}
		for _, o := range p.ranges {
			if !(r.Last.Less(o.First) || o.Last.Less(r.First)) {
				return Pool{}, fmt.Errorf("load balancer pool: %q overlaps %s-%s", part, o.First, o.Last)
			}
		}
		total += size(r)
		if total > maxSize {
			return Pool{}, fmt.Errorf("load balancer pool %q: more than %d addresses", s, maxSize)
		}
		p.ranges = append(p.ranges, r)
	}
	return p, nil
}

func parseRange(s string) (Range, error) {
	bad := func(why string) (Range, error) {
		return Range{}, fmt.Errorf("load balancer pool: %q: %s (want A.B.C.D-E.F.G.H, A.B.C.D/N or A.B.C.D)", s, why)
	}
	if a, b, ok := strings.Cut(s, "-"); ok {
		first, err1 := netip.ParseAddr(strings.TrimSpace(a))
		last, err2 := netip.ParseAddr(strings.TrimSpace(b))
		if err1 != nil || err2 != nil {
			return bad("not an address range")
		}
		if !first.Is4() || !last.Is4() {
			return bad("only IPv4 is supported")
		}
		if last.Less(first) {
			return bad("the last address is before the first")
		}
		return Range{first, last}, nil
	}
	if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return bad("not a CIDR")
		}
		if !pfx.Addr().Is4() {
			return bad("only IPv4 is supported")
		}
		if pfx.Bits() < 16 {
			return bad("larger than a /16")
		}
		pfx = pfx.Masked()
		first := pfx.Addr()
		last := first
		for i := 0; i < (1<<(32-pfx.Bits()))-1; i++ {
			last = last.Next()
		}
		return Range{first, last}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return bad("not an address")
	}
	if !a.Is4() {
		return bad("only IPv4 is supported")
	}
	return Range{a, a}, nil
}

func size(r Range) int {
	f, l := r.First.As4(), r.Last.As4()
	fv := uint32(f[0])<<24 | uint32(f[1])<<16 | uint32(f[2])<<8 | uint32(f[3])
	lv := uint32(l[0])<<24 | uint32(l[1])<<16 | uint32(l[2])<<8 | uint32(l[3])
	return int(lv-fv) + 1
}

// Empty reports whether the pool holds no address.
func (p Pool) Empty() bool { return len(p.ranges) == 0 }

// Size is the number of addresses in the pool.
func (p Pool) Size() int {
	n := 0
	for _, r := range p.ranges {
		n += size(r)
	}
	return n
}

// Contains reports whether a is in the pool.
func (p Pool) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, r := range p.ranges {
		if !a.Less(r.First) && !r.Last.Less(a) {
			return true
		}
	}
	return false
}

// First returns the first address of the pool, in the order the ranges were given, for which free
// is true.
func (p Pool) First(free func(netip.Addr) bool) (netip.Addr, bool) {
	for _, r := range p.ranges {
		for a := r.First; ; a = a.Next() {
			if free(a) {
				return a, true
			}
			if a == r.Last {
				break
			}
		}
	}
	return netip.Addr{}, false
}

// String gives the pool in the form Parse reads.
func (p Pool) String() string {
	parts := make([]string, len(p.ranges))
	for i, r := range p.ranges {
		if r.First == r.Last {
			parts[i] = r.First.String()
		} else {
			parts[i] = r.First.String() + "-" + r.Last.String()
		}
	}
	return strings.Join(parts, ",")
}
