// Package localnet builds the network of a local cluster on one machine: a node network whose
// bridge lives in a namespace of its own, one network namespace per node plugged into it, and an
// "outside" namespace that is on the node network but is not a node, for reaching NodePorts and
// load balancers as an external client does. Nothing is added to the host's own namespace.
//
// The layout is decided by Plan, a pure function of the settings; Apply makes it and Teardown
// removes everything a plan with the same prefix could have made, including what a crashed run
// left behind.
package localnet

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Settings of a local cluster's network.
type Settings struct {
	// Prefix starts the name of every namespace: "svcnet" for the default cluster.
	Prefix string
	Nodes  int
	// NodeSubnet is the node network; node N is at host (10+N), the outside client at OutsideHost.
	NodeSubnet  netip.Prefix
	OutsideHost int
	// ClusterCIDR is split into one /24 pod CIDR per node: node N gets the Nth.
	ClusterCIDR netip.Prefix
}

// DefaultSettings is the address plan of DESIGN.md.
func DefaultSettings(nodes int) Settings {
	return Settings{
		Prefix:      "svcnet",
		Nodes:       nodes,
		NodeSubnet:  netip.MustParsePrefix("172.31.0.0/24"),
		OutsideHost: 200,
		ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"),
	}
}

// Host is a namespace on the node network.
type Host struct {
	Netns string
	// Port is the host's veth end in the fabric namespace, attached to the bridge.
	Port string
	IP   netip.Prefix
}

// Node is a node of the plan.
type Node struct {
	Name string
	Host
	PodCIDR netip.Prefix
}

// Plan is the whole layout.
type Plan struct {
	Prefix string
	// Fabric is the namespace holding the node network's bridge.
	Fabric  string
	Bridge  string
	Nodes   []Node
	Outside Host
	// Uplink is the name of every host's interface on the node network, inside its namespace.
	Uplink string
}

var prefixRE = regexp.MustCompile(`^svcnet(-[a-z0-9]+)*$`)

// NewPlan lays out the network; it fails on settings that cannot work, saying which.
func NewPlan(s Settings) (Plan, error) {
	if !prefixRE.MatchString(s.Prefix) {
		return Plan{}, fmt.Errorf("prefix %q: must be \"svcnet\" or start with \"svcnet-\", lower-case letters, digits and dashes", s.Prefix)
	}
	if rest, ok := strings.CutPrefix(s.Prefix, "svcnet-"); ok {
		for _, w := range []string{"net", "outside", "node", "pod"} {
			if rest == w || strings.HasPrefix(rest, w+"-") {
				return Plan{}, fmt.Errorf("prefix %q: %q would clash with the names of the default cluster's namespaces", s.Prefix, w)
			}
		}
	}
	if s.Nodes < 1 {
		return Plan{}, fmt.Errorf("%d nodes: need at least 1", s.Nodes)
	}
	if !s.NodeSubnet.Addr().Is4() || s.NodeSubnet.Bits() > 24 {
		return Plan{}, fmt.Errorf("node subnet %s: must be IPv4 and /24 or larger", s.NodeSubnet)
	}
	if s.Nodes > 89 {
		return Plan{}, fmt.Errorf("%d nodes: at most 89 fit the node addresses .11-.99", s.Nodes)
	}
	if !s.ClusterCIDR.Addr().Is4() || s.ClusterCIDR.Bits() > 24-bitsFor(s.Nodes+1) {
		return Plan{}, fmt.Errorf("cluster CIDR %s: too small for %d node /24s", s.ClusterCIDR, s.Nodes)
	}
	if s.OutsideHost < 100 || s.OutsideHost > 254 {
		return Plan{}, fmt.Errorf("outside host %d: must be 100-254", s.OutsideHost)
	}
	p := Plan{
		Prefix: s.Prefix,
		Fabric: s.Prefix + "-net",
		Bridge: "svcnet-br",
		Uplink: "svcnet0",
	}
	base := s.NodeSubnet.Masked().Addr().As4()
	at := func(host int) netip.Prefix {
		a := base
		a[3] += byte(host)
		return netip.PrefixFrom(netip.AddrFrom4(a), s.NodeSubnet.Bits())
	}
	cidr := s.ClusterCIDR.Masked().Addr().As4()
	for i := 1; i <= s.Nodes; i++ {
		name := fmt.Sprintf("node-%d", i)
		pc := cidr
		pc[2] += byte(i)
		p.Nodes = append(p.Nodes, Node{
			Name:    name,
			Host:    Host{Netns: s.Prefix + "-" + name, Port: fmt.Sprintf("svcnet-n%d", i), IP: at(10 + i)},
			PodCIDR: netip.PrefixFrom(netip.AddrFrom4(pc), 24),
		})
	}
	p.Outside = Host{Netns: s.Prefix + "-outside", Port: "svcnet-out", IP: at(s.OutsideHost)}
	return p, nil
}

func bitsFor(n int) int {
	b := 0
	for (1 << b) < n {
		b++
	}
	return b
}

// Owns reports whether a namespace name is one a plan with this prefix makes (the fabric, nodes,
// the outside client, and the pods the agents make), and not another cluster's whose prefix
// merely starts the same way.
func Owns(prefix, netns string) bool {
	rest, ok := strings.CutPrefix(netns, prefix+"-")
	if !ok {
		return false
	}
	switch {
	case rest == "net", rest == "outside":
		return true
	case strings.HasPrefix(rest, "node-"):
		return isDigits(strings.TrimPrefix(rest, "node-"))
	case strings.HasPrefix(rest, "pod-"):
		return true
	}
	return false
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// PodNetnsPrefix starts the names of the pod namespaces a node's agent makes.
func PodNetnsPrefix(prefix string) string { return prefix + "-pod-" }
