package main

import (
	"context"
	"fmt"
	"log"
	"maps"
	"runtime"
	"slices"
	"strings"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// syncQueues are the work queues that must have taken in every Service before the initial sync can
// be over: the EndpointSlice controller's (required) and the Endpoints controller's ("endpoint" in kube;
// when it runs).
var syncQueues = []string{"endpointslice", "endpoint", "endpoints"}

// resync stops the server with SIGTERM, starts it again on the same data dir and port, and watches
// its /metrics until the controllers are done with their initial sync: every controller work queue
// has finished as many items as were added to it (the EndpointSlice and Endpoints queues at least one
// per Service in the cluster), and neither those counters nor the endpointslices/endpoints write
// counters moved for o.quiet. The sync ended at the first poll of that quiet stretch. It returns the
// running server: the new one, or the stopped old one if the new one could not be started.
func resync(ctx context.Context, o options, cfg *rest.Config, old *server, bin string, t *table) (*server, error) {
	cs, err := newClient(cfg)
	if err != nil {
		return old, err
	}
	nServices, err := countServices(ctx, cs)
	if err != nil {
		return old, err
	}
	log.Printf("restart: SIGTERM to pid %d (%d Services stored)", old.cmd.Process.Pid, nServices)
	term := time.Now()
	graceful := old.stop()
	how := "exit"
	if !graceful {
		how = "SIGKILL after 10s"
	}
	t.add("restart: SIGTERM -> process gone", dur(time.Since(term))+" ("+how+")", "", true)

	s, err := start(bin, old.data, old.logFile, old.port)
	if err != nil {
		return old, err
	}
	readyAt, err := s.waitLine(ctx, s.ready, readyLine, 2*time.Minute)
	if err != nil {
		return s, err
	}
	cpu := startCPU(s.cmd.Process.Pid)
	log.Printf("restart: pid %d ready in %s; polling /metrics every %s", s.cmd.Process.Pid, dur(readyAt.Sub(s.started)), dur(o.poll))
	t.add("restart: exec -> ready line", dur(readyAt.Sub(s.started)), "", true)

	cs, err = newClient(cfg) // the old connections went with the old process
	if err != nil {
		return s, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.resyncTimeout)
	defer cancel()
	tick := time.NewTicker(o.poll)
	defer tick.Stop()
	var (
		last        snapshot
		stableSince *snapshot // first poll of the current drained, unchanged stretch
		failures    int
		lastErr     error
	)
	for {
		snap, err := scrape(ctx, cs)
		if err != nil {
			failures++
			lastErr = err
		} else {
			if drained(snap, nServices) {
				if stableSince == nil || fingerprint(snap) != fingerprint(*stableSince) {
					stableSince = &snap
				}
				if snap.at.Sub(stableSince.at) >= o.quiet {
					last = snap
					break
				}
			} else {
				stableSince = nil
			}
			last = snap
		}
		select {
		case <-tick.C:
		case <-s.exited:
			return s, fmt.Errorf("svcnet up exited during the resync (%v); its log ends:\n%s", s.waitErr, s.logTail())
		case <-ctx.Done():
			t.add(fmt.Sprintf("resync: ready line -> controllers synced (%d Services)", nServices),
				fmt.Sprintf("not within %s (%s)", dur(o.resyncTimeout), last.queueTimes(snapshot{})), "< 10s", false)
			t.add("resync: writes to endpointslices/endpoints so far", last.describeWrites(snapshot{}), "0", last.totalWrites() == 0)
			return s, fmt.Errorf("controllers not synced (last /metrics: %s; %d failed reads, last error %v): %w",
				describeQueues(last), failures, lastErr, ctx.Err())
		}
	}
	synced := stableSince.at.Sub(readyAt)
	cpuUsed := cpu.since(last.at.Sub(readyAt), runtime.NumCPU())
	log.Printf("resync: drained %s after the ready line; queues %s; writes %s", dur(synced), describeQueues(last), last.describeWrites(snapshot{}))
	select {
	case at := <-s.controllers:
		t.add("restart: ready line -> \"controllers started\" (their informers synced)", dur(at.Sub(readyAt)), "", true)
	default:
	}
	t.add(fmt.Sprintf("resync: ready line -> controllers synced (%d Services, polled every %s)", nServices, dur(o.poll)),
		dur(synced), "< 10s", synced < 10*time.Second)
	t.add(fmt.Sprintf("resync: writes to endpointslices/endpoints (until %s after)", dur(o.quiet)), last.describeWrites(snapshot{}), "0", last.totalWrites() == 0)
	t.add("  work queues (items added / retries)", describeQueues(last), "", true)
	t.add("  endpoint controller queues", last.queueTimes(snapshot{}), "", true)
	if cpuUsed != "" {
		t.add("  CPU used from the ready line to the end of the quiet stretch: svcnet up / ctrlbench", cpuUsed, "", true)
	}

	readyPods, err := countReadyInSlices(ctx, cs, newLayout(o))
	if err != nil {
		return s, err
	}
	want := o.services * o.podsPerService
	t.add("  after the resync: pods ready in EndpointSlices", fmt.Sprintf("%d of %d", readyPods, want), "all", readyPods == want)
	if readyPods != want {
		return s, fmt.Errorf("after the resync only %d of %d pods are ready endpoints", readyPods, want)
	}
	return s, nil
}

// drained: every controller queue has finished all it was given, and the sync queues present have
// taken in at least one item per Service. The EndpointSlice queue must be there.
func drained(s snapshot, services int) bool {
	if _, ok := s.queues["endpointslice"]; !ok {
		return false
	}
	for name, q := range s.queues {
		if apiserverQueue(name) {
			continue
		}
		if q.adds != q.done || q.depth != 0 {
			return false
		}
		if slices.Contains(syncQueues, name) && q.adds < float64(services) {
			return false
		}
	}
	return true
}

// fingerprint changes whenever a controller takes in or finishes an item or anyone writes endpoints.
func fingerprint(s snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "w%.0f", s.totalWrites())
	for _, name := range slices.Sorted(maps.Keys(s.queues)) {
		if q := s.queues[name]; !apiserverQueue(name) {
			fmt.Fprintf(&b, " %s:%.0f/%.0f/%.0f", name, q.adds, q.done, q.retries)
		}
	}
	return b.String()
}

func describeQueues(s snapshot) string {
	var parts []string
	for name, q := range s.queues {
		if !apiserverQueue(name) {
			parts = append(parts, fmt.Sprintf("%s %.0f / %.0f", name, q.adds, q.retries))
		}
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return "none yet"
	}
	return strings.Join(parts, ", ")
}

func countServices(ctx context.Context, cs kubernetes.Interface) (int, error) {
	n := 0
	opts := metav1.ListOptions{Limit: 1000}
	for {
		l, err := cs.CoreV1().Services("").List(ctx, opts)
		if err != nil {
			return 0, fmt.Errorf("list services: %w", err)
		}
		n += len(l.Items)
		if opts.Continue = l.Continue; opts.Continue == "" {
			return n, nil
		}
	}
}

// countReadyInSlices lists the benchmark's EndpointSlices and counts the distinct pods they show ready.
func countReadyInSlices(ctx context.Context, cs kubernetes.Interface, l layout) (int, error) {
	seen := make([]bool, l.pods())
	n := 0
	opts := metav1.ListOptions{Limit: 1000}
	for {
		list, err := cs.DiscoveryV1().EndpointSlices("").List(ctx, opts)
		if err != nil {
			return 0, fmt.Errorf("list endpointslices: %w", err)
		}
		for _, s := range list.Items {
			if ours(s.Namespace) {
				n += readyIn(&s, l, seen)
			}
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			return n, nil
		}
	}
}

func readyIn(s *discoveryv1.EndpointSlice, l layout, seen []bool) int {
	n := 0
	for _, ep := range s.Endpoints {
		if ep.TargetRef == nil || ep.Conditions.Ready == nil || !*ep.Conditions.Ready {
			continue
		}
		if i, ok := l.podIndex(ep.TargetRef.Name); ok && !seen[i] {
			seen[i] = true
			n++
		}
	}
	return n
}
