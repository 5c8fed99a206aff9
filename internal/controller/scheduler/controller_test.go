package scheduler_test

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/svcnet/svcnet/internal/controller/scheduler"
	"github.com/svcnet/svcnet/internal/testenv"
)

const timeout = 30 * time.Second

// start runs the scheduler against env until the test ends.
func start(t *testing.T, env *testenv.Env) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	// Protobuf, as the controller manager talks to the API server.
	cfg := rest.CopyConfig(env.Config)
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	kube := kubernetes.NewForConfigOrDie(cfg)
	factory := informers.NewSharedInformerFactory(kube, 0)
	s := scheduler.New(kube, factory)
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx, 2)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		factory.Shutdown()
	})
}

type nodeOpt func(*corev1.Node)

func cordoned(n *corev1.Node) { n.Spec.Unschedulable = true }

func labelled(kv ...string) nodeOpt {
	return func(n *corev1.Node) {
		for i := 0; i+1 < len(kv); i += 2 {
			n.Labels[kv[i]] = kv[i+1]
		}
	}
}

// readyNode creates a node and posts its status as an agent would: Ready, room for 110 pods.
func readyNode(t *testing.T, c kubernetes.Interface, name string, opts ...nodeOpt) {
	t.Helper()
	ctx := context.Background()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}}}
	for _, o := range opts {
		o(n)
	}
	n, err := c.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status = corev1.NodeStatus{
		Capacity:    corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110")},
		Allocatable: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110")},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "AgentReady",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
	}
	if _, err := c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func createPod(t *testing.T, c kubernetes.Interface, name string, nodeSelector map[string]string) {
	t.Helper()
	_, err := c.CoreV1().Pods("default").Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeSelector: nodeSelector,
			Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/e2e-test-images/agnhost:2.53"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// placement waits until every named pod is bound and returns pod -> node.
func placement(t *testing.T, c kubernetes.Interface, pods ...string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		l, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		clear(got)
		for _, p := range l.Items {
			if p.Spec.NodeName != "" {
				got[p.Name] = p.Spec.NodeName
			}
		}
		for _, p := range pods {
			if got[p] == "" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("pods %v not all bound (bound: %v): %v", pods, got, err)
	}
	return got
}

// event waits for an event of the given reason on a pod and returns its message.
func event(t *testing.T, c kubernetes.Interface, pod, reason string) string {
	t.Helper()
	var msg string
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		l, err := c.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range l.Items {
			if e.InvolvedObject.Kind == "Pod" && e.InvolvedObject.Name == pod && e.Reason == reason {
				if e.Source.Component != scheduler.Name {
					return false, fmt.Errorf("event from %q, want %q", e.Source.Component, scheduler.Name)
				}
				msg = e.Message
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no %s event for pod %s: %v", reason, pod, err)
	}
	return msg
}

func TestSpreadsPodsEvenly(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	c := env.Client
	for i := 1; i <= 3; i++ {
		readyNode(t, c, fmt.Sprintf("node-%d", i))
	}
	start(t, env)
	var pods []string
	for i := 0; i < 6; i++ {
		pods = append(pods, fmt.Sprintf("web-%d", i))
		createPod(t, c, pods[i], nil)
	}
	got := placement(t, c, pods...)
	perNode := map[string]int{}
	for _, n := range got {
		perNode[n]++
	}
	if want := map[string]int{"node-1": 2, "node-2": 2, "node-3": 2}; !maps.Equal(perNode, want) {
		t.Fatalf("pods per node = %v, want %v (placement %v)", perNode, want, got)
	}
	for _, p := range pods {
		want := fmt.Sprintf("Successfully assigned default/%s to %s", p, got[p])
		if msg := event(t, c, p, "Scheduled"); msg != want {
			t.Errorf("Scheduled event = %q, want %q", msg, want)
		}
		pod, err := c.CoreV1().Pods("default").Get(context.Background(), p, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !hasCondition(pod, corev1.PodScheduled, corev1.ConditionTrue, "") {
			t.Errorf("pod %s conditions = %+v, want PodScheduled=True", p, pod.Status.Conditions)
		}
	}
}

func TestNodeSelectorHonoured(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	c := env.Client
	readyNode(t, c, "node-1")
	readyNode(t, c, "node-2", labelled("disk", "ssd"))
	readyNode(t, c, "node-3")
	start(t, env)
	for i := 0; i < 3; i++ {
		createPod(t, c, fmt.Sprintf("db-%d", i), map[string]string{"disk": "ssd"})
	}
	got := placement(t, c, "db-0", "db-1", "db-2")
	for p, n := range got {
		if n != "node-2" {
			t.Errorf("pod %s on %s, want node-2 (the only ssd node)", p, n)
		}
	}
	// A pod without a selector avoids the busy ssd node: node-1 and node-3 tie, node-1 by name.
	createPod(t, c, "web", nil)
	if n := placement(t, c, "web")["web"]; n != "node-1" {
		t.Errorf("web on %s, want node-1", n)
	}
}

func TestUnschedulableUntilANodeFits(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	c := env.Client
	readyNode(t, c, "node-1", cordoned)
	readyNode(t, c, "node-2", cordoned, labelled("zone", "b"))
	readyNode(t, c, "node-3", labelled("zone", "a"))
	start(t, env)
	createPod(t, c, "web-1", map[string]string{"zone": "b"})

	const want = "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 node(s) were unschedulable."
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var err error
		pod, err = c.CoreV1().Pods("default").Get(ctx, "web-1", metav1.GetOptions{})
		return err == nil && hasCondition(pod, corev1.PodScheduled, corev1.ConditionFalse, corev1.PodReasonUnschedulable), err
	})
	if err != nil {
		t.Fatalf("pod never marked unschedulable: %v (conditions %+v)", err, pod.Status.Conditions)
	}
	if msg := condition(pod, corev1.PodScheduled).Message; msg != want {
		t.Errorf("PodScheduled message = %q, want %q", msg, want)
	}
	if msg := event(t, c, "web-1", "FailedScheduling"); msg != want {
		t.Errorf("FailedScheduling event = %q, want %q", msg, want)
	}
	if pod.Spec.NodeName != "" {
		t.Fatalf("unschedulable pod bound to %s", pod.Spec.NodeName)
	}

	// A node that fits appears: the pod goes there without waiting out its back-off.
	readyNode(t, c, "node-4", labelled("zone", "b"))
	if n := placement(t, c, "web-1")["web-1"]; n != "node-4" {
		t.Fatalf("web-1 on %s, want node-4", n)
	}
	pod, err = c.CoreV1().Pods("default").Get(context.Background(), "web-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasCondition(pod, corev1.PodScheduled, corev1.ConditionTrue, "") {
		t.Errorf("conditions after binding = %+v, want PodScheduled=True", pod.Status.Conditions)
	}
	if msg := event(t, c, "web-1", "Scheduled"); msg != "Successfully assigned default/web-1 to node-4" {
		t.Errorf("Scheduled event = %q", msg)
	}
}

func TestPodsOutsideItsRemitAreLeftAlone(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	c := env.Client
	readyNode(t, c, "node-1")
	start(t, env)
	ctx := context.Background()
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "other"},
		Spec: corev1.PodSpec{SchedulerName: "my-scheduler", Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	if _, err := c.CoreV1().Pods("default").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gated := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "gated"},
		Spec: corev1.PodSpec{SchedulingGates: []corev1.PodSchedulingGate{{Name: "example.com/wait"}},
			Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	if _, err := c.CoreV1().Pods("default").Create(ctx, gated, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A pod of ours created after them is bound; by then the others have been seen and skipped.
	createPod(t, c, "mine", nil)
	placement(t, c, "mine")
	for _, name := range []string{"other", "gated"} {
		p, err := c.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.NodeName != "" {
			t.Errorf("pod %s bound to %s", name, p.Spec.NodeName)
		}
	}
	// Lifting the gate lets the pod through.
	p, err := c.CoreV1().Pods("default").Get(ctx, "gated", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.SchedulingGates = nil
	if _, err := c.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	placement(t, c, "gated")
}

func condition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return &corev1.PodCondition{}
}

func hasCondition(p *corev1.Pod, t corev1.PodConditionType, s corev1.ConditionStatus, reason string) bool {
	c := condition(p, t)
	return c.Status == s && (reason == "" || c.Reason == reason)
}
