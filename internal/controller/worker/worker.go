// Package worker runs a controller's work queue: it registers the controller's event handlers on
// shared informers, runs the workers that take keys off a rate-limited queue and sync them, and
// applies the retry policy to each sync's result (forget on success, retry with the queue's rate
// limiter, drop after a number of retries), logging each failure once with the controller's own
// messages.
package worker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Register adds h to inf and returns the registration's HasSynced, which (unlike the informer's)
// turns true only once the initial list has been delivered to h. It panics, naming controller,
// when the informer has been stopped: the factory was shut down before the controller was built.
func Register(controller string, inf cache.SharedInformer, h cache.ResourceEventHandler) cache.InformerSynced {
	reg, err := inf.AddEventHandler(h)
	if err != nil {
		panic(fmt.Sprintf("%s controller: register handler: %v", controller, err))
	}
	return reg.HasSynced
}

// Options are a controller's retry policy and the words its log lines use.
type Options[K comparable] struct {
	// Name says what failed and begins every log line: "<Name> failed, retrying",
	// "<Name> raced, retrying" and "<Name> failed, <GiveUp>" (for instance "deployment sync").
	Name string
	// KeyAttr is the log attribute holding the key (for instance "deployment").
	KeyAttr string
	// MaxRetries is how many times one key is retried before it is dropped until it is queued
	// again; 0 retries forever.
	MaxRetries int
	// GiveUp ends the line logged when a key is dropped; "dropping until its next change" if empty.
	GiveUp string
	// Raced tells the failures that only mean the cache was behind the API server (a conflict, an
	// object already created): they are retried with a Debug line. Nil: none are.
	Raced func(error) bool
	// Quiet tells the failures the sync has reported already (by an event or a status): they are
	// retried without a log line. Nil: none are.
	Quiet func(error) bool
	// RetryLevel is the level of "<Name> failed, retrying"; slog.LevelWarn if nil.
	RetryLevel slog.Leveler
	// Logger is where the lines go; slog.Default() if nil.
	Logger *slog.Logger
	// Dropped, if set, is called with a key and its last error when the key is dropped.
	Dropped func(key K, err error)
	// Finished, if set, is called with a key and its sync's error after every sync, once the retry
	// decision is made and the queue is done with the key.
	Finished func(key K, err error)
}

// Conflict reports an update conflict or a create of an object that exists: both only mean that
// the informer cache was behind the API server, and a retry reads a newer one.
func Conflict(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
}

// Run processes queue with the given number of workers (at least one) until ctx ends, then shuts
// queue down and returns once every worker has stopped.
func Run[K comparable](ctx context.Context, workers int, queue workqueue.TypedRateLimitingInterface[K],
	syncKey func(context.Context, K) error, o Options[K]) {
	if workers < 1 {
		workers = 1
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			wait.UntilWithContext(ctx, func(ctx context.Context) {
				for Process(ctx, queue, syncKey, o) {
				}
			}, time.Second)
		})
	}
	<-ctx.Done()
	queue.ShutDown()
	wg.Wait()
}

// Process takes one key from queue, syncs it and applies o's retry policy to the result. It
// returns false once the queue is shut down or ctx has ended: the worker stops. A key taken after
// ctx ended is not synced, and a sync that fails after ctx ended is neither logged nor retried:
// the failure is the cancellation.
func Process[K comparable](ctx context.Context, queue workqueue.TypedRateLimitingInterface[K],
	syncKey func(context.Context, K) error, o Options[K]) bool {
	key, quit := queue.Get()
	if quit {
		return false
	}
	synced, err := process(ctx, queue, key, syncKey, o)
	if synced && o.Finished != nil {
		o.Finished(key, err)
	}
	return synced
}

// process syncs key and decides its fate; synced is false when ctx had ended before the sync.
func process[K comparable](ctx context.Context, queue workqueue.TypedRateLimitingInterface[K], key K,
	syncKey func(context.Context, K) error, o Options[K]) (synced bool, err error) {
	defer queue.Done(key)
	if ctx.Err() != nil {
		return false, nil
	}
	err = syncKey(ctx, key)
	switch {
	case err != nil && ctx.Err() != nil:
		// Shutting down: the failure is the cancellation, not worth a log line or a retry.
	case err == nil:
		queue.Forget(key)
	case o.MaxRetries == 0 || queue.NumRequeues(key) < o.MaxRetries:
		switch {
		case o.Quiet != nil && o.Quiet(err):
		case o.Raced != nil && o.Raced(err):
			o.log(ctx, slog.LevelDebug, o.Name+" raced, retrying", key, err)
		default:
			o.log(ctx, o.retryLevel(), o.Name+" failed, retrying", key, err)
		}
		queue.AddRateLimited(key)
	default:
		giveUp := o.GiveUp
		if giveUp == "" {
			giveUp = "dropping until its next change"
		}
		o.log(ctx, slog.LevelError, o.Name+" failed, "+giveUp, key, err)
		queue.Forget(key)
		if o.Dropped != nil {
			o.Dropped(key, err)
		}
	}
	return true, err
}

func (o *Options[K]) retryLevel() slog.Level {
	if o.RetryLevel == nil {
		return slog.LevelWarn
	}
	return o.RetryLevel.Level()
}

func (o *Options[K]) log(ctx context.Context, level slog.Level, msg string, key K, err error) {
	l := o.Logger
	if l == nil {
		l = slog.Default()
	}
	l.Log(ctx, level, msg, o.KeyAttr, key, "err", err)
}
