package statefulset_test

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
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/kubectl/pkg/polymorphichelpers"
	"k8s.io/kubectl/pkg/util/podutils"
	"k8s.io/utils/ptr"

	"github.com/svcnet/svcnet/internal/controller/controllertest"
	"github.com/svcnet/svcnet/internal/controller/statefulset"
	"github.com/svcnet/svcnet/internal/testenv"
)

// start runs the StatefulSet controller with its own informers until the test ends.
func start(t *testing.T, env *testenv.Env) {
	t.Helper()
	controllertest.Start(t, env.Client, func(f informers.SharedInformerFactory) []controllertest.Runner {
		return []controllertest.Runner{statefulset.New(env.Client, f)}
	})
}

// pods lists ns's pods not being deleted, by name.
func pods(t *testing.T, c kubernetes.Interface, ns string) map[string]corev1.Pod {
	t.Helper()
	l, err := c.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]corev1.Pod{}
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			out[p.Name] = p
		}
	}
	return out
}

func names(m map[string]corev1.Pod) []string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func newSet(name string, replicas int32, policy appsv1.PodManagementPolicyType) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(replicas),
			ServiceName:         "nginx",
			PodManagementPolicy: policy,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img:v1"}}},
			},
		},
	}
}

func getSet(t *testing.T, c kubernetes.Interface, ns, name string) *appsv1.StatefulSet {
	t.Helper()
	s, err := c.AppsV1().StatefulSets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func statusLine(s *appsv1.StatefulSet) string {
	st := s.Status
	return fmt.Sprintf("gen %d/%d replicas %d ready %d available %d current %d updated %d revisions %s/%s",
		st.ObservedGeneration, s.Generation, st.Replicas, st.ReadyReplicas, st.AvailableReplicas, st.CurrentReplicas,
		st.UpdatedReplicas, st.CurrentRevision, st.UpdateRevision)
}

func rolloutStatus(t *testing.T, c kubernetes.Interface, ns, name string) (string, bool) {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(getSet(t, c, ns, name))
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := polymorphichelpers.StatusViewerFor(schema.GroupKind{Group: "apps", Kind: "StatefulSet"})
	if err != nil {
		t.Fatal(err)
	}
	msg, done, err := viewer.Status(&unstructured.Unstructured{Object: m}, 0)
	if err != nil {
		return err.Error(), false
	}
	return strings.TrimSpace(msg), done
}

// markOneReady marks just the named pod ready.
func markOneReady(t *testing.T, c kubernetes.Interface, ns, name string) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
		_, err = c.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// OrderedReady: web-0 alone until it is Ready, then web-1, then web-2, each with its stable
// hostname, subdomain and labels; a deleted pod comes back under its name; scale-down goes from the
// highest ordinal; a template change rolls from the highest ordinal and `kubectl rollout status`
// follows.
func TestOrderedReady(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	start(t, env)
	c, ctx, ns := env.Client, context.Background(), "sts-ordered"
	controllertest.Namespace(t, c, ns)
	set, err := c.AppsV1().StatefulSets(ns).Create(ctx, newSet("web", 3, appsv1.OrderedReadyPodManagement), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	for i, want := range [][]string{{"web-0"}, {"web-0", "web-1"}, {"web-0", "web-1", "web-2"}} {
		controllertest.Eventually(t, fmt.Sprintf("pods %v", want), func() (bool, string) {
			got := names(pods(t, c, ns))
			if len(got) > len(want) {
				t.Fatalf("pods %v before %s was ready", got, want[len(want)-2])
			}
			return slices.Equal(got, want), fmt.Sprint(got)
		})
		// The next ordinal must not appear while the newest pod is not ready: wait until the
		// controller has reported the new pod (so it has seen it) and check again.
		controllertest.Eventually(t, "status sees the new pod", func() (bool, string) {
			s := getSet(t, c, ns, "web")
			return s.Status.Replicas == int32(i+1), statusLine(s)
		})
		if got := names(pods(t, c, ns)); len(got) != i+1 {
			t.Fatalf("pods %v while %s is not ready", got, want[i])
		}
		markOneReady(t, c, ns, want[i])
	}

	controllertest.Eventually(t, "all ready", func() (bool, string) {
		s := getSet(t, c, ns, "web")
		st := s.Status
		return st.ObservedGeneration == s.Generation && st.Replicas == 3 && st.ReadyReplicas == 3 && st.AvailableReplicas == 3 &&
				st.CurrentReplicas == 3 && st.UpdatedReplicas == 3 && st.CurrentRevision != "" && st.CurrentRevision == st.UpdateRevision,
			statusLine(s)
	})
	rev := getSet(t, c, ns, "web").Status.UpdateRevision
	if !strings.HasPrefix(rev, "web-") {
		t.Errorf("revision %q", rev)
	}
	for i, name := range []string{"web-0", "web-1", "web-2"} {
		p := pods(t, c, ns)[name]
		if p.Spec.Hostname != name || p.Spec.Subdomain != "nginx" {
			t.Errorf("%s hostname %q subdomain %q", name, p.Spec.Hostname, p.Spec.Subdomain)
		}
		if p.Labels[appsv1.StatefulSetPodNameLabel] != name || p.Labels[appsv1.PodIndexLabel] != fmt.Sprint(i) ||
			p.Labels[appsv1.StatefulSetRevisionLabel] != rev || p.Labels["app"] != "web" {
			t.Errorf("%s labels %v", name, p.Labels)
		}
		if ref := metav1.GetControllerOf(&p); ref == nil || ref.UID != set.UID || !ptr.Deref(ref.BlockOwnerDeletion, false) {
			t.Errorf("%s owners %v", name, p.OwnerReferences)
		}
	}
	if msg, done := rolloutStatus(t, c, ns, "web"); !done {
		t.Errorf("rollout status: %s", msg)
	}

	// Delete web-1: it comes back under the same name, as a new pod.
	oldUID := pods(t, c, ns)["web-1"].UID
	if err := c.CoreV1().Pods(ns).Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, "web-1 recreated", func() (bool, string) {
		p, ok := pods(t, c, ns)["web-1"]
		return ok && p.UID != oldUID && p.Spec.Hostname == "web-1", fmt.Sprint(names(pods(t, c, ns)))
	})
	controllertest.MarkReady(t, c, ns)

	// Rolling update: highest ordinal first, one at a time.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s := getSet(t, c, ns, "web")
		s.Spec.Template.Spec.Containers[0].Image = "img:v2"
		_, err := c.AppsV1().StatefulSets(ns).Update(ctx, s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	record := func(ps map[string]corev1.Pod) {
		for _, name := range names(ps) {
			if ps[name].Spec.Containers[0].Image == "img:v2" && !slices.Contains(order, name) {
				order = append(order, name)
			}
		}
	}
	controllertest.Eventually(t, "rolled out", func() (bool, string) {
		ps := pods(t, c, ns)
		record(ps)
		notReady := 0
		for _, p := range ps {
			if !podutils.IsPodReady(&p) {
				notReady++
			}
		}
		if notReady+3-len(ps) > 1 {
			t.Errorf("%d pods unavailable at once during the update", notReady+3-len(ps))
		}
		controllertest.MarkReady(t, c, ns)
		s := getSet(t, c, ns, "web")
		st := s.Status
		return st.ObservedGeneration == s.Generation && st.UpdateRevision != rev && st.CurrentRevision == st.UpdateRevision &&
			st.UpdatedReplicas == 3 && st.ReadyReplicas == 3, statusLine(s)
	})
	// The last pod may have been replaced and made ready within the final poll.
	record(pods(t, c, ns))
	if !slices.Equal(order, []string{"web-2", "web-1", "web-0"}) {
		t.Errorf("update order %v, want web-2, web-1, web-0", order)
	}
	// The defaulted partition 0 makes kubectl speak of a partitioned roll out, as with kube.
	if msg, done := rolloutStatus(t, c, ns, "web"); !done || msg != "partitioned roll out complete: 3 new pods have been updated..." {
		t.Errorf("rollout status %q", msg)
	}

	// Scale down to 1: web-2 goes first, then web-1.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := c.AppsV1().StatefulSets(ns).GetScale(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Replicas = 1
		_, err = c.AppsV1().StatefulSets(ns).UpdateScale(ctx, "web", s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, "scaled down", func() (bool, string) {
		got := names(pods(t, c, ns))
		if slices.Equal(got, []string{"web-0", "web-2"}) {
			t.Errorf("web-1 deleted before web-2")
		}
		st := getSet(t, c, ns, "web").Status
		return slices.Equal(got, []string{"web-0"}) && st.Replicas == 1, fmt.Sprint(got)
	})
}

// Parallel creates every pod without waiting, and a failed pod is replaced under its name.
func TestParallel(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	start(t, env)
	c, ctx, ns := env.Client, context.Background(), "sts-parallel"
	controllertest.Namespace(t, c, ns)
	if _, err := c.AppsV1().StatefulSets(ns).Create(ctx, newSet("db", 4, appsv1.ParallelPodManagement), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, "all pods without readiness", func() (bool, string) {
		got := names(pods(t, c, ns))
		return slices.Equal(got, []string{"db-0", "db-1", "db-2", "db-3"}), fmt.Sprint(got)
	})
	controllertest.MarkReady(t, c, ns)
	controllertest.Eventually(t, "ready", func() (bool, string) {
		s := getSet(t, c, ns, "db")
		return s.Status.ReadyReplicas == 4, statusLine(s)
	})

	// db-2 fails: it is deleted and created again.
	oldUID := pods(t, c, ns)["db-2"].UID
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := c.CoreV1().Pods(ns).Get(ctx, "db-2", metav1.GetOptions{})
		if err != nil {
			return err
		}
		p.Status.Phase = corev1.PodFailed
		p.Status.Conditions = nil
		_, err = c.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, "failed pod replaced", func() (bool, string) {
		p, ok := pods(t, c, ns)["db-2"]
		return ok && p.UID != oldUID && p.Status.Phase != corev1.PodFailed, fmt.Sprint(names(pods(t, c, ns)))
	})
}
