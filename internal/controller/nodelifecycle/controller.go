// Package nodelifecycle is the node lifecycle controller (the node health part of kube's
// node-lifecycle-controller): every node agent renews a Lease in kube-node-lease named after its
// node and posts node status; when neither heartbeat has moved for the grace period, the node's
// Ready (and pressure) conditions become Unknown with reason NodeStatusUnknown, it is tainted
// node.kubernetes.io/unreachable (NoSchedule and NoExecute) so nothing new is placed there, and
// the pods bound to it get Ready=False so that the endpoint controllers take them out of
// Services. Once the agent posts Ready=True again the taints go; the agent itself reports its
// pods' readiness. The verdict is the pure function Decide; this package is the informer and
// queue layer around it, with a timer per node for the moment its heartbeat would expire.
package nodelifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	coordinationlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/svcnet/svcnet/internal/controller/worker"
)

// podNodeIndex indexes pods by spec.nodeName (the name kube's controllers use for it).
const podNodeIndex = "spec.nodeName"

// Options of the controller.
type Options struct {
	// GracePeriod is how long a node may go without renewing its Lease or posting status before
	// it is marked Unknown; DefaultGracePeriod (kube's 40s) when zero.
	GracePeriod time.Duration
}

// Controller watches node heartbeats.
type Controller struct {
	client    kubernetes.Interface
	nodes     corelisters.NodeLister
	leases    coordinationlisters.LeaseLister
	pods      cache.Indexer
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	broadcast record.EventBroadcaster
	recorder  record.EventRecorder
	grace     time.Duration
	now       func() time.Time
}

// New wires the controller to the factory's Node, Lease and Pod informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, o Options) *Controller {
	if o.GracePeriod <= 0 {
		o.GracePeriod = DefaultGracePeriod
	}
	nodeInf := factory.Core().V1().Nodes()
	leaseInf := factory.Coordination().V1().Leases()
	podInf := factory.Core().V1().Pods()
	broadcast := record.NewBroadcaster()
	c := &Controller{
		client: client, nodes: nodeInf.Lister(), leases: leaseInf.Lister(), pods: podInf.Informer().GetIndexer(),
		synced: []cache.InformerSynced{nodeInf.Informer().HasSynced, leaseInf.Informer().HasSynced, podInf.Informer().HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "nodelifecycle"}),
		broadcast: broadcast,
		recorder:  broadcast.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "node-controller"}),
		grace:     o.GracePeriod,
		now:       time.Now,
	}
	if _, exists := c.pods.GetIndexers()[podNodeIndex]; !exists {
		if err := podInf.Informer().AddIndexers(cache.Indexers{podNodeIndex: nodeNameIndex}); err != nil {
			// Only when another controller added the same index name in between; it indexes the same.
			utilruntime.HandleError(fmt.Errorf("add pod index %s: %w", podNodeIndex, err))
		}
	}
	nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueNode,
		UpdateFunc: func(_, cur interface{}) { c.enqueueNode(cur) },
	})
	leaseInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.leaseChanged,
		UpdateFunc: func(_, cur interface{}) { c.leaseChanged(cur) },
		DeleteFunc: c.leaseChanged,
	})
	podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.podChanged,
		UpdateFunc: func(_, cur interface{}) { c.podChanged(cur) },
	})
	return c
}

func nodeNameIndex(o interface{}) ([]string, error) {
	if p, ok := o.(*corev1.Pod); ok && p.Spec.NodeName != "" {
		return []string{p.Spec.NodeName}, nil
	}
	return nil, nil
}

func (c *Controller) enqueueNode(o interface{}) {
	if n, ok := o.(*corev1.Node); ok {
		c.queue.Add(n.Name)
	}
}

func (c *Controller) leaseChanged(o interface{}) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	if l, ok := o.(*coordinationv1.Lease); ok && l.Namespace == corev1.NamespaceNodeLease {
		c.queue.Add(l.Name)
	}
}

// podChanged checks the node of a pod that is (or may be) ready: a pod bound to, or turning ready
// on, a silent node is marked not ready too.
func (c *Controller) podChanged(o interface{}) {
	p, ok := o.(*corev1.Pod)
	if !ok || p.Spec.NodeName == "" {
		return
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady && cond.Status != corev1.ConditionFalse {
			c.queue.Add(p.Spec.NodeName)
			return
		}
	}
}

// Run watches heartbeats until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer c.queue.ShutDown()
	c.broadcast.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.client.CoreV1().Events("")})
	defer c.broadcast.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	// Never give up (MaxRetries 0): a node left half-marked would keep serving traffic from a
	// dead agent.
	worker.Run(ctx, workers, c.queue, c.sync, worker.Options[string]{Name: "node lifecycle sync", KeyAttr: "node"})
}

// sync judges one node and applies the verdict: status, then taints, then its pods.
func (c *Controller) sync(ctx context.Context, name string) error {
	node, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	lease, err := c.leases.Leases(corev1.NamespaceNodeLease).Get(name)
	if apierrors.IsNotFound(err) {
		lease, err = nil, nil
	}
	if err != nil {
		return err
	}
	now := c.now()
	d := Decide(node, lease, now, c.grace)
	if !d.Stale {
		c.queue.AddAfter(name, d.RecheckAfter)
	}
	if d.Conditions != nil {
		slog.Info("node stopped posting status", "node", name, "lastHeartbeat", d.LastHeartbeat, "grace", c.grace)
		updated := node.DeepCopy()
		updated.Status.Conditions = d.Conditions
		if node, err = c.client.CoreV1().Nodes().UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("set node %s conditions Unknown: %w", name, err)
		}
		if d.NotReadyNow {
			c.recorder.Eventf(node, corev1.EventTypeNormal, "NodeNotReady", "Node %s status is now: %s", name, "NodeNotReady")
		}
		// The taints are recomputed from the node as written, in case they changed meanwhile.
		ready := corev1.ConditionStatus("")
		if r := findCondition(node.Status.Conditions, corev1.NodeReady); r != nil {
			ready = r.Status
		}
		d.Taints, d.TaintsChanged = Taints(node.Spec.Taints, ready, now)
	}
	if d.TaintsChanged {
		updated := node.DeepCopy()
		updated.Spec.Taints = d.Taints
		if _, err := c.client.CoreV1().Nodes().Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update node %s taints: %w", name, err)
		}
		slog.Info("node taints updated", "node", name, "taints", taintStrings(d.Taints))
	}
	if d.MarkPodsNotReady {
		return c.markPodsNotReady(ctx, name, now)
	}
	return nil
}

// markPodsNotReady sets Ready=False on every pod bound to the node that is not already so.
func (c *Controller) markPodsNotReady(ctx context.Context, node string, now time.Time) error {
	objs, err := c.pods.ByIndex(podNodeIndex, node)
	if err != nil {
		return err
	}
	var errs []error
	for _, o := range objs {
		pod, ok := o.(*corev1.Pod)
		if !ok || pod.Spec.NodeName != node {
			continue
		}
		updated, changed := PodNotReady(pod, now)
		if !changed {
			continue
		}
		if _, err := c.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("mark pod %s/%s not ready: %w", pod.Namespace, pod.Name, err))
			}
			continue
		}
		c.recorder.Event(pod, corev1.EventTypeWarning, "NodeNotReady", "Node is not ready")
	}
	return errors.Join(errs...)
}

func taintStrings(ts []corev1.Taint) []string {
	out := make([]string, 0, len(ts))
	for i := range ts {
		out = append(out, ts[i].ToString())
	}
	return out
}
