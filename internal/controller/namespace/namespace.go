// Package namespace carries out namespace deletion: once a namespace is Terminating, it deletes
// everything in it, waits until nothing is left, then clears the namespace's "kubernetes" finalizer
// and deletes it, as kube-controller-manager's namespace controller does.
package namespace

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/svcnet/svcnet/internal/controller/gc"
)

// Controller empties and removes terminating namespaces.
type Controller struct {
	client     metadata.Interface
	kube       kubernetes.Interface
	namespaced []gc.Resource
	informers  map[schema.GroupVersionResource]cache.SharedIndexInformer
	nsGVR      schema.GroupVersionResource
	queue      workqueue.TypedRateLimitingInterface[string]
}

var namespacesGVR = corev1.SchemeGroupVersion.WithResource("namespaces")

// New wires the controller to the shared metadata informers.
func New(client metadata.Interface, kube kubernetes.Interface, resources []gc.Resource, informers map[schema.GroupVersionResource]cache.SharedIndexInformer) *Controller {
	c := &Controller{client: client, kube: kube, informers: informers, nsGVR: namespacesGVR,
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())}
	for _, r := range resources {
		if r.Namespaced {
			c.namespaced = append(c.namespaced, r)
		}
	}
	if inf, ok := informers[namespacesGVR]; ok {
		inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueue,
			UpdateFunc: func(_, o interface{}) { c.enqueue(o) },
		})
	}
	return c
}

func (c *Controller) enqueue(o interface{}) {
	if m, ok := o.(*metav1.PartialObjectMetadata); ok && m.DeletionTimestamp != nil {
		c.queue.Add(m.Name)
	}
}

// Run works until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer c.queue.ShutDown()
	for i := 0; i < workers; i++ {
		go func() {
			for c.next(ctx) {
			}
		}()
	}
	<-ctx.Done()
}

func (c *Controller) next(ctx context.Context) bool {
	name, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(name)
	remaining, err := c.sync(ctx, name)
	switch {
	case err != nil:
		slog.Warn("namespace deletion failed, retrying", "namespace", name, "err", err)
		c.queue.AddRateLimited(name)
	case remaining > 0:
		// Objects with grace periods or finalizers of their own: look again shortly.
		c.queue.AddAfter(name, 500*time.Millisecond)
	default:
		c.queue.Forget(name)
	}
	return true
}

// sync deletes the namespace's content and, once it is empty, finalizes the namespace. It returns how
// many objects are still in it.
func (c *Controller) sync(ctx context.Context, name string) (int, error) {
	ns, err := c.client.Resource(c.nsGVR).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if ns.DeletionTimestamp == nil {
		return 0, nil
	}
	remaining := 0
	for _, r := range c.namespaced {
		items, err := c.informers[r.GVR].GetIndexer().ByIndex(cache.NamespaceIndex, name)
		if err != nil {
			return 0, err
		}
		if len(items) == 0 {
			continue
		}
		remaining += len(items)
		err = c.client.Resource(r.GVR).Namespace(name).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) {
			return 0, fmt.Errorf("delete %s in %s: %w", r.GVR.Resource, name, err)
		}
	}
	if remaining > 0 {
		return remaining, nil
	}
	return 0, c.finalize(ctx, name)
}

// finalize removes the "kubernetes" spec finalizer through /finalize, then deletes the namespace,
// which the API server now removes for good (unless metadata finalizers remain).
func (c *Controller) finalize(ctx context.Context, name string) error {
	ns, err := c.kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		ns.Spec.Finalizers = slices.DeleteFunc(ns.Spec.Finalizers, func(f corev1.FinalizerName) bool { return f == corev1.FinalizerKubernetes })
		if _, err := c.kube.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("finalize namespace %s: %w", name, err)
		}
	}
	err = c.kube.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete namespace %s: %w", name, err)
	}
	return nil
}
