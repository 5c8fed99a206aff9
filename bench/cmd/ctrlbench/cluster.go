package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/svcnet/svcnet/internal/pki"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Lines the -split processes print on stdout once they serve.
const (
	etcdReadyLine = "svcnet etcd ready"
	apiReadyLine  = "svcnet apiserver ready"
)

// cluster is the control plane under test: one `svcnet up` process (etcd, API server and controllers),
// or with -split `svcnet etcd`, `svcnet apiserver` and `svcnet controller-manager`, as a real cluster
// runs them, so that the controller manager can be restarted alone.
type cluster struct {
	up            *server // `svcnet up`; nil with -split
	etcd, api, cm *server // with -split
	cmMetrics     string  // the controller manager's /metrics URL, with -split
	http          *http.Client
}

func (c *cluster) split() bool { return c.up == nil }

// controllers is the process that runs the controllers: the one the restart phase restarts.
func (c *cluster) controllers() *server {
	if c.split() {
		return c.cm
	}
	return c.up
}

// procs are the processes running, in the order the CPU and memory rows show them.
func (c *cluster) procs() []*server {
	var out []*server
	for _, s := range []*server{c.up, c.cm, c.api, c.etcd} {
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
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if c.up, err = start(bin, data, filepath.Join(root, "svcnet.log"), port); err != nil {
		return nil, err
	}
	cfg, _, err := c.up.waitAPI(ctx, time.Minute)
	if err != nil {
		return nil, err
	}
	log.Printf("server: pid %d, %s, data dir %s", c.up.cmd.Process.Pid, cfg.Host, data)
	return cfg, nil
}

// startSplit starts etcd, then the API server over it with credentials made here (as `svcnet up`
// makes them), then the controller manager with its /metrics on a loopback port, each process
// logging to its own file in root.
func (c *cluster) startSplit(ctx context.Context, bin, root, data string) (*rest.Config, error) {
	var ports [3]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	proc := func(name, readyOn, controllersOn string, args ...string) *server {
		return &server{name: name, bin: bin, data: data, logFile: filepath.Join(root, name+".log"),
			readyOn: readyOn, controllersOn: controllersOn, args: append([]string{name, "--data-dir", data}, args...)}
	}
	var err error
	if c.etcd, err = launch(proc("etcd", etcdReadyLine, "", "--listen-client-urls", etcdURL)); err != nil {
		return nil, err
	}
	if _, err := c.etcd.waitLine(ctx, c.etcd.ready, etcdReadyLine, time.Minute); err != nil {
		return nil, err
	}

	files := pki.In(data)
	token, err := files.Ensure(nil)
	if err != nil {
		return nil, err
	}
	if err := files.WriteKubeconfig(fmt.Sprintf("https://127.0.0.1:%d", ports[1]), token); err != nil {
		return nil, err
	}
	c.api, err = launch(proc("apiserver", apiReadyLine, "", "--etcd-servers", etcdURL,
		"--secure-port", strconv.Itoa(ports[1]), "--bind-address", "127.0.0.1",
		"--tls-cert-file", files.ServerCert, "--tls-private-key-file", files.ServerKey, "--token-auth-file", files.Tokens))
	if err != nil {
		return nil, err
	}
	cfg, _, err := c.api.waitAPI(ctx, time.Minute)
	if err != nil {
		return nil, err
	}

	metricsAddr := fmt.Sprintf("127.0.0.1:%d", ports[2])
	// No leader election: a restarted controller manager must not wait for its predecessor's lease.
	cm := proc("controller-manager", "", controllersLine, "--kubeconfig", files.Kubeconfig,
		"--leader-elect=false", "--metrics-bind-address", metricsAddr)
	// SVCNET_PPROF goes to every process and the API server, started first, takes its address;
	// SVCNET_PPROF_CM gives the controller manager its own.
	if addr := os.Getenv("SVCNET_PPROF_CM"); addr != "" {
		cm.env = []string{"SVCNET_PPROF=" + addr}
	}
	c.cm, err = launch(cm)
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
		c.etcd.cmd.Process.Pid, etcdURL, c.api.cmd.Process.Pid, cfg.Host, c.cm.cmd.Process.Pid, c.cmMetrics, data)
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
			return fmt.Errorf("%s exited (%v); its log ends:\n%s", s.name, s.waitErr, s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("no /metrics within %s: %v\n%s", limit, err, c.cm.logTail())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// stop stops every process, the controller manager before the API server before etcd, so that none
// spends its last seconds retrying a server already gone.
func (c *cluster) stop() {
	for _, s := range c.procs() {
		s.stop()
	}
}

// exited reports the first of the running processes to exit, until ctx ends.
func (c *cluster) exited(ctx context.Context) <-chan *server {
	procs := c.procs()
	ch := make(chan *server, len(procs))
	for _, s := range procs {
		go func() {
			select {
			case <-s.exited:
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
		names = append(names, s.name)
	}
	return strings.Join(names, " / ") + " / ctrlbench"
}

// startCPU starts measuring the CPU time of every process and of the benchmark.
func (c *cluster) startCPU() cpuMeter {
	var pids []int
	for _, s := range c.procs() {
		pids = append(pids, s.cmd.Process.Pid)
	}
	return startCPU(pids...)
}

// memory adds one memory row per process; when says at which point, e.g. "after setup and flips".
func (c *cluster) memory(when string, t *table) error {
	if !c.split() {
		return memory(c.up.cmd.Process.Pid, "server", "server memory "+when+": VmRSS / VmHWM", t)
	}
	for _, s := range c.procs() {
		if err := memory(s.cmd.Process.Pid, s.name, s.name+" memory "+when+": VmRSS / VmHWM", t); err != nil {
			return err
		}
	}
	return nil
}
