package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/svcnet/svcnet/bench/internal/controlplane"
	"github.com/svcnet/svcnet/bench/internal/proc"
	"github.com/svcnet/svcnet/bench/internal/report"
)

const (
	createNS = "apibench"       // namespace of the create phase
	watchNS  = "apibench-watch" // namespace of the watch phase
	seqKey   = "apibench.svcnet.io/seq"
	sentKey  = "apibench.svcnet.io/sent" // writer's wall clock in Unix ns, set just before the request
)

// coldStart times runs of `svcnet up`, each with a fresh data dir: exec to the ready line on stdout and
// exec to the first successful authenticated GET of the default namespace.
func coldStart(ctx context.Context, bin, root string, runs int, t *report.Table) error {
	var toReady, toGET []time.Duration
	for i := range runs {
		dir := filepath.Join(root, fmt.Sprintf("cold-%d", i))
		s, err := startUp(bin, dir)
		if err != nil {
			return err
		}
		_, got, err := controlplane.WaitAPI(ctx, s, time.Minute)
		var readyAt time.Time
		if err == nil {
			select {
			case m := <-s.Stdout:
				readyAt = m.At
			case <-time.After(10 * time.Second):
				err = fmt.Errorf("GET succeeded but no line containing ready on stdout:\n%s", s.LogTail())
			}
		}
		s.Stop(stopLimit)
		os.RemoveAll(dir)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		toReady = append(toReady, readyAt.Sub(s.Started))
		toGET = append(toGET, got.Sub(s.Started))
		log.Printf("cold start %d/%d: ready line %s, first GET %s", i+1, runs, report.Dur(toReady[i]), report.Dur(toGET[i]))
	}
	n := fmt.Sprintf(" (median / max of %d)", runs)
	t.Add("cold start: exec -> first authenticated GET"+n, report.MedianMax(toGET), "< 2s (max)", slices.Max(toGET) < 2*time.Second)
	t.Add("cold start: exec -> ready line"+n, report.MedianMax(toReady), "", true)
	return nil
}

// creates has o.writers clients, each on its own connection, create o.services Services as fast as the
// server answers, then checks that every ClusterIP and NodePort in the cluster is distinct.
// It also reports the CPU time the server processes and the benchmark itself used meanwhile.
func creates(ctx context.Context, o options, cfg *rest.Config, l *loadServer, t *report.Table) error {
	admin, err := controlplane.NewClient(cfg, 0)
	if err != nil {
		return err
	}
	if err := ensureNamespace(ctx, admin, createNS); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var next, failed atomic.Int64
	var firstErr error
	var once sync.Once
	lat := make([][]time.Duration, o.writers)
	var wg sync.WaitGroup
	log.Printf("creating %d Services with %d writers", o.services, o.writers)
	cpu := proc.StartCPU(append(l.pids(), os.Getpid())...)
	begin := time.Now()
	for w := range o.writers {
		cs, err := controlplane.NewClient(cfg, 0)
		if err != nil {
			return err
		}
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= o.services {
					return
				}
				t0 := time.Now()
				_, err := cs.CoreV1().Services(createNS).Create(ctx, benchService(i, o.nodePortEvery), metav1.CreateOptions{})
				if err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err })
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	wall := time.Since(begin)
	cpuUsed := cpu.Since(wall, runtime.NumCPU())
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	all = report.SortedCopy(all)
	log.Printf("created %d Services in %s, %d failed", len(all), report.Dur(wall), failed.Load())
	t.Add(fmt.Sprintf("%d Service creates, %d writers: wall time", o.services, o.writers),
		fmt.Sprintf("%s (%.0f creates/s)", report.Dur(wall), float64(len(all))/wall.Seconds()), "< 10s", wall < 10*time.Second && failed.Load() == 0)
	t.Add("  create latency p50 / p99 / max", report.SortedP50P99Max(all), "", true)
	if cpuUsed != "" {
		t.Add("  CPU used meanwhile: "+l.cpuLabel(), cpuUsed, "", true)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("stopped after %d creates: %w", len(all), err)
	}
	if failed.Load() > 0 {
		return fmt.Errorf("%d of %d creates failed, first: %w", failed.Load(), o.services, firstErr)
	}
	summary, err := verifyAllocations(ctx, admin, o)
	t.Add("  ClusterIPs and NodePorts distinct", summary, "all distinct", err == nil)
	return err
}

// benchService is the i-th Service: a selector, one port, every k-th one of type NodePort.
func benchService(i, nodePortEvery int) *corev1.Service {
	typ := corev1.ServiceTypeClusterIP
	if nodePortEvery > 0 && i%nodePortEvery == 0 {
		typ = corev1.ServiceTypeNodePort
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%05d", i), Labels: map[string]string{"app.kubernetes.io/part-of": "apibench"}},
		Spec: corev1.ServiceSpec{
			Type:     typ,
			Selector: map[string]string{"app": fmt.Sprintf("app-%05d", i)},
			Ports:    []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
}

// verifyAllocations lists every Service in the cluster, in pages, and checks that ClusterIPs and
// NodePorts are all distinct and that each benchmark Service got what its type asks for.
func verifyAllocations(ctx context.Context, cs kubernetes.Interface, o options) (string, error) {
	ips, ports := map[string]string{}, map[int32]string{}
	var errs []error
	bench, nodePorts := 0, 0
	opts := metav1.ListOptions{Limit: 1000}
	for page := 0; page == 0 || opts.Continue != ""; page++ {
		if page > o.services/1000+100 {
			return "", errors.New("list did not end")
		}
		l, err := cs.CoreV1().Services("").List(ctx, opts)
		if err != nil {
			return "", fmt.Errorf("list services: %w", err)
		}
		for _, s := range l.Items {
			key := s.Namespace + "/" + s.Name
			for _, ip := range s.Spec.ClusterIPs {
				if prev, dup := ips[ip]; dup && ip != corev1.ClusterIPNone {
					errs = append(errs, fmt.Errorf("ClusterIP %s of %s already belongs to %s", ip, key, prev))
				}
				ips[ip] = key
			}
			for _, p := range s.Spec.Ports {
				if p.NodePort == 0 {
					continue
				}
				if prev, dup := ports[p.NodePort]; dup {
					errs = append(errs, fmt.Errorf("NodePort %d of %s already belongs to %s", p.NodePort, key, prev))
				}
				ports[p.NodePort] = key
			}
			if s.Namespace != createNS {
				continue
			}
			bench++
			if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == corev1.ClusterIPNone {
				errs = append(errs, fmt.Errorf("%s has no ClusterIP", key))
			}
			if s.Spec.Type == corev1.ServiceTypeNodePort {
				nodePorts++
				if s.Spec.Ports[0].NodePort == 0 {
					errs = append(errs, fmt.Errorf("NodePort Service %s has no nodePort", key))
				}
			}
		}
		opts.Continue = l.Continue
	}
	if bench != o.services {
		errs = append(errs, fmt.Errorf("listed %d benchmark Services, want %d", bench, o.services))
	}
	summary := fmt.Sprintf("%d ClusterIPs, %d NodePorts (%d Services listed)", len(ips), len(ports), bench)
	if len(errs) > 0 {
		summary += fmt.Sprintf(": %d problems", len(errs))
		errs = errs[:min(len(errs), 10)]
	}
	return summary, errors.Join(errs...)
}

// memory reads the server's resident set (VmRSS) and its peak (VmHWM).
func memory(pid, services int, t *report.Table) error {
	kb, err := proc.Status(pid)
	if err != nil {
		return err
	}
	mb := func(k string) float64 { return float64(kb[k]) / 1024 }
	log.Printf("server memory: VmRSS %.0f MB (anon %.0f, file %.0f), VmHWM %.0f MB", mb("VmRSS"), mb("RssAnon"), mb("RssFile"), mb("VmHWM"))
	t.Add(fmt.Sprintf("server memory with %d Services: VmRSS / VmHWM", services),
		fmt.Sprintf("%.0f MB / %.0f MB", mb("VmRSS"), mb("VmHWM")), "< 300 MB", mb("VmRSS") < 300)
	return nil
}

// watchFanout opens o.watchers watch streams on one namespace, spread over o.watchClients clients, then
// writes o.events Services at o.rate (half creates, then updates of those) and measures, for every
// watcher and event, the time from the writer's timestamp to the watcher receiving the event.
func watchFanout(ctx context.Context, o options, cfg *rest.Config, t *report.Table) error {
	admin, err := controlplane.NewClient(cfg, 0)
	if err != nil {
		return err
	}
	if err := ensureNamespace(ctx, admin, watchNS); err != nil {
		return err
	}
	l, err := admin.CoreV1().Services(watchNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(float64(o.events)/o.rate*float64(time.Second))+time.Minute)
	defer cancel()
	clients := make([]kubernetes.Interface, o.watchClients)
	for i := range clients {
		if clients[i], err = controlplane.NewClient(cfg, 0); err != nil {
			return err
		}
	}
	// Every watch starts at the list's resourceVersion, so none can miss an event.
	watches := make([]watch.Interface, 0, o.watchers)
	defer func() {
		for _, w := range watches {
			w.Stop()
		}
	}()
	for i := range o.watchers {
		w, err := clients[i%len(clients)].CoreV1().Services(watchNS).Watch(ctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion})
		if err != nil {
			return fmt.Errorf("watch %d: %w", i, err)
		}
		watches = append(watches, w)
	}
	log.Printf("%d watches open over %d clients; writing %d events at %.0f/s", o.watchers, o.watchClients, o.events, o.rate)

	type delivery struct {
		seq      int
		sent, at time.Time
	}
	got := make([][]delivery, o.watchers)
	var wg sync.WaitGroup
	for i, w := range watches {
		wg.Go(func() {
			seen := make([]bool, o.events)
			for len(got[i]) < o.events {
				select {
				case ev, ok := <-w.ResultChan():
					at := time.Now()
					if !ok {
						return
					}
					s, isSvc := ev.Object.(*corev1.Service)
					if !isSvc {
						continue // an error event; the deliveries it costs show as missing
					}
					seq, err1 := strconv.Atoi(s.Annotations[seqKey])
					sent, err2 := strconv.ParseInt(s.Annotations[sentKey], 10, 64)
					if err1 != nil || err2 != nil || seq < 0 || seq >= o.events || seen[seq] {
						continue
					}
					seen[seq] = true
					got[i] = append(got[i], delivery{seq, time.Unix(0, sent), at})
				case <-ctx.Done():
					return
				}
			}
		})
	}

	returned, werr := writeEvents(ctx, admin, o)
	if werr != nil {
		cancel()
	}
	wg.Wait()
	if werr != nil {
		return werr
	}
	var fromSent, fromReturn []time.Duration
	for _, ds := range got {
		for _, d := range ds {
			fromSent = append(fromSent, d.at.Sub(d.sent))
			fromReturn = append(fromReturn, d.at.Sub(returned[d.seq]))
		}
	}
	fromSent, fromReturn = report.SortedCopy(fromSent), report.SortedCopy(fromReturn)
	want := o.watchers * o.events
	t.Add(fmt.Sprintf("watch fan-out %dx%d: write start -> delivery p50 / p99 / max", o.watchers, o.events),
		report.SortedP50P99Max(fromSent), "p99 < 50ms", report.Percentile(fromSent, 0.99) < 50*time.Millisecond && len(fromSent) == want)
	t.Add("  same, from the write's return (< 0: event before response)", report.SortedP50P99Max(fromReturn), "", true)
	t.Add("  deliveries", fmt.Sprintf("%d of %d", len(fromSent), want), "all", len(fromSent) == want)
	log.Printf("watch fan-out: %d of %d deliveries", len(fromSent), want)
	if len(fromSent) != want {
		return fmt.Errorf("%d of %d watch deliveries missing", want-len(fromSent), want)
	}
	return nil
}

// writeEvents creates o.events/2 Services, then patches them, one write per tick at o.rate, each
// stamped with its sequence number and the time just before the request. It returns when each write
// returned.
func writeEvents(ctx context.Context, cs kubernetes.Interface, o options) ([]time.Time, error) {
	returned := make([]time.Time, o.events)
	creates := (o.events + 1) / 2
	tick := time.NewTicker(time.Duration(float64(time.Second) / o.rate))
	defer tick.Stop()
	for seq := range o.events {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		sent := strconv.FormatInt(time.Now().UnixNano(), 10)
		var err error
		if seq < creates {
			s := benchService(seq, 0)
			s.Name = fmt.Sprintf("w-%04d", seq)
			s.Annotations = map[string]string{seqKey: strconv.Itoa(seq), sentKey: sent}
			_, err = cs.CoreV1().Services(watchNS).Create(ctx, s, metav1.CreateOptions{})
		} else {
			patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q,%q:%q}}}`, seqKey, strconv.Itoa(seq), sentKey, sent)
			_, err = cs.CoreV1().Services(watchNS).Patch(ctx, fmt.Sprintf("w-%04d", seq-creates), types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		}
		returned[seq] = time.Now()
		if err != nil {
			return nil, fmt.Errorf("write %d: %w", seq, err)
		}
	}
	return returned, nil
}

func ensureNamespace(ctx context.Context, cs kubernetes.Interface, name string) error {
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}
