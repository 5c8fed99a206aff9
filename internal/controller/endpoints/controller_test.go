package endpoints

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/svcnet/svcnet/internal/testenv"
)

const itNS = "ep-it"

// writeCounter counts write requests (anything but GET) to core/v1 endpoints, by method.
type writeCounter struct {
	mu sync.Mutex
	n  map[string]int
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (w *writeCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(r)
		if r.Method != http.MethodGet && isEndpointsPath(r.URL.Path) {
			w.mu.Lock()
			w.n[r.Method]++
			w.mu.Unlock()
		}
		return resp, err
	})
}

// isEndpointsPath matches /api/v1/namespaces/NS/endpoints[/NAME] (not endpointslices).
func isEndpointsPath(p string) bool {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	return len(parts) >= 5 && parts[0] == "api" && parts[2] == "namespaces" && parts[4] == "endpoints"
}

func (w *writeCounter) reset() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	old := w.n
	w.n = map[string]int{}
	return old
}

func (w *writeCounter) get() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for k, v := range w.n {
		out[k] = v
	}
	return out
}

// running is a started controller with a record of the keys it synced.
type running struct {
	stop   func()
	mu     sync.Mutex
	synced map[string]int
}

func (r *running) syncedOK(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.synced[key] > 0
}

// start runs a controller that reads through env.Client's informers and writes through client.
func start(t *testing.T, env *testenv.Env, client kubernetes.Interface, workers int) *running {
	t.Helper()
	factory := informers.NewSharedInformerFactory(env.Client, 0)
	c := New(client, factory)
	r := &running{synced: map[string]int{}}
	c.onSynced = func(key string, err error) {
		if err == nil {
			r.mu.Lock()
			r.synced[key]++
			r.mu.Unlock()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, workers)
	}()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("controller did not stop")
			}
			factory.Shutdown()
		})
	}
	t.Cleanup(r.stop)
	return r
}

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	last := ""
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) {
			ok, state := cond()
			last = state
			return ok, nil
		})
	if err != nil {
		t.Fatalf("%s: not reached; last state:\n%s", what, last)
	}
}

type itPod struct {
	name   string
	labels map[string]string
	ip     string
	ready  bool
	// metrics is the number of the container port named "metrics"; 0 for none.
	metrics int32
}

func createPod(t *testing.T, c kubernetes.Interface, p itPod) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	var ports []corev1.ContainerPort
	if p.metrics != 0 {
		ports = []corev1.ContainerPort{{Name: "metrics", ContainerPort: p.metrics, Protocol: corev1.ProtocolTCP}}
	}
	obj, err := c.CoreV1().Pods(itNS).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.name, Labels: p.labels},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c",
			Image: "registry.k8s.io/e2e-test-images/agnhost:2.53", Ports: ports}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", p.name, err)
	}
	return setReady(t, c, obj, p.ip, p.ready)
}

func setReady(t *testing.T, c kubernetes.Interface, p *corev1.Pod, ip string, ready bool) *corev1.Pod {
	t.Helper()
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p = p.DeepCopy()
	// The QoS class is set at create and immutable, as in kube.
	p.Status = corev1.PodStatus{QOSClass: p.Status.QOSClass, Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.Now()}}}
	out, err := c.CoreV1().Pods(itNS).UpdateStatus(context.Background(), p, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update status of %s: %v", p.Name, err)
	}
	return out
}

func podAddr(p *corev1.Pod) corev1.EndpointAddress {
	return corev1.EndpointAddress{IP: p.Status.PodIP, NodeName: ptr.To(p.Spec.NodeName),
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID}}
}

// endpointsAre waits until the stored Endpoints name has exactly want as subsets (in any subset
// order) and the given labels.
func endpointsAre(t *testing.T, c kubernetes.Interface, name string, wantLabels map[string]string, want ...corev1.EndpointSubset) *corev1.Endpoints {
	t.Helper()
	var got *corev1.Endpoints
	eventually(t, "endpoints "+name, func() (bool, string) {
		ep, err := c.CoreV1().Endpoints(itNS).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		got = ep
		state := fmt.Sprintf("subsets %s\nlabels %v", canonical(ep.Subsets), ep.Labels)
		if canonical(ep.Subsets) != canonical(want) {
			return false, state + "\nwant " + canonical(want)
		}
		if fmt.Sprint(ep.Labels) != fmt.Sprint(wantLabels) && !(len(ep.Labels) == 0 && len(wantLabels) == 0) {
			return false, state + fmt.Sprintf("\nwant labels %v", wantLabels)
		}
		return true, state
	})
	return got
}

func endpointsGone(t *testing.T, c kubernetes.Interface, name string) {
	t.Helper()
	eventually(t, "endpoints "+name+" deleted", func() (bool, string) {
		_, err := c.CoreV1().Endpoints(itNS).Get(context.Background(), name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}

func TestController(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := context.Background()
	// Every Endpoints request draws kube's deprecation warning; keep the test log readable.
	env.Config.WarningHandler = rest.NoWarnings{}
	api := kubernetes.NewForConfigOrDie(env.Config)
	env.Client = api
	outer := t
	if _, err := api.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: itNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	writes := &writeCounter{n: map[string]int{}}
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(writes.wrap)
	client := kubernetes.NewForConfigOrDie(cfg)
	ctrl := start(t, env, client, 2)

	_, err := api.CoreV1().Services(itNS).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"team": "a"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)},
			{Name: "metrics", Port: 9090, TargetPort: intstr.FromString("metrics")},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A Service with a selector and no pods gets an empty Endpoints object.
	endpointsAre(t, api, "web", map[string]string{"team": "a"})

	web1 := createPod(t, api, itPod{name: "web-1", labels: map[string]string{"app": "web"}, ip: "10.244.1.11", ready: true, metrics: 9100})
	web2 := createPod(t, api, itPod{name: "web-2", labels: map[string]string{"app": "web"}, ip: "10.244.1.12", ready: true, metrics: 9100})
	web3 := createPod(t, api, itPod{name: "web-3", labels: map[string]string{"app": "web"}, ip: "10.244.1.13", ready: true, metrics: 9200})
	createPod(t, api, itPod{name: "other", labels: map[string]string{"app": "other"}, ip: "10.244.1.20", ready: true})
	http8080, m9100, m9200 := tcp("http", 8080), tcp("metrics", 9100), tcp("metrics", 9200)
	ep := endpointsAre(t, api, "web", map[string]string{"team": "a"},
		corev1.EndpointSubset{Addresses: as(podAddr(web1), podAddr(web2), podAddr(web3)), Ports: ps(http8080)},
		corev1.EndpointSubset{Addresses: as(podAddr(web1), podAddr(web2)), Ports: ps(m9100)},
		corev1.EndpointSubset{Addresses: as(podAddr(web3)), Ports: ps(m9200)},
	)
	if _, err := time.Parse(time.RFC3339Nano, ep.Annotations[corev1.EndpointsLastChangeTriggerTime]); err != nil {
		t.Errorf("trigger time annotation: %v (%v)", err, ep.Annotations)
	}

	t.Run("readiness flip", func(t *testing.T) {
		web2 = setReady(t, api, web2, web2.Status.PodIP, false)
		endpointsAre(t, api, "web", map[string]string{"team": "a"},
			corev1.EndpointSubset{Addresses: as(podAddr(web1), podAddr(web3)), NotReadyAddresses: as(podAddr(web2)), Ports: ps(http8080)},
			corev1.EndpointSubset{Addresses: as(podAddr(web1)), NotReadyAddresses: as(podAddr(web2)), Ports: ps(m9100)},
			corev1.EndpointSubset{Addresses: as(podAddr(web3)), Ports: ps(m9200)},
		)
	})

	t.Run("label change", func(t *testing.T) {
		p := web3.DeepCopy()
		p.Labels = map[string]string{"app": "other"}
		var err error
		if web3, err = api.CoreV1().Pods(itNS).Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		endpointsAre(t, api, "web", map[string]string{"team": "a"},
			corev1.EndpointSubset{Addresses: as(podAddr(web1)), NotReadyAddresses: as(podAddr(web2)), Ports: sortedPorts(http8080, m9100)},
		)
	})

	t.Run("pod deletion", func(t *testing.T) {
		// A graceful delete leaves the pod terminating (no kubelet here): it leaves the Endpoints at once.
		if err := api.CoreV1().Pods(itNS).Delete(ctx, "web-2", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		endpointsAre(t, api, "web", map[string]string{"team": "a"},
			corev1.EndpointSubset{Addresses: as(podAddr(web1)), Ports: sortedPorts(http8080, m9100)})
		if err := api.CoreV1().Pods(itNS).Delete(ctx, "web-2", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "web-2 gone", func() (bool, string) {
			_, err := api.CoreV1().Pods(itNS).Get(ctx, "web-2", metav1.GetOptions{})
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		})
		endpointsAre(t, api, "web", map[string]string{"team": "a"},
			corev1.EndpointSubset{Addresses: as(podAddr(web1)), Ports: sortedPorts(http8080, m9100)})
	})

	t.Run("manual edit is reverted", func(t *testing.T) {
		cur, err := api.CoreV1().Endpoints(itNS).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Subsets = []corev1.EndpointSubset{{Addresses: as(corev1.EndpointAddress{IP: "192.0.2.1"}), Ports: ps(tcp("x", 1))}}
		cur.Labels["intruder"] = "yes"
		if _, err := api.CoreV1().Endpoints(itNS).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		endpointsAre(t, api, "web", map[string]string{"team": "a"},
			corev1.EndpointSubset{Addresses: as(podAddr(web1)), Ports: sortedPorts(http8080, m9100)})
		// And a deleted one is recreated.
		if err := api.CoreV1().Endpoints(itNS).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		endpointsAre(t, api, "web", map[string]string{"team": "a"},
			corev1.EndpointSubset{Addresses: as(podAddr(web1)), Ports: sortedPorts(http8080, m9100)})
	})

	t.Run("selector change", func(t *testing.T) {
		s, err := api.CoreV1().Services(itNS).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Spec.Selector = map[string]string{"app": "other"}
		if _, err = api.CoreV1().Services(itNS).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		// web-3 (relabelled app=other, metrics 9200) and "other" (no metrics port).
		other, err := api.CoreV1().Pods(itNS).Get(ctx, "other", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		endpointsAre(t, api, "web", map[string]string{"team": "a"},
			corev1.EndpointSubset{Addresses: as(podAddr(web3), podAddr(other)), Ports: ps(http8080)},
			corev1.EndpointSubset{Addresses: as(podAddr(web3)), Ports: ps(m9200)})
	})

	// Services for the restart check: a headless one without ports, a user-managed one without a
	// selector, and one that will be deleted while no controller runs.
	_, err = api.CoreV1().Services(itNS).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hl"},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "web"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	endpointsAre(t, api, "hl", map[string]string{corev1.IsHeadlessService: ""}, corev1.EndpointSubset{Addresses: as(podAddr(web1))})

	_, err = api.CoreV1().Services(itNS).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "manual"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	manual := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "manual"},
		Subsets: []corev1.EndpointSubset{{Addresses: as(corev1.EndpointAddress{IP: "192.0.2.10"}), Ports: ps(tcp("", 80))}}}
	if manual, err = api.CoreV1().Endpoints(itNS).Create(ctx, manual, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	_, err = api.CoreV1().Services(itNS).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "gone"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	endpointsAre(t, api, "gone", nil, corev1.EndpointSubset{Addresses: as(podAddr(web1)), Ports: ps(tcp("", 80))})

	t.Run("restart with nothing changed writes nothing", func(t *testing.T) {
		ctrl.stop()
		if err := api.CoreV1().Services(itNS).Delete(ctx, "gone", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		writes.reset()
		// One worker: the queue is FIFO, so once the barrier Service (created after the restarted
		// controller's initial sync) is synced, every key queued before it has been handled.
		r := start(outer, env, client, 1) // outlives this subtest
		eventually(t, "initial sync", func() (bool, string) {
			return r.syncedOK(itNS+"/web") && r.syncedOK(itNS+"/hl") && r.syncedOK(itNS+"/gone"), ""
		})
		_, err := api.CoreV1().Services(itNS).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "barrier"},
			Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "none"}, Ports: []corev1.ServicePort{{Port: 80}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "barrier synced", func() (bool, string) { return r.syncedOK(itNS + "/barrier"), "" })
		// The only writes: deleting the Endpoints of the Service deleted while the controller was
		// down, and creating the barrier's.
		if got, want := writes.get(), map[string]int{http.MethodDelete: 1, http.MethodPost: 1}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("writes after restart: %v, want %v", got, want)
		}
		endpointsGone(t, api, "gone")
		cur, err := api.CoreV1().Endpoints(itNS).Get(ctx, "manual", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cur.ResourceVersion != manual.ResourceVersion {
			t.Errorf("user-managed Endpoints were written: %s", canonical(cur.Subsets))
		}

		// A real change after the restart is one write.
		writes.reset()
		web1 = setReady(t, api, web1, web1.Status.PodIP, false)
		endpointsAre(t, api, "hl", map[string]string{corev1.IsHeadlessService: ""}, corev1.EndpointSubset{NotReadyAddresses: as(podAddr(web1))})
		eventually(t, "one write", func() (bool, string) {
			got := writes.get()
			return fmt.Sprint(got) == fmt.Sprint(map[string]int{http.MethodPut: 1}), fmt.Sprint(got)
		})
	})

	t.Run("service deletion", func(t *testing.T) {
		if err := api.CoreV1().Services(itNS).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		endpointsGone(t, api, "web")
		// Deleting a Service without a selector removes its Endpoints too, as in kube.
		if err := api.CoreV1().Services(itNS).Delete(ctx, "manual", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		endpointsGone(t, api, "manual")
	})
}
