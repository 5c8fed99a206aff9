package apiserver_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/svcnet/svcnet/internal/testenv"
)

func svc(name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Port: 80}}},
	}
}

// An informer sees every create, update and delete, in order, per object.
func TestInformerSeesEveryEventInOrder(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	factory := informers.NewSharedInformerFactoryWithOptions(env.Client, 0, informers.WithNamespace("default"))
	inf := factory.Core().V1().Services().Informer()
	var mu sync.Mutex
	seen := map[string][]string{}
	record := func(kind string, o interface{}) {
		if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = d.Obj
		}
		s := o.(*corev1.Service)
		mu.Lock()
		defer mu.Unlock()
		seen[s.Name] = append(seen[s.Name], fmt.Sprintf("%s:%s", kind, s.Labels["step"]))
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o interface{}) { record("add", o) },
		UpdateFunc: func(_, o interface{}) { record("update", o) },
		DeleteFunc: func(o interface{}) { record("delete", o) },
	}); err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	const n = 20
	svcs := env.Client.CoreV1().Services("default")
	for i := 0; i < n; i++ {
		s := svc(fmt.Sprintf("s%d", i))
		s.Labels = map[string]string{"step": "0"}
		if _, err := svcs.Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for step := 1; step <= 3; step++ {
		for i := 0; i < n; i++ {
			s, err := svcs.Get(ctx, fmt.Sprintf("s%d", i), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			s.Labels["step"] = fmt.Sprint(step)
			if _, err := svcs.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 0; i < n; i++ {
		if err := svcs.Delete(ctx, fmt.Sprintf("s%d", i), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"add:0", "update:1", "update:2", "update:3", "delete:3"}
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		for i := 0; i < n; i++ {
			if len(seen[fmt.Sprintf("s%d", i)]) < len(want) {
				return false, nil
			}
		}
		return true, nil
	})
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		t.Fatalf("informer did not see every event: %v", seen)
	}
	for i := 0; i < n; i++ {
		got := seen[fmt.Sprintf("s%d", i)]
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("s%d: events %v, want %v", i, got, want)
		}
	}
}

// A watch from a compacted revision gets 410 Gone, and an informer started on such a revision relists
// and recovers.
func TestWatchFromCompactedRevisionIsGone(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	svcs := env.Client.CoreV1().Services("default")
	first, err := svcs.Create(ctx, svc("old"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := svcs.Create(ctx, svc(fmt.Sprintf("n%d", i)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{env.EtcdURL}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, "compact-probe")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	// A watch cache serves history it still holds even after etcd compacts it, as kube's does; a
	// restarted API server holds none of it, so the revision is gone for good.
	env.Stop()
	env = testenv.Start(t, testenv.Options{EtcdURL: env.EtcdURL, DataDir: env.DataDir})
	svcs = env.Client.CoreV1().Services("default")
	var gone error
	w, err := svcs.Watch(ctx, metav1.ListOptions{ResourceVersion: first.ResourceVersion})
	if err != nil {
		gone = err
	} else {
		select {
		case ev := <-w.ResultChan():
			if ev.Type == watch.Error {
				gone = apierrors.FromObject(ev.Object)
			}
		case <-time.After(10 * time.Second):
		}
		w.Stop()
	}
	if gone == nil || !(apierrors.IsResourceExpired(gone) || apierrors.IsGone(gone)) {
		t.Fatalf("watch from a compacted revision: want 410 Gone, got %v", gone)
	}
	if code := gone.(apierrors.APIStatus).Status().Code; code != 410 {
		t.Fatalf("status code %d, want 410", code)
	}

	// An informer whose watch starts at the compacted revision gets 410 and recovers. client-go's
	// reflector starts with a watch-list stream (or a list, on older servers); its first watch is
	// redirected to the compacted revision, as after a long disconnection.
	// The redirect repeats until the server has answered it: a restarted API server may answer
	// 429 while its watch cache initialises, and the reflector then simply retries.
	var calls atomic.Int32
	var saw410 atomic.Bool
	var firstAnswer atomic.Value
	note := func(err error) {
		firstAnswer.Store(fmt.Sprint(err))
		if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			saw410.Store(true)
		}
	}
	lw := &cache.ListWatch{
		ListFunc: func(o metav1.ListOptions) (runtime.Object, error) {
			calls.Add(1)
			return svcs.List(ctx, o)
		},
		WatchFunc: func(o metav1.ListOptions) (watch.Interface, error) {
			calls.Add(1)
			if !saw410.Load() {
				o.SendInitialEvents, o.ResourceVersionMatch, o.ResourceVersion = nil, "", first.ResourceVersion
				w, err := svcs.Watch(ctx, o)
				if err != nil {
					note(err)
					return nil, err
				}
				return watch.Filter(w, func(ev watch.Event) (watch.Event, bool) {
					if ev.Type == watch.Error {
						note(apierrors.FromObject(ev.Object))
					}
					return ev, true
				}), nil
			}
			return svcs.Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformer(lw, &corev1.Service{}, 0, cache.Indexers{})
	go inf.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	if _, err := svcs.Create(ctx, svc("after"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		_, ok, _ := inf.GetStore().GetByKey("default/after")
		return ok, nil
	})
	if err != nil {
		t.Fatal("informer did not recover from 410 and see the new service")
	}
	if !saw410.Load() {
		t.Errorf("the informer's watch from the compacted revision did not get 410 Gone; last answer: %v", firstAnswer.Load())
	}
}
