package proxy

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/svcnet/svcnet/internal/proxy/conntrack"
	"github.com/svcnet/svcnet/internal/proxy/healthcheck"
	"github.com/svcnet/svcnet/internal/proxy/model"
	"github.com/svcnet/svcnet/internal/proxy/nft"
)

// conntrackCleaner deletes conntrack entries (conntrack.Cleaner; a fake in tests).
type conntrackCleaner interface {
	Delete(*conntrack.Filter) (uint, error)
}

// pending is a Service whose ports or endpoints changed since the last sync: its state then
// (previous) — the current state is in proxier.services and proxier.slices.
type pending struct {
	prevPorts     []*model.ServicePort
	prevEndpoints map[model.ServicePortName][]model.Endpoint
	triggers      []time.Time
}

// proxier holds the proxy's view of the API (updated by informer handlers) and syncs it.
type proxier struct {
	cfg     Config
	log     *slog.Logger
	syncer  *nft.Syncer
	ct      conntrackCleaner
	hc      *healthcheck.Services
	health  *healthcheck.Proxy
	metrics *metrics
	kick    chan struct{}
	now     func() time.Time

	mu sync.Mutex
	// current view, per Service
	services  map[types.NamespacedName][]*model.ServicePort
	slices    map[types.NamespacedName][]*model.Slice // a Service's slices (usually one)
	endpoints map[types.NamespacedName]map[model.ServicePortName][]model.Endpoint
	node      model.Node
	pending   map[types.NamespacedName]*pending
	// servicesSynced and slicesSynced: the informers' first lists have arrived. Nothing is
	// programmed before both.
	servicesSynced, slicesSynced bool
	// state is the flat view handed to the syncer, updated from pending Services at each sync.
	state *model.State
	// health check bookkeeping, per Service
	hcPorts  map[types.NamespacedName]uint16
	hcCounts map[types.NamespacedName]int
	lastOK   bool
}

func newProxier(cfg Config, backend nft.Backend, ct conntrackCleaner, hc *healthcheck.Services) *proxier {
	o := nft.Options{ClusterCIDR: cfg.ClusterCIDR, NodePortAddresses: cfg.NodeIPs, LocalhostNodePorts: !cfg.DisableLocalhostNodePorts}
	if cfg.ServiceCIDR.IsValid() {
		o.ServiceCIDRs = []netip.Prefix{cfg.ServiceCIDR}
	}
	p := &proxier{
		cfg: cfg, log: cfg.Logger, syncer: nft.NewSyncer(backend, o), ct: ct, hc: hc,
		health: healthcheck.NewProxy(2 * time.Minute), metrics: newMetrics(cfg.Registerer),
		kick: make(chan struct{}, 1), now: time.Now,
		services:  map[types.NamespacedName][]*model.ServicePort{},
		slices:    map[types.NamespacedName][]*model.Slice{},
		endpoints: map[types.NamespacedName]map[model.ServicePortName][]model.Endpoint{},
		pending:   map[types.NamespacedName]*pending{},
		node:      model.Node{Name: cfg.NodeName},
		state: &model.State{Services: map[model.ServicePortName]*model.ServicePort{}, Endpoints: map[model.ServicePortName][]model.Endpoint{},
			Node: model.Node{Name: cfg.NodeName}},
		hcPorts: map[types.NamespacedName]uint16{}, hcCounts: map[types.NamespacedName]int{},
	}
	return p
}

// touch records the previous state of a Service before its first change since the last sync.
// Must hold p.mu.
func (p *proxier) touch(nn types.NamespacedName) *pending {
	pd := p.pending[nn]
	if pd == nil {
		pd = &pending{prevPorts: p.services[nn], prevEndpoints: p.endpoints[nn]}
		p.pending[nn] = pd
	}
	return pd
}

// settle drops a pending change that turned out to change nothing (an update back to the previous
// state, or one of fields the proxy ignores), then queues a sync if something is left. Must hold p.mu.
func (p *proxier) settle(nn types.NamespacedName) {
	pd := p.pending[nn]
	if pd == nil {
		return
	}
	if samePorts(pd.prevPorts, p.services[nn]) && maps.EqualFunc(pd.prevEndpoints, p.endpoints[nn], sameEndpoints) {
		delete(p.pending, nn)
		return
	}
	p.queue()
}

func samePorts(a, b []*model.ServicePort) bool {
	return slices.EqualFunc(a, b, func(x, y *model.ServicePort) bool { return x.Equal(y) })
}

func sameEndpoints(a, b []model.Endpoint) bool {
	return slices.EqualFunc(a, b, model.Endpoint.Equal)
}

// queue asks for a sync (once the first lists have arrived). Must hold p.mu.
func (p *proxier) queue() {
	if !p.servicesSynced || !p.slicesSynced {
		return
	}
	p.health.Queued()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// OnService records a Service's current state (nil: deleted).
func (p *proxier) OnService(nn types.NamespacedName, svc *corev1.Service) {
	ports := model.ServicePorts(svc)
	slices.SortFunc(ports, func(a, b *model.ServicePort) int { return a.Name.Compare(b.Name) })
	p.mu.Lock()
	defer p.mu.Unlock()
	p.touch(nn)
	if len(ports) == 0 {
		delete(p.services, nn)
	} else {
		p.services[nn] = ports
	}
	p.settle(nn)
}

// OnSlice records an EndpointSlice's current state (nil: deleted).
func (p *proxier) OnSlice(key types.NamespacedName, old, cur *discoveryv1.EndpointSlice) {
	var oldS, curS *model.Slice
	if old != nil {
		oldS = model.FromEndpointSlice(old)
	}
	if cur != nil {
		curS = model.FromEndpointSlice(cur)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range []*model.Slice{oldS, curS} {
		if s == nil {
			continue
		}
		pd := p.touch(s.Service)
		if s == curS && !s.TriggerTime.IsZero() {
			pd.triggers = append(pd.triggers, s.TriggerTime)
		}
		p.slices[s.Service] = slices.DeleteFunc(p.slices[s.Service], func(o *model.Slice) bool { return o.Name == key.Name })
	}
	if curS != nil {
		p.slices[curS.Service] = append(p.slices[curS.Service], curS)
	}
	for _, s := range []*model.Slice{oldS, curS} {
		if s == nil {
			continue
		}
		if ss := p.slices[s.Service]; len(ss) == 0 {
			delete(p.slices, s.Service)
			delete(p.endpoints, s.Service)
		} else {
			p.endpoints[s.Service] = model.MergeSlices(s.Service, ss)
		}
		p.settle(s.Service)
	}
}

// OnNode records the proxy's Node.
func (p *proxier) OnNode(n *corev1.Node) {
	node := model.FromNode(n)
	if n == nil {
		node.Name = p.cfg.NodeName
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if node != p.node {
		p.node = node
		p.queue()
	}
}

// SetSynced marks the informers' first lists as arrived; the first sync follows.
func (p *proxier) SetSynced() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.servicesSynced, p.slicesSynced = true, true
	p.queue()
}

// syncOnce applies every pending change in one transaction.
func (p *proxier) syncOnce(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.servicesSynced || !p.slicesSynced {
		return nil
	}
	start := p.now()
	if len(p.state.Services) == 0 && len(p.services) > 0 {
		// The first sync fills the state at once: sized for it instead of growing step by step.
		p.state.Services = make(map[model.ServicePortName]*model.ServicePort, len(p.services))
		p.state.Endpoints = make(map[model.ServicePortName][]model.Endpoint, len(p.services))
	}
	changed := make(map[model.ServicePortName]bool, len(p.pending))
	var triggers []time.Time
	for nn, pd := range p.pending {
		for _, sp := range pd.prevPorts {
			delete(p.state.Services, sp.Name)
			delete(p.state.Endpoints, sp.Name)
			changed[sp.Name] = true
		}
		eps := p.endpoints[nn]
		for _, sp := range p.services[nn] {
			p.state.Services[sp.Name] = sp
			if e := eps[sp.Name]; len(e) > 0 {
				p.state.Endpoints[sp.Name] = e
			}
			changed[sp.Name] = true
		}
		triggers = append(triggers, pd.triggers...)
	}
	touched := slices.Collect(maps.Keys(p.pending))
	clear(p.pending)
	p.state.Node = p.node
	res, err := p.syncer.Sync(ctx, p.state, changed)
	elapsed := p.now().Sub(start)
	kind := "partial"
	if res.Full {
		kind = "full"
	}
	if err != nil {
		p.metrics.syncFailures.Inc()
		// The state already holds the changes and the next sync is a full one; keep the trigger
		// times for its latency figures.
		if len(triggers) > 0 {
			for _, nn := range touched {
				p.touch(nn)
			}
			if len(touched) > 0 {
				p.pending[touched[0]].triggers = triggers
			}
		}
		return err
	}
	p.metrics.syncDuration.WithLabelValues(kind).Observe(elapsed.Seconds())
	p.metrics.operations.Add(float64(res.Ops))
	p.metrics.chains.Set(float64(res.Chains))
	p.metrics.rules.Set(float64(res.Rules))
	p.metrics.elements.Set(float64(res.Elements))
	done := p.now()
	p.metrics.lastSync.Set(float64(done.UnixNano()) / 1e9)
	for _, t := range triggers {
		p.metrics.programmingDuration.Observe(done.Sub(t).Seconds())
	}
	if res.Full {
		p.log.Info("proxy full sync", "servicePorts", len(p.state.Services), "operations", res.Ops, "duration", elapsed,
			"chains", res.Chains, "rules", res.Rules, "elements", res.Elements)
	} else if res.Ops > 0 {
		p.log.Debug("proxy sync", "servicePorts", len(changed), "operations", res.Ops, "duration", elapsed)
	}
	p.health.Updated(start)
	if p.cfg.SyncHook != nil {
		p.cfg.SyncHook(SyncReport{Full: res.Full, Duration: elapsed, Operations: res.Ops, ServicePorts: len(changed),
			Chains: res.Chains, Rules: res.Rules, Elements: res.Elements, Triggers: triggers, Done: done})
	}
	// Comparing every changed port's endpoints costs tens of milliseconds on a full sync: only
	// when the log will show it.
	if p.log.Enabled(ctx, slog.LevelDebug) {
		for n, c := range res.Changed {
			if c.New != nil && (c.Old == nil || !slices.Equal(c.Old.Reachable(), c.New.Reachable())) {
				p.log.Debug("endpoints in use", "servicePort", n.String(), "cluster", len(c.New.Decision.Cluster),
					"local", len(c.New.Decision.Local), "topology", c.New.Decision.Topology)
			}
		}
	}

	// Stale UDP flows.
	if p.ct != nil {
		if f := staleFlows(res.Changed); !f.Empty() {
			n, err := p.ct.Delete(f)
			p.metrics.conntrackDeleted.Add(float64(n))
			if err != nil {
				p.log.Warn("conntrack cleanup failed", "err", err)
			} else if n > 0 {
				p.log.Info("deleted stale UDP conntrack entries", "count", n)
			}
		}
	}

	// Health check ports and local endpoint counts.
	if p.hc != nil {
		p.updateHealthChecks(touched, res.Full)
	}
	return nil
}

// updateHealthChecks refreshes health check ports and counts of the touched Services (all on a
// full sync). Must hold p.mu.
func (p *proxier) updateHealthChecks(touched []types.NamespacedName, full bool) {
	if full {
		touched = slices.Collect(maps.Keys(p.services))
		clear(p.hcPorts)
		clear(p.hcCounts)
	}
	changed := full
	for _, nn := range touched {
		var port uint16
		for _, sp := range p.services[nn] {
			if sp.HealthCheckNodePort != 0 {
				port = sp.HealthCheckNodePort
			}
		}
		old, had := p.hcPorts[nn]
		if port == 0 {
			if had {
				delete(p.hcPorts, nn)
				delete(p.hcCounts, nn)
				changed = true
			}
			continue
		}
		if !had || old != port {
			p.hcPorts[nn] = port
			changed = true
		}
		// Ready endpoints on this node, counted once each whatever the number of ports.
		local := map[netip.Addr]bool{}
		for _, eps := range p.endpoints[nn] {
			for _, e := range eps {
				if e.Ready && e.NodeName == p.node.Name {
					local[e.IP] = true
				}
			}
		}
		p.hcCounts[nn] = len(local)
	}
	if changed || !p.lastOK {
		if err := p.hc.SyncServices(maps.Clone(p.hcPorts)); err != nil {
			p.log.Warn("health check servers", "err", err)
			p.lastOK = false
		} else {
			p.lastOK = true
		}
	}
	p.hc.SyncEndpoints(maps.Clone(p.hcCounts))
}

// loop syncs whenever changes are queued, at most once per MinSyncPeriod, retrying failures with
// backoff (each retry is a full sync that re-reads the kernel table).
func (p *proxier) loop(ctx context.Context) {
	var lastStart time.Time
	backoff := time.Duration(0)
	var retry <-chan time.Time
	var periodic <-chan time.Time
	if p.cfg.SyncPeriod > 0 {
		t := time.NewTicker(p.cfg.SyncPeriod)
		defer t.Stop()
		periodic = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-retry:
		case <-periodic:
			p.mu.Lock()
			p.syncer.Invalidate()
			p.mu.Unlock()
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
		if err := p.syncOnce(ctx); err != nil {
			if errors.Is(err, context.Canceled) {
				return
			}
			backoff = min(max(2*backoff, time.Second), 30*time.Second)
			p.log.Error("proxy sync failed, retrying with a full sync", "retryIn", backoff, "err", err)
			retry = time.After(backoff)
		} else {
			backoff = 0
		}
	}
}
