package main

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// observer follows, through client-go informers, what the EndpointSlices
// and the Endpoints say about each pod: absent, ready or not ready. A waiter registered for a pod is
// told the moment an event shows the pod in the state it waits for.
type observer struct {
	l         layout
	mu        sync.Mutex
	slices    view
	endpoints view
	cancel    context.CancelFunc
	factory   informers.SharedInformerFactory
	stopOnce  sync.Once
}

// view is one resource's idea of every pod.
type view struct {
	state   []int8 // per pod: 0 absent, 1 not ready, 2 ready
	ready   int    // pods in state 2
	events  int    // add and update events seen for objects in the benchmark's namespaces
	waiters map[int]*waiter
}

type waiter struct {
	want bool
	at   chan time.Time // buffered: the handler never blocks
}

const (
	absent int8 = iota
	notReady
	ready
)

// newObserver starts the informers and waits for their first list.
func newObserver(ctx context.Context, cfg *rest.Config, o options) (*observer, error) {
	quiet := rest.CopyConfig(cfg)
	quiet.WarningHandler = rest.NoWarnings{} // "v1 Endpoints is deprecated": we watch them on purpose
	cs, err := newClient(quiet)
	if err != nil {
		return nil, err
	}
	l := newLayout(o)
	ctx, cancel := context.WithCancel(ctx)
	obs := &observer{l: l, cancel: cancel,
		slices:    view{state: make([]int8, l.pods()), waiters: map[int]*waiter{}},
		endpoints: view{state: make([]int8, l.pods()), waiters: map[int]*waiter{}},
		factory: informers.NewSharedInformerFactoryWithOptions(cs, 0,
			informers.WithTransform(func(obj interface{}) (interface{}, error) {
				if m, ok := obj.(metav1.Object); ok {
					m.SetManagedFields(nil)
				}
				return obj, nil
			})),
	}
	sliceInf := obs.factory.Discovery().V1().EndpointSlices().Informer()
	epInf := obs.factory.Core().V1().Endpoints().Informer()
	_, err1 := sliceInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    obs.onSlice,
		UpdateFunc: func(_, cur interface{}) { obs.onSlice(cur) },
	})
	_, err2 := epInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    obs.onEndpoints,
		UpdateFunc: func(_, cur interface{}) { obs.onEndpoints(cur) },
	})
	if err1 != nil || err2 != nil {
		cancel()
		return nil, fmt.Errorf("informer handlers: %v %v", err1, err2)
	}
	obs.factory.Start(ctx.Done())
	sctx, scancel := context.WithTimeout(ctx, time.Minute)
	defer scancel()
	if !cache.WaitForCacheSync(sctx.Done(), sliceInf.HasSynced, epInf.HasSynced) {
		obs.stop()
		return nil, fmt.Errorf("endpointslice and endpoints informers did not sync: %w", sctx.Err())
	}
	return obs, nil
}

// stop ends the informers and waits for their goroutines.
func (obs *observer) stop() {
	obs.stopOnce.Do(func() {
		obs.cancel()
		obs.factory.Shutdown()
	})
}

func (obs *observer) onSlice(o interface{}) {
	now := time.Now()
	s, ok := o.(*discoveryv1.EndpointSlice)
	if !ok || !ours(s.Namespace) {
		return
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	obs.slices.events++
	for _, ep := range s.Endpoints {
		if ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" {
			continue
		}
		if i, ok := obs.l.podIndex(ep.TargetRef.Name); ok {
			obs.slices.set(i, ep.Conditions.Ready != nil && *ep.Conditions.Ready, now)
		}
	}
}

func (obs *observer) onEndpoints(o interface{}) {
	now := time.Now()
	e, ok := o.(*corev1.Endpoints)
	if !ok || !ours(e.Namespace) {
		return
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	obs.endpoints.events++
	for _, ss := range e.Subsets {
		for r, addrs := range [][]corev1.EndpointAddress{ss.NotReadyAddresses, ss.Addresses} {
			for _, a := range addrs {
				if a.TargetRef == nil || a.TargetRef.Kind != "Pod" {
					continue
				}
				if i, ok := obs.l.podIndex(a.TargetRef.Name); ok {
					obs.endpoints.set(i, r == 1, now)
				}
			}
		}
	}
}

// set records that an event at time now showed pod i ready or not. A pod dropped from one object and
// added to another keeps the state of the last event that named it.
func (v *view) set(i int, isReady bool, now time.Time) {
	st := notReady
	if isReady {
		st = ready
	}
	if v.state[i] == ready && st != ready {
		v.ready--
	} else if v.state[i] != ready && st == ready {
		v.ready++
	}
	v.state[i] = st
	if w := v.waiters[i]; w != nil && w.want == isReady {
		w.at <- now
		delete(v.waiters, i)
	}
}

// expect registers a waiter for the next event showing pod i in state want. Register before the
// write: the event can arrive before the write returns.
func (obs *observer) expect(v *view, i int, want bool) <-chan time.Time {
	w := &waiter{want: want, at: make(chan time.Time, 1)}
	obs.mu.Lock()
	v.waiters[i] = w
	obs.mu.Unlock()
	return w.at
}

// forget drops a waiter that timed out.
func (obs *observer) forget(v *view, i int) {
	obs.mu.Lock()
	delete(v.waiters, i)
	obs.mu.Unlock()
}

// counts returns the ready pods and the events seen so far.
func (obs *observer) counts(v *view) (readyPods, events int) {
	obs.mu.Lock()
	defer obs.mu.Unlock()
	return v.ready, v.events
}

// isReady reports whether the last event about pod i showed it ready.
func (obs *observer) isReady(v *view, i int) bool {
	obs.mu.Lock()
	defer obs.mu.Unlock()
	return v.state[i] == ready
}

// waitAllReady waits until v shows every pod ready, logging progress every 10 s.
func (obs *observer) waitAllReady(ctx context.Context, v *view, what string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	lastLog := time.Now()
	for {
		n, ev := obs.counts(v)
		if n == obs.l.pods() {
			return nil
		}
		if time.Since(lastLog) >= 10*time.Second {
			log.Printf("%s: %d of %d pods ready (%d events so far)", what, n, obs.l.pods(), ev)
			lastLog = time.Now()
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("%s: %d of %d pods ready after %s: %w", what, n, obs.l.pods(), limit, ctx.Err())
		}
	}
}

// endpointsControllerRuns reports whether any Endpoints object appeared in the benchmark's namespaces.
func (obs *observer) endpointsControllerRuns() bool {
	_, events := obs.counts(&obs.endpoints)
	return events > 0
}
