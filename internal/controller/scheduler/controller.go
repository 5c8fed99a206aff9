// Package scheduler is svcnet's pod scheduler (the kube-scheduler role, reduced to what a
// Service-networking cluster needs): it binds every pod that has no spec.nodeName and belongs to
// the default scheduler to a node through the pods/binding subresource. A node fits when it is
// Ready, not cordoned, matches the pod's nodeSelector and required node affinity, carries no
// NoSchedule/NoExecute taint the pod does not tolerate, has the pod's host ports free and room
// under status.allocatable pods; among those the pod goes to the node with the fewest pods.
// The decision is the pure function Pick; this package is the informer, cache and queue layer
// around it. Pods that fit nowhere get PodScheduled=False/Unschedulable with kube-scheduler's
// message and a FailedScheduling event, and are retried with back-off and whenever a node or
// the pods on nodes change.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/svcnet/svcnet/internal/controller/worker"
)

// Name is the scheduler name this controller serves and the source of its events.
const Name = corev1.DefaultSchedulerName

// Back-off of a pod that fits nowhere or whose binding failed. kube-scheduler backs off 1s to 10s
// and parks unschedulable pods until a cluster event; here node and pod events requeue waiting
// pods at once, and the back-off is only the safety net.
const (
	initialBackoff = time.Second
	maxBackoff     = time.Minute
)

// errUnschedulable marks a sync that found no node; the pod is retried with back-off.
var errUnschedulable = errors.New("no node fits the pod")

// Controller binds pending pods to nodes.
type Controller struct {
	client    kubernetes.Interface
	pods      corelisters.PodLister
	nodes     corelisters.NodeLister
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	broadcast record.EventBroadcaster
	recorder  record.EventRecorder
	cache     *podCache

	mu      sync.Mutex
	waiting sets.Set[string] // pods that found no node, retried on node and pod changes
}

// New wires the scheduler to the factory's Pod and Node informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory) *Controller {
	podInf := factory.Core().V1().Pods()
	nodeInf := factory.Core().V1().Nodes()
	broadcast := record.NewBroadcaster()
	c := &Controller{
		client: client, pods: podInf.Lister(), nodes: nodeInf.Lister(),
		synced: []cache.InformerSynced{podInf.Informer().HasSynced, nodeInf.Informer().HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](initialBackoff, maxBackoff),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "scheduler"}),
		broadcast: broadcast,
		recorder:  broadcast.NewRecorder(scheme.Scheme, corev1.EventSource{Component: Name}),
		cache:     newPodCache(),
		waiting:   sets.New[string](),
	}
	podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o interface{}) { c.podChanged(nil, o.(*corev1.Pod)) },
		UpdateFunc: func(old, cur interface{}) { c.podChanged(old.(*corev1.Pod), cur.(*corev1.Pod)) },
		DeleteFunc: c.podDeleted,
	})
	nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(interface{}) { c.requeueWaiting() },
		UpdateFunc: func(old, cur interface{}) {
			if nodeChanged(old.(*corev1.Node), cur.(*corev1.Node)) {
				c.requeueWaiting()
			}
		},
	})
	return c
}

// ours reports whether this scheduler should place the pod now.
func ours(pod *corev1.Pod) bool {
	return pod.Spec.NodeName == "" && pod.DeletionTimestamp == nil &&
		(pod.Spec.SchedulerName == "" || pod.Spec.SchedulerName == Name) &&
		len(pod.Spec.SchedulingGates) == 0 &&
		pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

func (c *Controller) podChanged(old, cur *corev1.Pod) {
	if c.cache.observe(cur) {
		c.requeueWaiting()
	}
	key, err := cache.MetaNamespaceKeyFunc(cur)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	if cur.Spec.NodeName != "" {
		c.setWaiting(key, false)
		return
	}
	// Status-only updates (including this scheduler's own PodScheduled condition) do not change
	// where the pod fits; they would only defeat the back-off.
	if ours(cur) && (old == nil || old.DeletionTimestamp != cur.DeletionTimestamp || !equality.Semantic.DeepEqual(old.Spec, cur.Spec)) {
		c.queue.Add(key)
	}
}

func (c *Controller) podDeleted(o interface{}) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	c.setWaiting(pod.Namespace+"/"+pod.Name, false)
	if c.cache.forget(pod.UID, false) {
		c.requeueWaiting()
	}
}

// nodeChanged reports changes that can make a pod fit a node it did not fit (or the reverse);
// heartbeats alone do not count.
func nodeChanged(old, cur *corev1.Node) bool {
	return old.Spec.Unschedulable != cur.Spec.Unschedulable ||
		!maps.Equal(old.Labels, cur.Labels) ||
		!equality.Semantic.DeepEqual(old.Spec.Taints, cur.Spec.Taints) ||
		!equality.Semantic.DeepEqual(old.Status.Allocatable, cur.Status.Allocatable) ||
		ready(old) != ready(cur)
}

func (c *Controller) setWaiting(key string, waiting bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if waiting {
		c.waiting.Insert(key)
	} else {
		c.waiting.Delete(key)
	}
}

func (c *Controller) requeueWaiting() {
	c.mu.Lock()
	keys := c.waiting.UnsortedList()
	c.mu.Unlock()
	for _, k := range keys {
		c.queue.Add(k)
	}
}

// Run schedules until ctx ends. Workers bind in parallel; the choice of node is made one pod at
// a time.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer c.queue.ShutDown()
	c.broadcast.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.client.CoreV1().Events("")})
	defer c.broadcast.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	// A pod is retried until it is bound or gone; one that fits nowhere has its event and
	// condition already, so its retries are not logged.
	worker.Run(ctx, workers, c.queue, c.sync, worker.Options[string]{
		Name: "scheduling", KeyAttr: "pod",
		Quiet: func(err error) bool { return errors.Is(err, errUnschedulable) },
	})
}

// sync places one pod.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	pod, err := c.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.setWaiting(key, false)
		return nil
	}
	if err != nil {
		return err
	}
	if !ours(pod) {
		c.setWaiting(key, false)
		return nil
	}
	// Waiting from here on: a node event during the decision requeues the pod rather than being
	// missed.
	c.setWaiting(key, true)
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	node, reason, placed := c.cache.place(pod, nodes)
	if placed {
		// Bound (or being bound) by this scheduler; the informer has not caught up.
		c.setWaiting(key, false)
		return nil
	}
	if node == "" {
		c.logUntolerated(pod, nodes)
		slog.Debug("pod unschedulable", "pod", key, "reason", reason)
		c.recorder.Event(pod, corev1.EventTypeWarning, "FailedScheduling", reason)
		if err := c.markUnschedulable(ctx, pod, reason); err != nil {
			return err
		}
		return errUnschedulable
	}
	c.setWaiting(key, false)
	err = c.client.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}, metav1.CreateOptions{})
	if err != nil {
		if c.cache.forget(pod.UID, true) {
			c.requeueWaiting()
		}
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case apierrors.IsConflict(err):
			// Bound by someone else, deleted, or recreated under the same name: the informer
			// brings the pod's new state, which decides whether it still needs a node.
			slog.Debug("binding rejected", "pod", key, "node", node, "err", err)
			return nil
		}
		c.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedScheduling", "Binding rejected: %v", err)
		return fmt.Errorf("bind %s to %s: %w", key, node, err)
	}
	slog.Debug("pod scheduled", "pod", key, "node", node, "reason", reason)
	c.recorder.Eventf(pod, corev1.EventTypeNormal, "Scheduled", "Successfully assigned %s/%s to %s", ns, name, node)
	return nil
}

// markUnschedulable sets the pod's PodScheduled condition to False/Unschedulable with the
// scheduler's message, unless it already says so.
func (c *Controller) markUnschedulable(ctx context.Context, pod *corev1.Pod, msg string) error {
	want := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
		Reason: corev1.PodReasonUnschedulable, Message: msg, ObservedGeneration: pod.Generation}
	i := -1
	for j := range pod.Status.Conditions {
		if pod.Status.Conditions[j].Type == corev1.PodScheduled {
			i = j
			break
		}
	}
	now := metav1.Now()
	if i >= 0 {
		cur := pod.Status.Conditions[i]
		if cur.Status == want.Status && cur.Reason == want.Reason && cur.Message == want.Message && cur.ObservedGeneration == want.ObservedGeneration {
			return nil
		}
		want.LastTransitionTime = now
		if cur.Status == want.Status {
			want.LastTransitionTime = cur.LastTransitionTime
		}
	} else {
		want.LastTransitionTime = now
	}
	pod = pod.DeepCopy()
	if i >= 0 {
		pod.Status.Conditions[i] = want
	} else {
		pod.Status.Conditions = append(pod.Status.Conditions, want)
	}
	if _, err := c.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("set PodScheduled=False on %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// logUntolerated logs, at debug level, the taint that keeps the pod off each node, which the
// event no longer names.
func (c *Controller) logUntolerated(pod *corev1.Pod, nodes []*corev1.Node) {
	if !slog.Default().Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	for _, n := range nodes {
		if t, ok := UntoleratedTaint(pod, n); ok {
			slog.Debug("node has untolerated taint", "pod", pod.Namespace+"/"+pod.Name, "node", n.Name, "taint", t.ToString())
		}
	}
}
