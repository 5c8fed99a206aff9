package nft

import (
	"cmp"
	"crypto/sha256"
	"encoding/base32"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/svcnet/svcnet/internal/proxy/model"
)

// MasqueradeMark is the packet mark bit that asks nat-postrouting to masquerade (kube-proxy's bit 14).
const MasqueradeMark uint32 = 0x4000

// Names of the table's fixed chains, sets and maps.
const (
	ChainFilterPrerouting     = "filter-prerouting"
	ChainFilterInput          = "filter-input"
	ChainFilterForward        = "filter-forward"
	ChainFilterOutput         = "filter-output"
	ChainFilterOutputPostDNAT = "filter-output-post-dnat"
	ChainNATPrerouting        = "nat-prerouting"
	ChainNATOutput            = "nat-output"
	ChainNATPostrouting       = "nat-postrouting"

	ChainServices               = "services"
	ChainNodePorts              = "nodeports"
	ChainMasquerading           = "masquerading"
	ChainMarkForMasquerade      = "mark-for-masquerade"
	ChainReject                 = "reject-chain"
	ChainClusterIPsCheck        = "cluster-ips-check"
	ChainServiceEndpointsCheck  = "service-endpoints-check"
	ChainNodePortEndpointsCheck = "nodeport-endpoints-check"
	ChainNodePortNoEndpoints    = "nodeport-no-endpoints"
	ChainFirewallCheck          = "firewall-check"

	MapServiceIPs       = "service-ips"
	MapServiceNodePorts = "service-nodeports"
	MapFirewallIPs      = "firewall-ips"
	SetClusterIPs       = "cluster-ips"
	SetNodePortIPs      = "nodeport-ips"
	SetHairpin          = "hairpin"

	SetNoEndpointReject         = "no-endpoint-reject"
	SetNoEndpointDrop           = "no-endpoint-drop"
	SetNodePortNoEndpointReject = "nodeport-no-endpoint-reject"
	SetNodePortNoEndpointDrop   = "nodeport-no-endpoint-drop"
)

// Policy is how traffic reaching one kind of Service address is handled. Each policy is a fixed
// chain; a Service address is sent to it by membership in the set of the same name.
type Policy string

// The policies of ClusterIPs (internal), external and load-balancer IPs (external) and NodePorts.
const (
	InternalCluster Policy = "internal-cluster" // masquerade from outside the pod network; any endpoint
	InternalLocal   Policy = "internal-local"   // the same, this node's endpoints only
	ExternalCluster Policy = "external-cluster" // masquerade; any endpoint
	ExternalLocal   Policy = "external-local"   // keep the source; this node's endpoints (pods and the node itself: any)
	NodePortCluster Policy = "nodeport-cluster"
	NodePortLocal   Policy = "nodeport-local"
)

// Policies lists every policy in order.
var Policies = []Policy{InternalCluster, InternalLocal, ExternalCluster, ExternalLocal, NodePortCluster, NodePortLocal}

func (p Policy) nodePort() bool { return p == NodePortCluster || p == NodePortLocal }

// Picker is one random choice among N endpoints: a rule in a pick chain and the map it reads.
// NodePort pickers are keyed by protocol and port, the others by address, protocol and port; Local
// pickers hold this node's endpoints.
type Picker struct {
	NodePort bool
	Local    bool
	Proto    model.Protocol
	N        int
}

func (p Picker) chain() string {
	c := "pick-cluster"
	if p.Local {
		c = "pick-local"
	}
	if p.NodePort {
		c = "nodeport-" + c
	}
	return c
}

// kind indexes the four kinds of pickers (cluster or local, address or NodePort).
func (p Picker) kind() int {
	k := 0
	if p.Local {
		k++
	}
	if p.NodePort {
		k += 2
	}
	return k
}

var (
	endpointMapNames = [4]string{"endpoints-cluster", "endpoints-local", "nodeport-endpoints-cluster", "nodeport-endpoints-local"}
	sizeSetPrefixes  = [4]string{"size-cluster-", "size-local-", "nodeport-size-cluster-", "nodeport-size-local-"}
	// sizeSetNames holds the common size sets' names, so that building elements allocates none.
	sizeSetNames = func() (t [4][65]string) {
		for k := range t {
			for n := range t[k] {
				t[k][n] = sizeSetPrefixes[k] + strconv.Itoa(n)
			}
		}
		return t
	}()
)

// Map names the endpoint map the picker reads: "endpoints-cluster", "nodeport-endpoints-local".
func (p Picker) Map() string { return endpointMapNames[p.kind()] }

// SizeSet names the set of addresses (or NodePorts) with N endpoints in the picker's map:
// "size-cluster-3", "nodeport-size-local-1".
func (p Picker) SizeSet() string {
	if p.N >= 0 && p.N < len(sizeSetNames[0]) {
		return sizeSetNames[p.kind()][p.N]
	}
	return sizeSetPrefixes[p.kind()] + strconv.Itoa(p.N)
}

func (p Picker) key() Key {
	if p.NodePort {
		return Key{L4Proto, THDport}
	}
	return Key{IPDaddr, L4Proto, THDport}
}

func comparePickers(a, b Picker) int {
	bi := func(x bool) int {
		if x {
			return 1
		}
		return 0
	}
	return cmp.Or(cmp.Compare(bi(a.NodePort), bi(b.NodePort)), cmp.Compare(bi(a.Local), bi(b.Local)), cmp.Compare(a.N, b.N),
		strings.Compare(string(a.Proto), string(b.Proto)))
}

// PickersOwner is the engine owner of the pick chains and size sets.
const PickersOwner = "~pickers"

// Endpoint maps: key address . protocol . port (or protocol . NodePort) . slot, value endpoint
// address . port.
var endpointMaps = []*Set{
	{Name: "endpoints-cluster", Key: []DataType{TypeIPv4, TypeProto, TypePort}, Endpoints: true},
	{Name: "endpoints-local", Key: []DataType{TypeIPv4, TypeProto, TypePort}, Endpoints: true},
	{Name: "nodeport-endpoints-cluster", Key: []DataType{TypeProto, TypePort}, Endpoints: true},
	{Name: "nodeport-endpoints-local", Key: []DataType{TypeProto, TypePort}, Endpoints: true},
}

// DefaultStaticSizes is the default of Options.StaticSizes.
const DefaultStaticSizes = 16

var allProtocols = []model.Protocol{model.TCP, model.UDP, model.SCTP}

// Pickers builds the pick chains and size sets: for each endpoint count N, a set of the addresses
// with N endpoints and a chain choosing slot "numgen random mod N" of the address in the endpoint
// map. The pick chain of each kind tries the sizes in turn (a hash lookup each) and jumps to the
// chain of the size it finds. Sizes up to staticSizes always exist; in is the pickers in use, which
// adds the larger sizes.
func Pickers(in []Picker, staticSizes int) *Objects {
	ps := slices.Clone(in)
	for _, np := range []bool{false, true} {
		for _, local := range []bool{false, true} {
			for n := 1; n <= staticSizes; n++ {
				for _, pr := range allProtocols {
					ps = append(ps, Picker{NodePort: np, Local: local, Proto: pr, N: n})
				}
			}
		}
	}
	slices.SortFunc(ps, comparePickers)
	ps = slices.Compact(ps)
	o := &Objects{}
	dispatch := map[string]*Chain{}
	for _, name := range []string{"pick-cluster", "pick-local", "nodeport-pick-cluster", "nodeport-pick-local"} {
		dispatch[name] = &Chain{Name: name}
		o.Chains = append(o.Chains, dispatch[name])
	}
	sizes := map[string]*Chain{}
	for _, p := range ps {
		sizeChain := p.chain() + "-" + strconv.Itoa(p.N)
		c := sizes[sizeChain]
		if c == nil {
			c = &Chain{Name: sizeChain}
			sizes[sizeChain] = c
			o.Chains = append(o.Chains, c)
			k := []DataType{TypeIPv4, TypeProto, TypePort}
			if p.NodePort {
				k = k[1:]
			}
			o.Sets = append(o.Sets, &Set{Name: p.SizeSet(), Key: k})
			d := dispatch[p.chain()]
			d.Rules = append(d.Rules, R(SetMatch{Key: p.key(), Set: p.SizeSet()}, gotoC(sizeChain)))
		}
		c.Rules = append(c.Rules, R(L4ProtoMatch{Proto: p.Proto}, DnatMap{Key: p.key(), Mod: uint32(p.N), Map: p.Map()}))
	}
	return o
}

// Options are the node-level inputs of the ruleset.
type Options struct {
	// ClusterCIDR is the pod CIDR of the cluster. Traffic to a ClusterIP from outside it is
	// masqueraded, and pods reaching an externalTrafficPolicy=Local address are sent to every
	// endpoint. Unset means "masquerade all ClusterIP traffic".
	ClusterCIDR netip.Prefix
	// ServiceCIDRs are dropped when no Service owns the address.
	ServiceCIDRs []netip.Prefix
	// NodePortAddresses are the addresses NodePorts answer on; empty means every local address.
	NodePortAddresses []netip.Addr
	// LocalhostNodePorts makes NodePorts answer on 127.0.0.1 for connections from the node itself.
	// The caller must set net.ipv4.conf.all.route_localnet=1; the ruleset then drops packets that
	// arrive from the network for 127.0.0.0/8, as the kernel would without it.
	LocalhostNodePorts bool
	// StaticSizes is the largest endpoint count whose pick chain always exists (0: 16). Larger
	// counts get their chain while an address uses them; creating it costs a walk of the endpoint
	// map in the kernel (binding a rule to a map checks every element), which keeping the common
	// sizes static avoids: an endpoint change among them touches no rule.
	StaticSizes int
}

func (o Options) staticSizes() int {
	if o.StaticSizes <= 0 {
		return DefaultStaticSizes
	}
	return o.StaticSizes
}

var (
	fTuple    = Key{IPDaddr, L4Proto, THDport}
	fPortOnly = Key{L4Proto, THDport}
	loopback  = netip.MustParsePrefix("127.0.0.0/8")
	localhost = netip.PrefixFrom(netip.MustParseAddr("127.0.0.1"), 32)
)

func jump(chain string) Verdict      { return Verdict{Kind: Jump, Chain: chain} }
func gotoC(chain string) Verdict     { return Verdict{Kind: Goto, Chain: chain} }
func host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, 32) }

func withComment(r Rule, c string) Rule { r.Comment = c; return r }

// Objects is a group of chains, sets and elements: the fixed part of the table, or one Service port's.
type Objects struct {
	Chains   []*Chain
	Sets     []*Set
	Elements []Element
}

// Base returns the fixed part of the table: base chains, dispatch and policy chains, and the shared
// sets and maps.
func Base(o Options) *Objects {
	b := &Objects{}
	chain := func(name string, base *BaseChain, rules ...Rule) {
		b.Chains = append(b.Chains, &Chain{Name: name, Base: base, Rules: rules})
	}
	newConn := func(to string) Rule { return R(CtStateNew{}, jump(to)) }

	// Filter chains run just before DNAT (dstnat-10) so they see the address the client used.
	pre := []Rule{newConn(ChainFirewallCheck)}
	if o.LocalhostNodePorts {
		pre = append(pre, withComment(R(IifnameNot{"lo"}, IPMatch{Field: IPDaddr, Prefix: loopback}, Verdict{Kind: Drop}),
			"route_localnet guard: 127.0.0.0/8 only from the node itself"))
	}
	chain(ChainFilterPrerouting, &BaseChain{"filter", "prerouting", -110}, pre...)
	chain(ChainFilterInput, &BaseChain{"filter", "input", -110}, newConn(ChainNodePortEndpointsCheck), newConn(ChainServiceEndpointsCheck))
	chain(ChainFilterForward, &BaseChain{"filter", "forward", -110}, newConn(ChainServiceEndpointsCheck), newConn(ChainClusterIPsCheck))
	chain(ChainFilterOutput, &BaseChain{"filter", "output", -110}, newConn(ChainServiceEndpointsCheck), newConn(ChainFirewallCheck))
	chain(ChainFilterOutputPostDNAT, &BaseChain{"filter", "output", -90}, newConn(ChainClusterIPsCheck))
	chain(ChainNATPrerouting, &BaseChain{"nat", "prerouting", -100}, R(jump(ChainServices)))
	natOut := []Rule{R(jump(ChainServices))}
	if o.LocalhostNodePorts {
		natOut = append(natOut, withComment(R(IPMatch{Field: IPDaddr, Prefix: localhost}, jump(ChainNodePorts)), "NodePorts on 127.0.0.1"))
	}
	chain(ChainNATOutput, &BaseChain{"nat", "output", -100}, natOut...)
	chain(ChainNATPostrouting, &BaseChain{"nat", "postrouting", 100}, R(jump(ChainMasquerading)))

	// nodePorts matches the addresses NodePorts answer on (127.0.0.1 is handled in nat-output).
	var nodePorts []Term
	if len(o.NodePortAddresses) == 0 {
		nodePorts = []Term{FibLocal{}, IPMatch{Field: IPDaddr, Neg: true, Prefix: loopback}}
	} else {
		nodePorts = []Term{SetMatch{Key: Key{IPDaddr}, Set: SetNodePortIPs}}
	}
	// Dispatch: Services with per-Service chains (ClientIP affinity) through the verdict maps, all
	// others by membership of their address in a policy set.
	svcRules := []Rule{R(Vmap{Key: fTuple, Map: MapServiceIPs})}
	npRules := []Rule{R(Vmap{Key: fPortOnly, Map: MapServiceNodePorts})}
	for _, p := range Policies {
		if p.nodePort() {
			npRules = append(npRules, R(SetMatch{Key: fPortOnly, Set: string(p)}, gotoC(string(p))))
		} else {
			svcRules = append(svcRules, R(SetMatch{Key: fTuple, Set: string(p)}, gotoC(string(p))))
		}
	}
	svcRules = append(svcRules, R(append(slices.Clone(nodePorts), jump(ChainNodePorts))...))
	chain(ChainServices, nil, svcRules...)
	chain(ChainNodePorts, nil, npRules...)

	// Policies.
	masq := R(jump(ChainMarkForMasquerade))
	fromOutside := masq
	if o.ClusterCIDR.IsValid() {
		fromOutside = R(IPMatch{Field: IPSaddr, Neg: true, Prefix: o.ClusterCIDR.Masked()}, jump(ChainMarkForMasquerade))
	}
	local := func(cluster, local string) []Rule {
		var rules []Rule
		if o.ClusterCIDR.IsValid() {
			rules = append(rules, withComment(R(IPMatch{Field: IPSaddr, Prefix: o.ClusterCIDR.Masked()}, gotoC(cluster)), "short-circuit pod traffic"))
		}
		return append(rules,
			withComment(R(FibLocal{Saddr: true}, jump(ChainMarkForMasquerade)), "masquerade node traffic"),
			withComment(R(FibLocal{Saddr: true}, gotoC(cluster)), "short-circuit node traffic"),
			R(gotoC(local)))
	}
	chain(string(InternalCluster), nil, fromOutside, R(gotoC("pick-cluster")))
	chain(string(InternalLocal), nil, fromOutside, R(gotoC("pick-local")))
	chain(string(ExternalCluster), nil, masq, R(gotoC("pick-cluster")))
	chain(string(ExternalLocal), nil, local("pick-cluster", "pick-local")...)
	chain(string(NodePortCluster), nil, masq, R(gotoC("nodeport-pick-cluster")))
	chain(string(NodePortLocal), nil, local("nodeport-pick-cluster", "nodeport-pick-local")...)

	chain(ChainMasquerading, nil,
		withComment(R(CtStatusDNAT{}, SetMatch{Key: Key{IPSaddr, IPDaddr}, Set: SetHairpin}, jump(ChainMarkForMasquerade)), "hairpin: a pod reaching itself"),
		R(MarkUnset{Mark: MasqueradeMark}, Verdict{Kind: Return}),
		R(MarkSet{Xor: true, Mark: MasqueradeMark}),
		R(Masquerade{}))
	chain(ChainMarkForMasquerade, nil, R(MarkSet{Mark: MasqueradeMark}))
	chain(ChainReject, nil, R(L4ProtoMatch{Proto: model.TCP}, Reject{TCPReset: true}), R(Reject{}))
	cipCheck := []Rule{withComment(R(SetMatch{Key: Key{IPDaddr}, Set: SetClusterIPs}, gotoC(ChainReject)), "unknown port of a ClusterIP")}
	for _, c := range o.ServiceCIDRs {
		if c.IsValid() && c.Addr().Is4() {
			cipCheck = append(cipCheck, withComment(R(IPMatch{Field: IPDaddr, Prefix: c.Masked()}, Verdict{Kind: Drop}), "unallocated ClusterIP"))
		}
	}
	chain(ChainClusterIPsCheck, nil, cipCheck...)
	chain(ChainServiceEndpointsCheck, nil,
		R(SetMatch{Key: fTuple, Set: SetNoEndpointReject}, gotoC(ChainReject)),
		R(SetMatch{Key: fTuple, Set: SetNoEndpointDrop}, Verdict{Kind: Drop}))
	npCheck := []Rule{R(append(slices.Clone(nodePorts), jump(ChainNodePortNoEndpoints))...)}
	if o.LocalhostNodePorts {
		npCheck = append(npCheck, R(IPMatch{Field: IPDaddr, Prefix: localhost}, jump(ChainNodePortNoEndpoints)))
	}
	chain(ChainNodePortEndpointsCheck, nil, npCheck...)
	chain(ChainNodePortNoEndpoints, nil,
		R(SetMatch{Key: fPortOnly, Set: SetNodePortNoEndpointReject}, gotoC(ChainReject)),
		R(SetMatch{Key: fPortOnly, Set: SetNodePortNoEndpointDrop}, Verdict{Kind: Drop}))
	chain(ChainFirewallCheck, nil, R(Vmap{Key: fTuple, Map: MapFirewallIPs}))

	tuple := []DataType{TypeIPv4, TypeProto, TypePort}
	portOnly := []DataType{TypeProto, TypePort}
	b.Sets = []*Set{
		{Name: MapServiceIPs, Key: tuple, Verdict: true, Comment: "addresses of Services with per-Service chains"},
		{Name: MapServiceNodePorts, Key: portOnly, Verdict: true, Comment: "NodePorts of Services with per-Service chains"},
		{Name: MapFirewallIPs, Key: tuple, Verdict: true, Comment: "load-balancer IPs with loadBalancerSourceRanges"},
		{Name: SetClusterIPs, Key: []DataType{TypeIPv4}, Comment: "active ClusterIPs"},
		{Name: SetHairpin, Key: []DataType{TypeIPv4, TypeIPv4}, Comment: "endpoint . endpoint, for hairpin masquerade"},
		{Name: SetNoEndpointReject, Key: tuple, Comment: "Service ports without endpoints: reject"},
		{Name: SetNoEndpointDrop, Key: tuple, Comment: "Service ports without endpoints for their traffic policy: drop"},
		{Name: SetNodePortNoEndpointReject, Key: portOnly, Comment: "NodePorts without endpoints: reject"},
		{Name: SetNodePortNoEndpointDrop, Key: portOnly, Comment: "NodePorts without endpoints for their traffic policy: drop"},
	}
	b.Sets = append(b.Sets, endpointMaps...)
	for _, p := range Policies {
		k := tuple
		if p.nodePort() {
			k = portOnly
		}
		b.Sets = append(b.Sets, &Set{Name: string(p), Key: k, Comment: "Service addresses with policy " + string(p)})
	}
	if len(o.NodePortAddresses) > 0 {
		b.Sets = append(b.Sets, &Set{Name: SetNodePortIPs, Key: []DataType{TypeIPv4}, Comment: "addresses NodePorts answer on"})
		addrs := slices.Clone(o.NodePortAddresses)
		slices.SortFunc(addrs, netip.Addr.Compare)
		for _, a := range slices.Compact(addrs) {
			if a.Is4() && !a.IsLoopback() {
				b.Elements = append(b.Elements, Element{Set: SetNodePortIPs, Key: ElementKey{}.Addr(a)})
			}
		}
	}
	return b
}

// ChainNames are the names of the per-Service objects of one Service port.
type ChainNames struct {
	Cluster, Local, External, Firewall string
	hashed                             string
}

// NamesFor returns the deterministic object names of a Service port:
// "service-HASH8-namespace/name/protocol/port" and the same with local-, external- and firewall-.
// The port is the port's name, or its number when unnamed; HASH8 is the start of the base32 SHA-256
// of the rest, so names stay unique and distinguishable even when nft truncates them in output.
func NamesFor(n model.ServicePortName, port uint16) ChainNames {
	p := n.Port
	if p == "" {
		p = strconv.Itoa(int(port))
	}
	base := n.Namespace + "/" + n.Name + "/" + string(n.Protocol) + "/" + p
	sum := sha256.Sum256([]byte(base))
	h := base32.StdEncoding.EncodeToString(sum[:])[:8] + "-" + base
	return ChainNames{Cluster: "service-" + h, Local: "local-" + h, External: "external-" + h, Firewall: "firewall-" + h, hashed: h}
}

// AffinitySet names the ClientIP affinity set of one endpoint of a Service port.
func (c ChainNames) AffinitySet(ep netip.AddrPort) string {
	return "affinity-" + c.hashed + "__" + ep.Addr().String() + "/" + strconv.Itoa(int(ep.Port()))
}

// ServiceRules are the objects of one Service port, the decision they were built from, and the
// pickers its elements need.
type ServiceRules struct {
	Name     model.ServicePortName
	Port     *model.ServicePort
	Decision model.Decision
	Pickers  []Picker
	// Slots is where each address's (or NodePort's) endpoints sit in the endpoint maps.
	Slots []Slots
	Objects
}

// Slots are the endpoints of one address . protocol . port (or protocol . NodePort) in the cluster
// or local endpoint map, by slot.
type Slots struct {
	Local     bool
	Key       ElementKey
	Endpoints []netip.AddrPort
}

// slots returns the endpoints by slot of key in the cluster or local map, or nil.
func (r *ServiceRules) slots(local bool, key ElementKey) []netip.AddrPort {
	if r == nil {
		return nil
	}
	for i := range r.Slots {
		if s := &r.Slots[i]; s.Local == local && s.Key == key {
			return s.Endpoints
		}
	}
	return nil
}

// BuildService computes the objects of one Service port: a pure function of the port, its
// endpoints, the node and the options.
//
// Most Service ports get no chain and no rule of their own, only set and map elements: the port's
// addresses in the set of their policy, and their endpoints in the endpoint map of their count.
// Adding or removing such elements never makes the kernel re-validate the table (which it does,
// walking every rule, whenever a rule or a jump/goto element is added), so an endpoint change costs
// the same with 10 Services or 10,000. Ports with ClientIP affinity get per-Service chains, like
// kube-proxy's, since each endpoint needs its own affinity set; ports with
// loadBalancerSourceRanges get a firewall chain.
//
// prev is the port's previous result, or nil. Only its slot positions are used: an endpoint that
// stays keeps its slot, and a removed one's slot is taken by a new endpoint or by the last one, so
// one endpoint change rewrites at most two map elements. Without prev, endpoints are in sorted
// order.
func BuildService(sp *model.ServicePort, eps []model.Endpoint, node model.Node, o Options, prev *ServiceRules) *ServiceRules {
	d := model.Categorize(sp, eps, node)
	b := &svcBuilder{sp: sp, d: d, o: o, prev: prev, out: &ServiceRules{Name: sp.Name, Port: sp, Decision: d}}
	// An ordinary port has, per address, its policy and size elements and one element per endpoint
	// slot, and a few hairpin entries: sized for that, its elements usually take one allocation.
	addrs := 1 + len(sp.ExternalIPs) + len(sp.LoadBalancerVIPs)
	if sp.NodePort != 0 {
		addrs++
	}
	b.out.Elements = make([]Element, 0, 2+addrs*(2+len(d.Cluster)+len(d.Local))+len(d.Local))
	b.common(node)
	if sp.AffinityTimeout > 0 {
		b.perServiceChains()
	} else {
		b.elementsOnly()
	}
	return b.out
}

type svcBuilder struct {
	prev  *ServiceRules
	sp    *model.ServicePort
	d     model.Decision
	o     Options
	names *ChainNames
	out   *ServiceRules
}

// chainNames are the port's object names, computed (a SHA-256 and five strings) only for the ports
// that have chains of their own.
func (b *svcBuilder) chainNames() ChainNames {
	if b.names == nil {
		n := NamesFor(b.sp.Name, b.sp.Port)
		b.names = &n
	}
	return *b.names
}

func (b *svcBuilder) elem(set string, key ElementKey) {
	b.out.Elements = append(b.out.Elements, Element{Set: set, Key: key})
}

func (b *svcBuilder) verdictElem(set string, key ElementKey, verdict string) {
	b.out.Elements = append(b.out.Elements, Element{Set: set, Key: key, Value: ElementValue{Verdict: verdict}})
}

// tuple is the key address . protocol . port of one of the port's addresses.
func (b *svcBuilder) tuple(a netip.Addr) ElementKey {
	return ElementKey{}.Addr(a).Proto(b.sp.Name.Protocol).Port(b.sp.Port)
}

// nodePort is the key protocol . NodePort.
func (b *svcBuilder) nodePort() ElementKey {
	return ElementKey{}.Proto(b.sp.Name.Protocol).Port(b.sp.NodePort)
}

func (b *svcBuilder) useCluster() bool { return b.sp.UsesClusterEndpoints() && len(b.d.Cluster) > 0 }
func (b *svcBuilder) useLocal() bool   { return b.sp.UsesLocalEndpoints() && len(b.d.Local) > 0 }
func (b *svcBuilder) hasInternal() bool {
	return b.d.HasAny && (!b.sp.InternalPolicyLocal || len(b.d.Local) > 0)
}
func (b *svcBuilder) hasExternal() bool {
	return b.d.HasAny && (!b.sp.ExternalPolicyLocal || len(b.d.Local) > 0)
}

// noEndpoints is where traffic with nowhere to go ends: rejected when the port has no endpoint at
// all, dropped when only the traffic policy excludes this node's (absent) endpoints.
func (b *svcBuilder) noEndpoints(nodePort bool) string {
	switch {
	case nodePort && b.d.HasAny:
		return SetNodePortNoEndpointDrop
	case nodePort:
		return SetNodePortNoEndpointReject
	case b.d.HasAny:
		return SetNoEndpointDrop
	}
	return SetNoEndpointReject
}

func (b *svcBuilder) externals() []netip.Addr {
	ext := append(slices.Clone(b.sp.ExternalIPs), b.sp.LoadBalancerVIPs...)
	slices.SortFunc(ext, netip.Addr.Compare)
	return slices.Compact(ext)
}

// common: the ClusterIP, hairpin entries, no-endpoint entries and the firewall.
func (b *svcBuilder) common(node model.Node) {
	sp, d := b.sp, b.d
	b.elem(SetClusterIPs, ElementKey{}.Addr(sp.ClusterIP))
	if !b.hasInternal() {
		b.elem(b.noEndpoints(false), b.tuple(sp.ClusterIP))
	}
	if !b.hasExternal() {
		for _, ip := range b.externals() {
			b.elem(b.noEndpoints(false), b.tuple(ip))
		}
		if sp.NodePort != 0 {
			b.elem(b.noEndpoints(true), b.nodePort())
		}
	}
	// Hairpin entries for this node's endpoints (and those of unknown node), each address once.
	var ips []netip.Addr
	hairpin := func(eps []model.Endpoint) {
		for _, e := range eps {
			if e.NodeName == node.Name || e.NodeName == "" {
				ips = append(ips, e.IP)
			}
		}
	}
	if b.useCluster() {
		hairpin(d.Cluster)
	}
	if b.useLocal() {
		hairpin(d.Local)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	for _, ip := range slices.Compact(ips) {
		b.elem(SetHairpin, ElementKey{}.Addr(ip).Addr(ip))
	}

	// loadBalancerSourceRanges: traffic to the load-balancer IPs from elsewhere is dropped before DNAT.
	if len(sp.LoadBalancerVIPs) > 0 && len(sp.SourceRanges) > 0 {
		c := &Chain{Name: b.chainNames().Firewall}
		fromNode := false
		for _, r := range sp.SourceRanges {
			c.Rules = append(c.Rules, R(IPMatch{Field: IPSaddr, Prefix: r}, Verdict{Kind: Return}))
			for _, a := range b.o.NodePortAddresses {
				fromNode = fromNode || r.Contains(a)
			}
		}
		if fromNode {
			// The node reaching its own VIP loops back with the VIP as source.
			for _, ip := range sp.LoadBalancerVIPs {
				c.Rules = append(c.Rules, R(IPMatch{Field: IPSaddr, Prefix: host(ip)}, Verdict{Kind: Return}))
			}
		}
		c.Rules = append(c.Rules, R(Verdict{Kind: Drop}))
		b.out.Chains = append(b.out.Chains, c)
		for _, ip := range sp.LoadBalancerVIPs {
			b.verdictElem(MapFirewallIPs, b.tuple(ip), "goto "+b.chainNames().Firewall)
		}
	}
}

// Reachable is every endpoint this node may send the port's traffic to.
func (r *ServiceRules) Reachable() []netip.AddrPort {
	b := &svcBuilder{sp: r.Port, d: r.Decision}
	var out []netip.AddrPort
	for _, e := range b.reachable() {
		out = append(out, e.AddrPort())
	}
	return out
}

// reachable is every endpoint this node may send the port's traffic to, sorted.
func (b *svcBuilder) reachable() []model.Endpoint {
	var r []model.Endpoint
	if b.useCluster() {
		r = append(r, b.d.Cluster...)
	}
	if b.useLocal() {
		r = append(r, b.d.Local...)
	}
	slices.SortFunc(r, model.Endpoint.Compare)
	return slices.CompactFunc(r, func(a, c model.Endpoint) bool { return a.Compare(c) == 0 })
}

// elementsOnly: policy set membership and endpoint map entries.
func (b *svcBuilder) elementsOnly() {
	sp, d := b.sp, b.d
	// entries writes the endpoints of one address (or NodePort) into the map of their count.
	entries := func(nodePort, local bool, key ElementKey, eps []model.Endpoint) {
		if len(eps) == 0 {
			return
		}
		p := Picker{NodePort: nodePort, Local: local, Proto: sp.Name.Protocol, N: len(eps)}
		b.out.Pickers = append(b.out.Pickers, p)
		b.elem(p.SizeSet(), key)
		slots := AssignSlots(b.prev.slots(local, key), eps)
		b.out.Slots = append(b.out.Slots, Slots{Local: local, Key: key, Endpoints: slots})
		m := p.Map()
		for i, ap := range slots {
			b.out.Elements = append(b.out.Elements, Element{Set: m, Key: key.Slot(i), Value: EndpointValue(ap)})
		}
	}
	cip := b.tuple(sp.ClusterIP)
	if b.hasInternal() {
		if sp.InternalPolicyLocal {
			b.elem(string(InternalLocal), cip)
			entries(false, true, cip, d.Local)
		} else {
			b.elem(string(InternalCluster), cip)
			entries(false, false, cip, d.Cluster)
		}
	}
	if !sp.ExternallyAccessible() || !d.HasAny {
		return
	}
	ext, np := ExternalCluster, NodePortCluster
	if sp.ExternalPolicyLocal {
		ext, np = ExternalLocal, NodePortLocal
	}
	for _, ip := range b.externals() {
		k := b.tuple(ip)
		b.elem(string(ext), k)
		entries(false, false, k, d.Cluster)
		if sp.ExternalPolicyLocal {
			entries(false, true, k, d.Local)
		}
	}
	if sp.NodePort != 0 {
		k := b.nodePort()
		b.elem(string(np), k)
		entries(true, false, k, d.Cluster)
		if sp.ExternalPolicyLocal {
			entries(true, true, k, d.Local)
		}
	}
}

// perServiceChains: kube-proxy's shape, for ClientIP affinity: a chain per policy with a rule per
// endpoint, reached through the verdict maps.
func (b *svcBuilder) perServiceChains() {
	sp, d, names, o := b.sp, b.d, b.chainNames(), b.o
	internalChain := names.Cluster
	if sp.InternalPolicyLocal {
		internalChain = names.Local
	}
	for _, e := range b.reachable() {
		b.out.Sets = append(b.out.Sets, &Set{Name: names.AffinitySet(e.AddrPort()), Key: []DataType{TypeIPv4}, Timeout: sp.AffinityTimeout})
	}
	// The internal chain starts with the masquerade rule for ClusterIP traffic from outside the pod network.
	policyChain := func(name string, eps []model.Endpoint) {
		c := &Chain{Name: name}
		if name == internalChain {
			r := R(IPMatch{Field: IPDaddr, Prefix: host(sp.ClusterIP)})
			if o.ClusterCIDR.IsValid() {
				r.Terms = append(r.Terms, IPMatch{Field: IPSaddr, Neg: true, Prefix: o.ClusterCIDR.Masked()})
			}
			r.Terms = append(r.Terms, jump(ChainMarkForMasquerade))
			c.Rules = append(c.Rules, r)
		}
		c.Rules = append(c.Rules, endpointRules(sp, names, eps)...)
		b.out.Chains = append(b.out.Chains, c)
	}
	if b.useCluster() {
		policyChain(names.Cluster, d.Cluster)
	}
	if b.useLocal() {
		policyChain(names.Local, d.Local)
	}
	if b.hasInternal() {
		b.verdictElem(MapServiceIPs, b.tuple(sp.ClusterIP), "goto "+internalChain)
	}
	if !sp.ExternallyAccessible() || !d.HasAny {
		return
	}
	c := &Chain{Name: names.External}
	if !sp.ExternalPolicyLocal {
		c.Rules = append(c.Rules, R(jump(ChainMarkForMasquerade)), R(gotoC(names.Cluster)))
	} else {
		if o.ClusterCIDR.IsValid() {
			c.Rules = append(c.Rules, withComment(R(IPMatch{Field: IPSaddr, Prefix: o.ClusterCIDR.Masked()}, gotoC(names.Cluster)), "short-circuit pod traffic"))
		}
		c.Rules = append(c.Rules,
			withComment(R(FibLocal{Saddr: true}, jump(ChainMarkForMasquerade)), "masquerade node traffic"),
			withComment(R(FibLocal{Saddr: true}, gotoC(names.Cluster)), "short-circuit node traffic"))
		if b.useLocal() {
			c.Rules = append(c.Rules, R(gotoC(names.Local)))
		}
	}
	b.out.Chains = append(b.out.Chains, c)
	for _, ip := range b.externals() {
		b.verdictElem(MapServiceIPs, b.tuple(ip), "goto "+names.External)
	}
	if sp.NodePort != 0 {
		b.verdictElem(MapServiceNodePorts, b.nodePort(), "goto "+names.External)
	}
}

// endpointRules picks one of eps at random for each new connection: rule i (of n) matches with
// probability 1/(n-i), which makes every endpoint equally likely, and the last rule always matches.
// A client already in an endpoint's affinity set goes back to it first.
func endpointRules(sp *model.ServicePort, names ChainNames, eps []model.Endpoint) []Rule {
	proto := L4ProtoMatch{Proto: sp.Name.Protocol}
	var rules []Rule
	for _, e := range eps {
		set := names.AffinitySet(e.AddrPort())
		rules = append(rules, R(SetMatch{Key: Key{IPSaddr}, Set: set}, proto, Update{Set: set}, Dnat{To: e.AddrPort()}))
	}
	for i, e := range eps {
		r := R(proto)
		if left := len(eps) - i; left > 1 {
			r.Terms = append(r.Terms, Numgen{Mod: uint32(left)})
		}
		r.Terms = append(r.Terms, Update{Set: names.AffinitySet(e.AddrPort())}, Dnat{To: e.AddrPort()})
		rules = append(rules, r)
	}
	return rules
}

// AssignSlots places endpoints in slots 0..len(eps)-1: those already in prev keep their slot when
// it is still in range; free slots are filled first with new endpoints (in order), then with the
// endpoints from slots past the end; new endpoints left over go at the end.
func AssignSlots(prev []netip.AddrPort, eps []model.Endpoint) []netip.AddrPort {
	n := len(eps)
	same := len(prev) == n
	for i := 0; same && i < n; i++ {
		same = prev[i] == eps[i].AddrPort()
	}
	if same || len(prev) == 0 {
		out := make([]netip.AddrPort, n)
		for i, e := range eps {
			out[i] = e.AddrPort()
		}
		return out
	}
	want := make(map[netip.AddrPort]bool, n)
	for _, e := range eps {
		want[e.AddrPort()] = true
	}
	out := make([]netip.AddrPort, n)
	had := map[netip.AddrPort]bool{}
	var holes []int
	var movers []netip.AddrPort
	for i, ap := range prev {
		switch {
		case !want[ap] || had[ap]:
			if i < n {
				holes = append(holes, i)
			}
		case i < n:
			out[i] = ap
			had[ap] = true
		default:
			movers = append(movers, ap)
			had[ap] = true
		}
	}
	for i := len(prev); i < n; i++ {
		holes = append(holes, i)
	}
	var fresh []netip.AddrPort
	for _, e := range eps {
		if !had[e.AddrPort()] {
			fresh = append(fresh, e.AddrPort())
		}
	}
	fill := append(fresh, movers...)
	for i, h := range holes {
		out[h] = fill[i]
	}
	return out
}

// Build computes the whole table from the proxy's state: the base objects, every Service port's,
// and the pickers they use.
func Build(s *model.State, o Options) (*Objects, []*ServiceRules, *Objects) {
	var svcs []*ServiceRules
	var pickers []Picker
	for _, n := range s.SortedNames() {
		r := BuildService(s.Services[n], s.Endpoints[n], s.Node, o, nil)
		svcs = append(svcs, r)
		pickers = append(pickers, r.Pickers...)
	}
	return Base(o), svcs, Pickers(pickers, o.staticSizes())
}
