package controller

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaseName is the Lease in kube-system that controller replicas compete for.
const LeaseName = "svcnet-controller-manager"

// runLeading runs fn while this replica holds the Lease. Losing the lease ends fn and returns an
// error, as kube-controller-manager exits, so the replica never acts without leadership.
func runLeading(ctx context.Context, kube kubernetes.Interface, identity string, fn func(context.Context) error) error {
	if identity == "" {
		host, _ := os.Hostname()
		identity = host + "_" + string(uuid.NewUUID())
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: LeaseName},
		Client:     kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	lost := false
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock, ReleaseOnCancel: true, Name: LeaseName,
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				slog.Info("leading", "lease", LeaseName, "identity", identity)
				errc <- fn(ctx)
				cancel() // fn gave up: stop renewing so another replica can take over
			},
			OnStoppedLeading: func() { lost = ctx.Err() == nil },
		},
	})
	if err != nil {
		return err
	}
	le.Run(ctx)
	if lost {
		return fmt.Errorf("lost the %s lease", LeaseName)
	}
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}
