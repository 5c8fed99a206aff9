package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/svcnet/svcnet/internal/agent"
	"github.com/svcnet/svcnet/internal/cluster"
	"github.com/svcnet/svcnet/internal/lbpool"
	"github.com/svcnet/svcnet/internal/netns"
	"github.com/svcnet/svcnet/internal/pki"
	"github.com/svcnet/svcnet/internal/podinit"
)

// restConfig loads a kubeconfig; socket, when set, replaces the network path to the server (the
// agents of a local cluster reach the API server through a unix socket across namespaces).
func restConfig(kubeconfig, socket string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w (start a cluster with `svcnet up` or pass --kubeconfig)", kubeconfig, err)
	}
	if socket != "" {
		cfg.Dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}
	}
	cfg.QPS, cfg.Burst = 100, 200
	return cfg, nil
}

func agentCmd() *cobra.Command {
	var c agent.Config
	var kubeconfig, socket, nodeIP, podCIDR, clusterCIDR, serviceCIDR, lbPool string
	var labels map[string]string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a node agent (pods, and later the proxy and DNS) for one node, in the current network namespace",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var errs []error
			if nodeIP != "" {
				ip, err := netip.ParseAddr(nodeIP)
				if err != nil {
					errs = append(errs, fmt.Errorf("--node-ip %q: not an IP address", nodeIP))
				}
				c.NodeIP = ip
			}
			if podCIDR != "" {
				p, err := netip.ParsePrefix(podCIDR)
				if err != nil {
					errs = append(errs, fmt.Errorf("--pod-cidr %q: not a CIDR such as 10.244.1.0/24", podCIDR))
				}
				c.PodCIDR = p
			}
			for _, f := range []struct {
				flag, val string
				dst       *netip.Prefix
			}{{"--cluster-cidr", clusterCIDR, &c.ClusterCIDR}, {"--service-cidr", serviceCIDR, &c.ServiceCIDR}} {
				p, err := netip.ParsePrefix(f.val)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s %q: not a CIDR", f.flag, f.val))
				}
				*f.dst = p
			}
			if err := errors.Join(errs...); err != nil {
				return err
			}
			pool, err := lbpool.Parse(lbPool)
			if err != nil {
				return fmt.Errorf("--load-balancer-pool: %w", err)
			}
			c.LoadBalancerPool = pool
			c.Labels = labels
			cfg, err := restConfig(kubeconfig, socket)
			if err != nil {
				return err
			}
			client, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			return agent.Run(cmd.Context(), client, c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the API server")
	f.StringVar(&socket, "api-socket", "", "reach the API server through this unix socket (local clusters)")
	f.StringVar(&c.NodeName, "node-name", "", "name of this node")
	f.StringVar(&nodeIP, "node-ip", "", "this node's InternalIP")
	f.StringVar(&podCIDR, "pod-cidr", "", "this node's pod CIDR, e.g. 10.244.1.0/24")
	f.StringVar(&c.StateDir, "state-dir", "", "where sandboxes and container logs are kept")
	f.StringVar(&c.PodNetnsPrefix, "pod-netns-prefix", "svcnet-pod-", "name prefix of pod network namespaces (must contain \"svcnet\")")
	f.StringSliceVar(&c.ClusterDNS, "cluster-dns", []string{"10.96.0.10"}, "nameservers in pods' resolv.conf")
	f.StringVar(&c.ClusterDomain, "cluster-domain", "cluster.local", "cluster DNS domain")
	f.StringToStringVar(&labels, "node-labels", nil, "labels added to the Node, key=value,...")
	f.DurationVar(&c.LeaseDuration, "lease-duration", 40*time.Second, "node heartbeat Lease duration (renewed every quarter of it)")
	f.BoolVar(&c.Proxy, "proxy", true, "run the Service proxy (nftables) on this node")
	f.StringVar(&c.ProxyDataplane, "dataplane", "nftables", "the Service proxy's dataplane: nftables (falls back to userspace where nf_tables is unavailable) or userspace")
	f.StringVar(&clusterCIDR, "cluster-cidr", "10.244.0.0/16", "the cluster's pod CIDR (traffic from outside it to Services is masqueraded)")
	f.StringVar(&serviceCIDR, "service-cidr", "10.96.0.0/12", "the Service IP range")
	f.BoolVar(&c.DNS, "dns", true, "serve cluster DNS on this node (on the --cluster-dns addresses, 169.254.20.10 and the node IP)")
	f.StringSliceVar(&c.DNSUpstreams, "dns-upstream", nil, "resolvers for names outside the cluster (default: the node's /etc/resolv.conf)")
	f.StringVar(&lbPool, "load-balancer-pool", "", "LoadBalancer addresses this node announces on the node network when elected (as MetalLB's layer 2 mode), e.g. 172.31.0.100-172.31.0.150; empty: none")
	f.StringVar(&c.HostNetns, "host-netns", "", "network namespace (path) from which the DNS upstreams are reached (local clusters)")
	return cmd
}

func downCmd(dir func() string) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Stop the local cluster and remove every network namespace, link and process it made",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cluster.Down(dir(), func(s string) { fmt.Fprintln(os.Stderr, s) })
		},
	}
}

func execCmd(dir func() string) *cobra.Command {
	var namespace, node string
	var outside bool
	cmd := &cobra.Command{
		Use:   "exec (POD | --node NAME | --outside) -- COMMAND [ARGS...]",
		Short: "Run a command inside a pod's, a node's or the outside client's network namespace",
		Example: `  svcnet exec web-0 -- wget -qO- http://my-service
  svcnet exec --node node-1 -- ip route
  svcnet exec --outside -- curl http://172.31.0.11:30007`,
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			if dash < 0 || dash >= len(args) {
				return errors.New("give the command after --, e.g. svcnet exec POD -- hostname")
			}
			target, argv := args[:dash], args[dash:]
			st, err := cluster.ReadState(dir())
			if err != nil {
				return err
			}
			var spec podinit.Spec
			hostname := false
			switch {
			case outside:
				spec.Netns = netns.Path(st.Outside)
			case node != "":
				for _, n := range st.Nodes {
					if n.Name == node {
						spec.Netns = netns.Path(n.Netns)
					}
				}
				if spec.Netns == "" {
					return fmt.Errorf("no node %q in this cluster (nodes: %s)", node, nodeNames(st))
				}
			case len(target) == 1:
				spec, err = podSpec(cmd.Context(), dir(), namespace, target[0])
				if err != nil {
					return err
				}
				hostname = spec.Hostname != ""
			default:
				return errors.New("name one pod, or use --node NAME or --outside")
			}
			spec.Argv = argv
			self, err := os.Executable()
			if err != nil {
				return err
			}
			c := exec.Command(self, spec.Args()...)
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
			c.SysProcAttr = podinit.SysProcAttr(hostname)
			c.SysProcAttr.Setsid = false
			err = c.Run()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				os.Exit(ee.ExitCode())
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "the pod's namespace")
	cmd.Flags().StringVar(&node, "node", "", "run in this node's network namespace")
	cmd.Flags().BoolVar(&outside, "outside", false, "run in the outside client's namespace (on the node network, not a node)")
	return cmd
}

func nodeNames(st *cluster.State) string {
	var names []string
	for _, n := range st.Nodes {
		names = append(names, n.Name)
	}
	return strings.Join(names, ", ")
}

// podSpec finds a pod's sandbox on its local node.
func podSpec(ctx context.Context, dataDir, namespace, name string) (podinit.Spec, error) {
	cfg, err := restConfig(pki.In(dataDir).Kubeconfig, "")
	if err != nil {
		return podinit.Spec{}, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return podinit.Spec{}, err
	}
	pod, err := client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return podinit.Spec{}, err
	}
	if pod.Spec.NodeName == "" {
		return podinit.Spec{}, fmt.Errorf("pod %s/%s is not scheduled to a node yet", namespace, name)
	}
	p, host, resolv, hosts, err := agent.ReadSandbox(cluster.NodeDir(dataDir, pod.Spec.NodeName), string(pod.UID))
	if err != nil {
		return podinit.Spec{}, fmt.Errorf("pod %s/%s has no sandbox on %s yet (phase %s)", namespace, name, pod.Spec.NodeName, pod.Status.Phase)
	}
	return podinit.Spec{Netns: p, Hostname: host, Resolv: resolv, Hosts: hosts}, nil
}

func logsCmd(dir func() string) *cobra.Command {
	var namespace, container string
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs POD",
		Short: "Print a container's output (-f to follow)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := restConfig(pki.In(dir()).Kubeconfig, "")
			if err != nil {
				return err
			}
			client, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			pod, err := client.CoreV1().Pods(namespace).Get(cmd.Context(), args[0], metav1.GetOptions{})
			if err != nil {
				return err
			}
			if container == "" {
				if len(pod.Spec.Containers) > 1 {
					var names []string
					for _, c := range pod.Spec.Containers {
						names = append(names, c.Name)
					}
					return fmt.Errorf("a container name must be specified for pod %s, choose one of: [%s]", pod.Name, strings.Join(names, " "))
				}
				container = pod.Spec.Containers[0].Name
			}
			if pod.Spec.NodeName == "" {
				return fmt.Errorf("pod %s/%s is not scheduled to a node yet", namespace, pod.Name)
			}
			path := agent.LogPath(cluster.NodeDir(dir(), pod.Spec.NodeName), string(pod.UID), container)
			f, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("container %q in pod %q has no logs yet", container, pod.Name)
			}
			defer f.Close()
			for {
				if _, err := io.Copy(os.Stdout, f); err != nil {
					return err
				}
				if !follow {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(200 * time.Millisecond):
				}
			}
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "the pod's namespace")
	cmd.Flags().StringVarP(&container, "container", "c", "", "container name (default: the only one)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output")
	return cmd
}
