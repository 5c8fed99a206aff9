package deployment_test

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
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/kubectl/pkg/polymorphichelpers"
	"k8s.io/kubectl/pkg/util/podutils"
	"k8s.io/utils/ptr"

	"github.com/svcnet/svcnet/internal/controller/controllertest"
	"github.com/svcnet/svcnet/internal/controller/deployment"
	"github.com/svcnet/svcnet/internal/controller/replicaset"
	"github.com/svcnet/svcnet/internal/testenv"
)

// start runs the Deployment and ReplicaSet controllers on one informer factory until the test ends.
func start(t *testing.T, env *testenv.Env) {
	t.Helper()
	controllertest.Start(t, env.Client, func(f informers.SharedInformerFactory) []controllertest.Runner {
		return []controllertest.Runner{deployment.New(env.Client, f), replicaset.New(env.Client, f)}
	})
}

func newDeployment(name string, replicas int32, image string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
			},
		},
	}
}

func getD(t *testing.T, c kubernetes.Interface, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := c.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func replicaSets(t *testing.T, c kubernetes.Interface, ns string) []appsv1.ReplicaSet {
	t.Helper()
	l, err := c.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Name < l.Items[j].Name })
	return l.Items
}

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
	return out
}

// rolloutStatus is what `kubectl rollout status` prints for the Deployment, and whether it is done.
func rolloutStatus(t *testing.T, c kubernetes.Interface, ns, name string) (string, bool) {
	t.Helper()
	d := getD(t, c, ns, name)
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(d)
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := polymorphichelpers.StatusViewerFor(schema.GroupKind{Group: "apps", Kind: "Deployment"})
	if err != nil {
		t.Fatal(err)
	}
	msg, done, err := viewer.Status(&unstructured.Unstructured{Object: m}, 0)
	if err != nil {
		return err.Error(), false
	}
	return strings.TrimSpace(msg), done
}

func condition(d *appsv1.Deployment, t appsv1.DeploymentConditionType) string {
	for _, c := range d.Status.Conditions {
		if c.Type == t {
			return fmt.Sprintf("%s/%s", c.Status, c.Reason)
		}
	}
	return "none"
}

func statusLine(d *appsv1.Deployment) string {
	st := d.Status
	return fmt.Sprintf("gen %d/%d replicas %d updated %d ready %d available %d unavailable %d available=%s progressing=%s",
		st.ObservedGeneration, d.Generation, st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas,
		st.UnavailableReplicas, condition(d, appsv1.DeploymentAvailable), condition(d, appsv1.DeploymentProgressing))
}

// complete: the rollout of the current generation finished with every pod ready.
func complete(d *appsv1.Deployment) bool {
	st, n := d.Status, *d.Spec.Replicas
	return st.ObservedGeneration == d.Generation && st.Replicas == n && st.UpdatedReplicas == n && st.ReadyReplicas == n &&
		st.AvailableReplicas == n && st.UnavailableReplicas == 0 &&
		condition(d, appsv1.DeploymentAvailable) == "True/MinimumReplicasAvailable" &&
		condition(d, appsv1.DeploymentProgressing) == "True/NewReplicaSetAvailable"
}

func setImage(t *testing.T, c kubernetes.Interface, ns, name, image string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d := getD(t, c, ns, name)
		d.Spec.Template.Spec.Containers[0].Image = image
		_, err := c.AppsV1().Deployments(ns).Update(context.Background(), d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A Deployment creates its ReplicaSet and pods; a template change rolls out within maxSurge and
// maxUnavailable; status, conditions, revisions and `kubectl rollout status` follow; old
// ReplicaSets beyond revisionHistoryLimit are deleted.
func TestRollingUpdate(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	start(t, env)
	c, ctx, ns := env.Client, context.Background(), "deploy-rolling"
	controllertest.Namespace(t, c, ns)
	d := newDeployment("web", 3, "img:v1")
	d.Spec.RevisionHistoryLimit = ptr.To(int32(1))
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: ptr.To(intstr.FromInt32(1)), MaxUnavailable: ptr.To(intstr.FromInt32(0))}}
	d, err := c.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	controllertest.Eventually(t, "first replicaset and pods", func() (bool, string) {
		rss := replicaSets(t, c, ns)
		pods := livePods(t, c, ns)
		return len(rss) == 1 && len(pods) == 3, fmt.Sprintf("%d replicasets, %d pods", len(rss), len(pods))
	})
	rs := replicaSets(t, c, ns)[0]
	hash := rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	if hash == "" || rs.Name != "web-"+hash || rs.Spec.Selector.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] != hash ||
		rs.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != hash || rs.Labels["app"] != "web" {
		t.Errorf("replicaset %s labels %v selector %v template labels %v", rs.Name, rs.Labels, rs.Spec.Selector, rs.Spec.Template.Labels)
	}
	if want := deployment.ComputeHash(&d.Spec.Template, nil); hash != want {
		t.Errorf("pod-template-hash %s, want %s", hash, want)
	}
	if ref := metav1.GetControllerOf(&rs); ref == nil || ref.UID != d.UID || ref.Kind != "Deployment" {
		t.Errorf("replicaset owners %v", rs.OwnerReferences)
	}
	if a := rs.Annotations; a[deployment.RevisionAnnotation] != "1" || a[deployment.DesiredReplicasAnnotation] != "3" || a[deployment.MaxReplicasAnnotation] != "4" {
		t.Errorf("replicaset annotations %v", a)
	}
	for _, p := range livePods(t, c, ns) {
		if p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != hash || !strings.HasPrefix(p.Name, rs.Name+"-") {
			t.Errorf("pod %s labels %v", p.Name, p.Labels)
		}
	}
	if msg, done := rolloutStatus(t, c, ns, "web"); done {
		t.Errorf("rollout status done before any pod is ready: %s", msg)
	}

	controllertest.Eventually(t, "first rollout complete", func() (bool, string) {
		controllertest.MarkReady(t, c, ns)
		d := getD(t, c, ns, "web")
		return complete(d), statusLine(d)
	})
	if msg, done := rolloutStatus(t, c, ns, "web"); !done || msg != `deployment "web" successfully rolled out` {
		t.Errorf("rollout status %q done=%v", msg, done)
	}
	if rev := getD(t, c, ns, "web").Annotations[deployment.RevisionAnnotation]; rev != "1" {
		t.Errorf("deployment revision %q", rev)
	}

	// Roll out twice; every observation must respect the strategy.
	for i, image := range []string{"img:v2", "img:v3"} {
		setImage(t, c, ns, "web", image)
		maxTotal := int32(0)
		controllertest.Eventually(t, "rollout to "+image, func() (bool, string) {
			controllertest.MarkReady(t, c, ns)
			var total int32
			for _, rs := range replicaSets(t, c, ns) {
				total += *rs.Spec.Replicas
			}
			maxTotal = max(maxTotal, total)
			if total > 4 {
				t.Errorf("replicasets ask for %d pods, more than replicas+maxSurge=4", total)
			}
			ready := 0
			for _, p := range livePods(t, c, ns) {
				if podutils.IsPodReady(&p) {
					ready++
				}
			}
			if ready < 3 {
				t.Errorf("%d ready pods, fewer than replicas-maxUnavailable=3", ready)
			}
			d := getD(t, c, ns, "web")
			return complete(d) && d.Annotations[deployment.RevisionAnnotation] == fmt.Sprint(i+2), statusLine(d)
		})
		if maxTotal != 4 {
			t.Errorf("rollout never used its surge: max %d pods asked", maxTotal)
		}
		controllertest.Eventually(t, "old pods gone", func() (bool, string) {
			var images []string
			for _, p := range livePods(t, c, ns) {
				images = append(images, p.Spec.Containers[0].Image)
			}
			return slices.Equal(images, []string{image, image, image}), fmt.Sprint(images)
		})
	}
	// revisionHistoryLimit 1: v3 (new) and v2 (one old) remain, v1 is deleted.
	controllertest.Eventually(t, "history cleaned", func() (bool, string) {
		var got []string
		for _, rs := range replicaSets(t, c, ns) {
			got = append(got, fmt.Sprintf("%s=%d", rs.Spec.Template.Spec.Containers[0].Image, *rs.Spec.Replicas))
		}
		sort.Strings(got)
		return slices.Equal(got, []string{"img:v2=0", "img:v3=3"}), fmt.Sprint(got)
	})
}

// Scaling through the scale subresource (kubectl scale) resizes the ReplicaSet and the status.
func TestScale(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	start(t, env)
	c, ctx, ns := env.Client, context.Background(), "deploy-scale"
	controllertest.Namespace(t, c, ns)
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, newDeployment("web", 2, "img:v1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int32{5, 1, 0, 3} {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			s, err := c.AppsV1().Deployments(ns).GetScale(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			s.Spec.Replicas = n
			_, err = c.AppsV1().Deployments(ns).UpdateScale(ctx, "web", s, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		controllertest.Eventually(t, fmt.Sprintf("scaled to %d", n), func() (bool, string) {
			controllertest.MarkReady(t, c, ns)
			d := getD(t, c, ns, "web")
			rss := replicaSets(t, c, ns)
			if len(rss) != 1 {
				return false, fmt.Sprintf("%d replicasets", len(rss))
			}
			return complete(d) && *rss[0].Spec.Replicas == n && len(livePods(t, c, ns)) == int(n) &&
				rss[0].Annotations[deployment.DesiredReplicasAnnotation] == fmt.Sprint(n), statusLine(d)
		})
		if msg, done := rolloutStatus(t, c, ns, "web"); !done {
			t.Errorf("rollout status after scale to %d: %s", n, msg)
		}
	}
}

// Recreate removes every old pod before the first new one exists.
func TestRecreate(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	start(t, env)
	c, ctx, ns := env.Client, context.Background(), "deploy-recreate"
	controllertest.Namespace(t, c, ns)
	d := newDeployment("web", 3, "img:v1")
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, "first rollout", func() (bool, string) {
		controllertest.MarkReady(t, c, ns)
		d := getD(t, c, ns, "web")
		return complete(d), statusLine(d)
	})
	setImage(t, c, ns, "web", "img:v2")
	controllertest.Eventually(t, "recreated", func() (bool, string) {
		images := map[string]int{}
		for _, p := range livePods(t, c, ns) {
			images[p.Spec.Containers[0].Image]++
		}
		if images["img:v1"] > 0 && images["img:v2"] > 0 {
			t.Errorf("old and new pods at once: %v", images)
		}
		controllertest.MarkReady(t, c, ns)
		d := getD(t, c, ns, "web")
		return complete(d) && images["img:v2"] == 3, statusLine(d)
	})
}

// A paused Deployment does not roll out template changes until resumed, and says so.
func TestPaused(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	start(t, env)
	c, ctx, ns := env.Client, context.Background(), "deploy-paused"
	controllertest.Namespace(t, c, ns)
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, newDeployment("web", 2, "img:v1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, "first rollout", func() (bool, string) {
		controllertest.MarkReady(t, c, ns)
		d := getD(t, c, ns, "web")
		return complete(d), statusLine(d)
	})
	setPaused := func(p bool) {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			d := getD(t, c, ns, "web")
			d.Spec.Paused = p
			_, err := c.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	setPaused(true)
	setImage(t, c, ns, "web", "img:v2")
	controllertest.Eventually(t, "paused condition", func() (bool, string) {
		d := getD(t, c, ns, "web")
		return d.Status.ObservedGeneration == d.Generation && condition(d, appsv1.DeploymentProgressing) == "Unknown/DeploymentPaused",
			statusLine(d)
	})
	if rss := replicaSets(t, c, ns); len(rss) != 1 {
		t.Fatalf("paused deployment created a replicaset: %d", len(rss))
	}
	setPaused(false)
	controllertest.Eventually(t, "rolled out after resume", func() (bool, string) {
		controllertest.MarkReady(t, c, ns)
		d := getD(t, c, ns, "web")
		images := []string{}
		for _, p := range livePods(t, c, ns) {
			images = append(images, p.Spec.Containers[0].Image)
		}
		return complete(d) && slices.Equal(images, []string{"img:v2", "img:v2"}), statusLine(d) + fmt.Sprint(images)
	})
}
