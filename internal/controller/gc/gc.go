// Package gc is the garbage collector: it deletes objects whose owners are all gone, and carries out
// the foreground and orphan deletion policies, as kube-controller-manager's garbage collector does.
package gc

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Resource is one served resource the collector watches.
type Resource struct {
	GVR        schema.GroupVersionResource
	Kind       schema.GroupVersionKind
	Namespaced bool
}

// ref names one object in the graph.
type ref struct {
	gvr       schema.GroupVersionResource
	namespace string
	name      string
	uid       types.UID
}

// Collector keeps an ownership graph from metadata informers.
type Collector struct {
	client metadata.Interface
	byKind map[schema.GroupKind]Resource
	queue  workqueue.TypedRateLimitingInterface[ref]

	mu         sync.RWMutex
	objects    map[types.UID]*metav1.PartialObjectMetadata
	gvrs       map[types.UID]schema.GroupVersionResource
	dependents map[types.UID]map[types.UID]bool
}

// New wires a collector to the informers of every resource.
func New(client metadata.Interface, resources []Resource, informers map[schema.GroupVersionResource]cache.SharedIndexInformer) *Collector {
	c := &Collector{client: client, byKind: map[schema.GroupKind]Resource{},
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[ref]()),
		objects: map[types.UID]*metav1.PartialObjectMetadata{}, gvrs: map[types.UID]schema.GroupVersionResource{},
		dependents: map[types.UID]map[types.UID]bool{}}
	for _, r := range resources {
		c.byKind[r.Kind.GroupKind()] = r
		gvr := r.GVR
		informers[gvr].AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o interface{}) { c.observe(gvr, o, false) },
			UpdateFunc: func(_, o interface{}) { c.observe(gvr, o, false) },
			DeleteFunc: func(o interface{}) { c.observe(gvr, o, true) },
		})
	}
	return c
}

func (c *Collector) observe(gvr schema.GroupVersionResource, o interface{}, deleted bool) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	m, ok := o.(*metav1.PartialObjectMetadata)
	if !ok {
		// A typed object: its informer is shared with the other controllers (controller.runAll), as
		// kube's collector shares typed informers where they exist. The graph keeps only the fields
		// it reads, not the object.
		a, err := meta.Accessor(o)
		if err != nil {
			return
		}
		m = &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
			Name: a.GetName(), Namespace: a.GetNamespace(), UID: a.GetUID(), ResourceVersion: a.GetResourceVersion(),
			OwnerReferences: a.GetOwnerReferences(), Finalizers: a.GetFinalizers(), DeletionTimestamp: a.GetDeletionTimestamp(),
		}}
	}
	c.mu.Lock()
	if old, ok := c.objects[m.UID]; ok {
		for _, or := range old.OwnerReferences {
			delete(c.dependents[or.UID], m.UID)
		}
	}
	var wake []types.UID
	if deleted {
		delete(c.objects, m.UID)
		delete(c.gvrs, m.UID)
		for uid := range c.dependents[m.UID] {
			wake = append(wake, uid)
		}
	} else {
		c.objects[m.UID] = m
		c.gvrs[m.UID] = gvr
		for _, or := range m.OwnerReferences {
			if c.dependents[or.UID] == nil {
				c.dependents[or.UID] = map[types.UID]bool{}
			}
			c.dependents[or.UID][m.UID] = true
		}
		// Only an object with owners can be orphaned, and only one being deleted has dependents
		// to orphan or wait for: the rest (most Services, Endpoints, standalone pods) need no
		// work, and queueing each of them cost a controller-manager restart about 8% of its CPU.
		if len(m.OwnerReferences) > 0 || m.DeletionTimestamp != nil {
			wake = append(wake, m.UID)
		}
	}
	for _, or := range m.OwnerReferences {
		if owner, ok := c.objects[or.UID]; ok && owner.DeletionTimestamp != nil {
			wake = append(wake, or.UID) // an owner waiting on its dependents, in foreground deletion
		}
	}
	refs := make([]ref, 0, len(wake))
	for _, uid := range wake {
		if obj, ok := c.objects[uid]; ok {
			refs = append(refs, ref{gvr: c.gvrs[uid], namespace: obj.Namespace, name: obj.Name, uid: uid})
		}
	}
	c.mu.Unlock()
	for _, r := range refs {
		c.queue.Add(r)
	}
}

// Run processes the graph until ctx ends.
func (c *Collector) Run(ctx context.Context, workers int) {
	defer c.queue.ShutDown()
	for i := 0; i < workers; i++ {
		go func() {
			for c.next(ctx) {
			}
		}()
	}
	<-ctx.Done()
}

func (c *Collector) next(ctx context.Context) bool {
	r, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(r)
	if err := c.process(ctx, r); err != nil {
		slog.Warn("garbage collection failed, retrying", "resource", r.gvr.Resource, "namespace", r.namespace, "name", r.name, "err", err)
		c.queue.AddRateLimited(r)
		return true
	}
	c.queue.Forget(r)
	return true
}

func (c *Collector) res(r ref) metadata.ResourceInterface {
	if r.namespace == "" {
		return c.client.Resource(r.gvr)
	}
	return c.client.Resource(r.gvr).Namespace(r.namespace)
}

func (c *Collector) process(ctx context.Context, r ref) error {
	c.mu.RLock()
	obj, ok := c.objects[r.uid]
	var deps []ref
	if ok {
		for uid := range c.dependents[r.uid] {
			if d, ok := c.objects[uid]; ok {
				deps = append(deps, ref{gvr: c.gvrs[uid], namespace: d.Namespace, name: d.Name, uid: uid})
			}
		}
	}
	c.mu.RUnlock()
	if !ok {
		return nil
	}
	if obj.DeletionTimestamp != nil {
		if slices.Contains(obj.Finalizers, metav1.FinalizerOrphanDependents) {
			return c.orphan(ctx, r, obj, deps)
		}
		if slices.Contains(obj.Finalizers, metav1.FinalizerDeleteDependents) {
			return c.foreground(ctx, r, obj, deps)
		}
	}
	return c.collectIfOrphaned(ctx, r, obj)
}

// collectIfOrphaned deletes an object all of whose owners are gone (checked live, since the graph may
// not have seen a new owner yet).
func (c *Collector) collectIfOrphaned(ctx context.Context, r ref, obj *metav1.PartialObjectMetadata) error {
	if len(obj.OwnerReferences) == 0 || obj.DeletionTimestamp != nil {
		return nil
	}
	foreground := false
	for _, or := range obj.OwnerReferences {
		state, err := c.ownerState(ctx, obj.Namespace, or)
		if err != nil {
			return err
		}
		switch state {
		case ownerPresent:
			return nil
		case ownerForeground:
			foreground = true
		}
	}
	policy := metav1.DeletePropagationBackground
	if foreground {
		policy = metav1.DeletePropagationForeground
	}
	slog.Info("deleting object whose owners are gone", "resource", r.gvr.Resource, "namespace", r.namespace, "name", r.name)
	err := c.res(r).Delete(ctx, r.name, metav1.DeleteOptions{PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &r.uid}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

type ownerStatus int

const (
	ownerPresent ownerStatus = iota
	ownerAbsent
	ownerForeground // being deleted in the foreground: its dependents go first
)

func (c *Collector) ownerState(ctx context.Context, namespace string, or metav1.OwnerReference) (ownerStatus, error) {
	gv, err := schema.ParseGroupVersion(or.APIVersion)
	if err != nil {
		return ownerAbsent, nil
	}
	res, ok := c.byKind[gv.WithKind(or.Kind).GroupKind()]
	if !ok {
		return ownerPresent, nil // an owner kind we do not serve: never collect on its account
	}
	// An owner the graph holds, not being deleted, is present: every dependent update lands here, and
	// reading the owner live each time cost the API server and etcd one read per write (an
	// EndpointSlice update, a pod status change). As in kube's collector, only owners the graph has
	// not seen, or that are being deleted, are verified live; if a known owner is in fact gone, its
	// delete event wakes this dependent again.
	c.mu.RLock()
	known, ok := c.objects[or.UID]
	knownGVR := c.gvrs[or.UID]
	c.mu.RUnlock()
	if ok && knownGVR == res.GVR && known.Name == or.Name && (!res.Namespaced || known.Namespace == namespace) &&
		known.DeletionTimestamp == nil {
		return ownerPresent, nil
	}
	ri := c.client.Resource(res.GVR)
	var owner *metav1.PartialObjectMetadata
	if res.Namespaced {
		owner, err = ri.Namespace(namespace).Get(ctx, or.Name, metav1.GetOptions{})
	} else {
		owner, err = ri.Get(ctx, or.Name, metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		return ownerAbsent, nil
	}
	if err != nil {
		return ownerPresent, err
	}
	if owner.UID != or.UID {
		return ownerAbsent, nil
	}
	if owner.DeletionTimestamp != nil && slices.Contains(owner.Finalizers, metav1.FinalizerDeleteDependents) {
		return ownerForeground, nil
	}
	return ownerPresent, nil
}

// orphan removes the owner's reference from its dependents, then the orphan finalizer from the owner.
func (c *Collector) orphan(ctx context.Context, r ref, obj *metav1.PartialObjectMetadata, deps []ref) error {
	for _, d := range deps {
		patch := fmt.Sprintf(`{"metadata":{"ownerReferences":[{"$patch":"delete","uid":%q}],"uid":%q}}`, r.uid, d.uid)
		_, err := c.res(d).Patch(ctx, d.name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			// Strategic merge patch is not available for every kind; fall back to a JSON merge rewrite.
			if err := c.rewriteOwners(ctx, d, r.uid); err != nil {
				return err
			}
		}
	}
	return c.removeFinalizer(ctx, r, obj, metav1.FinalizerOrphanDependents)
}

func (c *Collector) rewriteOwners(ctx context.Context, d ref, owner types.UID) error {
	cur, err := c.res(d).Get(ctx, d.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	kept := slices.DeleteFunc(slices.Clone(cur.OwnerReferences), func(or metav1.OwnerReference) bool { return or.UID == owner })
	return c.patchMeta(ctx, d, cur.ResourceVersion, map[string]any{"ownerReferences": kept})
}

// foreground deletes the dependents of an owner being deleted in the foreground, and releases the
// owner once none is left.
func (c *Collector) foreground(ctx context.Context, r ref, obj *metav1.PartialObjectMetadata, deps []ref) error {
	if len(deps) > 0 {
		policy := metav1.DeletePropagationForeground
		for _, d := range deps {
			err := c.res(d).Delete(ctx, d.name, metav1.DeleteOptions{PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &d.uid}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return err
			}
		}
		// Dependents with finalizers of their own take time; look again soon.
		c.queue.AddAfter(r, time.Second)
		return nil
	}
	return c.removeFinalizer(ctx, r, obj, metav1.FinalizerDeleteDependents)
}

func (c *Collector) removeFinalizer(ctx context.Context, r ref, obj *metav1.PartialObjectMetadata, name string) error {
	kept := slices.DeleteFunc(slices.Clone(obj.Finalizers), func(f string) bool { return f == name })
	return c.patchMeta(ctx, r, obj.ResourceVersion, map[string]any{"finalizers": kept})
}

func (c *Collector) patchMeta(ctx context.Context, r ref, rv string, fields map[string]any) error {
	meta := map[string]any{"resourceVersion": rv, "uid": r.uid}
	for k, v := range fields {
		meta[k] = v
	}
	body, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return err
	}
	_, err = c.res(r).Patch(ctx, r.name, types.MergePatchType, body, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
