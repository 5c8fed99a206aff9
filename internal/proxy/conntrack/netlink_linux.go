package conntrack

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Cleaner deletes conntrack entries in one network namespace.
type Cleaner struct {
	h *netlink.Handle
}

// New returns a cleaner for the namespace ns, or the current one when ns is not open (netns.None()).
func New(ns netns.NsHandle) (*Cleaner, error) {
	var h *netlink.Handle
	var err error
	if ns.IsOpen() {
		h, err = netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_NETFILTER)
	}
	if err != nil {
		return nil, fmt.Errorf("conntrack netlink handle: %w", err)
	}
	return &Cleaner{h: h}, nil
}

// Close releases the netlink socket.
func (c *Cleaner) Close() { c.h.Close() }

// Delete removes the IPv4 entries the filter selects and returns how many.
func (c *Cleaner) Delete(f *Filter) (uint, error) {
	if f.Empty() {
		return 0, nil
	}
	n, err := c.h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, &adapter{f})
	if err != nil {
		return n, fmt.Errorf("delete conntrack entries: %w", err)
	}
	return n, nil
}

type adapter struct{ f *Filter }

func (a *adapter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	dst, ok1 := netip.AddrFromSlice(flow.Forward.DstIP)
	src, ok2 := netip.AddrFromSlice(flow.Reverse.SrcIP)
	if !ok1 || !ok2 {
		return false
	}
	return a.f.Match(Entry{
		Protocol: flow.Forward.Protocol,
		OrigDst:  netip.AddrPortFrom(dst.Unmap(), flow.Forward.DstPort),
		ReplySrc: netip.AddrPortFrom(src.Unmap(), flow.Reverse.SrcPort),
	})
}
