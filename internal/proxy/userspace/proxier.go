package userspace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/svcnet/svcnet/internal/proxy/healthcheck"
	"github.com/svcnet/svcnet/internal/proxy/model"
)

// resyncPeriod is how often the proxy re-reads the node's addresses and retries what failed, even
// without changes.
const resyncPeriod = time.Minute

// retryPeriod is how soon a failed listener or address is retried.
const retryPeriod = 5 * time.Second

// errStillFailing: only listeners already reported keep failing (retried quietly).
var errStillFailing = errors.New("still failing to listen")

var localhost = netip.MustParseAddr("127.0.0.1")

// Run runs the userspace proxy until ctx ends, in the configured network namespace. Nothing is
// served before the first complete lists of Services and EndpointSlices have arrived. When it
// returns, every listener is closed and every Service address it added is removed.
func Run(ctx context.Context, client kubernetes.Interface, cfg Config) error {
	cfg.Default()
	if err := cfg.Validate(); err != nil {
		return err
	}
	p, err := newProxier(cfg)
	if err != nil {
		return err
	}
	defer p.close()
	return p.run(ctx, client)
}

// proxier holds the proxy's view of the API and the sockets and addresses that serve it.
type proxier struct {
	cfg    Config
	log    *slog.Logger
	nl     *netlink.Handle
	lo     netlink.Link
	health *healthcheck.Proxy
	hc     *healthcheck.Services
	kick   chan struct{}

	mu        sync.Mutex
	services  map[types.NamespacedName][]*model.ServicePort
	slices    map[types.NamespacedName]map[string]*model.Slice
	endpoints map[types.NamespacedName]map[model.ServicePortName][]model.Endpoint
	node      model.Node
	synced    bool

	// owned by the sync loop
	f         *forwarder
	listeners map[ListenKey]*listener
	affinity  map[model.ServicePortName]*Affinity
	failed    map[string]bool                     // listeners that failed, logged once each
	notes     map[string]bool                     // conflicts and skipped listeners, logged once each
	local     atomic.Pointer[map[netip.Addr]bool] // the namespace's own addresses (not the proxy's)
}

func newProxier(cfg Config) (*proxier, error) {
	var nl *netlink.Handle
	var err error
	if cfg.Netns > 0 {
		nl, err = netlink.NewHandleAt(cfg.Netns)
	} else {
		nl, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("userspace proxy: netlink: %w", err)
	}
	lo, err := nl.LinkByName("lo")
	if err != nil {
		nl.Close()
		return nil, fmt.Errorf("userspace proxy: loopback interface: %w", err)
	}
	p := &proxier{
		cfg: cfg, log: cfg.Logger, nl: nl, lo: lo, health: healthcheck.NewProxy(2 * time.Minute),
		kick:      make(chan struct{}, 1),
		services:  map[types.NamespacedName][]*model.ServicePort{},
		slices:    map[types.NamespacedName]map[string]*model.Slice{},
		endpoints: map[types.NamespacedName]map[model.ServicePortName][]model.Endpoint{},
		node:      model.Node{Name: cfg.NodeName},
		listeners: map[ListenKey]*listener{},
		affinity:  map[model.ServicePortName]*Affinity{},
		failed:    map[string]bool{},
		notes:     map[string]bool{},
	}
	p.local.Store(&map[netip.Addr]bool{})
	p.hc = healthcheck.NewServices(cfg.NodeIPs, p.listenTCP, p.health.Healthy)
	return p, nil
}

func (p *proxier) close() {
	p.hc.Close()
	p.nl.Close()
}

// inNS runs fn with the calling goroutine's thread in the configured namespace: sockets opened by
// fn live there.
func (p *proxier) inNS(fn func() error) error {
	if p.cfg.Netns <= 0 {
		return fn()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	if err := netns.Set(p.cfg.Netns); err != nil {
		return fmt.Errorf("enter network namespace: %w", err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic(fmt.Sprintf("cannot return to the original network namespace: %v", err))
		}
	}()
	return fn()
}

// freebind lets a listener bind a Service address that is not (yet) local.
func freebind(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_IP, syscall.IP_FREEBIND, 1) })
	return errors.Join(err, serr)
}

func (p *proxier) listenTCP(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := p.inNS(func() error {
		var err error
		l, err = (&net.ListenConfig{Control: freebind}).Listen(context.Background(), network, addr)
		return err
	})
	return l, err
}

func (p *proxier) listenUDP(addr string) (*net.UDPConn, error) {
	var c net.PacketConn
	err := p.inNS(func() error {
		var err error
		c, err = (&net.ListenConfig{Control: freebind}).ListenPacket(context.Background(), "udp4", addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}

func (p *proxier) dialTCP(ctx context.Context, ep netip.AddrPort) (*net.TCPConn, error) {
	var c net.Conn
	err := p.inNS(func() error {
		var err error
		c, err = (&net.Dialer{Timeout: p.cfg.DialTimeout}).DialContext(ctx, "tcp4", ep.String())
		return err
	})
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

func (p *proxier) dialUDP(ep netip.AddrPort) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := p.inNS(func() error {
		var err error
		c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(ep))
		return err
	})
	return c, err
}

// inside reports whether a client is a pod (in the cluster CIDR) or the node itself.
func (p *proxier) inside(a netip.Addr) bool {
	return a.IsLoopback() || (p.cfg.ClusterCIDR.IsValid() && p.cfg.ClusterCIDR.Contains(a)) || (*p.local.Load())[a]
}

func (p *proxier) run(ctx context.Context, client kubernetes.Interface) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.f = &forwarder{ctx: ctx, log: p.log, picker: defaultPicker(), inside: p.inside, dialTCP: p.dialTCP, dialUDP: p.dialUDP,
		udpIdle: p.cfg.UDPIdleTimeout, conns: map[*net.TCPConn]struct{}{}}

	svcFactory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = "!" + model.ServiceProxyNameLabel
	}))
	sliceFactory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = "!" + model.HeadlessLabel
	}))
	nodeFactory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", p.cfg.NodeName).String()
	}))
	svcReg, err := svcFactory.Core().V1().Services().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { p.onService(o, false) },
		UpdateFunc: func(_, o any) { p.onService(o, false) },
		DeleteFunc: func(o any) { p.onService(o, true) },
	})
	if err != nil {
		return err
	}
	sliceReg, err := sliceFactory.Discovery().V1().EndpointSlices().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { p.onSlice(nil, o) },
		UpdateFunc: func(old, o any) { p.onSlice(old, o) },
		DeleteFunc: func(o any) { p.onSlice(o, nil) },
	})
	if err != nil {
		return err
	}
	nodeReg, err := nodeFactory.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { p.onNode(o, false) },
		UpdateFunc: func(_, o any) { p.onNode(o, false) },
		DeleteFunc: func(o any) { p.onNode(o, true) },
	})
	if err != nil {
		return err
	}
	svcFactory.Start(ctx.Done())
	sliceFactory.Start(ctx.Done())
	nodeFactory.Start(ctx.Done())
	defer svcFactory.Shutdown()
	defer sliceFactory.Shutdown()
	defer nodeFactory.Shutdown()

	if p.cfg.HealthzBindAddress != "" {
		go func() {
			if err := p.health.Serve(ctx, p.cfg.HealthzBindAddress, p.listenTCP); err != nil {
				p.log.Error("proxy healthz server stopped", "err", err)
			}
		}()
	}
	if !cache.WaitForCacheSync(ctx.Done(), svcReg.HasSynced, sliceReg.HasSynced, nodeReg.HasSynced) {
		return ctx.Err()
	}
	p.log.Info("proxy informers synced; serving Services from userspace", "dataplane", "userspace")
	p.mu.Lock()
	p.synced = true
	p.mu.Unlock()
	p.queue()
	defer p.shutdown()
	p.loop(ctx)
	return nil
}

func (p *proxier) queue() {
	p.health.Queued()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *proxier) onService(o any, deleted bool) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o, deleted = t.Obj, true
	}
	svc, ok := o.(*corev1.Service)
	if !ok {
		return
	}
	nn := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	var ports []*model.ServicePort
	if !deleted {
		ports = model.ServicePorts(svc)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(ports) == 0 {
		delete(p.services, nn)
	} else {
		p.services[nn] = ports
	}
	p.queue()
}

func (p *proxier) onSlice(old, cur any) {
	if t, ok := old.(cache.DeletedFinalStateUnknown); ok {
		old = t.Obj
	}
	o, _ := old.(*discoveryv1.EndpointSlice)
	c, _ := cur.(*discoveryv1.EndpointSlice)
	var oldS, curS *model.Slice
	if o != nil {
		oldS = model.FromEndpointSlice(o)
	}
	if c != nil {
		curS = model.FromEndpointSlice(c)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	touched := map[types.NamespacedName]bool{}
	if oldS != nil {
		delete(p.slices[oldS.Service], oldS.Name)
		touched[oldS.Service] = true
	}
	if curS != nil {
		if p.slices[curS.Service] == nil {
			p.slices[curS.Service] = map[string]*model.Slice{}
		}
		p.slices[curS.Service][curS.Name] = curS
		touched[curS.Service] = true
	}
	for nn := range touched {
		if len(p.slices[nn]) == 0 {
			delete(p.slices, nn)
			delete(p.endpoints, nn)
		} else {
			p.endpoints[nn] = model.MergeSlices(nn, slices.Collect(maps.Values(p.slices[nn])))
		}
	}
	p.queue()
}

func (p *proxier) onNode(o any, deleted bool) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o, deleted = t.Obj, true
	}
	n, ok := o.(*corev1.Node)
	if !ok || n.Name != p.cfg.NodeName {
		return
	}
	node := model.Node{Name: p.cfg.NodeName}
	if !deleted {
		node = model.FromNode(n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.node = node
	p.queue()
}

// snapshot is the state to serve, and the health check ports and local endpoint counts.
func (p *proxier) snapshot() (*model.State, map[types.NamespacedName]uint16, map[types.NamespacedName]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := &model.State{Services: map[model.ServicePortName]*model.ServicePort{}, Endpoints: map[model.ServicePortName][]model.Endpoint{}, Node: p.node}
	hcPorts := map[types.NamespacedName]uint16{}
	hcCounts := map[types.NamespacedName]int{}
	for nn, ports := range p.services {
		eps := p.endpoints[nn]
		for _, sp := range ports {
			st.Services[sp.Name] = sp
			if e := eps[sp.Name]; len(e) > 0 {
				st.Endpoints[sp.Name] = e
			}
			if sp.HealthCheckNodePort != 0 {
				hcPorts[nn] = sp.HealthCheckNodePort
			}
		}
		if _, ok := hcPorts[nn]; ok {
			local := map[netip.Addr]bool{}
			for _, e := range eps {
				for _, ep := range e {
					if ep.Ready && ep.NodeName == p.node.Name {
						local[ep.IP] = true
					}
				}
			}
			hcCounts[nn] = len(local)
		}
	}
	return st, hcPorts, hcCounts
}

func (p *proxier) loop(ctx context.Context) {
	var lastStart time.Time
	resync := time.NewTicker(resyncPeriod)
	defer resync.Stop()
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-resync.C:
		case <-retry:
		}
		if wait := p.cfg.MinSyncPeriod - time.Since(lastStart); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		lastStart = time.Now()
		retry = nil
		if err := p.sync(); err != nil {
			if !errors.Is(err, errStillFailing) {
				p.log.Warn("userspace proxy sync incomplete; retrying", "retryIn", retryPeriod, "err", err)
			}
			retry = time.After(retryPeriod)
		}
	}
}

// sync makes the listeners and addresses match the current state.
func (p *proxier) sync() error {
	start := time.Now()
	st, hcPorts, hcCounts := p.snapshot()
	var errs []error

	// The namespace's own addresses, and the Service addresses the proxy added earlier.
	addrs, err := p.nl.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	local, ours := map[netip.Addr]bool{}, map[netip.Addr]bool{}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if a.Label == AddressLabel && a.LinkIndex == p.lo.Attrs().Index {
			ours[ip] = true
		} else {
			local[ip] = true
		}
	}
	p.local.Store(&local)
	npAddrs := slices.Clone(p.cfg.NodeIPs)
	if len(npAddrs) == 0 {
		for a := range local {
			if !a.IsLoopback() {
				npAddrs = append(npAddrs, a)
			}
		}
	}
	if !p.cfg.DisableLocalhostNodePorts && !slices.Contains(npAddrs, localhost) {
		npAddrs = append(npAddrs, localhost)
	}
	slices.SortFunc(npAddrs, netip.Addr.Compare)
	plan := BuildPlan(st, PlanOptions{NodePortAddrs: npAddrs, Taken: local})
	notes := map[string]bool{}
	for _, c := range plan.Conflicts {
		if notes[c] = true; !p.notes[c] {
			p.log.Warn("two Service ports claim one address and port; the first by name is served", "conflict", c)
		}
	}
	for _, k := range plan.Skipped {
		if notes[k.String()] = true; !p.notes[k.String()] {
			p.log.Info("a ClusterIP is a local address of the node: left to the server listening there", "listener", k.String())
		}
	}
	p.notes = notes

	// Service addresses first, so listeners bind local addresses.
	for a := range plan.Addresses {
		if ours[a] || local[a] {
			continue
		}
		if err := p.nl.AddrReplace(p.lo, serviceAddr(a)); err != nil {
			errs = append(errs, fmt.Errorf("add service address %s to lo: %w", a, err))
		}
	}

	// Affinity tables, one per Service port with ClientIP affinity.
	aff := map[model.ServicePortName]*Affinity{}
	for _, r := range plan.Listeners {
		if r.AffinityTimeout == 0 || aff[r.Name] != nil {
			continue
		}
		if a := p.affinity[r.Name]; a != nil && a.timeout == r.AffinityTimeout {
			aff[r.Name] = a
		} else {
			aff[r.Name] = NewAffinity(r.AffinityTimeout)
		}
	}
	p.affinity = aff

	// Listeners: close those no longer wanted (or without endpoints: the kernel then refuses),
	// update the others, open new ones.
	opened, updated, closed := 0, 0, 0
	for k, l := range p.listeners {
		if r := plan.Listeners[k]; r == nil || r.Empty() {
			l.close()
			delete(p.listeners, k)
			closed++
		}
	}
	failed := map[string]bool{}
	var lerrs []error
	for _, k := range plan.SortedKeys() {
		r := plan.Listeners[k]
		if r.Empty() {
			continue
		}
		b := &binding{route: r, aff: aff[r.Name]}
		if l := p.listeners[k]; l != nil {
			if old := l.cur.Load(); !old.route.Equal(r) || old.aff != b.aff {
				l.update(b)
				updated++
				p.log.Debug("userspace route", "listener", k.String(), "servicePort", r.Name.String(), "endpoints", len(r.Endpoints), "local", len(r.Local))
			}
			continue
		}
		l, err := p.open(k, b)
		if err != nil {
			failed[k.String()] = true
			if !p.failed[k.String()] {
				lerrs = append(lerrs, err)
			}
			continue
		}
		p.listeners[k] = l
		opened++
		p.log.Debug("userspace route", "listener", k.String(), "servicePort", r.Name.String(), "endpoints", len(r.Endpoints), "local", len(r.Local))
	}

	// Addresses of Services that went.
	for a := range ours {
		if !plan.Addresses[a] {
			if err := p.nl.AddrDel(p.lo, serviceAddr(a)); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
				errs = append(errs, fmt.Errorf("remove service address %s from lo: %w", a, err))
			}
		}
	}

	// Health check node ports.
	if err := p.hc.SyncServices(hcPorts); err != nil {
		failed["healthCheckNodePorts"] = true
		if !p.failed["healthCheckNodePorts"] {
			lerrs = append(lerrs, err)
		}
	}
	p.hc.SyncEndpoints(hcCounts)

	if len(lerrs) > 0 {
		p.log.Warn("userspace proxy: cannot listen; retrying", "retryIn", retryPeriod, "err", errors.Join(lerrs...))
	}
	// Listeners that cannot be opened (an address and port taken by another program) do not make
	// the proxy unhealthy; they are retried.
	if len(errs) == 0 {
		p.health.Updated(start)
	}
	if len(failed) > 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%d listeners: %w", len(failed), errStillFailing))
	}
	p.failed = failed
	if opened+updated+closed > 0 {
		p.log.Debug("userspace proxy sync", "listeners", len(p.listeners), "opened", opened, "updated", updated, "closed", closed,
			"duration", time.Since(start))
	}
	return errors.Join(errs...)
}

func serviceAddr(a netip.Addr) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}, Label: AddressLabel}
}

func (p *proxier) open(k ListenKey, b *binding) (*listener, error) {
	switch k.Proto {
	case model.TCP:
		ln, err := p.listenTCP("tcp4", k.Addr.String())
		if err != nil {
			return nil, fmt.Errorf("listen on %s for %s: %w", k, b.route.Name, err)
		}
		return newListener(k, p.f, b, ln.(*net.TCPListener), nil), nil
	case model.UDP:
		c, err := p.listenUDP(k.Addr.String())
		if err != nil {
			return nil, fmt.Errorf("listen on %s for %s: %w", k, b.route.Name, err)
		}
		return newListener(k, p.f, b, nil, c), nil
	}
	return nil, fmt.Errorf("listen on %s: unsupported protocol", k)
}

// shutdown closes every listener and connection and removes the Service addresses.
func (p *proxier) shutdown() {
	for k, l := range p.listeners {
		l.close()
		delete(p.listeners, k)
	}
	p.f.shutdown()
	addrs, err := p.nl.AddrList(p.lo, netlink.FAMILY_V4)
	if err != nil {
		p.log.Warn("userspace proxy: cannot list addresses to remove", "err", err)
		return
	}
	for _, a := range addrs {
		if a.Label == AddressLabel {
			if err := p.nl.AddrDel(p.lo, &a); err != nil {
				p.log.Warn("userspace proxy: cannot remove a service address", "addr", a.IP.String(), "err", err)
			}
		}
	}
}
