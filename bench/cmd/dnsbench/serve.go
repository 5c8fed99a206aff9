package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/svcnet/svcnet/bench/internal/proc"
	"github.com/svcnet/svcnet/internal/dns"
)

// ready is the child's first stdout line.
type ready struct {
	Addr           string  `json:"addr"`
	Services       int     `json:"services"`
	EndpointSlices int     `json:"endpointSlices"`
	Pods           int     `json:"pods"`
	Namespaces     int     `json:"namespaces"`
	SyncSeconds    float64 `json:"syncSeconds"`
	HeapBefore     uint64  `json:"heapBefore"`
	HeapAfter      uint64  `json:"heapAfter"`
	RSSBefore      uint64  `json:"rssBefore"`
	RSSAfter       uint64  `json:"rssAfter"`
	RSSPeak        uint64  `json:"rssPeak"`
}

// cacheStats is the answer to a "stats" command: the packed answer cache and the live heap after the
// load phases.
type cacheStats struct {
	PackedEntries int    `json:"packedEntries"`
	PackedBytes   int    `json:"packedBytes"`
	HeapAfterLoad uint64 `json:"heapAfterLoad"`
}

// memStats is the answer to a "mem" command, which the parent sends before and after each load phase.
type memStats struct {
	NumGC      uint32 `json:"numGC"`
	TotalAlloc uint64 `json:"totalAlloc"`
}

// changes is the answer to a "changes N" command.
type changes struct {
	Add    []float64 `json:"add"`    // seconds from the watch event to the first answer with the service
	Delete []float64 `json:"delete"` // seconds from the delete event to the first NXDOMAIN
	Lost   int       `json:"lost"`
}

// serveMain is the child: a fake API server, the DNS server fed from it, the memory figures, then
// commands on stdin until it closes.
func serveMain(o options) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	api := newFakeAPI(o.namespaces, o.services, o.podsPerService, o.headlessEvery)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go (&http.Server{Handler: api}).Serve(ln)

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rssBefore, _ := procStatus("VmRSS")

	client, err := kubernetes.NewForConfig(&rest.Config{Host: "http://" + ln.Addr().String(), QPS: -1})
	if err != nil {
		return err
	}
	s, err := dns.NewServer(dns.Config{
		Listen:     []string{"127.0.0.1:0"},
		Upstreams:  []string{o.upstream},
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		return err
	}
	if err := s.Listen(ctx); err != nil {
		return err
	}
	start := time.Now()
	s.Watch(ctx, client)
	for !s.Synced() {
		time.Sleep(5 * time.Millisecond)
	}
	syncTime := time.Since(start)
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if o.memProfile != "" {
		f, err := os.Create(o.memProfile)
		if err != nil {
			return err
		}
		pprof.WriteHeapProfile(f)
		f.Close()
	}
	debug.FreeOSMemory()
	rssAfter, _ := procStatus("VmRSS")
	rssPeak, _ := procStatus("VmHWM")
	r := ready{Addr: s.Addrs()[0].String(), SyncSeconds: syncTime.Seconds(),
		HeapBefore: before.HeapAlloc, HeapAfter: after.HeapAlloc, RSSBefore: rssBefore, RSSAfter: rssAfter, RSSPeak: rssPeak}
	r.Services, r.EndpointSlices, r.Pods, r.Namespaces = s.Objects()
	out := json.NewEncoder(os.Stdout)
	if err := out.Encode(r); err != nil {
		return err
	}

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 1 && f[0] == "mem" {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			out.Encode(memStats{NumGC: ms.NumGC, TotalAlloc: ms.TotalAlloc})
		}
		if len(f) == 1 && f[0] == "stats" {
			var st cacheStats
			st.PackedEntries, st.PackedBytes = s.PackedCacheStats()
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			st.HeapAfterLoad = ms.HeapAlloc
			out.Encode(st)
		}
		if len(f) == 2 && f[0] == "changes" {
			n, _ := strconv.Atoi(f[1])
			out.Encode(measureChanges(api, r.Addr, n))
		}
	}
	return nil
}

// measureChanges pushes n service creations, then n deletions, one at a time, and times each from
// the watch event leaving the fake API server to the DNS answer reflecting it.
func measureChanges(api *fakeAPI, addr string, n int) changes {
	var res changes
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return res
	}
	defer conn.Close()
	ask := func(name string) int {
		m := new(mdns.Msg)
		m.SetQuestion(name, mdns.TypeA)
		b, _ := m.Pack()
		conn.SetDeadline(time.Now().Add(time.Second))
		if _, err := conn.Write(b); err != nil {
			return -1
		}
		buf := make([]byte, 4096)
		k, err := conn.Read(buf)
		if err != nil || k < 12 {
			return -1
		}
		return int(buf[3] & 0xf)
	}
	wait := func(name string, rcode int) (float64, bool) {
		start := time.Now()
		for time.Since(start) < 5*time.Second {
			if ask(name) == rcode {
				return time.Since(start).Seconds(), true
			}
			time.Sleep(100 * time.Microsecond)
		}
		return 0, false
	}
	for j := 0; j < n; j++ {
		svc := changedService(j)
		name := fmt.Sprintf("%s.%s.svc.cluster.local.", svc.Name, svc.Namespace)
		api.push("ADDED", svc)
		if d, ok := wait(name, mdns.RcodeSuccess); ok {
			res.Add = append(res.Add, d)
		} else {
			res.Lost++
		}
		api.push("DELETED", svc)
		if d, ok := wait(name, mdns.RcodeNameError); ok {
			res.Delete = append(res.Delete, d)
		} else {
			res.Lost++
		}
	}
	slices.Sort(res.Add)
	slices.Sort(res.Delete)
	return res
}

// procStatus reads a kB field of /proc/self/status, in bytes.
func procStatus(field string) (uint64, error) {
	kb, err := proc.Status(os.Getpid())
	if err != nil {
		return 0, err
	}
	n, ok := kb[field]
	if !ok {
		return 0, fmt.Errorf("%s not in /proc/self/status", field)
	}
	return uint64(n) * 1024, nil
}
