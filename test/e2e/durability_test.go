package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/svcnet/svcnet/internal/pki"
)

func nodePortSvc(name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Port: 80}}},
	}
}

// allocated returns "ip" and "port" values held by the services in default.
func allocated(t *testing.T, c kubernetes.Interface) map[string]string {
	t.Helper()
	list, err := c.CoreV1().Services("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]string{}
	claim := func(v, who string) {
		if prev, ok := held[v]; ok {
			t.Errorf("%s held by both %s and %s", v, prev, who)
		}
		held[v] = who
	}
	for _, s := range list.Items {
		if s.Spec.ClusterIP != "" && s.Spec.ClusterIP != "None" {
			claim("ip "+s.Spec.ClusterIP, s.Name)
		}
		for _, p := range s.Spec.Ports {
			if p.NodePort != 0 {
				claim(fmt.Sprintf("port %d", p.NodePort), s.Name)
			}
		}
	}
	return held
}

// After kill -9 of `svcnet up` and a restart on the same data dir, every object and every allocation
// is still there: new Services never get a value an old one holds.
func TestKillNineAndRestartKeepsObjectsAndAllocations(t *testing.T) {
	dir := t.TempDir()
	p := up(t, dir)
	c := clientFor(t, filepath.Join(dir, "kubeconfig"))
	ctx := context.Background()
	for i := 0; i < 30; i++ {
		if _, err := c.CoreV1().Services("default").Create(ctx, nodePortSvc(fmt.Sprintf("before-%d", i)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	before := allocated(t, c)
	p.kill(syscall.SIGKILL)

	up(t, dir)
	c = clientFor(t, filepath.Join(dir, "kubeconfig"))
	after := allocated(t, c)
	for v, who := range before {
		if after[v] != who {
			t.Errorf("after restart %s is held by %q, want %q", v, after[v], who)
		}
	}
	for i := 0; i < 30; i++ {
		if _, err := c.CoreV1().Services("default").Create(ctx, nodePortSvc(fmt.Sprintf("after-%d", i)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	allocated(t, c) // fails on any value held twice
	// A value an old Service holds is refused by number too.
	s := nodePortSvc("dup")
	s.Spec.ClusterIP = c2ip(t, c, "before-0")
	_, err := c.CoreV1().Services("default").Create(ctx, s, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "provided IP is already allocated") {
		t.Fatalf("requesting a held ClusterIP after restart: %v", err)
	}
}

func c2ip(t *testing.T, c kubernetes.Interface, name string) string {
	s, err := c.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s.Spec.ClusterIP
}

// Two API server processes over one etcd never hand out the same ClusterIP or NodePort, even when 50
// creates race through both into small ranges.
func TestTwoAPIServersShareOneEtcd(t *testing.T) {
	dir := t.TempDir()
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	start(t, "etcd", "--data-dir", dir, "--listen-client-urls", etcdURL)
	files := pki.In(dir)
	token, err := files.Ensure(nil)
	if err != nil {
		t.Fatal(err)
	}
	var clients []kubernetes.Interface
	for i := 0; i < 2; i++ {
		port := freePort(t)
		start(t, "apiserver", "--etcd-servers", etcdURL, "--secure-port", fmt.Sprint(port),
			"--tls-cert-file", files.ServerCert, "--tls-private-key-file", files.ServerKey, "--token-auth-file", files.Tokens,
			// 61 usable addresses and 60 ports for 50 services: collisions would be likely without etcd arbitration.
			"--service-cluster-ip-range", "10.96.0.0/26", "--service-node-port-range", "30000-30059")
		kc := filepath.Join(dir, fmt.Sprintf("kubeconfig-%d", i))
		f := files
		f.Kubeconfig = kc
		if err := f.WriteKubeconfig(fmt.Sprintf("https://127.0.0.1:%d", port), token); err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", kc)
		if err != nil {
			t.Fatal(err)
		}
		cfg.QPS, cfg.Burst = 1000, 1000
		clients = append(clients, kubernetes.NewForConfigOrDie(cfg))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := clients[i%2].CoreV1().Services("default").Create(ctx, nodePortSvc(fmt.Sprintf("race-%d", i)), metav1.CreateOptions{})
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("create: %v", err)
		}
	}
	held := allocated(t, clients[0])
	ports := 0
	for v := range held {
		if strings.HasPrefix(v, "port") {
			ports++
		}
	}
	if ports != 50 {
		t.Errorf("%d distinct nodePorts for 50 services", ports)
	}
	// Both servers see the same, consistent state.
	if n := len(allocated(t, clients[1])); n != len(held) {
		t.Errorf("second API server sees %d allocations, first %d", n, len(held))
	}
}

// Deleting a namespace removes what it contains; deleting an owner removes its dependents (background
// and foreground) or leaves them without the reference (orphan).
func TestNamespaceDeletionAndGarbageCollection(t *testing.T) {
	dir := t.TempDir()
	up(t, dir)
	c := clientFor(t, filepath.Join(dir, "kubeconfig"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	poll := func(what string, cond func() bool) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			return cond(), nil
		}); err != nil {
			t.Fatalf("timed out waiting for %s", what)
		}
	}

	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := c.CoreV1().Services("doomed").Create(ctx, nodePortSvc(fmt.Sprintf("s%d", i)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CoreV1().Namespaces().Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ns, err := c.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
	if err == nil && ns.Status.Phase != corev1.NamespaceTerminating {
		t.Errorf("deleted namespace phase %q, want Terminating", ns.Status.Phase)
	}
	_, err = c.CoreV1().Services("doomed").Create(ctx, nodePortSvc("late"), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) && !apierrors.IsNotFound(err) {
		t.Errorf("create in a terminating namespace: %v, want Forbidden (or NotFound once it is gone)", err)
	}
	poll("namespace doomed to disappear", func() bool {
		_, err := c.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if l, err := c.CoreV1().Services("doomed").List(ctx, metav1.ListOptions{}); err != nil || len(l.Items) != 0 {
		t.Fatalf("services left in deleted namespace: %v %v", l, err)
	}

	for _, policy := range []metav1.DeletionPropagation{metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan} {
		owner, err := c.CoreV1().Services("default").Create(ctx, nodePortSvc("owner-"+strings.ToLower(string(policy))), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dep := nodePortSvc("dep-" + strings.ToLower(string(policy)))
		dep.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: owner.Name, UID: owner.UID}}
		if _, err := c.CoreV1().Services("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := c.CoreV1().Services("default").Delete(ctx, owner.Name, metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil {
			t.Fatal(err)
		}
		poll("owner "+owner.Name+" to go", func() bool {
			_, err := c.CoreV1().Services("default").Get(ctx, owner.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
		if policy == metav1.DeletePropagationOrphan {
			got, err := c.CoreV1().Services("default").Get(ctx, dep.Name, metav1.GetOptions{})
			if err != nil || len(got.OwnerReferences) != 0 {
				t.Errorf("orphaned dependent: %v, ownerReferences %v", err, got.OwnerReferences)
			}
			continue
		}
		poll("dependent "+dep.Name+" to be collected", func() bool {
			_, err := c.CoreV1().Services("default").Get(ctx, dep.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
	}
}

// SIGTERM (and Ctrl-C) stop `svcnet up` cleanly: exit status 0, and the next start finds everything.
func TestSigtermStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	p := up(t, dir)
	c := clientFor(t, filepath.Join(dir, "kubeconfig"))
	if _, err := c.CoreV1().Services("default").Create(context.Background(), nodePortSvc("kept"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p.kill(syscall.SIGTERM)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("svcnet up exited %d on SIGTERM; output: %v", code, p.output())
	}
	up(t, dir)
	c = clientFor(t, filepath.Join(dir, "kubeconfig"))
	if _, err := c.CoreV1().Services("default").Get(context.Background(), "kept", metav1.GetOptions{}); err != nil {
		t.Fatalf("service lost across a clean restart: %v", err)
	}
}
