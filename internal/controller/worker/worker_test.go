package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// fakeQueue hands out its items and records what the worker does with them. Methods the worker
// must not call panic (the embedded interface is nil).
type fakeQueue struct {
	workqueue.TypedRateLimitingInterface[string]
	items    []string
	requeues int
	calls    []string
}

func (q *fakeQueue) Get() (string, bool) {
	if len(q.items) == 0 {
		return "", true
	}
	k := q.items[0]
	q.items = q.items[1:]
	return k, false
}

func (q *fakeQueue) Done(k string)           { q.calls = append(q.calls, "Done "+k) }
func (q *fakeQueue) Forget(k string)         { q.calls = append(q.calls, "Forget "+k) }
func (q *fakeQueue) AddRateLimited(k string) { q.calls = append(q.calls, "AddRateLimited "+k) }
func (q *fakeQueue) NumRequeues(string) int  { return q.requeues }

// logLines keeps each record logged through its handler as "LEVEL message key=value ...".
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() *slog.Logger { return slog.New(&logHandler{lines: l}) }

type logHandler struct {
	lines *logLines
	attrs []slog.Attr
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *logHandler) WithGroup(string) slog.Handler            { return h }
func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{lines: h.lines, attrs: append(slices.Clone(h.attrs), as...)}
}

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	add := func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true }
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.lines.mu.Lock()
	h.lines.lines = append(h.lines.lines, b.String())
	h.lines.mu.Unlock()
	return nil
}

func (h *logLines) get() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.lines)
}

var (
	errBoom     = errors.New("boom")
	errConflict = apierrors.NewConflict(schema.GroupResource{Resource: "services"}, "web", errors.New("changed"))
	errExists   = apierrors.NewAlreadyExists(schema.GroupResource{Resource: "pods"}, "web-0")
)

func TestProcess(t *testing.T) {
	base := Options[string]{Name: "thing sync", KeyAttr: "thing", MaxRetries: 3, Raced: Conflict}
	with := func(f func(o *Options[string])) Options[string] {
		o := base
		f(&o)
		return o
	}
	tests := []struct {
		name     string
		opts     Options[string]
		requeues int   // NumRequeues of the key before the sync
		err      error // what the sync returns
		cancel   string
		// want
		synced  bool
		calls   []string
		log     []string
		dropped bool
	}{{
		name:   "success forgets",
		opts:   base,
		synced: true,
		calls:  []string{"Forget ns/a", "Done ns/a"},
	}, {
		name:   "success after earlier failures forgets",
		opts:   base,
		synced: true, requeues: 2,
		calls: []string{"Forget ns/a", "Done ns/a"},
	}, {
		name: "error retries with rate limit", opts: base, err: errBoom,
		synced: true,
		calls:  []string{"AddRateLimited ns/a", "Done ns/a"},
		log:    []string{"WARN thing sync failed, retrying thing=ns/a err=boom"},
	}, {
		name: "conflict retries quietly", opts: base, err: errConflict,
		synced: true,
		calls:  []string{"AddRateLimited ns/a", "Done ns/a"},
		log:    []string{`DEBUG thing sync raced, retrying thing=ns/a err=` + errConflict.Error()},
	}, {
		name: "already exists retries quietly", opts: base, err: fmt.Errorf("create: %w", errExists),
		synced: true,
		calls:  []string{"AddRateLimited ns/a", "Done ns/a"},
		log:    []string{`DEBUG thing sync raced, retrying thing=ns/a err=create: ` + errExists.Error()},
	}, {
		name: "custom raced: aggregate of conflicts", err: utilerrors.NewAggregate([]error{errConflict, errExists}),
		opts: with(func(o *Options[string]) {
			o.Raced = func(err error) bool {
				var agg utilerrors.Aggregate
				return errors.As(err, &agg) && Conflict(agg.Errors()[0]) && Conflict(agg.Errors()[1])
			}
		}),
		synced: true,
		calls:  []string{"AddRateLimited ns/a", "Done ns/a"},
		log:    []string{"DEBUG thing sync raced, retrying thing=ns/a err=[" + errConflict.Error() + ", " + errExists.Error() + "]"},
	}, {
		name: "without Raced a conflict is a failure", err: errConflict,
		opts:   with(func(o *Options[string]) { o.Raced = nil }),
		synced: true,
		calls:  []string{"AddRateLimited ns/a", "Done ns/a"},
		log:    []string{"WARN thing sync failed, retrying thing=ns/a err=" + errConflict.Error()},
	}, {
		name: "quiet failure retries without a line", err: errBoom,
		opts:   with(func(o *Options[string]) { o.Quiet = func(err error) bool { return err == errBoom } }),
		synced: true,
		calls:  []string{"AddRateLimited ns/a", "Done ns/a"},
	}, {
		name: "retry level", err: errBoom,
		opts:   with(func(o *Options[string]) { o.RetryLevel = slog.LevelInfo }),
		synced: true,
		calls:  []string{"AddRateLimited ns/a", "Done ns/a"},
		log:    []string{"INFO thing sync failed, retrying thing=ns/a err=boom"},
	}, {
		name: "last retry below maxRetries", opts: base, err: errBoom, requeues: 2,
		synced: true,
		calls:  []string{"AddRateLimited ns/a", "Done ns/a"},
		log:    []string{"WARN thing sync failed, retrying thing=ns/a err=boom"},
	}, {
		name: "maxRetries drops and calls the hook", opts: base, err: errBoom, requeues: 3,
		synced:  true,
		calls:   []string{"Forget ns/a", "Done ns/a"},
		log:     []string{"ERROR thing sync failed, dropping until its next change thing=ns/a err=boom"},
		dropped: true,
	}, {
		name: "maxRetries drops a conflict too", opts: base, err: errConflict, requeues: 5,
		synced:  true,
		calls:   []string{"Forget ns/a", "Done ns/a"},
		log:     []string{"ERROR thing sync failed, dropping until its next change thing=ns/a err=" + errConflict.Error()},
		dropped: true,
	}, {
		name: "drop wording", err: errBoom, requeues: 3,
		opts:    with(func(o *Options[string]) { o.GiveUp = "giving up until the next change" }),
		synced:  true,
		calls:   []string{"Forget ns/a", "Done ns/a"},
		log:     []string{"ERROR thing sync failed, giving up until the next change thing=ns/a err=boom"},
		dropped: true,
	}, {
		name: "maxRetries 0 retries forever", err: errBoom, requeues: 1000,
		opts:   with(func(o *Options[string]) { o.MaxRetries = 0 }),
		synced: true,
		calls:  []string{"AddRateLimited ns/a", "Done ns/a"},
		log:    []string{"WARN thing sync failed, retrying thing=ns/a err=boom"},
	}, {
		name: "error after ctx cancel is not retried", opts: base, err: context.Canceled, cancel: "during",
		synced: true,
		calls:  []string{"Done ns/a"},
	}, {
		name: "error after ctx cancel at maxRetries is not dropped", opts: base, err: errBoom, requeues: 3, cancel: "during",
		synced: true,
		calls:  []string{"Done ns/a"},
	}, {
		name: "success after ctx cancel still forgets", opts: base, cancel: "during",
		synced: true,
		calls:  []string{"Forget ns/a", "Done ns/a"},
	}, {
		name: "key taken after ctx ended is not synced", opts: base, cancel: "before",
		calls: []string{"Done ns/a"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := &fakeQueue{items: []string{"ns/a"}, requeues: tt.requeues}
			logs := &logLines{}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel == "before" {
				cancel()
			}
			syncs := 0
			sync := func(ctx context.Context, key string) error {
				syncs++
				if key != "ns/a" {
					t.Errorf("synced %q", key)
				}
				if tt.cancel == "during" {
					cancel()
				}
				return tt.err
			}
			var dropped, finished []string
			o := tt.opts
			o.Logger = logs.logger()
			o.Dropped = func(k string, err error) {
				dropped = append(dropped, k)
				if fmt.Sprint(err) != fmt.Sprint(tt.err) {
					t.Errorf("dropped with %v, want %v", err, tt.err)
				}
				// The key is forgotten before the hook runs, and the queue not yet done with it.
				if got := q.calls; !slices.Equal(got, []string{"Forget " + k}) {
					t.Errorf("calls before Dropped: %q", got)
				}
			}
			o.Finished = func(k string, err error) {
				finished = append(finished, k)
				if fmt.Sprint(err) != fmt.Sprint(tt.err) {
					t.Errorf("finished with %v, want %v", err, tt.err)
				}
				if n := len(q.calls); n == 0 || q.calls[n-1] != "Done "+k {
					t.Errorf("Finished before Done: calls %q", q.calls)
				}
			}

			if got := Process(ctx, q, sync, o); got != tt.synced {
				t.Errorf("Process = %v, want %v", got, tt.synced)
			}
			if want := map[bool]int{true: 1, false: 0}[tt.synced]; syncs != want {
				t.Errorf("%d syncs, want %d", syncs, want)
			}
			if !slices.Equal(q.calls, tt.calls) {
				t.Errorf("queue calls %q, want %q", q.calls, tt.calls)
			}
			if got := logs.get(); !slices.Equal(got, tt.log) {
				t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.log, "\n"))
			}
			if got := len(dropped) == 1; got != tt.dropped || len(dropped) > 1 {
				t.Errorf("Dropped calls %q, want dropped %v", dropped, tt.dropped)
			}
			// One Finished per synced key, none for a key not synced.
			if want := map[bool]int{true: 1, false: 0}[tt.synced]; len(finished) != want {
				t.Errorf("Finished calls %q, want %d", finished, want)
			}
		})
	}
}

func TestProcessQueueShutDown(t *testing.T) {
	q := &fakeQueue{}
	called := false
	if Process(context.Background(), q, func(context.Context, string) error { called = true; return nil }, Options[string]{}) {
		t.Error("Process = true on a shut-down queue")
	}
	if called || len(q.calls) != 0 {
		t.Errorf("sync called %v, queue calls %q", called, q.calls)
	}
}

func TestProcessDefaultLogger(t *testing.T) {
	// Not parallel: it swaps the default logger, which must be read when logging, not before.
	logs := &logLines{}
	defer slog.SetDefault(slog.Default())
	o := Options[string]{Name: "thing sync", KeyAttr: "thing"}
	slog.SetDefault(logs.logger())
	q := &fakeQueue{items: []string{"ns/a"}}
	Process(context.Background(), q, func(context.Context, string) error { return errBoom }, o)
	if got, want := logs.get(), []string{"WARN thing sync failed, retrying thing=ns/a err=boom"}; !slices.Equal(got, want) {
		t.Errorf("log %q, want %q", got, want)
	}
}

func TestProcessLoggerAttrs(t *testing.T) {
	logs := &logLines{}
	o := Options[int]{Name: "mirror endpoints", KeyAttr: "key", MaxRetries: 1, GiveUp: "dropped until its next change",
		Logger: logs.logger().With("controller", "test")}
	q := workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[int](time.Millisecond, time.Millisecond))
	defer q.ShutDown()
	q.Add(7)
	fail := func(context.Context, int) error { return errBoom }
	Process(context.Background(), q, fail, o)
	Process(context.Background(), q, fail, o) // waits out the 1 ms backoff
	want := []string{
		"WARN mirror endpoints failed, retrying controller=test key=7 err=boom",
		"ERROR mirror endpoints failed, dropped until its next change controller=test key=7 err=boom",
	}
	if got := logs.get(); !slices.Equal(got, want) {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := q.NumRequeues(7); n != 0 {
		t.Errorf("NumRequeues after the drop = %d, want 0", n)
	}
}

// fastQueue is a real queue whose retries wait a millisecond.
func fastQueue() workqueue.TypedRateLimitingInterface[string] {
	return workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Millisecond, 10*time.Millisecond))
}

// runAsync starts Run and returns a function that cancels it and fails unless it returns in time.
func runAsync(t *testing.T, workers int, q workqueue.TypedRateLimitingInterface[string], sync func(context.Context, string) error, o Options[string]) (context.Context, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, workers, q, sync, o)
	}()
	stop := func() {
		t.Helper()
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after ctx ended")
		}
	}
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return ctx, stop
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("%s: not reached", what)
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name    string
		workers int
		keys    []string
		fails   int // failures of each key before it succeeds
		opts    Options[string]
		// want
		syncs   int // syncs per key
		dropped bool
	}{
		{name: "syncs every key", workers: 3, keys: []string{"a", "b", "c", "d", "e"}, syncs: 1},
		{name: "no workers means one", workers: 0, keys: []string{"a", "b"}, syncs: 1},
		{name: "retries until success", workers: 2, keys: []string{"a", "b"}, fails: 3, opts: Options[string]{MaxRetries: 5}, syncs: 4},
		{name: "retries forever", workers: 1, keys: []string{"a"}, fails: 20, syncs: 21},
		{name: "drops after maxRetries", workers: 2, keys: []string{"a", "b"}, fails: 100, opts: Options[string]{MaxRetries: 2}, syncs: 3, dropped: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			syncs := map[string]int{}
			finished := map[string]int{}
			dropped := map[string]bool{}
			q := fastQueue()
			o := tt.opts
			o.Name, o.KeyAttr, o.Logger = "thing sync", "thing", (&logLines{}).logger()
			o.Dropped = func(k string, _ error) { mu.Lock(); dropped[k] = true; mu.Unlock() }
			o.Finished = func(k string, _ error) { mu.Lock(); finished[k]++; mu.Unlock() }
			sync := func(_ context.Context, k string) error {
				mu.Lock()
				defer mu.Unlock()
				syncs[k]++
				if syncs[k] <= tt.fails {
					return errBoom
				}
				return nil
			}
			for _, k := range tt.keys {
				q.Add(k)
			}
			_, stop := runAsync(t, tt.workers, q, sync, o)
			poll(t, "every key finished", func() bool {
				mu.Lock()
				defer mu.Unlock()
				for _, k := range tt.keys {
					if finished[k] < tt.syncs || (tt.dropped && !dropped[k]) {
						return false
					}
				}
				return true
			})
			stop()
			if !q.ShuttingDown() {
				t.Error("queue not shut down after Run returned")
			}
			mu.Lock()
			defer mu.Unlock()
			for _, k := range tt.keys {
				if syncs[k] != tt.syncs || dropped[k] != tt.dropped {
					t.Errorf("key %s: %d syncs, dropped %v; want %d, %v", k, syncs[k], dropped[k], tt.syncs, tt.dropped)
				}
				if n := q.NumRequeues(k); n != 0 {
					t.Errorf("key %s: NumRequeues %d after it was finished with, want 0", k, n)
				}
			}
		})
	}
}

// TestRunStopsInFlight: Run returns once ctx ends, after the in-flight sync has returned, without
// retrying its failure and without syncing what is still queued.
func TestRunStopsInFlight(t *testing.T) {
	q := fastQueue()
	started := make(chan string, 10)
	release := make(chan struct{})
	var mu sync.Mutex
	var synced []string
	sync := func(ctx context.Context, k string) error {
		mu.Lock()
		synced = append(synced, k)
		mu.Unlock()
		started <- k
		<-release
		return ctx.Err()
	}
	logs := &logLines{}
	q.Add("a")
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		Run(ctx, 1, q, sync, Options[string]{Name: "thing sync", KeyAttr: "thing", Logger: logs.logger()})
	}()
	defer func() { cancel(); close(release); <-stopped }()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no sync started")
	}
	q.Add("b")
	cancel()
	poll(t, "queue shut down", q.ShuttingDown)
	select {
	case <-stopped:
		t.Fatal("Run returned while a sync was running")
	default:
	}
	release <- struct{}{}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the in-flight sync")
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(synced, []string{"a"}) {
		t.Errorf("synced %q, want only a", synced)
	}
	if got := logs.get(); len(got) != 0 {
		t.Errorf("logged %q after ctx ended", got)
	}
}

func TestRunCancelledBeforeStart(t *testing.T) {
	q := fastQueue()
	q.Add("a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, 2, q, func(context.Context, string) error { t.Error("synced after ctx ended"); return nil }, Options[string]{})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if !q.ShuttingDown() {
		t.Error("queue not shut down")
	}
}

func TestRegister(t *testing.T) {
	factory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	inf := factory.Core().V1().Pods().Informer()
	synced := Register("test", inf, cache.ResourceEventHandlerFuncs{AddFunc: func(interface{}) {}})
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), synced) {
		t.Fatal("registration never synced")
	}
	cancel()
	factory.Shutdown()

	defer func() {
		r := recover()
		msg, _ := r.(string)
		if !strings.HasPrefix(msg, "test controller: register handler: ") {
			t.Errorf("panic %v, want one naming the controller", r)
		}
	}()
	Register("test", inf, cache.ResourceEventHandlerFuncs{})
	t.Error("Register on a stopped informer did not panic")
}
