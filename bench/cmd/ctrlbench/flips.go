package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/svcnet/svcnet/bench/internal/report"
)

// observeLimit is how long a flip waits for the informers to show its change.
const observeLimit = time.Minute

// errIncomplete marks a phase that measured what it could but missed some changes: the run goes on
// and exits 1 at the end.
var errIncomplete = errors.New("incomplete")

// flips makes o.flips distinct random pods go NotReady and then Ready again, one flip started every
// o.flipPeriod/o.flips, and measures from just before each status write to the informer event that
// shows the endpoint in its new state.
func flips(ctx context.Context, o options, cfg *rest.Config, cl *cluster, obs *observer, t *report.Table) error {
	l := obs.l
	epActive := obs.endpointsControllerRuns()
	clients := make([]kubernetes.Interface, min(o.writers, 8))
	for i := range clients {
		c, err := newClient(cfg)
		if err != nil {
			return err
		}
		clients[i] = c
	}
	metricsClient, err := newClient(cfg)
	if err != nil {
		return err
	}
	base, err := cl.scrape(ctx, metricsClient)
	if err != nil {
		return err
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, o.flipPeriod+2*observeLimit+time.Minute)
	defer cancel()

	type result struct {
		// [0]: the NotReady write, [1]: the Ready write.
		sliceLat, sliceFromReturn, epLat, writeLat [2]time.Duration
		sliceSeen, epSeen                          [2]bool
		err                                        error
	}
	results := make([]result, o.flips)
	pods := rand.Perm(l.pods())[:o.flips]
	interval := o.flipPeriod / time.Duration(o.flips)
	log.Printf("readiness flips: %d pods, one every %s", o.flips, report.Dur(interval))
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var wg sync.WaitGroup
	begin := time.Now()
	cpu := cl.startCPU()
	for n, i := range pods {
		select {
		case <-tick.C:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		if !obs.isReady(&obs.slices, i) {
			return fmt.Errorf("pod %s is not ready in its EndpointSlice before its flip", l.podName(i))
		}
		c := clients[n%len(clients)]
		r := &results[n]
		wg.Go(func() {
			for step, want := range []bool{false, true} {
				sliceCh := obs.expect(&obs.slices, i, want)
				var epCh <-chan time.Time
				if epActive {
					epCh = obs.expect(&obs.endpoints, i, want)
				}
				t0 := time.Now()
				_, err := c.CoreV1().Pods(l.namespace(i/l.perService)).UpdateStatus(ctx, l.withStatus(i, want), metav1.UpdateOptions{})
				t1 := time.Now()
				r.writeLat[step] = t1.Sub(t0)
				if err != nil {
					r.err = fmt.Errorf("status update of %s: %w", l.podName(i), err)
					obs.forget(&obs.slices, i)
					obs.forget(&obs.endpoints, i)
					return
				}
				limit := t1.Add(observeLimit)
				select {
				case at := <-sliceCh:
					r.sliceLat[step], r.sliceFromReturn[step], r.sliceSeen[step] = at.Sub(t0), at.Sub(t1), true
				case <-time.After(time.Until(limit)):
					obs.forget(&obs.slices, i)
				}
				if epActive {
					select {
					case at := <-epCh:
						r.epLat[step], r.epSeen[step] = at.Sub(t0), true
					case <-time.After(time.Until(limit)):
						obs.forget(&obs.endpoints, i)
					}
				}
			}
		})
	}
	wg.Wait()
	wall := time.Since(begin)
	cpuUsed := cpu.Since(wall, runtime.NumCPU())
	after, err := cl.scrape(ctx, metricsClient)
	if err != nil {
		return err
	}

	var errs []error
	var slice, sliceRet, ep [2][]time.Duration
	var writes []time.Duration
	missing, epMissing := 0, 0
	for _, r := range results {
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		for step := range 2 {
			writes = append(writes, r.writeLat[step])
			if r.sliceSeen[step] {
				slice[step] = append(slice[step], r.sliceLat[step])
				sliceRet[step] = append(sliceRet[step], r.sliceFromReturn[step])
			} else {
				missing++
			}
			if r.epSeen[step] {
				ep[step] = append(ep[step], r.epLat[step])
			} else if epActive {
				epMissing++
			}
		}
	}
	log.Printf("readiness flips: %d in %s; %d EndpointSlice and %d Endpoints changes not seen within %s, %d failed writes",
		o.flips, report.Dur(wall), missing, epMissing, observeLimit, len(errs))
	p99 := report.Percentile(report.SortedCopy(slice[1]), 0.99)
	t.Add(fmt.Sprintf("%d readiness flips over %s: pod Ready -> EndpointSlice ready p50 / p99 / max", o.flips, report.Dur(o.flipPeriod)),
		report.P50P99Max(slice[1]), "p99 < 50ms", p99 < 50*time.Millisecond && missing == 0 && len(errs) == 0)
	t.Add("  same, from UpdateStatus's return", report.P50P99Max(sliceRet[1]), "", true)
	t.Add("  pod NotReady -> EndpointSlice not ready", report.P50P99Max(slice[0]), "", true)
	t.Add("  EndpointSlice changes seen", fmt.Sprintf("%d of %d", len(slice[0])+len(slice[1]), 2*o.flips), "all", missing == 0 && len(errs) == 0)
	if epActive {
		t.Add("  pod Ready -> Endpoints address ready", report.P50P99Max(ep[1]), "", true)
		t.Add("  pod NotReady -> Endpoints address not ready", report.P50P99Max(ep[0]), "", true)
		t.Add("  Endpoints changes seen", fmt.Sprintf("%d of %d", len(ep[0])+len(ep[1]), 2*o.flips), "all", epMissing == 0 && len(errs) == 0)
	}
	t.Add("  UpdateStatus latency", report.P50P99Max(writes), "", true)
	t.Add("  controller writes to endpointslices/endpoints during the flips", after.describeWrites(base), "", true)
	addQueueRows(t, "  during the flips:", after, base)
	if cpuUsed != "" {
		t.Add("  CPU used during the flips: "+cl.cpuLabel(), cpuUsed, "", true)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d flips failed: %w", len(errs), o.flips, errors.Join(errs[:min(len(errs), 5)]...))
	}
	if missing > 0 || epMissing > 0 {
		// Let the controllers catch up, so that the restart phase starts from a converged state.
		settle := time.Now()
		views := []*view{&obs.slices}
		if epActive {
			views = append(views, &obs.endpoints)
		}
		for n, v := range views {
			what := []string{"EndpointSlices", "Endpoints"}[n]
			err := obs.waitAllReady(parent, v, what, o.settleTimeout)
			measured := report.Dur(time.Since(settle))
			if err != nil {
				measured = "not within " + report.Dur(o.settleTimeout)
			}
			t.Add("  after the flips: every pod ready again in "+what, measured+" after the last flip's end", "", true)
			if err != nil {
				return err
			}
		}
		return fmt.Errorf("%w: %d EndpointSlice and %d Endpoints changes were not seen within %s", errIncomplete, missing, epMissing, observeLimit)
	}
	return nil
}
