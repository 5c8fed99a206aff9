package dns

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// testSerial is the SOA serial of the fixture: the fixed clock's time (the serial of CoreDNS's tests).
const testSerial = 1499347823

var testNow = time.Unix(testSerial, 0)

// testSOA is the zone's SOA as every negative answer carries it.
const testSOA = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1499347823 7200 1800 86400 5"

func ns(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "1"}}
}

func tcp(name string, p int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: p, Protocol: corev1.ProtocolTCP}
}

func udp(name string, p int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: p, Protocol: corev1.ProtocolUDP}
}

func clusterIP(namespace, name string, ips []string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, ResourceVersion: "1"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: ips[0], ClusterIPs: ips, Ports: ports},
	}
}

func headless(namespace, name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, ResourceVersion: "1"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "None", ClusterIPs: []string{"None"}, Ports: ports},
	}
}

func externalName(namespace, name, target string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, ResourceVersion: "1"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: target},
	}
}

func ptr[T any](v T) *T { return &v }

func epPort(name string, proto corev1.Protocol, p int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr(name), Protocol: ptr(proto), Port: ptr(p)}
}

// ep is an endpoint; hostname may be "".
func ep(ip string, ready bool, hostname string) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(ready), Serving: ptr(ready)}}
	if hostname != "" {
		e.Hostname = ptr(hostname)
	}
	return e
}

func epSlice(namespace, service, name string, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	at := discoveryv1.AddressTypeIPv4
	if len(eps) > 0 && strings.Contains(eps[0].Addresses[0], ":") {
		at = discoveryv1.AddressTypeIPv6
	}
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: namespace, Name: name, ResourceVersion: "1", Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: at,
		Ports:       ports,
		Endpoints:   eps,
	}
}

func testPod(namespace, name, hostname, subdomain, ip string, ready bool) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, ResourceVersion: "1"},
		Spec:       corev1.PodSpec{Hostname: hostname, Subdomain: subdomain},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}},
		},
	}
}

// fixture is the fixed set of objects the table tests answer from.
func fixture() []runtime.Object {
	http := []discoveryv1.EndpointPort{epPort("http", corev1.ProtocolTCP, 80)}
	pnr := headless("testns", "pnr", tcp("http", 80))
	pnr.Spec.PublishNotReadyAddresses = true
	terminating := ep("172.0.0.41", false, "")
	terminating.Conditions.Serving = ptr(true)
	terminating.Conditions.Terminating = ptr(true)
	return []runtime.Object{
		ns("testns"), ns("default"), ns("kube-system"), ns("empty"),

		clusterIP("kube-system", "kube-dns", []string{"10.96.0.10"}, udp("dns", 53), tcp("dns-tcp", 53)),
		clusterIP("default", "kubernetes", []string{"10.96.0.1"}, tcp("https", 443)),

		clusterIP("testns", "svc1", []string{"10.0.0.1"}, tcp("http", 80)),
		epSlice("testns", "svc1", "svc1-x1", http, ep("10.244.0.5", true, "")),
		clusterIP("testns", "svc6", []string{"1234:abcd::1"}, tcp("http", 80)),
		clusterIP("testns", "dual", []string{"10.0.0.3", "fd00::3"}, tcp("http", 80), udp("dns", 53)),
		clusterIP("testns", "unnamed", []string{"10.0.0.4"}, tcp("", 8080)),

		headless("testns", "hdls1", tcp("http", 80)),
		epSlice("testns", "hdls1", "hdls1-v4", http,
			ep("172.0.0.2", true, ""), ep("172.0.0.3", true, ""),
			ep("172.0.0.4", true, "dup-name"), ep("172.0.0.5", true, "dup-name"),
			ep("172.0.0.6", false, "")),
		epSlice("testns", "hdls1", "hdls1-v6", http, ep("5678:abcd::1", true, ""), ep("5678:abcd::2", true, "")),

		headless("testns", "hdlsprtls"),
		epSlice("testns", "hdlsprtls", "hdlsprtls-1", nil, ep("172.0.0.20", true, "")),
		headless("testns", "hdlsempty", tcp("http", 80)),
		epSlice("testns", "hdlsempty", "hdlsempty-1", http, ep("172.0.0.21", false, ""), terminating),
		headless("testns", "hdlsnoslice", tcp("http", 80)),

		pnr,
		epSlice("testns", "pnr", "pnr-1", http, ep("172.0.0.30", false, "pnr-0")),

		headless("testns", "web", tcp("http", 80), tcp("metrics", 9090)),
		epSlice("testns", "web", "web-abc", []discoveryv1.EndpointPort{epPort("http", corev1.ProtocolTCP, 80), epPort("metrics", corev1.ProtocolTCP, 9090)},
			ep("10.244.1.10", true, "web-0"), ep("10.244.1.11", true, "web-1")),

		headless("testns", "sub"),
		testPod("testns", "mypod", "mypod", "sub", "10.244.2.5", true),
		testPod("testns", "sleepy", "sleepy", "sub", "10.244.2.6", false),
		testPod("testns", "plain", "", "", "10.244.2.7", true),

		externalName("testns", "external", "ext.interwebs.test"),
		externalName("testns", "external-to-service", "svc1.testns.svc.cluster.local"),
		externalName("testns", "ext-ip", "1.2.3.4"),
		externalName("testns", "extself", "extself.testns.svc.cluster.local."),
		externalName("testns", "ext-missing", "nothere.testns.svc.cluster.local"),
	}
}

// newFixtureServer is a server whose index holds objs, fed through the informers' transform and event
// handlers (no API server), and marked synced. It opens no socket.
func newFixtureServer(t testing.TB, cfg Config, objs ...runtime.Object) *Server {
	t.Helper()
	if cfg.Listen == nil {
		cfg.Listen = []string{"10.96.0.10:53"}
	}
	if cfg.Upstreams == nil {
		cfg.Upstreams = []string{cfg.Listen[0]} // ourselves: ignored, so nothing is ever forwarded
	}
	if cfg.now == nil {
		cfg.now = func() time.Time { return testNow }
	}
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	feed(s, objs...)
	s.synced.Store(true)
	return s
}

// feed adds objects to the index the way the informers' handlers do.
func feed(s *Server, objs ...runtime.Object) {
	tr := &transformer{strs: newInterner(), podIPs: s.ix.indexPods}
	for _, o := range objs {
		slim, _ := tr.transform(o)
		switch v := slim.(type) {
		case *service:
			s.ix.setService(nil, v)
		case *slice:
			s.ix.setSlice(nil, v)
		case *pod:
			s.ix.setPod(nil, v)
		case *podStub:
			s.ix.counts[countPods].Add(1)
		case *namespace:
			s.ix.setNamespace(v.name, true)
		default:
			panic(fmt.Sprintf("unexpected %T", o))
		}
	}
}

// testCase is one question and its expected answer, records in zone-file text.
type testCase struct {
	qname  string
	qtype  uint16
	rcode  int
	answer []string
	ns     []string
	extra  []string
	do     bool // set the EDNS0 DO bit
}

func (tc testCase) msg() *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(tc.qname, tc.qtype)
	if tc.do {
		m.SetEdns0(1232, true)
	}
	return m
}

func (tc testCase) String() string {
	return fmt.Sprintf("%s/%s", tc.qname, dns.TypeToString[tc.qtype])
}

// serve runs one question through h the way the server does: a handler that does not write gets its
// rcode written for it.
func serve(t testing.TB, h Handler, r *dns.Msg) *dns.Msg {
	t.Helper()
	rec := &recorder{}
	rcode, _ := h.ServeDNS(context.Background(), rec, r)
	if rec.msg == nil {
		if clientWrite(rcode) {
			t.Fatalf("%s: handler returned %s without writing", r.Question[0].Name, dns.RcodeToString[rcode])
		}
		m := new(dns.Msg)
		m.SetRcode(r, rcode)
		return m
	}
	return rec.msg
}

// check compares a response with the case, each section as a sorted list of records.
func check(t testing.TB, tc testCase, m *dns.Msg) {
	t.Helper()
	if m.Rcode != tc.rcode {
		t.Errorf("%s: rcode %s, want %s\n%s", tc, dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode], m)
		return
	}
	section := func(name string, got []dns.RR, want []string) {
		var g, w []string
		for _, rr := range got {
			if rr.Header().Rrtype == dns.TypeOPT {
				continue
			}
			g = append(g, rr.String())
		}
		for _, s := range want {
			rr, err := dns.NewRR(s)
			if err != nil {
				t.Fatalf("%s: bad expected record %q: %v", tc, s, err)
			}
			w = append(w, rr.String())
		}
		slices.Sort(g)
		slices.Sort(w)
		if !slices.Equal(g, w) {
			t.Errorf("%s: %s section:\n got  %s\n want %s", tc, name, strings.Join(g, "\n      "), strings.Join(w, "\n      "))
		}
	}
	section("answer", m.Answer, tc.answer)
	section("authority", m.Ns, tc.ns)
	section("additional", m.Extra, tc.extra)
}

// runTable runs the cases in shuffled order (DESIGN convention 6).
func runTable(t *testing.T, h Handler, cases []testCase) {
	t.Helper()
	order := rand.Perm(len(cases))
	for _, i := range order {
		tc := cases[i]
		check(t, tc, serve(t, h, tc.msg()))
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// freePort returns a 127.0.0.1 port free for both UDP and TCP at the time of the call.
func freePort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}
