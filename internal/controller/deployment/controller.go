// Package deployment is the Deployment controller (kube-controller-manager's deployment
// controller). A Deployment owns one ReplicaSet per pod template, named
// <deployment>-<pod-template-hash> with the hash label added to its selector, template and labels;
// the controller rolls from the old ReplicaSets to the new one with the RollingUpdate strategy
// (maxSurge/maxUnavailable) or the Recreate strategy, scales them proportionally when
// spec.replicas changes mid-rollout, keeps the revision annotations, deletes old ReplicaSets beyond
// revisionHistoryLimit, honours spec.paused, and reports the status and the Available and
// Progressing conditions that `kubectl rollout status` reads.
//
// The arithmetic (NewRSNewReplicas, planOldScaleDown, planScale, rolloutStatus, ComputeHash...) is
// pure and lives in plan.go and util.go; this file is the informer, queue and API layer.
package deployment

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/svcnet/svcnet/internal/controller/worker"
)

// maxRetries bounds how often one Deployment is retried before it waits for its next event.
const maxRetries = 15

var controllerKind = appsv1.SchemeGroupVersion.WithKind("Deployment")

// Controller rolls Deployments out through their ReplicaSets.
type Controller struct {
	client    kubernetes.Interface
	factory   informers.SharedInformerFactory
	ds        appslisters.DeploymentLister
	rss       appslisters.ReplicaSetLister
	pods      corelisters.PodLister
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	broadcast record.EventBroadcaster
	recorder  record.EventRecorder
	now       func() time.Time
}

// New wires the controller to the factory's Deployment, ReplicaSet and Pod informers. Call it
// before the factory starts; Run starts the factory if the caller has not.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory) *Controller {
	dInf := factory.Apps().V1().Deployments()
	rsInf := factory.Apps().V1().ReplicaSets()
	podInf := factory.Core().V1().Pods()
	c := &Controller{
		client:  client,
		factory: factory,
		ds:      dInf.Lister(),
		rss:     rsInf.Lister(),
		pods:    podInf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "deployment"}),
		broadcast: record.NewBroadcaster(),
		now:       time.Now,
	}
	c.recorder = c.broadcast.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "deployment-controller"})
	c.synced = []cache.InformerSynced{
		worker.Register("deployment", dInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueue,
			UpdateFunc: func(_, cur interface{}) { c.enqueue(cur) },
			DeleteFunc: c.enqueue,
		}),
		worker.Register("deployment", rsInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.addRS,
			UpdateFunc: c.updateRS,
			DeleteFunc: c.deleteRS,
		}),
		worker.Register("deployment", podInf.Informer(), cache.ResourceEventHandlerFuncs{
			DeleteFunc: c.deletePod,
		}),
	}
	return c
}

// Run syncs Deployments with the given number of workers until ctx ends.
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
	slog.Info("deployment controller started", "workers", workers)
	worker.Run(ctx, workers, c.queue, c.sync, worker.Options[string]{
		Name: "deployment sync", KeyAttr: "deployment", MaxRetries: maxRetries, Raced: worker.Conflict,
	})
}

func (c *Controller) enqueue(obj interface{}) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err == nil {
		c.queue.Add(key)
	}
}

func (c *Controller) resolve(ns string, ref *metav1.OwnerReference) *appsv1.Deployment {
	if ref.Kind != controllerKind.Kind {
		return nil
	}
	d, err := c.ds.Deployments(ns).Get(ref.Name)
	if err != nil || d.UID != ref.UID {
		return nil
	}
	return d
}

func (c *Controller) addRS(obj interface{}) {
	rs := obj.(*appsv1.ReplicaSet)
	if rs.DeletionTimestamp != nil {
		c.deleteRS(rs)
		return
	}
	if ref := metav1.GetControllerOfNoCopy(rs); ref != nil {
		if d := c.resolve(rs.Namespace, ref); d != nil {
			c.enqueue(d)
		}
		return
	}
	c.enqueueMatching(rs)
}

func (c *Controller) updateRS(old, cur interface{}) {
	o, n := old.(*appsv1.ReplicaSet), cur.(*appsv1.ReplicaSet)
	if o.ResourceVersion == n.ResourceVersion {
		return
	}
	curRef, oldRef := metav1.GetControllerOfNoCopy(n), metav1.GetControllerOfNoCopy(o)
	refChanged := !reflect.DeepEqual(curRef, oldRef)
	if refChanged && oldRef != nil {
		if d := c.resolve(o.Namespace, oldRef); d != nil {
			c.enqueue(d)
		}
	}
	if curRef != nil {
		if d := c.resolve(n.Namespace, curRef); d != nil {
			c.enqueue(d)
		}
		return
	}
	if refChanged || !reflect.DeepEqual(o.Labels, n.Labels) {
		c.enqueueMatching(n)
	}
}

func (c *Controller) deleteRS(obj interface{}) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		return
	}
	if ref := metav1.GetControllerOfNoCopy(rs); ref != nil {
		if d := c.resolve(rs.Namespace, ref); d != nil {
			c.enqueue(d)
		}
	}
}

// enqueueMatching wakes the Deployments that might adopt an orphan ReplicaSet.
func (c *Controller) enqueueMatching(rs *appsv1.ReplicaSet) {
	if len(rs.Labels) == 0 {
		return
	}
	ds, err := c.ds.Deployments(rs.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, d := range ds {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(rs.Labels)) {
			continue
		}
		c.enqueue(d)
	}
}

// deletePod wakes a Recreate Deployment when one of its pods goes: it waits for all old pods to be
// gone before creating the new ReplicaSet.
func (c *Controller) deletePod(obj interface{}) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	ref := metav1.GetControllerOfNoCopy(p)
	if ref == nil || ref.Kind != "ReplicaSet" {
		return
	}
	rs, err := c.rss.ReplicaSets(p.Namespace).Get(ref.Name)
	if err != nil || rs.UID != ref.UID {
		return
	}
	if dref := metav1.GetControllerOfNoCopy(rs); dref != nil {
		if d := c.resolve(rs.Namespace, dref); d != nil && d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
			c.enqueue(d)
		}
	}
}

// sync reconciles one Deployment (kube's syncDeployment).
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	cached, err := c.ds.Deployments(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil // its ReplicaSets go with the garbage collector
	}
	if err != nil {
		return err
	}
	d := cached.DeepCopy()

	if d.Spec.Selector == nil || reflect.DeepEqual(*d.Spec.Selector, metav1.LabelSelector{}) {
		c.recorder.Eventf(d, corev1.EventTypeWarning, "SelectingAll", "This deployment is selecting all pods. A non-empty selector is required.")
		if d.Status.ObservedGeneration < d.Generation {
			d.Status.ObservedGeneration = d.Generation
			if _, err := c.client.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("update status of deployment %s: %w", key, err)
			}
		}
		return nil
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		slog.Warn("deployment has an invalid selector", "deployment", key, "err", err)
		return nil
	}
	all, err := c.rss.ReplicaSets(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	rsList, err := claimReplicaSets(ctx, c.client, d, sel, all)
	if err != nil {
		return err
	}

	if d.DeletionTimestamp != nil {
		return c.syncStatusOnly(ctx, d, rsList)
	}
	if err := c.checkPausedConditions(ctx, d); err != nil {
		return err
	}
	if d.Spec.Paused {
		return c.syncScale(ctx, d, rsList)
	}
	scaling, err := c.isScalingEvent(ctx, d, rsList)
	if err != nil {
		return err
	}
	if scaling {
		return c.syncScale(ctx, d, rsList)
	}
	switch d.Spec.Strategy.Type {
	case appsv1.RecreateDeploymentStrategyType:
		return c.rolloutRecreate(ctx, d, rsList, c.podsByRS(d, sel, rsList))
	case appsv1.RollingUpdateDeploymentStrategyType:
		return c.rolloutRolling(ctx, d, rsList)
	}
	return fmt.Errorf("deployment %s: unexpected strategy type %q", key, d.Spec.Strategy.Type)
}

// podsByRS groups the Deployment's pods, finished ones included, by the ReplicaSet controlling them.
func (c *Controller) podsByRS(d *appsv1.Deployment, sel labels.Selector, rsList []*appsv1.ReplicaSet) map[string][]*corev1.Pod {
	out := make(map[string][]*corev1.Pod, len(rsList))
	for _, rs := range rsList {
		out[string(rs.UID)] = nil
	}
	pods, err := c.pods.Pods(d.Namespace).List(sel)
	if err != nil {
		return out
	}
	for _, p := range pods {
		ref := metav1.GetControllerOfNoCopy(p)
		if ref == nil {
			continue
		}
		if _, ok := out[string(ref.UID)]; ok {
			out[string(ref.UID)] = append(out[string(ref.UID)], p)
		}
	}
	return out
}

// updateStatus writes d's status and keeps d's resourceVersion current for the next write.
func (c *Controller) updateStatus(ctx context.Context, d *appsv1.Deployment) error {
	updated, err := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update status of deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	d.ResourceVersion = updated.ResourceVersion
	return nil
}

// getAllReplicaSetsAndSyncRevision splits rsList into the new ReplicaSet (created when missing and
// create is set) and the old ones, and brings the revision annotations up to date.
func (c *Controller) getAllReplicaSetsAndSyncRevision(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet, error) {
	_, allOld := findOldReplicaSets(d, rsList)
	newRS, err := c.getNewReplicaSet(ctx, d, rsList, allOld, create)
	if err != nil {
		return nil, nil, err
	}
	return newRS, allOld, nil
}

// getNewReplicaSet returns the ReplicaSet of d's current template with its annotations synced, or
// creates it (named <deployment>-<pod-template-hash>) when create is set; on a name collision with
// a foreign ReplicaSet it bumps status.collisionCount and retries later.
func (c *Controller) getNewReplicaSet(ctx context.Context, d *appsv1.Deployment, rsList, oldRSs []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, error) {
	existing := findNewReplicaSet(d, rsList)
	newRevision := strconv.FormatInt(maxRevision(oldRSs)+1, 10)
	now := c.now()

	if existing != nil {
		rs := existing.DeepCopy()
		annotationsChanged := setNewReplicaSetAnnotations(d, rs, newRevision, true)
		if annotationsChanged || rs.Spec.MinReadySeconds != d.Spec.MinReadySeconds {
			rs.Spec.MinReadySeconds = d.Spec.MinReadySeconds
			updated, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, rs, metav1.UpdateOptions{})
			if err != nil {
				return nil, fmt.Errorf("sync replicaset %s/%s: %w", rs.Namespace, rs.Name, err)
			}
			return updated, nil
		}
		needsUpdate := setDeploymentRevision(d, rs.Annotations[RevisionAnnotation])
		if hasProgressDeadline(d) && getCondition(d.Status, appsv1.DeploymentProgressing) == nil {
			setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, FoundNewRSReason,
				fmt.Sprintf("Found new replica set %q", rs.Name), now))
			needsUpdate = true
		}
		if needsUpdate {
			if err := c.updateStatus(ctx, d); err != nil {
				return nil, err
			}
		}
		return rs, nil
	}
	if !create {
		return nil, nil
	}

	tmpl := *d.Spec.Template.DeepCopy()
	hash := ComputeHash(&tmpl, d.Status.CollisionCount)
	tmpl.Labels = withLabel(d.Spec.Template.Labels, appsv1.DefaultDeploymentUniqueLabelKey, hash)
	sel := d.Spec.Selector.DeepCopy()
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	sel.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            d.Name + "-" + hash,
			Namespace:       d.Namespace,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, controllerKind)},
			Labels:          tmpl.Labels,
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        new(int32),
			MinReadySeconds: d.Spec.MinReadySeconds,
			Selector:        sel,
			Template:        tmpl,
		},
	}
	n, err := NewRSNewReplicas(d, append(append([]*appsv1.ReplicaSet(nil), oldRSs...), rs), rs)
	if err != nil {
		return nil, err
	}
	*rs.Spec.Replicas = n
	setNewReplicaSetAnnotations(d, rs, newRevision, false)

	created, err := c.client.AppsV1().ReplicaSets(d.Namespace).Create(ctx, rs, metav1.CreateOptions{})
	alreadyExists := false
	switch {
	case apierrors.IsAlreadyExists(err):
		alreadyExists = true
		// A slow cache or our own earlier create: the same template under our control is ours.
		found, getErr := c.rss.ReplicaSets(rs.Namespace).Get(rs.Name)
		if getErr != nil {
			return nil, fmt.Errorf("get existing replicaset %s/%s: %w", rs.Namespace, rs.Name, getErr)
		}
		if ref := metav1.GetControllerOfNoCopy(found); ref != nil && ref.UID == d.UID && equalIgnoreHash(&d.Spec.Template, &found.Spec.Template) {
			created, err = found, nil
			break
		}
		// A hash collision: change the hash input and try again on the next sync.
		if d.Status.CollisionCount == nil {
			d.Status.CollisionCount = new(int32)
		}
		*d.Status.CollisionCount++
		if uerr := c.updateStatus(ctx, d); uerr == nil {
			slog.Info("pod-template-hash collision, bumping collisionCount", "deployment", d.Namespace+"/"+d.Name,
				"collisionCount", *d.Status.CollisionCount)
		}
		return nil, fmt.Errorf("create replicaset %s/%s: %w", rs.Namespace, rs.Name, err)
	case err != nil && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return nil, fmt.Errorf("create replicaset %s/%s: %w", rs.Namespace, rs.Name, err)
	case err != nil:
		msg := fmt.Sprintf("Failed to create new replica set %q: %v", rs.Name, err)
		if hasProgressDeadline(d) {
			setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, FailedRSCreateReason, msg, now))
			_ = c.updateStatus(ctx, d) // the create failure is the error worth returning
		}
		c.recorder.Event(d, corev1.EventTypeWarning, FailedRSCreateReason, msg)
		return nil, fmt.Errorf("create replicaset %s/%s: %w", rs.Namespace, rs.Name, err)
	}
	if !alreadyExists && n > 0 {
		c.recorder.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled up replica set %s from 0 to %d", created.Name, n)
	}
	needsUpdate := setDeploymentRevision(d, newRevision)
	if !alreadyExists && hasProgressDeadline(d) {
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, NewReplicaSetReason,
			fmt.Sprintf("Created new replica set %q", created.Name), now))
		needsUpdate = true
	}
	if needsUpdate {
		if err := c.updateStatus(ctx, d); err != nil {
			return created, err
		}
	}
	return created, nil
}

func withLabel(in map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(in)+1)
	for kk, vv := range in {
		out[kk] = vv
	}
	out[k] = v
	return out
}

// scaleReplicaSet sets rs to size (and its replica annotations to d's), recording a
// ScalingReplicaSet event when the size changed. With refreshAnnotations unset an unchanged size is
// left alone. It returns the updated ReplicaSet and whether the size changed.
func (c *Controller) scaleReplicaSet(ctx context.Context, rs *appsv1.ReplicaSet, size int32, d *appsv1.Deployment, op string, refreshAnnotations bool) (*appsv1.ReplicaSet, bool, error) {
	sizeChanged := rsReplicas(rs) != size
	if !sizeChanged && !refreshAnnotations {
		return rs, false, nil
	}
	desired, maxReplicas := replicas(d), replicas(d)+MaxSurge(d)
	if !sizeChanged && !replicasAnnotationsNeedUpdate(rs, desired, maxReplicas) {
		return rs, false, nil
	}
	if op == "" {
		op = "down"
		if rsReplicas(rs) < size {
			op = "up"
		}
	}
	old := rsReplicas(rs)
	cp := rs.DeepCopy()
	cp.Spec.Replicas = &size
	setReplicasAnnotations(cp, desired, maxReplicas)
	updated, err := c.client.AppsV1().ReplicaSets(cp.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
	if err != nil {
		return rs, false, fmt.Errorf("scale replicaset %s/%s to %d: %w", rs.Namespace, rs.Name, size, err)
	}
	if sizeChanged {
		c.recorder.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled %s replica set %s from %d to %d", op, rs.Name, old, size)
	}
	return updated, sizeChanged, nil
}

// apply carries out a plan in order, each step on the latest copy of its ReplicaSet. It returns
// whether any size changed.
func (c *Controller) apply(ctx context.Context, d *appsv1.Deployment, plan []resize) (bool, error) {
	latest := map[string]*appsv1.ReplicaSet{}
	scaled := false
	for _, step := range plan {
		rs := step.rs
		if l, ok := latest[rs.Name]; ok {
			rs = l
		}
		updated, changed, err := c.scaleReplicaSet(ctx, rs, step.to, d, step.op, step.ann)
		if err != nil {
			return scaled, err
		}
		latest[rs.Name] = updated
		scaled = scaled || changed
	}
	return scaled, nil
}

// rolloutRolling is one step of a RollingUpdate: scale the new ReplicaSet up if the surge allows,
// else scale old ones down if availability allows, then report progress.
func (c *Controller) rolloutRolling(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, oldRSs, err := c.getAllReplicaSetsAndSyncRevision(ctx, d, rsList, true)
	if err != nil {
		return err
	}
	allRSs := append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS)

	var upPlan []resize
	switch {
	case rsReplicas(newRS) == replicas(d):
	case rsReplicas(newRS) > replicas(d):
		upPlan = []resize{{rs: newRS, to: replicas(d)}}
	default:
		n, err := NewRSNewReplicas(d, allRSs, newRS)
		if err != nil {
			return err
		}
		upPlan = []resize{{rs: newRS, to: n}}
	}
	scaled, err := c.apply(ctx, d, upPlan)
	if err != nil {
		return err
	}
	if scaled {
		return c.syncRolloutStatus(ctx, allRSs, newRS, d)
	}

	scaled, err = c.apply(ctx, d, planOldScaleDown(d, allRSs, active(oldRSs), newRS))
	if err != nil {
		return err
	}
	if scaled {
		return c.syncRolloutStatus(ctx, allRSs, newRS, d)
	}
	if deploymentComplete(d, &d.Status) {
		if err := c.cleanup(ctx, d, oldRSs); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, allRSs, newRS, d)
}

// rolloutRecreate scales every old ReplicaSet to zero, waits until no old pod runs, then creates
// and scales up the new ReplicaSet.
func (c *Controller) rolloutRecreate(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet, podsByRS map[string][]*corev1.Pod) error {
	newRS, oldRSs, err := c.getAllReplicaSetsAndSyncRevision(ctx, d, rsList, false)
	if err != nil {
		return err
	}
	allRSs := append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS)
	var down []resize
	for _, rs := range active(oldRSs) {
		down = append(down, resize{rs: rs, to: 0})
	}
	scaled, err := c.apply(ctx, d, down)
	if err != nil {
		return err
	}
	if scaled {
		return c.syncRolloutStatus(ctx, allRSs, newRS, d)
	}
	if oldPodsRunning(newRS, oldRSs, podsByRS) {
		return c.syncRolloutStatus(ctx, allRSs, newRS, d)
	}
	if newRS == nil {
		if newRS, oldRSs, err = c.getAllReplicaSetsAndSyncRevision(ctx, d, rsList, true); err != nil {
			return err
		}
		allRSs = append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS)
	}
	if _, err := c.apply(ctx, d, []resize{{rs: newRS, to: replicas(d)}}); err != nil {
		return err
	}
	if deploymentComplete(d, &d.Status) {
		if err := c.cleanup(ctx, d, oldRSs); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, allRSs, newRS, d)
}

// syncScale handles a change of spec.replicas and paused Deployments: resize without rolling.
func (c *Controller) syncScale(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, oldRSs, err := c.getAllReplicaSetsAndSyncRevision(ctx, d, rsList, false)
	if err != nil {
		return err
	}
	if _, err := c.apply(ctx, d, planScale(d, newRS, oldRSs)); err != nil {
		return err
	}
	if d.Spec.Paused {
		if err := c.cleanup(ctx, d, oldRSs); err != nil {
			return err
		}
	}
	return c.syncDeploymentStatus(ctx, append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS), newRS, d)
}

func (c *Controller) syncStatusOnly(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, oldRSs, err := c.getAllReplicaSetsAndSyncRevision(ctx, d, rsList, false)
	if err != nil {
		return err
	}
	return c.syncDeploymentStatus(ctx, append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS), newRS, d)
}

// isScalingEvent: an active ReplicaSet was sized for a different spec.replicas.
func (c *Controller) isScalingEvent(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) (bool, error) {
	newRS, oldRSs, err := c.getAllReplicaSetsAndSyncRevision(ctx, d, rsList, false)
	if err != nil {
		return false, err
	}
	for _, rs := range active(append(oldRSs, newRS)) {
		if desired, ok := intAnnotation(rs, DesiredReplicasAnnotation); ok && desired != replicas(d) {
			return true, nil
		}
	}
	return false, nil
}

// checkPausedConditions records pausing and resuming in the Progressing condition, so that a
// resumed Deployment does not time out at once.
func (c *Controller) checkPausedConditions(ctx context.Context, d *appsv1.Deployment) error {
	if !hasProgressDeadline(d) {
		return nil
	}
	cur := getCondition(d.Status, appsv1.DeploymentProgressing)
	if cur != nil && cur.Reason == TimedOutReason {
		return nil
	}
	pausedCond := cur != nil && cur.Reason == PausedDeployReason
	switch {
	case d.Spec.Paused && !pausedCond:
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, PausedDeployReason, "Deployment is paused", c.now()))
	case !d.Spec.Paused && pausedCond:
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ResumedDeployReason, "Deployment is resumed", c.now()))
	default:
		return nil
	}
	return c.updateStatus(ctx, d)
}

// cleanup deletes the old ReplicaSets beyond revisionHistoryLimit.
func (c *Controller) cleanup(ctx context.Context, d *appsv1.Deployment, oldRSs []*appsv1.ReplicaSet) error {
	for _, rs := range cleanupCandidates(d, oldRSs) {
		slog.Debug("deleting old replicaset", "deployment", d.Namespace+"/"+d.Name, "replicaSet", rs.Name)
		err := c.client.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete old replicaset %s/%s: %w", rs.Namespace, rs.Name, err)
		}
	}
	return nil
}

// syncRolloutStatus writes the rollout status and, when the rollout is stuck, schedules the
// progress-deadline check.
func (c *Controller) syncRolloutStatus(ctx context.Context, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) error {
	now := c.now()
	st := rolloutStatus(allRSs, newRS, d, now)
	if reflect.DeepEqual(d.Status, st) {
		switch after := progressCheckAfter(d, st, now); {
		case after == 0:
			c.queue.AddRateLimited(d.Namespace + "/" + d.Name)
		case after > 0:
			c.queue.AddAfter(d.Namespace+"/"+d.Name, after)
		}
		return nil
	}
	d.Status = st
	return c.updateStatus(ctx, d)
}

func (c *Controller) syncDeploymentStatus(ctx context.Context, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) error {
	st := calculateStatus(allRSs, newRS, d, c.now())
	if reflect.DeepEqual(d.Status, st) {
		return nil
	}
	d.Status = st
	return c.updateStatus(ctx, d)
}
