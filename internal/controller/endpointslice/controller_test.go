package endpointslice_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/svcnet/svcnet/internal/controller"
	"github.com/svcnet/svcnet/internal/testenv"
)

// start runs every controller against a fresh control plane; stop ends them.
func start(t *testing.T, env *testenv.Env, o controller.Options) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := controller.Run(ctx, env.Config, o); err != nil {
			t.Errorf("controllers: %v", err)
		}
	}()
	return func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("controllers did not stop")
		}
	}
}

func node(t *testing.T, c kubernetes.Interface, name, zone string) {
	t.Helper()
	_, err := c.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{corev1.LabelTopologyZone: zone}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

type podSpec struct {
	name   string
	labels map[string]string
	ip     string
	ready  bool
	ports  map[string]int32 // container port name -> number
	node   string
}

func pod(t *testing.T, c kubernetes.Interface, p podSpec) {
	t.Helper()
	ctx := context.Background()
	var ports []corev1.ContainerPort
	names := make([]string, 0, len(p.ports))
	for n := range p.ports {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ports = append(ports, corev1.ContainerPort{Name: n, ContainerPort: p.ports[n]})
	}
	if p.node == "" {
		p.node = "node-1"
	}
	obj, err := c.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.name, Labels: p.labels},
		Spec: corev1.PodSpec{NodeName: p.node, Containers: []corev1.Container{{Name: "c",
			Image: "registry.k8s.io/e2e-test-images/agnhost:2.53", Ports: ports}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	setStatus(t, c, obj, p.ip, p.ready)
}

func setStatus(t *testing.T, c kubernetes.Interface, p *corev1.Pod, ip string, ready bool) {
	t.Helper()
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	// The QoS class is set at create and immutable, as in kube.
	p.Status = corev1.PodStatus{QOSClass: p.Status.QOSClass, Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}}
	if _, err := c.CoreV1().Pods("default").UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func service(t *testing.T, c kubernetes.Interface, name string, selector map[string]string, ports ...corev1.ServicePort) {
	t.Helper()
	if len(ports) == 0 {
		ports = []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}
	}
	_, err := c.CoreV1().Services("default").Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{Selector: selector, Ports: ports},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// state renders a Service's slices as sorted "ip ports ready/serving/terminating" lines.
func state(t *testing.T, c kubernetes.Interface, svc string) []string {
	t.Helper()
	l, err := c.DiscoveryV1().EndpointSlices("default").List(context.Background(), metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range l.Items {
		var ports []string
		for _, p := range s.Ports {
			ports = append(ports, fmt.Sprintf("%s=%d", ptrStr(p.Name), ptrInt(p.Port)))
		}
		sort.Strings(ports)
		for _, e := range s.Endpoints {
			out = append(out, fmt.Sprintf("%s [%s] r=%v s=%v t=%v", e.Addresses[0], strings.Join(ports, ","),
				ptrBool(e.Conditions.Ready), ptrBool(e.Conditions.Serving), ptrBool(e.Conditions.Terminating)))
		}
	}
	sort.Strings(out)
	return out
}

func ptrStr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
func ptrInt(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}
func ptrBool(p *bool) bool { return p != nil && *p }

func eventually(t *testing.T, c kubernetes.Interface, svc string, want []string) {
	t.Helper()
	sort.Strings(want)
	var got []string
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		got = state(t, c, svc)
		return slices.Equal(got, want), nil
	})
	if err != nil {
		t.Fatalf("%s slices:\n got %q\nwant %q", svc, got, want)
	}
}

// The seeds' examples: exactly the matching ready pods; a two-label selector matches only pods with
// both labels; named targetPorts resolve per pod, pods with different numbers land in different slices.
func TestSeedServices(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	defer start(t, env, controller.Options{})()
	c := env.Client
	node(t, c, "node-1", "zone-a")
	service(t, c, "my-service", map[string]string{"app": "my-app"})
	service(t, c, "two-labels", map[string]string{"app": "mongodb", "role": "primary"}, corev1.ServicePort{Port: 27017})
	service(t, c, "mongodb", map[string]string{"app": "mongodb"},
		corev1.ServicePort{Name: "mongodb", Port: 27017, TargetPort: intstr.FromString("mongodb-port")},
		corev1.ServicePort{Name: "metrics", Port: 9216, TargetPort: intstr.FromString("metrics")})
	pod(t, c, podSpec{name: "web-1", labels: map[string]string{"app": "my-app"}, ip: "10.244.1.5", ready: true})
	pod(t, c, podSpec{name: "web-2", labels: map[string]string{"app": "my-app"}, ip: "10.244.1.6", ready: true})
	pod(t, c, podSpec{name: "other", labels: map[string]string{"app": "other"}, ip: "10.244.1.7", ready: true})
	pod(t, c, podSpec{name: "mongo-a", labels: map[string]string{"app": "mongodb"}, ip: "10.244.1.10", ready: true,
		ports: map[string]int32{"mongodb-port": 27017, "metrics": 9216}})
	pod(t, c, podSpec{name: "mongo-b", labels: map[string]string{"app": "mongodb"}, ip: "10.244.1.11", ready: true,
		ports: map[string]int32{"mongodb-port": 27018, "metrics": 9217}})

	eventually(t, c, "my-service", []string{"10.244.1.5 [=8080] r=true s=true t=false", "10.244.1.6 [=8080] r=true s=true t=false"})
	eventually(t, c, "two-labels", nil)
	eventually(t, c, "mongodb", []string{
		"10.244.1.10 [metrics=9216,mongodb=27017] r=true s=true t=false",
		"10.244.1.11 [metrics=9217,mongodb=27018] r=true s=true t=false",
	})
	l, _ := c.DiscoveryV1().EndpointSlices("default").List(context.Background(), metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=mongodb"})
	if len(l.Items) != 2 {
		t.Errorf("mongodb has %d slices, want 2 (one per port set)", len(l.Items))
	}
	for _, s := range l.Items {
		if s.Labels[discoveryv1.LabelManagedBy] != "endpointslice-controller.k8s.io" || len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Kind != "Service" {
			t.Errorf("slice %s: labels %v owners %v", s.Name, s.Labels, s.OwnerReferences)
		}
		if s.Endpoints[0].TargetRef == nil || s.Endpoints[0].TargetRef.Kind != "Pod" || ptrStr(s.Endpoints[0].NodeName) != "node-1" || ptrStr(s.Endpoints[0].Zone) != "zone-a" {
			t.Errorf("slice %s endpoint: %+v", s.Name, s.Endpoints[0])
		}
	}
}

// Readiness, termination, label, selector, IP changes and deletion are each reflected.
func TestChangesAreReflected(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	defer start(t, env, controller.Options{})()
	c := env.Client
	ctx := context.Background()
	node(t, c, "node-1", "zone-a")
	service(t, c, "web", map[string]string{"app": "web"})
	pod(t, c, podSpec{name: "a", labels: map[string]string{"app": "web"}, ip: "10.244.1.1", ready: true})
	pod(t, c, podSpec{name: "b", labels: map[string]string{"app": "web"}, ip: "10.244.1.2", ready: true})
	eventually(t, c, "web", []string{"10.244.1.1 [=8080] r=true s=true t=false", "10.244.1.2 [=8080] r=true s=true t=false"})

	b, _ := c.CoreV1().Pods("default").Get(ctx, "b", metav1.GetOptions{})
	setStatus(t, c, b, "10.244.1.2", false) // readiness lost
	eventually(t, c, "web", []string{"10.244.1.1 [=8080] r=true s=true t=false", "10.244.1.2 [=8080] r=false s=false t=false"})

	b, _ = c.CoreV1().Pods("default").Get(ctx, "b", metav1.GetOptions{})
	setStatus(t, c, b, "10.244.1.9", true) // IP change, ready again
	eventually(t, c, "web", []string{"10.244.1.1 [=8080] r=true s=true t=false", "10.244.1.9 [=8080] r=true s=true t=false"})

	// Graceful deletion: the pod stays, terminating and still serving, until its grace period ends.
	if err := c.CoreV1().Pods("default").Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, c, "web", []string{"10.244.1.1 [=8080] r=false s=true t=true", "10.244.1.9 [=8080] r=true s=true t=false"})
	zero := int64(0)
	if err := c.CoreV1().Pods("default").Delete(ctx, "a", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	eventually(t, c, "web", []string{"10.244.1.9 [=8080] r=true s=true t=false"})

	b, _ = c.CoreV1().Pods("default").Get(ctx, "b", metav1.GetOptions{})
	b.Labels = map[string]string{"app": "other"} // label change takes it out
	if _, err := c.CoreV1().Pods("default").Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, c, "web", nil)

	svc, _ := c.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
	svc.Spec.Selector = map[string]string{"app": "other"} // selector change brings it back
	if _, err := c.CoreV1().Services("default").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, c, "web", []string{"10.244.1.9 [=8080] r=true s=true t=false"})

	if err := c.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		l, err := c.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=web"})
		return err == nil && len(l.Items) == 0, nil
	})
	if err != nil {
		t.Fatal("slices outlived their Service")
	}
}

// The same pods created, updated and deleted in different orders end in the same slices.
func TestEventOrderDoesNotMatter(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	defer start(t, env, controller.Options{})()
	c := env.Client
	ctx := context.Background()
	node(t, c, "node-1", "zone-a")
	for round := 0; round < 3; round++ {
		svc := fmt.Sprintf("shuffle-%d", round)
		service(t, c, svc, map[string]string{"app": svc})
		ops := []func(){}
		for i := 0; i < 6; i++ {
			i := i
			name := fmt.Sprintf("%s-p%d", svc, i)
			ip := fmt.Sprintf("10.244.%d.%d", round+2, i+1)
			ops = append(ops, func() {
				pod(t, c, podSpec{name: name, labels: map[string]string{"app": svc}, ip: ip, ready: i%2 == 0})
				if i == 5 { // the last pod leaves again
					zero := int64(0)
					if err := c.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
		rand.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
		for _, op := range ops {
			op()
		}
		var want []string
		for i := 0; i < 5; i++ {
			r := i%2 == 0
			want = append(want, fmt.Sprintf("10.244.%d.%d [=8080] r=%v s=%v t=false", round+2, i+1, r, r))
		}
		eventually(t, c, svc, want)
	}
}

// More than 100 pods are split over several slices of at most 100, with no endpoint twice; a
// restart of the controller in the middle of churn converges without duplicate or orphaned slices.
func TestManyPodsAndRestartMidChurn(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	stop := start(t, env, controller.Options{})
	c := env.Client
	ctx := context.Background()
	node(t, c, "node-1", "zone-a")
	service(t, c, "big", map[string]string{"app": "big"})
	var want []string
	for i := 0; i < 250; i++ {
		ip := fmt.Sprintf("10.244.%d.%d", 10+i/200, i%200+1)
		if i == 120 {
			stop() // kill the controllers mid-churn
			stop = start(t, env, controller.Options{})
		}
		pod(t, c, podSpec{name: fmt.Sprintf("big-%d", i), labels: map[string]string{"app": "big"}, ip: ip, ready: true})
		want = append(want, ip+" [=8080] r=true s=true t=false")
	}
	eventually(t, c, "big", want)
	defer stop()
	l, err := c.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=big"})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 3 {
		t.Errorf("%d slices for 250 endpoints, want 3", len(l.Items))
	}
	for _, s := range l.Items {
		if len(s.Endpoints) > 100 {
			t.Errorf("slice %s has %d endpoints", s.Name, len(s.Endpoints))
		}
	}
}

// A named targetPort that no selected pod defines gets a Warning event on the Service.
func TestUnresolvedNamedPortEvent(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	defer start(t, env, controller.Options{})()
	c := env.Client
	node(t, c, "node-1", "zone-a")
	service(t, c, "named", map[string]string{"app": "named"}, corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("http")})
	pod(t, c, podSpec{name: "nohttp", labels: map[string]string{"app": "named"}, ip: "10.244.1.1", ready: true,
		ports: map[string]int32{"grpc": 9000}})
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := c.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=named,reason=FailedToResolvePort"})
		return err == nil && len(l.Items) > 0, nil
	})
	if err != nil {
		t.Fatal("no FailedToResolvePort event on the Service")
	}
}
