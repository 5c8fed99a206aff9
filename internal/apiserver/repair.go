package apiserver

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/pager"

	svcregistry "github.com/svcnet/svcnet/internal/registry/service"
)

// repairInterval spaces repair passes; a leaked value is released on the second pass that sees it.
// builtinsInterval is how often the system namespaces and the kubernetes Service are re-ensured, as
// kube-apiserver's own controller does (every 10 s), so deleting them is undone.
const (
	repairInterval   = 30 * time.Second
	builtinsInterval = 10 * time.Second
)

// repairLoop keeps allocation records equal to what stored Services hold: it re-records values whose
// record is missing (drift) and frees values no Service holds (a crash between allocating and storing).
func (s *Server) repairLoop(ctx context.Context, client kubernetes.Interface) {
	suspects := s.repairPass(ctx, client, nil)
	repair := time.NewTicker(repairInterval)
	defer repair.Stop()
	builtins := time.NewTicker(builtinsInterval)
	defer builtins.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-builtins.C:
			if err := s.ensureBuiltins(ctx, client); err != nil {
				slog.Warn("ensuring system namespaces and the kubernetes service failed", "err", err)
			}
		case <-repair.C:
			suspects = s.repairPass(ctx, client, suspects)
		}
	}
}

// repairPass runs one repair and returns the suspects for the next (the old ones if it failed).
func (s *Server) repairPass(ctx context.Context, client kubernetes.Interface, suspects map[svcregistry.Value]string) map[svcregistry.Value]string {
	next, err := s.repairOnce(ctx, client, suspects)
	if err != nil {
		slog.Warn("allocation repair failed", "err", err)
		return suspects
	}
	return next
}

func (s *Server) repairOnce(ctx context.Context, client kubernetes.Interface, suspects map[svcregistry.Value]string) (map[svcregistry.Value]string, error) {
	// Read the records first: a value allocated after this read and stored before the list below is
	// simply held; one allocated before and not yet stored is at worst a suspect for one pass.
	ips, _, err := s.alloc.IPs.Owners(ctx)
	if err != nil {
		return nil, err
	}
	ports, _, err := s.alloc.Ports.Owners(ctx)
	if err != nil {
		return nil, err
	}
	// Pages keep the pass's memory flat however many Services there are.
	var services []corev1.Service
	err = pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return client.CoreV1().Services(metav1.NamespaceAll).List(ctx, opts)
	}).EachListItem(ctx, metav1.ListOptions{Limit: 500}, func(o runtime.Object) error {
		s := o.(*corev1.Service)
		services = append(services, corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name}, Spec: s.Spec})
		return nil
	})
	if err != nil {
		return nil, err
	}
	plan := s.alloc.PlanRepair(services, ips, ports, suspects)
	for _, c := range plan.Conflicts {
		slog.Error("services hold the same allocated value", "services", c)
	}
	for v, who := range plan.Reserve {
		slog.Info("repairing missing allocation record", "kind", v.Kind, "offset", v.Offset, "owner", who)
		if err := s.record(ctx, v, who); err != nil {
			return nil, err
		}
	}
	for v, who := range plan.Release {
		slog.Info("releasing leaked allocation", "kind", v.Kind, "offset", v.Offset, "owner", who)
		reg := s.alloc.IPs
		if v.Kind == "port" {
			reg = s.alloc.Ports
		}
		if err := reg.Release(ctx, v.Offset, who); err != nil {
			return nil, err
		}
	}
	return plan.Suspects, nil
}

// record writes an allocation record unconditionally: the stored Service is the source of truth.
func (s *Server) record(ctx context.Context, v svcregistry.Value, who string) error {
	var key string
	if v.Kind == "ip" {
		key = "/registry/svcnet/clusterips/" + s.alloc.IPCodec.Key(v.Offset)
	} else {
		key = "/registry/svcnet/nodeports/" + strconv.Itoa(s.alloc.PortBase+v.Offset)
	}
	_, err := s.etcd.Put(ctx, key, who)
	return err
}
