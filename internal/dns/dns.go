// Package dns is svcnet's cluster DNS server, the CoreDNS role of the node agent. It serves the
// Kubernetes DNS-Based Service Discovery specification, schema 1.1.0, for the cluster zone from client-go
// informers on Services, EndpointSlices, Pods and Namespaces, and forwards every other name to the node's
// upstream resolvers through a bounded, TTL-respecting cache.
//
// The informers keep slim copies of the objects and feed an index that each event updates in place;
// queries read the index under a read lock. Handlers follow the CoreDNS plugin contract,
// ServeDNS(ctx, w, r) (rcode int, err error). Queries arrive over UDP and TCP on each listen address;
// every packet goes through one function that answers malformed input with FORMERR, other opcodes with
// NOTIMP and other classes with REFUSED, and truncates UDP answers to the client's EDNS0 buffer size.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Config configures the DNS server of a node agent.
type Config struct {
	Zone       string   // the cluster domain; "cluster.local" by default
	Listen     []string // "ip:port" addresses, each served over UDP and TCP, e.g. "10.96.0.10:53", "169.254.20.10:53"
	TTL        uint32   // TTL of the cluster's records; 5 by default
	Upstreams  []string // "ip:port" (or "ip", port 53) resolvers for other names; by default the nameservers of /etc/resolv.conf, skipping loopback addresses and our own
	PodRecords string   // "disabled" (default), "insecure" or "verified": a-b-c-d.<ns>.pod.<zone> records, like CoreDNS's kubernetes `pods`
	Registerer prometheus.Registerer

	// Autopath answers a pod's first search-path expansion with the result of its whole search path (as
	// CoreDNS's autopath @kubernetes), saving the pod the remaining round trips. It assumes the pod uses
	// the default ClusterFirst search path; off by default.
	Autopath bool
	// CacheEntries and CacheBytes bound the cache of upstream answers: 10000 entries and 32 MiB by default.
	CacheEntries int
	CacheBytes   int
	// PackedCacheBytes bounds the cache of packed responses that answers repeated questions, from the
	// zone and from the upstream cache, without building them again: 16 MiB by default; negative
	// disables it.
	PackedCacheBytes int
	// Readers is the number of UDP sockets (SO_REUSEPORT) per listen address; GOMAXPROCS by default.
	Readers int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Dial, when set, opens the connections to Upstreams: a node agent inside a network namespace
	// of a local cluster reaches the host's resolvers through sockets made in the host's namespace.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	now             func() time.Time // tests inject a clock
	upstreamTimeout time.Duration    // tests shorten the time given to one upstream
}

// Defaults.
const (
	DefaultZone         = "cluster.local"
	DefaultTTL          = 5
	DefaultCacheEntries = 10000
	DefaultCacheBytes   = 32 << 20
)

// WithDefaults returns c with every unset field defaulted (Upstreams excepted: Run reads resolv.conf).
func (c Config) WithDefaults() Config {
	if c.Zone == "" {
		c.Zone = DefaultZone
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.PodRecords == "" {
		c.PodRecords = PodsDisabled
	}
	if c.CacheEntries == 0 {
		c.CacheEntries = DefaultCacheEntries
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = DefaultCacheBytes
	}
	if c.PackedCacheBytes == 0 {
		c.PackedCacheBytes = DefaultPackedCacheBytes
	}
	if c.Readers == 0 {
		c.Readers = min(runtime.GOMAXPROCS(0), 16)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Validate reports what is wrong with c, naming the field.
func (c Config) Validate() error {
	var errs []error
	if _, ok := dns.IsDomainName(c.Zone); !ok || strings.Trim(c.Zone, ".") == "" {
		errs = append(errs, fmt.Errorf("zone %q: not a domain name", c.Zone))
	}
	if len(c.Listen) == 0 {
		errs = append(errs, errors.New("listen: at least one ip:port is needed"))
	}
	for _, l := range c.Listen {
		if _, err := netip.ParseAddrPort(l); err != nil {
			errs = append(errs, fmt.Errorf("listen %q: want ip:port: %w", l, err))
		}
	}
	for _, u := range c.Upstreams {
		if _, err := parseUpstream(u); err != nil {
			errs = append(errs, fmt.Errorf("upstream %q: %w", u, err))
		}
	}
	switch c.PodRecords {
	case "", PodsDisabled, PodsInsecure, PodsVerified:
	default:
		errs = append(errs, fmt.Errorf("podRecords %q: want %q, %q or %q", c.PodRecords, PodsDisabled, PodsInsecure, PodsVerified))
	}
	if c.TTL > 3600 {
		errs = append(errs, fmt.Errorf("ttl %d: at most 3600", c.TTL))
	}
	if c.CacheEntries < 0 || c.CacheBytes < 0 {
		errs = append(errs, errors.New("cache bounds must not be negative"))
	}
	return errors.Join(errs...)
}

func parseUpstream(u string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(u); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(u)
	if err != nil {
		return netip.AddrPort{}, errors.New("want ip or ip:port")
	}
	return netip.AddrPortFrom(a, 53), nil
}

// Server is a DNS server and its index. Run is the usual way to get one; the parts are exported for the
// benchmark and tests.
type Server struct {
	cfg       Config
	log       *slog.Logger
	ix        *index
	kube      *kube
	fwd       *forwarder
	cache     *answerCache
	metrics   *metrics
	transport *transport
	packed    *packedCache // nil when disabled
	synced    atomic.Bool
	addrs     []netip.AddrPort
	search    []string
}

// NewServer builds a server from cfg (defaults applied), without opening sockets.
func NewServer(cfg Config) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dns config: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	var self []netip.Addr
	for _, l := range cfg.Listen {
		self = append(self, netip.MustParseAddrPort(l).Addr())
	}
	var ups []string
	if len(cfg.Upstreams) == 0 {
		var search []string
		ups, search = defaultUpstreams(self)
		s.search = search
		if len(ups) == 0 {
			s.log.Warn("no upstream resolver in resolv.conf; names outside the cluster will get SERVFAIL")
		}
	} else {
		for _, u := range cfg.Upstreams {
			ap, _ := parseUpstream(u)
			if containsAddrPort(cfg.Listen, ap) {
				s.log.Warn("ignoring upstream that is this server (a forwarding loop)", "upstream", u)
				continue
			}
			ups = append(ups, ap.String())
		}
		if rc, err := readResolvConf(); err == nil {
			s.search = rc.search
		}
	}
	s.ix = newIndex(cfg.now, cfg.Autopath || cfg.PodRecords == PodsVerified)
	s.cache = newCache(cfg.CacheBytes, cfg.CacheEntries, cfg.now)
	s.metrics = newMetrics(cfg.Registerer, func(kind int) float64 { return float64(s.ix.counts[kind].Load()) },
		func() float64 { return float64(s.cache.len()) })
	s.fwd = newForwarder(ups, s.cache, s.metrics, s.log)
	s.fwd.dial = s.cfg.Dial
	if cfg.upstreamTimeout > 0 {
		s.fwd.timeout = cfg.upstreamTimeout
	}
	zone := strings.ToLower(dns.Fqdn(cfg.Zone))
	s.kube = &kube{
		zone:    zone,
		ttl:     cfg.TTL,
		podMode: cfg.PodRecords,
		ix:      s.ix,
		synced:  s.synced.Load,
		nsAddrs: nsAddrs(self),
		external: func(ctx context.Context, name string, qtype uint16, do bool) (*dns.Msg, error) {
			return s.fwd.lookup(ctx, name, qtype, do, false)
		},
	}
	r := &router{zone: zone, kube: s.kube, fwd: s.fwd}
	if cfg.Autopath {
		r.autopath = &autopath{zone: zone, zoneWire: wireName(zone), search: s.search, ix: s.ix}
	}
	s.transport = newTransport(r, s.metrics, s.log)
	if cfg.PackedCacheBytes > 0 {
		s.packed = newPackedCache(cfg.PackedCacheBytes, &s.ix.gen, cfg.now)
		s.transport.packed = s.packed
		if r.autopath != nil {
			s.transport.bypass = r.autopath.claims
		}
	}
	return s, nil
}

// PackedCacheStats returns the number of packed responses kept and the bytes they are charged.
func (s *Server) PackedCacheStats() (entries, bytes int) {
	if s.packed == nil {
		return 0, 0
	}
	return s.packed.stats()
}

func readResolvConf() (resolvConf, error) {
	data, err := os.ReadFile(resolvConfPaths[0])
	if err != nil {
		return resolvConf{}, err
	}
	return parseResolvConf(data), nil
}

func containsAddrPort(list []string, ap netip.AddrPort) bool {
	for _, l := range list {
		if x, err := netip.ParseAddrPort(l); err == nil && x.Port() == ap.Port() &&
			(x.Addr() == ap.Addr() || (x.Addr().IsUnspecified() && ap.Addr().IsLoopback())) {
			return true
		}
	}
	return false
}

// nsAddrs are the addresses of ns.dns.<zone>: the listen addresses that are not loopback, or all of them.
func nsAddrs(self []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range self {
		if !a.IsLoopback() && !a.IsUnspecified() {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		for _, a := range self {
			if !a.IsUnspecified() {
				out = append(out, a)
			}
		}
	}
	return out
}

// Listen opens UDP and TCP on every listen address. Until the informers have synced, cluster names get
// SERVFAIL; other names are forwarded at once.
func (s *Server) Listen(ctx context.Context) error {
	for _, l := range s.cfg.Listen {
		ap, err := s.transport.listen(ctx, l, s.cfg.Readers)
		if err != nil {
			s.transport.shutdown()
			return fmt.Errorf("dns: %w", err)
		}
		s.addrs = append(s.addrs, ap)
	}
	return nil
}

// Addrs are the bound listen addresses (with the ports chosen for port 0).
func (s *Server) Addrs() []netip.AddrPort { return s.addrs }

// Shutdown closes the sockets and waits for the readers.
func (s *Server) Shutdown() { s.transport.shutdown() }

// Objects counts the objects in the index.
func (s *Server) Objects() (services, endpointSlices, pods, namespaces int) {
	c := &s.ix.counts
	return int(c[countServices].Load()), int(c[countSlices].Load()), int(c[countPods].Load()), int(c[countNamespaces].Load())
}

// Synced reports whether the informers have delivered their first full list.
func (s *Server) Synced() bool { return s.synced.Load() }

// Watch starts the informers and marks the server synced once every one has delivered its first list
// and the index has taken it in. It returns at once; the informers stop with ctx.
func (s *Server) Watch(ctx context.Context, client kubernetes.Interface) {
	tr := &transformer{strs: newInterner(), podIPs: s.ix.indexPods}
	none := cache.Indexers{}
	svcInf := coreinformers.NewFilteredServiceInformer(client, "", 0, none, nil)
	sliceInf := discoveryinformers.NewFilteredEndpointSliceInformer(client, "", 0, none, nil)
	podInf := coreinformers.NewFilteredPodInformer(client, "", 0, none, nil)
	nsInf := coreinformers.NewFilteredNamespaceInformer(client, 0, none, nil)
	var synced []cache.InformerSynced
	add := func(inf cache.SharedIndexInformer, h cache.ResourceEventHandlerFuncs) {
		_ = inf.SetTransform(tr.transform) // cannot fail before the informer starts
		reg, err := inf.AddEventHandler(h)
		if err != nil {
			s.log.Error("adding dns informer handler failed", "err", err)
			return
		}
		synced = append(synced, reg.HasSynced)
	}
	add(svcInf, handlers(s.ix.setService))
	add(sliceInf, handlers(s.ix.setSlice))
	add(podInf, cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			switch o := obj.(type) {
			case *pod:
				s.ix.setPod(nil, o)
			case *podStub:
				s.ix.counts[countPods].Add(1)
			}
		},
		UpdateFunc: func(old, cur any) {
			o, _ := old.(*pod)
			if c, ok := cur.(*pod); ok {
				s.ix.setPod(o, c)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			switch o := obj.(type) {
			case *pod:
				s.ix.setPod(o, nil)
			case *podStub:
				s.ix.counts[countPods].Add(-1)
			}
		},
	})
	add(nsInf, cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.ix.setNamespace(nameOf(obj), true) },
		UpdateFunc: func(_, obj any) { s.ix.setNamespace(nameOf(obj), true) },
		DeleteFunc: func(obj any) {
			name := nameOf(obj)
			s.ix.setNamespace(name, false)
			tr.strs.forget(name)
		},
	})
	for _, inf := range []cache.SharedIndexInformer{svcInf, sliceInf, podInf, nsInf} {
		go inf.RunWithContext(ctx)
	}
	go func() {
		start := time.Now()
		if !cache.WaitForCacheSync(ctx.Done(), synced...) {
			return
		}
		s.synced.Store(true)
		s.log.Info("dns index synced", "services", s.ix.counts[countServices].Load(), "endpointSlices", s.ix.counts[countSlices].Load(),
			"pods", s.ix.counts[countPods].Load(), "namespaces", s.ix.counts[countNamespaces].Load(), "took", time.Since(start).Round(time.Millisecond))
	}()
}

// handlers turns a set(old, cur) index update into informer callbacks.
func handlers[T any](set func(old, cur *T)) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if o, ok := obj.(*T); ok {
				set(nil, o)
			}
		},
		UpdateFunc: func(old, cur any) {
			o, _ := old.(*T)
			c, ok := cur.(*T)
			if ok {
				set(o, c)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if o, ok := obj.(*T); ok {
				set(o, nil)
			}
		},
	}
}

func nameOf(obj any) string {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if n, ok := obj.(*namespace); ok {
		return n.name
	}
	return ""
}

// Run serves DNS on cfg.Listen until ctx ends: it opens the sockets (answering SERVFAIL for cluster
// names until the informers have synced), starts informers on Services, EndpointSlices, Pods and
// Namespaces, and checks the upstreams for forwarding loops.
func Run(ctx context.Context, client kubernetes.Interface, cfg Config) error {
	s, err := NewServer(cfg)
	if err != nil {
		return err
	}
	if err := s.Listen(ctx); err != nil {
		return err
	}
	defer s.Shutdown()
	s.log.Info("dns serving", "listen", s.addrs, "zone", s.kube.zone, "upstreams", len(s.fwd.upstreams))
	go s.fwd.probeLoops(ctx)
	s.Watch(ctx, client)
	<-ctx.Done()
	return nil
}

// Query asks server ("ip:port", or "ip" for port 53) for name and qtype over UDP, and again over TCP
// when the answer is truncated; it is `svcnet dns query`.
func Query(ctx context.Context, server, name string, qtype uint16) (*dns.Msg, error) {
	ap, err := parseUpstream(server)
	if err != nil {
		h, p, splitErr := net.SplitHostPort(server)
		if splitErr != nil {
			return nil, fmt.Errorf("server %q: want ip or ip:port", server)
		}
		server = net.JoinHostPort(h, p)
	} else {
		server = ap.String()
	}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.SetEdns0(maxUDPSize, false)
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second, UDPSize: maxUDPSize}
	if dl, ok := ctx.Deadline(); ok {
		c.Timeout = time.Until(dl)
	}
	m, _, err := c.ExchangeContext(ctx, q, server)
	if err == nil && m.Truncated {
		c.Net = "tcp"
		m, _, err = c.ExchangeContext(ctx, q, server)
	}
	if err != nil {
		return nil, fmt.Errorf("query %s %s at %s: %w", name, dns.TypeToString[qtype], server, err)
	}
	return m, nil
}
