package localnet

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/svcnet/svcnet/internal/netns"
)

// Apply makes the plan's namespaces, bridge and links. It is idempotent: what exists is kept, so
// it can complete a half-made network.
func Apply(p Plan) error {
	if err := netns.Ensure(p.Fabric); err != nil {
		return err
	}
	fab, err := netns.Handle(p.Fabric)
	if err != nil {
		return err
	}
	defer fab.Close()
	nl, err := netlink.NewHandleAt(fab)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", p.Fabric, err)
	}
	defer nl.Close()
	if err := linkUp(nl, "lo"); err != nil {
		return err
	}
	br, err := nl.LinkByName(p.Bridge)
	if err != nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = p.Bridge
		if err := nl.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
			return fmt.Errorf("create bridge %s in %s: %w", p.Bridge, p.Fabric, err)
		}
		if br, err = nl.LinkByName(p.Bridge); err != nil {
			return err
		}
	}
	if err := nl.LinkSetUp(br); err != nil {
		return fmt.Errorf("bring up %s: %w", p.Bridge, err)
	}
	hosts := []Host{p.Outside}
	for _, n := range p.Nodes {
		hosts = append(hosts, n.Host)
	}
	for _, h := range hosts {
		if err := plugHost(nl, br, p, h); err != nil {
			return err
		}
	}
	return nil
}

// plugHost connects a host namespace to the bridge with a veth pair and gives it its address.
func plugHost(fabric *netlink.Handle, br netlink.Link, p Plan, h Host) error {
	if err := netns.Ensure(h.Netns); err != nil {
		return err
	}
	hns, err := netns.Handle(h.Netns)
	if err != nil {
		return err
	}
	defer hns.Close()
	hl, err := netlink.NewHandleAt(hns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", h.Netns, err)
	}
	defer hl.Close()
	if _, err := fabric.LinkByName(h.Port); err != nil {
		// A leftover uplink without its fabric end cannot be reused: the pair is made anew.
		if old, err := hl.LinkByName(p.Uplink); err == nil {
			_ = hl.LinkDel(old)
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name = h.Port
		veth := &netlink.Veth{LinkAttrs: attrs, PeerName: p.Uplink, PeerNamespace: netlink.NsFd(int(hns))}
		if err := fabric.LinkAdd(veth); err != nil {
			return fmt.Errorf("create veth %s <-> %s/%s: %w", h.Port, h.Netns, p.Uplink, err)
		}
	}
	port, err := fabric.LinkByName(h.Port)
	if err != nil {
		return err
	}
	if err := fabric.LinkSetMaster(port, br); err != nil {
		return fmt.Errorf("attach %s to %s: %w", h.Port, p.Bridge, err)
	}
	if err := fabric.LinkSetUp(port); err != nil {
		return err
	}
	if err := linkUp(hl, "lo"); err != nil {
		return err
	}
	up, err := hl.LinkByName(p.Uplink)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", p.Uplink, h.Netns, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: h.IP.Addr().AsSlice(), Mask: net.CIDRMask(h.IP.Bits(), 32)}}
	if err := hl.AddrReplace(up, addr); err != nil {
		return fmt.Errorf("address %s on %s/%s: %w", h.IP, h.Netns, p.Uplink, err)
	}
	if err := hl.LinkSetUp(up); err != nil {
		return err
	}
	return nil
}

func linkUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	return h.LinkSetUp(l)
}

// Teardown removes every namespace a cluster with this prefix made (pods first, then nodes, the
// outside client and the fabric), ending the processes inside them. The links, routes and
// nftables tables in those namespaces go with them; nothing of the host's is touched.
func Teardown(prefix string, grace time.Duration) error {
	names, err := netns.List(func(n string) bool { return Owns(prefix, n) })
	if err != nil {
		return err
	}
	// Agents first, so that none recreates a pod being removed; the fabric last.
	rank := func(n string) int {
		switch {
		case strings.HasPrefix(n, prefix+"-node-"):
			return 0
		case strings.HasPrefix(n, PodNetnsPrefix(prefix)):
			return 1
		case n == prefix+"-net":
			return 3
		}
		return 2
	}
	sort.SliceStable(names, func(i, j int) bool { return rank(names[i]) < rank(names[j]) })
	var errs []error
	for _, n := range names {
		if err := netns.Remove(n, grace); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
