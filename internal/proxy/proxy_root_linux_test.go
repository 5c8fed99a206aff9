package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/svcnet/svcnet/internal/netnstest"
	"github.com/svcnet/svcnet/internal/proxy/conntrack"
	"github.com/svcnet/svcnet/internal/proxy/healthcheck"
	"github.com/svcnet/svcnet/internal/proxy/nft"
)

// world is a node namespace running the proxy, with an outside client, a pod client and two
// backend pods, each in its own namespace and wired to the node with a veth pair:
//
//	outside 172.31.0.200 ── 172.31.0.11 node ── 10.244.1.1 ── 10.244.1.5 backend-1 (node-1: local)
//	                                          ├─ 10.244.2.1 ── 10.244.2.6 backend-2 (node-2)
//	                                          └─ 10.244.3.1 ── 10.244.3.9 pod client
type world struct {
	t                                *testing.T
	node, outside, pod, back1, back2 *netnstest.NS
	client                           *fake.Clientset
	p                                *proxier
}

const (
	back1IP = "10.244.1.5"
	back2IP = "10.244.2.6"
)

func newWorld(t *testing.T) *world {
	netnstest.RequireRoot(t)
	w := &world{t: t, node: netnstest.New(t), outside: netnstest.New(t), pod: netnstest.New(t), back1: netnstest.New(t), back2: netnstest.New(t)}
	pfx := netip.MustParsePrefix
	netnstest.Link(t, w.node, "eth0", pfx("172.31.0.11/24"), w.outside, "eth0", pfx("172.31.0.200/24"))
	netnstest.Link(t, w.node, "veth-b1", pfx("10.244.1.1/24"), w.back1, "eth0", pfx(back1IP+"/24"))
	netnstest.Link(t, w.node, "veth-b2", pfx("10.244.2.1/24"), w.back2, "eth0", pfx(back2IP+"/24"))
	netnstest.Link(t, w.node, "veth-p", pfx("10.244.3.1/24"), w.pod, "eth0", pfx("10.244.3.9/24"))
	w.outside.Route(t, netip.Prefix{}, netip.MustParseAddr("172.31.0.11"))
	// Like a real node, the node has a default route (here towards the outside namespace): traffic
	// to a ClusterIP that is not DNATed is routed (and then rejected or dropped) rather than unroutable.
	w.node.Route(t, netip.Prefix{}, netip.MustParseAddr("172.31.0.200"))
	w.back1.Route(t, netip.Prefix{}, netip.MustParseAddr("10.244.1.1"))
	w.back2.Route(t, netip.Prefix{}, netip.MustParseAddr("10.244.2.1"))
	w.pod.Route(t, netip.Prefix{}, netip.MustParseAddr("10.244.3.1"))
	w.node.Sysctl(t, "net/ipv4/ip_forward", "1")
	w.node.Sysctl(t, "net/ipv4/conf/all/route_localnet", "1")

	// Backends answer TCP on 8080 with their name and the client address they see, UDP on 5353
	// with their name.
	w.serve(w.back1, "backend-1")
	w.serve(w.back2, "backend-2")

	// The proxy, with every socket it opens in the node namespace.
	backend, err := nft.NewNetlinkBackend("svcnet", w.node.Handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Close() })
	ct, err := conntrack.New(w.node.Handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ct.Close)
	cfg := testConfig()
	cfg.NodeIPs = []netip.Addr{netip.MustParseAddr("172.31.0.11")}
	cfg.HealthzBindAddress = "172.31.0.11:10256"
	w.client = fake.NewClientset()
	w.p = newProxier(cfg, backend, ct, nil)
	w.p.hc = healthcheck.NewServices(cfg.NodeIPs, w.listenInNode, w.p.health.Healthy)
	t.Cleanup(w.p.hc.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.p.run(ctx, w.client, w.listenInNode); err != nil {
			t.Errorf("proxy: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitSynced(t, w.p)
	return w
}

func (w *world) listenInNode(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := w.node.Do(func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

func (w *world) serve(ns *netnstest.NS, name string) {
	var l net.Listener
	var u net.PacketConn
	if err := ns.Do(func() error {
		var err error
		if l, err = net.Listen("tcp", ":8080"); err != nil {
			return err
		}
		u, err = net.ListenPacket("udp", ":5353")
		return err
	}); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { l.Close(); u.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s\n", name, c.RemoteAddr())
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := u.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = u.WriteTo([]byte(name+" "+string(buf[:n])), from)
		}
	}()
}

// dial connects from ns to addr and returns the backend's answer ("backend-1 10.244.1.1:41234").
func dial(ns *netnstest.NS, addr string, timeout time.Duration) (string, error) {
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// reach dials until every backend in want has answered (or fails after a while), and returns the
// client addresses each backend saw.
func (w *world) reach(from *netnstest.NS, addr string, want ...string) map[string]string {
	w.t.Helper()
	seen := map[string]string{}
	var last error
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ans, err := dial(from, addr, time.Second)
		if err != nil {
			last = err
			time.Sleep(20 * time.Millisecond)
			continue
		}
		name, client, _ := strings.Cut(ans, " ")
		seen[name] = client
		done := true
		for _, b := range want {
			done = done && seen[b] != ""
		}
		if done && len(seen) == len(want) {
			return seen
		}
		if len(seen) > len(want) {
			break
		}
	}
	w.t.Fatalf("%s from %s: answered by %v, want exactly %v (last error %v)", addr, from.Name, seen, want, last)
	return nil
}

func (w *world) apply(objs ...any) {
	w.t.Helper()
	ctx := context.Background()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.Service:
			_, err = w.client.CoreV1().Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *discoveryv1.EndpointSlice:
			_, err = w.client.DiscoveryV1().EndpointSlices(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
			if err != nil && strings.Contains(err.Error(), "already exists") {
				_, err = w.client.DiscoveryV1().EndpointSlices(o.Namespace).Update(ctx, o, metav1.UpdateOptions{})
			}
		}
		if err != nil {
			w.t.Fatal(err)
		}
	}
}

func twoBackends(svc, slice string, proto corev1.Protocol, port int32) *discoveryv1.EndpointSlice {
	return endpointSlice(svc, slice, proto, port, map[string]string{back1IP: node1, back2IP: "node-2"}, time.Now())
}

func TestRootClusterIPNodePortAndReject(t *testing.T) {
	w := newWorld(t)
	w.apply(
		service("web", "10.96.0.10", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.Ports[0].NodePort = 30080
		}, tcpPort(80)),
		twoBackends("web", "web-1", corev1.ProtocolTCP, 8080),
		service("empty", "10.96.0.11", nil, tcpPort(80)),
	)

	// ClusterIP from a pod: both backends, and they see the pod's address (no masquerade).
	seen := w.reach(w.pod, "10.96.0.10:80", "backend-1", "backend-2")
	for b, client := range seen {
		if !strings.HasPrefix(client, "10.244.3.9:") {
			t.Errorf("%s saw the pod as %s, want 10.244.3.9 (not masqueraded)", b, client)
		}
	}
	// ClusterIP from outside the pod network: masqueraded to the node.
	seen = w.reach(w.outside, "10.96.0.10:80", "backend-1", "backend-2")
	if c := seen["backend-1"]; !strings.HasPrefix(c, "10.244.1.1:") {
		t.Errorf("backend-1 saw the outside client as %s, want the node's 10.244.1.1", c)
	}
	// NodePort from outside, and on 127.0.0.1 from the node itself.
	w.reach(w.outside, "172.31.0.11:30080", "backend-1", "backend-2")
	w.reach(w.node, "127.0.0.1:30080", "backend-1", "backend-2")
	// Hairpin: a backend reaching itself through the Service.
	w.reach(w.back1, "10.96.0.10:80", "backend-1", "backend-2")

	// No endpoints: refused at once (TCP reset), not a timeout; same for an unknown port. (Until the
	// Service "empty" is programmed its address is unallocated and dropped: wait for that first.)
	for range 100 {
		if _, err := dial(w.pod, "10.96.0.11:80", 100*time.Millisecond); errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
	}
	for _, addr := range []string{"10.96.0.11:80", "10.96.0.10:81", "172.31.0.11:30081"} {
		start := time.Now()
		_, err := dial(w.pod, addr, 3*time.Second)
		if !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) > time.Second {
			t.Errorf("%s: %v after %v, want connection refused at once", addr, err, time.Since(start))
		}
	}
	// An unallocated service address: dropped (a timeout).
	if _, err := dial(w.pod, "10.96.0.99:80", 300*time.Millisecond); err == nil || errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("unallocated ClusterIP: %v, want a timeout", err)
	}

	// The proxy's table is in the node namespace only.
	rules := w.node.MustExec(t, "nft", "list", "table", "inet", "svcnet")
	if !strings.Contains(rules, "endpoints-cluster") {
		t.Errorf("node table:\n%s", rules)
	}
	if out, _ := w.outside.Exec("nft", "list", "tables"); strings.Contains(out, "svcnet") {
		t.Errorf("the table leaked into another namespace: %s", out)
	}
}

func TestRootExternalTrafficPolicyLocal(t *testing.T) {
	w := newWorld(t)
	w.apply(
		service("lb", "10.96.0.20", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeLoadBalancer
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.HealthCheckNodePort = 32000
			s.Spec.Ports[0].NodePort = 30090
		}, tcpPort(80)),
		twoBackends("lb", "lb-1", corev1.ProtocolTCP, 8080),
	)
	// From outside: only the local backend, and it sees the client's real address.
	seen := w.reach(w.outside, "172.31.0.11:30090", "backend-1")
	if c := seen["backend-1"]; !strings.HasPrefix(c, "172.31.0.200:") {
		t.Errorf("backend-1 saw %s, want the outside client's 172.31.0.200", c)
	}
	// The health check node port answers 200 with one local endpoint.
	var code int
	var body string
	for range 100 {
		code, body = httpGet(w.outside, "http://172.31.0.11:32000/")
		if code == 200 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != 200 || !strings.Contains(body, `"localEndpoints":1`) {
		t.Errorf("health check: %d %s", code, body)
	}
	if code, _ := httpGet(w.outside, "http://172.31.0.11:10256/healthz"); code != 200 {
		t.Errorf("proxy healthz: %d", code)
	}
	// The local endpoint goes: 503.
	w.apply(endpointSlice("lb", "lb-1", corev1.ProtocolTCP, 8080, map[string]string{back2IP: "node-2"}, time.Now()))
	for range 100 {
		code, body = httpGet(w.outside, "http://172.31.0.11:32000/")
		if code == 503 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != 503 {
		t.Errorf("health check without local endpoints: %d %s", code, body)
	}
}

// httpGet fetches url from inside ns. The transport's dialer opens its socket in ns (the HTTP
// client dials on other goroutines, which would otherwise be in the host namespace).
func httpGet(ns *netnstest.NS, url string) (int, string) {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := ns.Do(func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true, DialContext: dial, Proxy: nil}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestRootUDPFlowMovesOnEndpointRemoval: a UDP flow (same client socket) pinned to one backend by
// conntrack moves to the other at once when its backend is removed from the Service, although the
// removed backend is still up and would keep answering.
func TestRootUDPFlowMovesOnEndpointRemoval(t *testing.T) {
	w := newWorld(t)
	w.apply(
		service("dns", "10.96.0.53", nil, corev1.ServicePort{Name: "p", Protocol: corev1.ProtocolUDP, Port: 53}),
		twoBackends("dns", "dns-1", corev1.ProtocolUDP, 5353),
	)
	var conn net.Conn
	if err := w.pod.Do(func() error {
		var err error
		conn, err = net.Dial("udp", "10.96.0.53:53")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ask := func() string {
		buf := make([]byte, 100)
		for range 200 {
			_, _ = conn.Write([]byte("q"))
			_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			n, err := conn.Read(buf)
			if err == nil {
				name, _, _ := strings.Cut(string(buf[:n]), " ")
				return name
			}
		}
		return ""
	}
	first := ask()
	if first == "" {
		t.Fatal("no answer over UDP")
	}
	for range 5 {
		if again := ask(); again != first {
			t.Fatalf("one UDP flow answered by %s then %s", first, again)
		}
	}
	// Remove the backend that answered; it stays up.
	keep, keepIP := "backend-2", back2IP
	if first == "backend-2" {
		keep, keepIP = "backend-1", back1IP
	}
	w.apply(endpointSlice("dns", "dns-1", corev1.ProtocolUDP, 5353, map[string]string{keepIP: "node-x"}, time.Now()))
	deadline := time.Now().Add(3 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		if got = ask(); got == keep {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("after removing %s, the flow is still answered by %q", first, got)
}

// TestRootRestartAdoptsTable: a second proxy (an agent restart) adopts the table without breaking
// an established connection, and keeps serving.
func TestRootRestartAdoptsTable(t *testing.T) {
	w := newWorld(t)
	w.apply(service("web", "10.96.0.10", nil, tcpPort(80)), twoBackends("web", "web-1", corev1.ProtocolTCP, 8080))
	w.reach(w.pod, "10.96.0.10:80", "backend-1", "backend-2")

	// A long-lived connection through the ClusterIP (to a server that waits before answering).
	var l net.Listener
	if err := w.back2.Do(func() error { var err error; l, err = net.Listen("tcp", ":9000"); return err }); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4)
		_, _ = io.ReadFull(c, buf)
		_, _ = c.Write([]byte("pong"))
	}()
	w.apply(service("slow", "10.96.0.30", nil, tcpPort(90)),
		endpointSlice("slow", "slow-1", corev1.ProtocolTCP, 9000, map[string]string{back2IP: "node-2"}, time.Now()))
	var c net.Conn
	for range 100 {
		if err := w.pod.Do(func() error { var err error; c, err = net.DialTimeout("tcp", "10.96.0.30:90", time.Second); return err }); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c == nil {
		t.Fatal("could not connect to the slow Service")
	}
	defer c.Close()

	// Restart: a new proxier with a new backend adopts the table (same API state).
	backend, err := nft.NewNetlinkBackend("svcnet", w.node.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	p2 := newProxier(w.p.cfg, backend, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = p2.run(ctx, w.client, nil) }()
	waitSynced(t, p2)
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("the established connection broke across the restart: %q %v", buf, err)
	}
	w.reach(w.pod, "10.96.0.10:80", "backend-1", "backend-2")
	_ = ptr.To(1)
}
