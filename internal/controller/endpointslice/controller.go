// Package endpointslice is the EndpointSlice controller: for every Service with a selector it keeps
// discovery.k8s.io/v1 EndpointSlices listing the Service's pods. The slice computation (packing up to
// maxEndpointsPerSlice endpoints, one slice set per port set, in-place updates that minimise churn) is
// Kubernetes' own reconciler from k8s.io/endpointslice; this package is the informer and queue layer
// around it, deciding which Services to sync and when.
package endpointslice

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/endpointslice"
	endpointsliceutil "k8s.io/endpointslice/util"
	"k8s.io/klog/v2"

	"github.com/svcnet/svcnet/internal/controller/labelindex"
	"github.com/svcnet/svcnet/internal/controller/worker"
)

// ControllerName is the managed-by label value of the slices this controller owns, as in kube.
const ControllerName = "endpointslice-controller.k8s.io"

// maxRetries bounds how often one Service is retried before it is dropped until its next change.
// Every failure is logged as a warning: unlike the Endpoints controller, conflicts are not told
// apart.
const maxRetries = 15

// Controller keeps EndpointSlices in step with Services and pods.
type Controller struct {
	client     kubernetes.Interface
	services   corelisters.ServiceLister
	podIndex   cache.Indexer // pods by label pair (labelindex)
	svcIndex   cache.Indexer // Services by selector pair (labelindex)
	slices     discoverylisters.EndpointSliceLister
	synced     []cache.InformerSynced
	reconciler *endpointslice.Reconciler
	tracker    *endpointsliceutil.EndpointSliceTracker
	triggers   *endpointsliceutil.TriggerTimeTracker
	queue      workqueue.TypedRateLimitingInterface[string]
	broadcast  record.EventBroadcaster
	recorder   record.EventRecorder
}

// New wires the controller to the factory's Service, Pod, EndpointSlice and Node informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, maxEndpointsPerSlice int32) *Controller {
	svcInf := factory.Core().V1().Services()
	podInf := factory.Core().V1().Pods()
	sliceInf := factory.Discovery().V1().EndpointSlices()
	nodeInf := factory.Core().V1().Nodes()

	broadcast := record.NewBroadcaster()
	recorder := broadcast.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "endpoint-slice-controller"})
	tracker := endpointsliceutil.NewEndpointSliceTracker()
	c := &Controller{
		client: client, services: svcInf.Lister(),
		podIndex: podInf.Informer().GetIndexer(), svcIndex: svcInf.Informer().GetIndexer(),
		slices:   labelindex.NewSliceLister(sliceInf.Informer().GetIndexer()),
		synced:   []cache.InformerSynced{svcInf.Informer().HasSynced, podInf.Informer().HasSynced, sliceInf.Informer().HasSynced, nodeInf.Informer().HasSynced},
		tracker:  tracker,
		triggers: endpointsliceutil.NewTriggerTimeTracker(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "endpointslice"}),
		broadcast: broadcast,
		recorder:  recorder,
		reconciler: endpointslice.NewReconciler(client, nodeInf.Lister(), maxEndpointsPerSlice, tracker, nil, recorder, ControllerName,
			endpointslice.WithTrafficDistributionEnabled(true, true)),
	}
	// Fails only on a stopped informer, as AddEventHandler below does.
	utilruntime.Must(labelindex.AddPodIndex(podInf.Informer()))
	utilruntime.Must(labelindex.AddServiceIndex(svcInf.Informer()))
	utilruntime.Must(labelindex.AddSliceIndex(sliceInf.Informer()))
	svcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueService,
		UpdateFunc: func(_, cur interface{}) { c.enqueueService(cur) },
		DeleteFunc: c.enqueueService,
	})
	podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o interface{}) { c.podChanged(nil, o) },
		UpdateFunc: c.podChanged,
		DeleteFunc: func(o interface{}) { c.podChanged(o, nil) },
	})
	sliceInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o interface{}) { c.sliceChanged(o, false) },
		UpdateFunc: func(_, cur interface{}) { c.sliceChanged(cur, false) },
		DeleteFunc: func(o interface{}) { c.sliceChanged(o, true) },
	})
	return c
}

func (c *Controller) enqueueService(o interface{}) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	c.queue.Add(key)
}

// podChanged enqueues the Services whose endpoints a pod change can affect: those selecting the pod
// before or after the change, and only when something endpoint-relevant changed.
func (c *Controller) podChanged(old, cur interface{}) {
	key := endpointsliceutil.GetPodUpdateProjectionKey(old, cur)
	if key == nil {
		return
	}
	svcs, err := labelindex.ServicesForPod(c.svcIndex, key)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	for k := range svcs {
		c.queue.Add(k)
	}
}

// sliceChanged resyncs a Service when one of its managed slices changed behind the controller's back
// (another writer, or a deletion it did not make).
func (c *Controller) sliceChanged(o interface{}, deleted bool) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	s, ok := o.(*discoveryv1.EndpointSlice)
	if !ok || s.Labels[discoveryv1.LabelManagedBy] != ControllerName {
		return
	}
	svc := s.Labels[discoveryv1.LabelServiceName]
	if svc == "" {
		return
	}
	if deleted {
		if c.tracker.HandleDeletion(s) {
			c.queue.Add(s.Namespace + "/" + svc)
		}
		return
	}
	if c.tracker.ShouldSync(s) {
		c.queue.Add(s.Namespace + "/" + svc)
	}
}

// Run syncs until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer c.queue.ShutDown()
	c.broadcast.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.client.CoreV1().Events("")})
	defer c.broadcast.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	worker.Run(ctx, workers, c.queue, c.sync, worker.Options[string]{
		Name: "endpointslice sync", KeyAttr: "service", MaxRetries: maxRetries,
		GiveUp: "giving up until the next change",
	})
}

// sync reconciles one Service's slices.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		// The slices carry an owner reference to the Service; the garbage collector removes them.
		c.triggers.DeleteService(ns, name)
		c.tracker.DeleteService(ns, name)
		return nil
	}
	if err != nil {
		return err
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Spec.Selector == nil {
		// Selectorless Services are for users (or the mirroring controller) to fill.
		return nil
	}
	pods, err := labelindex.Pods(c.podIndex, ns, svc.Spec.Selector)
	if err != nil {
		return err
	}
	slices, err := c.slices.EndpointSlices(ns).List(labels.Set{
		discoveryv1.LabelServiceName: name,
		discoveryv1.LabelManagedBy:   ControllerName,
	}.AsSelectorPreValidated())
	if err != nil {
		return err
	}
	// The informer has not yet seen this controller's last writes: syncing now would undo them.
	if c.tracker.StaleSlices(svc, slices) {
		return fmt.Errorf("endpointslice informer cache is out of date for %s", key)
	}
	c.warnUnresolvedPorts(svc, pods)
	trigger := c.triggers.ComputeEndpointLastChangeTriggerTime(ns, svc, pods)
	return c.reconciler.Reconcile(klog.FromContext(ctx), svc, pods, slices, trigger)
}

// warnUnresolvedPorts records a Warning event on the Service for each named targetPort that none of
// its pods defines: such a port gets no endpoints, and without the event the user only sees an
// empty slice.
func (c *Controller) warnUnresolvedPorts(svc *corev1.Service, pods []*corev1.Pod) {
	if len(pods) == 0 {
		return
	}
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		if sp.TargetPort.Type != intstr.String {
			continue
		}
		resolved := false
		for _, p := range pods {
			if _, err := endpointslice.FindPort(p, sp); err == nil {
				resolved = true
				break
			}
		}
		if !resolved {
			c.recorder.Eventf(svc, corev1.EventTypeWarning, "FailedToResolvePort",
				"no pod selected by this Service has a container port named %q (service port %d); the port has no endpoints",
				sp.TargetPort.StrVal, sp.Port)
		}
	}
}
