// Package cluster runs a whole local svcnet cluster in one process tree: embedded etcd, the API
// server, the controllers, and (with --nodes) the node agents.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/svcnet/svcnet/internal/apiserver"
	"github.com/svcnet/svcnet/internal/controller"
	"github.com/svcnet/svcnet/internal/etcd"
	"github.com/svcnet/svcnet/internal/lbpool"
	"github.com/svcnet/svcnet/internal/localnet"
	"github.com/svcnet/svcnet/internal/pki"
)

// Config of `svcnet up`.
type Config struct {
	DataDir       string
	Nodes         int
	BindAddress   string
	APIPort       int
	ServiceCIDR   string
	NodePortRange string
	// EtcdClientURL is where the embedded etcd listens (port 0: any free port).
	EtcdClientURL string
	// Dataplane of the nodes' Service proxies: "nftables" (default) or "userspace".
	Dataplane string
	// Name tells clusters on one machine apart: their namespaces are named svcnet-NAME-...
	Name string
	// LoadBalancerPool is where LoadBalancer Services get their addresses, announced by the
	// nodes on the node network ("" gives none: such Services stay pending).
	LoadBalancerPool string
	// FeatureGates go to the API server (kube-apiserver's --feature-gates).
	FeatureGates string
}

// DefaultLoadBalancerPool is the pool of DESIGN.md's address plan, on the node network.
const DefaultLoadBalancerPool = "172.31.0.100-172.31.0.150"

// Prefix starts the name of every network namespace of the cluster.
func (c *Config) Prefix() string {
	if c.Name == "" {
		return "svcnet"
	}
	return "svcnet-" + c.Name
}

// DefaultDataDir is /var/lib/svcnet for root and ~/.svcnet otherwise.
func DefaultDataDir() string {
	if d := os.Getenv("SVCNET_DATA_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/svcnet"
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".svcnet"
	}
	return filepath.Join(home, ".svcnet")
}

// Default fills unset fields.
func (c *Config) Default() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	if c.BindAddress == "" {
		c.BindAddress = "127.0.0.1"
	}
	if c.APIPort == 0 {
		c.APIPort = 6443
	}
	if c.EtcdClientURL == "" {
		c.EtcdClientURL = "http://127.0.0.1:0"
	}
}

// Validate reports bad settings with how to fix them.
func (c *Config) Validate() error {
	var errs []error
	if c.Nodes < 0 {
		errs = append(errs, fmt.Errorf("--nodes %d: must be 0 or more", c.Nodes))
	}
	if c.Nodes > 0 {
		if _, err := localnet.NewPlan(c.netSettings()); err != nil {
			errs = append(errs, fmt.Errorf("--nodes %d --name %q: %w", c.Nodes, c.Name, err))
		}
	}
	if pool, err := lbpool.Parse(c.LoadBalancerPool); err != nil {
		errs = append(errs, fmt.Errorf("--load-balancer-pool: %w", err))
	} else if c.Nodes > 0 {
		if err := c.checkPoolOnNodeNetwork(pool); err != nil {
			errs = append(errs, fmt.Errorf("--load-balancer-pool %s: %w", c.LoadBalancerPool, err))
		}
	}
	if c.APIPort < 1 || c.APIPort > 65535 {
		errs = append(errs, fmt.Errorf("--port %d: must be 1-65535", c.APIPort))
	}
	if net.ParseIP(c.BindAddress) == nil {
		errs = append(errs, fmt.Errorf("--bind-address %q: not an IP address", c.BindAddress))
	}
	if err := apiserver.CheckFeatureGates(c.FeatureGates); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Up runs the cluster until ctx ends; it writes one line containing "ready" to out once the API
// serves requests and the kubeconfig is written.
func Up(ctx context.Context, c Config, out io.Writer) error {
	c.Default()
	if err := c.Validate(); err != nil {
		return err
	}
	start := time.Now()
	if c.Nodes > 0 {
		if err := CheckPrivileges(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir %s: %w (use --data-dir or SVCNET_DATA_DIR to pick another)", c.DataDir, err)
	}
	files := pki.In(c.DataDir)
	token, err := files.Ensure([]string{c.BindAddress})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	e, err := etcd.Start(ctx, etcd.Config{DataDir: filepath.Join(c.DataDir, "etcd"), ClientURL: c.EtcdClientURL, Quiet: true})
	if err != nil {
		return err
	}
	defer e.Close()

	api, err := apiserver.New(apiserver.Config{
		EtcdServers: []string{e.ClientURL}, BindAddress: c.BindAddress, Port: c.APIPort,
		CertFile: files.ServerCert, KeyFile: files.ServerKey, TokenFile: files.Tokens,
		ServiceCIDR: c.ServiceCIDR, NodePortRange: c.NodePortRange, WatchCache: true, FeatureGates: c.FeatureGates,
	})
	if err != nil {
		return err
	}
	ready := make(chan struct{})
	apiErr := make(chan error, 1)
	go func() { apiErr <- api.Run(ctx, ready) }()

	server := "https://" + net.JoinHostPort(c.BindAddress, strconv.Itoa(c.APIPort))
	select {
	case <-ready:
	case err := <-apiErr:
		return fmt.Errorf("API server: %w", err)
	case err := <-e.Err():
		return fmt.Errorf("etcd: %w", err)
	}
	if err := files.WriteKubeconfig(server, token); err != nil {
		return err
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", files.Kubeconfig)
	if err != nil {
		return err
	}
	ctrlErr := make(chan error, 1)
	// Without nodes nothing would announce the addresses: LoadBalancers stay pending, as in a
	// cluster without a load balancer implementation.
	var lbPool lbpool.Pool
	if c.Nodes > 0 {
		lbPool, _ = lbpool.Parse(c.LoadBalancerPool) // checked by Validate
	}
	// A stable identity lets a restarted `svcnet up` take its own lease back at once.
	host, _ := os.Hostname()
	go func() {
		ctrlErr <- controller.Run(ctx, restCfg, controller.Options{LeaderElect: true, Identity: "svcnet-up_" + host,
			// The local agents renew their 10 s leases every 2.5 s; a stopped agent's node shows
			// NotReady within 20 s.
			NodeMonitorGracePeriod: 20 * time.Second, LoadBalancerPool: lbPool})
	}()

	var nodes *localNodes
	if c.Nodes > 0 {
		nodes, err = startNodes(ctx, c, server, files.Kubeconfig, restCfg)
		if err != nil {
			return err
		}
		defer nodes.stop()
	}
	fmt.Fprintf(out, "svcnet ready in %s: API %s, kubeconfig %s\n", time.Since(start).Round(time.Millisecond), server, files.Kubeconfig)
	if c.Nodes > 0 {
		fmt.Fprintf(out, "  %d nodes Ready; try: svcnet kubectl --data-dir %s get nodes -o wide\n", c.Nodes, c.DataDir)
		fmt.Fprintf(out, "  reach NodePorts as an outside client: svcnet --data-dir %s exec --outside -- CMD\n", c.DataDir)
	} else {
		fmt.Fprintf(out, "  try: svcnet kubectl --data-dir %s get svc -A\n", c.DataDir)
	}
	slog.Info("cluster up", "dataDir", c.DataDir, "apiserver", server)

	select {
	case <-ctx.Done():
		cancel()
		// The API server drains its requests before returning.
		select {
		case <-apiErr:
		case <-time.After(10 * time.Second):
		}
		return nil
	case err := <-apiErr:
		return fmt.Errorf("API server stopped: %w", err)
	case err := <-ctrlErr:
		return fmt.Errorf("controllers stopped: %w", err)
	case err := <-nodes.failed():
		return err
	case err := <-e.Err():
		return fmt.Errorf("etcd stopped: %w", err)
	}
}
