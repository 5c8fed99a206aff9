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

	"github.com/svcnet/svcnet/bench/internal/proc"
	"github.com/svcnet/svcnet/bench/internal/report"
)

// syncQueues are the work queues that must have taken in every Service before the initial sync can
// be over: the EndpointSlice controller's (required) and the Endpoints controller's ("endpoint" in kube;
// when it runs).
var syncQueues = []string{"endpointslice", "endpoint", "endpoints"}

// resync restarts the process that runs the controllers (`svcnet up`, or with -split the controller
// manager alone) and watches /metrics until the controllers are done with their initial sync: every
// controller work queue has finished as many items as were added to it (the EndpointSlice and
// Endpoints queues at least one per Service in the cluster), and neither those counters nor the
// endpointslices/endpoints write counters moved for o.quiet. The sync ended at the first poll of that
// quiet stretch. Afterwards c holds the restarted process, or the stopped old one if the new one
// could not be started.
func resync(ctx context.Context, o options, cfg *rest.Config, c *cluster, withEndpoints bool, t *report.Table) error {
	cs, err := newClient(cfg)
	if err != nil {
		return err
	}
	nServices, err := countServices(ctx, cs)
	if err != nil {
		return err
	}
	// Start from idle controllers, so that whatever the restarted ones do is the resync's own work.
	if _, _, err := waitIdle(ctx, cs, c, 0, o.poll, o.quiet, o.settleTimeout); err != nil {
		return fmt.Errorf("before the restart: %w", err)
	}
	restart := restartUp
	if c.split() {
		restart = restartControllerManager
	}
	r, err := restart(ctx, cs, c, nServices, t)
	if err != nil {
		return err
	}
	log.Printf("%s: pid %d; polling /metrics every %s", r.what, c.controllers().Pid(), report.Dur(o.poll))

	cs, err = newClient(cfg) // with `svcnet up`, the old connections went with the old process
	if err != nil {
		return err
	}
	first, last, err := waitIdle(ctx, cs, c, nServices, o.poll, o.quiet, o.resyncTimeout)
	if err != nil {
		t.Add(fmt.Sprintf("%s: %s -> controllers synced (%d Services)", r.resync, r.from, nServices),
			fmt.Sprintf("not within %s (%s)", report.Dur(o.resyncTimeout), queueProgress(last)), "< 10s", false)
		writes, none := resyncWrites(last, r.base)
		t.Add(r.resync+": writes to endpointslices/endpoints so far", writes, "0", none)
		return err
	}
	synced := first.at.Sub(r.at)
	cpuUsed := r.cpu.Since(last.at.Sub(r.at), runtime.NumCPU())
	writes, none := resyncWrites(last, r.base)
	log.Printf("resync: drained %s after the %s; queues %s; writes %s", report.Dur(synced), r.from, describeQueues(last), writes)
	select {
	case m := <-c.controllers().Stderr:
		t.Add(fmt.Sprintf("%s: %s -> \"controllers started\" (their informers synced)", r.what, r.from), report.Dur(m.At.Sub(r.at)), "", true)
	default:
	}
	t.Add(fmt.Sprintf("%s: %s -> controllers synced (%d Services, polled every %s)", r.resync, r.from, nServices, report.Dur(o.poll)),
		report.Dur(synced), "< 10s", synced < 10*time.Second)
	t.Add(fmt.Sprintf("%s: writes to endpointslices/endpoints (until %s after)", r.resync, report.Dur(o.quiet)), writes, "0", none)
	t.Add("  work queues (items added / retries)", describeQueues(last), "", true)
	addQueueRows(t, "  resync:", last, r.base)
	if cpuUsed != "" {
		t.Add(fmt.Sprintf("  CPU used from the %s to the end of the quiet stretch: %s", r.from, c.cpuLabel()), cpuUsed, "", true)
	}
	return checkAfterResync(ctx, cs, newLayout(o), withEndpoints, t)
}

// restarted says where a restart's resync is measured from, and how its rows are labelled.
type restarted struct {
	at     time.Time      // the start of the resync
	from   string         // what at is: "ready line", "exec"
	what   string         // the kind of restart: "restart", "controller-manager restart"
	resync string         // the label of the resync rows
	base   snapshot       // the counters the resync's writes and queue items are counted from
	cpu    *proc.CPUMeter // started at at
}

// restartUp stops `svcnet up` and starts it again on the same data dir and port: the API server's
// watch cache and the controllers' informers all start cold. The resync is measured from its ready
// line; all its counters start at 0.
func restartUp(ctx context.Context, _ kubernetes.Interface, c *cluster, nServices int, t *report.Table) (restarted, error) {
	old := c.up
	log.Printf("restart: SIGTERM to pid %d (%d Services stored)", old.Pid(), nServices)
	t.Add("restart: SIGTERM -> process gone", stopTimed(old), "", true)
	s, err := old.Again()
	if err != nil {
		return restarted{}, err
	}
	c.up = s
	ready, err := s.WaitMark(ctx, s.Stdout, fmt.Sprintf("%q line", readyLine), 2*time.Minute)
	if err != nil {
		return restarted{}, err
	}
	r := restarted{at: ready.At, from: "ready line", what: "restart", resync: "resync", cpu: c.startCPU()}
	log.Printf("restart: pid %d ready in %s", s.Pid(), report.Dur(ready.At.Sub(s.Started)))
	t.Add("restart: exec -> ready line", report.Dur(ready.At.Sub(s.Started)), "", true)
	return r, nil
}

// restartControllerManager restarts the controller manager alone, as a kube-controller-manager
// restart: the API server and its watch cache stay up and warm. It prints no ready line, so the resync
// is measured from the exec. Its queue counters start at 0, but the API server's write counters go
// on: the resync's writes are counted from a read taken just before the SIGTERM.
func restartControllerManager(ctx context.Context, cs kubernetes.Interface, c *cluster, nServices int, t *report.Table) (restarted, error) {
	base, err := c.scrape(ctx, cs)
	if err != nil {
		return restarted{}, err
	}
	base.queues = nil // the new process's queues start empty
	old := c.cm
	log.Printf("controller-manager restart: SIGTERM to pid %d (%d Services stored)", old.Pid(), nServices)
	t.Add("controller-manager restart: SIGTERM -> process gone", stopTimed(old), "", true)
	s, err := old.Again()
	if err != nil {
		return restarted{}, err
	}
	c.cm = s
	return restarted{at: s.Started, from: "exec", what: "controller-manager restart",
		resync: "resync after controller-manager restart", base: base, cpu: c.startCPU()}, nil
}

// stopTimed stops s and renders how long it took and how it ended.
func stopTimed(s *proc.Process) string {
	term := time.Now()
	how := "exit"
	if _, graceful := s.Stop(stopLimit); !graceful {
		how = "SIGKILL after 10s"
	}
	return report.Dur(time.Since(term)) + " (" + how + ")"
}

// resyncWrites renders the endpoint writes between base and last, and whether there were none.
func resyncWrites(last, base snapshot) (string, bool) {
	if last.at.IsZero() && !base.at.IsZero() {
		return "unknown: no /metrics read since the restart", false
	}
	return last.describeWrites(base), last.totalWrites() == base.totalWrites()
}

// checkAfterResync lists the EndpointSlices (and the Endpoints, when that controller runs): every
// pod must still be a ready endpoint after the resync.
func checkAfterResync(ctx context.Context, cs kubernetes.Interface, l layout, withEndpoints bool, t *report.Table) error {
	readyPods, err := countReadyInSlices(ctx, cs, l)
	if err != nil {
		return err
	}
	t.Add("  after the resync: pods ready in EndpointSlices", fmt.Sprintf("%d of %d", readyPods, l.pods()), "all", readyPods == l.pods())
	if readyPods != l.pods() {
		return fmt.Errorf("after the resync only %d of %d pods are ready in EndpointSlices", readyPods, l.pods())
	}
	if withEndpoints {
		readyPods, err := countReadyInEndpoints(ctx, cs, l)
		if err != nil {
			return err
		}
		t.Add("  after the resync: pods ready in Endpoints", fmt.Sprintf("%d of %d", readyPods, l.pods()), "all", readyPods == l.pods())
		if readyPods != l.pods() {
			return fmt.Errorf("after the resync only %d of %d pods are ready in Endpoints", readyPods, l.pods())
		}
	}
	return nil
}

// waitIdle reads /metrics every poll until the controllers are idle: drained (see drained) with
// nothing changing for quiet. It returns the first and the last snapshot of that quiet stretch; the
// first is when the work ended, to within one poll. On failure, last is the latest snapshot read.
func waitIdle(ctx context.Context, cs kubernetes.Interface, c *cluster, services int, poll, quiet, limit time.Duration) (first, last snapshot, err error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	exited := c.exited(ctx)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	var (
		stableSince *snapshot // first poll of the current drained, unchanged stretch
		failures    int
		lastErr     error
	)
	for {
		snap, err := c.scrape(ctx, cs)
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
		case s := <-exited:
			return first, last, fmt.Errorf("%s exited (%v); its log ends:\n%s", s.Name, s.Err(), s.LogTail())
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
