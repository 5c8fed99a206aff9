// Package agent is svcnet's node agent, the kubelet's role: it registers its Node and keeps its
// heartbeat, routes pod traffic to the other nodes (host-gateway style), and runs the pods bound
// to its node, each in a network namespace of its own wired to the node's pod bridge, as processes
// with probes, restarts, graceful termination and status written back. It runs inside the node's
// network namespace: on a real host that is the host's; in `svcnet up` it is a namespace per node.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/svcnet/svcnet/internal/agent/ipam"
	"github.com/svcnet/svcnet/internal/lbpool"
	"github.com/svcnet/svcnet/internal/netns"
	"github.com/svcnet/svcnet/internal/proxy"
)

// Config of a node agent.
type Config struct {
	NodeName string
	// NodeIP is the node's InternalIP; its interface's subnet is where other nodes' routes point.
	NodeIP  netip.Addr
	PodCIDR netip.Prefix
	// ClusterDNS is the nameserver in pods' resolv.conf (the kube-dns Service's ClusterIP).
	ClusterDNS    []string
	ClusterDomain string
	// StateDir keeps the sandboxes' records and the containers' logs.
	StateDir string
	// PodNetnsPrefix starts the name of every pod namespace, e.g. "svcnet-pod-".
	PodNetnsPrefix string
	// Labels are added to the Node's labels at registration.
	Labels map[string]string
	// LeaseDuration of the node's heartbeat Lease; it is renewed every quarter of it.
	LeaseDuration time.Duration
	// Self is the svcnet binary, re-executed as each container's pod-init.
	Self string
	// HostResolv is the node's resolv.conf text, for dnsPolicy Default.
	HostResolv string
	// DNS runs the cluster DNS server on this node.
	DNS bool
	// Proxy runs the Service proxy (nftables) on this node, with ClusterCIDR and ServiceCIDR.
	Proxy       bool
	ClusterCIDR netip.Prefix
	ServiceCIDR netip.Prefix
	// ProxyDataplane is the proxy's dataplane: "nftables" (default; falls back to userspace where
	// nf_tables is unavailable) or "userspace".
	ProxyDataplane string
	// DNSUpstreams are the resolvers for names outside the cluster (default: the node's resolv.conf).
	DNSUpstreams []string
	// LoadBalancerPool is the pool of LoadBalancer addresses this node announces when elected
	// (empty: none; on real hosts with a cloud load balancer, leave it so).
	LoadBalancerPool lbpool.Pool
	// HostNetns, when set, is the network namespace whose network reaches DNSUpstreams (a local
	// cluster's nodes are namespaces without a route to the host's resolvers).
	HostNetns string
}

// Default fills unset fields.
func (c *Config) Default() {
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	if len(c.ClusterDNS) == 0 {
		c.ClusterDNS = []string{"10.96.0.10"}
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = 40 * time.Second
	}
	if c.PodNetnsPrefix == "" {
		c.PodNetnsPrefix = "svcnet-pod-"
	}
	if c.Self == "" {
		c.Self, _ = os.Executable()
	}
	if c.HostResolv == "" {
		b, _ := os.ReadFile("/etc/resolv.conf")
		c.HostResolv = string(b)
	}
}

// Validate says what is wrong and how to fix it.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("--node-name is required"))
	}
	if !c.NodeIP.IsValid() {
		errs = append(errs, errors.New("--node-ip is required: the node's address on the node network"))
	}
	if !c.PodCIDR.IsValid() || !c.PodCIDR.Addr().Is4() {
		errs = append(errs, errors.New("--pod-cidr is required: an IPv4 prefix such as 10.244.1.0/24"))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("--state-dir is required"))
	}
	if !strings.Contains(c.PodNetnsPrefix, "svcnet") {
		errs = append(errs, fmt.Errorf("--pod-netns-prefix %q must contain \"svcnet\"", c.PodNetnsPrefix))
	}
	return errors.Join(errs...)
}

// PodBridge is the node's bridge for its pods.
const PodBridge = "svcnet-pods"

// routeProtocol marks the routes the agent owns, so it never touches another route.
const routeProtocol = netlink.RouteProtocol(73)

// Agent is a running node agent.
type Agent struct {
	cfg      Config
	client   kubernetes.Interface
	pool     *ipam.Pool
	bridge   netlink.Link
	recorder record.EventRecorder
	services corelisters.ServiceLister
	pods     corelisters.PodLister

	mu      sync.Mutex
	workers map[types.UID]*podWorker
	// adopted are sandboxes found at start, handed to their pods' workers.
	adopted map[types.UID]*sandbox
	started time.Time
}

// Run registers the node and runs its pods until ctx ends. Pods keep running when the agent stops:
// a restarted agent adopts them, as a restarted kubelet does.
func Run(ctx context.Context, client kubernetes.Interface, cfg Config) error {
	cfg.Default()
	if err := cfg.Validate(); err != nil {
		return err
	}
	pool, err := ipam.New(cfg.PodCIDR)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "pods"), 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	a := &Agent{cfg: cfg, client: client, pool: pool, workers: map[types.UID]*podWorker{}, adopted: map[types.UID]*sandbox{}, started: time.Now()}
	if err := a.setupNode(); err != nil {
		return err
	}
	broadcast := record.NewBroadcaster()
	broadcast.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer broadcast.Shutdown()
	a.recorder = broadcast.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: cfg.NodeName})

	if err := a.registerNode(ctx); err != nil {
		return err
	}
	go a.heartbeat(ctx)

	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(stripManagedFields))
	podFactory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(stripManagedFields),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", cfg.NodeName).String()
		}))
	podInf := podFactory.Core().V1().Pods()
	svcInf := factory.Core().V1().Services()
	nodeInf := factory.Core().V1().Nodes()
	a.pods, a.services = podInf.Lister(), svcInf.Lister()
	routesChanged := make(chan struct{}, 1)
	poke := func() {
		select {
		case routesChanged <- struct{}{}:
		default:
		}
	}
	if _, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { poke() }, UpdateFunc: func(_, _ any) { poke() }, DeleteFunc: func(any) { poke() },
	}); err != nil {
		return err
	}
	var lb *announcer
	var lbFactory informers.SharedInformerFactory
	if !cfg.LoadBalancerPool.Empty() {
		lbFactory = informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(slimSlice))
		if lb, err = newAnnouncer(a, svcInf, nodeInf, lbFactory); err != nil {
			return err
		}
		lbFactory.Start(ctx.Done())
	}
	factory.Start(ctx.Done())
	podFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInf.Informer().HasSynced, svcInf.Informer().HasSynced, nodeInf.Informer().HasSynced) {
		return ctx.Err()
	}
	if err := a.adoptSandboxes(); err != nil {
		return err
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { a.podEvent(o, false) },
		UpdateFunc: func(_, o any) { a.podEvent(o, false) },
		DeleteFunc: func(o any) { a.podEvent(o, true) },
	}); err != nil {
		return err
	}
	if cfg.Proxy {
		go a.runProxy(ctx)
	}
	if cfg.DNS {
		go a.runDNS(ctx)
	}
	if lb != nil {
		go lb.run(ctx)
	}
	slog.Info("node agent running", "node", cfg.NodeName, "nodeIP", cfg.NodeIP, "podCIDR", cfg.PodCIDR)
	for {
		if err := a.syncRoutes(nodeInf.Lister()); err != nil {
			slog.Warn("route sync failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-routesChanged:
		case <-time.After(30 * time.Second):
		}
	}
}

func stripManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// setupNode prepares the node's namespace: forwarding, the pod bridge with the gateway address.
func (a *Agent) setupNode() error {
	for k, v := range map[string]string{
		"net.ipv4.ip_forward":              "1",
		"net.ipv4.conf.all.rp_filter":      "0",
		"net.ipv4.conf.default.rp_filter":  "0",
		"net.ipv4.conf.all.route_localnet": "1",
	} {
		if err := netns.Sysctl(k, v); err != nil {
			return err
		}
	}
	br, err := netlink.LinkByName(PodBridge)
	if err != nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = PodBridge
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
			return fmt.Errorf("create pod bridge %s: %w", PodBridge, err)
		}
		if br, err = netlink.LinkByName(PodBridge); err != nil {
			return err
		}
	}
	gw := a.pool.Gateway()
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(a.cfg.PodCIDR.Bits(), 32)}}
	if err := netlink.AddrReplace(br, addr); err != nil {
		return fmt.Errorf("address %s on %s: %w", gw, PodBridge, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return err
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}
	a.bridge = br
	return nil
}

// registerNode creates the Node, or refreshes its status when it exists (a restarted agent).
func (a *Agent) registerNode(ctx context.Context) error {
	nodes := a.client.CoreV1().Nodes()
	labels := map[string]string{
		corev1.LabelHostname:   a.cfg.NodeName,
		corev1.LabelOSStable:   "linux",
		corev1.LabelArchStable: runtime.GOARCH,
	}
	for k, v := range a.cfg.Labels {
		labels[k] = v
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Labels: labels},
		Spec:       corev1.NodeSpec{PodCIDR: a.cfg.PodCIDR.String(), PodCIDRs: []string{a.cfg.PodCIDR.String()}},
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := nodes.Create(ctx, node, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("register node %s: %w", a.cfg.NodeName, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return a.postStatus(ctx)
}

// postStatus writes the node's addresses, capacity, info and a fresh Ready heartbeat.
func (a *Agent) postStatus(ctx context.Context) error {
	nodes := a.client.CoreV1().Nodes()
	for attempt := 0; ; attempt++ {
		cur, err := nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get node %s: %w", a.cfg.NodeName, err)
		}
		cur.Status = a.nodeStatus(cur.Status, time.Now())
		_, err = nodes.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		if err == nil || !apierrors.IsConflict(err) || attempt == 5 {
			if err != nil {
				return fmt.Errorf("update node %s status: %w", a.cfg.NodeName, err)
			}
			return nil
		}
	}
}

func (a *Agent) nodeStatus(old corev1.NodeStatus, now time.Time) corev1.NodeStatus {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	kernel := unix.ByteSliceToString(uts.Release[:])
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(memTotal(), resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(110, resource.DecimalSI),
	}
	t := metav1.NewTime(now)
	cond := func(typ corev1.NodeConditionType, status corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		c := corev1.NodeCondition{Type: typ, Status: status, Reason: reason, Message: msg, LastHeartbeatTime: t, LastTransitionTime: t}
		for _, o := range old.Conditions {
			if o.Type == typ && o.Status == status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		return c
	}
	return corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Phase:       "",
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
			cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: a.cfg.NodeIP.String()},
			{Type: corev1.NodeHostName, Address: a.cfg.NodeName},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID:               a.cfg.NodeName,
			KernelVersion:           kernel,
			OSImage:                 "svcnet",
			ContainerRuntimeVersion: "svcnet://processes",
			KubeletVersion:          "v1.35.10",
			KubeProxyVersion:        "",
			OperatingSystem:         "linux",
			Architecture:            runtime.GOARCH,
		},
	}
}

func memTotal() int64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}

// heartbeat renews the node's Lease every quarter of its duration and re-posts the Ready
// condition every minute, as the kubelet's node lease and status updates do.
func (a *Agent) heartbeat(ctx context.Context) {
	leases := a.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	renew := a.cfg.LeaseDuration / 4
	lastStatus := time.Now()
	for {
		now := metav1.NewMicroTime(time.Now())
		l, err := leases.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = leases.Create(ctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Namespace: corev1.NamespaceNodeLease,
					OwnerReferences: a.nodeOwner(ctx)},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(a.cfg.NodeName),
					LeaseDurationSeconds: ptr.To(int32(a.cfg.LeaseDuration / time.Second)), RenewTime: &now},
			}, metav1.CreateOptions{})
		case err == nil:
			l.Spec.RenewTime = &now
			l.Spec.HolderIdentity = ptr.To(a.cfg.NodeName)
			l.Spec.LeaseDurationSeconds = ptr.To(int32(a.cfg.LeaseDuration / time.Second))
			_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		}
		if err != nil && ctx.Err() == nil {
			slog.Warn("node lease renewal failed", "node", a.cfg.NodeName, "err", err)
		}
		if time.Since(lastStatus) > time.Minute || a.nodeNotReady() {
			if err := a.postStatus(ctx); err != nil && ctx.Err() == nil {
				slog.Warn("node status update failed", "node", a.cfg.NodeName, "err", err)
			} else {
				lastStatus = time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(renew):
		}
	}
}

// nodeNotReady reports whether the stored Node says anything but Ready (the node lifecycle
// controller marks it Unknown when heartbeats stop): then the status is re-posted at once.
func (a *Agent) nodeNotReady() bool {
	n, err := a.client.CoreV1().Nodes().Get(context.Background(), a.cfg.NodeName, metav1.GetOptions{ResourceVersion: "0"})
	if err != nil {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status != corev1.ConditionTrue
		}
	}
	return true
}

func (a *Agent) nodeOwner(ctx context.Context) []metav1.OwnerReference {
	n, err := a.client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID}}
}

// desiredRoutes is the host-gateway plan: every other node's pod CIDR via that node's address, for
// nodes on this node's own subnet (others would need a gateway the agent does not know).
func desiredRoutes(self string, local netip.Prefix, nodes []*corev1.Node) map[netip.Prefix]netip.Addr {
	out := map[netip.Prefix]netip.Addr{}
	for _, n := range nodes {
		if n.Name == self {
			continue
		}
		var ip netip.Addr
		for _, ad := range n.Status.Addresses {
			if ad.Type == corev1.NodeInternalIP {
				if a, err := netip.ParseAddr(ad.Address); err == nil && a.Is4() {
					ip = a
					break
				}
			}
		}
		if !ip.IsValid() || !local.Contains(ip) {
			continue
		}
		cidrs := n.Spec.PodCIDRs
		if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
			cidrs = []string{n.Spec.PodCIDR}
		}
		for _, c := range cidrs {
			if p, err := netip.ParsePrefix(c); err == nil && p.Addr().Is4() {
				out[p.Masked()] = ip
			}
		}
	}
	return out
}

// syncRoutes makes the kernel's routes match desiredRoutes, touching only routes it owns.
func (a *Agent) syncRoutes(lister corelisters.NodeLister) error {
	nodes, err := lister.List(labels.Everything())
	if err != nil {
		return err
	}
	local, link, err := a.nodeSubnet()
	if err != nil {
		return err
	}
	want := desiredRoutes(a.cfg.NodeName, local, nodes)
	have, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: routeProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	var errs []error
	for _, r := range have {
		dst, ok := netipPrefix(r.Dst)
		if gw, keep := want[dst]; ok && keep && r.Gw != nil && gw == netip.AddrFrom4([4]byte(r.Gw.To4())) && r.LinkIndex == link.Attrs().Index {
			delete(want, dst)
			continue
		}
		if err := netlink.RouteDel(&r); err != nil {
			errs = append(errs, fmt.Errorf("delete route %s: %w", r.Dst, err))
		}
	}
	for dst, gw := range want {
		r := &netlink.Route{
			LinkIndex: link.Attrs().Index, Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), 32)},
			Gw: gw.AsSlice(), Protocol: routeProtocol,
		}
		if err := netlink.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("route %s via %s: %w", dst, gw, err))
		}
	}
	return errors.Join(errs...)
}

func netipPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a, bits).Masked(), true
}

// nodeSubnet finds the interface holding the node's address, and its subnet.
func (a *Agent) nodeSubnet() (netip.Prefix, netlink.Link, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return netip.Prefix{}, nil, err
	}
	for _, ad := range addrs {
		ip, ok := netip.AddrFromSlice(ad.IP.To4())
		if !ok || ip != a.cfg.NodeIP {
			continue
		}
		link, err := netlink.LinkByIndex(ad.LinkIndex)
		if err != nil {
			return netip.Prefix{}, nil, err
		}
		bits, _ := ad.Mask.Size()
		return netip.PrefixFrom(ip, bits).Masked(), link, nil
	}
	return netip.Prefix{}, nil, fmt.Errorf("no interface has the node address %s", a.cfg.NodeIP)
}

// runProxy runs the Service proxy in the node's namespace until ctx ends, restarting it after a
// failure (it adopts its own table, so a restart keeps established connections).
func (a *Agent) runProxy(ctx context.Context) {
	cfg := proxy.Config{NodeName: a.cfg.NodeName, NodeIPs: []netip.Addr{a.cfg.NodeIP},
		ClusterCIDR: a.cfg.ClusterCIDR, ServiceCIDR: a.cfg.ServiceCIDR, HealthzBindAddress: "0.0.0.0:10256",
		Dataplane: a.cfg.ProxyDataplane}
	for ctx.Err() == nil {
		if err := proxy.Run(ctx, a.client, cfg); err != nil && ctx.Err() == nil {
			slog.Error("service proxy stopped; restarting", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
