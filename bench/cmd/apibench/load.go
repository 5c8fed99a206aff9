package main

import (
	"context"
	"fmt"
	"log"
	"path/filepath"
	"strings"
	"time"

	"github.com/svcnet/svcnet/bench/internal/controlplane"
	"github.com/svcnet/svcnet/bench/internal/proc"
	"github.com/svcnet/svcnet/bench/internal/report"
	"k8s.io/client-go/rest"
)

// stopLimit is how long a process has after SIGTERM before it gets SIGKILL.
const stopLimit = 10 * time.Second

// startUp execs `svcnet up --nodes 0` on a free loopback port with a fresh data dir under dir, and
// marks the first stdout output that contains "ready".
func startUp(bin, dir string) (*proc.Process, error) {
	port, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	c := controlplane.Up(bin, filepath.Join(dir, "data"), filepath.Join(dir, "svcnet.log"), port)
	c.StdoutMark = "ready"
	return proc.Start(c)
}

// loadServer is what the create, memory and watch phases run against: one `svcnet up` process
// (etcd, API server and controllers), or with -split `svcnet etcd` and `svcnet apiserver` as two
// processes and no controllers at all, which measures the API server over etcd as such.
type loadServer struct {
	up    *proc.Process      // `svcnet up`; nil with -split
	split controlplane.Split // with -split
}

// procs are the processes running, in the order the CPU and memory rows show them; stop stops them
// in this order too, so that etcd goes last.
func (l *loadServer) procs() []*proc.Process {
	var out []*proc.Process
	for _, s := range []*proc.Process{l.up, l.split.APIServer, l.split.Etcd} {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// stop stops every process started, by its PID: SIGTERM, then SIGKILL after 10 s.
func (l *loadServer) stop() {
	for _, s := range l.procs() {
		s.Stop(stopLimit)
	}
}

// start starts the processes in dir and returns the admin config once the API server answers. What
// it started is in l, for l.stop, also when it fails.
func (l *loadServer) start(ctx context.Context, bin, dir string, split bool) (*rest.Config, error) {
	if split {
		return l.startSplit(ctx, bin, dir)
	}
	var err error
	if l.up, err = startUp(bin, dir); err != nil {
		return nil, err
	}
	cfg, _, err := controlplane.WaitAPI(ctx, l.up, time.Minute)
	if err != nil {
		return nil, err
	}
	log.Printf("load server: pid %d, %s", l.up.Pid(), cfg.Host)
	return cfg, nil
}

// startSplit starts `svcnet etcd` and `svcnet apiserver` over it (see controlplane.Split), sharing
// one data dir, each on its own free 127.0.0.1 port, each logging to its own file in dir.
func (l *loadServer) startSplit(ctx context.Context, bin, dir string) (*rest.Config, error) {
	cfg, err := l.split.Start(ctx, bin, dir, filepath.Join(dir, "data"))
	if err != nil {
		return nil, err
	}
	log.Printf("load server (split, no controllers): etcd pid %d on %s, apiserver pid %d on %s",
		l.split.Etcd.Pid(), l.split.EtcdURL, l.split.APIServer.Pid(), cfg.Host)
	return cfg, nil
}

// cpuLabel names the processes of the CPU row, then the benchmark: "svcnet up / apibench" or
// "apiserver / etcd / apibench".
func (l *loadServer) cpuLabel() string {
	var names []string
	for _, s := range l.procs() {
		names = append(names, s.Name)
	}
	return strings.Join(append(names, "apibench"), " / ")
}

// pids are the processes' PIDs, in the order of procs.
func (l *loadServer) pids() []int {
	var out []int
	for _, s := range l.procs() {
		out = append(out, s.Pid())
	}
	return out
}

// memorySplit reads the resident set (VmRSS), its peak (VmHWM) and its anonymous / file-backed split
// of the API server and of etcd. The first row, which has the target, is their sum: the memory the
// API server over etcd takes. The next two are each process alone.
func (l *loadServer) memorySplit(services int, t *report.Table) error {
	type reading struct {
		name string
		kb   map[string]int64
	}
	var rs []reading
	sum := map[string]int64{}
	for _, s := range []*proc.Process{l.split.APIServer, l.split.Etcd} {
		kb, err := proc.Status(s.Pid())
		if err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		rs = append(rs, reading{s.Name, kb})
		for _, k := range []string{"VmRSS", "VmHWM", "RssAnon", "RssFile"} {
			sum[k] += kb[k]
		}
	}
	mb := func(kb map[string]int64, k string) float64 { return float64(kb[k]) / 1024 }
	row := func(kb map[string]int64) string {
		return fmt.Sprintf("%.0f MB / %.0f MB (anon %.0f MB, file %.0f MB)", mb(kb, "VmRSS"), mb(kb, "VmHWM"), mb(kb, "RssAnon"), mb(kb, "RssFile"))
	}
	for _, r := range rs {
		log.Printf("%s memory: VmRSS %.0f MB (anon %.0f, file %.0f), VmHWM %.0f MB", r.name,
			mb(r.kb, "VmRSS"), mb(r.kb, "RssAnon"), mb(r.kb, "RssFile"), mb(r.kb, "VmHWM"))
	}
	t.Add(fmt.Sprintf("apiserver + etcd memory with %d Services: sum of VmRSS / sum of VmHWM", services),
		row(sum), "< 300 MB", mb(sum, "VmRSS") < 300)
	for _, r := range rs {
		t.Add(fmt.Sprintf("  %s process alone: VmRSS / VmHWM", r.name), row(r.kb), "", true)
	}
	return nil
}
