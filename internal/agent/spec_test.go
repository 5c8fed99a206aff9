package agent

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "1", "B": "two"}
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"$(A)", "1"},
		{"x$(A)y$(B)z", "x1ytwoz"},
		{"$(MISSING)", "$(MISSING)"},
		{"$$(A)", "$(A)"},
		{"$(A", "$(A"},
		{"cost $5", "cost $5"},
		{"$", "$"},
	} {
		if got := expand(tc.in, env); got != tc.want {
			t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestContainerArgv(t *testing.T) {
	self := "/usr/bin/svcnet"
	for _, tc := range []struct {
		name   string
		c      corev1.Container
		want   string
		reason string
	}{
		{"agnhost args", corev1.Container{Image: "registry.k8s.io/e2e-test-images/agnhost:2.53", Args: []string{"netexec", "--http-port=8080"}},
			"/usr/bin/svcnet agnhost netexec --http-port=8080", ""},
		{"agnhost command", corev1.Container{Image: "registry.k8s.io/e2e-test-images/agnhost:2.40", Command: []string{"/agnhost", "serve-hostname"}, Args: []string{"--port=9376"}},
			"/usr/bin/svcnet agnhost serve-hostname --port=9376", ""},
		{"agnhost digest", corev1.Container{Image: "registry.k8s.io/e2e-test-images/agnhost@sha256:abc", Args: []string{"pause"}},
			"/usr/bin/svcnet agnhost pause", ""},
		{"agnhost shell", corev1.Container{Image: "registry.k8s.io/e2e-test-images/agnhost:2.53", Command: []string{"sh", "-c", "echo $(A)"}},
			"sh -c echo 1", ""},
		{"pause", corev1.Container{Image: "registry.k8s.io/pause:3.10"}, "/usr/bin/svcnet agnhost pause", ""},
		{"own command", corev1.Container{Image: "busybox", Command: []string{"sleep"}, Args: []string{"$(A)0"}}, "sleep 10", ""},
		{"no command", corev1.Container{Image: "nginx:1.27"}, "", ErrNoCommand},
	} {
		argv, reason, err := containerArgv(&tc.c, self, map[string]string{"A": "1"})
		if reason != tc.reason || (err != nil) != (tc.reason != "") {
			t.Errorf("%s: reason %q err %v, want reason %q", tc.name, reason, err, tc.reason)
			continue
		}
		if got := strings.Join(argv, " "); got != tc.want {
			t.Errorf("%s: argv %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestServiceEnv(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "my-service"}, Spec: corev1.ServiceSpec{
		ClusterIP: "10.96.0.20",
		Ports:     []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}, {Name: "dns-udp", Port: 53, Protocol: corev1.ProtocolUDP}},
	}}
	headless := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "hl"}, Spec: corev1.ServiceSpec{ClusterIP: "None", Ports: []corev1.ServicePort{{Port: 1}}}}
	got := map[string]string{}
	for _, kv := range serviceEnv([]*corev1.Service{svc, headless}) {
		got[kv[0]] = kv[1]
	}
	want := map[string]string{
		"MY_SERVICE_SERVICE_HOST":         "10.96.0.20",
		"MY_SERVICE_SERVICE_PORT":         "80",
		"MY_SERVICE_SERVICE_PORT_HTTP":    "80",
		"MY_SERVICE_SERVICE_PORT_DNS_UDP": "53",
		"MY_SERVICE_PORT":                 "tcp://10.96.0.20:80",
		"MY_SERVICE_PORT_80_TCP":          "tcp://10.96.0.20:80",
		"MY_SERVICE_PORT_80_TCP_PROTO":    "tcp",
		"MY_SERVICE_PORT_80_TCP_PORT":     "80",
		"MY_SERVICE_PORT_80_TCP_ADDR":     "10.96.0.20",
		"MY_SERVICE_PORT_53_UDP":          "udp://10.96.0.20:53",
		"MY_SERVICE_PORT_53_UDP_PROTO":    "udp",
		"MY_SERVICE_PORT_53_UDP_PORT":     "53",
		"MY_SERVICE_PORT_53_UDP_ADDR":     "10.96.0.20",
	}
	if len(got) != len(want) {
		t.Errorf("got %d variables, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestContainerEnvOrderAndDownwardAPI(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "ns", UID: "u1", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "node-1", EnableServiceLinks: ptr.To(false)}}
	c := &corev1.Container{Env: []corev1.EnvVar{
		{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
		{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
		{Name: "URL", Value: "http://$(POD_IP):80/$(KUBERNETES_SERVICE_HOST)"},
	}}
	master := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.1", Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: "TCP"}}}}
	other := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.9", Ports: []corev1.ServicePort{{Port: 1, Protocol: "TCP"}}}}
	env, vars, err := containerEnv(pod, c, podFacts{PodIP: netip.MustParseAddr("10.244.1.5"), HostIP: netip.MustParseAddr("172.31.0.11"),
		Services: []*corev1.Service{other}, MasterServices: []*corev1.Service{master}})
	if err != nil {
		t.Fatal(err)
	}
	if vars["URL"] != "http://10.244.1.5:80/10.96.0.1" || vars["NODE"] != "node-1" || vars["APP"] != "web" || vars["HOSTNAME"] != "web-0" {
		t.Errorf("vars: %v", vars)
	}
	if _, ok := vars["OTHER_SERVICE_HOST"]; ok {
		t.Error("enableServiceLinks=false still got the namespace's service links")
	}
	if !strings.HasPrefix(env[0], "KUBERNETES_SERVICE_HOST=") {
		t.Errorf("service links must come first: %v", env)
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: "S", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "k"}}})
	if _, _, err := containerEnv(pod, c, podFacts{}); err == nil || !strings.Contains(err.Error(), "Secrets") {
		t.Errorf("secretKeyRef: %v", err)
	}
}

func TestResolvConfAndHosts(t *testing.T) {
	hostResolv := "# host\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"
	pod := func(mut func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "prod"}}
		mut(p)
		return p
	}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"cluster first", pod(func(*corev1.Pod) {}),
			"search prod.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"},
		{"default", pod(func(p *corev1.Pod) { p.Spec.DNSPolicy = corev1.DNSDefault }),
			"search corp.example\nnameserver 192.0.2.53\noptions edns0\n"},
		{"host network", pod(func(p *corev1.Pod) { p.Spec.HostNetwork = true }),
			"search corp.example\nnameserver 192.0.2.53\noptions edns0\n"},
		{"host network cluster first", pod(func(p *corev1.Pod) {
			p.Spec.HostNetwork = true
			p.Spec.DNSPolicy = corev1.DNSClusterFirstWithHostNet
		}), "search prod.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"},
		{"none with config", pod(func(p *corev1.Pod) {
			p.Spec.DNSPolicy = corev1.DNSNone
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"1.2.3.4"}, Searches: []string{"a.b"},
				Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}, {Name: "rotate"}}}
		}), "search a.b\nnameserver 1.2.3.4\noptions ndots:2 rotate\n"},
		{"cluster first merged", pod(func(p *corev1.Pod) {
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("1")}}}
		}), "search prod.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:1\n"},
	} {
		if got := resolvConf(tc.pod, []string{"10.96.0.10"}, "cluster.local", hostResolv); got != tc.want {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.name, got, tc.want)
		}
	}
	p := pod(func(p *corev1.Pod) {
		p.Spec.Hostname, p.Spec.Subdomain = "web-0", "web"
		p.Spec.HostAliases = []corev1.HostAlias{{IP: "1.2.3.4", Hostnames: []string{"foo", "bar"}}}
	})
	h := hostsFile(p, netip.MustParseAddr("10.244.1.7"), "cluster.local")
	for _, want := range []string{"10.244.1.7\tweb-0.web.prod.svc.cluster.local\tweb-0\n", "# Entries added by HostAliases.\n1.2.3.4\tfoo\tbar\n"} {
		if !strings.Contains(h, want) {
			t.Errorf("hosts file lacks %q:\n%s", want, h)
		}
	}
	long := pod(func(p *corev1.Pod) { p.Name = strings.Repeat("a", 62) + "-b" })
	if got := podHostname(long); got != strings.Repeat("a", 62) {
		t.Errorf("hostname %q", got)
	}
}

func TestPodStatus(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pod := &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways, Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}},
		Status: corev1.PodStatus{QOSClass: corev1.PodQOSBestEffort, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}}}
	ip, host := netip.MustParseAddr("10.244.1.2"), netip.MustParseAddr("172.31.0.11")
	cond := func(st corev1.PodStatus, typ corev1.PodConditionType) corev1.ConditionStatus {
		for _, c := range st.Conditions {
			if c.Type == typ {
				return c.Status
			}
		}
		return ""
	}
	st := podStatus(pod, ip, host, map[string]ctrSnapshot{"a": {Running: true, Ready: true, Started: true}}, now)
	if st.Phase != corev1.PodRunning || cond(st, corev1.PodReady) != corev1.ConditionFalse || cond(st, corev1.PodScheduled) != corev1.ConditionTrue {
		t.Errorf("one of two running: phase %s ready %s", st.Phase, cond(st, corev1.PodReady))
	}
	st = podStatus(pod, ip, host, map[string]ctrSnapshot{"a": {Running: true, Ready: true}, "b": {Running: true, Ready: true}}, now)
	if cond(st, corev1.PodReady) != corev1.ConditionTrue || st.PodIP != "10.244.1.2" || st.HostIP != "172.31.0.11" || st.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("both ready: %+v", st)
	}
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	st = podStatus(pod, ip, host, map[string]ctrSnapshot{"a": {Term: &corev1.ContainerStateTerminated{ExitCode: 0}}, "b": {Term: &corev1.ContainerStateTerminated{ExitCode: 1}}}, now)
	if st.Phase != corev1.PodFailed {
		t.Errorf("never, one failed: phase %s", st.Phase)
	}
	pod.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	st = podStatus(pod, ip, host, map[string]ctrSnapshot{"a": {Term: &corev1.ContainerStateTerminated{}}, "b": {Term: &corev1.ContainerStateTerminated{}}}, now)
	if st.Phase != corev1.PodSucceeded {
		t.Errorf("on failure, all exit 0: phase %s", st.Phase)
	}
	st = podStatus(pod, netip.Addr{}, host, map[string]ctrSnapshot{"a": {Waiting: ErrNoCommand, WaitingMsg: "x"}}, now)
	if st.Phase != corev1.PodPending || st.ContainerStatuses[0].State.Waiting.Reason != ErrNoCommand {
		t.Errorf("no command: %+v", st)
	}
}

func TestDesiredRoutes(t *testing.T) {
	node := func(name, ip, cidr string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDR: cidr},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}}}
	}
	got := desiredRoutes("node-1", netip.MustParsePrefix("172.31.0.0/24"), []*corev1.Node{
		node("node-1", "172.31.0.11", "10.244.1.0/24"),
		node("node-2", "172.31.0.12", "10.244.2.0/24"),
		node("far", "192.0.2.1", "10.244.9.0/24"),
		node("nocidr", "172.31.0.14", ""),
	})
	if len(got) != 1 || got[netip.MustParsePrefix("10.244.2.0/24")] != netip.MustParseAddr("172.31.0.12") {
		t.Errorf("routes %v", got)
	}
}

// TestPodStatusStableAcrossPasses: a status computed again from the stored one (times kept to the
// second by the API) must equal it, or the agent would write it on every pass.
func TestPodStatusStableAcrossPasses(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 123456789, time.UTC)
	pod := &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways, Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}}}
	ctrs := map[string]ctrSnapshot{
		"a": {Running: true, Ready: true, Started: true, StartedAt: start},
		"b": {Waiting: "CrashLoopBackOff", Restarts: 1, LastTerm: &corev1.ContainerStateTerminated{ExitCode: 1,
			StartedAt: metav1.NewTime(start), FinishedAt: metav1.NewTime(start.Add(1500 * time.Millisecond))}},
	}
	ip, host := netip.MustParseAddr("10.244.1.2"), netip.MustParseAddr("172.31.0.11")
	first := podStatus(pod, ip, host, ctrs, start.Add(300*time.Millisecond))
	// What a read back from the API returns: JSON times, to the second.
	b, err := json.Marshal(first)
	if err != nil {
		t.Fatal(err)
	}
	var stored corev1.PodStatus
	if err := json.Unmarshal(b, &stored); err != nil {
		t.Fatal(err)
	}
	pod.Status = stored
	again := podStatus(pod, ip, host, ctrs, start.Add(2700*time.Millisecond))
	if !statusEqual(&stored, &again) {
		t.Errorf("status changed between passes with nothing new:\n%+v\n%+v", stored, again)
	}
}
