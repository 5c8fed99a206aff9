// Package proxy is svcnet's kube-proxy role with an nftables dataplane. Run watches Services,
// EndpointSlices and the proxy's Node with client-go informers, tracks changes per Service, and at
// a bounded rate turns them into one atomic transaction on one nftables table (family inet) owned
// by svcnet, in the network namespace the process runs in.
//
// The pieces: model converts API objects into slim structs at the edge; nft computes the table as
// a pure function of them and applies differences (through netlink, or the nft tool); tracer walks
// packets through a computed table in tests; conntrack removes stale UDP flows; healthcheck serves
// healthCheckNodePorts and /healthz. README.md in this directory describes the table's layout, its
// hooks and priorities, and the packet path of each kind of Service address.
package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The dataplanes.
const (
	DataplaneNFTables  = "nftables"
	DataplaneUserspace = "userspace"
)

// Config configures the proxy of one node.
type Config struct {
	// NodeName is this node's name: endpoints on it are local, its Node's zone label drives
	// topology hints. Required.
	NodeName string
	// NodeIPs are the addresses NodePorts and health check ports answer on. Empty means every
	// local address (NodePorts) and every address (health checks). NodePorts also answer on
	// 127.0.0.1 for the node itself unless DisableLocalhostNodePorts.
	NodeIPs []netip.Addr
	// ClusterCIDR is the cluster's pod CIDR: ClusterIP traffic from outside it is masqueraded, and
	// pods reaching an externalTrafficPolicy=Local address are not limited to local endpoints.
	ClusterCIDR netip.Prefix
	// ServiceCIDR is the Service IP range: traffic to an address in it that no Service has is
	// dropped.
	ServiceCIDR netip.Prefix
	// Table is the nftables table (family inet) the proxy owns. Default "svcnet".
	Table string
	// MinSyncPeriod is the least time between the starts of two syncs: changes arriving meanwhile
	// are applied together. Default 10ms: a sync of one change costs well under a millisecond of
	// CPU, so this caps the proxy at about 10% of a core under continuous churn while adding at most
	// 10ms to a change's latency (nothing when the proxy was idle).
	MinSyncPeriod time.Duration
	// SyncPeriod, when positive, makes the proxy re-read and correct the whole table this often
	// (repairing changes made behind its back). Default 0: only changes cause kernel operations.
	SyncPeriod time.Duration
	// Registerer receives the proxy's metrics; nil means no metrics.
	Registerer prometheus.Registerer
	// HealthzBindAddress serves /healthz and /livez (e.g. "0.0.0.0:10256"); empty: not served.
	HealthzBindAddress string
	// DisableLocalhostNodePorts turns off NodePorts on 127.0.0.1. When on, the proxy sets
	// net.ipv4.conf.all.route_localnet=1 in its network namespace (the kernel would otherwise
	// drop the DNATed packets, whose source is 127.0.0.1) and the table drops packets arriving from
	// the network for 127.0.0.0/8, which that setting would let in.
	DisableLocalhostNodePorts bool
	// Dataplane is "nftables" (default) or "userspace": TCP and UDP listeners on the Service
	// addresses and NodePorts that splice connections to endpoints (package userspace). With
	// "nftables", Run falls back to the userspace dataplane when nf_tables is unavailable.
	Dataplane string
	// Backend is how the table is programmed: "netlink" (default: nf_tables netlink directly) or
	// "nft" (the nft tool through knftables; slower at scale, for debugging).
	Backend string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// SyncHook, when set, is called after every successful sync, from the sync loop (it must not
	// block). Benchmarks use it to time changes end to end.
	SyncHook func(SyncReport)
}

// SyncReport describes one successful sync.
type SyncReport struct {
	Full       bool
	Duration   time.Duration // computing and applying the sync
	Operations int           // nftables operations sent to the kernel
	// ServicePorts is the number of Service ports rebuilt (all of them in a full sync).
	ServicePorts int
	Chains       int
	Rules        int
	Elements     int
	// Triggers are the last-change-trigger-times of the EndpointSlice changes the sync applied.
	Triggers []time.Time
	// Done is when the sync finished (the changes were in the kernel).
	Done time.Time
}

// Default fills in defaults.
func (c *Config) Default() {
	if c.Table == "" {
		c.Table = "svcnet"
	}
	if c.MinSyncPeriod == 0 {
		c.MinSyncPeriod = 10 * time.Millisecond
	}
	if c.Dataplane == "" {
		c.Dataplane = DataplaneNFTables
	}
	if c.Backend == "" {
		c.Backend = "netlink"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("proxy: NodeName is required"))
	}
	for _, a := range c.NodeIPs {
		if !a.Is4() {
			errs = append(errs, fmt.Errorf("proxy: node IP %s: only IPv4 is supported", a))
		}
	}
	if c.ClusterCIDR.IsValid() && !c.ClusterCIDR.Addr().Is4() {
		errs = append(errs, fmt.Errorf("proxy: cluster CIDR %s: only IPv4 is supported", c.ClusterCIDR))
	}
	if c.ServiceCIDR.IsValid() && !c.ServiceCIDR.Addr().Is4() {
		errs = append(errs, fmt.Errorf("proxy: service CIDR %s: only IPv4 is supported", c.ServiceCIDR))
	}
	if c.Dataplane != "" && c.Dataplane != DataplaneNFTables && c.Dataplane != DataplaneUserspace {
		errs = append(errs, fmt.Errorf("proxy: unknown dataplane %q (use nftables or userspace)", c.Dataplane))
	}
	if c.Backend != "" && c.Backend != "netlink" && c.Backend != "nft" {
		errs = append(errs, fmt.Errorf("proxy: unknown backend %q (use netlink or nft)", c.Backend))
	}
	if c.MinSyncPeriod < 0 {
		errs = append(errs, errors.New("proxy: MinSyncPeriod must not be negative"))
	}
	return errors.Join(errs...)
}
