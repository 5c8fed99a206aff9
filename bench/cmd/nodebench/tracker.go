package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// podRecord is what the informer showed about one benchmark pod, and when.
type podRecord struct {
	bound   time.Time // first event with spec.nodeName set
	ready   time.Time // first event with phase Running and condition Ready=True
	gone    time.Time // the delete event
	node    string
	readyCh chan struct{} // closed at ready
	goneCh  chan struct{} // closed at gone
}

// tracker follows the pods of one namespace with a client-go informer and notes, for every pod
// registered with expect, when it was bound, Ready, and deleted. Pods are registered before they are
// created, so no event can come before its waiter.
type tracker struct {
	mu   sync.Mutex
	pods map[string]*podRecord
	stop chan struct{}
}

func newTracker(ctx context.Context, cs kubernetes.Interface, namespace string) (*tracker, error) {
	tr := &tracker{pods: map[string]*podRecord{}, stop: make(chan struct{})}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(namespace))
	inf := f.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { tr.update(obj) },
		UpdateFunc: func(_, obj any) { tr.update(obj) },
		DeleteFunc: tr.deleted,
	}); err != nil {
		return nil, err
	}
	f.Start(tr.stop)
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if !cache.WaitForCacheSync(sctx.Done(), inf.HasSynced) {
		close(tr.stop)
		return nil, fmt.Errorf("pod informer did not sync within a minute")
	}
	return tr, nil
}

func (tr *tracker) close() { close(tr.stop) }

// expect registers a pod about to be created.
func (tr *tracker) expect(name string) *podRecord {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	r := &podRecord{readyCh: make(chan struct{}), goneCh: make(chan struct{})}
	tr.pods[name] = r
	return r
}

// get is the record of a registered pod.
func (tr *tracker) get(name string) *podRecord {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.pods[name]
}

func (tr *tracker) isReady(r *podRecord) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return !r.ready.IsZero()
}

func (tr *tracker) update(obj any) {
	now := time.Now()
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	r := tr.pods[pod.Name]
	if r == nil || !r.gone.IsZero() {
		return
	}
	if r.bound.IsZero() && pod.Spec.NodeName != "" {
		r.bound, r.node = now, pod.Spec.NodeName
	}
	if r.ready.IsZero() && pod.Status.Phase == corev1.PodRunning && podReady(pod) {
		r.ready = now
		close(r.readyCh)
	}
}

func (tr *tracker) deleted(obj any) {
	now := time.Now()
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if r := tr.pods[pod.Name]; r != nil && r.gone.IsZero() {
		r.gone = now
		close(r.goneCh)
	}
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// wait waits for ch to close, for at most limit.
func wait(ctx context.Context, ch <-chan struct{}, limit time.Duration) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(limit):
		return errTimeout
	}
}

var errTimeout = errors.New("timed out")
