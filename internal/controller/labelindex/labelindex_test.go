package labelindex

import (
	"fmt"
	"math/rand"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/endpointslice/util"
)

// randLabels draws a small label set from a small vocabulary, so that selectors and pods overlap
// in every way: match all pairs, some, none, nil and empty.
func randLabels(r *rand.Rand) map[string]string {
	switch r.Intn(8) {
	case 0:
		return nil
	case 1:
		return map[string]string{}
	}
	out := map[string]string{}
	for i, n := 0, 1+r.Intn(3); i < n; i++ {
		out[[]string{"app", "tier", "example.com/x", "k"}[r.Intn(4)]] = []string{"a", "b", "c", ""}[r.Intn(4)]
	}
	return out
}

func keys[T metav1.Object](objs []T) []string {
	out := []string{}
	for _, o := range objs {
		out = append(out, o.GetNamespace()+"/"+o.GetName())
	}
	sort.Strings(out)
	return out
}

func setKeys[T any](m map[string]T) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func newIndexer() cache.Indexer {
	return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc,
		podLabels: indexPodLabels, serviceSelector: indexServiceSelector, sliceService: indexSliceService})
}

// TestSameAsListers compares every answer with client-go's listers and util.GetServicesToUpdate on
// random pods, Services and slices in two namespaces, while objects are added, changed and deleted.
func TestSameAsListers(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	pods, svcs, slices := newIndexer(), newIndexer(), newIndexer()
	podLister, svcLister := corelisters.NewPodLister(pods), corelisters.NewServiceLister(svcs)
	plainSlices, indexedSlices := discoverylisters.NewEndpointSliceLister(slices), NewSliceLister(slices)
	nss := []string{"ns1", "ns2"}
	randPod := func() *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: nss[r.Intn(2)], Name: fmt.Sprint("p", r.Intn(60)), Labels: randLabels(r)}}
	}
	randSvc := func() *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: nss[r.Intn(2)], Name: fmt.Sprint("s", r.Intn(20))},
			Spec: corev1.ServiceSpec{Selector: randLabels(r)}}
	}
	randSlice := func() *discoveryv1.EndpointSlice {
		l := map[string]string{discoveryv1.LabelManagedBy: []string{"a", "b"}[r.Intn(2)]}
		if r.Intn(5) > 0 {
			l[discoveryv1.LabelServiceName] = fmt.Sprint("s", r.Intn(5))
		}
		return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: nss[r.Intn(2)], Name: fmt.Sprint("e", r.Intn(30)), Labels: l}}
	}
	for step := 0; step < 3000; step++ {
		var err error
		switch r.Intn(6) {
		case 0:
			err = pods.Add(randPod())
		case 1:
			err = pods.Delete(randPod())
		case 2:
			err = svcs.Add(randSvc())
		case 3:
			err = slices.Add(randSlice())
		case 4:
			err = slices.Delete(randSlice())
		}
		if err != nil {
			t.Fatal(err)
		}

		svc := randSvc()
		got, err := Pods(pods, svc.Namespace, svc.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := podLister.Pods(svc.Namespace).List(labels.Set(svc.Spec.Selector).AsSelectorPreValidated())
		if g, w := fmt.Sprint(keys(got)), fmt.Sprint(keys(want)); g != w {
			t.Fatalf("step %d: Pods(%s, %v) = %s, lister: %s", step, svc.Namespace, svc.Spec.Selector, g, w)
		}

		oldPod, newPod := randPod(), randPod()
		newPod.Namespace, newPod.Name, oldPod.ResourceVersion, newPod.ResourceVersion = oldPod.Namespace, oldPod.Name, "1", "2"
		if r.Intn(2) == 0 {
			newPod.Status.PodIP = "10.0.0.1"
		}
		for _, ev := range [][2]interface{}{{nil, newPod}, {oldPod, nil}, {oldPod, newPod}} {
			gotSvcs, err := ServicesForPod(svcs, util.GetPodUpdateProjectionKey(ev[0], ev[1]))
			if err != nil {
				t.Fatal(err)
			}
			wantSvcs, _ := util.GetServicesToUpdate(svcLister, util.GetPodUpdateProjectionKey(ev[0], ev[1]))
			if g, w := fmt.Sprint(setKeys(gotSvcs)), fmt.Sprint(setKeys(wantSvcs)); g != w {
				t.Fatalf("step %d: ServicesForPod(%v -> %v) = %s, util: %s", step, ev[0], ev[1], g, w)
			}
		}

		sel := labels.Set{discoveryv1.LabelServiceName: fmt.Sprint("s", r.Intn(5)), discoveryv1.LabelManagedBy: "a"}.AsSelectorPreValidated()
		if r.Intn(4) == 0 {
			sel = labels.Set{discoveryv1.LabelManagedBy: "b"}.AsSelectorPreValidated()
		}
		ns := nss[r.Intn(2)]
		gotSlices, err := indexedSlices.EndpointSlices(ns).List(sel)
		if err != nil {
			t.Fatal(err)
		}
		wantSlices, _ := plainSlices.EndpointSlices(ns).List(sel)
		if g, w := fmt.Sprint(keys(gotSlices)), fmt.Sprint(keys(wantSlices)); g != w {
			t.Fatalf("step %d: slices %s %s = %s, lister: %s", step, ns, sel, g, w)
		}
	}
}
