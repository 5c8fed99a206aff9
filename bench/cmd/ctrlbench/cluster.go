package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/svcnet/svcnet/bench/internal/controlplane"
	"github.com/svcnet/svcnet/bench/internal/proc"
	"github.com/svcnet/svcnet/bench/internal/report"
)

// Lines the server prints that the benchmark times.
const (
	readyLine       = "svcnet ready"        // stdout, once the API serves and the kubeconfig is written
	controllersLine = "controllers started" // stderr (slog), once the controllers' informers have synced
)

// stopLimit is how long a process has after SIGTERM before it gets SIGKILL.
const stopLimit = 10 * time.Second

// cluster is the control plane under test: one `svcnet up` process (etcd, API server and controllers),
// or with -split `svcnet etcd`, `svcnet apiserver` and `svcnet controller-manager`, as a real cluster
// runs them, so that the controller manager can be restarted alone.
type cluster struct {
	up        *proc.Process      // `svcnet up`; nil with -split
	etcdAPI   controlplane.Split // etcd and the API server, with -split
	cm        *proc.Process      // the controller manager, with -split
	cmMetrics string             // the controller manager's /metrics URL, with -split
	http      *http.Client
}

func (c *cluster) split() bool { return c.up == nil }

// controllers is the process that runs the controllers: the one the restart phase restarts.
func (c *cluster) controllers() *proc.Process {
	if c.split() {
		return c.cm
	}
	return c.up
}

// procs are the processes running, in the order the CPU and memory rows show them.
func (c *cluster) procs() []*proc.Process {
	var out []*proc.Process
	for _, s := range []*proc.Process{c.up, c.cm, c.etcdAPI.APIServer, c.etcdAPI.Etcd} {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// start starts the processes and returns the admin config of the API server once it answers. What it
// started is in c, for c.stop, also when it fails.
func (c *cluster) start(ctx context.Context, bin, root string, split bool) (*rest.Config, error) {
	data := filepath.Join(root, "data")
	if split {
		return c.startSplit(ctx, bin, root, data)
	}
	port, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	up := controlplane.Up(bin, data, filepath.Join(root, "svcnet.log"), port)
	up.StdoutMark, up.StderrMark = readyLine, controllersLine
	if c.up, err = proc.Start(up); err != nil {
		return nil, err
	}
	cfg, _, err := controlplane.WaitAPI(ctx, c.up, time.Minute)
	if err != nil {
		return nil, err
	}
	log.Printf("server: pid %d, %s, data dir %s", c.up.Pid(), cfg.Host, data)
	return cfg, nil
}

// startSplit starts etcd, then the API server over it with credentials made here (as `svcnet up`
// makes them), then the controller manager with its /metrics on a loopback port, each process
// logging to its own file in root.
func (c *cluster) startSplit(ctx context.Context, bin, root, data string) (*rest.Config, error) {
	cfg, err := c.etcdAPI.Start(ctx, bin, root, data)
	if err != nil {
		return nil, err
	}
	port, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", port)
	// No leader election: a restarted controller manager must not wait for its predecessor's lease.
	cm := proc.Config{Name: "controller-manager", Bin: bin, DataDir: data, LogFile: filepath.Join(root, "controller-manager.log"),
		StderrMark: controllersLine, Deathsig: syscall.SIGKILL,
		Args: []string{"controller-manager", "--data-dir", data, "--kubeconfig", c.etcdAPI.PKI.Kubeconfig,
			"--leader-elect=false", "--metrics-bind-address", metricsAddr}}
	// SVCNET_PPROF goes to every process and the API server, started first, takes its address;
	// SVCNET_PPROF_CM gives the controller manager its own.
	if addr := os.Getenv("SVCNET_PPROF_CM"); addr != "" {
		cm.Env = []string{"SVCNET_PPROF=" + addr}
	}
	c.cm, err = proc.Start(cm)
	if err != nil {
		return nil, err
	}
	c.cmMetrics = "http://" + metricsAddr + "/metrics"
	c.http = &http.Client{Timeout: 10 * time.Second}
	// The setup's first read of the counters must not find the controller manager still starting.
	if err := c.waitMetrics(ctx, cfg, time.Minute); err != nil {
		return nil, err
	}
	log.Printf("split: etcd pid %d on %s, apiserver pid %d on %s, controller-manager pid %d with metrics on %s; data dir %s",
		c.etcdAPI.Etcd.Pid(), c.etcdAPI.EtcdURL, c.etcdAPI.APIServer.Pid(), cfg.Host, c.cm.Pid(), c.cmMetrics, data)
	return cfg, nil
}

// waitMetrics polls, every 5 ms for at most limit, until both /metrics answer.
func (c *cluster) waitMetrics(ctx context.Context, cfg *rest.Config, limit time.Duration) error {
	cs, err := newClient(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	exited := c.exited(ctx)
	for {
		_, err := c.scrape(ctx, cs)
		if err == nil {
			return nil
		}
		select {
		case s := <-exited:
			return fmt.Errorf("%s exited (%v); its log ends:\n%s", s.Name, s.Err(), s.LogTail())
		case <-ctx.Done():
			return fmt.Errorf("no /metrics within %s: %v\n%s", limit, err, c.cm.LogTail())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// stop stops every process, the controller manager before the API server before etcd, so that none
// spends its last seconds retrying a server already gone.
func (c *cluster) stop() {
	for _, s := range c.procs() {
		s.Stop(stopLimit)
	}
}

// exited reports the first of the running processes to exit, until ctx ends.
func (c *cluster) exited(ctx context.Context) <-chan *proc.Process {
	procs := c.procs()
	ch := make(chan *proc.Process, len(procs))
	for _, s := range procs {
		go func() {
			select {
			case <-s.Exited():
				ch <- s
			case <-ctx.Done():
			}
		}()
	}
	return ch
}

// scrape reads the controllers' and the API server's counters. With -split they are in two processes:
// the writes from the API server's /metrics, the work queues from the controller manager's. The
// snapshot's time is that of the later read, the controller manager's.
func (c *cluster) scrape(ctx context.Context, cs kubernetes.Interface) (snapshot, error) {
	s, err := scrape(ctx, cs)
	if err != nil || !c.split() {
		return s, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cmMetrics, nil)
	if err != nil {
		return snapshot{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return snapshot{}, fmt.Errorf("GET %s: %w", c.cmMetrics, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	at := time.Now()
	if err != nil {
		return snapshot{}, fmt.Errorf("GET %s: %w", c.cmMetrics, err)
	}
	if resp.StatusCode != http.StatusOK {
		return snapshot{}, fmt.Errorf("GET %s: %s", c.cmMetrics, resp.Status)
	}
	cm, err := parseMetrics(body, at)
	if err != nil {
		return snapshot{}, err
	}
	s.at, s.queues = cm.at, cm.queues
	return s, nil
}

// cpuLabel names the processes startCPU measures, as the CPU rows list them.
func (c *cluster) cpuLabel() string {
	var names []string
	for _, s := range c.procs() {
		names = append(names, s.Name)
	}
	return strings.Join(names, " / ") + " / ctrlbench"
}

// startCPU starts measuring the CPU time of every process and of the benchmark.
func (c *cluster) startCPU() *proc.CPUMeter {
	var pids []int
	for _, s := range c.procs() {
		pids = append(pids, s.Pid())
	}
	return proc.StartCPU(append(pids, os.Getpid())...)
}

// memory adds one memory row per process; when says at which point, e.g. "after setup and flips".
func (c *cluster) memory(when string, t *report.Table) error {
	if !c.split() {
		return memory(c.up.Pid(), "server", "server memory "+when+": VmRSS / VmHWM", t)
	}
	for _, s := range c.procs() {
		if err := memory(s.Pid(), s.Name, s.Name+" memory "+when+": VmRSS / VmHWM", t); err != nil {
			return err
		}
	}
	return nil
}

// memory reads a server's resident set (VmRSS) and its peak (VmHWM); name is its name in the log.
func memory(pid int, name, figure string, t *report.Table) error {
	kb, err := proc.Status(pid)
	if err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	mb := func(k string) float64 { return float64(kb[k]) / 1024 }
	log.Printf("%s memory: VmRSS %.0f MB (anon %.0f, file %.0f), VmHWM %.0f MB", name, mb("VmRSS"), mb("RssAnon"), mb("RssFile"), mb("VmHWM"))
	t.Add(figure, fmt.Sprintf("%.0f MB / %.0f MB (anon %.0f MB, file %.0f MB)", mb("VmRSS"), mb("VmHWM"), mb("RssAnon"), mb("RssFile")), "", true)
	return nil
}

// newClient returns a client-go clientset with no client-side rate limit, a 30 s limit per request,
// and its own connection.
func newClient(cfg *rest.Config) (*kubernetes.Clientset, error) {
	return controlplane.NewClient(cfg, 30*time.Second)
}
