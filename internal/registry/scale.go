package registry

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
)

// ScaleREST serves the /scale subresource (autoscaling/v1 Scale) of a workload store, which is what
// `kubectl scale` and autoscalers use.
type ScaleREST struct {
	store *genericregistry.Store
	gr    schema.GroupResource
}

// NewScaleREST returns the scale subresource for deployments, replicasets or statefulsets.
func NewScaleREST(store *genericregistry.Store) *ScaleREST {
	return &ScaleREST{store: store, gr: store.DefaultQualifiedResource}
}

var (
	_ rest.Patcher                  = &ScaleREST{}
	_ rest.GroupVersionKindProvider = &ScaleREST{}
)

func (r *ScaleREST) New() runtime.Object { return &autoscalingv1.Scale{} }
func (r *ScaleREST) Destroy()            {}

func (r *ScaleREST) GroupVersionKind(schema.GroupVersion) schema.GroupVersionKind {
	return autoscalingv1.SchemeGroupVersion.WithKind("Scale")
}

func (r *ScaleREST) Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error) {
	obj, err := r.store.Get(ctx, name, options)
	if err != nil {
		return nil, err
	}
	return toScale(obj)
}

func (r *ScaleREST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc,
	updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	obj, _, err := r.store.Update(ctx, name, &scaleUpdate{objInfo: objInfo, gr: r.gr}, toScaleCreateValidation(createValidation),
		toScaleUpdateValidation(updateValidation), false, options)
	if err != nil {
		return nil, false, err
	}
	s, err := toScale(obj)
	return s, false, err
}

func (r *ScaleREST) ConvertToTable(ctx context.Context, object runtime.Object, tableOptions runtime.Object) (*metav1.Table, error) {
	return rest.NewDefaultTableConvertor(r.gr).ConvertToTable(ctx, object, tableOptions)
}

func toScaleCreateValidation(f rest.ValidateObjectFunc) rest.ValidateObjectFunc {
	return func(ctx context.Context, obj runtime.Object) error {
		s, err := toScale(obj)
		if err != nil {
			return err
		}
		return f(ctx, s)
	}
}

func toScaleUpdateValidation(f rest.ValidateObjectUpdateFunc) rest.ValidateObjectUpdateFunc {
	return func(ctx context.Context, obj, old runtime.Object) error {
		s, err := toScale(obj)
		if err != nil {
			return err
		}
		o, err := toScale(old)
		if err != nil {
			return err
		}
		return f(ctx, s, o)
	}
}

func toScale(obj runtime.Object) (*autoscalingv1.Scale, error) {
	var (
		meta     metav1.ObjectMeta
		spec     int32
		status   int32
		selector *metav1.LabelSelector
	)
	switch o := obj.(type) {
	case *appsv1.Deployment:
		meta, status, selector = o.ObjectMeta, o.Status.Replicas, o.Spec.Selector
		if o.Spec.Replicas != nil {
			spec = *o.Spec.Replicas
		}
	case *appsv1.ReplicaSet:
		meta, status, selector = o.ObjectMeta, o.Status.Replicas, o.Spec.Selector
		if o.Spec.Replicas != nil {
			spec = *o.Spec.Replicas
		}
	case *appsv1.StatefulSet:
		meta, status, selector = o.ObjectMeta, o.Status.Replicas, o.Spec.Selector
		if o.Spec.Replicas != nil {
			spec = *o.Spec.Replicas
		}
	default:
		return nil, fmt.Errorf("no scale for %T", obj)
	}
	sel := ""
	if selector != nil {
		s, err := metav1.LabelSelectorAsSelector(selector)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		sel = s.String()
	}
	return &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: meta.Name, Namespace: meta.Namespace, UID: meta.UID,
			ResourceVersion: meta.ResourceVersion, CreationTimestamp: meta.CreationTimestamp},
		Spec:   autoscalingv1.ScaleSpec{Replicas: spec},
		Status: autoscalingv1.ScaleStatus{Replicas: status, Selector: sel},
	}, nil
}

// scaleUpdate applies a Scale written by the client to the workload object it scales.
type scaleUpdate struct {
	objInfo rest.UpdatedObjectInfo
	gr      schema.GroupResource
}

func (i *scaleUpdate) Preconditions() *metav1.Preconditions { return i.objInfo.Preconditions() }

func (i *scaleUpdate) UpdatedObject(ctx context.Context, oldObj runtime.Object) (runtime.Object, error) {
	if oldObj == nil {
		return nil, apierrors.NewNotFound(i.gr, "")
	}
	oldScale, err := toScale(oldObj)
	if err != nil {
		return nil, err
	}
	obj, err := i.objInfo.UpdatedObject(ctx, oldScale)
	if err != nil {
		return nil, err
	}
	scale, ok := obj.(*autoscalingv1.Scale)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("expected input object type to be Scale, but %T", obj))
	}
	if scale.Spec.Replicas < 0 {
		return nil, apierrors.NewInvalid(autoscalingv1.SchemeGroupVersion.WithKind("Scale").GroupKind(), scale.Name, field.ErrorList{
			field.Invalid(field.NewPath("spec", "replicas"), scale.Spec.Replicas, "must be greater than or equal to 0")})
	}
	if scale.ResourceVersion != "" && scale.ResourceVersion != oldScale.ResourceVersion {
		return nil, apierrors.NewConflict(i.gr, scale.Name, fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
	}
	out := oldObj.DeepCopyObject()
	n := scale.Spec.Replicas
	switch o := out.(type) {
	case *appsv1.Deployment:
		o.Spec.Replicas = &n
	case *appsv1.ReplicaSet:
		o.Spec.Replicas = &n
	case *appsv1.StatefulSet:
		o.Spec.Replicas = &n
	}
	return out, nil
}
