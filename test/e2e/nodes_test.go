package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// needRoot skips a test that needs network namespaces when not root, except under CI, where it
// must run.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true: this test needs root (network namespaces); run CI as root")
	}
	t.Skip("needs root for network namespaces; run as root (CI does)")
}

// localCluster is a `svcnet up --nodes N` of a test, under a unique name.
type localCluster struct {
	t       *testing.T
	dataDir string
	name    string
	proc    *proc
	client  kubernetes.Interface
}

func startCluster(t *testing.T, nodes int) *localCluster {
	t.Helper()
	needRoot(t)
	c := &localCluster{t: t, dataDir: t.TempDir(), name: fmt.Sprintf("t%d", rand.IntN(1_000_000))}
	// Cleanup runs even when the test fails: the cluster's processes and namespaces go.
	t.Cleanup(func() {
		if c.proc != nil {
			c.proc.kill(syscall.SIGKILL)
		}
		out, err := exec.Command(svcnetBin, "--data-dir", c.dataDir, "down").CombinedOutput()
		if err != nil {
			t.Logf("svcnet down: %v: %s", err, out)
		}
	})
	c.proc = start(t, "up", "--data-dir", c.dataDir, "--port", fmt.Sprint(freePort(t)), "--nodes", fmt.Sprint(nodes), "--name", c.name)
	c.client = clientFor(t, filepath.Join(c.dataDir, "kubeconfig"))
	return c
}

func (c *localCluster) prefix() string { return "svcnet-" + c.name }

// exec runs svcnet exec with args and returns its combined output.
func (c *localCluster) exec(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, svcnetBin, append([]string{"--data-dir", c.dataDir, "exec"}, args...)...).CombinedOutput()
	return string(out), err
}

func (c *localCluster) kubectl(args ...string) string {
	c.t.Helper()
	return kubectls(c.t)[0].must(c.t, filepath.Join(c.dataDir, "kubeconfig"), args...)
}

func poll(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return cond()
	})
	if err != nil {
		t.Fatalf("%s: not within %s (%v)", what, timeout, err)
	}
}

func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.PodIP == "" {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func readyPods(t *testing.T, client kubernetes.Interface, ns, selector string) []corev1.Pod {
	t.Helper()
	list, err := client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if podReady(&p) {
			out = append(out, p)
		}
	}
	return out
}

func agnhostDeployment(name string, replicas int32, probe *corev1.Probe) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "agnhost", Image: "registry.k8s.io/e2e-test-images/agnhost:2.53",
					Args:           []string{"netexec", "--http-port=8080"},
					Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
					ReadinessProbe: probe,
				}}},
			},
		},
	}
}

// TestNodesAndPods is issue 4's acceptance 1-3 on a 3-node cluster: nodes Ready with their IPs, a
// 6-replica Deployment spread over them with addresses from each node's range, every pod reaching
// every other by IP across nodes, a deleted pod replaced with a new IP that the endpoints follow,
// and a failing readiness probe taking a pod out of the endpoints and back.
func TestNodesAndPods(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()

	out := c.kubectl("get", "nodes", "-o", "wide")
	nodeIPs := map[string]string{}
	for i := 1; i <= 3; i++ {
		name, ip := fmt.Sprintf("node-%d", i), fmt.Sprintf("172.31.0.%d", 10+i)
		nodeIPs[name] = ip
		line := lineWith(out, name)
		if !strings.Contains(line, " Ready ") || !strings.Contains(line, ip) {
			t.Errorf("kubectl get nodes -o wide: %s not Ready with %s:\n%s", name, ip, out)
		}
	}
	nodes, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cidrs := map[string]netip.Prefix{}
	for _, n := range nodes.Items {
		cidrs[n.Name] = netip.MustParsePrefix(n.Spec.PodCIDR)
	}

	// Without a readiness probe a pod is Ready as soon as its process runs, before it listens (as
	// in Kubernetes); the probe makes Ready mean "answers".
	serving := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1}
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, agnhostDeployment("web", 6, serving), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pods []corev1.Pod
	poll(t, 60*time.Second, "6 web pods Ready", func() (bool, error) {
		pods = readyPods(t, c.client, "default", "app=web")
		return len(pods) == 6, nil
	})
	perNode := map[string]int{}
	ips := map[string]string{}
	for _, p := range pods {
		perNode[p.Spec.NodeName]++
		if other, dup := ips[p.Status.PodIP]; dup {
			t.Errorf("pods %s and %s share the IP %s", other, p.Name, p.Status.PodIP)
		}
		ips[p.Status.PodIP] = p.Name
		if !cidrs[p.Spec.NodeName].Contains(netip.MustParseAddr(p.Status.PodIP)) {
			t.Errorf("pod %s on %s has IP %s outside the node's pod CIDR %s", p.Name, p.Spec.NodeName, p.Status.PodIP, cidrs[p.Spec.NodeName])
		}
		if p.Status.HostIP != nodeIPs[p.Spec.NodeName] {
			t.Errorf("pod %s hostIP %s, want %s", p.Name, p.Status.HostIP, nodeIPs[p.Spec.NodeName])
		}
	}
	if len(perNode) != 3 {
		t.Errorf("6 replicas not spread over 3 nodes: %v", perNode)
	}
	wide := c.kubectl("get", "pods", "-o", "wide")
	for _, p := range pods {
		if line := lineWith(wide, p.Name); !strings.Contains(line, p.Status.PodIP) || !strings.Contains(line, p.Spec.NodeName) || !strings.Contains(line, "Running") {
			t.Errorf("kubectl get pods -o wide, %s: %q", p.Name, line)
		}
	}
	// Every pod reaches every pod by IP, across nodes: agnhost's /hostname answers with its name.
	for _, from := range pods {
		for _, to := range pods {
			got, err := c.exec(from.Name, "--", "curl", "-sS", "-m", "5", fmt.Sprintf("http://%s:8080/hostname", to.Status.PodIP))
			if err != nil || strings.TrimSpace(got) != to.Name {
				t.Errorf("%s (%s) -> %s (%s): %q %v", from.Name, from.Spec.NodeName, to.Name, to.Spec.NodeName, got, err)
			}
		}
	}

	// Acceptance 2: a deleted pod is replaced, with a new IP, and the endpoints follow.
	victim := pods[0]
	if err := c.client.CoreV1().Pods("default").Delete(ctx, victim.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 60*time.Second, "the deleted pod replaced and the EndpointSlice following", func() (bool, error) {
		now := readyPods(t, c.client, "default", "app=web")
		if len(now) != 6 {
			return false, nil
		}
		ips := map[string]bool{}
		for _, p := range now {
			if p.Name == victim.Name || p.Status.PodIP == victim.Status.PodIP {
				return false, nil
			}
			ips[p.Status.PodIP] = true
		}
		return sliceAddrsEqual(t, c.client, "web", ips), nil
	})

	// Acceptance 3: a failing readiness probe takes the pod out of the endpoints and back in.
	flag := filepath.Join(t.TempDir(), "ready")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"test", "-e", flag}}},
		PeriodSeconds: 1, FailureThreshold: 1}
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, agnhostDeployment("probed", 1, probe), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "probed"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "probed"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var probed corev1.Pod
	poll(t, 60*time.Second, "the probed pod Ready and in its EndpointSlice", func() (bool, error) {
		ps := readyPods(t, c.client, "default", "app=probed")
		if len(ps) != 1 {
			return false, nil
		}
		probed = ps[0]
		return sliceAddrsEqual(t, c.client, "probed", map[string]bool{probed.Status.PodIP: true}), nil
	})
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "the failing probe taking the pod out of the endpoints", func() (bool, error) {
		return sliceAddrsEqual(t, c.client, "probed", map[string]bool{}), nil
	})
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "the passing probe putting the pod back", func() (bool, error) {
		return sliceAddrsEqual(t, c.client, "probed", map[string]bool{probed.Status.PodIP: true}), nil
	})
}

// sliceAddrsEqual reports whether the ready endpoints of the service's slices are exactly ips.
func sliceAddrsEqual(t *testing.T, client kubernetes.Interface, svc string, ips map[string]bool) bool {
	t.Helper()
	list, err := client.DiscoveryV1().EndpointSlices("default").List(context.Background(), metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, s := range list.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				for _, a := range e.Addresses {
					got[a] = true
				}
			}
		}
	}
	if len(got) != len(ips) {
		return false
	}
	for ip := range ips {
		if !got[ip] {
			return false
		}
	}
	return true
}

func lineWith(out, word string) string {
	for _, l := range strings.Split(out, "\n") {
		for _, f := range strings.Fields(l) {
			if f == word {
				return l
			}
		}
	}
	return ""
}

// TestStatefulSetStableNames is acceptance 5: web-0, web-1, web-2 with stable names and hostnames
// behind a headless Service, recreated under the same name.
func TestStatefulSetStableNames(t *testing.T) {
	c := startCluster(t, 2)
	ctx := context.Background()
	labels := map[string]string{"app": "nginx"}
	if _, err := c.client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "nginx"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: labels,
			Ports: []corev1.ServicePort{{Name: "web", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ss := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.StatefulSetSpec{
			ServiceName: "nginx", Replicas: ptr.To(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.k8s.io/e2e-test-images/agnhost:2.53",
					Args: []string{"netexec", "--http-port=8080"}}}},
			},
		},
	}
	if _, err := c.client.AppsV1().StatefulSets("default").Create(ctx, ss, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 90*time.Second, "web-0, web-1, web-2 Ready", func() (bool, error) {
		return len(readyPods(t, c.client, "default", "app=nginx")) == 3, nil
	})
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("web-%d", i)
		p, err := c.client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.Hostname != name || p.Spec.Subdomain != "nginx" {
			t.Errorf("%s: hostname %q subdomain %q", name, p.Spec.Hostname, p.Spec.Subdomain)
		}
		if out, err := c.exec(name, "--", "hostname"); err != nil || strings.TrimSpace(out) != name {
			t.Errorf("hostname in %s: %q %v", name, out, err)
		}
		hosts, err := c.exec(name, "--", "cat", "/etc/hosts")
		if want := p.Status.PodIP + "\t" + name + ".nginx.default.svc.cluster.local\t" + name; err != nil || !strings.Contains(hosts, want) {
			t.Errorf("/etc/hosts of %s lacks %q:\n%s", name, want, hosts)
		}
	}
	old, _ := c.client.CoreV1().Pods("default").Get(ctx, "web-1", metav1.GetOptions{})
	if err := c.client.CoreV1().Pods("default").Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 60*time.Second, "web-1 recreated under the same name", func() (bool, error) {
		p, err := c.client.CoreV1().Pods("default").Get(ctx, "web-1", metav1.GetOptions{})
		return err == nil && p.UID != old.UID && podReady(p), nil
	})
	if out, err := c.exec("web-1", "--", "hostname"); err != nil || strings.TrimSpace(out) != "web-1" {
		t.Errorf("hostname in the new web-1: %q %v", out, err)
	}
}

// TestKillNineThenDownLeavesNothing is acceptance 4: after SIGKILL of `svcnet up` with pods
// running, `svcnet down` leaves no namespace, link, route, nftables table or process.
func TestKillNineThenDownLeavesNothing(t *testing.T) {
	c := startCluster(t, 2)
	ctx := context.Background()
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, agnhostDeployment("web", 4, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 60*time.Second, "4 pods Ready", func() (bool, error) {
		return len(readyPods(t, c.client, "default", "app=web")) == 4, nil
	})
	hostLinks := linkNames(t)
	before := ourNetns(t, c.prefix())
	if len(before) < 4+2+2 {
		t.Fatalf("expected the fabric, outside, 2 node and 4 pod namespaces, got %v", before)
	}
	pids := processesIn(t, before)
	if len(pids) < 2+4 {
		t.Fatalf("expected 2 agents and 4 containers in the namespaces, got %v", pids)
	}
	c.proc.kill(syscall.SIGKILL)
	out, err := exec.Command(svcnetBin, "--data-dir", c.dataDir, "down").CombinedOutput()
	if err != nil {
		t.Fatalf("svcnet down: %v: %s", err, out)
	}
	if left := ourNetns(t, c.prefix()); len(left) > 0 {
		t.Errorf("namespaces left: %v", left)
	}
	for _, pid := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(st), ") Z ") {
				t.Errorf("process %d still runs: %s", pid, st)
			}
		}
	}
	// Nothing was ever made in the host's namespace: its links, routes and nftables tables are
	// as before (checked by name).
	for _, l := range linkNames(t) {
		if strings.Contains(l, "svcnet") && !contains(hostLinks, l) {
			t.Errorf("host link %s appeared", l)
		}
	}
	if routes, _ := exec.Command("ip", "route", "show").Output(); strings.Contains(string(routes), "10.244.") || strings.Contains(string(routes), "172.31.0.") {
		t.Errorf("host routes to cluster ranges:\n%s", routes)
	}
	if tables, _ := exec.Command("nft", "list", "tables").Output(); strings.Contains(string(tables), c.name) {
		t.Errorf("host nftables tables of the cluster:\n%s", tables)
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func linkNames(t *testing.T) []string {
	entries, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func ourNetns(t *testing.T, prefix string) []string {
	entries, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// processesIn lists the processes whose network namespace is one of the named ones.
func processesIn(t *testing.T, names []string) []int {
	inodes := map[uint64]bool{}
	for _, n := range names {
		var st syscall.Stat_t
		if err := syscall.Stat("/run/netns/"+n, &st); err == nil {
			inodes[st.Ino] = true
		}
	}
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) == nil && inodes[st.Ino] {
			out = append(out, pid)
		}
	}
	return out
}
