package endpointslicemirroring

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/google/go-cmp/cmp"

	"github.com/svcnet/svcnet/internal/testenv"
)

// itNS is this test's namespace, named so it can live beside a real cluster's objects.
const itNS = "esm-it"

// sliceWrites counts POST/PUT/PATCH/DELETE requests to endpointslices.
type sliceWrites struct {
	mu sync.Mutex
	n  map[string]int
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (w *sliceWrites) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method != http.MethodGet && strings.Contains(r.URL.Path, "/endpointslices") {
			w.mu.Lock()
			w.n[r.Method]++
			w.mu.Unlock()
		}
		return rt.RoundTrip(r)
	})
}

func (w *sliceWrites) take() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.n
	w.n = map[string]int{}
	return n
}

// running is one controller instance, with the keys it has synced successfully.
type running struct {
	c    *Controller
	stop func()
	mu   sync.Mutex
	ok   map[string]int
}

func start(t *testing.T, client kubernetes.Interface) *running {
	t.Helper()
	return startWith(t, client, 0)
}

func startWith(t *testing.T, client kubernetes.Interface, maxEndpointsPerSubset int32) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(client, 0)
	r := &running{c: New(client, factory, maxEndpointsPerSubset), ok: map[string]int{}}
	r.c.afterSync = func(key string, err error) {
		if err == nil {
			r.mu.Lock()
			r.ok[key]++
			r.mu.Unlock()
		}
	}
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() { r.c.Run(ctx, 2); close(done) }()
	r.stop = func() {
		cancel()
		<-done
		factory.Shutdown()
	}
	t.Cleanup(r.stop)
	return r
}

// idleAfter waits until every key has been synced without error since the last reset and the queue
// is empty with no sync in progress.
func (r *running) idleAfter(t *testing.T, keys ...string) {
	t.Helper()
	eventually(t, "controller idle after syncing "+strings.Join(keys, ","), func() (bool, string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, k := range keys {
			if r.ok[k] == 0 {
				return false, k + " not synced"
			}
		}
		if n := r.c.queue.Len(); n > 0 || r.c.busy.Load() > 0 {
			return false, fmt.Sprintf("queue %d busy %d", n, r.c.busy.Load())
		}
		return true, ""
	})
}

func (r *running) resetSynced() {
	r.mu.Lock()
	r.ok = map[string]int{}
	r.mu.Unlock()
}

// eventually polls cond until it holds, for at most 30 s.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) {
			ok, why := cond()
			last = why
			return ok, nil
		})
	if err != nil {
		t.Fatalf("%s: not reached: %s", what, last)
	}
}

// mirrored lists the slices mirrored for a service.
func mirrored(t *testing.T, c kubernetes.Interface, name string) []discovery.EndpointSlice {
	t.Helper()
	l, err := c.DiscoveryV1().EndpointSlices(itNS).List(context.Background(), metav1.ListOptions{
		LabelSelector: mirroredSelector(name).String()})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// summary renders slices as sorted text: family, ports, then each endpoint, so tests can compare the
// content that matters without caring about hash-ordered ports or generated names.
func summary(items []discovery.EndpointSlice) string {
	var out []string
	for _, s := range items {
		var ps, es []string
		for _, p := range s.Ports {
			ps = append(ps, fmt.Sprintf("%s:%d/%s", *p.Name, *p.Port, *p.Protocol))
		}
		for _, e := range s.Endpoints {
			x := strings.Join(e.Addresses, ",")
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				x += " ready"
			} else {
				x += " notready"
			}
			if e.Hostname != nil {
				x += " host=" + *e.Hostname
			}
			if e.NodeName != nil {
				x += " node=" + *e.NodeName
			}
			if e.TargetRef != nil {
				x += " ref=" + e.TargetRef.Kind + "/" + e.TargetRef.Name
			}
			es = append(es, x)
		}
		sort.Strings(ps)
		sort.Strings(es)
		out = append(out, fmt.Sprintf("%s [%s] {%s}", s.AddressType, strings.Join(ps, " "), strings.Join(es, "; ")))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func waitMirrored(t *testing.T, c kubernetes.Interface, name, want string) []discovery.EndpointSlice {
	t.Helper()
	var items []discovery.EndpointSlice
	eventually(t, "slices of "+name, func() (bool, string) {
		items = mirrored(t, c, name)
		got := summary(items)
		return got == want, "got:\n" + got + "\nwant:\n" + want
	})
	return items
}

func selectorlessService(name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: itNS, Name: name},
		Spec:       corev1.ServiceSpec{Ports: ports},
	}
}

func svcPort(name string, port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, Protocol: corev1.ProtocolTCP}
}

func TestControllerAgainstAPIServer(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	writes := &sliceWrites{n: map[string]int{}}
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(writes.wrap)
	client := kubernetes.NewForConfigOrDie(cfg)
	user := env.Client
	ctx := context.Background()

	if _, err := user.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: itNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	outer := t // controllers started inside subtests must outlive them
	ctrl := start(outer, client)

	// A selectorless Service with user Endpoints: two ports, ready and not-ready addresses.
	if _, err := user.CoreV1().Services(itNS).Create(ctx, selectorlessService("web", svcPort("http", 80), svcPort("https", 443)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	webPorts := []corev1.EndpointPort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}, {Name: "https", Port: 8443, Protocol: corev1.ProtocolTCP}}
	ep := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Namespace: itNS, Name: "web",
			Labels: map[string]string{"app": "web"},
			Annotations: map[string]string{"team": "net", corev1.EndpointsLastChangeTriggerTime: "2026-01-02T03:04:05Z",
				corev1.LastAppliedConfigAnnotation: "{}"}},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{
				{IP: "10.1.0.2", Hostname: "b", NodeName: ptr.To("node-2"), TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: itNS, Name: "b"}},
				{IP: "10.1.0.1", Hostname: "a", NodeName: ptr.To("node-1")},
			},
			NotReadyAddresses: []corev1.EndpointAddress{{IP: "10.1.0.3"}},
			Ports:             webPorts,
		}},
	}
	ep, err := user.CoreV1().Endpoints(itNS).Create(ctx, ep, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	var firstName string
	t.Run("mirrored", func(t *testing.T) {
		items := waitMirrored(t, user, "web", "IPv4 [http:8080/TCP https:8443/TCP] "+
			"{10.1.0.1 ready host=a node=node-1; 10.1.0.2 ready host=b node=node-2 ref=Pod/b; 10.1.0.3 notready}")
		s := items[0]
		firstName = s.Name
		if !strings.HasPrefix(s.Name, "web-") || s.GenerateName != "web-" {
			t.Errorf("name %q generateName %q, want generated from web-", s.Name, s.GenerateName)
		}
		wantLabels := map[string]string{"app": "web", discovery.LabelServiceName: "web", discovery.LabelManagedBy: controllerName}
		if !equalMaps(s.Labels, wantLabels) {
			t.Errorf("labels %v, want %v", s.Labels, wantLabels)
		}
		if want := map[string]string{"team": "net"}; !equalMaps(s.Annotations, want) {
			t.Errorf("annotations %v, want %v", s.Annotations, want)
		}
		wantOwner := []metav1.OwnerReference{{APIVersion: "v1", Kind: "Endpoints", Name: "web", UID: ep.UID,
			Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}
		if diff := cmp.Diff(wantOwner, s.OwnerReferences); diff != "" {
			t.Errorf("owner references (-want +got):\n%s", diff)
		}
	})

	t.Run("endpoints update is reflected, slice updated in place", func(t *testing.T) {
		ep, err = user.CoreV1().Endpoints(itNS).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ep.Subsets = []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: "10.1.0.2"}, {IP: "10.1.0.3"}, {IP: "fd00::1"}},
			Ports:     webPorts,
		}, {
			Addresses: []corev1.EndpointAddress{{IP: "10.1.0.9"}},
			Ports:     []corev1.EndpointPort{{Name: "metrics", Port: 9090, Protocol: corev1.ProtocolTCP}},
		}}
		if ep, err = user.CoreV1().Endpoints(itNS).Update(ctx, ep, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		items := waitMirrored(t, user, "web",
			"IPv4 [http:8080/TCP https:8443/TCP] {10.1.0.2 ready; 10.1.0.3 ready}\n"+
				"IPv4 [metrics:9090/TCP] {10.1.0.9 ready}\n"+
				"IPv6 [http:8080/TCP https:8443/TCP] {fd00::1 ready}")
		if !slices.ContainsFunc(items, func(s discovery.EndpointSlice) bool { return s.Name == firstName }) {
			t.Errorf("slice %s was replaced rather than updated", firstName)
		}
	})

	t.Run("not mirrored: Service with selector, no Service", func(t *testing.T) {
		sel := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: itNS, Name: "sel"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "sel"}, Ports: []corev1.ServicePort{svcPort("http", 80)}}}
		if _, err := user.CoreV1().Services(itNS).Create(ctx, sel, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"sel", "orphan"} {
			e := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: itNS, Name: name},
				Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "10.2.0.1"}}, Ports: []corev1.EndpointPort{{Port: 80}}}}}
			if _, err := user.CoreV1().Endpoints(itNS).Create(ctx, e, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		ctrl.idleAfter(t, itNS+"/orphan") // "sel" is not even queued: its Service has a selector
		for _, name := range []string{"sel", "orphan"} {
			if items := mirrored(t, user, name); len(items) != 0 {
				t.Errorf("%s mirrored: %s", name, summary(items))
			}
		}
		// The Service appearing is what makes the orphan mirrored.
		if _, err := user.CoreV1().Services(itNS).Create(ctx, selectorlessService("orphan", svcPort("http", 80)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitMirrored(t, user, "orphan", "IPv4 [:80/TCP] {10.2.0.1 ready}")
	})

	t.Run("a mirrored slice deleted or edited by someone else is restored", func(t *testing.T) {
		items := mirrored(t, user, "orphan")
		if len(items) != 1 {
			t.Fatalf("want 1 slice, got %s", summary(items))
		}
		if err := user.DiscoveryV1().EndpointSlices(itNS).Delete(ctx, items[0].Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		items = waitMirrored(t, user, "orphan", "IPv4 [:80/TCP] {10.2.0.1 ready}")
		s := items[0].DeepCopy()
		s.Endpoints[0].Addresses = []string{"10.2.0.99"}
		edited, err := user.DiscoveryV1().EndpointSlices(itNS).Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("generation %d before the edit, %d after", items[0].Generation, edited.Generation)
		eventually(t, "edited slice restored", func() (bool, string) {
			got, err := user.DiscoveryV1().EndpointSlices(itNS).Get(ctx, s.Name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return got.Endpoints[0].Addresses[0] == "10.2.0.1", fmt.Sprint(got.Endpoints)
		})
	})

	t.Run("restart with nothing changed writes nothing", func(t *testing.T) {
		ctrl.stop()
		writes.take()
		ctrl = start(outer, client)
		ctrl.idleAfter(t, itNS+"/web", itNS+"/orphan")
		if n := writes.take(); len(n) != 0 {
			t.Errorf("endpointslice writes after restart: %v", n)
		}
		// A full resync of every key, as a periodic resync would do: still nothing.
		ctrl.resetSynced()
		for _, k := range []string{itNS + "/web", itNS + "/orphan", itNS + "/sel", itNS + "/absent"} {
			ctrl.c.queue.Add(k)
		}
		ctrl.idleAfter(t, itNS+"/web", itNS+"/orphan", itNS+"/sel", itNS+"/absent")
		if n := writes.take(); len(n) != 0 {
			t.Errorf("endpointslice writes after resync: %v", n)
		}
	})

	t.Run("conflict from a stale cache is retried through the queue", func(t *testing.T) {
		// Someone else writes the slice twice; our cache has seen only the first write. The plan made
		// from it carries that resourceVersion, the server answers 409, the key goes back to the queue
		// rate-limited, and once the cache has caught up the retry converges.
		ctrl.stop()
		cur := mirrored(t, user, "orphan")[0]
		edit := func(s *discovery.EndpointSlice, v string) *discovery.EndpointSlice {
			s = s.DeepCopy()
			s.Annotations = map[string]string{"someone": v}
			out, err := user.DiscoveryV1().EndpointSlices(itNS).Update(ctx, s, metav1.UpdateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		seen := edit(&cur, "x")
		latest := edit(seen, "y")

		c := New(client, informers.NewSharedInformerFactory(client, 0), 0)
		slicesCache := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
		epCache := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
		svcCache := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
		for _, err := range []error{slicesCache.Add(seen), epCache.Add(mustEndpoints(t, user, "orphan")), svcCache.Add(mustService(t, user, "orphan"))} {
			if err != nil {
				t.Fatal(err)
			}
		}
		c.slices = discoverylisters.NewEndpointSliceLister(slicesCache)
		c.endpoints = corelisters.NewEndpointsLister(epCache)
		c.services = corelisters.NewServiceLister(svcCache)
		var lastErr error
		c.afterSync = func(_ string, err error) { lastErr = err }
		defer c.queue.ShutDown()

		key := itNS + "/orphan"
		c.queue.Add(key)
		c.processNext(ctx)
		if !apierrors.IsConflict(lastErr) {
			t.Fatalf("sync from a stale cache: %v, want a conflict", lastErr)
		}
		if n := c.queue.NumRequeues(key); n != 1 {
			t.Fatalf("requeues %d, want 1", n)
		}
		if err := slicesCache.Update(latest); err != nil {
			t.Fatal(err)
		}
		c.processNext(ctx) // waits out the 1 s backoff
		if lastErr != nil {
			t.Fatalf("retry: %v", lastErr)
		}
		got, err := user.DiscoveryV1().EndpointSlices(itNS).Get(ctx, cur.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Annotations) != 0 || c.queue.NumRequeues(key) != 0 {
			t.Fatalf("after retry: annotations %v, requeues %d", got.Annotations, c.queue.NumRequeues(key))
		}
		ctrl = start(outer, client)
	})

	t.Run("skip-mirror label deletes the slices, removing it brings them back", func(t *testing.T) {
		setLabel := func(v string) {
			e := mustEndpoints(t, user, "web")
			if v == "" {
				delete(e.Labels, discovery.LabelSkipMirror)
			} else {
				e.Labels[discovery.LabelSkipMirror] = v
			}
			if _, err := user.CoreV1().Endpoints(itNS).Update(ctx, e, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		setLabel("true")
		waitMirrored(t, user, "web", "")
		setLabel("")
		waitMirrored(t, user, "web",
			"IPv4 [http:8080/TCP https:8443/TCP] {10.1.0.2 ready; 10.1.0.3 ready}\n"+
				"IPv4 [metrics:9090/TCP] {10.1.0.9 ready}\n"+
				"IPv6 [http:8080/TCP https:8443/TCP] {fd00::1 ready}")
	})

	t.Run("Service gaining a selector deletes the slices", func(t *testing.T) {
		svc := mustService(t, user, "orphan")
		svc.Spec.Selector = map[string]string{"app": "orphan"}
		if _, err := user.CoreV1().Services(itNS).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitMirrored(t, user, "orphan", "")
	})

	t.Run("Endpoints deleted", func(t *testing.T) {
		if err := user.CoreV1().Endpoints(itNS).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitMirrored(t, user, "web", "")
	})

	t.Run("Service deleted", func(t *testing.T) {
		if _, err := user.CoreV1().Services(itNS).Create(ctx, selectorlessService("late", svcPort("http", 80)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		e := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: itNS, Name: "late"},
			Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "10.3.0.1"}}, Ports: []corev1.EndpointPort{{Port: 80}}}}}
		if _, err := user.CoreV1().Endpoints(itNS).Create(ctx, e, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitMirrored(t, user, "late", "IPv4 [:80/TCP] {10.3.0.1 ready}")
		if err := user.CoreV1().Services(itNS).Delete(ctx, "late", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitMirrored(t, user, "late", "")
	})

	t.Run("over the per-subset limit: truncated, with kube's Warning event", func(t *testing.T) {
		ctrl.stop()
		ctrl = startWith(outer, client, 2)
		if _, err := user.CoreV1().Services(itNS).Create(ctx, selectorlessService("big", svcPort("http", 80)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		e := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: itNS, Name: "big"},
			Subsets: []corev1.EndpointSubset{{
				Addresses:         []corev1.EndpointAddress{{IP: "10.4.0.2"}, {IP: "10.4.0.1"}},
				NotReadyAddresses: []corev1.EndpointAddress{{IP: "10.4.0.3"}},
				Ports:             []corev1.EndpointPort{{Port: 80}}}}}
		if _, err := user.CoreV1().Endpoints(itNS).Create(ctx, e, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitMirrored(t, user, "big", "IPv4 [:80/TCP] {10.4.0.1 ready; 10.4.0.2 ready}")
		eventually(t, "TooManyAddressesToMirror event", func() (bool, string) {
			l, err := user.CoreV1().Events(itNS).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=big"})
			if err != nil {
				return false, err.Error()
			}
			for _, ev := range l.Items {
				if ev.Reason == eventTooManyAddressesToMirror && ev.Type == corev1.EventTypeWarning && ev.InvolvedObject.Kind == "Endpoints" &&
					ev.Message == "A max of 2 addresses can be mirrored to EndpointSlices per Endpoints subset. 1 addresses were skipped" {
					return true, ""
				}
			}
			return false, fmt.Sprint(l.Items)
		})
	})
}

func mustEndpoints(t *testing.T, c kubernetes.Interface, name string) *corev1.Endpoints {
	t.Helper()
	e, err := c.CoreV1().Endpoints(itNS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mustService(t *testing.T, c kubernetes.Interface, name string) *corev1.Service {
	t.Helper()
	s, err := c.CoreV1().Services(itNS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
