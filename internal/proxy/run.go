package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/knftables"

	"github.com/svcnet/svcnet/internal/proxy/conntrack"
	"github.com/svcnet/svcnet/internal/proxy/healthcheck"
	"github.com/svcnet/svcnet/internal/proxy/model"
	"github.com/svcnet/svcnet/internal/proxy/nft"
	"github.com/svcnet/svcnet/internal/proxy/userspace"
)

// Run runs the proxy until ctx ends: it programs the nftables table in the current network
// namespace and serves health checks. Nothing is programmed before the first complete lists of
// Services and EndpointSlices have arrived; an existing table (from an earlier run) is adopted and
// corrected in place, so established connections keep flowing across a restart.
//
// With Dataplane "userspace", or when nf_tables is unavailable (the kernel does not speak it, or
// the nft tool is missing for Backend "nft"), it runs the userspace dataplane instead.
func Run(ctx context.Context, client kubernetes.Interface, cfg Config) error {
	cfg.Default()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Dataplane == DataplaneUserspace {
		return runUserspace(ctx, client, cfg)
	}
	backend, closeBackend, err := newBackend(cfg)
	if err == nil {
		// Probe: reading the table fails at once where nf_tables is missing.
		if _, err = backend.List(ctx); err != nil {
			closeBackend()
			err = fmt.Errorf("read nftables table %s: %w", cfg.Table, err)
		}
	}
	if err != nil {
		if nftablesUnavailable(err) {
			lvl := slog.LevelWarn
			if fellBack.Swap(true) {
				lvl = slog.LevelDebug
			}
			cfg.Logger.Log(ctx, lvl, "nftables is unavailable on this node; the Service proxy falls back to the userspace dataplane",
				"err", err, "dataplane", DataplaneUserspace)
			return runUserspace(ctx, client, cfg)
		}
		return err
	}
	defer closeBackend()
	if !cfg.DisableLocalhostNodePorts {
		if err := os.WriteFile("/proc/sys/net/ipv4/conf/all/route_localnet", []byte("1"), 0o644); err != nil {
			return fmt.Errorf("enable NodePorts on 127.0.0.1 (set DisableLocalhostNodePorts to run without): %w", err)
		}
	}
	ct, err := conntrack.New(netns.None())
	if err != nil {
		return err
	}
	defer ct.Close()
	p := newProxier(cfg, backend, ct, nil)
	p.hc = healthcheck.NewServices(cfg.NodeIPs, nil, p.health.Healthy)
	defer p.hc.Close()
	return p.run(ctx, client, nil)
}

// fellBack records that Run fell back to userspace once already (the fallback is logged as a
// warning once per process).
var fellBack atomic.Bool

// nftablesUnavailable tells errors meaning "this kernel (or system) has no nf_tables" from others
// (such as a missing privilege): netlink refuses the netfilter protocol or family, the nf_tables
// subsystem is not there (EINVAL/EOPNOTSUPP from nfnetlink), or the nft tool is missing.
func nftablesUnavailable(err error) bool {
	for _, e := range []error{syscall.EPROTONOSUPPORT, syscall.EAFNOSUPPORT, syscall.EOPNOTSUPP, syscall.EINVAL, exec.ErrNotFound} {
		if errors.Is(err, e) {
			return true
		}
	}
	msg := err.Error()
	return strings.Contains(msg, "could not find nftables binary") || strings.Contains(msg, "Protocol not supported") ||
		strings.Contains(msg, "Operation not supported")
}

// runUserspace runs the userspace dataplane with the equivalent configuration.
func runUserspace(ctx context.Context, client kubernetes.Interface, cfg Config) error {
	return userspace.Run(ctx, client, userspace.Config{
		NodeName: cfg.NodeName, NodeIPs: cfg.NodeIPs, ClusterCIDR: cfg.ClusterCIDR,
		DisableLocalhostNodePorts: cfg.DisableLocalhostNodePorts, HealthzBindAddress: cfg.HealthzBindAddress,
		MinSyncPeriod: cfg.MinSyncPeriod, Logger: cfg.Logger,
	})
}

func newBackend(cfg Config) (nft.Backend, func(), error) {
	switch cfg.Backend {
	case "nft":
		k, err := knftables.New(knftables.InetFamily, cfg.Table)
		if err != nil {
			return nil, nil, fmt.Errorf("nftables through the nft tool: %w", err)
		}
		return &nft.KnftablesBackend{NFT: k}, func() {}, nil
	default:
		b, err := nft.NewNetlinkBackend(cfg.Table, netns.None())
		if err != nil {
			return nil, nil, fmt.Errorf("nftables netlink (is this process allowed CAP_NET_ADMIN?): %w", err)
		}
		return b, func() { _ = b.Close() }, nil
	}
}

// run starts the informers, waits for their first lists, and syncs until ctx ends. serveHealthz,
// when set, replaces the healthz listener (tests).
func (p *proxier) run(ctx context.Context, client kubernetes.Interface, listen healthcheck.ListenFunc) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Services handled by another proxy, and headless Services' slices, are never seen.
	svcFactory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = "!" + model.ServiceProxyNameLabel
	}))
	sliceFactory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = "!" + model.HeadlessLabel
	}))
	nodeFactory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", p.cfg.NodeName).String()
	}))
	svcInf := svcFactory.Core().V1().Services().Informer()
	sliceInf := sliceFactory.Discovery().V1().EndpointSlices().Informer()
	nodeInf := nodeFactory.Core().V1().Nodes().Informer()

	// The registrations' HasSynced (unlike the informers') is true only once the handlers have
	// processed the initial lists: the first sync must see every object.
	svcReg, err := svcInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { p.onServiceObj(o, false) },
		UpdateFunc: func(_, o any) { p.onServiceObj(o, false) },
		DeleteFunc: func(o any) { p.onServiceObj(o, true) },
	})
	if err != nil {
		return err
	}
	sliceReg, err := sliceInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { p.onSliceObj(nil, o) },
		UpdateFunc: func(old, o any) { p.onSliceObj(old, o) },
		DeleteFunc: func(o any) { p.onSliceObj(o, nil) },
	})
	if err != nil {
		return err
	}
	nodeReg, err := nodeInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { p.onNodeObj(o, false) },
		UpdateFunc: func(_, o any) { p.onNodeObj(o, false) },
		DeleteFunc: func(o any) { p.onNodeObj(o, true) },
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
			if err := p.health.Serve(ctx, p.cfg.HealthzBindAddress, listen); err != nil {
				p.log.Error("proxy healthz server stopped", "err", err)
			}
		}()
	}

	if !waitForSync(ctx, syncPollPeriod, svcReg.HasSynced, sliceReg.HasSynced, nodeReg.HasSynced) {
		return ctx.Err()
	}
	p.log.Info("proxy informers synced; programming nftables", "table", p.cfg.Table, "backend", p.cfg.Backend)
	p.SetSynced()
	p.loop(ctx)
	return nil
}

// syncPollPeriod is how often run checks whether the first lists have been handled. (client-go's
// WaitForCacheSync checks every 100 ms: on average 50 ms added to every cold start.)
const syncPollPeriod = 5 * time.Millisecond

// waitForSync waits until every synced function reports true, checking every period; false when
// ctx ends first.
func waitForSync(ctx context.Context, period time.Duration, synced ...cache.InformerSynced) bool {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		all := true
		for _, s := range synced {
			all = all && s()
		}
		if all {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

func (p *proxier) onServiceObj(o any, deleted bool) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o, deleted = t.Obj, true
	}
	svc, ok := o.(*corev1.Service)
	if !ok {
		return
	}
	nn := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	if deleted {
		svc = nil
	}
	p.OnService(nn, svc)
}

func (p *proxier) onSliceObj(old, cur any) {
	if t, ok := old.(cache.DeletedFinalStateUnknown); ok {
		old = t.Obj
	}
	o, _ := old.(*discoveryv1.EndpointSlice)
	c, _ := cur.(*discoveryv1.EndpointSlice)
	ref := c
	if ref == nil {
		ref = o
	}
	if ref == nil {
		return
	}
	p.OnSlice(types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, o, c)
}

func (p *proxier) onNodeObj(o any, deleted bool) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o, deleted = t.Obj, true
	}
	n, ok := o.(*corev1.Node)
	if !ok || n.Name != p.cfg.NodeName {
		return
	}
	if deleted {
		n = nil
	}
	p.OnNode(n)
}

// Ruleset returns the live table as nft lists it ("nft list table inet TABLE"), for
// `svcnet proxy-rules`. It runs in the caller's network namespace.
func Ruleset(ctx context.Context, table string) (string, error) {
	if table == "" {
		table = "svcnet"
	}
	out, err := exec.CommandContext(ctx, "nft", "list", "table", "inet", table).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("nft list table inet %s: %w: %s", table, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
