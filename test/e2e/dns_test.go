package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// TestClusterDNSFromPods is issue 6's acceptance 2 on `svcnet up --nodes 2`: from inside a pod,
// its own resolver (getent, through resolv.conf's search path) and a DNS client asking the
// resolv.conf server resolve services by short, namespaced and full names, a headless service to
// every pod, a StatefulSet pod by web-0.web, an ExternalName's CNAME and a named port's SRV; a new
// service resolves within a second and a deleted one answers NXDOMAIN.
func TestClusterDNSFromPods(t *testing.T) {
	c := startCluster(t, 2)
	ctx := context.Background()
	labels := map[string]string{"app": "web"}
	if _, err := c.client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: labels,
			Ports: []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "my-service"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "alias"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "my-service.default.svc.cluster.local"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ss := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.StatefulSetSpec{
			ServiceName: "web", Replicas: ptr.To(int32(2)), PodManagementPolicy: appsv1.ParallelPodManagement,
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
	var pods []corev1.Pod
	poll(t, 90*time.Second, "web-0 and web-1 Ready", func() (bool, error) {
		pods = readyPods(t, c.client, "default", "app=web")
		return len(pods) == 2, nil
	})
	svc, err := c.client.CoreV1().Services("default").Get(ctx, "my-service", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	podIP := map[string]string{}
	var allIPs []string
	for _, p := range pods {
		podIP[p.Name] = p.Status.PodIP
		allIPs = append(allIPs, p.Status.PodIP)
	}
	sort.Strings(allIPs)
	from := "web-0"

	// getent goes through the pod's resolv.conf: search path and ndots:5.
	getent := func(name string) []string {
		out, err := c.exec(from, "--", "getent", "ahostsv4", name)
		if err != nil {
			return nil
		}
		seen := map[string]bool{}
		var ips []string
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && !seen[f[0]] {
				seen[f[0]] = true
				ips = append(ips, f[0])
			}
		}
		sort.Strings(ips)
		return ips
	}
	for _, name := range []string{"my-service", "my-service.default", "my-service.default.svc", "my-service.default.svc.cluster.local"} {
		if got := getent(name); len(got) != 1 || got[0] != svc.Spec.ClusterIP {
			t.Errorf("getent %s: %v, want %s", name, got, svc.Spec.ClusterIP)
		}
	}
	if got := getent("web"); strings.Join(got, ",") != strings.Join(allIPs, ",") {
		t.Errorf("headless web: %v, want every pod %v", got, allIPs)
	}
	if got := getent("web-1.web"); len(got) != 1 || got[0] != podIP["web-1"] {
		t.Errorf("web-1.web: %v, want %s", got, podIP["web-1"])
	}
	if got := getent("alias"); len(got) != 1 || got[0] != svc.Spec.ClusterIP {
		t.Errorf("ExternalName alias: %v, want it chased to %s", got, svc.Spec.ClusterIP)
	}

	// A DNS client asking the server in resolv.conf, for the record types getent cannot show.
	query := func(name, typ string) (string, error) {
		return c.exec(from, "--", svcnetBin, "dns", "query", "--server", "10.96.0.10", name, typ)
	}
	if out, err := query("alias.default.svc.cluster.local", "A"); err != nil || !strings.Contains(out, "CNAME\tmy-service.default.svc.cluster.local.") {
		t.Errorf("alias CNAME: %v\n%s", err, out)
	}
	if out, err := query("_http._tcp.my-service.default.svc.cluster.local", "SRV"); err != nil || !strings.Contains(out, "SRV\t0 100 80 my-service.default.svc.cluster.local.") {
		t.Errorf("SRV of the named port: %v\n%s", err, out)
	}
	if out, err := query("_http._tcp.web.default.svc.cluster.local", "SRV"); err != nil || strings.Count(out, "\tSRV\t") != 2 {
		t.Errorf("headless SRV, one per pod: %v\n%s", err, out)
	}
	if out, err := query(reverse(svc.Spec.ClusterIP), "PTR"); err != nil || !strings.Contains(out, "PTR\tmy-service.default.svc.cluster.local.") {
		t.Errorf("PTR of the ClusterIP: %v\n%s", err, out)
	}
	if out, err := query("dns-version.cluster.local", "TXT"); err != nil || !strings.Contains(out, `"1.1.0"`) {
		t.Errorf("dns-version: %v\n%s", err, out)
	}

	// A new service resolves within a second of its creation; a deleted one is NXDOMAIN.
	created := time.Now()
	fresh, err := c.client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "fresh"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var seenAfter time.Duration
	poll(t, 10*time.Second, "the new service in DNS", func() (bool, error) {
		out, err := query("fresh.default.svc.cluster.local", "A")
		if err == nil && strings.Contains(out, fresh.Spec.ClusterIP) {
			seenAfter = time.Since(created)
			return true, nil
		}
		return false, nil
	})
	// Includes starting a process in the pod for each query; the server's own delay is measured
	// by bench/dns.sh.
	t.Logf("new service answered %s after its create returned", seenAfter)
	if seenAfter > time.Second {
		t.Errorf("new service resolvable only after %s, want within a second", seenAfter)
	}
	if err := c.client.CoreV1().Services("default").Delete(ctx, "fresh", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "the deleted service NXDOMAIN", func() (bool, error) {
		out, _ := query("fresh.default.svc.cluster.local", "A")
		return strings.Contains(out, "status: NXDOMAIN"), nil
	})
}

func reverse(ip string) string {
	p := strings.Split(ip, ".")
	return fmt.Sprintf("%s.%s.%s.%s.in-addr.arpa", p[3], p[2], p[1], p[0])
}
