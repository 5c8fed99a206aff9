// Command proxybench measures svcnet's service proxy (internal/proxy) at scale, programming nftables
// in the network namespace it runs in. bench/proxy.sh runs it in a throwaway namespace; run alone,
// it refuses the host's namespace.
//
//  1. cold start: -services Services with -endpoints endpoints each (every tenth a NodePort), served
//     from an in-memory fake API (-fake): from proxy.Run to the first sync being in the kernel, with
//     the process's CPU time and page faults meanwhile;
//  2. one endpoint change: -changes EndpointSlice updates, one at a time, each removing (or putting
//     back) one endpoint of a random Service and stamping endpoints.kubernetes.io/last-change-trigger-
//     time just before the update: from that time to the end of the sync that applied it (the
//     kernel's acknowledgement), with the operations each sync sent;
//  3. no change: an update of a field the proxy ignores must send nothing;
//  4. memory: VmRSS / VmHWM and the Go heap (the fake API and the informers' caches included).
//
// Progress goes to stderr, the result table to stdout.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	goruntime "runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/svcnet/svcnet/bench/internal/objects"
	"github.com/svcnet/svcnet/bench/internal/proc"
	"github.com/svcnet/svcnet/bench/internal/report"
	"github.com/svcnet/svcnet/internal/proxy"
)

type options struct {
	services, endpoints, changes int
	backend, table, fakeAPI      string
	gap, timeout                 time.Duration
	allowHost                    bool
	cpuProfile, memProfile       string
}

func main() {
	var o options
	flag.IntVar(&o.services, "services", 10000, "Services (one TCP port each; every tenth a NodePort)")
	flag.IntVar(&o.endpoints, "endpoints", 10, "endpoints per Service (spread over 100 nodes, this one being node-000)")
	flag.IntVar(&o.changes, "changes", 300, "single endpoint changes to time")
	flag.DurationVar(&o.gap, "gap", 30*time.Millisecond, "pause between two changes (more than the proxy's 10ms minimum sync period, so each is synced alone)")
	flag.StringVar(&o.backend, "backend", "netlink", "netlink or nft (the nft tool through knftables)")
	flag.StringVar(&o.fakeAPI, "fake", "simple", "the in-process API: simple (client-go's NewSimpleClientset) or managed (NewClientset, which runs server-side field management on every write: about 1 MB of garbage and several ms per update, in this process)")
	flag.StringVar(&o.table, "table", "svcnet-bench", "nftables table to use (deleted at the end)")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "limit for the whole run")
	flag.BoolVar(&o.allowHost, "allow-host-netns", false, "run even in the host's network namespace (not recommended)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the cold start to this file")
	flag.StringVar(&o.memProfile, "memprofile", "", "write a heap profile to this file right after the cold start (alloc_space: what was allocated, sampled finely from the proxy's start; inuse_space: what stays)")
	flag.Parse()
	log.SetFlags(log.Lmicroseconds)
	log.SetPrefix("proxybench: ")
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

func run(o options) error {
	if host, err := proc.InParentNetNS(); err != nil || (host && !o.allowHost) {
		return fmt.Errorf("refusing to program nftables in the parent's network namespace (run bench/proxy.sh, or ip netns exec; -allow-host-netns to insist): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()

	log.Printf("building %d Services with %d endpoints each in a fake API (%s) ...", o.services, o.endpoints, o.fakeAPI)
	var client *fake.Clientset
	switch o.fakeAPI {
	case "simple":
		client = fake.NewSimpleClientset() //nolint:staticcheck // deprecated for apply support, which the proxy does not use
	case "managed":
		client = fake.NewClientset()
	default:
		return fmt.Errorf("-fake %q: want simple or managed", o.fakeAPI)
	}
	slicesByName := make([]*discoveryv1.EndpointSlice, o.services)
	for i := range o.services {
		svc, sl := objects.Service(i, o.endpoints, 8080)
		slicesByName[i] = sl
		for _, obj := range []runtime.Object{svc, sl} {
			if err := client.Tracker().Add(obj); err != nil {
				return err
			}
		}
	}

	var before goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&before)

	reports := make(chan proxy.SyncReport, 1024)
	var mu sync.Mutex
	var first *proxy.SyncReport
	cfg := proxy.Config{
		NodeName:    "node-000",
		NodeIPs:     []netip.Addr{netip.MustParseAddr("172.31.0.11")},
		ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"),
		ServiceCIDR: netip.MustParsePrefix("10.96.0.0/12"),
		Table:       o.table,
		Backend:     o.backend,
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		SyncHook: func(r proxy.SyncReport) {
			mu.Lock()
			if first == nil {
				first = &r
			}
			mu.Unlock()
			select {
			case reports <- r:
			default:
			}
		},
	}
	log.Printf("starting the proxy (backend %s, table %s) ...", o.backend, o.table)
	if o.memProfile != "" {
		// Every allocation of the cold start is sampled, not one per 512 KiB.
		goruntime.MemProfileRate = 4096
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	usageBefore := rusage()
	start := time.Now()
	go func() { done <- proxy.Run(runCtx, client, cfg) }()
	defer func() {
		stop()
		<-done
		if out, err := runCmd("nft", "delete", "table", "inet", o.table); err != nil {
			log.Printf("delete table: %v %s", err, out)
		}
	}()

	var cold proxy.SyncReport
	select {
	case cold = <-reports:
	case err := <-done:
		return fmt.Errorf("proxy stopped: %v", err)
	case <-ctx.Done():
		return ctx.Err()
	}
	coldTotal := cold.Done.Sub(start)
	coldUsage := rusage().minus(usageBefore)
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	log.Printf("cold start: %v to the first sync in the kernel (the sync itself %v, %d operations)", coldTotal, cold.Duration, cold.Operations)
	rssCold, hwmCold := memStatus()
	if o.memProfile != "" {
		if err := writeHeapProfile(o.memProfile); err != nil {
			return err
		}
		goruntime.MemProfileRate = 512 << 10
	}
	if cold.Elements < o.services*o.endpoints {
		return fmt.Errorf("the first sync holds %d elements, fewer than the %d endpoints: it did not see every object", cold.Elements, o.services*o.endpoints)
	}

	// One endpoint change at a time.
	r := rand.New(rand.NewPCG(1, 2))
	var lat, syncDur []time.Duration
	var ops []int
	missing := 0
	for c := range o.changes {
		i := r.IntN(o.services)
		sl := slicesByName[i].DeepCopy()
		if len(sl.Endpoints) == o.endpoints {
			sl.Endpoints = slices.Delete(sl.Endpoints, c%o.endpoints, c%o.endpoints+1)
		} else {
			_, sl = objects.Service(i, o.endpoints, 8080)
		}
		trigger := time.Now()
		sl.Annotations = map[string]string{corev1.EndpointsLastChangeTriggerTime: trigger.UTC().Format(time.RFC3339Nano)}
		if _, err := client.DiscoveryV1().EndpointSlices(sl.Namespace).Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
			return err
		}
		slicesByName[i] = sl
		got := false
		deadline := time.After(5 * time.Second)
		for !got {
			select {
			case rep := <-reports:
				for _, t := range rep.Triggers {
					if t.Equal(trigger.Truncate(time.Nanosecond)) || t.Sub(trigger).Abs() < time.Microsecond {
						lat = append(lat, rep.Done.Sub(trigger))
						syncDur = append(syncDur, rep.Duration)
						ops = append(ops, rep.Operations)
						got = true
					}
				}
			case <-deadline:
				missing++
				got = true
			}
		}
		time.Sleep(o.gap)
	}
	if missing > 0 {
		log.Printf("%d changes were not seen applied within 5s", missing)
	}

	// A change the proxy ignores.
	noop := slicesByName[0].DeepCopy()
	noop.Labels["unrelated"] = "x"
	if _, err := client.DiscoveryV1().EndpointSlices(noop.Namespace).Update(ctx, noop, metav1.UpdateOptions{}); err != nil {
		return err
	}
	noopOps := 0
	select {
	case rep := <-reports:
		noopOps = rep.Operations
	case <-time.After(500 * time.Millisecond):
	}
	rss, hwm := memStatus()
	var ms goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&ms)
	proxyHeap := int64(ms.HeapInuse) - int64(before.HeapInuse)

	var t report.Table
	t.Row(fmt.Sprintf("cold start, %d Services / %d endpoints: Run -> first sync in the kernel", o.services, o.services*o.endpoints),
		coldTotal.Round(time.Millisecond).String(), "< 2s", report.Verdict(coldTotal < 2*time.Second))
	t.Row("  the full sync itself (build, diff, encode, kernel)", cold.Duration.Round(time.Millisecond).String(), "-", "")
	t.Row("  CPU time of the process meanwhile: user / system; page faults (minor)",
		fmt.Sprintf("%v / %v; %d", coldUsage.user.Round(time.Millisecond), coldUsage.sys.Round(time.Millisecond), coldUsage.minflt), "-", "")
	t.Row("  table after it: chains / rules / elements; operations", fmt.Sprintf("%d / %d / %d; %d", cold.Chains, cold.Rules, cold.Elements, cold.Operations), "-", "")
	if len(lat) > 0 {
		p99 := pct(lat, 99)
		t.Row(fmt.Sprintf("one endpoint change -> in the kernel, p50 / p99 / max (%d changes)", len(lat)),
			fmt.Sprintf("%v / %v / %v", pct(lat, 50).Round(10*time.Microsecond), p99.Round(10*time.Microsecond), slices.Max(lat).Round(10*time.Microsecond)),
			"p99 < 50ms", report.Verdict(p99 < 50*time.Millisecond))
		t.Row("  the sync alone, p50 / p99", fmt.Sprintf("%v / %v", pct(syncDur, 50).Round(10*time.Microsecond), pct(syncDur, 99).Round(10*time.Microsecond)), "-", "")
		t.Row("  the slowest changes (number in the sequence: latency, the sync alone)", slowest(lat, syncDur, 4), "-", "")
		slices.Sort(ops)
		t.Row("  kernel operations per change, min / median / max", fmt.Sprintf("%d / %d / %d", ops[0], ops[len(ops)/2], ops[len(ops)-1]), "a handful", "")
	}
	t.Row("change the proxy ignores: kernel operations", fmt.Sprint(noopOps), "0", report.Verdict(noopOps == 0))
	t.Row("memory after the cold start: VmRSS / VmHWM", rssCold+" / "+hwmCold, "-", "")
	t.Row("memory at the end: VmRSS / VmHWM (this process: fake API too)", rss+" / "+hwm, "-", "")
	t.Row("Go heap in use after GC: the fake API alone / with the proxy", fmt.Sprintf("%d MB / %d MB", before.HeapInuse>>20, ms.HeapInuse>>20), "-", "")
	t.Row("  the proxy's part (informer caches, model, table state)", fmt.Sprintf("%d MB", proxyHeap>>20), "< 256 MB", report.Verdict(proxyHeap < 256<<20))
	t.Print(os.Stdout)
	return nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	// The profile shows allocations as of the last completed GC.
	goruntime.GC()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}

// usage is the CPU time and page faults of this process so far.
type usage struct {
	user, sys time.Duration
	minflt    int64
}

func rusage() usage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return usage{}
	}
	return usage{user: time.Duration(ru.Utime.Nano()), sys: time.Duration(ru.Stime.Nano()), minflt: ru.Minflt}
}

func (u usage) minus(o usage) usage {
	return usage{user: u.user - o.user, sys: u.sys - o.sys, minflt: u.minflt - o.minflt}
}

func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// slowest lists the n largest latencies with their position in the sequence: whether the tail is
// the first changes after the cold start or spread over the run.
func slowest(lat, syncDur []time.Duration, n int) string {
	idx := make([]int, len(lat))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(lat[b], lat[a]) })
	var parts []string
	for _, i := range idx[:min(n, len(idx))] {
		parts = append(parts, fmt.Sprintf("#%d: %v, %v", i+1, lat[i].Round(100*time.Microsecond), syncDur[i].Round(100*time.Microsecond)))
	}
	return strings.Join(parts, "; ")
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

// memStatus reads this process's VmRSS and VmHWM, in whole MB.
func memStatus() (rss, hwm string) {
	kb, err := proc.Status(os.Getpid())
	if err != nil {
		return "?", "?"
	}
	return fmt.Sprintf("%d MB", kb["VmRSS"]/1024), fmt.Sprintf("%d MB", kb["VmHWM"]/1024)
}
