// Command dnsbench measures svcnet's cluster DNS server (internal/dns) against the figures of the DNS
// issue:
//
//  1. queries per second per core and p99 latency on loopback, for cluster names (ClusterIP services,
//     headless services, search-path NXDOMAINs) and for external names answered from the cache;
//  2. memory per object with 10,000 services and 100,000 pods in the index;
//  3. how long a service creation or deletion takes to show in answers.
//
// It runs the server in a child process (itself, with -serve and GOMAXPROCS=-server-procs), fed by
// client-go informers from a fake API server in that child which generates the objects on the fly, and
// with a fake upstream resolver in this process for the external names. Load comes from this process:
// -clients goroutines, each a closed loop of UDP queries on its own socket. Queries per core = answered
// queries / CPU seconds the child used (/proc/PID/stat). Everything listens on 127.0.0.1 only; the child
// is stopped by its PID when the benchmark ends, and killed by the kernel should the benchmark be killed.
//
//	go run ./bench/cmd/dnsbench            # or bench/dns.sh
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/svcnet/svcnet/bench/internal/proc"
	"github.com/svcnet/svcnet/bench/internal/report"
)

type options struct {
	serve          bool
	upstream       string
	services       int
	podsPerService int
	namespaces     int
	headlessEvery  int
	duration       time.Duration
	clients        int
	serverProcs    int
	changes        int
	cpuProfile     string
	memProfile     string
}

func main() {
	var o options
	flag.BoolVar(&o.serve, "serve", false, "internal: run as the server child")
	flag.StringVar(&o.upstream, "upstream", "", "internal: the fake upstream resolver's address")
	flag.IntVar(&o.services, "services", 10000, "Services in the cluster")
	flag.IntVar(&o.podsPerService, "pods-per-service", 10, "pods (and endpoints) per Service")
	flag.IntVar(&o.namespaces, "namespaces", 100, "namespaces the Services are spread over")
	flag.IntVar(&o.headlessEvery, "headless-every", 10, "every k-th Service is headless, its pods with hostname/subdomain (0: none)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of each load phase")
	flag.IntVar(&o.clients, "clients", 8, "concurrent query loops (each its own UDP socket, one query in flight)")
	flag.IntVar(&o.serverProcs, "server-procs", 1, "GOMAXPROCS of the server: the cores it may use")
	flag.IntVar(&o.changes, "changes", 200, "service creations (and deletions) timed to their first answer (0 skips)")
	flag.StringVar(&o.cpuProfile, "server-cpuprofile", "", "write the server's CPU profile of the load phases to this file")
	flag.StringVar(&o.memProfile, "server-memprofile", "", "write the server's heap profile after the sync to this file")
	flag.Parse()
	log.SetFlags(0)
	if o.serve {
		if err := serveMain(o); err != nil {
			log.Fatalf("dnsbench server: %v", err)
		}
		return
	}
	if err := run(o); err != nil {
		log.Fatalf("dnsbench: %v", err)
	}
}

func run(o options) error {
	up, err := startUpstream()
	if err != nil {
		return err
	}
	defer up.Shutdown()

	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-serve", "-upstream", up.PacketConn.LocalAddr().String(),
		"-services", strconv.Itoa(o.services), "-pods-per-service", strconv.Itoa(o.podsPerService),
		"-namespaces", strconv.Itoa(o.namespaces), "-headless-every", strconv.Itoa(o.headlessEvery),
		"-server-cpuprofile", o.cpuProfile, "-server-memprofile", o.memProfile)
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(o.serverProcs))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = proc.SysProcAttr(syscall.SIGKILL)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	log.Printf("starting the server child: %d services x %d pods in %d namespaces, GOMAXPROCS=%d ...",
		o.services, o.podsPerService, o.namespaces, o.serverProcs)
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	defer func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	var rd ready
	if !lines.Scan() {
		return errors.New("the server child exited before it was ready")
	}
	if err := json.Unmarshal(lines.Bytes(), &rd); err != nil {
		return fmt.Errorf("child: %w", err)
	}
	log.Printf("synced in %.1fs: %d services, %d endpointslices, %d pods, %d namespaces; serving on %s",
		rd.SyncSeconds, rd.Services, rd.EndpointSlices, rd.Pods, rd.Namespaces, rd.Addr)

	var t report.Table
	objects := float64(rd.Services + rd.Pods)
	heapPer := float64(rd.HeapAfter-rd.HeapBefore) / objects
	t.Row(fmt.Sprintf("memory per object, live heap (%d services + %d pods)", rd.Services, rd.Pods), fmt.Sprintf("%.0f B", heapPer), "< 512 B", report.Verdict(heapPer < 512))
	t.Row("memory per object, RSS growth after sync", fmt.Sprintf("%.0f B", float64(rd.RSSAfter-rd.RSSBefore)/objects), "-", "")
	t.Row("server RSS after sync / peak during sync", fmt.Sprintf("%.0f MB / %.0f MB", float64(rd.RSSAfter)/1e6, float64(rd.RSSPeak)/1e6), "-", "")
	t.Row("informer sync (list + index)", fmt.Sprintf("%.2fs", rd.SyncSeconds), "-", "")

	// Name sets.
	var clusterNames, headlessNames, nxNames, extNames []string
	for i := 0; i < o.services; i++ {
		name := fmt.Sprintf("%s.%s.svc.cluster.local.", svcName(i), nsName(i%o.namespaces))
		if o.headlessEvery > 0 && i%o.headlessEvery == 0 {
			headlessNames = append(headlessNames, name)
		} else {
			clusterNames = append(clusterNames, name)
		}
		nxNames = append(nxNames, fmt.Sprintf("www.example%d.com.%s.svc.cluster.local.", i, nsName(i%o.namespaces)))
	}
	for i := 0; i < 1000; i++ {
		extNames = append(extNames, fmt.Sprintf("host-%d.example.", i))
	}
	for _, n := range extNames { // fill the cache
		if _, err := exchange(rd.Addr, n); err != nil {
			return fmt.Errorf("warming the cache: %w", err)
		}
	}

	phases := []struct {
		name  string
		names []string
		rcode int
	}{
		{"cluster names: ClusterIP service A", clusterNames, mdns.RcodeSuccess},
		{"cluster names: headless service A (10 endpoints)", headlessNames, mdns.RcodeSuccess},
		{"cluster names: search-path NXDOMAIN", nxNames, mdns.RcodeNameError},
		{"external names from the cache", extNames, mdns.RcodeSuccess},
	}
	var internalPerCore, externalPerCore float64
	for _, ph := range phases {
		if len(ph.names) == 0 {
			continue
		}
		log.Printf("load: %s, %d clients, %v ...", ph.name, o.clients, o.duration)
		mem0, err := childMem(stdin, lines)
		if err != nil {
			return err
		}
		cpu0, _ := proc.CPUTime(pid)
		res := load(rd.Addr, ph.names, ph.rcode, o.clients, o.duration)
		cpu1, _ := proc.CPUTime(pid)
		cpu := (cpu1 - cpu0).Seconds()
		mem1, err := childMem(stdin, lines)
		if err != nil {
			return err
		}
		qps := float64(res.ok) / res.elapsed.Seconds()
		perCore := float64(res.ok) / cpu
		p50, p99, pmax := pct(res.lat, 0.50), pct(res.lat, 0.99), pct(res.lat, 1)
		switch ph.name {
		case phases[0].name:
			internalPerCore = perCore
		case phases[3].name:
			externalPerCore = perCore
		}
		target, ok := ">= 50,000/core", perCore >= 50000
		if ph.name == phases[3].name {
			target, ok = "within 10% of ClusterIP", internalPerCore > 0 && perCore >= 0.9*internalPerCore
		}
		t.Row(ph.name+": queries/s per core", fmt.Sprintf("%.0f (%.0f q/s on %.2f cores)", perCore, qps, cpu/res.elapsed.Seconds()), target, report.Verdict(ok))
		t.Row(ph.name+": latency p50 / p99 / max", fmt.Sprintf("%s / %s / %s", fmtDur(p50), fmtDur(p99), fmtDur(pmax)), "p99 < 1ms", report.Verdict(p99 < time.Millisecond))
		if answered := res.ok + res.bad; answered > 0 {
			t.Row(ph.name+": server heap allocated per query / GC cycles",
				fmt.Sprintf("%.0f B / %d", float64(mem1.TotalAlloc-mem0.TotalAlloc)/float64(answered), mem1.NumGC-mem0.NumGC), "-", "")
		}
		if res.bad > 0 || res.lost > 0 {
			t.Row(ph.name+": wrong rcode / lost", fmt.Sprintf("%d / %d of %d", res.bad, res.lost, res.ok+res.bad+res.lost), "0", report.Verdict(false))
		}
	}
	_ = externalPerCore

	fmt.Fprintln(stdin, "stats")
	if !lines.Scan() {
		return errors.New("the server child exited after the load phases")
	}
	var st cacheStats
	if err := json.Unmarshal(lines.Bytes(), &st); err != nil {
		return err
	}
	t.Row("packed answer cache after the load phases / live heap growth since the sync",
		fmt.Sprintf("%d answers, %.1f MB / %.1f MB", st.PackedEntries, float64(st.PackedBytes)/1e6, (float64(st.HeapAfterLoad)-float64(rd.HeapAfter))/1e6), "-", "")

	if o.changes > 0 {
		log.Printf("timing %d service creations and deletions ...", o.changes)
		fmt.Fprintf(stdin, "changes %d\n", o.changes)
		if !lines.Scan() {
			return errors.New("the server child exited during the change phase")
		}
		var ch changes
		if err := json.Unmarshal(lines.Bytes(), &ch); err != nil {
			return err
		}
		for _, c := range []struct {
			what string
			d    []float64
		}{{"service created -> answered", ch.Add}, {"service deleted -> NXDOMAIN", ch.Delete}} {
			if len(c.d) == 0 {
				continue
			}
			p99 := c.d[min(len(c.d)-1, len(c.d)*99/100)]
			t.Row(c.what+" p50 / p99 / max (watch event to answer)",
				fmt.Sprintf("%s / %s / %s", fmtDur(secs(c.d[len(c.d)/2])), fmtDur(secs(p99)), fmtDur(secs(c.d[len(c.d)-1]))), "p99 < 500ms", report.Verdict(p99 < 0.5))
		}
		if ch.Lost > 0 {
			t.Row("changes never seen in answers", strconv.Itoa(ch.Lost), "0", report.Verdict(false))
		}
	}

	return t.Print(os.Stdout)
}

// childMem asks the server child for its allocation counters.
func childMem(stdin io.Writer, lines *bufio.Scanner) (memStats, error) {
	var m memStats
	fmt.Fprintln(stdin, "mem")
	if !lines.Scan() {
		return m, errors.New("the server child exited during the load phases")
	}
	return m, json.Unmarshal(lines.Bytes(), &m)
}

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
	return d.Round(time.Millisecond).String()
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}

type loadResult struct {
	ok, bad, lost int
	elapsed       time.Duration
	lat           []time.Duration // sorted
}

// load runs clients closed loops of A queries over names for d, each on its own UDP socket.
func load(addr string, names []string, wantRcode int, clients int, d time.Duration) loadResult {
	queries := make([][]byte, len(names))
	for i, n := range names {
		m := new(mdns.Msg)
		m.SetQuestion(n, mdns.TypeA)
		queries[i], _ = m.Pack()
	}
	var mu sync.Mutex
	var total loadResult
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			conn, err := net.Dial("udp", addr)
			if err != nil {
				log.Print(err)
				return
			}
			defer conn.Close()
			var res loadResult
			res.lat = make([]time.Duration, 0, 1<<16)
			buf := make([]byte, 4096)
			q := make([]byte, 512)
			rng := rand.New(rand.NewSource(int64(c)))
			id := uint16(c << 12)
			for time.Now().Before(deadline) {
				base := queries[rng.Intn(len(queries))]
				q = append(q[:0], base...)
				id++
				binary.BigEndian.PutUint16(q, id)
				t0 := time.Now()
				conn.SetReadDeadline(t0.Add(time.Second))
				if _, err := conn.Write(q); err != nil {
					res.lost++
					continue
				}
				for {
					n, err := conn.Read(buf)
					if err != nil {
						res.lost++
						break
					}
					if n < 12 || binary.BigEndian.Uint16(buf) != id {
						continue // a late answer to an earlier query
					}
					res.lat = append(res.lat, time.Since(t0))
					if int(buf[3]&0xf) == wantRcode {
						res.ok++
					} else {
						res.bad++
					}
					break
				}
			}
			mu.Lock()
			total.ok += res.ok
			total.bad += res.bad
			total.lost += res.lost
			total.lat = append(total.lat, res.lat...)
			mu.Unlock()
		}(c)
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	slices.Sort(total.lat)
	return total
}

func exchange(addr, name string) (*mdns.Msg, error) {
	m := new(mdns.Msg)
	m.SetQuestion(name, mdns.TypeA)
	c := &mdns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err == nil && r.Rcode != mdns.RcodeSuccess {
		err = fmt.Errorf("%s: %s", name, mdns.RcodeToString[r.Rcode])
	}
	return r, err
}

// startUpstream is the fake upstream resolver: every name under example. has an A record, TTL 1 hour.
func startUpstream() (*mdns.Server, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		if q.Qtype == mdns.TypeA && strings.HasSuffix(q.Name, ".example.") {
			rr, _ := mdns.NewRR(q.Name + " 3600 IN A 192.0.2.1")
			m.Answer = []mdns.RR{rr}
		} else {
			m.Rcode = mdns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	return srv, nil
}
