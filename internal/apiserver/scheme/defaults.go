package scheme

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/svcnet/svcnet/internal/apis/core/defaults"
	"github.com/svcnet/svcnet/internal/apis/discovery"
	"github.com/svcnet/svcnet/internal/apis/workload"
)

// addDefaulters registers kube's scheme defaulting for every kind we serve, so that defaults are applied
// on every decode: request bodies, patch results and objects read back from etcd.
func addDefaulters(s *runtime.Scheme) {
	s.AddTypeDefaultingFunc(&corev1.Service{}, func(o interface{}) { defaults.Service(o.(*corev1.Service)) })
	s.AddTypeDefaultingFunc(&corev1.ServiceList{}, func(o interface{}) {
		l := o.(*corev1.ServiceList)
		for i := range l.Items {
			defaults.Service(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&corev1.Pod{}, func(o interface{}) { workload.DefaultPod(o.(*corev1.Pod)) })
	s.AddTypeDefaultingFunc(&corev1.PodList{}, func(o interface{}) {
		l := o.(*corev1.PodList)
		for i := range l.Items {
			workload.DefaultPod(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&appsv1.Deployment{}, func(o interface{}) { workload.DefaultDeployment(o.(*appsv1.Deployment)) })
	s.AddTypeDefaultingFunc(&appsv1.DeploymentList{}, func(o interface{}) {
		l := o.(*appsv1.DeploymentList)
		for i := range l.Items {
			workload.DefaultDeployment(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&appsv1.ReplicaSet{}, func(o interface{}) { workload.DefaultReplicaSet(o.(*appsv1.ReplicaSet)) })
	s.AddTypeDefaultingFunc(&appsv1.ReplicaSetList{}, func(o interface{}) {
		l := o.(*appsv1.ReplicaSetList)
		for i := range l.Items {
			workload.DefaultReplicaSet(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&appsv1.StatefulSet{}, func(o interface{}) { workload.DefaultStatefulSet(o.(*appsv1.StatefulSet)) })
	s.AddTypeDefaultingFunc(&appsv1.StatefulSetList{}, func(o interface{}) {
		l := o.(*appsv1.StatefulSetList)
		for i := range l.Items {
			workload.DefaultStatefulSet(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&discoveryv1.EndpointSlice{}, func(o interface{}) { discovery.DefaultEndpointSlice(o.(*discoveryv1.EndpointSlice)) })
	s.AddTypeDefaultingFunc(&discoveryv1.EndpointSliceList{}, func(o interface{}) {
		l := o.(*discoveryv1.EndpointSliceList)
		for i := range l.Items {
			discovery.DefaultEndpointSlice(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&corev1.Endpoints{}, func(o interface{}) { defaultEndpoints(o.(*corev1.Endpoints)) })
	s.AddTypeDefaultingFunc(&corev1.Namespace{}, func(o interface{}) { defaultNamespace(o.(*corev1.Namespace)) })
	s.AddTypeDefaultingFunc(&corev1.Node{}, func(o interface{}) { defaultNode(o.(*corev1.Node)) })
}

// defaultEndpoints mirrors SetDefaults_EndpointPort: ports default to TCP.
func defaultEndpoints(e *corev1.Endpoints) {
	for i := range e.Subsets {
		for j := range e.Subsets[i].Ports {
			if e.Subsets[i].Ports[j].Protocol == "" {
				e.Subsets[i].Ports[j].Protocol = corev1.ProtocolTCP
			}
		}
	}
}

// defaultNamespace mirrors SetDefaults_NamespaceStatus and the always-present name label.
func defaultNamespace(n *corev1.Namespace) {
	if n.Status.Phase == "" {
		n.Status.Phase = corev1.NamespaceActive
	}
	if n.Name != "" {
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[corev1.LabelMetadataName] = n.Name
	}
}

// defaultNode mirrors SetDefaults_NodeStatus: allocatable defaults to capacity.
func defaultNode(n *corev1.Node) {
	if n.Status.Allocatable == nil && len(n.Status.Capacity) > 0 {
		n.Status.Allocatable = make(corev1.ResourceList, len(n.Status.Capacity))
		for k, v := range n.Status.Capacity {
			n.Status.Allocatable[k] = v.DeepCopy()
		}
	}
}
