package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/svcnet/svcnet/internal/lbpool"
	"github.com/svcnet/svcnet/internal/localnet"
	"github.com/svcnet/svcnet/internal/netns"
	"github.com/svcnet/svcnet/internal/podinit"
)

func (c *Config) netSettings() localnet.Settings {
	s := localnet.DefaultSettings(c.Nodes)
	s.Prefix = c.Prefix()
	return s
}

// State is what `svcnet up` records for the commands that reach into the cluster's namespaces
// (exec, logs, down).
type State struct {
	Prefix  string      `json:"prefix"`
	PID     int         `json:"pid"`
	Nodes   []NodeState `json:"nodes"`
	Outside string      `json:"outsideNetns"`
}

// NodeState is one node of State.
type NodeState struct {
	Name     string `json:"name"`
	Netns    string `json:"netns"`
	IP       string `json:"ip"`
	StateDir string `json:"stateDir"`
}

// StatePath is where State is kept in a data dir.
func StatePath(dataDir string) string { return filepath.Join(dataDir, "cluster.json") }

// ReadState loads the State of the cluster in dataDir.
func ReadState(dataDir string) (*State, error) {
	b, err := os.ReadFile(StatePath(dataDir))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no cluster with nodes in %s: start one with `svcnet up --nodes N` (or pass --data-dir)", dataDir)
		}
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", StatePath(dataDir), err)
	}
	return &s, nil
}

// NodeDir is a node's agent state directory.
func NodeDir(dataDir, node string) string { return filepath.Join(dataDir, "nodes", node) }

// CheckPrivileges says what a cluster with nodes needs and is missing.
func CheckPrivileges() error {
	if os.Geteuid() != 0 {
		return errors.New("nodes run in network namespaces, which need root: run `sudo svcnet up`, or `svcnet up --nodes 0` for the control plane alone")
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return errors.New("this kernel has no network namespaces (CONFIG_NET_NS)")
	}
	if err := os.MkdirAll(netns.Dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", netns.Dir, err)
	}
	return nil
}

type localNodes struct {
	plan   localnet.Plan
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errc   chan error
	mu     sync.Mutex
	procs  map[string]*os.Process
}

func (n *localNodes) failed() <-chan error {
	if n == nil {
		return nil
	}
	return n.errc
}

// startNodes builds the node network, starts one agent per node inside its namespace, and waits
// until every node is Ready.
func startNodes(ctx context.Context, c Config, server, kubeconfig string, restCfg *rest.Config) (*localNodes, error) {
	if err := CheckPrivileges(); err != nil {
		return nil, err
	}
	plan, err := localnet.NewPlan(c.netSettings())
	if err != nil {
		return nil, err
	}
	// Whatever a crashed run left goes first: processes, pods' and nodes' namespaces.
	if err := localnet.Teardown(plan.Prefix, 2*time.Second); err != nil {
		return nil, fmt.Errorf("remove the previous run's namespaces: %w", err)
	}
	if err := localnet.Apply(plan); err != nil {
		_ = localnet.Teardown(plan.Prefix, 0)
		return nil, fmt.Errorf("node network: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(c.DataDir, "api.sock")
	closeSock, err := forwardUnix(ctx, sock, strings.TrimPrefix(server, "https://"))
	if err != nil {
		return nil, fmt.Errorf("API socket for the agents: %w", err)
	}
	st := State{Prefix: plan.Prefix, PID: os.Getpid(), Outside: plan.Outside.Netns}
	for _, nd := range plan.Nodes {
		st.Nodes = append(st.Nodes, NodeState{Name: nd.Name, Netns: nd.Netns, IP: nd.IP.Addr().String(), StateDir: NodeDir(c.DataDir, nd.Name)})
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(StatePath(c.DataDir), b, 0o600); err != nil {
		return nil, err
	}
	dnsIP, err := ensureDNSService(ctx, restCfg, c.ServiceCIDR)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithCancel(ctx)
	n := &localNodes{plan: plan, cancel: cancel, errc: make(chan error, 1), procs: map[string]*os.Process{}}
	for _, nd := range plan.Nodes {
		args := []string{"agent", "--kubeconfig", kubeconfig, "--api-socket", sock,
			"--node-name", nd.Name, "--node-ip", nd.IP.Addr().String(), "--pod-cidr", nd.PodCIDR.String(),
			"--state-dir", NodeDir(c.DataDir, nd.Name), "--pod-netns-prefix", localnet.PodNetnsPrefix(plan.Prefix),
			"--lease-duration", "10s", "--cluster-dns", dnsIP, "--dataplane", dataplane(c.Dataplane), "--service-cidr", serviceCIDR(c.ServiceCIDR),
			"--load-balancer-pool", c.LoadBalancerPool,
			// The nodes' namespaces have no route to the host's resolvers; the agents reach them
			// through sockets made in this process's namespace.
			"--host-netns", fmt.Sprintf("/proc/%d/ns/net", os.Getpid())}
		if err := os.MkdirAll(NodeDir(c.DataDir, nd.Name), 0o700); err != nil {
			cancel()
			return nil, err
		}
		n.wg.Add(1)
		go n.supervise(actx, self, nd, args, c.DataDir)
	}
	stopAll := func() {
		cancel()
		n.wg.Wait()
		closeSock()
	}
	if err := waitNodesReady(ctx, restCfg, plan, n.errc, filepath.Join(c.DataDir, "nodes")); err != nil {
		stopAll()
		_ = localnet.Teardown(plan.Prefix, 0)
		return nil, err
	}
	n.cancel = func() { stopAll() }
	return n, nil
}

// supervise runs a node's agent in the node's namespace and restarts it if it dies, as a service
// manager would restart a kubelet.
func (n *localNodes) supervise(ctx context.Context, self string, nd localnet.Node, args []string, dataDir string) {
	defer n.wg.Done()
	for attempt := 0; ; attempt++ {
		logf, err := os.OpenFile(filepath.Join(NodeDir(dataDir, nd.Name), "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			n.fail(fmt.Errorf("agent log of %s: %w", nd.Name, err))
			return
		}
		spec := podinit.Spec{Netns: netns.Path(nd.Netns), Argv: append([]string{self}, args...)}
		cmd := exec.Command(self, spec.Args()...)
		cmd.Stdout, cmd.Stderr = logf, logf
		// The agent stops with `svcnet up`, even when up is killed; its pods stay until the
		// namespaces are removed (by up on its way out, or by the next up or down).
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
		if err := cmd.Start(); err != nil {
			logf.Close()
			n.fail(fmt.Errorf("start agent of %s: %w", nd.Name, err))
			return
		}
		n.mu.Lock()
		n.procs[nd.Name] = cmd.Process
		n.mu.Unlock()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			logf.Close()
			return
		case err := <-done:
			logf.Close()
			slog.Warn("node agent exited; restarting it", "node", nd.Name, "err", err, "log", filepath.Join(NodeDir(dataDir, nd.Name), "agent.log"))
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

func (n *localNodes) fail(err error) {
	select {
	case n.errc <- err:
	default:
	}
}

// stop ends the agents, then every process and namespace of the cluster.
func (n *localNodes) stop() {
	n.cancel()
	if err := localnet.Teardown(n.plan.Prefix, 5*time.Second); err != nil {
		slog.Warn("removing the node network", "err", err)
	}
}

func waitNodesReady(ctx context.Context, cfg *rest.Config, plan localnet.Plan, errc chan error, logDir string) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err == nil {
			ready := 0
			for _, want := range plan.Nodes {
				for _, nd := range list.Items {
					if nd.Name == want.Name && nodeReady(&nd) {
						ready++
					}
				}
			}
			if ready == len(plan.Nodes) {
				return nil
			}
		}
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nodes not Ready after 60 s; see the agents' logs, %s/*/agent.log", logDir)
		}
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Down stops a running `svcnet up` of this data dir (by the pid it recorded, checked to be svcnet)
// and removes every namespace and process of the cluster, also after a crash.
func Down(dataDir string, out func(string)) error {
	st, err := ReadState(dataDir)
	if err != nil {
		return err
	}
	if st.PID > 0 && isSvcnetUp(st.PID) {
		out(fmt.Sprintf("stopping svcnet up (pid %d)", st.PID))
		_ = syscall.Kill(st.PID, syscall.SIGTERM)
		for i := 0; i < 300 && isSvcnetUp(st.PID); i++ {
			time.Sleep(50 * time.Millisecond)
		}
		if isSvcnetUp(st.PID) {
			_ = syscall.Kill(st.PID, syscall.SIGKILL)
		}
	}
	if err := localnet.Teardown(st.Prefix, 5*time.Second); err != nil {
		return err
	}
	for _, nd := range st.Nodes {
		_ = os.RemoveAll(nd.StateDir)
	}
	_ = os.Remove(filepath.Join(dataDir, "api.sock"))
	out(fmt.Sprintf("removed the network namespaces %s-* and their processes", st.Prefix))
	return nil
}

func isSvcnetUp(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	return len(args) > 1 && strings.Contains(filepath.Base(args[0]), "svcnet") && containsArg(args, "up")
}

func containsArg(args []string, a string) bool {
	for _, x := range args {
		if x == a {
			return true
		}
	}
	return false
}

// ensureDNSService creates the kube-system/kube-dns Service at the tenth address of the service
// CIDR (10.96.0.10 by default), as cluster installers do. It has no selector: each node's agent
// adds its own DNS server to its endpoints.
func ensureDNSService(ctx context.Context, cfg *rest.Config, cidr string) (string, error) {
	p, err := netip.ParsePrefix(serviceCIDR(cidr))
	if err != nil {
		return "", fmt.Errorf("service CIDR %q: %w", cidr, err)
	}
	ip := p.Masked().Addr()
	for range 10 {
		ip = ip.Next()
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: metav1.NamespaceSystem,
			Labels: map[string]string{"k8s-app": "kube-dns", "kubernetes.io/name": "svcnet-dns", "kubernetes.io/cluster-service": "true"}},
		Spec: corev1.ServiceSpec{ClusterIP: ip.String(), Ports: []corev1.ServicePort{
			{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(53)},
			{Name: "dns-tcp", Protocol: corev1.ProtocolTCP, Port: 53, TargetPort: intstr.FromInt32(53)},
		}},
	}
	_, err = client.CoreV1().Services(metav1.NamespaceSystem).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("create the kube-dns Service: %w", err)
	}
	return ip.String(), nil
}

func serviceCIDR(s string) string {
	if s == "" {
		return "10.96.0.0/12"
	}
	return s
}

func dataplane(s string) string {
	if s == "" {
		return "nftables"
	}
	return s
}

// checkPoolOnNodeNetwork makes sure the load balancer addresses can be announced with ARP on the
// node network: inside its subnet, and not the address of a node or of the outside client.
func (c *Config) checkPoolOnNodeNetwork(pool lbpool.Pool) error {
	if pool.Empty() {
		return nil
	}
	s := c.netSettings()
	plan, err := localnet.NewPlan(s)
	if err != nil {
		return nil // reported by Validate for --nodes
	}
	taken := map[netip.Addr]string{plan.Outside.IP.Addr(): "the outside client's"}
	for _, n := range plan.Nodes {
		taken[n.IP.Addr()] = n.Name + "'s"
	}
	var bad error
	pool.First(func(a netip.Addr) bool {
		if !s.NodeSubnet.Contains(a) {
			bad = fmt.Errorf("%s is outside the node network %s, where nodes announce addresses with ARP", a, s.NodeSubnet)
		} else if who, ok := taken[a]; ok {
			bad = fmt.Errorf("%s is %s address", a, who)
		}
		return bad != nil
	})
	return bad
}
