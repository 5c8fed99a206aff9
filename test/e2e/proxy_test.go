package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// role runs the test binary as a client role inside a pod or the outside namespace (target is a
// pod name, "--outside" or "--node=NAME").
func (c *localCluster) role(target, role, addr string, dur time.Duration) string {
	c.t.Helper()
	self, err := os.Executable()
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur+60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, svcnetBin, "--data-dir", c.dataDir, "exec", target, "--", self)
	cmd.Env = append(os.Environ(), roleEnv+"="+role, "ADDR="+addr, "DURATION="+dur.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("%s role in %s: %v\n%s", role, target, err, out)
	}
	return string(out)
}

func (c *localCluster) curl(from, url string) (string, error) {
	out, err := c.exec(from, "--", "curl", "-sS", "-m", "3", url)
	return strings.TrimSpace(out), err
}

func (c *localCluster) service(t *testing.T, svc *corev1.Service) *corev1.Service {
	t.Helper()
	out, err := c.client.CoreV1().Services("default").Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// answers collects which pods answer n requests from a namespace to url.
func (c *localCluster) answers(from, url string, n int) map[string]int {
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		out, err := c.curl(from, url)
		if err != nil {
			seen["error: "+out]++
			continue
		}
		seen[out]++
	}
	return seen
}

func names(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

func webDeployment(name string, replicas int32, nodeSelector map[string]string) *appsv1.Deployment {
	d := agnhostDeployment(name, replicas, &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1})
	c := &d.Spec.Template.Spec.Containers[0]
	// agnhost keeps serving for a while after SIGTERM (its /readyz failing), as a well-behaved
	// server does while the endpoints catch up; the rolling update test relies on it.
	c.Args = []string{"netexec", "--http-port=8080", "--udp-port=8081", "--delay-shutdown=3"}
	c.Ports = append(c.Ports, corev1.ContainerPort{Name: "udp", ContainerPort: 8081, Protocol: corev1.ProtocolUDP})
	d.Spec.Template.Spec.NodeSelector = nodeSelector
	d.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To(int64(10))
	return d
}

// TestServiceProxy is issue 5's acceptance 2 on `svcnet up --nodes 3`.
func TestServiceProxy(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, webDeployment("web", 3, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	web := c.service(t, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": "web"},
		ExternalIPs: []string{"172.31.0.150"},
		Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)},
			{Name: "udp", Port: 81, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(8081)}}}})
	var pods []corev1.Pod
	poll(t, 60*time.Second, "3 web pods Ready", func() (bool, error) {
		pods = readyPods(t, c.client, "default", "app=web")
		return len(pods) == 3, nil
	})
	want := map[string]bool{}
	for _, p := range pods {
		want[p.Name] = true
	}
	sawAll := func(what string, seen map[string]int) {
		t.Helper()
		for name := range want {
			if seen[name] == 0 {
				t.Errorf("%s: %s never answered: %v", what, name, seen)
			}
		}
		for k := range seen {
			if !want[k] {
				t.Errorf("%s: unexpected answer %q", what, k)
			}
		}
	}
	// The proxies program after the EndpointSlice update; wait until one request works.
	poll(t, 10*time.Second, "the ClusterIP answering", func() (bool, error) {
		_, err := c.curl(pods[0].Name, "http://"+web.Spec.ClusterIP+"/hostname")
		return err == nil, nil
	})

	// ClusterIP from a pod on every node reaches every backend.
	for _, p := range pods {
		sawAll("ClusterIP from "+p.Name+" on "+p.Spec.NodeName, c.answers(p.Name, "http://"+web.Spec.ClusterIP+"/hostname", 24))
	}
	// NodePort on every node's address, from outside, reaches pods on every node.
	np := web.Spec.Ports[0].NodePort
	for i := 1; i <= 3; i++ {
		sawAll(fmt.Sprintf("NodePort on node-%d", i), c.answers("--outside", fmt.Sprintf("http://172.31.0.%d:%d/hostname", 10+i, np), 24))
	}
	// An externalIP routed (by the admin, here a route in the outside namespace) to a node.
	if out, err := c.exec("--outside", "--", "ip", "route", "add", "172.31.0.150/32", "via", "172.31.0.12"); err != nil {
		t.Fatalf("route to the external IP: %v %s", err, out)
	}
	sawAll("externalIP", c.answers("--outside", "http://172.31.0.150/hostname", 24))

	// A LoadBalancer of another implementation (a loadBalancerClass: svcnet's pool leaves it alone)
	// whose ingress IP its load balancer, here the test, sets in status and routes to a node.
	lb := c.service(t, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "lb"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "web"}, LoadBalancerClass: ptr.To("example.com/external"),
		Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}})
	lb.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "172.31.0.160"}}
	if _, err := c.client.CoreV1().Services("default").UpdateStatus(ctx, lb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if out, err := c.exec("--outside", "--", "ip", "route", "add", "172.31.0.160/32", "via", "172.31.0.13"); err != nil {
		t.Fatalf("route to the LB IP: %v %s", err, out)
	}
	poll(t, 10*time.Second, "the LoadBalancer IP answering", func() (bool, error) {
		_, err := c.curl("--outside", "http://172.31.0.160/hostname")
		return err == nil, nil
	})
	sawAll("LoadBalancer ingress IP", c.answers("--outside", "http://172.31.0.160/hostname", 24))

	// ClientIP affinity sticks to one pod.
	sticky := c.service(t, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "sticky"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "web"}, SessionAffinity: corev1.ServiceAffinityClientIP,
		Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}})
	poll(t, 10*time.Second, "the sticky service answering", func() (bool, error) {
		_, err := c.curl(pods[0].Name, "http://"+sticky.Spec.ClusterIP+"/hostname")
		return err == nil, nil
	})
	if seen := c.answers(pods[0].Name, "http://"+sticky.Spec.ClusterIP+"/hostname", 12); len(seen) != 1 {
		t.Errorf("ClientIP affinity: answers from %v, want one pod", seen)
	}

	// A service with no endpoints refuses at once, never a timeout.
	empty := c.service(t, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "empty"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "nothing"}, Ports: []corev1.ServicePort{{Port: 80}}}})
	poll(t, 10*time.Second, "the empty service refusing", func() (bool, error) {
		start := time.Now()
		_, err := c.exec(pods[0].Name, "--", "curl", "-sS", "-m", "3", "http://"+empty.Spec.ClusterIP+"/")
		// curl's 7 is "couldn't connect" (a reset or ICMP unreachable); 28 would be a timeout.
		var ee *exec.ExitError
		return errors.As(err, &ee) && ee.ExitCode() == 7 && time.Since(start) < 2*time.Second, nil
	})

	// Hairpin: a pod reaching itself through a Service that has only itself.
	self := pods[1]
	if _, err := c.client.CoreV1().Pods("default").Patch(ctx, self.Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"hairpin":"yes"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	hp := c.service(t, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "hairpin"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"hairpin": "yes"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}})
	poll(t, 10*time.Second, "hairpin", func() (bool, error) {
		out, err := c.curl(self.Name, "http://"+hp.Spec.ClusterIP+"/hostname")
		return err == nil && out == self.Name, nil
	})

	// externalTrafficPolicy Local: the client's own address reaches the pod, and the health check
	// node port answers 200 only where the endpoints are.
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, webDeployment("local", 1, map[string]string{"kubernetes.io/hostname": "node-1"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	local := c.service(t, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "local"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
		Selector: map[string]string{"app": "local"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}})
	poll(t, 60*time.Second, "the local pod Ready", func() (bool, error) {
		return len(readyPods(t, c.client, "default", "app=local")) == 1, nil
	})
	lnp := local.Spec.Ports[0].NodePort
	var clientIP string
	poll(t, 10*time.Second, "the Local NodePort answering on node-1", func() (bool, error) {
		out, err := c.curl("--outside", fmt.Sprintf("http://172.31.0.11:%d/clientip", lnp))
		clientIP = out
		return err == nil, nil
	})
	if !strings.HasPrefix(clientIP, "172.31.0.200:") {
		t.Errorf("externalTrafficPolicy Local: the pod saw %q, want the outside client's 172.31.0.200", clientIP)
	}
	hc := local.Spec.HealthCheckNodePort
	health := func(node int) string {
		out, _ := c.exec("--outside", "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "3", fmt.Sprintf("http://172.31.0.%d:%d/healthz", 10+node, hc))
		return strings.TrimSpace(out)
	}
	poll(t, 10*time.Second, "health check node port 200 on node-1", func() (bool, error) { return health(1) == "200", nil })
	for _, n := range []int{2, 3} {
		if got := health(n); got != "503" {
			t.Errorf("health check on node-%d (no local endpoint): %s, want 503", n, got)
		}
	}

	// Scaling moves traffic within a second of the new endpoint being ready: a client sends
	// requests back to back meanwhile, and the new pod's first answer is timed.
	before := readyPods(t, c.client, "default", "app=local")
	hostsOut := make(chan string, 1)
	go func() { hostsOut <- c.role("--outside", "hosts", fmt.Sprintf("172.31.0.11:%d", lnp), 20*time.Second) }()
	if _, err := c.client.AppsV1().Deployments("default").Patch(ctx, "local", types.MergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	var readyAt time.Time
	var added string
	poll(t, 15*time.Second, "the second local pod Ready", func() (bool, error) {
		for _, p := range readyPods(t, c.client, "default", "app=local") {
			if p.Name != before[0].Name {
				added = p.Name
				for _, cond := range p.Status.Conditions {
					if cond.Type == corev1.PodReady {
						readyAt = cond.LastTransitionTime.Time
					}
				}
				return true, nil
			}
		}
		return false, nil
	})
	firstSeen := time.Time{}
	for _, l := range strings.Split(<-hostsOut, "\n") {
		var ms int64
		var host string
		if _, err := fmt.Sscan(l, &ms, &host); err == nil && host == added {
			firstSeen = time.UnixMilli(ms)
			break
		}
	}
	if firstSeen.IsZero() {
		t.Errorf("scaled up: the new pod %s never answered", added)
	} else {
		// The Ready time is stored to the second, so this is late by up to a second: the
		// allowance is a second on top.
		lag := firstSeen.Sub(readyAt)
		t.Logf("scaled up: the new pod's first answer %s after its Ready time (which has 1 s resolution)", lag)
		if lag > 2*time.Second {
			t.Errorf("scaled up: traffic reached the new pod %s after it was Ready, want within a second", lag)
		}
	}

	// A UDP flow moves at once when its endpoint goes away: the proxy deletes the flow's stale
	// conntrack entry. The service first selects only A, so the flow is A's; then B joins and A
	// leaves (its pod still running, so only the conntrack flush can move the flow).
	a, b := pods[1], pods[2]
	label := func(p corev1.Pod, v string) {
		patch := fmt.Sprintf(`{"metadata":{"labels":{"udp":%s}}}`, v)
		if _, err := c.client.CoreV1().Pods("default").Patch(ctx, p.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	label(a, `"yes"`)
	udp := c.service(t, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "udp"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"udp": "yes"},
		Ports:    []corev1.ServicePort{{Port: 81, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(8081)}}}})
	poll(t, 10*time.Second, "the UDP service answering", func() (bool, error) {
		return sliceAddrsEqual(t, c.client, "udp", map[string]bool{a.Status.PodIP: true}), nil
	})
	done := make(chan string, 1)
	go func() { done <- c.role(pods[0].Name, "udp", udp.Spec.ClusterIP+":81", 8*time.Second) }()
	time.Sleep(2 * time.Second) // the flow runs to A meanwhile
	label(b, `"yes"`)
	label(a, "null")
	out := <-done
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 40 || lines[0] != a.Name {
		t.Fatalf("UDP flow: want it answered by %s first: %v", a.Name, lines)
	}
	// The flow must be B's for the last 3 s (the change itself took a few hundred ms).
	for _, l := range lines[len(lines)-30:] {
		if l != b.Name {
			t.Errorf("UDP flow did not move to %s after %s's endpoint went away: %v", b.Name, a.Name, lines)
			break
		}
	}
}

// TestServiceProxyUnderLoad is issue 5's acceptance 3 and 4: a rolling update behind a NodePort
// under continuous load from outside fails no request, and killing the node agent (whose proxy
// programs that node) breaks no established connection.
func TestServiceProxyUnderLoad(t *testing.T) {
	c := startCluster(t, 2)
	ctx := context.Background()
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, webDeployment("web", 3, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	web := c.service(t, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": "web"},
		Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}})
	addr := fmt.Sprintf("172.31.0.11:%d", web.Spec.Ports[0].NodePort)
	poll(t, 60*time.Second, "3 pods Ready and the NodePort answering", func() (bool, error) {
		if len(readyPods(t, c.client, "default", "app=web")) != 3 {
			return false, nil
		}
		_, err := c.curl("--outside", "http://"+addr+"/hostname")
		return err == nil, nil
	})

	// Acceptance 3: roll the Deployment while the outside client sends requests back to back.
	done := make(chan string, 1)
	go func() { done <- c.role("--outside", "load", addr, 25*time.Second) }()
	time.Sleep(2 * time.Second) // load before the rollout starts
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"rollout":"%d"}}}}}`, time.Now().UnixNano())
	if _, err := c.client.AppsV1().Deployments("default").Patch(ctx, "web", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	out := <-done
	ok, failed, found := parseOKFailed(out)
	t.Logf("rolling update under load: %d requests ok, %d failed", ok, failed)
	if !found || ok == 0 || failed != 0 {
		t.Errorf("rolling update under load: %d ok, %d failed:\n%s", ok, failed, out)
	}
	d, err := c.client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.UpdatedReplicas != 3 || d.Status.Replicas != 3 {
		t.Errorf("the rollout did not finish within the load: %+v", d.Status)
	}

	// Acceptance 4: one established connection through node-1's NodePort survives a SIGKILL of
	// node-1's agent (svcnet up starts it again; the proxy adopts its table).
	done = make(chan string, 1)
	go func() { done <- c.role("--outside", "keepalive", addr, 10*time.Second) }()
	time.Sleep(2 * time.Second)
	agents := agentPIDs(t, c.prefix()+"-node-1")
	if len(agents) != 1 {
		t.Fatalf("node-1 agent processes: %v", agents)
	}
	if err := syscall.Kill(agents[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	poll(t, 20*time.Second, "node-1's agent started again", func() (bool, error) {
		now := agentPIDs(t, c.prefix()+"-node-1")
		return len(now) == 1 && now[0] != agents[0], nil
	})
	out = <-done
	ok, failed, found = parseOKFailed(out)
	t.Logf("established connection across an agent restart: %d requests ok, %d failed", ok, failed)
	if !found || ok < 50 || failed != 0 {
		t.Errorf("the connection broke across the agent restart:\n%s", out)
	}
}

// agentPIDs finds the agent processes in a node's namespace.
func agentPIDs(t *testing.T, netnsName string) []int {
	var out []int
	for _, pid := range processesIn(t, []string{netnsName}) {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(cmd), "\x00agent\x00") {
			out = append(out, pid)
		}
	}
	return out
}
