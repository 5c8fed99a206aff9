// Package labelindex adds label indexes to the shared Pod, Service and EndpointSlice informers, so
// that the endpoint controllers find a Service's pods, a pod's Services and a Service's slices in
// time that follows the size of the answer instead of the size of the namespace.
//
// client-go's listers answer a label selector by matching every object of the namespace: with
// 100,000 pods and 10,000 Services in one namespace each Service sync scanned 100,000 pods and each
// pod event scanned 10,000 selectors, which is where the controllers spent most of their CPU
// (bench/README.md, "Endpoint controllers"). The results are exactly the listers' (the same objects,
// in no particular order), and the indexes live in the informers' stores, so they are updated under
// the store's lock together with the objects and can never lag behind what the listers show.
package labelindex

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/endpointslice/util"
)

const (
	// podLabels indexes a pod under "namespace/key=value" for each of its labels.
	podLabels = "svcnet.io/pod-labels"
	// serviceSelector indexes a Service with a selector under "namespace/key=value" for one pair of
	// its selector, and a Service with an empty (match-all) selector under "namespace/".
	serviceSelector = "svcnet.io/service-selector"
	// sliceService indexes an EndpointSlice under "namespace/service" from its service-name label.
	sliceService = "svcnet.io/slice-service"
)

// pairKey names one label pair in one namespace. Namespaces hold no '/' and label keys no '=', so
// distinct (namespace, key, value) triples never share a name.
func pairKey(ns, k, v string) string { return ns + "/" + k + "=" + v }

// minKey is the smallest key of a non-empty selector: the one pair a Service is indexed under.
// Any fixed pair would do, since a pod the Service selects carries all of them; indexing one keeps
// every Service in exactly one bucket, so candidates need no de-duplication.
func minKey(sel map[string]string) string {
	first := true
	var min string
	for k := range sel {
		if first || k < min {
			min, first = k, false
		}
	}
	return min
}

func indexPodLabels(obj interface{}) ([]string, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok || len(p.Labels) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(p.Labels))
	for k, v := range p.Labels {
		out = append(out, pairKey(p.Namespace, k, v))
	}
	return out, nil
}

func indexServiceSelector(obj interface{}) ([]string, error) {
	s, ok := obj.(*corev1.Service)
	if !ok || s.Spec.Selector == nil {
		// A nil selector selects nothing (the Service's endpoints are managed by someone else).
		return nil, nil
	}
	if len(s.Spec.Selector) == 0 {
		return []string{s.Namespace + "/"}, nil
	}
	k := minKey(s.Spec.Selector)
	return []string{pairKey(s.Namespace, k, s.Spec.Selector[k])}, nil
}

func indexSliceService(obj interface{}) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	name, ok := s.Labels[discoveryv1.LabelServiceName]
	if !ok {
		return nil, nil
	}
	return []string{s.Namespace + "/" + name}, nil
}

// add registers an index on inf unless a controller sharing the informer already did. It must run
// before the informer starts (in the controllers' constructors); it fails only on a stopped one.
func add(inf cache.SharedIndexInformer, name string, f cache.IndexFunc) error {
	if _, ok := inf.GetIndexer().GetIndexers()[name]; ok {
		return nil
	}
	return inf.AddIndexers(cache.Indexers{name: f})
}

// AddPodIndex indexes a Pod informer by label pairs, for Pods.
func AddPodIndex(inf cache.SharedIndexInformer) error { return add(inf, podLabels, indexPodLabels) }

// AddServiceIndex indexes a Service informer by selector, for ServicesForPod.
func AddServiceIndex(inf cache.SharedIndexInformer) error {
	return add(inf, serviceSelector, indexServiceSelector)
}

// AddSliceIndex indexes an EndpointSlice informer by Service name, for NewSliceLister.
func AddSliceIndex(inf cache.SharedIndexInformer) error {
	return add(inf, sliceService, indexSliceService)
}

// Pods returns the pods of namespace ns that selector selects, as
// PodLister.Pods(ns).List(labels.Set(selector).AsSelectorPreValidated()) does: an empty selector
// selects every pod of the namespace. indexer is the Pod informer's, indexed by AddPodIndex.
//
// It reads the bucket of each selector pair and matches the smallest against the whole selector.
// Service selectors have one to a few pairs, and at least one is usually specific to the workload;
// a pair most pods of the namespace carry (tier=backend) still costs a copy of its bucket, though
// no label matching.
func Pods(indexer cache.Indexer, ns string, selector map[string]string) ([]*corev1.Pod, error) {
	sel := labels.Set(selector).AsSelectorPreValidated()
	if len(selector) == 0 {
		var out []*corev1.Pod
		err := cache.ListAllByNamespace(indexer, ns, sel, func(o interface{}) { out = append(out, o.(*corev1.Pod)) })
		return out, err
	}
	var smallest []interface{}
	for k, v := range selector {
		objs, err := indexer.ByIndex(podLabels, pairKey(ns, k, v))
		if err != nil {
			return nil, err
		}
		if smallest == nil || len(objs) < len(smallest) {
			smallest = objs
		}
		if len(smallest) == 0 {
			return nil, nil
		}
	}
	out := make([]*corev1.Pod, 0, len(smallest))
	for _, o := range smallest {
		p := o.(*corev1.Pod)
		if len(selector) == 1 || sel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	return out, nil
}

// ServicesForPod returns the keys of the Services a pod change affects, as
// util.GetServicesToUpdate(serviceLister, key) does, reading only the Services that select one of
// the pod's label pairs (or everything) instead of every Service of the namespace. indexer is the
// Service informer's, indexed by AddServiceIndex.
func ServicesForPod(indexer cache.Indexer, key *util.PodProjectionKey) (map[string]struct{}, error) {
	if key == nil {
		return nil, nil
	}
	services, err := servicesSelecting(indexer, key.Namespace, key.Labels)
	if err != nil {
		return nil, err
	}
	if key.OldLabels == nil {
		return services, nil
	}
	old, err := servicesSelecting(indexer, key.Namespace, key.OldLabels)
	if err != nil {
		return nil, err
	}
	// As util's determineNeededServiceUpdates: when the pod itself changed, every Service selecting
	// it before or after; when only its labels did, those that started or stopped selecting it.
	if key.PodChanged {
		for k := range old {
			services[k] = struct{}{}
		}
		return services, nil
	}
	out := map[string]struct{}{}
	for k := range services {
		if _, ok := old[k]; !ok {
			out[k] = struct{}{}
		}
	}
	for k := range old {
		if _, ok := services[k]; !ok {
			out[k] = struct{}{}
		}
	}
	return out, nil
}

// servicesSelecting returns the keys of the Services of ns whose selector matches podLabels.
func servicesSelecting(indexer cache.Indexer, ns string, podLabels labels.Set) (map[string]struct{}, error) {
	out := map[string]struct{}{}
	match := func(value string) error {
		objs, err := indexer.ByIndex(serviceSelector, value)
		if err != nil {
			return err
		}
		for _, o := range objs {
			s := o.(*corev1.Service)
			if labels.ValidatedSetSelector(s.Spec.Selector).Matches(podLabels) {
				out[s.Namespace+"/"+s.Name] = struct{}{}
			}
		}
		return nil
	}
	if err := match(ns + "/"); err != nil {
		return nil, err
	}
	for k, v := range podLabels {
		if err := match(pairKey(ns, k, v)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// NewSliceLister returns an EndpointSliceLister over indexer, the EndpointSlice informer's indexed
// by AddSliceIndex, that answers selectors requiring a Service name (the controllers' lists of one
// Service's slices) from the index, and any other selector as the plain lister does.
func NewSliceLister(indexer cache.Indexer) discoverylisters.EndpointSliceLister {
	return sliceLister{indexer: indexer, EndpointSliceLister: discoverylisters.NewEndpointSliceLister(indexer)}
}

type sliceLister struct {
	indexer cache.Indexer
	discoverylisters.EndpointSliceLister
}

func (l sliceLister) EndpointSlices(ns string) discoverylisters.EndpointSliceNamespaceLister {
	return sliceNamespaceLister{indexer: l.indexer, ns: ns, EndpointSliceNamespaceLister: l.EndpointSliceLister.EndpointSlices(ns)}
}

type sliceNamespaceLister struct {
	indexer cache.Indexer
	ns      string
	discoverylisters.EndpointSliceNamespaceLister
}

func (l sliceNamespaceLister) List(sel labels.Selector) ([]*discoveryv1.EndpointSlice, error) {
	name, ok := sel.RequiresExactMatch(discoveryv1.LabelServiceName)
	if !ok || l.ns == "" {
		return l.EndpointSliceNamespaceLister.List(sel)
	}
	objs, err := l.indexer.ByIndex(sliceService, l.ns+"/"+name)
	if err != nil {
		return nil, err
	}
	var out []*discoveryv1.EndpointSlice
	for _, o := range objs {
		s := o.(*discoveryv1.EndpointSlice)
		if sel.Matches(labels.Set(s.Labels)) {
			out = append(out, s)
		}
	}
	return out, nil
}
