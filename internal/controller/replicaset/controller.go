// Package replicaset is the ReplicaSet controller (kube-controller-manager's replicaset controller):
// it keeps spec.replicas active pods for every ReplicaSet, creating them from spec.template and
// deleting the surplus, adopts orphan pods its selector matches and releases its pods that no
// longer match, and reports replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
// terminatingReplicas and the ReplicaFailure condition in the status.
//
// The decisions are pure functions (PodsToDelete, calculateStatus, podclaim.Decide, slowStartBatch);
// this file is the informer, queue and API layer around them.
package replicaset

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/kubectl/pkg/util/podutils"

	"github.com/svcnet/svcnet/internal/controller/podclaim"
	"github.com/svcnet/svcnet/internal/controller/worker"
)

const (
	// BurstReplicas caps the pods one sync creates or deletes (kube's default).
	BurstReplicas = 500
	// slowStartInitialBatch is the first batch of pod creations; batches double while they succeed.
	slowStartInitialBatch = 1
	// maxRetries bounds how often one ReplicaSet is retried before it waits for its next event.
	maxRetries = 15

	// PodControllerUIDIndex indexes pods by the UID of their controller, orphans under
	// OrphanPodIndexKey (kube's names, so that controllers can share the index).
	PodControllerUIDIndex = "podControllerUID"
	OrphanPodIndexKey     = "_ORPHAN_POD"
	rsControllerUIDIndex  = "rsControllerUID"
)

var controllerKind = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")

// Controller keeps ReplicaSets' pods in step with their spec.
type Controller struct {
	client    kubernetes.Interface
	factory   informers.SharedInformerFactory
	rss       appslisters.ReplicaSetLister
	rsIndex   cache.Indexer
	podIndex  cache.Indexer
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	exp       *expectations
	broadcast record.EventBroadcaster
	recorder  record.EventRecorder
	burst     int
	now       func() time.Time
}

// New wires the controller to the factory's ReplicaSet and Pod informers. Call it before the
// factory starts; Run starts the factory if the caller has not.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory) *Controller {
	rsInf := factory.Apps().V1().ReplicaSets()
	podInf := factory.Core().V1().Pods()
	c := &Controller{
		client:  client,
		factory: factory,
		rss:     rsInf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "replicaset"}),
		exp:       newExpectations(time.Now),
		broadcast: record.NewBroadcaster(),
		burst:     BurstReplicas,
		now:       time.Now,
	}
	c.recorder = c.broadcast.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "replicaset-controller"})
	if err := AddPodControllerUIDIndexer(podInf.Informer()); err != nil {
		panic(fmt.Sprintf("replicaset controller: pod index: %v", err))
	}
	if err := addRSControllerUIDIndexer(rsInf.Informer()); err != nil {
		panic(fmt.Sprintf("replicaset controller: replicaset index: %v", err))
	}
	c.rsIndex = rsInf.Informer().GetIndexer()
	c.podIndex = podInf.Informer().GetIndexer()
	c.synced = []cache.InformerSynced{
		worker.Register("replicaset", rsInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.addRS,
			UpdateFunc: c.updateRS,
			DeleteFunc: c.deleteRS,
		}),
		worker.Register("replicaset", podInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.addPod,
			UpdateFunc: c.updatePod,
			DeleteFunc: c.deletePod,
		}),
	}
	return c
}

// AddPodControllerUIDIndexer adds the pod-by-controller index unless the informer has it already.
func AddPodControllerUIDIndexer(inf cache.SharedIndexInformer) error {
	if _, ok := inf.GetIndexer().GetIndexers()[PodControllerUIDIndex]; ok {
		return nil
	}
	return inf.AddIndexers(cache.Indexers{PodControllerUIDIndex: func(obj interface{}) ([]string, error) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return nil, nil
		}
		if ref := metav1.GetControllerOfNoCopy(p); ref != nil {
			return []string{string(ref.UID)}, nil
		}
		return []string{OrphanPodIndexKey}, nil
	}})
}

func addRSControllerUIDIndexer(inf cache.SharedIndexInformer) error {
	if _, ok := inf.GetIndexer().GetIndexers()[rsControllerUIDIndex]; ok {
		return nil
	}
	return inf.AddIndexers(cache.Indexers{rsControllerUIDIndex: func(obj interface{}) ([]string, error) {
		rs, ok := obj.(*appsv1.ReplicaSet)
		if !ok {
			return nil, nil
		}
		if ref := metav1.GetControllerOfNoCopy(rs); ref != nil {
			return []string{string(ref.UID)}, nil
		}
		return nil, nil
	}})
}

// Run syncs ReplicaSets with the given number of workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer c.queue.ShutDown()
	if workers < 1 {
		workers = 1
	}
	c.broadcast.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.client.CoreV1().Events("")})
	defer c.broadcast.Shutdown()
	c.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	slog.Info("replicaset controller started", "workers", workers)
	worker.Run(ctx, workers, c.queue, c.sync, worker.Options[string]{
		Name: "replicaset sync", KeyAttr: "replicaSet", MaxRetries: maxRetries, Raced: worker.Conflict,
	})
}

func keyOf(ns, name string) string { return ns + "/" + name }

// resolve returns the ReplicaSet a controller reference points to, if it still exists.
func (c *Controller) resolve(ns string, ref *metav1.OwnerReference) *appsv1.ReplicaSet {
	if ref.Kind != controllerKind.Kind {
		return nil
	}
	rs, err := c.rss.ReplicaSets(ns).Get(ref.Name)
	if err != nil || rs.UID != ref.UID {
		return nil
	}
	return rs
}

func (c *Controller) addRS(obj interface{}) {
	rs := obj.(*appsv1.ReplicaSet)
	c.queue.Add(keyOf(rs.Namespace, rs.Name))
}

func (c *Controller) updateRS(old, cur interface{}) {
	o, n := old.(*appsv1.ReplicaSet), cur.(*appsv1.ReplicaSet)
	if o.UID != n.UID {
		// Deleted and recreated under the same name between two events.
		c.deleteRS(cache.DeletedFinalStateUnknown{Key: keyOf(o.Namespace, o.Name), Obj: o})
	}
	c.queue.Add(keyOf(n.Namespace, n.Name))
}

func (c *Controller) deleteRS(obj interface{}) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		return
	}
	key := keyOf(rs.Namespace, rs.Name)
	// A new ReplicaSet of the same name starts with clean expectations.
	c.exp.forget(key)
	c.queue.Add(key)
}

// addPod records an expected creation and wakes the pod's ReplicaSet, or every ReplicaSet that
// might adopt an orphan.
func (c *Controller) addPod(obj interface{}) {
	p := obj.(*corev1.Pod)
	if p.DeletionTimestamp != nil {
		// Seen for the first time already being deleted (e.g. after a restart): not a creation.
		c.deletePod(p)
		return
	}
	if ref := metav1.GetControllerOfNoCopy(p); ref != nil {
		if rs := c.resolve(p.Namespace, ref); rs != nil {
			key := keyOf(rs.Namespace, rs.Name)
			c.exp.creationObserved(key)
			c.queue.Add(key)
		}
		return
	}
	c.enqueueMatching(p)
}

func (c *Controller) updatePod(old, cur interface{}) {
	o, n := old.(*corev1.Pod), cur.(*corev1.Pod)
	if o.ResourceVersion == n.ResourceVersion {
		return // periodic resync
	}
	labelsChanged := !reflect.DeepEqual(o.Labels, n.Labels)
	if n.DeletionTimestamp != nil {
		// Graceful deletion started: count it as the deletion now, so the ReplicaSet replaces the
		// pod at once instead of after its grace period.
		c.deletePod(n)
		if labelsChanged {
			c.deletePod(o)
		}
		return
	}
	curRef, oldRef := metav1.GetControllerOfNoCopy(n), metav1.GetControllerOfNoCopy(o)
	refChanged := !reflect.DeepEqual(curRef, oldRef)
	if refChanged && oldRef != nil {
		if rs := c.resolve(o.Namespace, oldRef); rs != nil {
			c.queue.Add(keyOf(rs.Namespace, rs.Name))
		}
	}
	if curRef != nil {
		rs := c.resolve(n.Namespace, curRef)
		if rs == nil {
			return
		}
		key := keyOf(rs.Namespace, rs.Name)
		c.queue.Add(key)
		// Availability changes minReadySeconds after readiness, with no event of its own.
		if !podutils.IsPodReady(o) && podutils.IsPodReady(n) && rs.Spec.MinReadySeconds > 0 {
			c.queue.AddAfter(key, time.Duration(rs.Spec.MinReadySeconds)*time.Second+time.Second)
		}
		return
	}
	if labelsChanged || refChanged {
		c.enqueueMatching(n)
	}
}

func (c *Controller) deletePod(obj interface{}) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	ref := metav1.GetControllerOfNoCopy(p)
	if ref == nil {
		return
	}
	rs := c.resolve(p.Namespace, ref)
	if rs == nil {
		return
	}
	key := keyOf(rs.Namespace, rs.Name)
	c.exp.deletionObserved(key, podKey(p))
	c.queue.Add(key)
}

// enqueueMatching wakes every ReplicaSet whose selector matches an orphan pod.
func (c *Controller) enqueueMatching(p *corev1.Pod) {
	rss, err := c.rss.GetPodReplicaSets(p)
	if err != nil {
		return
	}
	if len(rss) > 1 {
		slog.Warn("more than one replicaset selects a pod", "namespace", p.Namespace, "pod", p.Name, "labels", p.Labels)
	}
	for _, rs := range rss {
		c.queue.Add(keyOf(rs.Namespace, rs.Name))
	}
}

// podsOf returns the pods rs controls and the orphans of its namespace, from the index.
func (c *Controller) podsOf(rs *appsv1.ReplicaSet) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	for _, key := range []string{string(rs.UID), OrphanPodIndexKey} {
		objs, err := c.podIndex.ByIndex(PodControllerUIDIndex, key)
		if err != nil {
			return nil, fmt.Errorf("pod index: %w", err)
		}
		for _, o := range objs {
			p := o.(*corev1.Pod)
			if p.Namespace != rs.Namespace {
				continue
			}
			if ref := metav1.GetControllerOfNoCopy(p); ref != nil && (ref.Kind != controllerKind.Kind || ref.UID != rs.UID) {
				continue
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// sync reconciles one ReplicaSet.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	rs, err := c.rss.ReplicaSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	needsSync := c.exp.satisfied(key)
	selector, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil {
		// Invalid selectors are rejected by validation; nothing to retry.
		slog.Warn("replicaset has an invalid selector", "replicaSet", key, "err", err)
		return nil
	}
	all, err := c.podsOf(rs)
	if err != nil {
		return err
	}
	claimer := &podclaim.Claimer{Client: c.client, Owner: rs, Kind: controllerKind, Selector: selector,
		Recheck: func(ctx context.Context) error {
			fresh, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("recheck deletion of replicaset %s: %w", key, err)
			}
			if fresh.UID != rs.UID {
				return fmt.Errorf("replicaset %s is gone: uid %s, wanted %s", key, fresh.UID, rs.UID)
			}
			if fresh.DeletionTimestamp != nil {
				return fmt.Errorf("replicaset %s is being deleted", key)
			}
			return nil
		}}
	active, err := claimer.Claim(ctx, filterPods(all, isPodActive))
	if err != nil {
		return err
	}
	terminating := filterClaimed(rs, selector, filterPods(all, isPodTerminating))

	var manageErr error
	if needsSync && rs.DeletionTimestamp == nil {
		manageErr = c.manageReplicas(ctx, active, rs)
	}
	rs = rs.DeepCopy()
	updated, err := c.updateStatus(ctx, rs, calculateStatus(rs, active, terminating, manageErr, c.now()))
	if err != nil {
		return err
	}
	// Resync after minReadySeconds in case no pod event comes to mark the pods available.
	if manageErr == nil && updated.Spec.MinReadySeconds > 0 &&
		updated.Status.ReadyReplicas == replicasOf(updated) && updated.Status.AvailableReplicas != replicasOf(updated) {
		c.queue.AddAfter(key, time.Duration(updated.Spec.MinReadySeconds)*time.Second)
	}
	return manageErr
}

// manageReplicas creates or deletes pods so that rs has spec.replicas active pods, at most burst
// at a time, recording expectations for the informer events to come.
func (c *Controller) manageReplicas(ctx context.Context, active []*corev1.Pod, rs *appsv1.ReplicaSet) error {
	key := keyOf(rs.Namespace, rs.Name)
	diff := len(active) - int(replicasOf(rs))
	switch {
	case diff < 0:
		n := min(-diff, c.burst)
		c.exp.expectCreations(key, n)
		slog.Debug("too few replicas", "replicaSet", key, "need", replicasOf(rs), "creating", n)
		ref := metav1.NewControllerRef(rs, controllerKind)
		created, err := slowStartBatch(n, slowStartInitialBatch, func() error {
			err := c.createPod(ctx, rs, ref)
			if err != nil && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil // every create fails while the namespace goes away
			}
			return err
		})
		// The pods never attempted or failed will not be observed.
		for i := created; i < n; i++ {
			c.exp.creationObserved(key)
		}
		return err
	case diff > 0:
		n := min(diff, c.burst)
		related, err := c.relatedPods(rs)
		if err != nil {
			slog.Warn("list related pods failed", "replicaSet", key, "err", err)
		}
		victims := PodsToDelete(active, related, n, c.now())
		keys := make([]string, 0, len(victims))
		for _, p := range victims {
			keys = append(keys, podKey(p))
		}
		c.exp.expectDeletions(key, keys)
		slog.Debug("too many replicas", "replicaSet", key, "need", replicasOf(rs), "deleting", podNames(victims))
		errs := make(chan error, len(victims))
		var wg sync.WaitGroup
		for _, p := range victims {
			wg.Add(1)
			go func(p *corev1.Pod) {
				defer wg.Done()
				if err := c.deletePodOf(ctx, rs, p); err != nil {
					// The informer will not see this deletion.
					c.exp.deletionObserved(key, podKey(p))
					if !apierrors.IsNotFound(err) {
						errs <- err
					}
				}
			}(p)
		}
		wg.Wait()
		select {
		case err := <-errs:
			return err
		default:
		}
	}
	return nil
}

// relatedPods are the pods of every ReplicaSet with the same controller as rs (the Deployment's
// other ReplicaSets), or rs's own when it has no controller.
func (c *Controller) relatedPods(rs *appsv1.ReplicaSet) ([]*corev1.Pod, error) {
	rss := []*appsv1.ReplicaSet{rs}
	if ref := metav1.GetControllerOfNoCopy(rs); ref != nil {
		objs, err := c.rsIndex.ByIndex(rsControllerUIDIndex, string(ref.UID))
		if err != nil {
			return nil, err
		}
		rss = rss[:0]
		for _, o := range objs {
			rss = append(rss, o.(*appsv1.ReplicaSet))
		}
	}
	seen := map[types.UID]bool{}
	var out []*corev1.Pod
	for _, r := range rss {
		sel, err := metav1.LabelSelectorAsSelector(r.Spec.Selector)
		if err != nil {
			continue
		}
		objs, err := c.podIndex.ByIndex(PodControllerUIDIndex, string(r.UID))
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			p := o.(*corev1.Pod)
			if p.Namespace != r.Namespace || seen[p.UID] || !sel.Matches(labels.Set(p.Labels)) {
				continue
			}
			seen[p.UID] = true
			out = append(out, p)
		}
	}
	return out, nil
}

func (c *Controller) createPod(ctx context.Context, rs *appsv1.ReplicaSet, ref *metav1.OwnerReference) error {
	pod := podFromTemplate(&rs.Spec.Template, rs.Name, ref)
	if len(pod.Labels) == 0 {
		return fmt.Errorf("create pod for replicaset %s/%s: template has no labels", rs.Namespace, rs.Name)
	}
	created, err := c.client.CoreV1().Pods(rs.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		if !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			c.recorder.Eventf(rs, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
		}
		return fmt.Errorf("create pod for replicaset %s/%s: %w", rs.Namespace, rs.Name, err)
	}
	c.recorder.Eventf(rs, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %v", created.Name)
	return nil
}

func (c *Controller) deletePodOf(ctx context.Context, rs *appsv1.ReplicaSet, p *corev1.Pod) error {
	err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return err
	}
	if err != nil {
		c.recorder.Eventf(rs, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
		return fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	c.recorder.Eventf(rs, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %v", p.Name)
	return nil
}

// updateStatus writes st unless nothing changed, retrying once on a conflict with a fresh read.
func (c *Controller) updateStatus(ctx context.Context, rs *appsv1.ReplicaSet, st appsv1.ReplicaSetStatus) (*appsv1.ReplicaSet, error) {
	if statusUpToDate(rs, st) {
		return rs, nil
	}
	// The generation acted on; set before any retry so a newer spec is never claimed as observed.
	st.ObservedGeneration = rs.Generation
	client := c.client.AppsV1().ReplicaSets(rs.Namespace)
	ns, name := rs.Namespace, rs.Name
	for i := 0; ; i++ {
		rs.Status = st
		updated, err := client.UpdateStatus(ctx, rs, metav1.UpdateOptions{})
		if err == nil {
			return updated, nil
		}
		if i >= 1 {
			return nil, fmt.Errorf("update status of replicaset %s/%s: %w", ns, name, err)
		}
		fresh, getErr := client.Get(ctx, name, metav1.GetOptions{})
		if getErr != nil {
			return nil, fmt.Errorf("update status of replicaset %s/%s: %w", ns, name, getErr)
		}
		rs = fresh
	}
}

// slowStartBatch calls fn count times, in concurrent batches of initial, 2*initial, 4*initial...
// and stops after the first batch with a failure. It returns the number of successful calls. Many
// creations that would all fail the same way (quota) thus cost one request, not hundreds.
func slowStartBatch(count, initial int, fn func() error) (int, error) {
	remaining, successes := count, 0
	for batch := min(remaining, initial); batch > 0; batch = min(2*batch, remaining) {
		errs := make(chan error, batch)
		var wg sync.WaitGroup
		for i := 0; i < batch; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := fn(); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		successes += batch - len(errs)
		if len(errs) > 0 {
			return successes, <-errs
		}
		remaining -= batch
	}
	return successes, nil
}
