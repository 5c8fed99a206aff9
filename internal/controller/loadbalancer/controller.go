package loadbalancer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/svcnet/svcnet/internal/controller/worker"
	"github.com/svcnet/svcnet/internal/lbpool"
)

// maxRetries bounds how often one Service is retried after API errors before it is dropped until
// its next event; with the default controller rate limiter the last waits are about 41 s and 82 s.
const maxRetries = 15

// errStaleCache means the informer has not yet delivered our own last status write: deciding on
// the older object could take back an address we have just given, so the key is retried shortly.
var errStaleCache = errors.New("service cache older than the last status write")

// Controller gives LoadBalancer Services addresses from the pool.
type Controller struct {
	client    kubernetes.Interface
	factory   informers.SharedInformerFactory
	pool      lbpool.Pool
	services  corelisters.ServiceLister
	synced    cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	broadcast record.EventBroadcaster
	recorder  record.EventRecorder

	// mu guards everything below. Deciding and recording the decision in owners happen under it in
	// one step, so two workers can never both see an address as free and both take it.
	mu sync.Mutex
	// owners maps every address in use to the Service key holding it. It runs ahead of the
	// informer: an address is taken before the status write that shows it, and released only after
	// the write that removes it (or the Service's deletion), so no other Service can get an address
	// while any stored status still shows it.
	owners map[netip.Addr]string
	// held is owners inverted; a Service holds more than one address only while it moves.
	held map[string]map[netip.Addr]bool
	// waiting are the Services that failed for want of a free address; each release requeues them.
	waiting map[string]bool
	// reported is the last failure reported per Service (with its generation), so that retries
	// and resyncs do not repeat the same Event.
	reported map[string]string
	// staleRV is, per Service, the resourceVersion our last status write replaced: while the cache
	// still holds that version it is known to be older than the API.
	staleRV map[string]string

	// onSynced, when set (by tests), is called after every sync of a key, once the queue is done
	// with it.
	onSynced func(key string, err error)
}

// New creates the controller and registers its handlers on factory's Service informer; the caller
// starts the factory (Run starts it too if not). With an empty pool the controller touches
// nothing: no informer, no writes, no events, so that a cloud provider can own LoadBalancers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, pool lbpool.Pool) *Controller {
	c := &Controller{client: client, factory: factory, pool: pool}
	if pool.Empty() {
		return c
	}
	svcInf := factory.Core().V1().Services()
	c.services = svcInf.Lister()
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "loadbalancer"})
	c.broadcast = record.NewBroadcaster()
	c.recorder = c.broadcast.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "loadbalancer-controller"})
	c.owners = map[netip.Addr]string{}
	c.held = map[string]map[netip.Addr]bool{}
	c.waiting = map[string]bool{}
	c.reported = map[string]string{}
	c.staleRV = map[string]string{}
	// Registered before the factory starts, so the initial list arrives as add events and every
	// Service is synced once after start, which repairs anything that changed while we were down.
	c.synced = worker.Register("loadbalancer", svcInf.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur interface{}) { c.enqueue(cur) },
		DeleteFunc: c.enqueue,
	})
	return c
}

// Run allocates with the given number of workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	if c.pool.Empty() {
		slog.Info("loadbalancer controller idle: no address pool")
		<-ctx.Done()
		return
	}
	if workers < 1 {
		workers = 1
	}
	c.broadcast.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.client.CoreV1().Events("")})
	defer c.broadcast.Shutdown()

	c.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced) {
		c.queue.ShutDown()
		return
	}
	// Every address a stored status shows is taken before any worker allocates, so that a restart
	// never hands out an address a Service already has.
	if err := c.fill(); err != nil {
		slog.Error("loadbalancer controller: list services failed", "err", err)
		c.queue.ShutDown()
		return
	}
	slog.Info("loadbalancer controller started", "pool", c.pool.String(), "inUse", len(c.owners), "workers", workers)
	worker.Run(ctx, workers, c.queue, c.sync, worker.Options[string]{
		Name: "loadbalancer sync", KeyAttr: "service", MaxRetries: maxRetries,
		GiveUp: "dropping service until its next change", Raced: raced, Finished: c.onSynced,
	})
}

// fill records the pool addresses every stored status shows. When two Services show the same
// address (only possible if something other than this controller wrote it), the LoadBalancer
// Services come first and among them the oldest keeps it; the others get another on their sync.
// Services with a class are skipped: their status is another implementation's.
func (c *Controller) fill() error {
	list, err := c.services.List(labels.Everything())
	if err != nil {
		return err
	}
	rank := func(s *corev1.Service) int {
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			return 0
		}
		return 1
	}
	slices.SortFunc(list, func(a, b *corev1.Service) int {
		return cmp.Or(
			cmp.Compare(rank(a), rank(b)),
			a.CreationTimestamp.Compare(b.CreationTimestamp.Time),
			cmp.Compare(a.Namespace, b.Namespace),
			cmp.Compare(a.Name, b.Name))
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, svc := range list {
		if svc.Spec.LoadBalancerClass != nil {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			a, ok := parseIPv4(ing.IP)
			if !ok || !c.pool.Contains(a) {
				continue
			}
			if _, taken := c.owners[a]; !taken {
				c.take(key, a)
			}
		}
	}
	return nil
}

func (c *Controller) enqueue(obj interface{}) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	c.queue.Add(key)
}

// raced tells the failures that only mean the cache is behind the API; the retry re-reads it.
func raced(err error) bool {
	return errors.Is(err, errStaleCache) || apierrors.IsConflict(err)
}

// sync applies Decide to the Service named by key.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // not a key this controller made; retrying cannot help
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.forget(key)
		return nil
	}
	if err != nil {
		return err
	}

	c.mu.Lock()
	if rv, ok := c.staleRV[key]; ok && rv == svc.ResourceVersion {
		c.mu.Unlock()
		return errStaleCache
	}
	d := Decide(svc, c.owners, c.pool)
	if d.IP.IsValid() {
		c.take(key, d.IP)
	}
	if d.Waiting {
		c.waiting[key] = true
	} else {
		delete(c.waiting, key)
	}
	report := d.Reason != ""
	if d.EventType == corev1.EventTypeWarning {
		seen := fmt.Sprint(svc.Generation, " ", d.Message)
		report = c.reported[key] != seen
		c.reported[key] = seen
	} else {
		delete(c.reported, key)
	}
	c.mu.Unlock()

	if report && d.EventType == corev1.EventTypeWarning {
		slog.Warn("loadbalancer allocation failed", "service", key, "message", d.Message)
		c.recorder.Event(svc, d.EventType, d.Reason, d.Message)
	}
	if d.SetIngress && !equality.Semantic.DeepEqual(svc.Status.LoadBalancer.Ingress, d.Ingress) {
		obj := svc.DeepCopy()
		obj.Status.LoadBalancer.Ingress = d.Ingress
		updated, err := c.client.CoreV1().Services(ns).UpdateStatus(ctx, obj, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			return nil // its deletion event releases what it held
		}
		if err != nil {
			return fmt.Errorf("update status of service %s: %w", key, err)
		}
		if updated.ResourceVersion != svc.ResourceVersion {
			c.mu.Lock()
			c.staleRV[key] = svc.ResourceVersion
			c.mu.Unlock()
		}
		if report && d.EventType == corev1.EventTypeNormal {
			slog.Info("loadbalancer address assigned", "service", key, "ip", d.IP)
			c.recorder.Event(svc, d.EventType, d.Reason, d.Message)
		}
	}
	// Only now that the status no longer shows them may other Services get what svc gave up.
	c.release(key, d.IP)
	return nil
}

// take records that key holds a. The caller holds mu.
func (c *Controller) take(key string, a netip.Addr) {
	c.owners[a] = key
	if c.held[key] == nil {
		c.held[key] = map[netip.Addr]bool{}
	}
	c.held[key][a] = true
}

// release frees every address key holds but keep (which may be the zero Addr) and requeues the
// waiting Services if that freed any.
func (c *Controller) release(key string, keep netip.Addr) {
	c.mu.Lock()
	var freed []netip.Addr
	for a := range c.held[key] {
		if a == keep {
			continue
		}
		delete(c.held[key], a)
		if c.owners[a] == key {
			delete(c.owners, a)
		}
		freed = append(freed, a)
	}
	if len(c.held[key]) == 0 {
		delete(c.held, key)
	}
	var wake []string
	if len(freed) > 0 {
		for k := range c.waiting {
			wake = append(wake, k)
		}
	}
	c.mu.Unlock()
	if len(freed) > 0 {
		slog.Info("loadbalancer addresses released", "service", key, "ips", freed, "waiting", len(wake))
	}
	for _, k := range wake {
		c.queue.Add(k)
	}
}

// forget drops everything known about a deleted Service and frees its addresses.
func (c *Controller) forget(key string) {
	c.mu.Lock()
	delete(c.waiting, key)
	delete(c.reported, key)
	delete(c.staleRV, key)
	c.mu.Unlock()
	c.release(key, netip.Addr{})
}
