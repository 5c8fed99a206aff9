package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"

	"github.com/svcnet/svcnet/internal/proxy/conntrack"
	"github.com/svcnet/svcnet/internal/proxy/healthcheck"
	"github.com/svcnet/svcnet/internal/proxy/model"
	"github.com/svcnet/svcnet/internal/proxy/nft"
	"github.com/svcnet/svcnet/internal/proxy/tracer"
)

const node1 = "node-1"

var nodeIP = netip.MustParseAddr("172.31.0.11")

func testConfig() Config {
	c := Config{
		NodeName:    node1,
		NodeIPs:     []netip.Addr{nodeIP},
		ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"),
		ServiceCIDR: netip.MustParsePrefix("10.96.0.0/12"),
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	c.Default()
	return c
}

func service(name, clusterIP string, mutate func(*corev1.Service), ports ...corev1.ServicePort) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: clusterIP, ClusterIPs: []string{clusterIP}, Ports: ports},
	}
	if mutate != nil {
		mutate(s)
	}
	return s
}

func endpointSlice(svcName, name string, proto corev1.Protocol, port int32, ips map[string]string, trigger time.Time) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("p"), Protocol: ptr.To(proto), Port: ptr.To(port)}},
	}
	if !trigger.IsZero() {
		s.Annotations = map[string]string{corev1.EndpointsLastChangeTriggerTime: trigger.UTC().Format(time.RFC3339Nano)}
	}
	keys := make([]string, 0, len(ips))
	for ip := range ips {
		keys = append(keys, ip)
	}
	slices.Sort(keys)
	for _, ip := range keys {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, NodeName: ptr.To(ips[ip]),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	return s
}

type fakeConntrack struct {
	mu      sync.Mutex
	filters []*conntrack.Filter
}

func (f *fakeConntrack) Delete(fl *conntrack.Filter) (uint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filters = append(f.filters, fl)
	return 1, nil
}

// harness runs a proxier against a fake API and knftables' fake.
type harness struct {
	t      *testing.T
	p      *proxier
	client *fake.Clientset
	fake   *knftables.Fake
	ct     *fakeConntrack
	reg    *prometheus.Registry
	hcAddr sync.Map // requested port -> actual address
}

func newHarness(t *testing.T, objs ...any) *harness {
	t.Helper()
	h := &harness{t: t, client: fake.NewClientset(), fake: knftables.NewFake(knftables.InetFamily, "svcnet"), ct: &fakeConntrack{}, reg: prometheus.NewRegistry()}
	cfg := testConfig()
	cfg.Registerer = h.reg
	h.p = newProxier(cfg, &nft.KnftablesBackend{NFT: h.fake}, h.ct, nil)
	h.p.hc = healthcheck.NewServices(cfg.NodeIPs, h.listen, h.p.health.Healthy)
	t.Cleanup(h.p.hc.Close)
	for _, o := range objs {
		h.create(o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := h.p.run(ctx, h.client, nil); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitSynced(t, h.p)
	return h
}

// waitSynced waits for the proxier's first sync. The fake clientset's watches have no
// resourceVersion: an object created between an informer's list and its watch is never seen, so
// tests create objects only once the informers are running.
func waitSynced(t *testing.T, p *proxier) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		done := !p.syncer.NeedsFull()
		p.mu.Unlock()
		if done {
			time.Sleep(50 * time.Millisecond) // the watches start just after the lists
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the proxy did not sync")
}

// listen opens health check servers on 127.0.0.1 at a free port and remembers where.
func (h *harness) listen(network, addr string) (net.Listener, error) {
	_, port, _ := net.SplitHostPort(addr)
	l, err := net.Listen(network, "127.0.0.1:0")
	if err == nil {
		h.hcAddr.Store(port, l.Addr().String())
	}
	return l, err
}

func (h *harness) create(o any) {
	h.t.Helper()
	ctx := context.Background()
	var err error
	switch o := o.(type) {
	case *corev1.Service:
		_, err = h.client.CoreV1().Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *discoveryv1.EndpointSlice:
		_, err = h.client.DiscoveryV1().EndpointSlices(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *corev1.Node:
		_, err = h.client.CoreV1().Nodes().Create(ctx, o, metav1.CreateOptions{})
	}
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) update(o any) {
	h.t.Helper()
	ctx := context.Background()
	var err error
	switch o := o.(type) {
	case *corev1.Service:
		_, err = h.client.CoreV1().Services(o.Namespace).Update(ctx, o, metav1.UpdateOptions{})
	case *discoveryv1.EndpointSlice:
		_, err = h.client.DiscoveryV1().EndpointSlices(o.Namespace).Update(ctx, o, metav1.UpdateOptions{})
	}
	if err != nil {
		h.t.Fatal(err)
	}
}

// trace waits until the packet's outcomes are want (as tracer.Outcome strings).
func (h *harness) trace(pkt tracer.Packet, want ...string) {
	h.t.Helper()
	var got []string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		got = h.outcomes(pkt)
		if slices.Equal(got, want) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("%+v: outcomes %v, want %v", pkt, got, want)
}

func (h *harness) outcomes(pkt tracer.Packet) []string {
	h.p.mu.Lock() // no sync in progress
	defer h.p.mu.Unlock()
	if h.fake.Table == nil {
		return []string{"no table"}
	}
	tr, err := tracer.New(h.fake, nodeIP)
	if err != nil {
		h.t.Fatal(err)
	}
	out, err := tr.Trace(pkt)
	if err != nil {
		h.t.Fatal(err)
	}
	var s []string
	for _, o := range out {
		s = append(s, o.String())
	}
	return s
}

var podClient = netip.MustParseAddr("10.244.1.99")

func pkt(dst string, proto model.Protocol, port uint16) tracer.Packet {
	return tracer.Packet{Src: podClient, Dst: netip.MustParseAddr(dst), Proto: proto, DPort: port}
}

func tcpPort(port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: "p", Protocol: corev1.ProtocolTCP, Port: port}
}

func TestProxierFollowsTheAPI(t *testing.T) {
	h := newHarness(t,
		service("web", "10.96.0.10", nil, tcpPort(80)),
		endpointSlice("web", "web-1", corev1.ProtocolTCP, 8080, map[string]string{"10.244.1.5": node1, "10.244.2.6": "node-2"}, time.Time{}),
	)
	h.trace(pkt("10.96.0.10", model.TCP, 80), "accept dnat=10.244.1.5:8080 out p=0.500", "accept dnat=10.244.2.6:8080 out p=0.500")

	// An endpoint goes; a Service appears with no endpoints; then it gets one.
	h.update(endpointSlice("web", "web-1", corev1.ProtocolTCP, 8080, map[string]string{"10.244.2.6": "node-2"}, time.Now()))
	h.create(service("empty", "10.96.0.11", nil, tcpPort(80)))
	h.trace(pkt("10.96.0.10", model.TCP, 80), "accept dnat=10.244.2.6:8080 out p=1.000")
	h.trace(pkt("10.96.0.11", model.TCP, 80), "reject-rst p=1.000")
	h.create(endpointSlice("empty", "empty-1", corev1.ProtocolTCP, 9090, map[string]string{"10.244.3.7": "node-3"}, time.Now()))
	h.trace(pkt("10.96.0.11", model.TCP, 80), "accept dnat=10.244.3.7:9090 out p=1.000")

	// Deleted.
	if err := h.client.CoreV1().Services("default").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.trace(pkt("10.96.0.10", model.TCP, 80), "drop p=1.000")

	// Metrics: syncs, and programming latency from the trigger-time annotations.
	if n := histogramCount(t, h.reg, "svcnet_proxy_network_programming_duration_seconds"); n < 2 {
		t.Errorf("network programming latency observed %d times", n)
	}
	if n := histogramCount(t, h.reg, "svcnet_proxy_sync_duration_seconds"); n < 2 {
		t.Errorf("syncs observed %d times", n)
	}
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetHistogram() != nil {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			return metricValue(mf.GetMetric()[0])
		}
	}
	return -1
}

func metricValue(m *dto.Metric) float64 {
	if m.GetGauge() != nil {
		return m.GetGauge().GetValue()
	}
	return m.GetCounter().GetValue()
}

// TestNothingBeforeFirstLists: no table is programmed before the informers' first lists.
func TestNothingBeforeFirstLists(t *testing.T) {
	fk := knftables.NewFake(knftables.InetFamily, "svcnet")
	p := newProxier(testConfig(), &nft.KnftablesBackend{NFT: fk}, nil, nil)
	p.OnService(types.NamespacedName{Namespace: "default", Name: "web"}, service("web", "10.96.0.10", nil, tcpPort(80)))
	if err := p.syncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fk.Table != nil {
		t.Fatal("the table was programmed before the first lists arrived")
	}
	p.SetSynced()
	if err := p.syncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fk.Table == nil || fk.Table.Sets[nft.SetClusterIPs].FindElement("10.96.0.10") == nil {
		t.Fatal("the first sync did not program the Service")
	}
}

// TestNoChangeNoOperations: updates the proxy does not care about cause no sync at all, and a
// sync with nothing pending sends nothing.
func TestNoChangeNoOperations(t *testing.T) {
	fk := knftables.NewFake(knftables.InetFamily, "svcnet")
	p := newProxier(testConfig(), &nft.KnftablesBackend{NFT: fk}, nil, nil)
	p.SetSynced()
	nn := types.NamespacedName{Namespace: "default", Name: "web"}
	svc := service("web", "10.96.0.10", nil, tcpPort(80))
	sl := endpointSlice("web", "web-1", corev1.ProtocolTCP, 8080, map[string]string{"10.244.1.5": node1}, time.Time{})
	p.OnService(nn, svc)
	p.OnSlice(types.NamespacedName{Namespace: "default", Name: "web-1"}, nil, sl)
	if err := p.syncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	last := fk.LastTransaction
	<-p.kick // drain

	// An annotation and a resourceVersion change; a slice update with the same endpoints.
	svc2 := svc.DeepCopy()
	svc2.Annotations = map[string]string{"x": "y"}
	svc2.ResourceVersion = "42"
	p.OnService(nn, svc2)
	sl2 := sl.DeepCopy()
	sl2.ResourceVersion = "43"
	p.OnSlice(types.NamespacedName{Namespace: "default", Name: "web-1"}, sl, sl2)
	if len(p.pending) != 0 {
		t.Errorf("irrelevant updates left pending changes: %v", p.pending)
	}
	select {
	case <-p.kick:
		t.Error("irrelevant updates queued a sync")
	default:
	}
	// A change and its reversal before the sync: nothing either.
	p.OnService(nn, service("web", "10.96.0.10", nil, tcpPort(81)))
	p.OnService(nn, svc)
	if len(p.pending) != 0 {
		t.Errorf("a reverted change stayed pending")
	}
	if err := p.syncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fk.LastTransaction != last {
		t.Errorf("a sync without changes ran a transaction:\n%s", fk.LastTransaction)
	}
}

// TestEventOrderDoesNotMatter: the same objects delivered in any order, with syncs at random
// points, end in the same table (up to endpoint slot positions).
func TestEventOrderDoesNotMatter(t *testing.T) {
	var objs []any
	for i := range 8 {
		name := fmt.Sprintf("svc-%d", i)
		objs = append(objs, service(name, fmt.Sprintf("10.96.1.%d", i+1), func(s *corev1.Service) {
			if i%2 == 0 {
				s.Spec.Type = corev1.ServiceTypeNodePort
				s.Spec.Ports[0].NodePort = int32(30100 + i)
			}
			if i%3 == 0 {
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				s.Spec.Type = corev1.ServiceTypeNodePort
				s.Spec.Ports[0].NodePort = int32(30100 + i)
			}
		}, tcpPort(80)))
		eps := map[string]string{}
		for j := range i % 4 {
			eps[fmt.Sprintf("10.244.%d.%d", j%2+1, 10*i+j)] = []string{node1, "node-2"}[j%2]
		}
		objs = append(objs, endpointSlice(name, name+"-a", corev1.ProtocolTCP, 8080, eps, time.Time{}))
	}
	// An update that arrives after its object in some orders: svc-1 gains endpoints.
	late := endpointSlice("svc-1", "svc-1-a", corev1.ProtocolTCP, 8080, map[string]string{"10.244.9.9": "node-9"}, time.Time{})

	var want string
	for seed := range 12 {
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		fk := knftables.NewFake(knftables.InetFamily, "svcnet")
		p := newProxier(testConfig(), &nft.KnftablesBackend{NFT: fk}, nil, nil)
		p.SetSynced()
		order := slices.Clone(objs)
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		seen := map[string]*discoveryv1.EndpointSlice{}
		for _, o := range append(order, late) {
			switch o := o.(type) {
			case *corev1.Service:
				p.OnService(types.NamespacedName{Namespace: o.Namespace, Name: o.Name}, o)
			case *discoveryv1.EndpointSlice:
				p.OnSlice(types.NamespacedName{Namespace: o.Namespace, Name: o.Name}, seen[o.Name], o)
				seen[o.Name] = o
			}
			if r.IntN(3) == 0 {
				if err := p.syncOnce(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := p.syncOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		got := normalizedDump(fk.Dump())
		if seed == 0 {
			want = got
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("seed %d: table depends on event order (-seed0 +got):\n%s", seed, diff)
		}
	}
}

// normalizedDump sorts element lines and lists endpoint slots as sets (see the nft package's tests).
func normalizedDump(dump string) string {
	var rest, elems []string
	slots := map[string][]string{}
	for _, l := range strings.Split(dump, "\n") {
		if !strings.HasPrefix(l, "add element ") {
			rest = append(rest, l)
			continue
		}
		f := strings.Fields(l)
		if set := f[4]; strings.HasPrefix(set, "endpoints-") || strings.HasPrefix(set, "nodeport-endpoints-") {
			body := strings.TrimSuffix(strings.TrimPrefix(l[strings.Index(l, "{"):], "{ "), " }")
			key, val, _ := strings.Cut(body, " : ")
			key = key[:strings.LastIndex(key, " . ")]
			slots[set+" "+key] = append(slots[set+" "+key], val)
			continue
		}
		elems = append(elems, l)
	}
	for k, v := range slots {
		slices.Sort(v)
		elems = append(elems, "slots "+k+" : "+strings.Join(v, ", "))
	}
	slices.Sort(elems)
	return strings.Join(append(rest, elems...), "\n")
}

// TestUDPConntrackCleanup: removing a UDP endpoint deletes the flows it answered; a UDP Service
// getting its first endpoint deletes the flows that were rejected before.
func TestUDPConntrackCleanup(t *testing.T) {
	udp := func(name, ip string) *corev1.Service {
		return service(name, ip, func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.Ports[0].NodePort = 30053
		}, corev1.ServicePort{Name: "p", Protocol: corev1.ProtocolUDP, Port: 53})
	}
	h := newHarness(t, udp("dns", "10.96.0.10"),
		endpointSlice("dns", "dns-1", corev1.ProtocolUDP, 5353, map[string]string{"10.244.1.5": node1, "10.244.2.6": "node-2"}, time.Time{}))
	h.trace(pkt("10.96.0.10", model.UDP, 53), "accept dnat=10.244.1.5:5353 out p=0.500", "accept dnat=10.244.2.6:5353 out p=0.500")
	h.update(endpointSlice("dns", "dns-1", corev1.ProtocolUDP, 5353, map[string]string{"10.244.2.6": "node-2"}, time.Time{}))
	h.trace(pkt("10.96.0.10", model.UDP, 53), "accept dnat=10.244.2.6:5353 out p=1.000")

	h.ct.mu.Lock()
	filters := slices.Clone(h.ct.filters)
	h.ct.mu.Unlock()
	gone := netip.MustParseAddrPort("10.244.1.5:5353")
	var f *conntrack.Filter
	for _, fl := range filters {
		if len(fl.Stale) > 0 {
			f = fl
		}
	}
	if f == nil {
		t.Fatalf("no stale-flow cleanup after the endpoint went: %v", filters)
	}
	for _, e := range []conntrack.Entry{
		{Protocol: 17, OrigDst: netip.MustParseAddrPort("10.96.0.10:53"), ReplySrc: gone},
		{Protocol: 17, OrigDst: netip.MustParseAddrPort("172.31.0.11:30053"), ReplySrc: gone},
	} {
		if !f.Match(e) {
			t.Errorf("stale flow %+v not selected (filter %s)", e, f)
		}
	}
	for _, e := range []conntrack.Entry{
		{Protocol: 17, OrigDst: netip.MustParseAddrPort("10.96.0.10:53"), ReplySrc: netip.MustParseAddrPort("10.244.2.6:5353")},
		{Protocol: 6, OrigDst: netip.MustParseAddrPort("10.96.0.10:53"), ReplySrc: gone},
		{Protocol: 17, OrigDst: netip.MustParseAddrPort("10.96.0.99:53"), ReplySrc: gone},
	} {
		if f.Match(e) {
			t.Errorf("live flow %+v selected (filter %s)", e, f)
		}
	}

	// A UDP Service that had no endpoint gets one: its unNATed flows go.
	h.create(udp("late", "10.96.0.20"))
	h.trace(pkt("10.96.0.20", model.UDP, 53), "reject p=1.000")
	h.create(endpointSlice("late", "late-1", corev1.ProtocolUDP, 5353, map[string]string{"10.244.2.8": "node-2"}, time.Time{}))
	h.trace(pkt("10.96.0.20", model.UDP, 53), "accept dnat=10.244.2.8:5353 out p=1.000")
	h.ct.mu.Lock()
	defer h.ct.mu.Unlock()
	unNATed := conntrack.Entry{Protocol: 17, OrigDst: netip.MustParseAddrPort("10.96.0.20:53"), ReplySrc: netip.MustParseAddrPort("10.96.0.20:53")}
	found := false
	for _, fl := range h.ct.filters {
		found = found || fl.Match(unNATed)
	}
	if !found {
		t.Errorf("flows rejected before the first endpoint are not cleaned up")
	}
}

// TestHealthCheckNodePort: a LoadBalancer Service with externalTrafficPolicy Local gets a health
// check server answering 200 with the local endpoint count, 503 without local endpoints.
func TestHealthCheckNodePort(t *testing.T) {
	lb := service("lb", "10.96.0.30", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		s.Spec.HealthCheckNodePort = 32000
		s.Spec.Ports[0].NodePort = 30080
	}, tcpPort(80))
	h := newHarness(t, lb, endpointSlice("lb", "lb-1", corev1.ProtocolTCP, 8080, map[string]string{"10.244.1.5": node1, "10.244.1.6": node1, "10.244.2.6": "node-2"}, time.Time{}))
	check := func(wantCode, wantCount int) {
		t.Helper()
		var code int
		var body Response
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			addr, ok := h.hcAddr.Load("32000")
			if ok {
				resp, err := http.Get("http://" + addr.(string) + "/")
				if err == nil {
					code = resp.StatusCode
					body = Response{}
					_ = json.NewDecoder(resp.Body).Decode(&body)
					resp.Body.Close()
					if code == wantCode && body.LocalEndpoints == wantCount {
						if body.Service.Name != "lb" || body.Service.Namespace != "default" {
							t.Errorf("body names %+v", body.Service)
						}
						return
					}
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("health check: %d %+v, want %d with %d local endpoints", code, body, wantCode, wantCount)
	}
	check(200, 2)
	h.update(endpointSlice("lb", "lb-1", corev1.ProtocolTCP, 8080, map[string]string{"10.244.2.6": "node-2"}, time.Time{}))
	check(503, 0)
}

// Response mirrors healthcheck.Response for decoding.
type Response = healthcheck.Response

func TestStaleFlowsIgnoresTCP(t *testing.T) {
	sp := &model.ServicePort{Name: model.ServicePortName{Namespace: "d", Name: "s", Protocol: model.TCP}, ClusterIP: netip.MustParseAddr("10.96.0.1"), Port: 80}
	eps := []model.Endpoint{{IP: netip.MustParseAddr("10.244.1.1"), Port: 80, Ready: true, Serving: true}}
	o := nft.Options{}
	old := nft.BuildService(sp, eps, model.Node{}, o, nil)
	nw := nft.BuildService(sp, nil, model.Node{}, o, old)
	if f := staleFlows(map[model.ServicePortName]nft.Change{sp.Name: {Old: old, New: nw}}); !f.Empty() {
		t.Errorf("TCP change produced conntrack work: %s", f)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{}
	c.Default()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "NodeName") {
		t.Errorf("missing node name: %v", err)
	}
	c = testConfig()
	c.NodeIPs = []netip.Addr{netip.MustParseAddr("fd00::1")}
	c.Backend = "iptables"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "IPv4") || !strings.Contains(err.Error(), "backend") {
		t.Errorf("bad config accepted: %v", err)
	}
	good := testConfig()
	if err := good.Validate(); err != nil {
		t.Error(err)
	}
}
