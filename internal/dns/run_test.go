package dns

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// waitAnswer queries until check accepts the response, and returns how long that took.
func waitAnswer(t *testing.T, addr, name string, qtype uint16, within time.Duration, ok func(*dns.Msg) bool) time.Duration {
	t.Helper()
	start := time.Now()
	var last *dns.Msg
	for time.Since(start) < within {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		m, err := Query(ctx, addr, name, qtype)
		cancel()
		if err == nil {
			last = m
			if ok(m) {
				return time.Since(start)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s %s: no acceptable answer within %v; last:\n%v", name, dns.TypeToString[qtype], within, last)
	return 0
}

func hasA(ip string) func(*dns.Msg) bool {
	return func(m *dns.Msg) bool {
		for _, rr := range m.Answer {
			if a, ok := rr.(*dns.A); ok && a.A.String() == ip {
				return true
			}
		}
		return false
	}
}

func rcodeIs(rc int) func(*dns.Msg) bool { return func(m *dns.Msg) bool { return m.Rcode == rc } }

// Run end to end: client-go's fake clientset feeds the informers, queries go over real UDP and TCP
// sockets on 127.0.0.1.
func TestRun(t *testing.T) {
	up := startUpstream(t, zoneAnswers)
	objs := []runtime.Object{
		ns("default"), ns("kube-system"),
		clusterIP("default", "my-service", []string{"10.96.0.50"}, tcp("http", 80)),
		headless("default", "web", tcp("http", 80)),
		epSlice("default", "web", "web-1", []discoveryv1.EndpointPort{epPort("http", corev1.ProtocolTCP, 80)},
			ep("10.244.1.10", true, "web-0"), ep("10.244.2.11", true, "web-1")),
		externalName("default", "ext", "www.example"),
		testPod("default", "client", "", "", "10.244.1.20", true),
	}
	client := fake.NewClientset(objs...)
	// Hold the pod list back, to see SERVFAIL before the informers have synced.
	release := make(chan struct{})
	client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		<-release
		return false, nil, nil
	})
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, client, Config{Listen: []string{addr}, Upstreams: []string{up.addr}, Logger: discardLogger()})
	}()

	// Not synced yet: cluster names SERVFAIL, other names are forwarded.
	waitAnswer(t, addr, "my-service.default.svc.cluster.local", dns.TypeA, 5*time.Second, rcodeIs(dns.RcodeServerFailure))
	waitAnswer(t, addr, "www.example", dns.TypeA, time.Second, hasA("192.0.2.1"))
	close(release)

	waitAnswer(t, addr, "my-service.default.svc.cluster.local", dns.TypeA, 5*time.Second, hasA("10.96.0.50"))
	waitAnswer(t, addr, "web.default.svc.cluster.local", dns.TypeA, time.Second, func(m *dns.Msg) bool { return len(m.Answer) == 2 })
	waitAnswer(t, addr, "web-0.web.default.svc.cluster.local", dns.TypeA, time.Second, hasA("10.244.1.10"))
	waitAnswer(t, addr, "_http._tcp.web.default.svc.cluster.local", dns.TypeSRV, time.Second, func(m *dns.Msg) bool { return len(m.Answer) == 2 })
	waitAnswer(t, addr, "ext.default.svc.cluster.local", dns.TypeA, time.Second, hasA("192.0.2.1"))
	waitAnswer(t, addr, "50.0.96.10.in-addr.arpa", dns.TypePTR, time.Second, func(m *dns.Msg) bool {
		return len(m.Answer) == 1 && m.Answer[0].(*dns.PTR).Ptr == "my-service.default.svc.cluster.local."
	})
	tcpClient := &dns.Client{Net: "tcp", Timeout: time.Second}
	q := new(dns.Msg)
	q.SetQuestion("my-service.default.svc.cluster.local.", dns.TypeA)
	if r, _, err := tcpClient.Exchange(q, addr); err != nil || !hasA("10.96.0.50")(r) {
		t.Fatalf("tcp: %v %v", r, err)
	}

	// A new service answers within a second of its creation; a deleted one answers NXDOMAIN.
	if _, err := client.CoreV1().Services("default").Create(ctx, clusterIP("default", "new-svc", []string{"10.96.0.77"}, tcp("http", 80)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := waitAnswer(t, addr, "new-svc.default.svc.cluster.local", dns.TypeA, time.Second, hasA("10.96.0.77"))
	t.Logf("service creation visible in DNS after %v", d)
	if err := client.CoreV1().Services("default").Delete(ctx, "new-svc", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAnswer(t, addr, "new-svc.default.svc.cluster.local", dns.TypeA, time.Second, rcodeIs(dns.RcodeNameError))

	// Endpoint changes: a pod going unready leaves the headless answer.
	sl := epSlice("default", "web", "web-1", []discoveryv1.EndpointPort{epPort("http", corev1.ProtocolTCP, 80)},
		ep("10.244.1.10", true, "web-0"), ep("10.244.2.11", false, "web-1"))
	sl.ResourceVersion = "2"
	if _, err := client.DiscoveryV1().EndpointSlices("default").Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAnswer(t, addr, "web.default.svc.cluster.local", dns.TypeA, time.Second, func(m *dns.Msg) bool { return len(m.Answer) == 1 })
	waitAnswer(t, addr, "web-1.web.default.svc.cluster.local", dns.TypeA, time.Second, rcodeIs(dns.RcodeNameError))

	// A pod with hostname and subdomain, under a headless service of that name.
	if _, err := client.CoreV1().Pods("default").Create(ctx, testPod("default", "db-pod", "db", "web", "10.244.3.3", true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAnswer(t, addr, "db.web.default.svc.cluster.local", dns.TypeA, time.Second, hasA("10.244.3.3"))

	// A namespace and a service in it; deleting the namespace takes its names away.
	client.CoreV1().Namespaces().Create(ctx, ns("team"), metav1.CreateOptions{})
	client.CoreV1().Services("team").Create(ctx, clusterIP("team", "api", []string{"10.96.0.88"}, tcp("http", 80)), metav1.CreateOptions{})
	waitAnswer(t, addr, "api.team.svc.cluster.local", dns.TypeA, time.Second, hasA("10.96.0.88"))
	client.CoreV1().Namespaces().Delete(ctx, "team", metav1.DeleteOptions{})
	waitAnswer(t, addr, "api.team.svc.cluster.local", dns.TypeA, time.Second, rcodeIs(dns.RcodeNameError))

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestRunBadConfig(t *testing.T) {
	err := Run(context.Background(), fake.NewClientset(), Config{Listen: []string{"nope"}, PodRecords: "sometimes", Zone: "bad..zone"})
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{`listen "nope"`, `podRecords "sometimes"`, `zone "bad..zone"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
