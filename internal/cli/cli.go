// Package cli defines svcnet's commands: each parses its flags into a component's Config, which
// validates itself, and calls the component's Run.
package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/svcnet/svcnet/internal/agnhost"
	"github.com/svcnet/svcnet/internal/apiserver"
	"github.com/svcnet/svcnet/internal/cluster"
	"github.com/svcnet/svcnet/internal/controller"
	"github.com/svcnet/svcnet/internal/etcd"
	"github.com/svcnet/svcnet/internal/kubectl"
	"github.com/svcnet/svcnet/internal/lbpool"
	"github.com/svcnet/svcnet/internal/pki"
	"github.com/svcnet/svcnet/internal/podinit"
)

// Main runs svcnet with args and returns the exit status.
func Main(args []string) int {
	// Container entry points get their arguments untouched: they are the container's, not ours.
	if len(args) > 0 {
		switch args[0] {
		case "pod-init":
			return podinit.Main(args[1:], os.Stderr)
		case "agnhost":
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return agnhost.Main(ctx, args[1:], os.Stdout, os.Stderr)
		}
	}
	// kubectl gets its arguments untouched, flags and all; only --data-dir before or right after
	// "kubectl" is ours (kubectl has no flag of that name).
	if dataDir, kargs, ok := kubectlArgs(args); ok {
		if dataDir == "" {
			dataDir = cluster.DefaultDataDir()
		}
		kubectl.Run(pki.In(dataDir).Kubeconfig, kargs)
		return 0
	}
	root := newRoot()
	root.SetArgs(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	return 0
}

// kubectlArgs recognises "svcnet [--data-dir DIR] kubectl [--data-dir DIR] ARGS..." and returns
// the data directory given (last one wins, "" for none) and kubectl's own arguments.
func kubectlArgs(args []string) (dataDir string, kargs []string, ok bool) {
	// leading consumes --data-dir flags from the front of a, returning the rest.
	leading := func(a []string) []string {
		for len(a) > 0 {
			switch {
			case a[0] == "--data-dir" && len(a) > 1:
				dataDir, a = a[1], a[2:]
			case strings.HasPrefix(a[0], "--data-dir="):
				dataDir, a = strings.TrimPrefix(a[0], "--data-dir="), a[1:]
			default:
				return a
			}
		}
		return a
	}
	rest := leading(args)
	if len(rest) == 0 || rest[0] != "kubectl" {
		return "", nil, false
	}
	return dataDir, leading(rest[1:]), true
}

func newRoot() *cobra.Command {
	var dataDir string
	root := &cobra.Command{
		Use:           "svcnet",
		Short:         "Kubernetes Service networking: ClusterIP, NodePort, LoadBalancer, ExternalName, headless, DNS",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&dataDir, "data-dir", "", "cluster state directory (default $SVCNET_DATA_DIR, /var/lib/svcnet as root, ~/.svcnet otherwise)")
	dir := func() string {
		if dataDir != "" {
			return dataDir
		}
		return cluster.DefaultDataDir()
	}
	root.AddCommand(upCmd(dir), downCmd(dir), apiserverCmd(), etcdCmd(dir), controllerManagerCmd(dir), agentCmd(),
		execCmd(dir), logsCmd(dir), dnsCmd(dir), proxyRulesCmd(dir), kubectlCmd(), versionCmd())
	return root
}

// tuneGC sets the server commands' GC target to 75% unless GOGC says otherwise: the API server's live
// heap is dominated by its watch cache, and collecting a little earlier keeps resident memory about
// 20 MB lower at 10,000 Services for no measurable throughput cost (bench/README.md).
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(75)
	}
}

func upCmd(dir func() string) *cobra.Command {
	var c cluster.Config
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a local cluster in the foreground (Ctrl-C stops it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tuneGC()
			startPprof()
			c.DataDir = dir()
			return cluster.Up(cmd.Context(), c, os.Stdout)
		},
	}
	f := cmd.Flags()
	f.IntVar(&c.Nodes, "nodes", 2, "number of nodes, each a network namespace with its agent (0: control plane only, no root needed)")
	f.StringVar(&c.Dataplane, "dataplane", "nftables", "the nodes' Service proxy: nftables, or userspace where nftables cannot be used")
	f.StringVar(&c.Name, "name", "", "cluster name, for running several clusters side by side: namespaces are named svcnet-NAME-...")
	f.StringVar(&c.BindAddress, "bind-address", "127.0.0.1", "address the API server listens on")
	f.IntVar(&c.APIPort, "port", 6443, "API server port")
	f.StringVar(&c.ServiceCIDR, "service-cidr", "10.96.0.0/12", "ClusterIP range")
	f.StringVar(&c.LoadBalancerPool, "load-balancer-pool", cluster.DefaultLoadBalancerPool, "addresses for LoadBalancer Services, announced on the node network (\"\": none, they stay pending)")
	f.StringVar(&c.NodePortRange, "node-port-range", "30000-32767", "NodePort range")
	f.StringVar(&c.FeatureGates, "feature-gates", "", "the API server's feature gates to set, as kube-apiserver's flag: comma-separated Name=true|false")
	f.StringVar(&c.EtcdClientURL, "etcd-client-url", "http://127.0.0.1:0", "where the embedded etcd listens (port 0: any free port)")
	return cmd
}

func apiserverCmd() *cobra.Command {
	var c apiserver.Config
	var etcdTLS storagebackend.TransportConfig
	cmd := &cobra.Command{
		Use:   "apiserver",
		Short: "Run the API server alone, over an external etcd (multi-machine clusters)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tuneGC()
			startPprof()
			c.EtcdTLS = etcdTLS
			s, err := apiserver.New(c)
			if err != nil {
				return err
			}
			ready := make(chan struct{})
			go func() {
				<-ready
				fmt.Printf("svcnet apiserver ready on https://%s:%d\n", c.BindAddress, c.Port)
			}()
			return s.Run(cmd.Context(), ready)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&c.EtcdServers, "etcd-servers", nil, "etcd client URLs, comma-separated")
	f.StringVar(&etcdTLS.TrustedCAFile, "etcd-cafile", "", "CA for etcd's serving certificate")
	f.StringVar(&etcdTLS.CertFile, "etcd-certfile", "", "client certificate for etcd")
	f.StringVar(&etcdTLS.KeyFile, "etcd-keyfile", "", "client key for etcd")
	f.StringVar(&c.BindAddress, "bind-address", "127.0.0.1", "address to listen on")
	f.IntVar(&c.Port, "secure-port", 6443, "HTTPS port")
	f.StringVar(&c.CertFile, "tls-cert-file", "", "serving certificate")
	f.StringVar(&c.KeyFile, "tls-private-key-file", "", "serving key")
	f.StringVar(&c.TokenFile, "token-auth-file", "", "bearer tokens, CSV: token,user,uid,\"group1,group2\"")
	f.StringVar(&c.ServiceCIDR, "service-cluster-ip-range", "10.96.0.0/12", "ClusterIP range")
	f.StringVar(&c.NodePortRange, "service-node-port-range", "30000-32767", "NodePort range")
	f.StringVar(&c.AdvertiseAddress, "advertise-address", "", "address published in the kubernetes Service's endpoints")
	f.BoolVar(&c.WatchCache, "watch-cache", true, "serve lists and watches from memory")
	f.StringVar(&c.FeatureGates, "feature-gates", "", "kube-apiserver feature gates to set, e.g. ListFromCacheSnapshot=true (comma-separated Name=true|false)")
	return cmd
}

func etcdCmd(dir func() string) *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:   "etcd",
		Short: "Run a single-member etcd for API servers started with `svcnet apiserver`",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := etcd.Start(cmd.Context(), etcd.Config{DataDir: filepath.Join(dir(), "etcd"), ClientURL: url, Quiet: true})
			if err != nil {
				return err
			}
			defer e.Close()
			fmt.Printf("svcnet etcd ready on %s\n", e.ClientURL)
			select {
			case <-cmd.Context().Done():
				return nil
			case err := <-e.Err():
				return err
			}
		},
	}
	cmd.Flags().StringVar(&url, "listen-client-urls", "http://127.0.0.1:2379", "client URL")
	return cmd
}

func controllerManagerCmd(dir func() string) *cobra.Command {
	var kubeconfig, lbPool, metricsAddr string
	var o controller.Options
	cmd := &cobra.Command{
		Use:   "controller-manager",
		Short: "Run the cluster controllers (EndpointSlices, workloads, scheduler, load balancer addresses, namespace deletion, garbage collection)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := lbpool.Parse(lbPool)
			if err != nil {
				return fmt.Errorf("--load-balancer-pool: %w", err)
			}
			o.LoadBalancerPool = pool
			if metricsAddr != "" {
				ln, err := listenMetrics(metricsAddr)
				if err != nil {
					return err
				}
				go serveMetrics(cmd.Context(), ln)
			}
			startPprof()
			if kubeconfig == "" {
				kubeconfig = pki.In(dir()).Kubeconfig
			}
			cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return fmt.Errorf("load kubeconfig %s: %w (start a cluster with `svcnet up` or pass --kubeconfig)", kubeconfig, err)
			}
			return controller.Run(cmd.Context(), cfg, o)
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the API server (default: the data dir's)")
	cmd.Flags().BoolVar(&o.LeaderElect, "leader-elect", true, "compete for the kube-system/svcnet-controller-manager Lease, so several replicas can run")
	cmd.Flags().Int32Var(&o.MaxEndpointsPerSlice, "max-endpoints-per-slice", 100, "most endpoints in one EndpointSlice")
	cmd.Flags().IntVar(&o.Workers, "workers", 2, "concurrent syncs per controller")
	cmd.Flags().StringVar(&lbPool, "load-balancer-pool", "", "addresses for LoadBalancer Services without a loadBalancerClass, e.g. 172.31.0.100-172.31.0.150 (empty: none are allocated)")
	cmd.Flags().IntVar(&o.EndpointWorkers, "concurrent-endpoint-syncs", 5, "concurrent syncs of each endpoint controller (EndpointSlices, Endpoints, mirroring), as kube's flags of that name")
	cmd.Flags().DurationVar(&o.NodeMonitorGracePeriod, "node-monitor-grace-period", 40*time.Second, "how long a node may miss heartbeats before it is marked unreachable")
	cmd.Flags().StringVar(&metricsAddr, "metrics-bind-address", "", "host:port to serve /metrics (work queues, API requests) and /healthz on, in plain HTTP, e.g. 127.0.0.1:10257 (empty: not served)")
	return cmd
}

// kubectlCmd only documents the subcommand; Main runs kubectl before cobra parses anything.
func kubectlCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "kubectl [args...]",
		Short:              "Run the embedded kubectl against this cluster",
		DisableFlagParsing: true,
		RunE:               func(*cobra.Command, []string) error { return nil },
	}
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the Kubernetes API version svcnet implements",
		Run: func(*cobra.Command, []string) {
			fmt.Printf("svcnet (Kubernetes API v%s)\n", apiserver.KubeVersion)
		},
	}
}
