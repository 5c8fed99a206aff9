package e2e

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ingressIP waits for the Service's first load balancer address.
func (c *localCluster) ingressIP(t *testing.T, name string) string {
	t.Helper()
	var ip string
	poll(t, 20*time.Second, name+" given a load balancer address", func() (bool, error) {
		svc, err := c.client.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil || len(svc.Status.LoadBalancer.Ingress) == 0 {
			return false, nil
		}
		ip = svc.Status.LoadBalancer.Ingress[0].IP
		return true, nil
	})
	return ip
}

// announced reports whether node holds ip as a load balancer address (labelled lo:svcnet-lb).
func (c *localCluster) announced(t *testing.T, node, ip string) bool {
	t.Helper()
	out, err := c.exec("--node", node, "--", "ip", "-4", "-o", "addr", "show")
	if err != nil {
		t.Fatalf("ip addr on %s: %v %s", node, err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "svcnet-lb") && strings.Contains(l, " "+ip+"/32") {
			return true
		}
	}
	return false
}

// TestLoadBalancer: a LoadBalancer Service gets an address from the pool, one node answers for it
// on the node network, and an outside client reaches the pods with it, its own address preserved
// under externalTrafficPolicy Local; when the endpoints move, so does the address.
func TestLoadBalancer(t *testing.T) {
	c := startCluster(t, 2)
	ctx := context.Background()
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, webDeployment("web", 1, map[string]string{"kubernetes.io/hostname": "node-1"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.service(t, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
		Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}})
	ip := c.ingressIP(t, "web")
	if a, err := netip.ParseAddr(ip); err != nil || a.Compare(netip.MustParseAddr("172.31.0.100")) < 0 || a.Compare(netip.MustParseAddr("172.31.0.150")) > 0 {
		t.Fatalf("load balancer address %q, want one of the pool 172.31.0.100-172.31.0.150", ip)
	}
	if row := lineWith(c.kubectl("get", "svc", "web"), "web"); !strings.Contains(row, ip) {
		t.Errorf("kubectl get svc web: EXTERNAL-IP is not %s:\n%s", ip, row)
	}
	poll(t, 60*time.Second, "the web pod Ready", func() (bool, error) {
		return len(readyPods(t, c.client, "default", "app=web")) == 1, nil
	})

	// No route to it in the outside namespace: it is found with ARP, answered by node-1 (the
	// node with the endpoint), and the pod sees the client's own address.
	var out string
	poll(t, 15*time.Second, "the load balancer address answering from outside", func() (bool, error) {
		var err error
		out, err = c.curl("--outside", "http://"+ip+"/clientip")
		return err == nil, nil
	})
	if !strings.HasPrefix(out, "172.31.0.200:") {
		t.Errorf("through the load balancer the pod saw %q, want the outside client 172.31.0.200", out)
	}
	if !c.announced(t, "node-1", ip) || c.announced(t, "node-2", ip) {
		t.Errorf("%s should be on node-1 only (node-1 %v, node-2 %v)", ip, c.announced(t, "node-1", ip), c.announced(t, "node-2", ip))
	}

	// The endpoint moves to node-2: the address follows, and the outside client, which cached
	// node-1's MAC, is told by gratuitous ARP.
	if _, err := c.client.AppsV1().Deployments("default").Patch(ctx, "web", types.MergePatchType,
		[]byte(`{"spec":{"template":{"spec":{"nodeSelector":{"kubernetes.io/hostname":"node-2"}}}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 60*time.Second, "the address on node-2 only", func() (bool, error) {
		return c.announced(t, "node-2", ip) && !c.announced(t, "node-1", ip), nil
	})
	poll(t, 15*time.Second, "the moved pod answering through the load balancer", func() (bool, error) {
		pods := readyPods(t, c.client, "default", "app=web")
		if len(pods) != 1 || pods[0].Spec.NodeName != "node-2" {
			return false, nil
		}
		out, err := c.curl("--outside", "http://"+ip+"/hostname")
		return err == nil && out == pods[0].Name, nil
	})

	// An address asked for is given when it is in the pool and free.
	c.service(t, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "asked"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, LoadBalancerIP: "172.31.0.140",
		Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 8080}}}})
	if got := c.ingressIP(t, "asked"); got != "172.31.0.140" {
		t.Errorf("spec.loadBalancerIP 172.31.0.140: given %s", got)
	}
	poll(t, 15*time.Second, "the asked-for address answering", func() (bool, error) {
		_, err := c.curl("--outside", "http://172.31.0.140:8080/hostname")
		return err == nil, nil
	})

	// Deleting the Service withdraws the address everywhere.
	if err := c.client.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 15*time.Second, "the address withdrawn", func() (bool, error) {
		return !c.announced(t, "node-1", ip) && !c.announced(t, "node-2", ip), nil
	})
	t.Logf("load balancer address %s: announced, moved and withdrawn", ip)
}
