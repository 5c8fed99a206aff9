package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/svcnet/svcnet/bench/internal/report"
)

// setup creates the Nodes, the Services and the pods with their statuses, then waits until the
// EndpointSlices (and the Endpoints, if an Endpoints controller runs) show every pod ready.
func setup(ctx context.Context, o options, cfg *rest.Config, cl *cluster, obs *observer, t *report.Table) error {
	l := obs.l
	clients := make([]kubernetes.Interface, o.writers)
	for i := range clients {
		c, err := newClient(cfg)
		if err != nil {
			return err
		}
		clients[i] = c
	}
	admin := clients[0]
	metricsClient, err := newClient(cfg)
	if err != nil {
		return err
	}
	base, err := cl.scrape(ctx, metricsClient)
	if err != nil {
		return err
	}
	for s := range max(1, min(o.namespaces, o.services)) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: l.namespace(s)}}
		if _, err := admin.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create namespace %s: %w", ns.Name, err)
		}
	}
	for n := range o.nodes {
		if _, err := admin.CoreV1().Nodes().Create(ctx, l.node(n), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create node: %w", err)
		}
	}

	services := phase{name: "Service creates", n: o.services, do: func(ctx context.Context, c kubernetes.Interface, s int) error {
		_, err := c.CoreV1().Services(l.namespace(s)).Create(ctx, l.service(s), metav1.CreateOptions{})
		return err
	}}
	pods := phase{name: "pod creates", n: l.pods(), do: func(ctx context.Context, c kubernetes.Interface, i int) error {
		_, err := c.CoreV1().Pods(l.namespace(i/l.perService)).Create(ctx, l.pod(i), metav1.CreateOptions{})
		return err
	}}
	statuses := phase{name: "pod status updates (Running, IP, Ready)", n: l.pods(), do: func(ctx context.Context, c kubernetes.Interface, i int) error {
		_, err := c.CoreV1().Pods(l.namespace(i/l.perService)).UpdateStatus(ctx, l.withStatus(i, true), metav1.UpdateOptions{})
		return err
	}}
	order := []*phase{&pods, &statuses, &services}
	if o.servicesFirst {
		order = []*phase{&services, &pods, &statuses}
	}
	log.Printf("setup: %d nodes, then %s, %s, %s with %d writers", o.nodes, order[0].name, order[1].name, order[2].name, o.writers)
	begin := time.Now()
	cpu := cl.startCPU()
	for _, p := range order {
		if err := p.run(ctx, clients); err != nil {
			return err
		}
		t.Add(fmt.Sprintf("setup: %d %s, %d writers", p.n, p.name, o.writers),
			fmt.Sprintf("%s (%.0f/s; p50 / p99 / max %s%s)", report.Dur(p.wall), float64(p.n)/p.wall.Seconds(), report.P50P99Max(p.lat), p.retryNote()), "", true)
	}
	writesDone := time.Now()
	if err := obs.waitAllReady(ctx, &obs.slices, "EndpointSlices", o.settleTimeout); err != nil {
		return err
	}
	reflected := time.Now()
	cpuUsed := cpu.Since(reflected.Sub(begin), runtime.NumCPU())
	t.Add("setup: last write -> every pod ready in EndpointSlices", report.Dur(reflected.Sub(writesDone)), "", true)

	// An Endpoints controller, if this build has one, has had the same time: any Endpoints object for a
	// benchmark Service means it runs.
	epActive := obs.endpointsControllerRuns()
	if !epActive {
		time.Sleep(2 * time.Second)
		epActive = obs.endpointsControllerRuns()
	}
	if epActive {
		if err := obs.waitAllReady(ctx, &obs.endpoints, "Endpoints", o.settleTimeout); err != nil {
			return err
		}
		reflected = time.Now()
		cpuUsed = cpu.Since(reflected.Sub(begin), runtime.NumCPU())
		t.Add("setup: last write -> every pod ready in Endpoints", report.Dur(reflected.Sub(writesDone)), "", true)
	} else {
		log.Printf("no Endpoints objects for the benchmark's Services: no Endpoints controller runs in this build; measuring EndpointSlices only")
		t.Add("setup: Endpoints objects", "none: no Endpoints controller in this build", "", true)
	}
	// Leftover work (re-syncs the controllers' own writes trigger) would delay the flips: wait for it.
	idle, after, err := waitIdle(ctx, metricsClient, cl, 0, o.poll, o.quiet, o.settleTimeout)
	if err != nil {
		return err
	}
	t.Add("setup: last write -> controllers idle (queues drained)", report.Dur(idle.at.Sub(writesDone)), "", true)
	total := reflected.Sub(begin)
	t.Add(fmt.Sprintf("setup total: %d Services, %d pods + statuses -> all reflected", o.services, l.pods()), report.Dur(total), "", true)
	if cpuUsed != "" {
		t.Add("  CPU used meanwhile: "+cl.cpuLabel(), cpuUsed, "", true)
	}
	t.Add("  controller writes to endpointslices/endpoints during setup", after.describeWrites(base), "", true)
	addQueueRows(t, "  during setup:", after, base)
	return nil
}

// phase is one batch of n similar requests spread over the writers.
type phase struct {
	name string
	n    int
	do   func(ctx context.Context, c kubernetes.Interface, i int) error

	wall    time.Duration
	lat     []time.Duration
	retries atomic.Int64
}

// run has every client take the next index and make its request until all n are done, each
// request retried (up to 5 times) on errors that say "try again". It stops at the first other error.
func (p *phase) run(ctx context.Context, clients []kubernetes.Interface) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next, done atomic.Int64
	lat := make([][]time.Duration, len(clients))
	var wg sync.WaitGroup
	begin := time.Now()
	for w, c := range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= p.n {
					return
				}
				t0 := time.Now()
				if err := p.try(ctx, c, i); err != nil {
					cancel(fmt.Errorf("%s: item %d: %w", p.name, i, err))
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
				done.Add(1)
			}
		})
	}
	progress := make(chan struct{})
	go func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				log.Printf("%s: %d of %d", p.name, done.Load(), p.n)
			case <-progress:
				return
			}
		}
	}()
	wg.Wait()
	close(progress)
	p.wall = time.Since(begin)
	for _, l := range lat {
		p.lat = append(p.lat, l...)
	}
	log.Printf("%s: %d in %s (%.0f/s), %d retries", p.name, done.Load(), report.Dur(p.wall), float64(done.Load())/p.wall.Seconds(), p.retries.Load())
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

func (p *phase) try(ctx context.Context, c kubernetes.Interface, i int) error {
	var err error
	for attempt := range 5 {
		if attempt > 0 {
			p.retries.Add(1)
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		}
		err = p.do(ctx, c, i)
		if err == nil || (attempt > 0 && apierrors.IsAlreadyExists(err)) {
			return nil // a create whose first attempt got through
		}
		if !retriable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func retriable(err error) bool {
	var ne net.Error
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) || errors.As(err, &ne)
}

func (p *phase) retryNote() string {
	if n := p.retries.Load(); n > 0 {
		return fmt.Sprintf("; %d retries", n)
	}
	return ""
}
