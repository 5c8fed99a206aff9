package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/svcnet/svcnet/bench/internal/controlplane"
	"github.com/svcnet/svcnet/bench/internal/proc"
	"github.com/svcnet/svcnet/bench/internal/report"
)

// cluster is one `svcnet up` started by the benchmark.
type cluster struct {
	bin, name string
	data      string        // its --data-dir, under the benchmark's temp dir
	port      int           // its --port on 127.0.0.1
	up        *proc.Process // `svcnet up`; its log (stdout and stderr) is up.LogFile
	downDone  bool
}

// newName is a cluster name nobody else uses: nb and 8 random hex digits.
func newName() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "nb" + hex.EncodeToString(b)
}

// startCluster execs `svcnet up --nodes N --name NAME --data-dir DIR --port P` with a new name, a new
// data dir under root and a free loopback port. The first complete stdout line containing "ready"
// is marked. Should the benchmark itself be killed, the kernel sends `svcnet up` SIGTERM, so that up
// still removes its namespaces and processes on its way out.
func startCluster(bin, root string, nodes int) (*cluster, error) {
	port, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, name: newName(), port: port}
	c.data = filepath.Join(root, c.name)
	c.up, err = proc.Start(proc.Config{Name: "svcnet up", Bin: bin, DataDir: c.data, LogFile: filepath.Join(root, c.name+".log"),
		StdoutMark: "ready", WholeLines: true, Deathsig: syscall.SIGTERM,
		Args: []string{"up", "--nodes", strconv.Itoa(nodes), "--name", c.name, "--data-dir", c.data,
			"--bind-address", "127.0.0.1", "--port", strconv.Itoa(port)}})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// waitReady waits for the ready line: when it came and its text.
func (c *cluster) waitReady(ctx context.Context, limit time.Duration) (proc.Mark, error) {
	return c.up.WaitMark(ctx, c.up.Stdout, "ready line", limit)
}

// stop ends `svcnet up` by its PID: SIGTERM, then SIGKILL after limit. It returns how long the
// process took to exit and whether SIGTERM alone was enough.
func (c *cluster) stop(limit time.Duration) (time.Duration, bool) {
	took, graceful := c.up.Stop(limit)
	if !graceful {
		log.Printf("cluster %s: svcnet up (pid %d) still running %s after SIGTERM: SIGKILL", c.name, c.up.Pid(), limit)
	}
	return took, graceful
}

// down stops the cluster if it still runs, copies its logs when asked to, runs `svcnet down` on its
// data dir and checks that none of its network namespaces is left. It is safe to call twice.
func (c *cluster) down(logDir string) error {
	if c.downDone {
		return nil
	}
	c.downDone = true
	c.stop(30 * time.Second)
	if logDir != "" {
		c.copyLogs(logDir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, c.bin, "--data-dir", c.data, "down").CombinedOutput()
	took := time.Since(t0)
	msg := strings.TrimSpace(string(out))
	// A cluster that never got as far as its nodes has no state file: nothing for down to do.
	if err != nil && !strings.Contains(msg, "no cluster with nodes") {
		log.Printf("cluster %s: svcnet down: %v: %s", c.name, err, msg)
	}
	left, lerr := leftNamespaces(c.name)
	if lerr != nil {
		return fmt.Errorf("cluster %s: list network namespaces: %w", c.name, lerr)
	}
	if len(left) > 0 {
		return fmt.Errorf("cluster %s: network namespaces left after svcnet down (%s): %s", c.name, report.Dur(took), strings.Join(left, " "))
	}
	return nil
}

// copyLogs copies the up log and every agent log into dir/NAME/.
func (c *cluster) copyLogs(dir string) {
	dst := filepath.Join(dir, c.name)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		log.Printf("copy logs: %v", err)
		return
	}
	cp := func(from, to string) {
		if b, err := os.ReadFile(from); err == nil {
			_ = os.WriteFile(filepath.Join(dst, to), b, 0o644)
		}
	}
	cp(c.up.LogFile, "up.log")
	nodes, _ := filepath.Glob(filepath.Join(c.data, "nodes", "*", "agent.log"))
	for _, f := range nodes {
		cp(f, filepath.Base(filepath.Dir(f))+"-agent.log")
	}
}

// agentLog is where node's agent logs.
func (c *cluster) agentLog(node string) string {
	return filepath.Join(c.data, "nodes", node, "agent.log")
}

// nodeNetns is the path of node's network namespace.
func (c *cluster) nodeNetns(node string) string {
	return filepath.Join(netnsDir, "svcnet-"+c.name+"-"+node)
}

const netnsDir = "/run/netns"

// leftNamespaces lists the named network namespaces of cluster name.
func leftNamespaces(name string) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var left []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "svcnet-"+name+"-") || e.Name() == "svcnet-"+name {
			left = append(left, e.Name())
		}
	}
	return left, nil
}

// restConfig reads the cluster's admin kubeconfig.
func (c *cluster) restConfig() (*rest.Config, error) {
	b, err := os.ReadFile(filepath.Join(c.data, "kubeconfig"))
	if err != nil {
		return nil, err
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(b)
	if err != nil {
		return nil, err
	}
	if h := cfg.Host; !strings.Contains(h, "127.0.0.1:") {
		return nil, fmt.Errorf("kubeconfig points at %s, not 127.0.0.1", h)
	}
	return cfg, nil
}

// newClient returns a client-go clientset with no client-side rate limit, a 30 s limit per request,
// and its own connection.
func newClient(cfg *rest.Config) (*kubernetes.Clientset, error) {
	return controlplane.NewClient(cfg, 30*time.Second)
}

// readyInRE finds svcnet's own count in its ready line ("svcnet ready in 1.234s: ...").
var readyInRE = regexp.MustCompile(`ready in ([0-9.]+[a-zµ]+)`)
