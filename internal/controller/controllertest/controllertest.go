// Package controllertest holds what the tests of the workload controllers (ReplicaSet, Deployment,
// StatefulSet) share: running controllers for the length of a test, creating a namespace, playing
// the kubelet's part of making pods ready, and polling for a condition.
package controllertest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/kubectl/pkg/util/podutils"
)

// Runner is a controller: Run works with the given number of workers until ctx ends.
type Runner interface {
	Run(ctx context.Context, workers int)
}

// Start runs, with two workers each, the controllers that build wires to one informer factory of
// client (which they start), and stops them and the factory when the test ends.
func Start(t testing.TB, client kubernetes.Interface, build func(informers.SharedInformerFactory) []Runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(client, 0)
	controllers := build(factory)
	done := make(chan struct{}, len(controllers))
	for _, c := range controllers {
		go func() {
			defer func() { done <- struct{}{} }()
			c.Run(ctx, 2)
		}()
	}
	t.Cleanup(func() {
		cancel()
		for range controllers {
			<-done
		}
		factory.Shutdown()
	})
}

// Namespace creates the namespace name.
func Namespace(t testing.TB, c kubernetes.Interface, name string) {
	t.Helper()
	_, err := c.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

var podIP atomic.Int32

// MarkReady plays the kubelet: every pod of ns that is not being deleted and not yet ready becomes
// Running and Ready with a pod IP. skip names pods to leave alone.
func MarkReady(t testing.TB, c kubernetes.Interface, ns string, skip ...string) {
	t.Helper()
	ctx := context.Background()
	l, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range l.Items {
		if p.DeletionTimestamp != nil || podutils.IsPodReady(&p) || slices.Contains(skip, p.Name) {
			continue
		}
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := c.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			n := podIP.Add(1)
			ip := fmt.Sprintf("10.244.%d.%d", n/250, n%250+1)
			cur.Status.Phase = corev1.PodRunning
			cur.Status.PodIP, cur.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
			cur.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
			_, err = c.CoreV1().Pods(ns).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		if err != nil && !strings.Contains(err.Error(), "not found") {
			t.Fatalf("mark %s ready: %v", p.Name, err)
		}
	}
}

// Eventually polls cond until it holds, for at most 90 s; on timeout it fails with cond's last
// description.
func Eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 25*time.Millisecond, 90*time.Second, true, func(context.Context) (bool, error) {
		var ok bool
		ok, last = cond()
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: timed out; last state: %s", what, last)
	}
}
