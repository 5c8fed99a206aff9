package apiserver

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/registry/rest"

	"github.com/svcnet/svcnet/internal/apis/coordination"
	corevalidation "github.com/svcnet/svcnet/internal/apis/core/validation"
	"github.com/svcnet/svcnet/internal/apis/discovery"
	"github.com/svcnet/svcnet/internal/apis/workload"
	"github.com/svcnet/svcnet/internal/printers"
	"github.com/svcnet/svcnet/internal/registry"
)

// typed adapts a validator of one kind to the registry's runtime.Object signature.
func typed[T runtime.Object](f func(T) field.ErrorList) func(runtime.Object) field.ErrorList {
	return func(o runtime.Object) field.ErrorList { return f(o.(T)) }
}

func typedUpdate[T runtime.Object](f func(T, T) field.ErrorList) func(runtime.Object, runtime.Object) field.ErrorList {
	return func(o, old runtime.Object) field.ErrorList { return f(o.(T), old.(T)) }
}

// metaOnly validates just the object metadata, for kinds whose spec has no rules of their own yet.
func metaOnly(namespaced bool, name apivalidation.ValidateNameFunc) func(runtime.Object) field.ErrorList {
	return func(o runtime.Object) field.ErrorList {
		return corevalidation.ValidateObjectMeta(objectMeta(o), namespaced, name, field.NewPath("metadata"))
	}
}

func metaOnlyUpdate(o, old runtime.Object) field.ErrorList {
	return corevalidation.ValidateObjectMetaUpdate(objectMeta(o), objectMeta(old), field.NewPath("metadata"))
}

// objectMeta is the ObjectMeta every k8s.io/api kind embeds.
func objectMeta(o runtime.Object) *metav1.ObjectMeta {
	return o.(metav1.ObjectMetaAccessor).GetObjectMeta().(*metav1.ObjectMeta)
}

func table(gr schema.GroupResource) rest.TableConvertor { return printers.For(gr) }

// podGracefulDelete is kube's pod rule: the grace period comes from the pod spec unless the request
// sets one, and a pod that never ran on a node (or already finished) goes at once.
func podGracefulDelete(obj runtime.Object, options *metav1.DeleteOptions) bool {
	pod := obj.(*corev1.Pod)
	var period int64 = corev1.DefaultTerminationGracePeriodSeconds
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		period = *pod.Spec.TerminationGracePeriodSeconds
	}
	if options.GracePeriodSeconds != nil {
		period = *options.GracePeriodSeconds
	}
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
		period = 0
	}
	options.GracePeriodSeconds = &period
	return true
}

// resources lists every resource svcnet serves except services and namespaces, which have registries
// of their own. Keyed by group version for installation.
func resources() map[schema.GroupVersion][]registry.Resource {
	core := corev1.SchemeGroupVersion
	return map[schema.GroupVersion][]registry.Resource{
		core: {
			{GroupResource: core.WithResource("pods").GroupResource(), Singular: "pod",
				New: func() runtime.Object { return &corev1.Pod{} }, NewList: func() runtime.Object { return &corev1.PodList{} },
				Kind: &registry.Kind{APIVersion: "v1", Namespaced: true, HasStatus: true, Generation: true,
					ValidateCreate: typed(workload.ValidatePod), ValidateUpdate: typedUpdate(workload.ValidatePodUpdate),
					ValidateStatusUpdate: typedUpdate(workload.ValidatePodStatusUpdate), GracefulDelete: podGracefulDelete,
					PrepareCreate: func(obj runtime.Object) { workload.PreparePodForCreate(obj.(*corev1.Pod)) }},
				Table: table(core.WithResource("pods").GroupResource()), ShortNames: []string{"po"}, Categories: []string{"all"}},
			{GroupResource: core.WithResource("endpoints").GroupResource(), Singular: "endpoints", Upsert: true,
				New: func() runtime.Object { return &corev1.Endpoints{} }, NewList: func() runtime.Object { return &corev1.EndpointsList{} },
				Kind: &registry.Kind{APIVersion: "v1", Namespaced: true,
					ValidateCreate: metaOnly(true, apivalidation.NameIsDNSSubdomain), ValidateUpdate: metaOnlyUpdate},
				Table: table(core.WithResource("endpoints").GroupResource()), ShortNames: []string{"ep"}},
			{GroupResource: core.WithResource("nodes").GroupResource(), Singular: "node",
				New: func() runtime.Object { return &corev1.Node{} }, NewList: func() runtime.Object { return &corev1.NodeList{} },
				Kind: &registry.Kind{APIVersion: "v1", HasStatus: true,
					ValidateCreate: metaOnly(false, apivalidation.NameIsDNSSubdomain), ValidateUpdate: metaOnlyUpdate,
					ValidateStatusUpdate: metaOnlyUpdate},
				Table: table(core.WithResource("nodes").GroupResource()), ShortNames: []string{"no"}},
			{GroupResource: core.WithResource("events").GroupResource(), Singular: "event", TTLSeconds: uint64(time.Hour / time.Second),
				New: func() runtime.Object { return &corev1.Event{} }, NewList: func() runtime.Object { return &corev1.EventList{} },
				Kind: &registry.Kind{APIVersion: "v1", Namespaced: true,
					ValidateCreate: metaOnly(true, apivalidation.NameIsDNSSubdomain), ValidateUpdate: metaOnlyUpdate},
				Table: table(core.WithResource("events").GroupResource()), ShortNames: []string{"ev"}},
		},
		appsv1.SchemeGroupVersion: {
			{GroupResource: appsv1.Resource("deployments"), Singular: "deployment",
				New: func() runtime.Object { return &appsv1.Deployment{} }, NewList: func() runtime.Object { return &appsv1.DeploymentList{} },
				Kind: &registry.Kind{APIVersion: "apps/v1", Namespaced: true, HasStatus: true, Generation: true,
					ValidateCreate: typed(workload.ValidateDeployment), ValidateUpdate: typedUpdate(workload.ValidateDeploymentUpdate),
					ValidateStatusUpdate: typedUpdate(workload.ValidateDeploymentStatusUpdate)},
				Table: table(appsv1.Resource("deployments")), ShortNames: []string{"deploy"}, Categories: []string{"all"}},
			{GroupResource: appsv1.Resource("replicasets"), Singular: "replicaset",
				New: func() runtime.Object { return &appsv1.ReplicaSet{} }, NewList: func() runtime.Object { return &appsv1.ReplicaSetList{} },
				Kind: &registry.Kind{APIVersion: "apps/v1", Namespaced: true, HasStatus: true, Generation: true,
					ValidateCreate: typed(workload.ValidateReplicaSet), ValidateUpdate: typedUpdate(workload.ValidateReplicaSetUpdate),
					ValidateStatusUpdate: typedUpdate(workload.ValidateReplicaSetStatusUpdate)},
				Table: table(appsv1.Resource("replicasets")), ShortNames: []string{"rs"}, Categories: []string{"all"}},
			{GroupResource: appsv1.Resource("statefulsets"), Singular: "statefulset",
				New: func() runtime.Object { return &appsv1.StatefulSet{} }, NewList: func() runtime.Object { return &appsv1.StatefulSetList{} },
				Kind: &registry.Kind{APIVersion: "apps/v1", Namespaced: true, HasStatus: true, Generation: true,
					ValidateCreate: typed(workload.ValidateStatefulSet), ValidateUpdate: typedUpdate(workload.ValidateStatefulSetUpdate),
					ValidateStatusUpdate: typedUpdate(workload.ValidateStatefulSetStatusUpdate)},
				Table: table(appsv1.Resource("statefulsets")), ShortNames: []string{"sts"}, Categories: []string{"all"}},
		},
		discoveryv1.SchemeGroupVersion: {
			{GroupResource: discoveryv1.Resource("endpointslices"), Singular: "endpointslice",
				New: func() runtime.Object { return &discoveryv1.EndpointSlice{} }, NewList: func() runtime.Object { return &discoveryv1.EndpointSliceList{} },
				Kind: &registry.Kind{APIVersion: "discovery.k8s.io/v1", Namespaced: true, Generation: true,
					ValidateCreate: typed(discovery.ValidateEndpointSlice), ValidateUpdate: typedUpdate(discovery.ValidateEndpointSliceUpdate)},
				Table: table(discoveryv1.Resource("endpointslices"))},
		},
		coordinationv1.SchemeGroupVersion: {
			{GroupResource: coordinationv1.Resource("leases"), Singular: "lease", Upsert: true,
				New: func() runtime.Object { return &coordinationv1.Lease{} }, NewList: func() runtime.Object { return &coordinationv1.LeaseList{} },
				Kind: &registry.Kind{APIVersion: "coordination.k8s.io/v1", Namespaced: true,
					ValidateCreate: typed(coordination.ValidateLease), ValidateUpdate: typedUpdate(coordination.ValidateLeaseUpdate)},
				Table: table(coordinationv1.Resource("leases"))},
		},
	}
}

// serviceKind is the Service's rules; allocation hooks are added by the service registry.
func serviceKind() *registry.Kind {
	return &registry.Kind{APIVersion: "v1", Namespaced: true, HasStatus: true,
		PrepareCreate:  func(o runtime.Object) { o.(*corev1.Service).Status = corev1.ServiceStatus{} },
		ValidateCreate: typed(corevalidation.ValidateService), ValidateUpdate: typedUpdate(corevalidation.ValidateServiceUpdate),
		ValidateStatusUpdate: typedUpdate(corevalidation.ValidateServiceStatusUpdate)}
}
