// Package statefulset is the StatefulSet controller (kube-controller-manager's statefulset
// controller). A StatefulSet of n replicas owns pods <name>-0 .. <name>-(n-1), each with hostname
// <name>-<ordinal>, subdomain spec.serviceName and the statefulset.kubernetes.io/pod-name and
// apps.kubernetes.io/pod-index labels. With the OrderedReady policy ordinal i is created only once
// 0..i-1 are Running and Ready and scale-down goes from the highest ordinal one pod at a time; with
// Parallel all at once. A deleted or finished pod is recreated under the same name. RollingUpdate
// replaces the pods whose controller-revision-hash label is not the current template's revision,
// from the highest ordinal down to the partition, within maxUnavailable.
//
// svcnet serves no ControllerRevisions: a revision is only the name <set>-<hash of the template>,
// computed as kube computes ControllerRevision names, carried by the pods' controller-revision-hash
// label and by status.currentRevision/updateRevision. volumeClaimTemplates are ignored.
//
// The decision is the pure function decide (plan.go); this file is the informer, queue and API layer.
package statefulset

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/kubectl/pkg/util/podutils"

	"github.com/svcnet/svcnet/internal/controller/podclaim"
	"github.com/svcnet/svcnet/internal/controller/worker"
)

const (
	// maxRetries bounds how often one StatefulSet is retried before it waits for its next event.
	maxRetries = 15
	// maxBatch caps the concurrent pod operations of a Parallel StatefulSet (kube's MaxBatchSize).
	maxBatch = 500

	// PodControllerUIDIndex indexes pods by the UID of their controller, orphans under
	// OrphanPodIndexKey (kube's names; the ReplicaSet controller registers the same index).
	PodControllerUIDIndex = "podControllerUID"
	OrphanPodIndexKey     = "_ORPHAN_POD"
)

// Controller keeps StatefulSets' pods in step with their spec.
type Controller struct {
	client    kubernetes.Interface
	factory   informers.SharedInformerFactory
	sets      appslisters.StatefulSetLister
	podIndex  cache.Indexer
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	broadcast record.EventBroadcaster
	recorder  record.EventRecorder
	now       func() time.Time

	// templates remembers, per StatefulSet key, the template of each revision seen since start, so
	// that pods below a partition can be recreated at the current revision.
	mu        sync.Mutex
	templates map[string]map[string]*corev1.PodTemplateSpec
}

// New wires the controller to the factory's StatefulSet and Pod informers. Call it before the
// factory starts; Run starts the factory if the caller has not.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory) *Controller {
	setInf := factory.Apps().V1().StatefulSets()
	podInf := factory.Core().V1().Pods()
	c := &Controller{
		client:  client,
		factory: factory,
		sets:    setInf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "statefulset"}),
		broadcast: record.NewBroadcaster(),
		now:       time.Now,
		templates: map[string]map[string]*corev1.PodTemplateSpec{},
	}
	c.recorder = c.broadcast.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "statefulset-controller"})
	if err := addPodControllerUIDIndexer(podInf.Informer()); err != nil {
		panic(fmt.Sprintf("statefulset controller: pod index: %v", err))
	}
	c.podIndex = podInf.Informer().GetIndexer()
	c.synced = []cache.InformerSynced{
		worker.Register("statefulset", setInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueue,
			UpdateFunc: func(_, cur interface{}) { c.enqueue(cur) },
			DeleteFunc: c.enqueue,
		}),
		worker.Register("statefulset", podInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.addPod,
			UpdateFunc: c.updatePod,
			DeleteFunc: c.deletePod,
		}),
	}
	return c
}

func addPodControllerUIDIndexer(inf cache.SharedIndexInformer) error {
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

// Run syncs StatefulSets with the given number of workers until ctx ends.
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
	slog.Info("statefulset controller started", "workers", workers)
	worker.Run(ctx, workers, c.queue, c.sync, worker.Options[string]{
		Name: "statefulset sync", KeyAttr: "statefulSet", MaxRetries: maxRetries, Raced: raced,
	})
}

// raced: the failure only means the cache was behind the API server (a pod created in the last
// sync not yet seen, an object changed meanwhile), for every error of an aggregate.
func raced(err error) bool {
	if agg, ok := err.(utilerrors.Aggregate); ok {
		for _, e := range agg.Errors() {
			if !raced(e) {
				return false
			}
		}
		return true
	}
	return worker.Conflict(err)
}

func (c *Controller) enqueue(obj interface{}) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err == nil {
		c.queue.Add(key)
	}
}

func (c *Controller) resolve(ns string, ref *metav1.OwnerReference) *appsv1.StatefulSet {
	if ref.Kind != controllerKind.Kind {
		return nil
	}
	set, err := c.sets.StatefulSets(ns).Get(ref.Name)
	if err != nil || set.UID != ref.UID {
		return nil
	}
	return set
}

func (c *Controller) addPod(obj interface{}) {
	p := obj.(*corev1.Pod)
	if p.DeletionTimestamp != nil {
		c.deletePod(p)
		return
	}
	if ref := metav1.GetControllerOfNoCopy(p); ref != nil {
		if set := c.resolve(p.Namespace, ref); set != nil {
			c.enqueue(set)
		}
		return
	}
	c.enqueueMatching(p)
}

func (c *Controller) updatePod(old, cur interface{}) {
	o, n := old.(*corev1.Pod), cur.(*corev1.Pod)
	if o.ResourceVersion == n.ResourceVersion {
		return
	}
	curRef, oldRef := metav1.GetControllerOfNoCopy(n), metav1.GetControllerOfNoCopy(o)
	refChanged := !reflect.DeepEqual(curRef, oldRef)
	if refChanged && oldRef != nil {
		if set := c.resolve(o.Namespace, oldRef); set != nil {
			c.enqueue(set)
		}
	}
	if curRef != nil {
		set := c.resolve(n.Namespace, curRef)
		if set == nil {
			return
		}
		c.enqueue(set)
		if !podutils.IsPodReady(o) && podutils.IsPodReady(n) && set.Spec.MinReadySeconds > 0 {
			c.queue.AddAfter(set.Namespace+"/"+set.Name, time.Duration(set.Spec.MinReadySeconds)*time.Second+time.Second)
		}
		return
	}
	if refChanged || !reflect.DeepEqual(o.Labels, n.Labels) {
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
	if ref := metav1.GetControllerOfNoCopy(p); ref != nil {
		if set := c.resolve(p.Namespace, ref); set != nil {
			c.enqueue(set)
		}
	}
}

func (c *Controller) enqueueMatching(p *corev1.Pod) {
	sets, err := c.sets.GetPodStatefulSets(p)
	if err != nil {
		return
	}
	for _, set := range sets {
		c.enqueue(set)
	}
}

// podsOf returns the pods set controls and the orphans of its namespace, from the index.
func (c *Controller) podsOf(set *appsv1.StatefulSet) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	for _, key := range []string{string(set.UID), OrphanPodIndexKey} {
		objs, err := c.podIndex.ByIndex(PodControllerUIDIndex, key)
		if err != nil {
			return nil, fmt.Errorf("pod index: %w", err)
		}
		for _, o := range objs {
			if p := o.(*corev1.Pod); p.Namespace == set.Namespace {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// revisionTemplate records tmpl as the template of rev and returns the template of want, if known.
// Only the revisions still named in status are kept.
func (c *Controller) revisionTemplate(key, rev string, tmpl *corev1.PodTemplateSpec, want string) *corev1.PodTemplateSpec {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.templates[key]
	if m == nil {
		m = map[string]*corev1.PodTemplateSpec{}
		c.templates[key] = m
	}
	m[rev] = tmpl.DeepCopy()
	for name := range m {
		if name != rev && name != want {
			delete(m, name)
		}
	}
	return m[want]
}

func (c *Controller) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.templates, key)
}

// sync reconciles one StatefulSet.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	cached, err := c.sets.StatefulSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	set := cached.DeepCopy()
	sel, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	if err != nil {
		slog.Warn("statefulset has an invalid selector", "statefulSet", key, "err", err)
		return nil
	}
	all, err := c.podsOf(set)
	if err != nil {
		return err
	}
	claimer := &podclaim.Claimer{Client: c.client, Owner: set, Kind: controllerKind, Selector: sel,
		Member: func(p *corev1.Pod) bool { return isMemberOf(set, p) },
		Recheck: func(ctx context.Context) error {
			fresh, err := c.client.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
			switch {
			case err != nil:
				return fmt.Errorf("recheck deletion of statefulset %s: %w", key, err)
			case fresh.UID != set.UID:
				return fmt.Errorf("statefulset %s is gone: uid %s, wanted %s", key, fresh.UID, set.UID)
			case fresh.DeletionTimestamp != nil:
				return fmt.Errorf("statefulset %s is being deleted", key)
			}
			return nil
		}}
	pods, err := claimer.Claim(ctx, all)
	if err != nil {
		return err
	}

	var collisionCount int32
	if set.Status.CollisionCount != nil {
		collisionCount = *set.Status.CollisionCount
	}
	updateRev, err := RevisionName(set, collisionCount)
	if err != nil {
		return fmt.Errorf("statefulset %s revision: %w", key, err)
	}
	currentRev := set.Status.CurrentRevision
	if currentRev == "" {
		currentRev = updateRev
	}
	p := decide(input{
		set: set, pods: pods, currentRevision: currentRev, updateRevision: updateRev,
		currentTemplate: c.revisionTemplate(key, updateRev, &set.Spec.Template, currentRev),
		collisionCount:  collisionCount, now: c.now(),
	})
	if steps := p.String(); steps != "" {
		slog.Debug("statefulset plan", "statefulSet", key, "steps", steps)
	}
	actErr := c.execute(ctx, set, p)
	// The status is written even when a step failed, as kube does.
	st := p.status
	statusErr := c.updateStatus(ctx, set, &st)
	if actErr != nil {
		return actErr
	}
	if statusErr != nil {
		return statusErr
	}
	if set.Spec.MinReadySeconds > 0 && st.AvailableReplicas != int32(replicasOf(set)) {
		c.queue.AddAfter(key, time.Duration(set.Spec.MinReadySeconds)*time.Second)
	}
	return nil
}

// execute runs the plan's phases in order, stopping at the first phase with a failure.
func (c *Controller) execute(ctx context.Context, set *appsv1.StatefulSet, p plan) error {
	for _, ph := range p.phases {
		if len(ph.steps) == 0 {
			continue
		}
		if !ph.concurrent {
			for _, s := range ph.steps {
				if err := c.do(ctx, set, s); err != nil {
					return err
				}
			}
			continue
		}
		if err := slowStartBatch(ph.steps, func(s step) error { return c.do(ctx, set, s) }); err != nil {
			return err
		}
	}
	return nil
}

// slowStartBatch runs fn over steps in concurrent batches of 1, 2, 4... (at most maxBatch), and
// stops after the first batch with a failure.
func slowStartBatch(steps []step, fn func(step) error) error {
	for done, batch := 0, 1; done < len(steps); batch = min(2*batch, maxBatch) {
		n := min(batch, len(steps)-done)
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for _, s := range steps[done : done+n] {
			wg.Add(1)
			go func(s step) {
				defer wg.Done()
				if err := fn(s); err != nil {
					errs <- err
				}
			}(s)
		}
		wg.Wait()
		close(errs)
		var list []error
		for err := range errs {
			list = append(list, err)
		}
		if len(list) > 0 {
			return utilerrors.NewAggregate(list)
		}
		done += n
	}
	return nil
}

// do carries out one step and records kube's event for it.
func (c *Controller) do(ctx context.Context, set *appsv1.StatefulSet, s step) error {
	pods := c.client.CoreV1().Pods(set.Namespace)
	var err error
	switch s.kind {
	case stepCreate:
		_, err = pods.Create(ctx, s.pod, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// Our informer has not seen the pod of an earlier sync yet; its event will requeue us.
			return err
		}
	case stepDelete:
		slog.Debug("deleting statefulset pod", "statefulSet", set.Namespace+"/"+set.Name, "pod", s.pod.Name, "reason", s.why)
		err = pods.Delete(ctx, s.pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.pod.UID}})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil // already gone, or already replaced
		}
	case stepUpdate:
		pod := s.pod
		err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
			_, err := pods.Update(ctx, pod, metav1.UpdateOptions{})
			if !apierrors.IsConflict(err) {
				return err
			}
			fresh, getErr := pods.Get(ctx, pod.Name, metav1.GetOptions{})
			if getErr != nil {
				return getErr
			}
			if identityMatches(set, fresh) {
				return nil
			}
			pod = fresh
			updateIdentity(set, pod)
			return err
		})
	}
	verb := s.kind.String()
	if err != nil {
		c.recorder.Eventf(set, corev1.EventTypeWarning, "Failed"+strings.ToUpper(verb[:1])+verb[1:],
			"%s Pod %s in StatefulSet %s failed error: %s", verb, s.pod.Name, set.Name, err)
		return fmt.Errorf("%s pod %s/%s: %w", verb, set.Namespace, s.pod.Name, err)
	}
	c.recorder.Eventf(set, corev1.EventTypeNormal, "Successful"+strings.ToUpper(verb[:1])+verb[1:],
		"%s Pod %s in StatefulSet %s successful", verb, s.pod.Name, set.Name)
	return nil
}

// updateStatus completes a finished rolling update in st and writes it if it differs.
func (c *Controller) updateStatus(ctx context.Context, set *appsv1.StatefulSet, st *appsv1.StatefulSetStatus) error {
	completeRollingUpdate(set, st)
	if !statusChanged(set, st) {
		return nil
	}
	client := c.client.AppsV1().StatefulSets(set.Namespace)
	cur := set.DeepCopy()
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		cur.Status = *st
		_, err := client.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) {
			return err
		}
		if fresh, getErr := c.sets.StatefulSets(set.Namespace).Get(set.Name); getErr == nil {
			cur = fresh.DeepCopy()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("update status of statefulset %s/%s: %w", set.Namespace, set.Name, err)
	}
	return nil
}
