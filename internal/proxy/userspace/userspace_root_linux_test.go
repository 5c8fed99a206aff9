package userspace

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/svcnet/svcnet/internal/netnstest"
)

const nsPrefix = "svcnet-t-us-"

// world is a node namespace running the userspace proxy, with an outside client, a pod client and
// two backend pods, each in its own namespace and wired to the node with a veth pair:
//
//	outside 172.31.0.200 ── 172.31.0.11 node ── 10.244.1.1 ── 10.244.1.5 backend-1 (node-1: local)
//	                                          ├─ 10.244.2.1 ── 10.244.2.6 backend-2 (node-2)
//	                                          └─ 10.244.3.1 ── 10.244.3.9 pod client
//
// The node has no nftables rules and no IP forwarding: everything goes through the proxy's sockets.
type world struct {
	t                                *testing.T
	node, outside, pod, back1, back2 *netnstest.NS
	client                           *fake.Clientset
	stop                             func()
}

func newWorld(t *testing.T) *world {
	netnstest.RequireRoot(t)
	ns := func() *netnstest.NS { return netnstest.NewWithPrefix(t, nsPrefix) }
	w := &world{t: t, node: ns(), outside: ns(), pod: ns(), back1: ns(), back2: ns()}
	pfx := netip.MustParsePrefix
	gw := netip.MustParseAddr
	netnstest.Link(t, w.node, "eth0", pfx("172.31.0.11/24"), w.outside, "eth0", pfx("172.31.0.200/24"))
	netnstest.Link(t, w.node, "veth-b1", pfx("10.244.1.1/24"), w.back1, "eth0", pfx("10.244.1.5/24"))
	netnstest.Link(t, w.node, "veth-b2", pfx("10.244.2.1/24"), w.back2, "eth0", pfx("10.244.2.6/24"))
	netnstest.Link(t, w.node, "veth-p", pfx("10.244.3.1/24"), w.pod, "eth0", pfx("10.244.3.9/24"))
	w.outside.Route(t, netip.Prefix{}, gw("172.31.0.11"))
	w.back1.Route(t, netip.Prefix{}, gw("10.244.1.1"))
	w.back2.Route(t, netip.Prefix{}, gw("10.244.2.1"))
	w.pod.Route(t, netip.Prefix{}, gw("10.244.3.1"))
	w.serve(w.back1, "backend-1")
	w.serve(w.back2, "backend-2")

	w.client = fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode}})
	// The fake clientset's watches have no resourceVersion: an object created between an
	// informer's list and its watch is never seen. Objects are created once the three watches run.
	var watches atomic.Int32
	w.client.PrependWatchReactor("*", func(k8stesting.Action) (bool, watch.Interface, error) {
		watches.Add(1)
		return false, nil, nil
	})
	level := slog.LevelInfo
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	cfg := Config{NodeName: testNode, NodeIPs: []netip.Addr{nodeIP}, ClusterCIDR: pfx("10.244.0.0/16"),
		MinSyncPeriod: time.Millisecond, UDPIdleTimeout: 2 * time.Second, Netns: w.node.Handle,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := Run(ctx, w.client, cfg); err != nil {
			t.Errorf("userspace proxy: %v", err)
		}
	}()
	var once bool
	w.stop = func() {
		if !once {
			once = true
			cancel()
			<-done
		}
	}
	t.Cleanup(w.stop)
	for deadline := time.Now().Add(10 * time.Second); watches.Load() < 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the proxy's informers did not start")
		}
	}
	time.Sleep(50 * time.Millisecond) // the reactor runs just before the watch is registered
	return w
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

func (w *world) apply(t *testing.T, objs ...any) {
	t.Helper()
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
			t.Fatal(err)
		}
	}
}

// dialTCP connects from ns and returns the backend's answer ("backend-1 10.244.1.1:41234").
func dialTCP(ns *netnstest.NS, addr string, timeout time.Duration) (string, error) {
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, timeout)
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// askUDP sends one datagram from a new socket in ns and returns the answer's first word. The
// socket is connected, so only an answer from the Service address itself is received.
func askUDP(ns *netnstest.NS, addr string, timeout time.Duration) (string, error) {
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.Dial("udp4", addr)
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	_, _ = c.Write([]byte("q"))
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	name, _, _ := strings.Cut(string(buf[:n]), " ")
	return name, nil
}

// reach asks until every backend in want has answered (failing after a while), and returns the
// client address each backend saw (TCP) or "" (UDP).
func (w *world) reach(t *testing.T, from *netnstest.NS, proto, addr string, want ...string) map[string]string {
	t.Helper()
	seen := map[string]string{}
	var last error
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var ans string
		var err error
		if proto == "udp" {
			ans, err = askUDP(from, addr, 300*time.Millisecond)
		} else {
			ans, err = dialTCP(from, addr, time.Second)
		}
		if err != nil {
			last = err
			time.Sleep(20 * time.Millisecond)
			continue
		}
		name, client, _ := strings.Cut(ans, " ")
		seen[name] = client
		done := len(seen) == len(want)
		for _, b := range want {
			_, ok := seen[b]
			done = done && ok
		}
		if done {
			return seen
		}
		if len(seen) > len(want) {
			break
		}
	}
	t.Fatalf("%s %s from %s: answered by %v, want exactly %v (last error %v)", proto, addr, from.Name, seen, want, last)
	return nil
}

// serviceAddrs lists the proxy's Service addresses on the node's loopback.
func (w *world) serviceAddrs(t *testing.T) map[string]bool {
	out := map[string]bool{}
	if err := w.node.Do(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(lo, netlink.FAMILY_V4)
		for _, a := range addrs {
			if a.Label == AddressLabel {
				out[a.IP.String()] = true
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func refusedAtOnce(t *testing.T, ns *netnstest.NS, addr string) {
	t.Helper()
	start := time.Now()
	_, err := dialTCP(ns, addr, 3*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) > time.Second {
		t.Errorf("%s: %v after %v, want connection refused at once", addr, err, time.Since(start))
	}
}

func TestRootUserspace(t *testing.T) {
	w := newWorld(t)
	w.apply(t,
		svc("web", "10.96.0.10", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.Ports[0].NodePort = 30080
		}, port(corev1.ProtocolTCP, 80)),
		slice("web", corev1.ProtocolTCP, 8080, twoEPs),
		svc("dns", "10.96.0.53", nil, port(corev1.ProtocolUDP, 53)),
		slice("dns", corev1.ProtocolUDP, 5353, twoEPs),
		svc("empty", "10.96.0.11", nil, port(corev1.ProtocolTCP, 80), corev1.ServicePort{Name: "u", Protocol: corev1.ProtocolUDP, Port: 53}),
	)

	t.Run("ClusterIP TCP from a pod reaches both backends", func(t *testing.T) {
		seen := w.reach(t, w.pod, "tcp", "10.96.0.10:80", "backend-1", "backend-2")
		// The source is not preserved: backends see the node's address on their link.
		if c := seen["backend-1"]; !strings.HasPrefix(c, "10.244.1.1:") {
			t.Errorf("backend-1 saw %s, want the node's 10.244.1.1", c)
		}
	})
	t.Run("ClusterIP UDP from a pod reaches both backends, answers from the service address", func(t *testing.T) {
		w.reach(t, w.pod, "udp", "10.96.0.53:53", "backend-1", "backend-2")
	})
	t.Run("NodePort from outside and on 127.0.0.1 of the node", func(t *testing.T) {
		w.reach(t, w.outside, "tcp", "172.31.0.11:30080", "backend-1", "backend-2")
		w.reach(t, w.node, "tcp", "127.0.0.1:30080", "backend-1", "backend-2")
	})
	t.Run("no endpoints: refused at once", func(t *testing.T) {
		refusedAtOnce(t, w.pod, "10.96.0.11:80")
		refusedAtOnce(t, w.pod, "10.96.0.10:81") // an unknown port of a ClusterIP
		// UDP: the kernel answers ICMP port unreachable (no socket is bound).
		if _, err := askUDP(w.pod, "10.96.0.11:53", time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("UDP without endpoints: %v, want connection refused (ICMP port unreachable)", err)
		}
	})
	t.Run("endpoints arrive: the listener opens", func(t *testing.T) {
		w.apply(t, slice("empty", corev1.ProtocolTCP, 8080, map[string]string{"10.244.2.6": "node-2"}))
		w.reach(t, w.pod, "tcp", "10.96.0.11:80", "backend-2")
	})
	t.Run("a UDP flow moves when its endpoint is removed", func(t *testing.T) {
		var conn net.Conn
		if err := w.pod.Do(func() error {
			var err error
			conn, err = net.Dial("udp4", "10.96.0.53:53")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ask := func() string {
			buf := make([]byte, 100)
			for range 50 {
				_, _ = conn.Write([]byte("q"))
				_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				if n, err := conn.Read(buf); err == nil {
					name, _, _ := strings.Cut(string(buf[:n]), " ")
					return name
				}
			}
			return ""
		}
		first := ask()
		for range 5 {
			if again := ask(); again != first {
				t.Fatalf("one UDP flow answered by %q then %q", first, again)
			}
		}
		keep, keepIP := "backend-2", "10.244.2.6"
		if first == "backend-2" {
			keep, keepIP = "backend-1", "10.244.1.5"
		}
		w.apply(t, slice("dns", corev1.ProtocolUDP, 5353, map[string]string{keepIP: "node-x"}))
		deadline := time.Now().Add(3 * time.Second)
		got := ""
		for time.Now().Before(deadline) {
			if got = ask(); got == keep {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("after removing %s, the flow is answered by %q", first, got)
	})
	t.Run("ClientIP affinity sticks", func(t *testing.T) {
		w.apply(t, svc("sticky", "10.96.0.12", func(s *corev1.Service) {
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](60)}}
		}, port(corev1.ProtocolTCP, 80)), slice("sticky", corev1.ProtocolTCP, 8080, twoEPs))
		var first string
		for range 500 {
			if ans, err := dialTCP(w.pod, "10.96.0.12:80", time.Second); err == nil {
				first, _, _ = strings.Cut(ans, " ")
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if first == "" {
			t.Fatal("the affinity Service never answered")
		}
		for range 20 {
			ans, err := dialTCP(w.pod, "10.96.0.12:80", time.Second)
			if name, _, _ := strings.Cut(ans, " "); err != nil || name != first {
				t.Fatalf("affinity: answered by %q (%v) after %q", name, err, first)
			}
		}
	})
	t.Run("externalTrafficPolicy Local: outside clients reach the local endpoint only", func(t *testing.T) {
		w.apply(t, svc("local", "10.96.0.13", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.Ports[0].NodePort = 30090
		}, port(corev1.ProtocolTCP, 80)), slice("local", corev1.ProtocolTCP, 8080, twoEPs))
		w.reach(t, w.outside, "tcp", "172.31.0.11:30090", "backend-1")
		// Pods and the node itself use every endpoint.
		w.reach(t, w.pod, "tcp", "172.31.0.11:30090", "backend-1", "backend-2")
		w.reach(t, w.node, "tcp", "127.0.0.1:30090", "backend-1", "backend-2")
	})
	t.Run("deleting a Service removes its address", func(t *testing.T) {
		if !w.serviceAddrs(t)["10.96.0.10"] {
			t.Fatalf("service addresses %v: no 10.96.0.10", w.serviceAddrs(t))
		}
		if err := w.client.CoreV1().Services("default").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for w.serviceAddrs(t)["10.96.0.10"] && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := w.serviceAddrs(t); got["10.96.0.10"] || !got["10.96.0.53"] {
			t.Errorf("after deleting web: service addresses %v", got)
		}
		// Its NodePort is closed too.
		refusedAtOnce(t, w.outside, "172.31.0.11:30080")
	})
	t.Run("stopping the proxy removes every address", func(t *testing.T) {
		w.stop()
		if got := w.serviceAddrs(t); len(got) != 0 {
			t.Errorf("after stopping: service addresses %v", got)
		}
	})
}
