// Package ipam hands out pod addresses from a node's pod CIDR. It is an in-memory structure,
// rebuilt at start from the sandboxes the agent finds, as DESIGN.md's allocators are.
package ipam

import (
	"fmt"
	"net/netip"
	"sync"
)

// Pool is one node's pod CIDR: the network address, the gateway (the first host, on the node's
// pod bridge) and the broadcast address are never handed out. It is safe for concurrent use:
// every pod's worker allocates from it.
type Pool struct {
	mu      sync.Mutex
	cidr    netip.Prefix
	gateway netip.Addr
	owners  map[netip.Addr]string
	next    netip.Addr
}

// New makes a pool for an IPv4 prefix of /30 or larger.
func New(cidr netip.Prefix) (*Pool, error) {
	cidr = cidr.Masked()
	if !cidr.Addr().Is4() || cidr.Bits() > 30 {
		return nil, fmt.Errorf("pod CIDR %s: need an IPv4 prefix of /30 or larger", cidr)
	}
	gw := cidr.Addr().Next()
	return &Pool{cidr: cidr, gateway: gw, owners: map[netip.Addr]string{}, next: gw.Next()}, nil
}

// Gateway is the node's address on its pod bridge.
func (p *Pool) Gateway() netip.Addr { return p.gateway }

// Prefix is the pool's CIDR.
func (p *Pool) Prefix() netip.Prefix { return p.cidr }

func (p *Pool) usable(a netip.Addr) bool {
	return p.cidr.Contains(a) && a != p.cidr.Addr() && a != p.gateway && a != p.broadcast()
}

func (p *Pool) broadcast() netip.Addr {
	b := p.cidr.Addr().As4()
	host := uint32(1)<<(32-p.cidr.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Allocate gives owner an address, the same one if it already has one. Addresses are handed out
// round-robin, so a pod that comes back does not get the address its predecessor just freed,
// which connections and caches elsewhere may still point at.
func (p *Pool) Allocate(owner string) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, o := range p.owners {
		if o == owner {
			return a, nil
		}
	}
	a := p.next
	for range 1 << (32 - p.cidr.Bits()) {
		if !p.usable(a) {
			a = p.gateway.Next()
		}
		if _, taken := p.owners[a]; !taken {
			p.owners[a] = owner
			p.next = a.Next()
			return a, nil
		}
		a = a.Next()
	}
	return netip.Addr{}, fmt.Errorf("pod CIDR %s is full (%d pods)", p.cidr, len(p.owners))
}

// Reserve records an address found in use (at start-up).
func (p *Pool) Reserve(a netip.Addr, owner string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.usable(a) {
		return fmt.Errorf("%s is not a pod address of %s", a, p.cidr)
	}
	if o, ok := p.owners[a]; ok && o != owner {
		return fmt.Errorf("%s is already %s's", a, o)
	}
	p.owners[a] = owner
	return nil
}

// Release frees whatever owner holds.
func (p *Pool) Release(owner string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, o := range p.owners {
		if o == owner {
			delete(p.owners, a)
		}
	}
}

// Used is the number of addresses handed out.
func (p *Pool) Used() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.owners)
}
