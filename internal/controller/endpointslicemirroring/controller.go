// Package endpointslicemirroring mirrors user-written v1 Endpoints into EndpointSlices, the role of
// kube-controller-manager's endpointslice-mirroring controller (v1.35).
//
// Services with a selector get their slices from the EndpointSlice controller. A Service without one
// has its Endpoints written by a user or an external tool, and proxies and DNS read only slices, so this
// controller copies each such Endpoints into slices labelled kubernetes.io/service-name=<service> and
// endpointslice.kubernetes.io/managed-by=endpointslicemirroring-controller.k8s.io, owned by the Endpoints.
// It skips Endpoints labelled endpointslice.kubernetes.io/skip-mirror=true, Endpoints holding a
// leader-election record, and Endpoints whose Service is missing or has a selector; when an Endpoints
// stops qualifying, its mirrored slices are deleted.
//
// The decision is a pure function (computePlan) from the Endpoints, the Service and the slices already
// mirrored; the Controller only feeds it from informer caches and executes the result, so a sync with
// nothing to change issues no writes, including the full pass after every restart.
package endpointslicemirroring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	endpointsliceutil "k8s.io/endpointslice/util"

	"github.com/svcnet/svcnet/internal/controller/labelindex"
	"github.com/svcnet/svcnet/internal/controller/worker"
)

const (
	// maxRetries bounds how often one Endpoints is retried (1 s doubling to 100 s) before it is dropped
	// until its next change, as in kube.
	maxRetries = 15

	// Event reasons, kube's.
	eventInvalidIPAddress         = "InvalidIPAddress"
	eventTooManyAddressesToMirror = "TooManyAddressesToMirror"
)

// errStaleCache makes a sync retry later: the slice cache has not yet caught up with our own writes,
// and planning from it would create duplicates or undo what we just did.
var errStaleCache = errors.New("endpointslice informer cache is out of date")

// Controller mirrors Endpoints of selectorless Services into EndpointSlices.
type Controller struct {
	client                kubernetes.Interface
	maxEndpointsPerSubset int32

	endpoints corelisters.EndpointsLister
	services  corelisters.ServiceLister
	slices    discoverylisters.EndpointSliceLister
	// synced are the handler registrations: true once each informer's initial list has been delivered
	// to our handlers, so that every existing Endpoints is queued before workers start.
	synced []cache.InformerSynced

	// tracker remembers the generation of every slice we wrote, to tell our own writes from other
	// people's in slice events, and to detect a cache that lags behind them.
	tracker *endpointsliceutil.EndpointSliceTracker
	queue   workqueue.TypedRateLimitingInterface[string]
	// recorder is set by Run; kube reports skipped addresses as Warning events on the Endpoints.
	recorder record.EventRecorder
	log      *slog.Logger

	// busy counts syncs in progress; with an empty queue it tells tests the controller is idle.
	busy atomic.Int32
	// afterSync, when set (tests), is called after every sync.
	afterSync func(key string, err error)
}

// New returns a controller mirroring Endpoints through the Endpoints, Service and EndpointSlice
// informers of factory. maxEndpointsPerSubset is kube's --mirroring-max-endpoints-per-subset: each
// (repacked) subset of an Endpoints contributes at most this many addresses, ready ones first, and
// since each subset maps to one slice per address family it is also the most endpoints per slice.
// Zero or less means DefaultMaxEndpointsPerSubset (1000), which is also the ceiling (the most
// endpoints an EndpointSlice may hold). The caller starts factory; Run waits for it.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, maxEndpointsPerSubset int32) *Controller {
	if maxEndpointsPerSubset <= 0 || maxEndpointsPerSubset > DefaultMaxEndpointsPerSubset {
		maxEndpointsPerSubset = DefaultMaxEndpointsPerSubset
	}
	c := &Controller{
		client:                client,
		maxEndpointsPerSubset: maxEndpointsPerSubset,
		tracker:               endpointsliceutil.NewEndpointSliceTracker(),
		// kube's limiter: per item 1 s doubling to 100 s, overall 10 retries/s. A slow first retry is
		// deliberate; most failures are conflicts with a cache that needs a moment to catch up.
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedMaxOfRateLimiter(
				workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Second, 100*time.Second),
				&workqueue.TypedBucketRateLimiter[string]{Limiter: rate.NewLimiter(rate.Limit(10), 100)},
			),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "endpoint_slice_mirroring"},
		),
		log: slog.Default().With("controller", "endpointslicemirroring"),
	}
	epInformer := factory.Core().V1().Endpoints()
	svcInformer := factory.Core().V1().Services()
	sliceInformer := factory.Discovery().V1().EndpointSlices()
	// Each sync lists one Service's slices: from an index, not by matching every slice of the
	// namespace (shared with the EndpointSlice controller when both use one factory).
	if err := labelindex.AddSliceIndex(sliceInformer.Informer()); err != nil {
		panic(fmt.Sprintf("endpointslicemirroring: slice index: %v", err))
	}
	c.endpoints, c.services, c.slices = epInformer.Lister(), svcInformer.Lister(), labelindex.NewSliceLister(sliceInformer.Informer().GetIndexer())

	c.register(epInformer.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onEndpointsAdd,
		UpdateFunc: c.onEndpointsUpdate,
		DeleteFunc: c.onEndpointsDelete,
	})
	c.register(svcInformer.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onServiceAdd,
		UpdateFunc: c.onServiceUpdate,
		DeleteFunc: c.onServiceDelete,
	})
	c.register(sliceInformer.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onSliceAdd,
		UpdateFunc: c.onSliceUpdate,
		DeleteFunc: c.onSliceDelete,
	})
	return c
}

func (c *Controller) register(inf cache.SharedIndexInformer, h cache.ResourceEventHandler) {
	reg, err := inf.AddEventHandler(h)
	if err != nil {
		// Only possible when the informer has already been stopped; Run will then never sync.
		c.log.Error("add event handler", "err", err)
		c.synced = append(c.synced, func() bool { return false })
		return
	}
	c.synced = append(c.synced, reg.HasSynced)
}

// Run waits for the informers (started by the caller) to deliver their initial lists, then runs
// workers until ctx ends, and returns once they have stopped. A Controller runs once.
func (c *Controller) Run(ctx context.Context, workers int) {
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	c.recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "endpoint-slice-mirroring-controller"})

	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	c.log.Info("controller started", "workers", workers, "maxEndpointsPerSubset", c.maxEndpointsPerSubset)
	worker.Run(ctx, workers, c.queue, c.countedSync, c.queueOptions())
	c.log.Info("controller stopped")
}

// processNext syncs the next key; false once the queue is shut down or ctx has ended.
func (c *Controller) processNext(ctx context.Context) bool {
	return worker.Process(ctx, c.queue, c.countedSync, c.queueOptions())
}

// queueOptions is the retry policy: failures are retried, logged at Info, until maxRetries.
func (c *Controller) queueOptions() worker.Options[string] {
	return worker.Options[string]{
		Name: "mirror endpoints", KeyAttr: "key", MaxRetries: maxRetries, GiveUp: "dropped until its next change",
		RetryLevel: slog.LevelInfo, Logger: c.log, Finished: c.finished,
	}
}

// countedSync is sync, counted in busy until the queue is done with the key (finished).
func (c *Controller) countedSync(ctx context.Context, key string) error {
	c.busy.Add(1)
	return c.sync(ctx, key)
}

func (c *Controller) finished(key string, err error) {
	if c.afterSync != nil {
		c.afterSync(key, err)
	}
	c.busy.Add(-1)
}

// sync brings the mirrored slices of one Endpoints ("namespace/name") in line with it.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return fmt.Errorf("bad key %q: %w", key, err)
	}
	ep, err := c.endpoints.Endpoints(ns).Get(name)
	if apierrors.IsNotFound(err) {
		ep = nil
	} else if err != nil {
		return fmt.Errorf("get endpoints %s: %w", key, err)
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		svc = nil
	} else if err != nil {
		return fmt.Errorf("get service %s: %w", key, err)
	}
	existing, err := c.slices.EndpointSlices(ns).List(mirroredSelector(name))
	if err != nil {
		return fmt.Errorf("list endpointslices of %s: %w", key, err)
	}

	p := computePlan(ep, svc, existing, c.maxEndpointsPerSubset)
	if p.reason != reasonMirrored {
		// Nothing of ours should exist: forget what we wrote, so the deletions below (and the
		// slices' delete events) are not mistaken for a cache that lags.
		c.tracker.DeleteService(ns, name)
		if len(p.delete) > 0 {
			c.log.Info("deleting mirrored endpointslices", "key", key, "reason", p.reason, "slices", len(p.delete))
		}
		return c.deleteAll(ctx, ns, p.delete)
	}
	if c.tracker.StaleSlices(svc, existing) {
		return fmt.Errorf("sync %s: %w", key, errStaleCache)
	}
	if p.writes() == 0 {
		return nil
	}
	if err := c.apply(ctx, ep, p); err != nil {
		return err // the worker logs it
	}
	c.log.Info("mirrored endpoints", "key", key, "created", len(p.create), "updated", len(p.update), "deleted", len(p.delete))
	c.report(ep, p)
	return nil
}

// report raises kube's Warning events for addresses that could not be mirrored. Only syncs that write
// report, so that restarts and resyncs of an unchanged Endpoints stay silent (kube repeats them).
func (c *Controller) report(ep *corev1.Endpoints, p plan) {
	if c.recorder == nil {
		return
	}
	if p.invalidAddresses > 0 {
		c.recorder.Eventf(ep, corev1.EventTypeWarning, eventInvalidIPAddress,
			"Skipped %d invalid IP addresses when mirroring to EndpointSlices", p.invalidAddresses)
	}
	if p.skippedAddresses > p.invalidAddresses {
		c.recorder.Eventf(ep, corev1.EventTypeWarning, eventTooManyAddressesToMirror,
			"A max of %d addresses can be mirrored to EndpointSlices per Endpoints subset. %d addresses were skipped",
			c.maxEndpointsPerSubset, p.skippedAddresses)
	}
}

// apply executes a plan: creates, then updates, then deletes, recording each result in the tracker.
// The first failure stops it; the retry plans afresh from the cache.
func (c *Controller) apply(ctx context.Context, ep *corev1.Endpoints, p plan) error {
	client := c.client.DiscoveryV1().EndpointSlices(ep.Namespace)
	for _, s := range p.create {
		created, err := client.Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				// Creates in a terminating namespace keep failing; its deletion removes everything.
				return nil
			}
			return fmt.Errorf("create endpointslice for %s/%s: %w", ep.Namespace, ep.Name, err)
		}
		c.tracker.Update(created)
	}
	for _, s := range p.update {
		updated, err := client.Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("update endpointslice %s/%s: %w", ep.Namespace, s.Name, err)
		}
		c.tracker.Update(updated)
	}
	for _, s := range p.delete {
		if err := deleteSlice(ctx, client, s); err != nil {
			return err
		}
		c.tracker.ExpectDeletion(s)
	}
	return nil
}

// deleteAll deletes every slice, reporting all failures rather than the first.
func (c *Controller) deleteAll(ctx context.Context, ns string, slices []*discovery.EndpointSlice) error {
	client := c.client.DiscoveryV1().EndpointSlices(ns)
	var errs []error
	for _, s := range slices {
		errs = append(errs, deleteSlice(ctx, client, s))
	}
	return errors.Join(errs...)
}

type sliceDeleter interface {
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

// deleteSlice deletes exactly the slice we saw (by UID); one already gone is fine.
func deleteSlice(ctx context.Context, client sliceDeleter, s *discovery.EndpointSlice) error {
	opts := metav1.DeleteOptions{}
	if s.UID != "" {
		opts.Preconditions = metav1.NewUIDPreconditions(string(s.UID))
	}
	err := client.Delete(ctx, s.Name, opts)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete endpointslice %s/%s: %w", s.Namespace, s.Name, err)
	}
	return nil
}

func mirroredSelector(service string) labels.Selector {
	return labels.Set{
		discovery.LabelServiceName: service,
		discovery.LabelManagedBy:   controllerName,
	}.AsSelectorPreValidated()
}

func (c *Controller) enqueue(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		c.log.Error("object key", "err", err)
		return
	}
	c.queue.Add(key)
}

// Event handlers, as kube's: queue an Endpoints when it, its Service's selector-ness, or one of its
// mirrored slices changed in a way we did not cause.

func (c *Controller) onEndpointsAdd(obj any) {
	if ep, ok := obj.(*corev1.Endpoints); ok {
		if ok, _ := mirrorable(ep); ok {
			c.enqueue(ep)
		}
	}
}

func (c *Controller) onEndpointsUpdate(oldObj, newObj any) {
	prev, ok1 := oldObj.(*corev1.Endpoints)
	ep, ok2 := newObj.(*corev1.Endpoints)
	if !ok1 || !ok2 {
		return
	}
	// Also when it stops being mirrorable (e.g. gains skip-mirror), to delete its slices.
	if a, _ := mirrorable(prev); a {
		c.enqueue(ep)
	} else if b, _ := mirrorable(ep); b {
		c.enqueue(ep)
	}
}

func (c *Controller) onEndpointsDelete(obj any) {
	if ep := tombstone[*corev1.Endpoints](obj); ep != nil {
		if ok, _ := mirrorable(ep); ok {
			c.enqueue(ep)
		}
	}
}

func (c *Controller) onServiceAdd(obj any) {
	if svc, ok := obj.(*corev1.Service); ok && svc.Spec.Selector == nil {
		c.enqueue(svc)
	}
}

func (c *Controller) onServiceUpdate(oldObj, newObj any) {
	prev, ok1 := oldObj.(*corev1.Service)
	svc, ok2 := newObj.(*corev1.Service)
	if ok1 && ok2 && (prev.Spec.Selector == nil) != (svc.Spec.Selector == nil) {
		c.enqueue(svc)
	}
}

func (c *Controller) onServiceDelete(obj any) {
	if svc := tombstone[*corev1.Service](obj); svc != nil && svc.Spec.Selector == nil {
		c.enqueue(svc)
	}
}

func (c *Controller) onSliceAdd(obj any) {
	s, ok := obj.(*discovery.EndpointSlice)
	if ok && managedByUs(s) && c.tracker.ShouldSync(s) {
		c.enqueueForSlice(s)
	}
}

func (c *Controller) onSliceUpdate(oldObj, newObj any) {
	prev, ok1 := oldObj.(*discovery.EndpointSlice)
	s, ok2 := newObj.(*discovery.EndpointSlice)
	if !ok1 || !ok2 {
		return
	}
	// Someone moved the slice to another service: both services need a look.
	if prev.Labels[discovery.LabelServiceName] != s.Labels[discovery.LabelServiceName] {
		c.enqueueForSlice(prev)
		c.enqueueForSlice(s)
		return
	}
	if managedByUs(prev) != managedByUs(s) {
		c.enqueueForSlice(s)
		return
	}
	if !managedByUs(s) {
		return
	}
	if c.tracker.ShouldSync(s) || contentChangedWithoutGeneration(prev, s) {
		c.enqueueForSlice(s)
	}
}

// contentChangedWithoutGeneration covers an API server that does not bump an EndpointSlice's
// generation when its content changes (kube bumps it for any change outside metadata and for labels).
// The tracker compares generations only, so on such a server a user's edit of a mirrored slice would
// never be undone. Against kube this never fires; otherwise our own writes also cost one no-op sync.
func contentChangedWithoutGeneration(prev, s *discovery.EndpointSlice) bool {
	if prev.Generation != s.Generation {
		return false
	}
	return prev.AddressType != s.AddressType || !equalMaps(prev.Labels, s.Labels) ||
		!equality.Semantic.DeepEqual(prev.Endpoints, s.Endpoints) || !equality.Semantic.DeepEqual(prev.Ports, s.Ports)
}

func (c *Controller) onSliceDelete(obj any) {
	s := tombstone[*discovery.EndpointSlice](obj)
	if s == nil || !managedByUs(s) || !c.tracker.Has(s) {
		return
	}
	// false: we did not delete it, so someone else did; put it back.
	if !c.tracker.HandleDeletion(s) {
		c.enqueueForSlice(s)
	}
}

func (c *Controller) enqueueForSlice(s *discovery.EndpointSlice) {
	name := s.Labels[discovery.LabelServiceName]
	if name == "" {
		return
	}
	c.queue.Add(s.Namespace + "/" + name)
}

func managedByUs(s *discovery.EndpointSlice) bool {
	return s.Labels[discovery.LabelManagedBy] == controllerName
}

// tombstone unwraps the object of a delete event, which is a DeletedFinalStateUnknown when the watch
// missed the deletion.
func tombstone[T any](obj any) T {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	t, _ := obj.(T)
	return t
}
