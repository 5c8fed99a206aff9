package replicaset_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/svcnet/svcnet/internal/controller/controllertest"
	"github.com/svcnet/svcnet/internal/controller/replicaset"
	"github.com/svcnet/svcnet/internal/testenv"
)

// start runs the ReplicaSet controller with its own informers until the test ends.
func start(t *testing.T, env *testenv.Env) {
	t.Helper()
	controllertest.Start(t, env.Client, func(f informers.SharedInformerFactory) []controllertest.Runner {
		return []controllertest.Runner{replicaset.New(env.Client, f)}
	})
}

// livePods are the pods of ns that are not being deleted, sorted by name.
func livePods(t *testing.T, c kubernetes.Interface, ns string) []corev1.Pod {
	t.Helper()
	l, err := c.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func names(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

func newRS(name string, replicas int32) *appsv1.ReplicaSet {
	labels := map[string]string{"app": name}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name, "tier": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}
}

func getRS(t *testing.T, c kubernetes.Interface, ns, name string) *appsv1.ReplicaSet {
	t.Helper()
	rs, err := c.AppsV1().ReplicaSets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func scaleRS(t *testing.T, c kubernetes.Interface, ns, name string, n int32) {
	t.Helper()
	ctx := context.Background()
	// The scale carries the resourceVersion, which status writes move on.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := c.AppsV1().ReplicaSets(ns).GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Replicas = n
		_, err = c.AppsV1().ReplicaSets(ns).UpdateScale(ctx, name, s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A ReplicaSet of 3 creates 3 pods from its template, owned by it; status follows readiness; a
// deleted pod is replaced.
func TestCreatesPodsAndReplacesDeleted(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	start(t, env)
	c, ctx, ns := env.Client, context.Background(), "rs-basic"
	controllertest.Namespace(t, c, ns)
	rs, err := c.AppsV1().ReplicaSets(ns).Create(ctx, newRS("web", 3), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, "3 pods", func() (bool, string) {
		pods := livePods(t, c, ns)
		return len(pods) == 3, fmt.Sprint(names(pods))
	})
	for _, p := range livePods(t, c, ns) {
		ref := metav1.GetControllerOf(&p)
		if !strings.HasPrefix(p.Name, "web-") || len(p.Name) != len("web-")+5 || p.GenerateName != "web-" {
			t.Errorf("pod name %q generateName %q", p.Name, p.GenerateName)
		}
		if p.Labels["app"] != "web" || p.Labels["tier"] != "web" {
			t.Errorf("pod %s labels %v", p.Name, p.Labels)
		}
		if ref == nil || ref.UID != rs.UID || ref.Kind != "ReplicaSet" || ref.APIVersion != "apps/v1" ||
			!ptr.Deref(ref.BlockOwnerDeletion, false) {
			t.Errorf("pod %s owner %+v", p.Name, p.OwnerReferences)
		}
	}
	controllertest.Eventually(t, "status before readiness", func() (bool, string) {
		st := getRS(t, c, ns, "web").Status
		return st.Replicas == 3 && st.FullyLabeledReplicas == 3 && st.ReadyReplicas == 0 && st.ObservedGeneration == 1 &&
			ptr.Deref(st.TerminatingReplicas, -1) == 0, fmt.Sprintf("%+v", st)
	})
	controllertest.MarkReady(t, c, ns)
	controllertest.Eventually(t, "ready status", func() (bool, string) {
		st := getRS(t, c, ns, "web").Status
		return st.ReadyReplicas == 3 && st.AvailableReplicas == 3, fmt.Sprintf("%+v", st)
	})

	victim := livePods(t, c, ns)[1].Name
	if err := c.CoreV1().Pods(ns).Delete(ctx, victim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, "replacement", func() (bool, string) {
		pods := livePods(t, c, ns)
		return len(pods) == 3 && !slices.Contains(names(pods), victim), fmt.Sprint(names(pods))
	})
	controllertest.Eventually(t, "status after replacement", func() (bool, string) {
		st := getRS(t, c, ns, "web").Status
		return st.Replicas == 3 && st.ReadyReplicas == 2, fmt.Sprintf("%+v", st)
	})
}

// Scaling down deletes the not-ready pod first, then the pod with the lowest deletion cost.
func TestScaleDownPicksPods(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	start(t, env)
	c, ctx, ns := env.Client, context.Background(), "rs-scale"
	controllertest.Namespace(t, c, ns)
	if _, err := c.AppsV1().ReplicaSets(ns).Create(ctx, newRS("web", 4), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, "4 pods", func() (bool, string) {
		pods := livePods(t, c, ns)
		return len(pods) == 4, fmt.Sprint(names(pods))
	})
	pods := names(livePods(t, c, ns))
	notReady := pods[2]
	controllertest.MarkReady(t, c, ns, notReady)
	cheap := pods[0]
	if _, err := c.CoreV1().Pods(ns).Patch(ctx, cheap, "application/merge-patch+json",
		[]byte(`{"metadata":{"annotations":{"controller.kubernetes.io/pod-deletion-cost":"-10"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, "3 ready", func() (bool, string) {
		st := getRS(t, c, ns, "web").Status
		return st.ReadyReplicas == 3, fmt.Sprintf("%+v", st)
	})

	scaleRS(t, c, ns, "web", 3)
	controllertest.Eventually(t, "not-ready pod deleted", func() (bool, string) {
		got := names(livePods(t, c, ns))
		return len(got) == 3 && !slices.Contains(got, notReady), fmt.Sprint(got)
	})
	scaleRS(t, c, ns, "web", 2)
	controllertest.Eventually(t, "cheapest pod deleted", func() (bool, string) {
		got := names(livePods(t, c, ns))
		return len(got) == 2 && !slices.Contains(got, cheap), fmt.Sprint(got)
	})
	controllertest.Eventually(t, "status after scale-down", func() (bool, string) {
		rs := getRS(t, c, ns, "web")
		return rs.Status.Replicas == 2 && rs.Status.ObservedGeneration == rs.Generation, fmt.Sprintf("%+v", rs.Status)
	})
	// Nothing more is deleted once the count is right.
	if got := names(livePods(t, c, ns)); len(got) != 2 {
		t.Fatalf("pods after scale-down: %v", got)
	}
}

// A matching orphan pod is adopted instead of creating a new one; a pod relabelled out of the
// selector is released and replaced.
func TestAdoptAndRelease(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	start(t, env)
	c, ctx, ns := env.Client, context.Background(), "rs-adopt"
	controllertest.Namespace(t, c, ns)
	orphan := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "orphan", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
	}
	if _, err := c.CoreV1().Pods(ns).Create(ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rs, err := c.AppsV1().ReplicaSets(ns).Create(ctx, newRS("web", 2), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, "orphan adopted and one pod created", func() (bool, string) {
		pods := livePods(t, c, ns)
		if len(pods) != 2 || !slices.Contains(names(pods), "orphan") {
			return false, fmt.Sprint(names(pods))
		}
		for _, p := range pods {
			if ref := metav1.GetControllerOf(&p); ref == nil || ref.UID != rs.UID {
				return false, fmt.Sprintf("%s owners %v", p.Name, p.OwnerReferences)
			}
		}
		return true, ""
	})
	// Relabel the adopted pod out of the selector.
	if _, err := c.CoreV1().Pods(ns).Patch(ctx, "orphan", "application/merge-patch+json",
		[]byte(`{"metadata":{"labels":{"app":"elsewhere"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, "released and replaced", func() (bool, string) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, "orphan", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if len(p.OwnerReferences) != 0 {
			return false, fmt.Sprintf("orphan still owned: %v", p.OwnerReferences)
		}
		owned := 0
		for _, q := range livePods(t, c, ns) {
			if metav1.IsControlledBy(&q, rs) {
				owned++
			}
		}
		return owned == 2, fmt.Sprintf("%d owned pods", owned)
	})
}

// A pod in graceful deletion no longer counts: a replacement is created at once and the status
// reports it as terminating.
func TestTerminatingPodsDoNotCount(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	start(t, env)
	c, ctx, ns := env.Client, context.Background(), "rs-term"
	controllertest.Namespace(t, c, ns)
	if _, err := c.AppsV1().ReplicaSets(ns).Create(ctx, newRS("web", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, "2 pods", func() (bool, string) {
		pods := livePods(t, c, ns)
		return len(pods) == 2, fmt.Sprint(names(pods))
	})
	victim := livePods(t, c, ns)[0].Name
	// Bound to a node, the pod is deleted gracefully and stays until its kubelet confirms (never here).
	if err := c.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: victim},
		Target: corev1.ObjectReference{Kind: "Node", Name: "node-1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().Pods(ns).Delete(ctx, victim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, "replacement beside the terminating pod", func() (bool, string) {
		pods := livePods(t, c, ns)
		st := getRS(t, c, ns, "web").Status
		return len(pods) == 2 && !slices.Contains(names(pods), victim) &&
				st.Replicas == 2 && ptr.Deref(st.TerminatingReplicas, 0) == 1,
			fmt.Sprintf("pods %v status %+v", names(pods), st)
	})
}
