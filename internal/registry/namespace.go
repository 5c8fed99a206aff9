package registry

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/storage"
)

// NamespaceREST serves namespaces with kube's two-phase delete: a delete marks the namespace
// Terminating; the namespace controller empties it, clears spec.finalizers through /finalize, and
// deletes it again, which then removes it.
type NamespaceREST struct {
	*genericregistry.Store
	shortNames []string
	status     *StatusREST
	finalize   *StatusREST
}

// NamespaceKind holds namespace rules.
func NamespaceKind() *Kind {
	return &Kind{APIVersion: "v1", HasStatus: true,
		PrepareCreate: func(o runtime.Object) {
			ns := o.(*corev1.Namespace)
			ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
			ns.Spec.Finalizers = []corev1.FinalizerName{corev1.FinalizerKubernetes}
		},
		PrepareUpdate: func(o, old runtime.Object) {
			// spec.finalizers change only through /finalize.
			o.(*corev1.Namespace).Spec.Finalizers = old.(*corev1.Namespace).Spec.Finalizers
		},
		ValidateCreate: func(o runtime.Object) field.ErrorList {
			return apivalidation.ValidateObjectMetaAccessor(o.(*corev1.Namespace), false, apivalidation.ValidateNamespaceName, field.NewPath("metadata"))
		},
		ValidateUpdate: func(o, old runtime.Object) field.ErrorList {
			return apivalidation.ValidateObjectMetaAccessorUpdate(o.(*corev1.Namespace), old.(*corev1.Namespace), field.NewPath("metadata"))
		},
		ValidateStatusUpdate: func(o, old runtime.Object) field.ErrorList {
			return apivalidation.ValidateObjectMetaAccessorUpdate(o.(*corev1.Namespace), old.(*corev1.Namespace), field.NewPath("metadata"))
		},
		GCPolicy: rest.OrphanDependents,
	}
}

// NewNamespaceREST builds the namespace storage with status and finalize subresources.
func NewNamespaceREST(opts generic.RESTOptionsGetter, table rest.TableConvertor) (*NamespaceREST, error) {
	k := NamespaceKind()
	s, err := NewStore(opts, Resource{
		GroupResource: corev1.Resource("namespaces"), Singular: "namespace", Kind: k,
		New: func() runtime.Object { return &corev1.Namespace{} }, NewList: func() runtime.Object { return &corev1.NamespaceList{} },
		Table: table, ShortNames: []string{"ns"},
	})
	if err != nil {
		return nil, err
	}
	// A terminating namespace is removed by an update only once both its metadata finalizers and its
	// spec finalizers are gone; the generic rule looks at metadata finalizers alone.
	s.ShouldDeleteDuringUpdate = func(ctx context.Context, key string, obj, existing runtime.Object) bool {
		ns := obj.(*corev1.Namespace)
		return genericregistry.ShouldDeleteDuringUpdate(ctx, key, obj, existing) && len(ns.Spec.Finalizers) == 0
	}
	fin := NewStatusREST(s, &Kind{APIVersion: "v1"})
	fin.store.UpdateStrategy = finalizeStrategy{NewStrategy(k)}
	return &NamespaceREST{Store: s, shortNames: []string{"ns"}, status: NewStatusREST(s, k), finalize: fin}, nil
}

// ShortNames advertises "ns".
func (r *NamespaceREST) ShortNames() []string { return r.shortNames }

// Status is the /status subresource.
func (r *NamespaceREST) Status() *StatusREST { return r.status }

// Finalize is the /finalize subresource.
func (r *NamespaceREST) Finalize() *StatusREST { return r.finalize }

// Delete marks the namespace Terminating while it has spec finalizers, and removes it otherwise.
func (r *NamespaceREST) Delete(ctx context.Context, name string, deleteValidation rest.ValidateObjectFunc, options *metav1.DeleteOptions) (runtime.Object, bool, error) {
	obj, err := r.Get(ctx, name, &metav1.GetOptions{})
	if err != nil {
		return nil, false, err
	}
	ns := obj.(*corev1.Namespace)
	if options == nil {
		options = metav1.NewDeleteOptions(0)
	}
	if options.Preconditions != nil {
		if options.Preconditions.UID != nil && *options.Preconditions.UID != ns.UID {
			return nil, false, apierrors.NewConflict(corev1.Resource("namespaces"), name,
				fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *options.Preconditions.UID, ns.UID))
		}
		if options.Preconditions.ResourceVersion != nil && *options.Preconditions.ResourceVersion != ns.ResourceVersion {
			return nil, false, apierrors.NewConflict(corev1.Resource("namespaces"), name,
				fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *options.Preconditions.ResourceVersion, ns.ResourceVersion))
		}
	}
	if len(ns.Spec.Finalizers) > 0 || len(ns.Finalizers) > 0 {
		if ns.DeletionTimestamp.IsZero() && deleteValidation != nil {
			if err := deleteValidation(ctx, ns); err != nil {
				return nil, false, err
			}
		}
		out, err := r.markTerminating(ctx, name, options)
		return out, false, err
	}
	return r.Store.Delete(ctx, name, deleteValidation, options)
}

func (r *NamespaceREST) markTerminating(ctx context.Context, name string, options *metav1.DeleteOptions) (runtime.Object, error) {
	key, err := r.Store.KeyFunc(ctx, name)
	if err != nil {
		return nil, err
	}
	out := &corev1.Namespace{}
	dryRun := len(options.DryRun) > 0
	err = r.Store.Storage.GuaranteedUpdate(ctx, key, out, false, nil,
		storage.SimpleUpdate(func(existing runtime.Object) (runtime.Object, error) {
			ns := existing.(*corev1.Namespace)
			if ns.DeletionTimestamp.IsZero() {
				now := metav1.Now()
				ns.DeletionTimestamp = &now
				zero := int64(0)
				ns.DeletionGracePeriodSeconds = &zero
			}
			ns.Status.Phase = corev1.NamespaceTerminating
			return ns, nil
		}), dryRun, nil)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// finalizeStrategy lets /finalize change spec.finalizers and nothing else.
type finalizeStrategy struct{ *Strategy }

func (finalizeStrategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	ns, oldNS := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	fin := ns.Spec.Finalizers
	*ns = *oldNS.DeepCopy()
	ns.Spec.Finalizers = fin
}

func (finalizeStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	var errs field.ErrorList
	for i, f := range obj.(*corev1.Namespace).Spec.Finalizers {
		errs = append(errs, apivalidation.ValidateFinalizerName(string(f), field.NewPath("spec", "finalizers").Index(i))...)
	}
	return errs
}
