package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/svcnet/svcnet/bench/internal/proc"
	"github.com/svcnet/svcnet/bench/internal/report"
)

// inNetNS returns a command running this binary with args in the named network namespace, killed
// when this process dies.
func inNetNS(ctx context.Context, ns string, args ...string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, self}, args...)...)
	cmd.SysProcAttr = proc.SysProcAttr(syscall.SIGKILL)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Stderr = os.Stderr
	return cmd, nil
}

// world is one set of namespaces: client pod -- node -- backend pod.
type world struct {
	name                  string
	services              int // Services in the node's proxy; 0: no proxy, no table
	node, client, backend string
}

// caseResult is one run of one case.
type caseResult struct {
	clientResult
	ctCount int      // nf_conntrack_count in the node at the end of the run
	ctDelta ctCounts // the node's conntrack statistics during the run
}

type ctCounts struct{ drop, earlyDrop, insertFailed, invalid uint64 }

// conntrackStats sums a node namespace's per-CPU conntrack statistics and reads its entry count.
func conntrackStats(ctx context.Context, ns string) (ctCounts, int) {
	var c ctCounts
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "cat", "/proc/net/stat/nf_conntrack", "/proc/sys/net/netfilter/nf_conntrack_count").Output()
	if err != nil {
		return c, -1
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 3 {
		return c, -1
	}
	col := map[string]int{}
	for i, h := range strings.Fields(lines[0]) {
		col[h] = i
	}
	for _, l := range lines[1 : len(lines)-1] {
		f := strings.Fields(l)
		get := func(name string) uint64 {
			i, ok := col[name]
			if !ok || i >= len(f) {
				return 0
			}
			v, _ := strconv.ParseUint(f[i], 16, 64)
			return v
		}
		c.drop += get("drop")
		c.earlyDrop += get("early_drop")
		c.insertFailed += get("insert_failed")
		c.invalid += get("invalid")
	}
	n, err := strconv.Atoi(strings.TrimSpace(lines[len(lines)-1]))
	if err != nil {
		n = -1
	}
	return c, n
}

func readInt(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}

func bench(o options) error {
	if !strings.HasPrefix(o.prefix, "svcnet-t-bench-") {
		return errors.New("-netns-prefix svcnet-t-bench-... is required: run bench/conn.sh, which creates the namespaces")
	}
	if o.small < 1 || o.services < o.small || o.endpoints < 1 || o.repeat < 1 || o.workers < 1 {
		return errors.New("need 1 <= -small <= -services, -endpoints >= 1, -repeat >= 1, -workers >= 1")
	}
	for _, a := range []string{o.backendIP, o.clusterIP} {
		if ip, err := netip.ParseAddr(a); err != nil || !ip.Is4() {
			return fmt.Errorf("-backend-ip / -cluster-ip %q: want an IPv4 address", a)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	worlds := map[string]*world{}
	for _, w := range []*world{{name: "none"}, {name: "small", services: o.small}, {name: "big", services: o.services}} {
		w.node, w.client, w.backend = o.prefix+"-"+w.name+"-node", o.prefix+"-"+w.name+"-client", o.prefix+"-"+w.name+"-backend"
		worlds[w.name] = w
	}
	if !o.noTable {
		delete(worlds, "none")
	}

	// Children run until connbench ends: servers in every backend namespace, proxies in the small
	// and big nodes. Stopping them: cancel (SIGTERM), then wait.
	childCtx, stopChildren := context.WithCancel(ctx)
	var children []*exec.Cmd
	defer func() {
		stopChildren()
		for _, c := range children {
			_ = c.Wait()
		}
	}()
	start := func(ns string, args ...string) (*bufio.Reader, error) {
		cmd, err := inNetNS(childCtx, ns, args...)
		if err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if _, err := cmd.StdinPipe(); err != nil { // closed when connbench exits: the proxy stops
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %v in %s: %w", args, ns, err)
		}
		children = append(children, cmd)
		return bufio.NewReader(out), nil
	}
	for _, name := range []string{"none", "small", "big"} {
		w := worlds[name]
		if w == nil {
			continue
		}
		r, err := start(w.backend, "-role", "server", "-listen", fmt.Sprintf(":%d", o.port))
		if err != nil {
			return err
		}
		if line, err := r.ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
			return fmt.Errorf("the server in %s did not start (%q, %v)", w.backend, line, err)
		}
		if w.services == 0 {
			continue
		}
		log.Printf("starting the proxy in %s with %d Services / %d endpoints ...", w.node, w.services, w.services*o.endpoints)
		r, err = start(w.node, "-role", "proxy", "-services", strconv.Itoa(w.services), "-endpoints", strconv.Itoa(o.endpoints),
			"-cluster-ip", o.clusterIP, "-backend-ip", o.backendIP, "-port", strconv.Itoa(o.port), "-table", o.table)
		if err != nil {
			return err
		}
		line, err := r.ReadString('\n')
		var rep proxyReport
		if err == nil {
			err = json.Unmarshal([]byte(line), &rep)
		}
		if err != nil {
			return fmt.Errorf("the proxy in %s did not sync (%q, %v)", w.node, line, err)
		}
		log.Printf("proxy in %s: %d Services / %d endpoints in the kernel after %dms (%d chains, %d rules, %d elements)",
			w.node, rep.Services, rep.Endpoints, rep.ColdMs, rep.Chains, rep.Rules, rep.Elements)
	}

	measure := func(name string, w *world, target string) (caseResult, error) {
		var r caseResult
		load := proc.LoadAvg("?")
		ct0, _ := conntrackStats(ctx, w.node)
		cmd, err := inNetNS(ctx, w.client, "-role", "client", "-target", target, "-workers", strconv.Itoa(o.workers),
			"-duration", o.duration.String(), "-warmup", o.warmup.String(), "-io-timeout", o.ioTimeout.String())
		if err != nil {
			return r, err
		}
		out, err := cmd.Output()
		if err != nil {
			return r, fmt.Errorf("client to %s in %s: %w", target, w.client, err)
		}
		if err := json.Unmarshal(out, &r.clientResult); err != nil {
			return r, fmt.Errorf("client output %q: %w", out, err)
		}
		ct1, n := conntrackStats(ctx, w.node)
		r.ctDelta = ctCounts{ct1.drop - ct0.drop, ct1.earlyDrop - ct0.earlyDrop, ct1.insertFailed - ct0.insertFailed, ct1.invalid - ct0.invalid}
		r.ctCount = n
		if r.Conns == 0 {
			return r, fmt.Errorf("%s: no connection completed (%d errors, first: %s)", name, r.Errors, r.Error)
		}
		log.Printf("%-34s %6.0f conn/s  errors %d  p50 %dus p99 %dus max %dus  conntrack entries %d  drops %d/%d/%d  load %s",
			name, float64(r.Conns)/r.Seconds, r.Errors, r.P50us, r.P99us, r.MaxUs, r.ctCount, r.ctDelta.drop, r.ctDelta.earlyDrop, r.ctDelta.insertFailed, load)
		return r, nil
	}

	// The direct cases cycle through the backend's addresses, as the ClusterIP spreads over them.
	var pods []string
	for a, i := netip.MustParseAddr(o.backendIP), 0; i < o.endpoints; a, i = a.Next(), i+1 {
		pods = append(pods, net.JoinHostPort(a.String(), strconv.Itoa(o.port)))
	}
	pod := strings.Join(pods, ",")
	svc := net.JoinHostPort(o.clusterIP, "80")
	type bcase struct{ name, world, target string }
	cases := []bcase{
		{"(a) pod IP, small table", "small", pod},
		{"(b) ClusterIP, small table", "small", svc},
		{"(c) ClusterIP, big table", "big", svc},
		{"(a') pod IP, big table", "big", pod},
	}
	if o.noTable {
		cases = append(cases, bcase{"pod IP, no table", "none", pod})
	}
	results := map[string][]caseResult{}
	loadStart := proc.LoadAvg("?")
	for round := range o.repeat {
		log.Printf("round %d of %d (load average %s)", round+1, o.repeat, proc.LoadAvg("?"))
		order := slices.Clone(cases)
		k := round % len(order)
		order = append(order[k:], order[:k]...)
		for _, c := range order {
			r, err := measure(c.name, worlds[c.world], c.target)
			if err != nil {
				return err
			}
			results[c.name] = append(results[c.name], r)
		}
	}
	loadEnd := proc.LoadAvg("?")

	median := func(n string) float64 {
		var v []float64
		for _, r := range results[n] {
			v = append(v, float64(r.Conns)/r.Seconds)
		}
		if len(v) == 0 {
			return 0
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	rate := func(n string) string {
		var s []string
		for _, r := range results[n] {
			s = append(s, fmt.Sprintf("%.0f", float64(r.Conns)/r.Seconds))
		}
		return fmt.Sprintf("%.0f conn/s (runs: %s)", median(n), strings.Join(s, ", "))
	}
	a, b, c, a2 := median(cases[0].name), median(cases[1].name), median(cases[2].name), median(cases[3].name)
	var errs, slow, ctMax int
	var drops, invalid uint64
	var p99 []int64
	for _, rs := range results {
		for _, r := range rs {
			errs += r.Errors
			slow += r.Slow
			ctMax = max(ctMax, r.ctCount)
			drops += r.ctDelta.drop + r.ctDelta.earlyDrop + r.ctDelta.insertFailed
			invalid += r.ctDelta.invalid
			p99 = append(p99, r.P99us)
		}
	}
	slices.Sort(p99)

	var t report.Table
	t.Row(fmt.Sprintf("(a) new connections/s to the pod IP directly (node: %d-Service table)", o.small), rate(cases[0].name), "-", "")
	t.Row(fmt.Sprintf("(b) to a ClusterIP, %d Services / %d endpoints", o.small, o.small*o.endpoints), rate(cases[1].name), "-", "")
	t.Row(fmt.Sprintf("(c) to a ClusterIP, %d Services / %d endpoints", o.services, o.services*o.endpoints), rate(cases[2].name), "-", "")
	t.Row(fmt.Sprintf("(a') to the pod IP directly (node: %d-Service table)", o.services), rate(cases[3].name), "-", "")
	if o.noTable {
		t.Row("    to the pod IP, no table in the node (no conntrack)", rate(cases[4].name), "-", "")
	}
	// A ratio is judged on the median of the per-round ratios: in a round the two cases run back
	// to back (the rotation keeps a-b, b-c and c-a' adjacent), so a drifting background load
	// cancels out better than in the ratio of the medians, shown beside it.
	paired := func(x, y string) (float64, string) {
		var v []float64
		var s []string
		for i := range min(len(results[x]), len(results[y])) {
			rx, ry := results[x][i], results[y][i]
			v = append(v, float64(rx.Conns)/float64(ry.Conns))
			s = append(s, fmt.Sprintf("%.2f", v[len(v)-1]))
		}
		slices.Sort(v)
		m := v[len(v)/2]
		if len(v)%2 == 0 {
			m = (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		return m, strings.Join(s, ", ")
	}
	ratio := func(fig string, x, y int, ofMedians, tol float64) {
		m, s := paired(cases[x].name, cases[y].name)
		target, result := "-", ""
		if tol > 0 {
			target, result = fmt.Sprintf("within %.0f%%", tol*100), report.Verdict(m >= 1-tol && m <= 1+tol)
		}
		t.Row(fig, fmt.Sprintf("%.3f (rounds: %s; ratio of medians %.3f)", m, s, ofMedians), target, result)
	}
	ratio("first-packet cost flat: c / b", 2, 1, c/b, 0.10)
	ratio("ClusterIP vs pod IP: b / a", 1, 0, b/a, 0.15)
	ratio("  c / a", 2, 0, c/a, 0.15)
	ratio("  c / a' (pod IP on the same big-table node)", 2, 3, c/a2, 0)
	t.Row("failed connections / connections taking >= 1s (all runs)", fmt.Sprintf("%d / %d", errs, slow), "0 / 0", report.Verdict(errs == 0 && slow == 0))
	t.Row("per-connection p99, best / worst run", fmt.Sprintf("%dus / %dus", p99[0], p99[len(p99)-1]), "-", "")
	t.Row("node conntrack: most entries after a run / nf_conntrack_max", fmt.Sprintf("%d / %d", ctMax, readInt("/proc/sys/net/netfilter/nf_conntrack_max")), "-", "")
	t.Row("node conntrack: drop+early_drop+insert_failed / invalid (all runs)", fmt.Sprintf("%d / %d", drops, invalid), "0 / -", report.Verdict(drops == 0))
	t.Row(fmt.Sprintf("setup: %d workers, SO_LINGER 0, %v per run after %v warm-up, %d rounds, median", o.workers, o.duration, o.warmup, o.repeat),
		"load average "+loadStart+" -> "+loadEnd, "-", "")
	return t.Print(os.Stdout)
}
