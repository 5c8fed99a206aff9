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
func resync(ctx context.Context, o options, cfg *rest.Config, old *server, bin string, withEndpoints bool, t *table) (*server, error) {
	cs, err := newClient(cfg)
	if err != nil {
		return old, err
	}
	nServices, err := countServices(ctx, cs)
	if err != nil {
		return old, err
	}
	// Start from idle controllers, so that whatever the restarted ones do is the resync's own work.
	if _, _, err := waitIdle(ctx, cs, old, 0, o.poll, o.quiet, o.settleTimeout); err != nil {
		return old, fmt.Errorf("before the restart: %w", err)
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
	first, last, err := waitIdle(ctx, cs, s, nServices, o.poll, o.quiet, o.resyncTimeout)
	if err != nil {
		t.add(fmt.Sprintf("resync: ready line -> controllers synced (%d Services)", nServices),
			fmt.Sprintf("not within %s (%s)", dur(o.resyncTimeout), queueProgress(last)), "< 10s", false)
		t.add("resync: writes to endpointslices/endpoints so far", last.describeWrites(snapshot{}), "0", last.totalWrites() == 0)
		return s, err
	}
	synced := first.at.Sub(readyAt)
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
	addQueueRows(t, "  resync:", last, snapshot{})
	if cpuUsed != "" {
		t.add("  CPU used from the ready line to the end of the quiet stretch: svcnet up / ctrlbench", cpuUsed, "", true)
	}

	l := newLayout(o)
	readyPods, err := countReadyInSlices(ctx, cs, l)
	if err != nil {
		return s, err
	}
	t.add("  after the resync: pods ready in EndpointSlices", fmt.Sprintf("%d of %d", readyPods, l.pods()), "all", readyPods == l.pods())
	if readyPods != l.pods() {
		return s, fmt.Errorf("after the resync only %d of %d pods are ready in EndpointSlices", readyPods, l.pods())
	}
	if withEndpoints {
		readyPods, err := countReadyInEndpoints(ctx, cs, l)
		if err != nil {
			return s, err
		}
		t.add("  after the resync: pods ready in Endpoints", fmt.Sprintf("%d of %d", readyPods, l.pods()), "all", readyPods == l.pods())
		if readyPods != l.pods() {
			return s, fmt.Errorf("after the resync only %d of %d pods are ready in Endpoints", readyPods, l.pods())
		}
	}
	return s, nil
}

// waitIdle reads /metrics every poll until the controllers are idle: drained (see drained) with
// nothing changing for quiet. It returns the first and the last snapshot of that quiet stretch; the
// first is when the work ended, to within one poll. On failure, last is the latest snapshot read.
func waitIdle(ctx context.Context, cs kubernetes.Interface, s *server, services int, poll, quiet, limit time.Duration) (first, last snapshot, err error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	var (
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
			last = snap
			if !drained(snap, services) {
				stableSince = nil
			} else if stableSince == nil || fingerprint(snap) != fingerprint(*stableSince) {
				stableSince = &snap
			} else if snap.at.Sub(stableSince.at) >= quiet {
				return *stableSince, snap, nil
			}
		}
		select {
		case <-tick.C:
		case <-s.exited:
			return first, last, fmt.Errorf("svcnet up exited (%v); its log ends:\n%s", s.waitErr, s.logTail())
		case <-ctx.Done():
			return first, last, fmt.Errorf("controllers not idle (last /metrics: %s; %d failed reads, last error %v): %w",
				describeQueues(last), failures, lastErr, ctx.Err())
		}
	}
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

// countReadyInEndpoints lists the benchmark's Endpoints and counts the distinct pods in their
// ready addresses.
func countReadyInEndpoints(ctx context.Context, cs kubernetes.Interface, l layout) (int, error) {
	seen := make([]bool, l.pods())
	n := 0
	opts := metav1.ListOptions{Limit: 1000}
	for {
		list, err := cs.CoreV1().Endpoints("").List(ctx, opts)
		if err != nil {
			return 0, fmt.Errorf("list endpoints: %w", err)
		}
		for _, e := range list.Items {
			if !ours(e.Namespace) {
				continue
			}
			for _, ss := range e.Subsets {
				for _, a := range ss.Addresses {
					if a.TargetRef == nil {
						continue
					}
					if i, ok := l.podIndex(a.TargetRef.Name); ok && !seen[i] {
						seen[i] = true
						n++
					}
				}
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
