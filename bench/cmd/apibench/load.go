package main

import (
	"context"
	"fmt"
	"log"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/svcnet/svcnet/internal/pki"
	"k8s.io/client-go/rest"
)

// Lines the -split processes print on stdout once they serve.
const (
	etcdReadyLine = "svcnet etcd ready"
	apiReadyLine  = "svcnet apiserver ready"
)

// loadServer is what the create, memory and watch phases run against: one `svcnet up` process
// (etcd, API server and controllers), or with -split `svcnet etcd` and `svcnet apiserver` as two
// processes and no controllers at all, which measures the API server over etcd as such.
type loadServer struct {
	up        *server // `svcnet up`; nil with -split
	api, etcd *server // with -split
}

// procs are the processes running, in the order the CPU and memory rows show them; stop stops them
// in this order too, so that etcd goes last.
func (l *loadServer) procs() []*server {
	var out []*server
	for _, s := range []*server{l.up, l.api, l.etcd} {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// stop stops every process started, by its PID (see server.stop).
func (l *loadServer) stop() {
	for _, s := range l.procs() {
		s.stop()
	}
}

// start starts the processes in dir and returns the admin config once the API server answers. What
// it started is in l, for l.stop, also when it fails.
func (l *loadServer) start(ctx context.Context, bin, dir string, split bool) (*rest.Config, error) {
	if split {
		return l.startSplit(ctx, bin, dir)
	}
	var err error
	if l.up, err = start(bin, dir); err != nil {
		return nil, err
	}
	cfg, _, err := l.up.waitAPI(ctx, time.Minute)
	if err != nil {
		return nil, err
	}
	log.Printf("load server: pid %d, %s", l.up.cmd.Process.Pid, cfg.Host)
	return cfg, nil
}

// startSplit starts `svcnet etcd`, waits for its ready line, makes the CA, serving certificate, admin
// token and kubeconfig (as `svcnet up` makes them), then starts `svcnet apiserver` over that etcd.
// Both share one data dir, each on its own free 127.0.0.1 port, each logging to its own file in dir.
func (l *loadServer) startSplit(ctx context.Context, bin, dir string) (*rest.Config, error) {
	etcdPort, err := freePort()
	if err != nil {
		return nil, err
	}
	apiPort, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	l.etcd, err = launch("etcd", bin, data, filepath.Join(dir, "etcd.log"), etcdReadyLine,
		"etcd", "--data-dir", data, "--listen-client-urls", etcdURL)
	if err != nil {
		return nil, err
	}
	if err := l.etcd.waitReady(ctx, time.Minute); err != nil {
		return nil, err
	}

	files := pki.In(data)
	token, err := files.Ensure(nil)
	if err != nil {
		return nil, err
	}
	if err := files.WriteKubeconfig(fmt.Sprintf("https://127.0.0.1:%d", apiPort), token); err != nil {
		return nil, err
	}
	l.api, err = launch("apiserver", bin, data, filepath.Join(dir, "apiserver.log"), apiReadyLine,
		"apiserver", "--data-dir", data, "--etcd-servers", etcdURL,
		"--secure-port", strconv.Itoa(apiPort), "--bind-address", "127.0.0.1",
		"--tls-cert-file", files.ServerCert, "--tls-private-key-file", files.ServerKey, "--token-auth-file", files.Tokens)
	if err != nil {
		return nil, err
	}
	cfg, _, err := l.api.waitAPI(ctx, time.Minute)
	if err != nil {
		select {
		case <-l.etcd.exited:
			err = fmt.Errorf("%w\netcd exited (%v); its log ends:\n%s", err, l.etcd.waitErr, l.etcd.logTail())
		default:
		}
		return nil, err
	}
	log.Printf("load server (split, no controllers): etcd pid %d on %s, apiserver pid %d on %s",
		l.etcd.cmd.Process.Pid, etcdURL, l.api.cmd.Process.Pid, cfg.Host)
	return cfg, nil
}

// cpuLabel names the processes of the CPU row, then the benchmark: "svcnet up / apibench" or
// "apiserver / etcd / apibench".
func (l *loadServer) cpuLabel() string {
	var names []string
	for _, s := range l.procs() {
		names = append(names, s.name)
	}
	return strings.Join(append(names, "apibench"), " / ")
}

// pids are the processes' PIDs, in the order of procs.
func (l *loadServer) pids() []int {
	var out []int
	for _, s := range l.procs() {
		out = append(out, s.cmd.Process.Pid)
	}
	return out
}

// memorySplit reads the resident set (VmRSS), its peak (VmHWM) and its anonymous / file-backed split
// of the API server and of etcd. The first row, which has the target, is their sum: the memory the
// API server over etcd takes. The next two are each process alone.
func (l *loadServer) memorySplit(services int, t *table) error {
	type reading struct {
		name string
		kb   map[string]int64
	}
	var rs []reading
	sum := map[string]int64{}
	for _, s := range []*server{l.api, l.etcd} {
		kb, err := procStatus(s.cmd.Process.Pid)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		rs = append(rs, reading{s.name, kb})
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
	t.add(fmt.Sprintf("apiserver + etcd memory with %d Services: sum of VmRSS / sum of VmHWM", services),
		row(sum), "< 300 MB", mb(sum, "VmRSS") < 300)
	for _, r := range rs {
		t.add(fmt.Sprintf("  %s process alone: VmRSS / VmHWM", r.name), row(r.kb), "", true)
	}
	return nil
}
