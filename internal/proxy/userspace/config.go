// Package userspace is the Service proxy's userspace dataplane, for nodes where the kernel path
// (nftables) is unavailable or unwanted (`svcnet agent --dataplane userspace`). It watches the same
// objects as the nftables proxy, decides which endpoints serve each Service port with the same
// function (model.Categorize: ready endpoints, serving-terminating fallback, topology hints,
// traffic policies), and serves every Service address itself:
//
//   - each ClusterIP, external IP and load-balancer IP is added as a /32 to the namespace's
//     loopback (label "lo:svcnet-svc") so that sockets can bind it, and removed when its Service
//     goes;
//   - a TCP listener per address and port accepts connections and splices them to an endpoint
//     (both directions, with half-close);
//   - a UDP socket per address and port keeps one session per client address (a connected socket
//     to the chosen endpoint), answers from the Service address and forgets idle sessions;
//   - NodePorts listen on the node's addresses and on 127.0.0.1.
//
// Endpoints are chosen at random among those the port uses for the client (ClientIP affinity keeps
// a client on its endpoint for the affinity timeout). A port without endpoints has no listener, so
// the kernel refuses TCP connections (reset) and answers UDP with ICMP port unreachable at once.
// The endpoint sees the node's address, not the client's: the source address is not preserved.
package userspace

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/vishvananda/netns"
)

// AddressLabel is the label of the Service addresses the proxy puts on the loopback interface:
// addresses on "lo" with this label are the proxy's, and only those are ever removed.
const AddressLabel = "lo:svcnet-svc"

// Config configures the userspace proxy of one node.
type Config struct {
	// NodeName is this node's name (endpoints on it are local). Required.
	NodeName string
	// NodeIPs are the addresses NodePorts listen on. Empty: every IPv4 address of the namespace
	// (re-read at each sync). NodePorts also listen on 127.0.0.1 unless DisableLocalhostNodePorts.
	NodeIPs []netip.Addr
	// ClusterCIDR is the pods' CIDR: clients in it (and the node itself) reaching an address of an
	// externalTrafficPolicy=Local Service use every endpoint, as with the nftables dataplane.
	ClusterCIDR netip.Prefix
	// DisableLocalhostNodePorts turns off NodePorts on 127.0.0.1.
	DisableLocalhostNodePorts bool
	// HealthzBindAddress serves /healthz and /livez (e.g. "0.0.0.0:10256"); empty: not served.
	HealthzBindAddress string
	// MinSyncPeriod is the least time between two syncs. Default 10ms.
	MinSyncPeriod time.Duration
	// UDPIdleTimeout is how long a UDP session lives without a packet in either direction.
	// Default 60s.
	UDPIdleTimeout time.Duration
	// DialTimeout bounds connecting to an endpoint. Default 5s.
	DialTimeout time.Duration
	// Netns, when positive, is the network namespace every socket and address lives in; zero
	// (or netns.None()): the namespace of the calling process.
	Netns netns.NsHandle
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Default fills in defaults.
func (c *Config) Default() {
	if c.MinSyncPeriod == 0 {
		c.MinSyncPeriod = 10 * time.Millisecond
	}
	if c.UDPIdleTimeout == 0 {
		c.UDPIdleTimeout = 60 * time.Second
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("userspace proxy: NodeName is required"))
	}
	for _, a := range c.NodeIPs {
		if !a.Is4() {
			errs = append(errs, fmt.Errorf("userspace proxy: node IP %s: only IPv4 is supported", a))
		}
	}
	if c.ClusterCIDR.IsValid() && !c.ClusterCIDR.Addr().Is4() {
		errs = append(errs, fmt.Errorf("userspace proxy: cluster CIDR %s: only IPv4 is supported", c.ClusterCIDR))
	}
	if c.MinSyncPeriod < 0 || c.UDPIdleTimeout < 0 || c.DialTimeout < 0 {
		errs = append(errs, errors.New("userspace proxy: durations must not be negative"))
	}
	return errors.Join(errs...)
}
