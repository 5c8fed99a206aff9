package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// fakeAPI is just enough of a Kubernetes API server for client-go informers on namespaces, services,
// pods and endpointslices: paged lists, watches, and watch-list streams (sendInitialEvents), all of
// objects generated on the fly from their index, so the benchmark process never holds the full set.
// Service events can be pushed to the open service watches (the change-latency phase).
type fakeAPI struct {
	namespaces, services, podsPerService, headlessEvery int

	rv      atomic.Int64
	mu      sync.Mutex
	watches map[chan []byte]struct{} // open service watch streams
}

func newFakeAPI(namespaces, services, podsPerService, headlessEvery int) *fakeAPI {
	a := &fakeAPI{namespaces: namespaces, services: services, podsPerService: podsPerService, headlessEvery: headlessEvery,
		watches: map[chan []byte]struct{}{}}
	a.rv.Store(1)
	return a
}

type kind struct {
	listKind, itemKind, apiVersion string
	count                          func(a *fakeAPI) int
	item                           func(a *fakeAPI, i int) runtime.Object
}

var kinds = map[string]kind{
	"/api/v1/namespaces": {"NamespaceList", "Namespace", "v1", func(a *fakeAPI) int { return a.namespaces }, (*fakeAPI).namespace},
	"/api/v1/services":   {"ServiceList", "Service", "v1", func(a *fakeAPI) int { return a.services }, (*fakeAPI).service},
	"/api/v1/pods":       {"PodList", "Pod", "v1", func(a *fakeAPI) int { return a.services * a.podsPerService }, (*fakeAPI).pod},
	"/apis/discovery.k8s.io/v1/endpointslices": {"EndpointSliceList", "EndpointSlice", "discovery.k8s.io/v1",
		func(a *fakeAPI) int { return a.services }, (*fakeAPI).slice},
}

func nsName(i int) string  { return fmt.Sprintf("ns-%02d", i) }
func svcName(i int) string { return fmt.Sprintf("svc-%05d", i) }

func (a *fakeAPI) svcNS(i int) string { return nsName(i % a.namespaces) }
func (a *fakeAPI) headless(i int) bool {
	return a.headlessEvery > 0 && i%a.headlessEvery == 0
}

// clusterIP of service i: 10.96.0.0/12 from 10.96.4.0 on.
func clusterIP(i int) string {
	n := 4*256 + i
	return fmt.Sprintf("10.%d.%d.%d", 96+n>>16, (n>>8)&255, n&255)
}

// podIP of pod k of service i: 10.128.0.0/9.
func (a *fakeAPI) podIP(i, k int) string {
	n := i*a.podsPerService + k + 1
	return fmt.Sprintf("10.%d.%d.%d", 128+n>>16, (n>>8)&255, n&255)
}

func meta(ns, name string, i int) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: "1", UID: types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i)),
		CreationTimestamp: metav1.Unix(1700000000, 0)}
}

func (a *fakeAPI) namespace(i int) runtime.Object {
	return &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: meta("", nsName(i), i),
		Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
}

func (a *fakeAPI) service(i int) runtime.Object {
	s := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(a.svcNS(i), svcName(i), i),
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeClusterIP,
			Selector:   map[string]string{"app": svcName(i)},
			Ports:      []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}},
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, SessionAffinity: corev1.ServiceAffinityNone,
		},
	}
	s.Labels = map[string]string{"app": svcName(i)}
	if a.headless(i) {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = "None", []string{"None"}
	} else {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = clusterIP(i), []string{clusterIP(i)}
	}
	return s
}

func (a *fakeAPI) podName(i, k int) string { return fmt.Sprintf("%s-%d", svcName(i), k) }

func (a *fakeAPI) pod(j int) runtime.Object {
	i, k := j/a.podsPerService, j%a.podsPerService
	p := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: meta(a.svcNS(i), a.podName(i, k), 1000000+j),
		Spec: corev1.PodSpec{
			NodeName: fmt.Sprintf("node-%02d", j%10),
			Containers: []corev1.Container{{
				Name: "app", Image: "registry.example/app:1.2.3",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}},
				Env: []corev1.EnvVar{{Name: "MODE", Value: "production"}},
			}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: a.podIP(i, k), PodIPs: []corev1.PodIP{{IP: a.podIP(i, k)}}, HostIP: "172.31.0.11",
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodInitialized, Status: corev1.ConditionTrue},
				{Type: corev1.ContainersReady, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: corev1.ConditionTrue},
			},
		},
	}
	p.Labels = map[string]string{"app": svcName(i), "pod-template-hash": "5d8f7c9b6"}
	if a.headless(i) {
		// StatefulSet-style: a hostname under the headless service.
		p.Spec.Hostname, p.Spec.Subdomain = p.Name, svcName(i)
	}
	return p
}

func (a *fakeAPI) slice(i int) runtime.Object {
	s := &discoveryv1.EndpointSlice{
		TypeMeta:    metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta:  meta(a.svcNS(i), svcName(i)+"-x7k2p", 2000000+i),
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Protocol: ptr(corev1.ProtocolTCP), Port: ptr(int32(8080))}},
	}
	s.Labels = map[string]string{discoveryv1.LabelServiceName: svcName(i), discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"}
	for k := 0; k < a.podsPerService; k++ {
		e := discoveryv1.Endpoint{
			Addresses:  []string{a.podIP(i, k)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(true), Serving: ptr(true), Terminating: ptr(false)},
			NodeName:   ptr(fmt.Sprintf("node-%02d", (i*a.podsPerService+k)%10)),
			Zone:       ptr("zone-a"),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: a.svcNS(i), Name: a.podName(i, k)},
		}
		if a.headless(i) {
			e.Hostname = ptr(a.podName(i, k))
		}
		s.Endpoints = append(s.Endpoints, e)
	}
	return s
}

func ptr[T any](v T) *T { return &v }

func (a *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k, ok := kinds[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	if q.Get("watch") == "true" || q.Get("watch") == "1" {
		a.watch(w, r, k, q.Get("sendInitialEvents") == "true")
		return
	}
	a.list(w, k, q.Get("limit"), q.Get("continue"))
}

// list serves one page: continue is the index of the first item.
func (a *fakeAPI) list(w http.ResponseWriter, k kind, limitS, cont string) {
	n := k.count(a)
	start, _ := strconv.Atoi(cont)
	end := n
	if limit, _ := strconv.Atoi(limitS); limit > 0 && start+limit < n {
		end = start + limit
	}
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, 64<<10)
	next := ""
	if end < n {
		next = strconv.Itoa(end)
	}
	fmt.Fprintf(bw, `{"kind":%q,"apiVersion":%q,"metadata":{"resourceVersion":"%d","continue":%q},"items":[`, k.listKind, k.apiVersion, a.rv.Load(), next)
	enc := json.NewEncoder(bw)
	for i := start; i < end; i++ {
		if i > start {
			bw.WriteByte(',')
		}
		enc.Encode(k.item(a, i))
	}
	bw.WriteString("]}")
	bw.Flush()
}

// watch streams events: every object first when the client asks for initial events (watch-list),
// then, for services, whatever push sends, until the client goes.
func (a *fakeAPI) watch(w http.ResponseWriter, r *http.Request, k kind, initial bool) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	bw := bufio.NewWriterSize(w, 64<<10)
	if initial {
		for i, n := 0, k.count(a); i < n; i++ {
			b, _ := json.Marshal(k.item(a, i))
			fmt.Fprintf(bw, `{"type":"ADDED","object":%s}`+"\n", b)
		}
		fmt.Fprintf(bw, `{"type":"BOOKMARK","object":{"kind":%q,"apiVersion":%q,"metadata":{"resourceVersion":"%d","annotations":{"k8s.io/initial-events-end":"true"}}}}`+"\n",
			k.itemKind, k.apiVersion, a.rv.Load())
	}
	bw.Flush()
	if fl != nil {
		fl.Flush()
	}
	var events chan []byte
	if k.itemKind == "Service" {
		events = make(chan []byte, 1024)
		a.mu.Lock()
		a.watches[events] = struct{}{}
		a.mu.Unlock()
		defer func() {
			a.mu.Lock()
			delete(a.watches, events)
			a.mu.Unlock()
		}()
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case ev := <-events:
			bw.Write(ev)
			bw.Flush()
			if fl != nil {
				fl.Flush()
			}
		}
	}
}

// push sends a service event to every open service watch, and reports how many there were.
func (a *fakeAPI) push(typ string, s *corev1.Service) int {
	s.ResourceVersion = strconv.FormatInt(a.rv.Add(1), 10)
	b, _ := json.Marshal(s)
	ev := []byte(fmt.Sprintf(`{"type":%q,"object":%s}`+"\n", typ, b))
	a.mu.Lock()
	defer a.mu.Unlock()
	for ch := range a.watches {
		ch <- ev
	}
	return len(a.watches)
}

// changedService is a new ClusterIP service for the change-latency phase.
func changedService(j int) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Namespace: nsName(0), Name: fmt.Sprintf("chg-%d", j), UID: types.UID(fmt.Sprintf("chg-%d", j))},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: fmt.Sprintf("10.111.%d.%d", j/250, j%250+1),
			ClusterIPs: []string{fmt.Sprintf("10.111.%d.%d", j/250, j%250+1)},
			Ports:      []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}},
	}
}
