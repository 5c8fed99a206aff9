package endpoints

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	endpointsliceutil "k8s.io/endpointslice/util"

	"github.com/svcnet/svcnet/internal/controller/labelindex"
	"github.com/svcnet/svcnet/internal/controller/worker"
)

// maxRetries bounds how often one Service is retried before it is dropped (until its next event).
// With the default controller rate limiter the last delays are about 41 s and 82 s, as in kube.
const maxRetries = 15

// errStaleCache means the informer has not yet delivered our own last write; syncing now would
// compute against an old object and conflict, so the key is retried shortly instead.
var errStaleCache = errors.New("endpoints cache older than the last write")

// Controller keeps the Endpoints of selector Services in step with their pods.
type Controller struct {
	client    kubernetes.Interface
	factory   informers.SharedInformerFactory
	services  corelisters.ServiceLister
	podIndex  cache.Indexer // pods by label pair (labelindex)
	svcIndex  cache.Indexer // Services by selector pair (labelindex)
	endpoints corelisters.EndpointsLister
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	triggers  *endpointsliceutil.TriggerTimeTracker
	stale     *staleTracker
	broadcast record.EventBroadcaster
	recorder  record.EventRecorder

	// onSynced, when set (by tests), is called after every sync of a key, once the queue is done
	// with it.
	onSynced func(key string, err error)
}

// New creates the controller and registers its event handlers on factory's Service, Pod and
// Endpoints informers. Run starts the factory if the caller has not.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory) *Controller {
	svcInf := factory.Core().V1().Services()
	podInf := factory.Core().V1().Pods()
	epInf := factory.Core().V1().Endpoints()
	c := &Controller{
		client:    client,
		factory:   factory,
		services:  svcInf.Lister(),
		podIndex:  podInf.Informer().GetIndexer(),
		svcIndex:  svcInf.Informer().GetIndexer(),
		endpoints: epInf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "endpoint"}),
		triggers:  endpointsliceutil.NewTriggerTimeTracker(),
		stale:     &staleTracker{rv: map[types.NamespacedName]string{}},
		broadcast: record.NewBroadcaster(),
	}
	c.recorder = c.broadcast.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "endpoint-controller"})
	// Shared with the EndpointSlice controller when both use one factory; added once.
	if err := labelindex.AddPodIndex(podInf.Informer()); err != nil {
		panic(fmt.Sprintf("endpoints controller: pod index: %v", err))
	}
	if err := labelindex.AddServiceIndex(svcInf.Informer()); err != nil {
		panic(fmt.Sprintf("endpoints controller: service index: %v", err))
	}
	// Informer handlers are registered here, before the factory starts, so the initial list reaches
	// them as add events and every Service gets its first sync.
	c.synced = []cache.InformerSynced{
		worker.Register("endpoints", svcInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueueService,
			UpdateFunc: func(_, cur interface{}) { c.enqueueService(cur) },
			DeleteFunc: c.enqueueService,
		}),
		worker.Register("endpoints", podInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj interface{}) { c.onPodChange(nil, obj) },
			UpdateFunc: c.onPodChange,
			DeleteFunc: func(obj interface{}) { c.onPodChange(obj, nil) },
		}),
		worker.Register("endpoints", epInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.onEndpoints,
			UpdateFunc: func(_, cur interface{}) { c.onEndpoints(cur) },
			DeleteFunc: c.onEndpoints,
		}),
	}
	return c
}

// Run syncs Endpoints with the given number of workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer c.queue.ShutDown()
	if workers < 1 {
		workers = 1
	}
	// Failed writes are also reported as Warning events on the Endpoints, as kube does.
	c.broadcast.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.client.CoreV1().Events("")})
	defer c.broadcast.Shutdown()

	c.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	slog.Info("endpoints controller started", "workers", workers)
	c.enqueueLeftovers()
	worker.Run(ctx, workers, c.queue, c.sync, worker.Options[string]{
		Name: "endpoints sync", KeyAttr: "service", MaxRetries: maxRetries,
		GiveUp: "dropping service until its next change", Raced: expectedRace, Finished: c.onSynced,
	})
}

// enqueueLeftovers queues every stored Endpoints object once at start, as kube does: those whose
// Service was deleted while no controller ran are deleted by their sync. Leader-election records
// (Endpoints without a Service by design) are left alone.
func (c *Controller) enqueueLeftovers() {
	list, err := c.endpoints.List(labels.Everything())
	if err != nil {
		slog.Warn("list endpoints for leftover check failed", "err", err)
		return
	}
	for _, ep := range list {
		if _, ok := ep.Annotations[resourcelock.LeaderElectionRecordAnnotationKey]; ok {
			continue
		}
		c.queue.Add(ep.Namespace + "/" + ep.Name)
	}
}

func (c *Controller) enqueueService(obj interface{}) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	c.queue.Add(key)
}

// onPodChange queues the Services whose endpoints a pod event may change: those selecting the pod
// before or after, skipping updates that touch nothing Endpoints show (kube's projection rules).
func (c *Controller) onPodChange(old, cur interface{}) {
	services, err := labelindex.ServicesForPod(c.svcIndex, endpointsliceutil.GetPodUpdateProjectionKey(old, cur))
	if err != nil {
		return // the lister reads a local cache; it does not fail
	}
	for key := range services {
		c.queue.Add(key)
	}
}

// onEndpoints queues the Service of an Endpoints object that changed or went away, so that edits
// made by anyone else to Endpoints this controller manages are reverted. Endpoints of Services it
// does not manage are not its business (and those without a Service are handled by the Service's
// deletion, or at start).
func (c *Controller) onEndpoints(obj interface{}) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return
	}
	svc, err := c.services.Services(ns).Get(name)
	if err != nil || svc.Spec.Selector == nil || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return
	}
	c.queue.Add(key)
}

// expectedRace tells apart the failures that only mean the cache was behind the API server.
func expectedRace(err error) bool {
	return errors.Is(err, errStaleCache) || worker.Conflict(err)
}

// sync brings the Endpoints of the Service named by key in line with Desired.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // not a key this controller made; retrying cannot help
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		// The Service is gone: its Endpoints go too. The delete is unconditional (not checked against
		// the cache) so that an Endpoints object we created a moment ago is not missed.
		err := c.client.CoreV1().Endpoints(ns).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete endpoints %s: %w", key, err)
		}
		c.triggers.DeleteService(ns, name)
		c.stale.forget(ns, name)
		return nil
	}
	if err != nil {
		return err
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Spec.Selector == nil {
		return nil
	}
	pods, err := labelindex.Pods(c.podIndex, ns, svc.Spec.Selector)
	if err != nil {
		return err
	}
	// Computed on every sync, written or not, so the tracker remembers what it has seen.
	trigger := c.triggers.ComputeEndpointLastChangeTriggerTime(ns, svc, pods)
	desired := Desired(svc, pods, trigger)

	current, err := c.endpoints.Endpoints(ns).Get(name)
	switch {
	case apierrors.IsNotFound(err):
		current = nil
	case err != nil:
		return err
	case c.stale.isStale(current):
		return errStaleCache
	case upToDate(current, desired):
		return nil
	}
	obj := merge(current, desired)
	if current == nil {
		_, err = c.client.CoreV1().Endpoints(ns).Create(ctx, obj, metav1.CreateOptions{})
		if err != nil {
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil // creates keep failing until the namespace is gone; nothing to retry
			}
			c.recorder.Eventf(obj, corev1.EventTypeWarning, "FailedToCreateEndpoint", "Failed to create endpoint for service %v/%v: %v", ns, name, err)
			return fmt.Errorf("create endpoints %s: %w", key, err)
		}
		return nil
	}
	updated, err := c.client.CoreV1().Endpoints(ns).Update(ctx, obj, metav1.UpdateOptions{})
	if err != nil {
		c.recorder.Eventf(obj, corev1.EventTypeWarning, "FailedToUpdateEndpoint", "Failed to update endpoint %v/%v: %v", ns, name, err)
		return fmt.Errorf("update endpoints %s: %w", key, err)
	}
	if updated.ResourceVersion != current.ResourceVersion {
		c.stale.markStale(current)
	}
	return nil
}

// staleTracker remembers, per Endpoints object, the resourceVersion our last update replaced: while
// the cache still holds that version it is known to be out of date (kube's staleEndpointsTracker).
type staleTracker struct {
	mu sync.Mutex
	rv map[types.NamespacedName]string
}

func (t *staleTracker) markStale(ep *corev1.Endpoints) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rv[types.NamespacedName{Namespace: ep.Namespace, Name: ep.Name}] = ep.ResourceVersion
}

func (t *staleTracker) isStale(ep *corev1.Endpoints) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	rv, ok := t.rv[types.NamespacedName{Namespace: ep.Namespace, Name: ep.Name}]
	return ok && rv == ep.ResourceVersion
}

func (t *staleTracker) forget(ns, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.rv, types.NamespacedName{Namespace: ns, Name: name})
}
