// Package scheme holds the runtime.Scheme svcnet serves: the official versioned types of k8s.io/api,
// registered a second time as their group's internal (hub) version. svcnet has no internal types of its
// own, so conversion between the served version and the hub is the identity, and defaulting runs on
// every decode exactly as kube-apiserver's scheme defaulting does.
package scheme

import (
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
)

var (
	// Scheme knows every type svcnet serves.
	Scheme = runtime.NewScheme()
	// Codecs encodes and decodes those types in JSON, YAML and protobuf.
	Codecs = serializer.NewCodecFactory(Scheme)
	// ParameterCodec converts query parameters to option structs.
	ParameterCodec = runtime.NewParameterCodec(Scheme)
)

// Served lists the group versions svcnet serves, in the order discovery reports them.
var Served = []schema.GroupVersion{
	corev1.SchemeGroupVersion,
	appsv1.SchemeGroupVersion,
	discoveryv1.SchemeGroupVersion,
	coordinationv1.SchemeGroupVersion,
	autoscalingv1.SchemeGroupVersion,
}

// hubTypes are the object kinds of each group that storage handles; each is registered again under the
// group's internal version so the generic registry can use the versioned type as its hub.
var hubTypes = map[string][]runtime.Object{
	corev1.GroupName: {
		&corev1.Service{}, &corev1.ServiceList{},
		&corev1.Endpoints{}, &corev1.EndpointsList{},
		&corev1.Pod{}, &corev1.PodList{},
		&corev1.Node{}, &corev1.NodeList{},
		&corev1.Namespace{}, &corev1.NamespaceList{},
		&corev1.Event{}, &corev1.EventList{},
		&corev1.Binding{},
	},
	appsv1.GroupName: {
		&appsv1.Deployment{}, &appsv1.DeploymentList{},
		&appsv1.ReplicaSet{}, &appsv1.ReplicaSetList{},
		&appsv1.StatefulSet{}, &appsv1.StatefulSetList{},
	},
	discoveryv1.GroupName: {
		&discoveryv1.EndpointSlice{}, &discoveryv1.EndpointSliceList{},
	},
	coordinationv1.GroupName: {
		&coordinationv1.Lease{}, &coordinationv1.LeaseList{},
	},
	autoscalingv1.GroupName: {
		&autoscalingv1.Scale{},
	},
}

func init() {
	utilruntime.Must(corev1.AddToScheme(Scheme))
	utilruntime.Must(appsv1.AddToScheme(Scheme))
	utilruntime.Must(discoveryv1.AddToScheme(Scheme))
	utilruntime.Must(coordinationv1.AddToScheme(Scheme))
	utilruntime.Must(autoscalingv1.AddToScheme(Scheme))
	for group, types := range hubTypes {
		Scheme.AddKnownTypes(schema.GroupVersion{Group: group, Version: runtime.APIVersionInternal}, types...)
	}
	// The generic API server decodes its own option types through the empty-group v1.
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
	Scheme.AddUnversionedTypes(schema.GroupVersion{Version: "v1"},
		&metav1.Status{}, &metav1.APIVersions{}, &metav1.APIGroupList{}, &metav1.APIGroup{}, &metav1.APIResourceList{})
	utilruntime.Must(addFieldLabelConversions(Scheme))
	addDefaulters(Scheme)
	for _, gv := range Served {
		utilruntime.Must(Scheme.SetVersionPriority(gv))
	}
}
