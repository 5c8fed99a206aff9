package loadbalancer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/svcnet/svcnet/internal/lbpool"
)

const ns = "default"

var servicesGVR = corev1.SchemeGroupVersion.WithResource("services")

// serviceWatches counts the Service watches opened on any test client.
var serviceWatches atomic.Int64

// newClient returns a fake clientset whose Services behave as the apiserver's do in what this
// controller depends on: every write gets a new resourceVersion, an update carrying an older one
// fails with 409, the status subresource changes only the status and a plain update never does.
// (The plain fake does none of this: a status write from a stale copy would silently revert a
// test's spec change.) Unlike the apiserver, create keeps the status given, to seed tests.
func newClient() *fake.Clientset {
	cs := fake.NewClientset()
	// Counts Service watches: the fake cannot resume a watch from a resourceVersion, so whatever
	// is created between an informer's list and its watch is lost; tests wait for the watch.
	cs.PrependWatchReactor("services", func(k8stesting.Action) (bool, watch.Interface, error) {
		serviceWatches.Add(1)
		return false, nil, nil
	})
	rv := 0 // reactors run under the fake's lock
	nextRV := func() string { rv++; return strconv.Itoa(rv) }
	cs.PrependReactor("create", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj := a.(k8stesting.CreateAction).GetObject().(*corev1.Service).DeepCopy()
		obj.Namespace = a.GetNamespace()
		obj.ResourceVersion = nextRV()
		obj.Generation = 1
		if err := cs.Tracker().Create(servicesGVR, obj, a.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, obj.DeepCopy(), nil
	})
	cs.PrependReactor("update", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ua := a.(k8stesting.UpdateAction)
		obj := ua.GetObject().(*corev1.Service)
		cur, err := cs.Tracker().Get(servicesGVR, a.GetNamespace(), obj.Name)
		if err != nil {
			return true, nil, err
		}
		stored := cur.(*corev1.Service)
		if obj.ResourceVersion != stored.ResourceVersion {
			return true, nil, apierrors.NewConflict(servicesGVR.GroupResource(), obj.Name,
				errors.New("the object has been modified; please apply your changes to the latest version and try again"))
		}
		var out *corev1.Service
		if ua.GetSubresource() == "status" {
			out = stored.DeepCopy()
			out.Status = *obj.Status.DeepCopy()
		} else {
			out = obj.DeepCopy()
			out.Status = *stored.Status.DeepCopy()
			if !equality.Semantic.DeepEqual(out.Spec, stored.Spec) {
				out.Generation = stored.Generation + 1
			}
		}
		out.ResourceVersion = nextRV()
		if err := cs.Tracker().Update(servicesGVR, out, a.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, out.DeepCopy(), nil
	})
	return cs
}

// statusWrites counts the status updates sent for Services.
func statusWrites(cs *fake.Clientset) int {
	n := 0
	for _, a := range cs.Actions() {
		if a.GetVerb() == "update" && a.GetResource() == servicesGVR && a.GetSubresource() == "status" {
			n++
		}
	}
	return n
}

type event struct{ key, eventType, reason, message string }

// teeRecorder records events as they are emitted (the broadcaster delivers them to the API
// asynchronously, too late to prove that none was sent) and passes them on.
type teeRecorder struct {
	inner  record.EventRecorder
	mu     sync.Mutex
	events []event
}

func (r *teeRecorder) add(obj runtime.Object, eventType, reason, message string) {
	key := ""
	if s, ok := obj.(*corev1.Service); ok {
		key = s.Namespace + "/" + s.Name
	}
	r.mu.Lock()
	r.events = append(r.events, event{key, eventType, reason, message})
	r.mu.Unlock()
}

func (r *teeRecorder) Event(obj runtime.Object, eventType, reason, message string) {
	r.add(obj, eventType, reason, message)
	r.inner.Event(obj, eventType, reason, message)
}

func (r *teeRecorder) Eventf(obj runtime.Object, eventType, reason, format string, args ...interface{}) {
	r.Event(obj, eventType, reason, fmt.Sprintf(format, args...))
}

func (r *teeRecorder) AnnotatedEventf(obj runtime.Object, _ map[string]string, eventType, reason, format string, args ...interface{}) {
	r.Eventf(obj, eventType, reason, format, args...)
}

func (r *teeRecorder) list() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// running is a started controller with a record of its syncs and events.
type running struct {
	c      *Controller
	rec    *teeRecorder
	stop   func()
	mu     sync.Mutex
	synced map[string]int
	failed map[string]int
}

func (r *running) syncs(key string) (ok, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.synced[key], r.failed[key]
}

func start(t *testing.T, cs *fake.Clientset, poolSpec string, workers int) *running {
	t.Helper()
	pool, err := lbpool.Parse(poolSpec)
	if err != nil {
		t.Fatal(err)
	}
	factory := informers.NewSharedInformerFactory(cs, 0)
	c := New(cs, factory, pool)
	r := &running{c: c, synced: map[string]int{}, failed: map[string]int{}}
	if c.recorder != nil {
		r.rec = &teeRecorder{inner: c.recorder}
		c.recorder = r.rec
	}
	c.onSynced = func(key string, err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if err == nil {
			r.synced[key]++
		} else {
			r.failed[key]++
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	watches := serviceWatches.Load()
	go func() {
		defer close(done)
		c.Run(ctx, workers)
	}()
	// As the controller manager does: the factory is started after every controller is built.
	factory.Start(ctx.Done())
	eventually(t, "services watched", func() (bool, string) { return serviceWatches.Load() > watches, "" })
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
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 20*time.Second, true,
		func(context.Context) (bool, error) {
			ok, state := cond()
			last = state
			return ok, nil
		})
	if err != nil {
		t.Fatalf("%s: not reached; last state: %s", what, last)
	}
}

func create(t *testing.T, cs *fake.Clientset, name string, opts ...svcOpt) {
	t.Helper()
	s := lbService(opts...)
	s.Name = name
	if _, err := cs.CoreV1().Services(ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
}

// edit applies f to the stored Service name (spec or metadata), retrying on conflicts with the
// controller's status writes.
func edit(t *testing.T, cs *fake.Clientset, name string, f func(*corev1.Service)) {
	t.Helper()
	ctx := context.Background()
	for i := 0; ; i++ {
		s, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get %s: %v", name, err)
		}
		f(s)
		_, err = cs.CoreV1().Services(ns).Update(ctx, s, metav1.UpdateOptions{})
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) || i == 20 {
			t.Fatalf("update %s: %v", name, err)
		}
	}
}

func remove(t *testing.T, cs *fake.Clientset, name string) {
	t.Helper()
	if err := cs.CoreV1().Services(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete %s: %v", name, err)
	}
}

func ingressOf(t *testing.T, cs *fake.Clientset, name string) []corev1.LoadBalancerIngress {
	t.Helper()
	s, err := cs.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return s.Status.LoadBalancer.Ingress
}

// waitIngress waits until the stored status of name shows exactly want.
func waitIngress(t *testing.T, cs *fake.Clientset, name string, want ...corev1.LoadBalancerIngress) {
	t.Helper()
	eventually(t, "ingress of "+name, func() (bool, string) {
		got := ingressOf(t, cs, name)
		return equality.Semantic.DeepEqual(got, want), fmt.Sprintf("%+v, want %+v", got, want)
	})
}

// waitIP waits until name holds exactly ip as a VIP.
func waitIP(t *testing.T, cs *fake.Clientset, name, ip string) {
	t.Helper()
	waitIngress(t, cs, name, vip(ip))
}

func (r *running) waitEvent(t *testing.T, want event) {
	t.Helper()
	eventually(t, "event "+want.message, func() (bool, string) {
		got := r.rec.list()
		return slices.Contains(got, want), fmt.Sprintf("%+v", got)
	})
}

// holder is the Service the controller's owner map gives ip to.
func (r *running) holder(ip string) string {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	return r.c.owners[netip.MustParseAddr(ip)]
}

func (r *running) eventsFor(key string) []event {
	var out []event
	for _, e := range r.rec.list() {
		if e.key == key {
			out = append(out, e)
		}
	}
	return out
}

// waitSynced waits until every key has been synced successfully more than after[key] times.
func (r *running) waitSynced(t *testing.T, after map[string]int, keys ...string) {
	t.Helper()
	eventually(t, "synced "+strings.Join(keys, ","), func() (bool, string) {
		for _, k := range keys {
			if n, _ := r.syncs(k); n <= after[k] {
				return false, k + " not synced"
			}
		}
		return true, ""
	})
}

// resync queues every key again, as an informer resync does, and waits until each was synced.
func (r *running) resync(t *testing.T, keys ...string) {
	t.Helper()
	before := map[string]int{}
	for _, k := range keys {
		before[k], _ = r.syncs(k)
		r.c.queue.Add(k)
	}
	r.waitSynced(t, before, keys...)
}

// watchForDuplicates follows every change to the Services of ns, in order, and makes the returned
// check fail the test if at any point two of them showed the same address.
func watchForDuplicates(t *testing.T, cs *fake.Clientset) (check func()) {
	t.Helper()
	w, err := cs.CoreV1().Services(ns).Watch(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() {
		shown := map[string][]string{} // Service -> addresses its status shows
		for ev := range w.ResultChan() {
			s, ok := ev.Object.(*corev1.Service)
			if !ok {
				continue
			}
			shown[s.Name] = nil
			if ev.Type != watch.Deleted {
				for _, ing := range s.Status.LoadBalancer.Ingress {
					if ing.IP != "" {
						shown[s.Name] = append(shown[s.Name], ing.IP)
					}
				}
			}
			by := map[string]string{}
			for name, ips := range shown {
				for _, ip := range ips {
					if other, ok := by[ip]; ok {
						done <- fmt.Sprintf("%s shown by %s and %s", ip, other, name)
						w.Stop()
						for range w.ResultChan() {
						}
						return
					}
					by[ip] = name
				}
			}
		}
		done <- ""
	}()
	t.Cleanup(w.Stop)
	return func() {
		t.Helper()
		w.Stop()
		if d := <-done; d != "" {
			t.Errorf("address shown twice: %s", d)
		}
	}
}

func allocatedEvent(key, ip string) event {
	return event{key, corev1.EventTypeNormal, ReasonIPAllocated, `Assigned IP ["` + ip + `"]`}
}

func failedEvent(key, why string) event {
	return event{key, corev1.EventTypeWarning, ReasonAllocationFailed, fmt.Sprintf("Failed to allocate IP for %q: %s", key, why)}
}

func TestAllocates(t *testing.T) {
	cs := newClient()
	r := start(t, cs, "172.31.0.100-172.31.0.150", 2)
	create(t, cs, "web")
	waitIP(t, cs, "web", "172.31.0.100")
	create(t, cs, "api")
	waitIP(t, cs, "api", "172.31.0.101")
	create(t, cs, "internal", ofType(corev1.ServiceTypeClusterIP))
	r.waitSynced(t, nil, "default/internal")
	if got := ingressOf(t, cs, "internal"); len(got) != 0 {
		t.Errorf("ClusterIP Service got ingress %+v", got)
	}
	r.waitEvent(t, allocatedEvent("default/web", "172.31.0.100"))
	r.waitEvent(t, allocatedEvent("default/api", "172.31.0.101"))

	// The Event reaches the API, with MetalLB's reason and wording.
	eventually(t, "IPAllocated event stored", func() (bool, string) {
		list, err := cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, e := range list.Items {
			if e.InvolvedObject.Kind == "Service" && e.InvolvedObject.Name == "web" && e.Reason == ReasonIPAllocated &&
				e.Type == corev1.EventTypeNormal && e.Message == `Assigned IP ["172.31.0.100"]` {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events", len(list.Items))
	})

	// A resync of the unchanged cluster writes nothing.
	writes, events := statusWrites(cs), len(r.rec.list())
	if writes != 2 {
		t.Errorf("%d status writes for two allocations, want 2", writes)
	}
	r.resync(t, "default/web", "default/api", "default/internal")
	if got := statusWrites(cs); got != writes {
		t.Errorf("resync of an unchanged cluster wrote status %d times", got-writes)
	}
	if got := r.rec.list(); len(got) != events {
		t.Errorf("resync of an unchanged cluster reported events: %+v", got[events:])
	}
}

func TestKeepsAddressesOnRestart(t *testing.T) {
	cs := newClient()
	// Allocated by an earlier controller (or before an upgrade), not the first free address.
	create(t, cs, "old", status(vip("172.31.0.120")))
	first := start(t, cs, "172.31.0.100-172.31.0.150", 2)
	for i, n := range []string{"a", "b", "c"} {
		create(t, cs, n)
		waitIP(t, cs, n, fmt.Sprintf("172.31.0.%d", 100+i))
	}
	first.waitSynced(t, nil, "default/old")
	if got := first.eventsFor("default/old"); len(got) != 0 {
		t.Errorf("keeping an address reported %+v", got)
	}
	first.stop()

	writes := statusWrites(cs)
	second := start(t, cs, "172.31.0.100-172.31.0.150", 4)
	keys := []string{"default/old", "default/a", "default/b", "default/c"}
	second.waitSynced(t, nil, keys...)
	second.resync(t, keys...)
	if got := statusWrites(cs); got != writes {
		t.Errorf("restarted controller wrote status %d times over an unchanged cluster", got-writes)
	}
	if got := second.rec.list(); len(got) != 0 {
		t.Errorf("restarted controller reported %+v", got)
	}
	second.stop()

	// A Service created while no controller runs may be synced before those holding addresses: the
	// owner map, filled before any sync, keeps it off their addresses.
	// (Named to sort between the holders: the fake lists in name order, so it is synced among them.)
	create(t, cs, "a-new")
	writes = statusWrites(cs)
	third := start(t, cs, "172.31.0.100-172.31.0.150", 1)
	waitIP(t, cs, "a-new", "172.31.0.103")
	third.waitSynced(t, nil, append(keys, "default/a-new")...)
	if got := statusWrites(cs); got != writes+1 {
		t.Errorf("%d status writes after a restart with one new Service, want 1", got-writes)
	}
	for n, ip := range map[string]string{"old": "172.31.0.120", "a": "172.31.0.100", "b": "172.31.0.101", "c": "172.31.0.102"} {
		waitIP(t, cs, n, ip)
	}
}

func TestConflictingRequests(t *testing.T) {
	cs := newClient()
	r := start(t, cs, "172.31.0.100-172.31.0.150", 4)
	check := watchForDuplicates(t, cs)
	// Both at once, so that two workers decide concurrently.
	create(t, cs, "one", specIP("172.31.0.120"))
	create(t, cs, "two", annotated(AnnotationLoadBalancerIPs, "172.31.0.120"))
	var winner, loser string
	eventually(t, "one of them holds 172.31.0.120", func() (bool, string) {
		one, two := ingressOf(t, cs, "one"), ingressOf(t, cs, "two")
		switch {
		case len(one) == 1 && len(two) == 0:
			winner, loser = "one", "two"
		case len(two) == 1 && len(one) == 0:
			winner, loser = "two", "one"
		default:
			return false, fmt.Sprintf("one %+v two %+v", one, two)
		}
		return true, ""
	})
	waitIP(t, cs, winner, "172.31.0.120")
	r.waitEvent(t, failedEvent("default/"+loser, `["172.31.0.120"] is already in use by default/`+winner))
	if got := ingressOf(t, cs, loser); len(got) != 0 {
		t.Fatalf("%s got %+v while %s holds its address", loser, got, winner)
	}
	// Waiting for a requested address: it gets it once the holder is gone.
	remove(t, cs, winner)
	waitIP(t, cs, loser, "172.31.0.120")
	r.waitEvent(t, allocatedEvent("default/"+loser, "172.31.0.120"))
	check()
}

func TestExhaustionThenRelease(t *testing.T) {
	cs := newClient()
	r := start(t, cs, "172.31.0.100-172.31.0.101", 2)
	create(t, cs, "a")
	waitIP(t, cs, "a", "172.31.0.100")
	create(t, cs, "b")
	waitIP(t, cs, "b", "172.31.0.101")
	create(t, cs, "c")
	r.waitEvent(t, failedEvent("default/c", "no available IPs"))
	if got := ingressOf(t, cs, "c"); len(got) != 0 {
		t.Fatalf("c got %+v from a full pool", got)
	}
	// A failure is reported once, not on every retry or resync.
	r.resync(t, "default/c")
	if got := r.eventsFor("default/c"); len(got) != 1 {
		t.Errorf("events for c: %+v, want the one failure", got)
	}

	remove(t, cs, "a")
	waitIP(t, cs, "c", "172.31.0.100")
	r.waitEvent(t, allocatedEvent("default/c", "172.31.0.100"))
	waitIP(t, cs, "b", "172.31.0.101")
}

func TestDeletionFrees(t *testing.T) {
	cs := newClient()
	r := start(t, cs, "172.31.0.100", 1)
	create(t, cs, "a")
	waitIP(t, cs, "a", "172.31.0.100")
	remove(t, cs, "a")
	eventually(t, "a's address released", func() (bool, string) {
		h := r.holder("172.31.0.100")
		return h == "", "held by " + h
	})
	create(t, cs, "b")
	waitIP(t, cs, "b", "172.31.0.100")
	r.waitEvent(t, allocatedEvent("default/b", "172.31.0.100"))
	if got := r.eventsFor("default/b"); !slices.Equal(got, []event{allocatedEvent("default/b", "172.31.0.100")}) {
		t.Errorf("events for b: %+v", got)
	}
}

func TestStoppingBeingOursReleasesAndClears(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*corev1.Service)
	}{
		{"type changed to ClusterIP", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP }},
		{"type changed to NodePort", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }},
		// The apiserver allows a class only across a change of type (ClusterIP and back); the
		// controller may see only the end of it.
		{"class set", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To("example.com/other") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := newClient()
			r := start(t, cs, "172.31.0.100", 2)
			check := watchForDuplicates(t, cs)
			create(t, cs, "a")
			waitIP(t, cs, "a", "172.31.0.100")
			create(t, cs, "waiter")
			r.waitEvent(t, failedEvent("default/waiter", "no available IPs"))

			edit(t, cs, "a", tc.change)
			waitIngress(t, cs, "a")
			waitIP(t, cs, "waiter", "172.31.0.100")
			if got := r.eventsFor("default/a"); len(got) != 1 {
				t.Errorf("events for a: %+v, want only its allocation", got)
			}
			check()
		})
	}
}

func TestClassLeftAlone(t *testing.T) {
	cs := newClient()
	r := start(t, cs, "172.31.0.100-172.31.0.150", 2)
	create(t, cs, "theirs", class("example.com/lb"), status(vip("192.0.2.10")))
	create(t, cs, "pending", class("example.com/lb"), specIP("10.0.0.5"))
	create(t, cs, "ours")
	waitIP(t, cs, "ours", "172.31.0.100")
	keys := []string{"default/theirs", "default/pending", "default/ours"}
	r.waitSynced(t, nil, keys...)
	r.resync(t, keys...)
	if got := statusWrites(cs); got != 1 {
		t.Errorf("%d status writes, want 1 (for ours)", got)
	}
	if got := ingressOf(t, cs, "theirs"); !equality.Semantic.DeepEqual(got, []corev1.LoadBalancerIngress{vip("192.0.2.10")}) {
		t.Errorf("theirs: ingress changed to %+v", got)
	}
	if got := ingressOf(t, cs, "pending"); len(got) != 0 {
		t.Errorf("pending: ingress %+v", got)
	}
	if got := append(r.eventsFor("default/theirs"), r.eventsFor("default/pending")...); len(got) != 0 {
		t.Errorf("events for Services with a class: %+v", got)
	}
}

func TestFailuresAreReported(t *testing.T) {
	cs := newClient()
	r := start(t, cs, "172.31.0.100-172.31.0.150", 2)
	create(t, cs, "v6", families(corev1.IPv6Protocol))
	create(t, cs, "outside", specIP("10.0.0.5"))
	create(t, cs, "dual", annotated(AnnotationLoadBalancerIPs, "172.31.0.110,fd00::10"))
	r.waitEvent(t, failedEvent("default/v6", "the Service is IPv6-only (spec.ipFamilies [IPv6]) and the address pool has only IPv4 addresses"))
	r.waitEvent(t, failedEvent("default/outside", `["10.0.0.5"] is not allowed in config`))
	r.waitEvent(t, failedEvent("default/dual", `["172.31.0.110" "fd00::10"]: only one IPv4 address can be requested`))
	if got := statusWrites(cs); got != 0 {
		t.Errorf("%d status writes for Services that get no address", got)
	}
	// Fixing the request is picked up.
	edit(t, cs, "outside", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "172.31.0.140" })
	waitIP(t, cs, "outside", "172.31.0.140")
}

func TestRetriesAPIErrors(t *testing.T) {
	cs := newClient()
	var calls atomic.Int32
	cs.PrependReactor("update", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "status" {
			return false, nil, nil
		}
		switch calls.Add(1) {
		case 1:
			return true, nil, apierrors.NewInternalError(errors.New("etcd is having a moment"))
		case 2:
			return true, nil, apierrors.NewConflict(servicesGVR.GroupResource(), "web", errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	r := start(t, cs, "172.31.0.100-172.31.0.150", 1)
	create(t, cs, "web")
	waitIP(t, cs, "web", "172.31.0.100")
	if _, failed := r.syncs("default/web"); failed != 2 {
		t.Errorf("%d failed syncs, want 2 (500, then 409)", failed)
	}
	// Reported once, when the write went through.
	r.waitSynced(t, nil, "default/web")
	if got := r.eventsFor("default/web"); !slices.Equal(got, []event{allocatedEvent("default/web", "172.31.0.100")}) {
		t.Errorf("events: %+v", got)
	}
}

func TestEmptyPoolDoesNothing(t *testing.T) {
	cs := newClient()
	factory := informers.NewSharedInformerFactory(cs, 0)
	c := New(cs, factory, lbpool.Pool{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, 2)
	}()
	factory.Start(ctx.Done())
	// No informer was asked for, so nothing is watched and nothing can be written.
	if synced := factory.WaitForCacheSync(ctx.Done()); len(synced) != 0 {
		t.Errorf("empty pool: informers started: %v", synced)
	}
	if got := cs.Actions(); len(got) != 0 {
		t.Errorf("empty pool: API actions %v", got)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	factory.Shutdown()
}

// TestNoAddressTwiceUnderChurn checks the controller's one promise that the tests above cannot
// show by example: at no point do two stored statuses show the same address, with many workers
// deciding at once, Services competing for a small pool and for requested addresses, and
// holders going away while others wait.
func TestNoAddressTwiceUnderChurn(t *testing.T) {
	cs := newClient()
	start(t, cs, "172.31.0.100-172.31.0.109", 8)
	check := watchForDuplicates(t, cs)

	var names []string
	for i := range 16 {
		name := fmt.Sprintf("s%02d", i)
		names = append(names, name)
		switch i % 4 {
		case 0:
			create(t, cs, name, specIP("172.31.0.105"))
		case 1:
			create(t, cs, name, annotated(AnnotationLoadBalancerIPs, "172.31.0.100"))
		default:
			create(t, cs, name)
		}
	}
	// Free addresses while the rest still compete: the first half goes, the waiters move in.
	for _, n := range names[:8] {
		remove(t, cs, n)
	}
	eventually(t, "pool shared out", func() (bool, string) {
		holders := 0
		for _, n := range names[8:] {
			if len(ingressOf(t, cs, n)) == 1 {
				holders++
			}
		}
		// Eight left: two want .105, two want .100, four take any: at most 1+1+4 can hold one.
		return holders == 6, fmt.Sprintf("%d of 8 hold an address", holders)
	})
	check()
}
