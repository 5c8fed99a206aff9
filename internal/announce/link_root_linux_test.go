package announce

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/svcnet/svcnet/internal/netnstest"
)

// TestSyncOwnsLabelledAddressesAndAnnounces runs the announcer in a node namespace wired to a
// client namespace: the client resolves an owned address to the node by ARP and hears the
// gratuitous ARP; addresses without the label are never touched.
func TestSyncOwnsLabelledAddressesAndAnnounces(t *testing.T) {
	netnstest.RequireRoot(t)
	node := netnstest.NewWithPrefix(t, "svcnet-t-lb-")
	client := netnstest.NewWithPrefix(t, "svcnet-t-lb-")
	netnstest.Link(t, node, "up0", netip.MustParsePrefix("192.0.2.1/24"), client, "c0", netip.MustParsePrefix("192.0.2.2/24"))
	// Someone else's address on lo, which Sync must leave alone.
	node.MustExec(t, "ip", "addr", "add", "198.51.100.9/32", "dev", "lo")

	// The client listens for ARP before the announcer starts.
	garps := make(chan string, 16)
	var fd int
	if err := client.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
	go func() {
		buf := make([]byte, 128)
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				close(garps)
				return
			}
			// After the Ethernet header: an ARP request (op 1) whose sender and target protocol
			// addresses are the same is an announcement.
			if n >= 42 && buf[20] == 0 && buf[21] == 1 && string(buf[28:32]) == string(buf[38:42]) {
				garps <- netip.AddrFrom4([4]byte(buf[28:32])).String()
			}
		}
	}()

	a := &Announcer{Uplink: "up0", GARPRepeats: 1}
	want := []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("192.0.2.101")}
	if err := node.Do(func() error { return a.Sync(want) }); err != nil {
		t.Fatal(err)
	}
	addrs := node.MustExec(t, "ip", "-4", "-o", "addr", "show", "dev", "lo")
	for _, s := range []string{"192.0.2.100/32 scope global lo:svcnet-lb", "192.0.2.101/32 scope global lo:svcnet-lb", "198.51.100.9/32"} {
		if !strings.Contains(addrs, s) {
			t.Errorf("lo lacks %q:\n%s", s, addrs)
		}
	}
	seen := map[string]bool{}
	deadline := time.After(5 * time.Second)
	for len(seen) < 2 {
		select {
		case ip, ok := <-garps:
			if !ok {
				t.Fatalf("no gratuitous ARP for both addresses; saw %v", seen)
			}
			seen[ip] = true
		case <-deadline:
			t.Fatalf("no gratuitous ARP for both addresses within 5 s; saw %v", seen)
		}
	}
	// The client finds the address at the node's MAC with ordinary ARP: a connection to a
	// closed port is refused by the node's kernel (a timeout would mean nobody answered ARP).
	if err := client.Do(func() error {
		c, err := net.DialTimeout("tcp", "192.0.2.100:9", 3*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}); err == nil || !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("connect to the announced address: %v, want connection refused by the node", err)
	}
	var nodeMAC, learned net.HardwareAddr
	_ = node.Do(func() error {
		l, err := netlink.LinkByName("up0")
		if err == nil {
			nodeMAC = l.Attrs().HardwareAddr
		}
		return err
	})
	_ = client.Do(func() error {
		neighs, err := netlink.NeighList(0, netlink.FAMILY_V4)
		for _, n := range neighs {
			if n.IP.String() == "192.0.2.100" {
				learned = n.HardwareAddr
			}
		}
		return err
	})
	if nodeMAC.String() != learned.String() {
		t.Errorf("client resolved 192.0.2.100 to %v, want the node's %v", learned, nodeMAC)
	}

	// Sync to a smaller set withdraws the rest and nothing else.
	if err := node.Do(func() error { return a.Sync(want[1:]) }); err != nil {
		t.Fatal(err)
	}
	addrs = node.MustExec(t, "ip", "-4", "-o", "addr", "show", "dev", "lo")
	if strings.Contains(addrs, "192.0.2.100/") || !strings.Contains(addrs, "192.0.2.101/32") || !strings.Contains(addrs, "198.51.100.9/32") {
		t.Errorf("after withdrawing 192.0.2.100, lo has:\n%s", addrs)
	}
	if err := node.Do(func() error { return a.Sync(nil) }); err != nil {
		t.Fatal(err)
	}
	addrs = node.MustExec(t, "ip", "-4", "-o", "addr", "show", "dev", "lo")
	if strings.Contains(addrs, "svcnet-lb") || !strings.Contains(addrs, "198.51.100.9/32") {
		t.Errorf("after withdrawing everything, lo has:\n%s", addrs)
	}
}
