// Package registry turns svcnet's pure per-kind rules (defaulting, validation, status/spec split,
// generation) into the strategies and stores of k8s.io/apiserver's generic registry.
package registry

import (
	"context"
	"reflect"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/storage/names"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/svcnet/svcnet/internal/apiserver/scheme"
)

// Kind holds the rules of one kind. Nil functions mean "nothing to do".
type Kind struct {
	APIVersion string // "v1", "apps/v1": keys the managed-fields reset sets
	Namespaced bool
	// HasStatus splits the object: the main resource ignores status changes, the status subresource
	// ignores everything else, as kube-apiserver does.
	HasStatus bool
	// Generation bumps metadata.generation when the spec changes (kinds whose controllers observe it).
	Generation bool

	PrepareCreate        func(obj runtime.Object)
	PrepareUpdate        func(obj, old runtime.Object)
	ValidateCreate       func(obj runtime.Object) field.ErrorList
	ValidateUpdate       func(obj, old runtime.Object) field.ErrorList
	ValidateStatusUpdate func(obj, old runtime.Object) field.ErrorList
	WarningsOnCreate     func(obj runtime.Object) []string

	// GracefulDelete decides the grace period of a delete (pods); nil means immediate.
	GracefulDelete func(obj runtime.Object, options *metav1.DeleteOptions) bool
	// GCPolicy is the default propagation of dependents on delete (kube: background for most kinds).
	GCPolicy rest.GarbageCollectionPolicy
}

// Strategy is the create/update/delete strategy of a kind's main resource.
type Strategy struct {
	runtime.ObjectTyper
	names.NameGenerator
	kind *Kind
}

// NewStrategy returns the main-resource strategy for a kind.
func NewStrategy(k *Kind) *Strategy {
	return &Strategy{ObjectTyper: scheme.Scheme, NameGenerator: names.SimpleNameGenerator, kind: k}
}

func (s *Strategy) NamespaceScoped() bool { return s.kind.Namespaced }

func (s *Strategy) PrepareForCreate(ctx context.Context, obj runtime.Object) {
	if s.kind.Generation {
		if m, err := meta.Accessor(obj); err == nil {
			m.SetGeneration(1)
		}
	}
	if s.kind.PrepareCreate != nil {
		s.kind.PrepareCreate(obj)
	}
}

func (s *Strategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	if s.kind.HasStatus {
		copyField(obj, old, "Status")
	}
	if s.kind.Generation {
		bumpGeneration(obj, old)
	}
	if s.kind.PrepareUpdate != nil {
		s.kind.PrepareUpdate(obj, old)
	}
}

func (s *Strategy) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	if s.kind.ValidateCreate == nil {
		return nil
	}
	return s.kind.ValidateCreate(obj)
}

func (s *Strategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	if s.kind.ValidateUpdate == nil {
		return nil
	}
	return s.kind.ValidateUpdate(obj, old)
}

func (s *Strategy) WarningsOnCreate(ctx context.Context, obj runtime.Object) []string {
	if s.kind.WarningsOnCreate == nil {
		return nil
	}
	return s.kind.WarningsOnCreate(obj)
}

func (s *Strategy) WarningsOnUpdate(ctx context.Context, obj, old runtime.Object) []string {
	return nil
}

func (s *Strategy) Canonicalize(obj runtime.Object) {}

// AllowCreateOnUpdate is false: PUT to a missing object is 404 (Endpoints and Leases use upsertStrategy).
func (s *Strategy) AllowCreateOnUpdate() bool { return false }

func (s *Strategy) AllowUnconditionalUpdate() bool { return true }

func (s *Strategy) CheckGracefulDelete(ctx context.Context, obj runtime.Object, options *metav1.DeleteOptions) bool {
	if s.kind.GracefulDelete == nil {
		return false
	}
	return s.kind.GracefulDelete(obj, options)
}

func (s *Strategy) DefaultGarbageCollectionPolicy(ctx context.Context) rest.GarbageCollectionPolicy {
	if s.kind.GCPolicy == "" {
		return rest.DeleteDependents
	}
	return s.kind.GCPolicy
}

// GetResetFields tells server-side apply which fields this endpoint never changes.
func (s *Strategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	if !s.kind.HasStatus {
		return nil
	}
	return map[fieldpath.APIVersion]*fieldpath.Set{
		fieldpath.APIVersion(s.kind.APIVersion): fieldpath.NewSet(fieldpath.MakePathOrDie("status")),
	}
}

// upsertStrategy allows PUT to create, as kube does for Endpoints and Leases.
type upsertStrategy struct{ *Strategy }

func (upsertStrategy) AllowCreateOnUpdate() bool { return true }

// StatusStrategy is the strategy of a kind's status subresource.
type StatusStrategy struct{ *Strategy }

// NewStatusStrategy returns the status-subresource strategy for a kind.
func NewStatusStrategy(k *Kind) *StatusStrategy { return &StatusStrategy{NewStrategy(k)} }

func (s *StatusStrategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	copyField(obj, old, "Spec")
	// Status writers may not change the metadata that drives other controllers.
	nm, err1 := meta.Accessor(obj)
	om, err2 := meta.Accessor(old)
	if err1 == nil && err2 == nil {
		nm.SetDeletionTimestamp(om.GetDeletionTimestamp())
		nm.SetOwnerReferences(om.GetOwnerReferences())
	}
}

func (s *StatusStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	if s.kind.ValidateStatusUpdate == nil {
		return nil
	}
	return s.kind.ValidateStatusUpdate(obj, old)
}

func (s *StatusStrategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return map[fieldpath.APIVersion]*fieldpath.Set{
		fieldpath.APIVersion(s.kind.APIVersion): fieldpath.NewSet(
			fieldpath.MakePathOrDie("spec"), fieldpath.MakePathOrDie("metadata", "deletionTimestamp"),
			fieldpath.MakePathOrDie("metadata", "ownerReferences")),
	}
}

// copyField sets dst.<name> = src.<name> on two pointers to the same struct type. The generic registry
// has no typed hook for "keep the old status", and every k8s.io/api kind names it Status (and Spec).
func copyField(dst, src runtime.Object, name string) {
	d := reflect.ValueOf(dst).Elem().FieldByName(name)
	s := reflect.ValueOf(src).Elem().FieldByName(name)
	if d.IsValid() && s.IsValid() && d.CanSet() {
		d.Set(s)
	}
}

// bumpGeneration increments metadata.generation when what controllers act on changed: the spec, or
// for kinds without one (EndpointSlice) everything outside metadata plus the labels, as kube does.
func bumpGeneration(obj, old runtime.Object) {
	nm, err1 := meta.Accessor(obj)
	om, err2 := meta.Accessor(old)
	if err1 != nil || err2 != nil {
		return
	}
	nm.SetGeneration(om.GetGeneration())
	ns := reflect.ValueOf(obj).Elem().FieldByName("Spec")
	os := reflect.ValueOf(old).Elem().FieldByName("Spec")
	changed := false
	if ns.IsValid() && os.IsValid() {
		changed = !equality.Semantic.DeepEqual(ns.Interface(), os.Interface())
	} else {
		n, o := obj.DeepCopyObject(), old.DeepCopyObject()
		copyField(n, o, "ObjectMeta")
		changed = !equality.Semantic.DeepEqual(n, o) || !equality.Semantic.DeepEqual(nm.GetLabels(), om.GetLabels())
	}
	if changed {
		nm.SetGeneration(om.GetGeneration() + 1)
	}
}
