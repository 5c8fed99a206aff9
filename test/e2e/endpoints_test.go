package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// readyPod creates a pod on node-1 and gives it an IP and a Ready condition through the status
// subresource, as a node agent would.
func readyPod(ctx context.Context, c kubernetes.Interface, name string, labels map[string]string, ip string, ports map[string]int32) error {
	var cps []corev1.ContainerPort
	for n, p := range ports {
		cps = append(cps, corev1.ContainerPort{Name: n, ContainerPort: p})
	}
	p, err := c.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c",
			Image: "registry.k8s.io/e2e-test-images/agnhost:2.53", Ports: cps}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	// The QoS class is set at create and immutable, as in kube.
	p.Status = corev1.PodStatus{QOSClass: p.Status.QOSClass, Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	_, err = c.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{})
	return err
}

// With the seeds' Services and pods made through the API, `kubectl get endpoints` and
// `kubectl get endpointslices` show exactly the matching ready pods.
func TestSeedEndpointsWithKubectl(t *testing.T) {
	dir := t.TempDir()
	up(t, dir)
	kc := filepath.Join(dir, "kubeconfig")
	c := clientFor(t, kc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	k := kubectls(t)[len(kubectls(t))-1] // the real kubectl when there is one
	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	k.must(t, kc, "apply", "-f", "testdata/seeds.yaml")
	// A two-label selector that no pod fully matches.
	k.must(t, kc, "create", "service", "clusterip", "primary-only", "--tcp=27017")
	k.must(t, kc, "set", "selector", "service", "primary-only", "app=mongodb,role=primary")
	pods := []struct {
		name, ip string
		labels   map[string]string
		ports    map[string]int32
	}{
		{"web-1", "10.244.1.5", map[string]string{"app": "my-app"}, nil},
		{"web-2", "10.244.1.6", map[string]string{"app": "my-app"}, nil},
		{"mongo-a", "10.244.1.10", map[string]string{"app": "mongodb", "role": "replica"}, map[string]int32{"mongodb-port": 27017, "metrics": 9216}},
		{"mongo-b", "10.244.1.11", map[string]string{"app": "mongodb", "role": "replica"}, map[string]int32{"mongodb-port": 27018, "metrics": 9217}},
	}
	for _, p := range pods {
		if err := readyPod(ctx, c, p.name, p.labels, p.ip, p.ports); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{ // kubectl get endpoints: NAME ENDPOINTS
		"my-service":   "10.244.1.5:8080,10.244.1.6:8080",
		"primary-only": "<none>",
		"web-nodeport": "<none>",
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		_, eps := rows(k.must(t, kc, "get", "endpoints"))
		for name, w := range want {
			if got := eps[name]; len(got) < 2 || got[1] != w {
				return false, nil
			}
		}
		// mongodb: kubectl shows three of the four ip:port pairs and "+ 1 more...".
		got := eps["mongodb"]
		all := "10.244.1.10:27017,10.244.1.10:9216,10.244.1.11:27018,10.244.1.11:9217"
		if len(got) < 5 || got[2] != "+" || got[3] != "1" {
			return false, nil
		}
		for _, shown := range strings.Split(got[1], ",") { // which three show depends on kube's subset order
			if !strings.Contains(all, shown) {
				return false, nil
			}
		}
		// All four, each pod with its own port numbers, in the object itself.
		ep, err := c.CoreV1().Endpoints("default").Get(ctx, "mongodb", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		var pairs []string
		for _, ss := range ep.Subsets {
			for _, a := range ss.Addresses {
				for _, p := range ss.Ports {
					pairs = append(pairs, fmt.Sprintf("%s:%d", a.IP, p.Port))
				}
			}
		}
		sort.Strings(pairs)
		return strings.Join(pairs, ",") == all, nil
	})
	if err != nil {
		t.Fatalf("kubectl get endpoints:\n%s", k.must(t, kc, "get", "endpoints"))
	}
	// Two slices, one per port set: NAME ADDRESSTYPE PORTS ENDPOINTS AGE.
	out := k.must(t, kc, "get", "endpointslices", "-l", "kubernetes.io/service-name=mongodb")
	_, slices := rows(out)
	var got []string
	for _, f := range slices {
		ports := strings.Split(f[2], ",")
		sort.Strings(ports)
		got = append(got, strings.Join(ports, ",")+" "+f[3])
	}
	sort.Strings(got)
	if strings.Join(got, "; ") != "27017,9216 10.244.1.10; 27018,9217 10.244.1.11" {
		t.Errorf("kubectl get endpointslices for mongodb: want one slice per port set, got %q:\n%s", got, out)
	}
	out = k.must(t, kc, "get", "endpointslices", "-l", "kubernetes.io/service-name=my-service")
	if !strings.Contains(out, "10.244.1.5,10.244.1.6") {
		t.Errorf("kubectl get endpointslices for my-service:\n%s", out)
	}
}

// More than 1000 pods: the Endpoints object is truncated to 1000 with kube's annotation, while the
// EndpointSlices hold every pod, at most 100 per slice.
func TestThousandPodsTruncateEndpoints(t *testing.T) {
	dir := t.TempDir()
	up(t, dir)
	c := clientFor(t, filepath.Join(dir, "kubeconfig"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s := nodePortSvc("many")
	s.Spec.Type = corev1.ServiceTypeClusterIP
	if _, err := c.CoreV1().Services("default").Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const n = 1005
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			errs <- readyPod(ctx, c, fmt.Sprintf("many-%d", i), map[string]string{"app": "many"}, fmt.Sprintf("10.244.%d.%d", 20+i/250, i%250+1), nil)
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		ep, err := c.CoreV1().Endpoints("default").Get(ctx, "many", metav1.GetOptions{})
		if err != nil || len(ep.Subsets) == 0 {
			return false, nil
		}
		l, err := c.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=many"})
		if err != nil {
			return false, nil
		}
		total := 0
		for _, sl := range l.Items {
			if len(sl.Endpoints) > 100 {
				return false, fmt.Errorf("slice %s has %d endpoints", sl.Name, len(sl.Endpoints))
			}
			total += len(sl.Endpoints)
		}
		return len(ep.Subsets[0].Addresses) == 1000 && ep.Annotations["endpoints.kubernetes.io/over-capacity"] == "truncated" && total == n, nil
	})
	if err != nil {
		ep, _ := c.CoreV1().Endpoints("default").Get(ctx, "many", metav1.GetOptions{})
		t.Fatalf("want Endpoints truncated to 1000 with the over-capacity annotation and %d endpoints in slices: %v (annotations %v)", n, err, ep.Annotations)
	}
}
