package registry

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/svcnet/svcnet/internal/apiserver/scheme"
)

// Resource describes one served resource: its kind rules and how to make its objects.
type Resource struct {
	GroupResource schema.GroupResource
	Singular      string
	Kind          *Kind
	New           func() runtime.Object
	NewList       func() runtime.Object
	// Upsert lets PUT create a missing object (kube: Endpoints, Leases).
	Upsert bool
	// TTLSeconds expires objects in etcd (kube keeps events for one hour).
	TTLSeconds uint64
	Table      rest.TableConvertor
	// ShortNames and Categories are what discovery advertises (kubectl get svc, kubectl get all).
	ShortNames []string
	Categories []string
}

// Store is a generic store that also advertises short names and categories.
type Store struct {
	*genericregistry.Store
	shortNames []string
	categories []string
}

var (
	_ rest.ShortNamesProvider = &Store{}
	_ rest.CategoriesProvider = &Store{}
)

func (s *Store) ShortNames() []string { return s.shortNames }
func (s *Store) Categories() []string { return s.categories }

// Wrap adds a resource's short names and categories to its store.
func Wrap(s *genericregistry.Store, r Resource) *Store {
	return &Store{Store: s, shortNames: r.ShortNames, categories: r.Categories}
}

// NewStore builds the generic store for a resource.
func NewStore(opts generic.RESTOptionsGetter, r Resource) (*genericregistry.Store, error) {
	strategy := NewStrategy(r.Kind)
	var update rest.RESTUpdateStrategy = strategy
	if r.Upsert {
		update = upsertStrategy{strategy}
	}
	table := r.Table
	if table == nil {
		table = rest.NewDefaultTableConvertor(r.GroupResource)
	}
	s := &genericregistry.Store{
		NewFunc:                   r.New,
		NewListFunc:               r.NewList,
		DefaultQualifiedResource:  r.GroupResource,
		SingularQualifiedResource: schema.GroupResource{Group: r.GroupResource.Group, Resource: r.Singular},
		CreateStrategy:            strategy,
		UpdateStrategy:            update,
		DeleteStrategy:            strategy,
		ResetFieldsStrategy:       strategy,
		TableConvertor:            table,
	}
	if r.TTLSeconds > 0 {
		ttl := r.TTLSeconds
		s.TTLFunc = func(runtime.Object, uint64, bool) (uint64, error) { return ttl, nil }
	}
	if err := s.CompleteWithOptions(&generic.StoreOptions{RESTOptions: opts, AttrFunc: scheme.GetAttrs}); err != nil {
		return nil, fmt.Errorf("store for %s: %w", r.GroupResource, err)
	}
	return s, nil
}

// StatusREST serves the status subresource of a store: same storage, status strategy.
type StatusREST struct {
	store *genericregistry.Store
}

// NewStatusREST returns the status subresource for a main store built by NewStore.
func NewStatusREST(main *genericregistry.Store, k *Kind) *StatusREST {
	s := *main
	st := NewStatusStrategy(k)
	s.CreateStrategy = nil
	s.UpdateStrategy = st
	s.DeleteStrategy = nil
	s.ResetFieldsStrategy = st
	return &StatusREST{store: &s}
}

var (
	_ rest.Patcher             = &StatusREST{}
	_ rest.ResetFieldsStrategy = &StatusREST{}
)

func (r *StatusREST) New() runtime.Object { return r.store.New() }
func (r *StatusREST) Destroy()            {}

func (r *StatusREST) Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error) {
	return r.store.Get(ctx, name, options)
}

// Update never creates: a status write to a missing object is 404.
func (r *StatusREST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc,
	updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	return r.store.Update(ctx, name, objInfo, createValidation, updateValidation, false, options)
}

func (r *StatusREST) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return r.store.GetResetFields()
}

func (r *StatusREST) ConvertToTable(ctx context.Context, object runtime.Object, tableOptions runtime.Object) (*metav1.Table, error) {
	return r.store.ConvertToTable(ctx, object, tableOptions)
}
