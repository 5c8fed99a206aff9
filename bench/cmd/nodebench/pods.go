package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/svcnet/svcnet/bench/internal/proc"
	"github.com/svcnet/svcnet/bench/internal/report"
)

const (
	namespace = "nodebench"
	image     = "registry.k8s.io/e2e-test-images/agnhost:2.53"
	firstNode = "node-1"
)

// bench is the state the pod phases share: one cluster, its clients and the pod tracker.
type bench struct {
	o       options
	c       *cluster
	cs      kubernetes.Interface
	clients []kubernetes.Interface // for the batches: several connections
	tr      *tracker
	t       *report.Table
	agents  []int // PID of each node's agent, node-1 first
}

// podPhases starts one cluster and runs, in order: pods one by one (create, then delete), a burst of
// pods, and many pods on node-1 with the agent's memory. A phase that fails is reported and the next
// one still runs (unless the run was interrupted); the cluster is taken down on every path.
func podPhases(ctx context.Context, o options, bin, root string, t *report.Table) (err error) {
	c, err := startCluster(bin, root, o.nodes)
	if err != nil {
		return err
	}
	defer func() {
		if derr := c.down(o.logs); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	r, err := c.waitReady(ctx, o.startTimeout)
	if err != nil {
		return fmt.Errorf("cluster for the pod phases (%s): %w", c.name, err)
	}
	log.Printf("pod phases: cluster %s (pid %d, data dir %s) ready after %s", c.name, c.up.Pid(), c.data, report.Dur(r.At.Sub(c.up.Started)))
	cfg, err := c.restConfig()
	if err != nil {
		return err
	}
	b := &bench{o: o, c: c, t: t}
	if b.cs, err = newClient(cfg); err != nil {
		return err
	}
	for range 8 {
		cl, err := newClient(cfg)
		if err != nil {
			return err
		}
		b.clients = append(b.clients, cl)
	}
	if _, err := b.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", namespace, err)
	}
	if b.tr, err = newTracker(ctx, b.cs, namespace); err != nil {
		return err
	}
	defer b.tr.close()

	for k := 1; k <= o.nodes; k++ {
		node := fmt.Sprintf("node-%d", k)
		pid, err := findAgent(c.nodeNetns(node))
		if err != nil {
			return fmt.Errorf("the agent of %s: %w", node, err)
		}
		b.agents = append(b.agents, pid)
	}
	agent := b.agents[0]
	if st, err := proc.Status(agent); err == nil {
		t.Add(fmt.Sprintf("%s agent (pid %d) with no pods: VmRSS / VmHWM (anonymous / file-backed)", firstNode, agent),
			fmt.Sprintf("%s / %s (%s / %s)", mb(st["VmRSS"]), mb(st["VmHWM"]), mb(st["RssAnon"]), mb(st["RssFile"])), "", true)
	}

	var errs []error
	phase := func(name string, f func(context.Context) error) {
		if ctx.Err() != nil {
			return
		}
		if err := f(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if o.pods > 0 {
		var created []string
		phase("pods one by one", func(ctx context.Context) error {
			var err error
			created, err = b.oneByOne(ctx)
			return err
		})
		phase("pod deletion one by one", func(ctx context.Context) error { return b.deleteOneByOne(ctx, created) })
		if o.burst {
			phase("burst of pods", func(ctx context.Context) error { return b.burst(ctx) })
		}
	}
	if o.onNode > 0 {
		phase(fmt.Sprintf("%d pods on %s", o.onNode, firstNode), func(ctx context.Context) error { return b.onNode(ctx, agent) })
	}
	if st, err := proc.Status(c.up.Pid()); err == nil {
		t.Add("svcnet up (etcd, API server, controllers) at the end: VmRSS / VmHWM", mb(st["VmRSS"])+" / "+mb(st["VmHWM"]), "", true)
	}
	return errors.Join(errs...)
}

// agnhostPod is a single-container agnhost netexec pod, without probes; selector "" leaves the choice
// of node to the scheduler.
func agnhostPod(name, node string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app": "nodebench"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:  "agnhost",
			Image: image,
			Args:  []string{"netexec", "--http-port=8080"},
			Ports: []corev1.ContainerPort{{ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
		}}},
	}
	if node != "" {
		p.Spec.NodeSelector = map[string]string{corev1.LabelHostname: node}
	}
	return p
}

// oneByOne creates o.pods pods, each after the previous one is Ready, and times each from just
// before Create to the informer showing it Ready. It returns the names it created.
func (b *bench) oneByOne(ctx context.Context) ([]string, error) {
	var created []string
	var ready, bound, run, calls []time.Duration
	perNode := map[string]int{}
	base, baseErr := scrape(ctx, b.cs)
	for i := range b.o.pods {
		name := fmt.Sprintf("seq-%03d", i)
		r := b.tr.expect(name)
		t0 := time.Now()
		_, err := b.cs.CoreV1().Pods(namespace).Create(ctx, agnhostPod(name, ""), metav1.CreateOptions{})
		calls = append(calls, time.Since(t0))
		if err != nil {
			return created, fmt.Errorf("create %s: %w", name, err)
		}
		created = append(created, name)
		if err := wait(ctx, r.readyCh, b.o.podTimeout); err != nil {
			return created, b.notReady(ctx, name, err)
		}
		ready = append(ready, r.ready.Sub(t0))
		bound = append(bound, r.bound.Sub(t0))
		run = append(run, r.ready.Sub(r.bound))
		perNode[r.node]++
	}
	log.Printf("pods one by one: %d Ready, create -> Ready %s", len(ready), report.P50P99Max(ready))
	p50 := report.Percentile(report.SortedCopy(ready), 0.5)
	b.t.Add(fmt.Sprintf("pod create -> Ready, one at a time, %d pods, no probes: p50 / p99 / max", len(ready)), report.P50P99Max(ready), "p50 < 200ms", p50 < 200*time.Millisecond)
	b.t.Add("  create -> bound to a node (scheduler)", report.P50P99Max(bound), "", true)
	b.t.Add("  bound -> Ready (agent: sandbox, process, status)", report.P50P99Max(run), "", true)
	b.t.Add("  Create call", report.P50P99Max(calls), "", true)
	b.t.Add("  pods per node", describeNodes(perNode), "", true)
	b.addServerRows(ctx, base, baseErr)
	return created, nil
}

// deleteOneByOne deletes the pods one after another (default grace period: the agent sends SIGTERM
// and agnhost exits) and times each from just before Delete to the informer's delete event.
func (b *bench) deleteOneByOne(ctx context.Context, names []string) error {
	var gone, calls []time.Duration
	for _, name := range names {
		r := b.tr.get(name)
		t0 := time.Now()
		err := b.cs.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{})
		calls = append(calls, time.Since(t0))
		if err != nil {
			return fmt.Errorf("delete %s: %w", name, err)
		}
		if err := wait(ctx, r.goneCh, b.o.podTimeout); err != nil {
			return b.notGone(ctx, name, err)
		}
		gone = append(gone, r.gone.Sub(t0))
	}
	log.Printf("pod deletion one by one: %d gone, delete -> gone %s", len(gone), report.P50P99Max(gone))
	b.t.Add(fmt.Sprintf("pod delete -> gone (graceful), one at a time, %d pods: p50 / p99 / max", len(gone)), report.P50P99Max(gone), "", true)
	b.t.Add("  Delete call", report.P50P99Max(calls), "", true)
	return nil
}

// burst creates o.pods pods all at once, then deletes them all at once.
func (b *bench) burst(ctx context.Context) error {
	names := make([]string, b.o.pods)
	for i := range names {
		names[i] = fmt.Sprintf("burst-%03d", i)
	}
	base, baseErr := scrape(ctx, b.cs)
	cpu := proc.StartCPU(append([]int{b.c.up.Pid()}, b.agents...)...)
	res, err := b.createAll(ctx, names, "")
	if err != nil {
		return err
	}
	used, wall := cpu.Used()
	var agentsCPU, podCPU time.Duration
	for i, pid := range b.agents {
		agentsCPU += used[i+1]
		podCPU += proc.CPUOf(descendants(pid))
	}
	b.t.Add(fmt.Sprintf("burst: %d pods created at once: first Create -> all Ready", len(names)), report.Dur(res.all), "", true)
	b.t.Add("  each pod's create -> Ready", report.P50P99Max(res.each), "", true)
	b.t.Add("  each pod's create -> bound to a node", report.P50P99Max(res.bound), "", true)
	b.t.Add("  pods per node", describeNodes(res.perNode), "", true)
	b.t.Add("  CPU meanwhile: all agents / svcnet up / the pods' processes",
		report.CPUShare([]time.Duration{agentsCPU, used[0], podCPU}, wall, runtime.NumCPU()), "", true)
	b.addServerRows(ctx, base, baseErr)
	all, each, err := b.deleteAll(ctx, names)
	if err != nil {
		return err
	}
	b.t.Add(fmt.Sprintf("burst: %d pods deleted at once: first Delete -> all gone", len(names)), report.Dur(all), "", true)
	b.t.Add("  each pod's delete -> gone", report.P50P99Max(each), "", true)
	return nil
}

// onNode puts o.onNode pods on node-1 at once, times them to all Running and Ready, and reads the
// memory of that node's agent and of its pods' processes.
func (b *bench) onNode(ctx context.Context, agent int) error {
	names := make([]string, b.o.onNode)
	for i := range names {
		names[i] = fmt.Sprintf("n1-%03d", i)
	}
	base, baseErr := scrape(ctx, b.cs)
	cpu := proc.StartCPU(agent, b.c.up.Pid(), os.Getpid())
	res, err := b.createAll(ctx, names, firstNode)
	if err != nil {
		return err
	}
	used, wall := cpu.Used()
	podCPU := proc.CPUOf(descendants(agent))
	if n := res.perNode[firstNode]; n != len(names) {
		return fmt.Errorf("only %d of %d pods with nodeSelector %s=%s landed there: %s", n, len(names), corev1.LabelHostname, firstNode, describeNodes(res.perNode))
	}
	b.t.Add(fmt.Sprintf("%d pods on %s, created at once: first Create -> all Running and Ready", len(names), firstNode), report.Dur(res.all), "all Ready", true)
	b.t.Add("  each pod's create -> Ready", report.P50P99Max(res.each), "", true)
	b.t.Add("  each pod's create -> bound to a node", report.P50P99Max(res.bound), "", true)
	b.t.Add("  CPU meanwhile: agent / svcnet up / nodebench / the pods' processes",
		report.CPUShare(append(used, podCPU), wall, runtime.NumCPU()), "", true)
	b.addServerRows(ctx, base, baseErr)

	now, err := proc.Status(agent)
	if err != nil {
		return fmt.Errorf("the agent of %s (pid %d) is gone: %w (it may have been restarted; see %s)", firstNode, agent, err, b.c.agentLog(firstNode))
	}
	pods := memOf(descendants(agent))
	log.Printf("%s agent with %d pods: VmRSS %s (anon %s, file %s); %d pod processes, RSS %s, PSS %s",
		firstNode, len(names), mb(now["VmRSS"]), mb(now["RssAnon"]), mb(now["RssFile"]), pods.procs, mb(pods.rss), mb(pods.pss))
	if b.o.settle > 0 {
		idleBase, idleErr := scrape(ctx, b.cs)
		idleCPU := proc.StartCPU(agent, b.c.up.Pid())
		select {
		case <-time.After(b.o.settle):
		case <-ctx.Done():
			return ctx.Err()
		}
		used, wall := idleCPU.Used()
		if idle, err := scrape(ctx, b.cs); err == nil && idleErr == nil {
			b.t.Add(fmt.Sprintf("  while all %d sat Ready for %s (nothing changed): pod requests to the API server", len(names), report.Dur(wall)),
				describe(idle.requests, idleBase.requests), "", true)
			b.t.Add("  same window: CPU of the agent / svcnet up", fmt.Sprintf("%s / %s", report.Dur(used[0]), report.Dur(used[1])), "", true)
		}
	}
	later, err := proc.Status(agent)
	if err != nil {
		return fmt.Errorf("the agent of %s (pid %d) is gone: %w", firstNode, agent, err)
	}
	worst := max(now["VmRSS"], later["VmRSS"])
	b.t.Add(fmt.Sprintf("%s agent memory with %d pods: VmRSS at all Ready / %s later (VmHWM)", firstNode, len(names), report.Dur(b.o.settle)),
		fmt.Sprintf("%s / %s (%s)", mb(now["VmRSS"]), mb(later["VmRSS"]), mb(later["VmHWM"])), "< 50 MB", worst < 50*1024)
	b.t.Add("  agent VmRSS split: anonymous / file-backed (the svcnet binary's pages)", mb(later["RssAnon"])+" / "+mb(later["RssFile"]), "", true)
	if r, err := proc.KBFields(fmt.Sprintf("/proc/%d/smaps_rollup", agent)); err == nil {
		b.t.Add("  agent PSS (shared pages split among their users): total / anonymous / file-backed", mb(r["Pss"])+" / "+mb(r["Pss_Anon"])+" / "+mb(r["Pss_File"]), "", true)
	}
	pods = memOf(descendants(agent))
	b.t.Add("  pod processes under the agent: count, total VmRSS, total PSS", fmt.Sprintf("%d, %s, %s", pods.procs, mb(pods.rss), mb(pods.pss)), "", true)

	all, each, err := b.deleteAll(ctx, names)
	if err != nil {
		return err
	}
	b.t.Add(fmt.Sprintf("%d pods on %s deleted at once: first Delete -> all gone", len(names), firstNode), report.Dur(all), "", true)
	b.t.Add("  each pod's delete -> gone", report.P50P99Max(each), "", true)
	if st, err := proc.Status(agent); err == nil {
		b.t.Add(fmt.Sprintf("  %s agent after they are gone: VmRSS / VmHWM", firstNode), mb(st["VmRSS"])+" / "+mb(st["VmHWM"]), "", true)
	}
	return nil
}

type batch struct {
	all     time.Duration   // first Create -> last Ready
	each    []time.Duration // each pod's own Create -> Ready
	bound   []time.Duration // each pod's own Create -> bound to a node
	perNode map[string]int
}

// createAll creates the pods all at once (one goroutine each, over several connections) and waits
// until every one is Ready.
func (b *bench) createAll(ctx context.Context, names []string, node string) (batch, error) {
	recs := make([]*podRecord, len(names))
	starts := make([]time.Time, len(names))
	for i, n := range names {
		recs[i] = b.tr.expect(n)
	}
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	begin := time.Now()
	for i, n := range names {
		cl := b.clients[i%len(b.clients)]
		wg.Go(func() {
			starts[i] = time.Now()
			_, errs[i] = cl.CoreV1().Pods(namespace).Create(ctx, agnhostPod(n, node), metav1.CreateOptions{})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return batch{}, fmt.Errorf("creates: %w", err)
	}
	deadline := begin.Add(b.o.podTimeout)
	res := batch{perNode: map[string]int{}}
	var last time.Time
	for i, r := range recs {
		if err := wait(ctx, r.readyCh, time.Until(deadline)); err != nil {
			notReady := 0
			for _, r := range recs {
				if !b.tr.isReady(r) {
					notReady++
				}
			}
			return batch{}, errors.Join(fmt.Errorf("%d of %d pods not Ready %s after the first Create", notReady, len(names), b.o.podTimeout),
				b.notReady(ctx, names[i], err))
		}
		res.each = append(res.each, r.ready.Sub(starts[i]))
		res.bound = append(res.bound, r.bound.Sub(starts[i]))
		res.perNode[r.node]++
		if r.ready.After(last) {
			last = r.ready
		}
	}
	res.all = last.Sub(begin)
	log.Printf("%d pods created at once: all Ready after %s; each %s; %s", len(names), report.Dur(res.all), report.P50P99Max(res.each), describeNodes(res.perNode))
	return res, nil
}

// deleteAll deletes the pods all at once and waits until every one is gone.
func (b *bench) deleteAll(ctx context.Context, names []string) (time.Duration, []time.Duration, error) {
	recs := make([]*podRecord, len(names))
	starts := make([]time.Time, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	begin := time.Now()
	for i, n := range names {
		recs[i] = b.tr.get(n)
		cl := b.clients[i%len(b.clients)]
		wg.Go(func() {
			starts[i] = time.Now()
			errs[i] = cl.CoreV1().Pods(namespace).Delete(ctx, n, metav1.DeleteOptions{})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, nil, fmt.Errorf("deletes: %w", err)
	}
	deadline := begin.Add(b.o.podTimeout)
	var each []time.Duration
	var last time.Time
	for i, r := range recs {
		if err := wait(ctx, r.goneCh, time.Until(deadline)); err != nil {
			return 0, nil, b.notGone(ctx, names[i], err)
		}
		each = append(each, r.gone.Sub(starts[i]))
		if r.gone.After(last) {
			last = r.gone
		}
	}
	log.Printf("%d pods deleted at once: all gone after %s; each %s", len(names), report.Dur(last.Sub(begin)), report.P50P99Max(each))
	return last.Sub(begin), each, nil
}

// notReady explains a pod that did not become Ready: its status and the end of its node's agent log.
func (b *bench) notReady(ctx context.Context, name string, cause error) error {
	return fmt.Errorf("pod %s not Ready: %w\n%s", name, cause, b.describe(ctx, name))
}

func (b *bench) notGone(ctx context.Context, name string, cause error) error {
	return fmt.Errorf("pod %s not gone after its Delete: %w\n%s", name, cause, b.describe(ctx, name))
}

func (b *bench) describe(ctx context.Context, name string) string {
	if ctx.Err() != nil {
		return "  (interrupted)"
	}
	var sb strings.Builder
	p, err := b.cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		fmt.Fprintf(&sb, "  get pod: %v\n", err)
		return sb.String()
	}
	fmt.Fprintf(&sb, "  node %q, phase %s, podIP %q, deletionTimestamp %v, reason %q, message %q\n",
		p.Spec.NodeName, p.Status.Phase, p.Status.PodIP, p.DeletionTimestamp, p.Status.Reason, p.Status.Message)
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&sb, "  condition %s=%s reason %q message %q\n", c.Type, c.Status, c.Reason, c.Message)
	}
	for _, c := range p.Status.ContainerStatuses {
		fmt.Fprintf(&sb, "  container %s ready=%v restarts=%d state %+v\n", c.Name, c.Ready, c.RestartCount, c.State)
	}
	if p.Spec.NodeName != "" {
		fmt.Fprintf(&sb, "  %s ends:\n%s\n", b.c.agentLog(p.Spec.NodeName), proc.Tail(b.c.agentLog(p.Spec.NodeName), 20))
	}
	return sb.String()
}

// describeNodes renders pods per node, e.g. "node-1: 17, node-2: 17, node-3: 16".
func describeNodes(perNode map[string]int) string {
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(perNode)) {
		parts = append(parts, fmt.Sprintf("%s: %d", n, perNode[n]))
	}
	return strings.Join(parts, ", ")
}
