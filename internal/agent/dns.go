package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"

	"github.com/svcnet/svcnet/internal/dns"
	"github.com/svcnet/svcnet/internal/netns"
)

// DNS on every node, the way NodeLocal DNSCache does it: the cluster DNS address (and a link-local
// one) are local addresses of the node (on its loopback: kernels without the dummy driver are
// common, and a /32 on lo is just as local), and a raw-priority rule keeps queries to them out of
// conntrack, so a pod's query reaches the node's own server directly, never through the proxy's
// DNAT, and never into the conntrack races behind kube-dns's 5-second stalls. The kube-dns Service
// still has endpoints (every node's address), for clients that are not on a node.
const (
	// NodeLocalDNS is the node-local address of the DNS server, as NodeLocal DNSCache's.
	NodeLocalDNS = "169.254.20.10"
	dnsTable     = "svcnet-dns"
	// DNSManagedBy marks the kube-dns EndpointSlices the agents write.
	DNSManagedBy = "agent.svcnet.io"
)

// dnsAddrs are the node-local addresses the server answers on.
func (a *Agent) dnsAddrs() []netip.Addr {
	var out []netip.Addr
	for _, s := range a.cfg.ClusterDNS {
		if ip, err := netip.ParseAddr(s); err == nil && ip.Is4() {
			out = append(out, ip)
		}
	}
	return append(out, netip.MustParseAddr(NodeLocalDNS))
}

// setupDNS makes the DNS addresses local and keeps queries to them untracked.
func (a *Agent) setupDNS(ctx context.Context) error {
	link, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	for _, ip := range a.dnsAddrs() {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)}, Label: "lo:svcnet-dns"}
		if err := netlink.AddrReplace(link, addr); err != nil {
			return fmt.Errorf("address %s on lo: %w", ip, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return err
	}
	nft, err := knftables.New(knftables.InetFamily, dnsTable)
	if err != nil {
		return fmt.Errorf("nftables for the DNS path: %w", err)
	}
	tx := nft.NewTransaction()
	tx.Add(&knftables.Table{Comment: ptr.To("svcnet node-local DNS: queries to the node's DNS addresses bypass conntrack")})
	tx.Flush(&knftables.Table{})
	set := "{ "
	for i, ip := range a.dnsAddrs() {
		if i > 0 {
			set += ", "
		}
		set += ip.String()
	}
	set += " }"
	for _, c := range []struct {
		name string
		hook knftables.BaseChainHook
		rule string
	}{
		{"prerouting", knftables.PreroutingHook, "ip daddr " + set},
		{"output", knftables.OutputHook, "ip saddr " + set},
	} {
		tx.Add(&knftables.Chain{Name: c.name, Type: ptr.To(knftables.FilterType), Hook: ptr.To(c.hook), Priority: ptr.To(knftables.RawPriority)})
		for _, proto := range []string{"udp", "tcp"} {
			port := "dport"
			if c.name == "output" {
				port = "sport"
			}
			tx.Add(&knftables.Rule{Chain: c.name, Rule: c.rule + " " + proto + " " + port + " 53 notrack"})
		}
	}
	if err := nft.Run(ctx, tx); err != nil {
		return fmt.Errorf("nftables for the DNS path: %w", err)
	}
	return nil
}

// runDNS serves cluster DNS on the node's DNS addresses and its own address, and publishes the
// node in the kube-dns Service's endpoints.
func (a *Agent) runDNS(ctx context.Context) {
	if err := a.setupDNS(ctx); err != nil {
		slog.Error("cluster DNS disabled on this node", "err", err)
		return
	}
	listen := []string{netip.AddrPortFrom(a.cfg.NodeIP, 53).String()}
	for _, ip := range a.dnsAddrs() {
		listen = append(listen, netip.AddrPortFrom(ip, 53).String())
	}
	cfg := dns.Config{Zone: a.cfg.ClusterDomain, Listen: listen, Upstreams: a.cfg.DNSUpstreams}
	if a.cfg.HostNetns != "" {
		path := a.cfg.HostNetns
		cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := netns.DoPath(path, func() error {
				var d net.Dialer
				c, err := d.DialContext(ctx, network, addr)
				conn = c
				return err
			})
			return conn, err
		}
	}
	go a.publishDNSEndpoint(ctx)
	for ctx.Err() == nil {
		if err := dns.Run(ctx, a.client, cfg); err != nil {
			slog.Error("cluster DNS stopped; restarting", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// publishDNSEndpoint keeps an EndpointSlice of the kube-dns Service listing this node's server,
// and removes it when the agent stops.
func (a *Agent) publishDNSEndpoint(ctx context.Context) {
	slices := a.client.DiscoveryV1().EndpointSlices(metav1.NamespaceSystem)
	name := "kube-dns-" + a.cfg.NodeName
	want := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceSystem, Labels: map[string]string{
			discoveryv1.LabelServiceName: "kube-dns", discoveryv1.LabelManagedBy: DNSManagedBy}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{a.cfg.NodeIP.String()}, NodeName: ptr.To(a.cfg.NodeName),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}}},
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("dns"), Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(int32(53))},
			{Name: ptr.To("dns-tcp"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(int32(53))},
		},
	}
	for {
		cur, err := slices.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			want.OwnerReferences = a.nodeOwner(ctx)
			_, err = slices.Create(ctx, want, metav1.CreateOptions{})
		case err == nil && (len(cur.Endpoints) != 1 || len(cur.Endpoints[0].Addresses) != 1 || cur.Endpoints[0].Addresses[0] != a.cfg.NodeIP.String()):
			cur.Endpoints, cur.Ports = want.Endpoints, want.Ports
			_, err = slices.Update(ctx, cur, metav1.UpdateOptions{})
		}
		if err != nil && ctx.Err() == nil {
			slog.Warn("kube-dns endpoint of this node", "err", err)
		}
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = slices.Delete(dctx, name, metav1.DeleteOptions{})
			cancel()
			return
		case <-time.After(30 * time.Second):
		}
	}
}
