package announce

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Label marks the addresses the announcer owns. They sit on the loopback interface, which every
// namespace has (a dummy interface would need a kernel module that is not always there); the kernel
// answers ARP for them on the uplink all the same, as for any local address. Every address with the
// label is the announcer's and nothing else uses it, so a restarted agent corrects the set from the
// kernel itself: nothing is tracked elsewhere, and nothing is left behind.
const Label = "lo:svcnet-lb"

// Announcer owns addresses (labelled Label, on lo) in this network namespace and announces them
// on Uplink.
type Announcer struct {
	// Uplink is the interface facing the node network (the one holding the node IP), where
	// gratuitous ARP goes.
	Uplink string
	// GARPRepeats is how many gratuitous ARPs a newly owned address gets (default 3, 1 s apart:
	// one may be lost, and a switch may still be learning).
	GARPRepeats int
}

// Sync makes the labelled addresses exactly want (/32 each) and sends gratuitous ARP for the ones
// it added.
func (a *Announcer) Sync(want []netip.Addr) error {
	link, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("set lo up: %w", err)
		}
	}
	have, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list addresses of lo: %w", err)
	}
	add, del := diff(want, addrsOf(have))
	var errs []error
	for _, ip := range del {
		if err := netlink.AddrDel(link, addr32(ip)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			errs = append(errs, fmt.Errorf("withdraw %s: %w", ip, err))
			continue
		}
		slog.Info("load balancer address withdrawn", "ip", ip)
	}
	var added []netip.Addr
	for _, ip := range add {
		if err := netlink.AddrReplace(link, addr32(ip)); err != nil {
			errs = append(errs, fmt.Errorf("take %s: %w", ip, err))
			continue
		}
		slog.Info("load balancer address announced", "ip", ip, "on", a.Uplink)
		added = append(added, ip)
	}
	if len(added) > 0 {
		a.announce(added)
	}
	return errors.Join(errs...)
}

// announce tells the node network that ips are now at this node's uplink, so that clients and
// switches that cached the previous owner's MAC move at once instead of after their cache times
// out. The first round goes out before it returns; the repeats follow in the background. The socket
// is opened here, in the caller's network namespace: a goroutine may run on a thread of another.
func (a *Announcer) announce(ips []netip.Addr) {
	s, err := openGARP(a.Uplink)
	if err != nil {
		slog.Warn("gratuitous ARP not sent", "ips", ips, "link", a.Uplink, "err", err)
		return
	}
	n := a.GARPRepeats
	if n == 0 {
		n = 3
	}
	round := func() {
		for _, ip := range ips {
			if err := s.send(ip); err != nil {
				slog.Warn("gratuitous ARP failed", "ip", ip, "link", a.Uplink, "err", err)
			}
		}
	}
	round()
	if n == 1 {
		s.close()
		return
	}
	go func() {
		defer s.close()
		for i := 1; i < n; i++ {
			time.Sleep(time.Second)
			round()
		}
	}()
}

func addr32(ip netip.Addr) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)}, Label: Label}
}

// addrsOf returns the addresses of list that carry Label.
func addrsOf(list []netlink.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range list {
		if a.Label != Label {
			continue
		}
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

// diff returns what to add to have to make want, and what to delete.
func diff(want, have []netip.Addr) (add, del []netip.Addr) {
	w := map[netip.Addr]bool{}
	for _, a := range want {
		w[a] = true
	}
	h := map[netip.Addr]bool{}
	for _, a := range have {
		h[a] = true
		if !w[a] {
			del = append(del, a)
		}
	}
	for _, a := range want {
		if !h[a] {
			add = append(add, a)
			h[a] = true
		}
	}
	return add, del
}

// UplinkFor names the interface that holds ip.
func UplinkFor(ip netip.Addr) (string, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip.Unmap() {
			link, err := netlink.LinkByIndex(a.LinkIndex)
			if err != nil {
				return "", err
			}
			return link.Attrs().Name, nil
		}
	}
	return "", fmt.Errorf("no interface holds %s", ip)
}

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// garpPacket is a gratuitous ARP request (RFC 5227's ARP announcement: sender and target address
// both ip), broadcast from mac.
func garpPacket(mac net.HardwareAddr, ip netip.Addr) []byte {
	p := make([]byte, 42)
	copy(p[0:6], broadcastMAC)
	copy(p[6:12], mac)
	binary.BigEndian.PutUint16(p[12:], unix.ETH_P_ARP)
	arp := p[14:]
	binary.BigEndian.PutUint16(arp[0:], 1) // Ethernet
	binary.BigEndian.PutUint16(arp[2:], unix.ETH_P_IP)
	arp[4], arp[5] = 6, 4
	binary.BigEndian.PutUint16(arp[6:], 1) // request
	ip4 := ip.As4()
	copy(arp[8:14], mac)
	copy(arp[14:18], ip4[:])
	// target hardware address stays zero
	copy(arp[24:28], ip4[:])
	return p
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// garpSocket sends gratuitous ARP on one interface.
type garpSocket struct {
	fd  int
	mac net.HardwareAddr
	sa  *unix.SockaddrLinklayer
}

func openGARP(ifname string) (*garpSocket, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, err
	}
	mac := link.Attrs().HardwareAddr
	if len(mac) != 6 {
		return nil, fmt.Errorf("%s has no Ethernet address", ifname)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: link.Attrs().Index, Halen: 6}
	copy(sa.Addr[:], broadcastMAC)
	return &garpSocket{fd: fd, mac: mac, sa: sa}, nil
}

func (s *garpSocket) send(ip netip.Addr) error {
	return unix.Sendto(s.fd, garpPacket(s.mac, ip), 0, s.sa)
}

func (s *garpSocket) close() { unix.Close(s.fd) }
