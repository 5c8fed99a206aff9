package nodelifecycle_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/svcnet/svcnet/internal/controller/nodelifecycle"
	"github.com/svcnet/svcnet/internal/testenv"
)

const (
	// grace is short for the test, yet many renew intervals long so that a loaded machine does not
	// make the healthy node miss it.
	grace         = 3 * time.Second
	renewInterval = 200 * time.Millisecond
	timeout       = 30 * time.Second
)

func start(t *testing.T, env *testenv.Env) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	// Protobuf, as the controller manager talks to the API server.
	cfg := rest.CopyConfig(env.Config)
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	kube := kubernetes.NewForConfigOrDie(cfg)
	factory := informers.NewSharedInformerFactory(kube, 0)
	c := nodelifecycle.New(kube, factory, nodelifecycle.Options{GracePeriod: grace})
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, 2)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		factory.Shutdown()
	})
}

// registerNode creates a node, its Lease and a Ready status, as an agent does when it starts.
func registerNode(t *testing.T, c kubernetes.Interface, name string) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	now := metav1.NowMicro()
	if _, err := c.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &now},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := postReady(ctx, c, name); err != nil {
		t.Fatal(err)
	}
}

// postReady posts Ready=True with a fresh heartbeat.
func postReady(ctx context.Context, c kubernetes.Interface, name string) error {
	n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	n.Status.Conditions = []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "AgentReady", Message: "agent is posting ready status",
			LastHeartbeatTime: now, LastTransitionTime: now},
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "AgentHasSufficientMemory",
			LastHeartbeatTime: now, LastTransitionTime: now},
	}
	_, err = c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
	return err
}

// agent renews the node's Lease until stopped, as a node agent does; when it (re)starts it posts
// Ready=True first, as an agent finding its node not Ready does.
func agent(t *testing.T, c kubernetes.Interface, name string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := postReady(ctx, c, name); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(renewInterval)
		defer tick.Stop()
		for {
			l, err := c.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
			if err == nil {
				l.Spec.RenewTime = ptr.To(metav1.NowMicro())
				_, err = c.CoordinationV1().Leases(corev1.NamespaceNodeLease).Update(ctx, l, metav1.UpdateOptions{})
			}
			if err != nil && ctx.Err() == nil {
				t.Logf("agent %s: renew lease: %v", name, err)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			wg.Wait()
		}
	}
	t.Cleanup(stop)
	return stop
}

func readyPod(t *testing.T, c kubernetes.Interface, name, node string) {
	t.Helper()
	ctx := context.Background()
	p, err := c.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "i"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	// Status fields the API server set on create (qosClass) stay as they are.
	p.Status.Phase, p.Status.PodIP, p.Status.PodIPs = corev1.PodRunning, "10.244.1.10", []corev1.PodIP{{IP: "10.244.1.10"}}
	p.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	if _, err := c.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// nodeState renders what the test checks of a node: "Ready=<status>/<reason> taints=[...]".
func nodeState(ctx context.Context, c kubernetes.Interface, name string) (string, error) {
	n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	ready := "none"
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			ready = fmt.Sprintf("%s/%s", cond.Status, cond.Reason)
		}
	}
	var taints []string
	for _, tn := range n.Spec.Taints {
		taints = append(taints, tn.ToString())
	}
	slices.Sort(taints)
	return fmt.Sprintf("Ready=%s taints=%v", ready, taints), nil
}

func podReady(ctx context.Context, c kubernetes.Interface, name string) (corev1.ConditionStatus, error) {
	p, err := c.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status, nil
		}
	}
	return "", nil
}

// eventually polls until the node and pods are in the wanted state.
func eventually(t *testing.T, c kubernetes.Interface, node, wantNode string, pods map[string]corev1.ConditionStatus) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		got, err := nodeState(ctx, c, node)
		if err != nil {
			return false, err
		}
		last = node + ": " + got
		if got != wantNode {
			return false, nil
		}
		for p, want := range pods {
			s, err := podReady(ctx, c, p)
			if err != nil {
				return false, err
			}
			if s != want {
				last = fmt.Sprintf("pod %s Ready=%s", p, s)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("want %s: %s, pods %v; last seen %s: %v", node, wantNode, pods, last, err)
	}
}

const (
	healthy     = "Ready=True/AgentReady taints=[]"
	unreachable = "Ready=Unknown/NodeStatusUnknown taints=[node.kubernetes.io/unreachable:NoExecute node.kubernetes.io/unreachable:NoSchedule]"
)

func TestSilentNodeIsMarkedAndRecovers(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	c := env.Client
	registerNode(t, c, "node-a")
	registerNode(t, c, "node-b")
	readyPod(t, c, "pod-a", "node-a")
	readyPod(t, c, "pod-b", "node-b")
	agent(t, c, "node-a")
	stopB := agent(t, c, "node-b")
	start(t, env)

	// Both agents heartbeat: nothing happens.
	eventually(t, c, "node-b", healthy, map[string]corev1.ConditionStatus{"pod-b": corev1.ConditionTrue})

	// node-b's agent stops: after the grace period the node goes Unknown and tainted, its pod not ready.
	stopB()
	eventually(t, c, "node-b", unreachable, map[string]corev1.ConditionStatus{"pod-b": corev1.ConditionFalse})
	n, err := c.CoreV1().Nodes().Get(context.Background(), "node-b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cond := range n.Status.Conditions {
		if cond.Status != corev1.ConditionUnknown || cond.Message != nodelifecycle.MessageNodeStatusUnknown {
			t.Errorf("condition %s = %s %q, want Unknown %q", cond.Type, cond.Status, cond.Message, nodelifecycle.MessageNodeStatusUnknown)
		}
	}
	for _, tn := range n.Spec.Taints {
		if tn.TimeAdded == nil {
			t.Errorf("taint %s has no timeAdded", tn.ToString())
		}
	}
	podEvent(t, c, "pod-b", "NodeNotReady", "Node is not ready")

	// A pod reported ready on the silent node (a stale writer) is held not ready too.
	readyPod(t, c, "pod-late", "node-b")
	eventually(t, c, "node-b", unreachable, map[string]corev1.ConditionStatus{"pod-late": corev1.ConditionFalse})

	// node-a kept its heartbeat throughout.
	eventually(t, c, "node-a", healthy, map[string]corev1.ConditionStatus{"pod-a": corev1.ConditionTrue})

	// node-b's agent comes back: it posts Ready and renews its Lease; the taints go.
	agent(t, c, "node-b")
	eventually(t, c, "node-b", healthy, nil)
	eventually(t, c, "node-a", healthy, map[string]corev1.ConditionStatus{"pod-a": corev1.ConditionTrue})
}

// TestLeaseAloneKeepsNodeHealthy: an agent that posts status once and then only renews its Lease
// (as the kubelet does) is not marked, even though lastHeartbeatTime is far older than the grace.
func TestLeaseAloneKeepsNodeHealthy(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	c := env.Client
	registerNode(t, c, "node-a")
	readyPod(t, c, "pod-a", "node-a")
	agent(t, c, "node-a")
	start(t, env)
	// Wait until the Lease has been renewed well past the grace period after the last status
	// heartbeat.
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		n, err := c.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		l, err := c.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "node-a", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return l.Spec.RenewTime.Sub(n.Status.Conditions[0].LastHeartbeatTime.Time) > grace+time.Second, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, c, "node-a", healthy, map[string]corev1.ConditionStatus{"pod-a": corev1.ConditionTrue})
}

func podEvent(t *testing.T, c kubernetes.Interface, pod, reason, message string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		l, err := c.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range l.Items {
			if e.InvolvedObject.Name == pod && e.Reason == reason && e.Message == message && e.Type == corev1.EventTypeWarning {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no %s event %q on pod %s: %v", reason, message, pod, err)
	}
}
