package allocator

import (
	"fmt"
	"math/big"
	"net/netip"
	"strconv"
)

// IPCodec maps offsets to the usable addresses of a CIDR: offset 0 is the first address after the
// network address; for IPv4 the broadcast address is excluded, as kube does. Like kube's
// hostsPerNetwork, an IPv4 /31 or /32 and an IPv6 /128 have no usable address.
type IPCodec struct {
	Prefix netip.Prefix
	base   *big.Int
	size   int
}

// NewIPCodec returns the codec of a service CIDR and the number of usable addresses (capped at 2^20
// for huge IPv6 ranges, which kube also does not allocate densely).
func NewIPCodec(cidr string) (*IPCodec, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("invalid CIDR %q: %w", cidr, err)
	}
	p = p.Masked()
	hostBits := p.Addr().BitLen() - p.Bits()
	total := new(big.Int).Lsh(big.NewInt(1), uint(hostBits))
	usable := new(big.Int).Sub(total, big.NewInt(1)) // no network address
	if p.Addr().Is4() {
		usable.Sub(usable, big.NewInt(1)) // no broadcast, even in a /31 (kube allocates nothing there)
	}
	size := 1 << 20
	if usable.IsInt64() && usable.Int64() < int64(size) {
		size = int(usable.Int64())
	}
	if size < 1 {
		return nil, fmt.Errorf("CIDR %s has no usable address", cidr)
	}
	base := new(big.Int).SetBytes(p.Addr().AsSlice())
	return &IPCodec{Prefix: p, base: base.Add(base, big.NewInt(1)), size: size}, nil
}

// Size is the number of allocatable addresses.
func (c *IPCodec) Size() int { return c.size }

// Addr returns the address at offset.
func (c *IPCodec) Addr(offset int) netip.Addr {
	v := new(big.Int).Add(c.base, big.NewInt(int64(offset)))
	b := v.FillBytes(make([]byte, c.Prefix.Addr().BitLen()/8))
	a, _ := netip.AddrFromSlice(b)
	return a
}

// OffsetOf returns the offset of an address, false when it is not allocatable in this range.
func (c *IPCodec) OffsetOf(a netip.Addr) (int, bool) {
	if !c.Prefix.Contains(a) {
		return 0, false
	}
	v := new(big.Int).SetBytes(a.AsSlice())
	v.Sub(v, c.base)
	if v.Sign() < 0 || !v.IsInt64() || v.Int64() >= int64(c.size) {
		return 0, false
	}
	return int(v.Int64()), true
}

func (c *IPCodec) Key(offset int) string { return c.Addr(offset).String() }

func (c *IPCodec) Offset(key string) (int, bool) {
	a, err := netip.ParseAddr(key)
	if err != nil {
		return 0, false
	}
	return c.OffsetOf(a)
}

// PortCodec maps offsets to ports base..base+size-1.
type PortCodec struct{ Base, Size int }

func (c PortCodec) Key(offset int) string { return strconv.Itoa(c.Base + offset) }

func (c PortCodec) Offset(key string) (int, bool) {
	p, err := strconv.Atoi(key)
	if err != nil || p < c.Base || p >= c.Base+c.Size {
		return 0, false
	}
	return p - c.Base, true
}
