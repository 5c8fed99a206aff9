package service

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/utils/ptr"

	"github.com/svcnet/svcnet/internal/allocator"
	"github.com/svcnet/svcnet/internal/apis/core/defaults"
	"github.com/svcnet/svcnet/internal/apis/core/validation"
)

// Allocators allocates a Service's ClusterIP, NodePorts and healthCheckNodePort. Every value is held
// in etcd by its owner ("namespace/name"); a value is released only by its owner, so a stale release
// can never free someone else's address.
type Allocators struct {
	IPs      *allocator.Registry
	IPCodec  *allocator.IPCodec
	Ports    *allocator.Registry
	PortBase int
	PortSize int

	// pending holds the create plans of requests between BeginCreate and the storage write, keyed by
	// the object being created (the generic store passes the same pointer through).
	pending sync.Map
}

var serviceKind = corev1.SchemeGroupVersion.WithKind("Service").GroupKind()

func owner(s *corev1.Service) string { return s.Namespace + "/" + s.Name }

func isDryRun(opts []string) bool { return len(opts) > 0 && opts[0] == metav1.DryRunAll }

// held is what a service holds: its cluster IP and its node ports (including healthCheckNodePort).
type held struct {
	ip    netip.Addr
	ports []int
}

func (a *Allocators) holdings(s *corev1.Service) held {
	var h held
	if needsClusterIP(s) && s.Spec.ClusterIP != "" && s.Spec.ClusterIP != corev1.ClusterIPNone {
		if ip, err := netip.ParseAddr(s.Spec.ClusterIP); err == nil {
			h.ip = ip
		}
	}
	for _, p := range s.Spec.Ports {
		if p.NodePort != 0 {
			h.ports = append(h.ports, int(p.NodePort))
		}
	}
	if s.Spec.HealthCheckNodePort != 0 {
		h.ports = append(h.ports, int(s.Spec.HealthCheckNodePort))
	}
	return h
}

// txn collects what one request allocates. On update each value is reserved in etcd at once and
// released again if the request fails. On create (deferred) values are only picked in memory and
// listed as wants; the object's own etcd transaction writes their records (see createStorage).
type txn struct {
	a        *Allocators
	owner    string
	deferred bool
	ip       *int
	ports    []int
	wants    []want
}

// want is one value a new Service will hold.
type want struct {
	reg  *allocator.Registry
	off  int
	auto bool // picked by us: on conflict pick another; otherwise the user asked for it
	mine bool // its record already names this owner (left by an earlier attempt)
	// taken is the error for a requested value someone else holds; set rewrites a re-picked value.
	taken func() error
	set   func(svc *corev1.Service, off int)
}

func (t *txn) rollback(ctx context.Context) {
	if t.deferred {
		for _, w := range t.wants {
			if w.auto {
				w.reg.Unpick(w.off)
			}
		}
		return
	}
	if t.ip != nil {
		_ = t.a.IPs.Release(ctx, *t.ip, t.owner)
	}
	for _, p := range t.ports {
		_ = t.a.Ports.Release(ctx, p-t.a.PortBase, t.owner)
	}
}

// next takes any free value of reg: picked in memory on create, reserved in etcd on update.
func (t *txn) next(ctx context.Context, reg *allocator.Registry, set func(*corev1.Service, int)) (int, error) {
	if t.deferred {
		off, ok := reg.Pick()
		if !ok {
			return 0, allocator.ErrFull
		}
		t.wants = append(t.wants, want{reg: reg, off: off, auto: true, set: set})
		return off, nil
	}
	return reg.Next(ctx, t.owner)
}

// claim takes a value the user asked for; taken builds the error if someone else holds it.
func (t *txn) claim(ctx context.Context, reg *allocator.Registry, off int, taken func() error) error {
	if t.deferred {
		t.wants = append(t.wants, want{reg: reg, off: off, taken: taken})
		return nil
	}
	if err := reg.Reserve(ctx, off, t.owner); err != nil {
		if errors.Is(err, allocator.ErrAllocated) {
			return taken()
		}
		return apierrors.NewInternalError(err)
	}
	return nil
}

// BeginCreate allocates before the object is validated and stored, as kube-apiserver does; the
// returned finish func releases everything if the create fails.
func (a *Allocators) BeginCreate(ctx context.Context, obj runtime.Object, options *metav1.CreateOptions) (genericregistry.FinishFunc, error) {
	svc := obj.(*corev1.Service)
	// BeginCreate runs before the store copies the request's namespace into the object.
	if svc.Namespace == "" {
		svc.Namespace = genericapirequest.NamespaceValue(ctx)
	}
	defaults.NormalizeClusterIPs(svc, nil)
	if err := initIPFamilies(svc, nil); err != nil {
		return nil, err
	}
	t := &txn{a: a, owner: owner(svc), deferred: true}
	dry := isDryRun(options.DryRun)
	if err := a.allocate(ctx, svc, nil, t, dry); err != nil {
		t.rollback(ctx)
		return nil, err
	}
	a.pending.Store(svc, t)
	return func(ctx context.Context, success bool) {
		a.pending.Delete(svc)
		if !success || dry {
			t.rollback(context.WithoutCancel(ctx))
		}
	}, nil
}

// BeginUpdate keeps allocated values the update omitted, allocates what the new spec needs, and on
// success releases what the old spec held and the new one does not.
func (a *Allocators) BeginUpdate(ctx context.Context, obj, oldObj runtime.Object, options *metav1.UpdateOptions) (genericregistry.FinishFunc, error) {
	svc, old := obj.(*corev1.Service), oldObj.(*corev1.Service)
	if svc.Namespace == "" {
		svc.Namespace = old.Namespace
	}
	defaults.PatchAllocatedValues(svc, old)
	defaults.NormalizeClusterIPs(svc, old)
	if err := initIPFamilies(svc, old); err != nil {
		return nil, err
	}
	t := &txn{a: a, owner: owner(svc)}
	dry := isDryRun(options.DryRun)
	if err := a.allocate(ctx, svc, old, t, dry); err != nil {
		t.rollback(ctx)
		return nil, err
	}
	return func(ctx context.Context, success bool) {
		if dry {
			return
		}
		ctx = context.WithoutCancel(ctx)
		if !success {
			t.rollback(ctx)
			return
		}
		a.releaseDropped(ctx, old, svc)
	}, nil
}

// AfterDelete releases everything the deleted service held.
func (a *Allocators) AfterDelete(obj runtime.Object, options *metav1.DeleteOptions) {
	if options != nil && isDryRun(options.DryRun) {
		return
	}
	svc := obj.(*corev1.Service)
	a.releaseDropped(context.Background(), svc, nil)
}

func (a *Allocators) releaseDropped(ctx context.Context, old, cur *corev1.Service) {
	before := a.holdings(old)
	var after held
	if cur != nil {
		after = a.holdings(cur)
	}
	if before.ip.IsValid() && before.ip != after.ip {
		if off, ok := a.IPCodec.OffsetOf(before.ip); ok {
			_ = a.IPs.Release(ctx, off, owner(old))
		}
	}
	keep := map[int]bool{}
	for _, p := range after.ports {
		keep[p] = true
	}
	for _, p := range before.ports {
		if !keep[p] {
			_ = a.Ports.Release(ctx, p-a.PortBase, owner(old))
		}
	}
}

// initIPFamilies fills and checks the IP family fields for this single-stack IPv4 cluster, in the
// order kube-apiserver's allocator does, so the same input gets the same errors.
func initIPFamilies(svc, old *corev1.Service) error {
	if !needsClusterIP(svc) {
		return nil
	}
	if svc.Spec.IPFamilyPolicy == nil {
		switch {
		case old != nil && old.Spec.IPFamilyPolicy != nil:
			svc.Spec.IPFamilyPolicy = old.Spec.IPFamilyPolicy
		case svc.Spec.ClusterIP == corev1.ClusterIPNone && len(svc.Spec.Selector) == 0:
			svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
		default:
			svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
		}
	}
	if errs := validation.ValidateServiceClusterIPsRelatedFields(svc, old); len(errs) > 0 {
		return apierrors.NewInvalid(serviceKind, svc.Name, errs)
	}
	policy := *svc.Spec.IPFamilyPolicy
	policyPath := field.NewPath("spec", "ipFamilyPolicy")
	var errs field.ErrorList
	if old != nil && policy != corev1.IPFamilyPolicySingleStack {
		if len(svc.Spec.ClusterIPs) < len(old.Spec.ClusterIPs) {
			errs = append(errs, field.Invalid(policyPath, svc.Spec.IPFamilyPolicy, "must be 'SingleStack' to release the secondary cluster IP"))
		}
		if len(svc.Spec.IPFamilies) < len(old.Spec.IPFamilies) {
			errs = append(errs, field.Invalid(policyPath, svc.Spec.IPFamilyPolicy, "must be 'SingleStack' to release the secondary IP family"))
		}
	}
	if policy == corev1.IPFamilyPolicySingleStack {
		if len(svc.Spec.ClusterIPs) == 2 {
			errs = append(errs, field.Invalid(policyPath, svc.Spec.IPFamilyPolicy, "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified"))
		}
		if len(svc.Spec.IPFamilies) == 2 {
			errs = append(errs, field.Invalid(policyPath, svc.Spec.IPFamilyPolicy, "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"))
		}
	}
	for i, ip := range svc.Spec.ClusterIPs {
		if ip == corev1.ClusterIPNone {
			break
		}
		if i < len(svc.Spec.IPFamilies) {
			continue
		}
		if fam := familyOf(ip); fam == corev1.IPv4Protocol {
			svc.Spec.IPFamilies = append(svc.Spec.IPFamilies, fam)
		} else {
			errs = append(errs, field.Invalid(field.NewPath("spec", "clusterIPs").Index(i), svc.Spec.ClusterIPs, fmt.Sprintf("%s is not configured on this cluster", fam)))
		}
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(serviceKind, svc.Name, errs)
	}
	// Headless without a selector may name both families even on a single-stack cluster.
	if svc.Spec.ClusterIP == corev1.ClusterIPNone && len(svc.Spec.Selector) == 0 {
		if len(svc.Spec.IPFamilies) == 0 {
			svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		}
		if len(svc.Spec.IPFamilies) < 2 && policy != corev1.IPFamilyPolicySingleStack {
			other := corev1.IPv6Protocol
			if svc.Spec.IPFamilies[0] == corev1.IPv6Protocol {
				other = corev1.IPv4Protocol
			}
			svc.Spec.IPFamilies = append(svc.Spec.IPFamilies, other)
		}
		return nil
	}
	if policy == corev1.IPFamilyPolicyRequireDualStack {
		errs = append(errs, field.Invalid(policyPath, svc.Spec.IPFamilyPolicy, "this cluster is not configured for dual-stack services"))
	}
	for i, f := range svc.Spec.IPFamilies {
		if f != corev1.IPv4Protocol {
			errs = append(errs, field.Invalid(field.NewPath("spec", "ipFamilies").Index(i), f, "not configured on this cluster"))
		}
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(serviceKind, svc.Name, errs)
	}
	if len(svc.Spec.IPFamilies) == 0 {
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
	}
	return nil
}

func familyOf(ip string) corev1.IPFamily {
	if a, err := netip.ParseAddr(ip); err == nil && a.Is6() && !a.Is4In6() {
		return corev1.IPv6Protocol
	}
	return corev1.IPv4Protocol
}

func (a *Allocators) allocate(ctx context.Context, svc, old *corev1.Service, t *txn, dry bool) error {
	if !needsClusterIP(svc) {
		return nil
	}
	if err := a.allocateIP(ctx, svc, old, t, dry); err != nil {
		return err
	}
	return a.allocatePorts(ctx, svc, old, t, dry)
}

func (a *Allocators) allocateIP(ctx context.Context, svc, old *corev1.Service, t *txn, dry bool) error {
	ipStr := svc.Spec.ClusterIP
	if ipStr == corev1.ClusterIPNone {
		return nil
	}
	if old != nil && needsClusterIP(old) && old.Spec.ClusterIP == ipStr && ipStr != "" {
		return nil // unchanged; validation rejects any other change
	}
	if ipStr == "" {
		if dry && !t.deferred {
			return nil
		}
		off, err := t.next(ctx, a.IPs, func(svc *corev1.Service, off int) {
			ip := a.IPCodec.Addr(off).String()
			svc.Spec.ClusterIP, svc.Spec.ClusterIPs = ip, []string{ip}
		})
		if err != nil {
			if errors.Is(err, allocator.ErrFull) {
				return apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP: %v", err))
			}
			return apierrors.NewInternalError(err)
		}
		t.ip = &off
		ip := a.IPCodec.Addr(off).String()
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = ip, []string{ip}
		return nil
	}
	ip, err := netip.ParseAddr(ipStr)
	if err != nil || !ip.Is4() {
		return nil // left for validation to report with its own message
	}
	invalid := func(msg string) error {
		return apierrors.NewInvalid(serviceKind, svc.Name, field.ErrorList{
			field.Invalid(field.NewPath("spec", "clusterIPs"), svc.Spec.ClusterIPs, fmt.Sprintf("failed to allocate IP %s: %s", ipStr, msg)),
		})
	}
	off, ok := a.IPCodec.OffsetOf(ip)
	if !ok {
		return invalid(fmt.Sprintf("the provided IP (%s) is not in the valid range. The range of valid IPs is %s", ipStr, a.IPCodec.Prefix))
	}
	if dry {
		if a.IPs.Has(off) {
			return invalid("provided IP is already allocated")
		}
		return nil
	}
	if err := t.claim(ctx, a.IPs, off, func() error { return invalid("provided IP is already allocated") }); err != nil {
		return err
	}
	if !t.deferred {
		t.ip = &off
	}
	return nil
}

func (a *Allocators) allocatePorts(ctx context.Context, svc, old *corev1.Service, t *txn, dry bool) error {
	oldPorts := map[int]bool{}
	if old != nil {
		for _, p := range a.holdings(old).ports {
			oldPorts[p] = true
		}
	}
	// A service may use one nodePort for several protocols of the same port; claim each number once.
	claimed := map[int]bool{}
	take := func(path *field.Path, want int32) (int32, error) {
		p := int(want)
		if p != 0 && oldPorts[p] && !claimed[p] {
			claimed[p] = true
			return want, nil
		}
		if p == 0 {
			if dry && !t.deferred {
				return 0, nil
			}
			cur := 0
			off, err := t.next(ctx, a.Ports, func(svc *corev1.Service, off int) {
				// A re-pick moves every field that got the old value (ports sharing it, or the
				// health check port).
				np := int32(a.PortBase + off)
				for j := range svc.Spec.Ports {
					if int(svc.Spec.Ports[j].NodePort) == cur {
						svc.Spec.Ports[j].NodePort = np
					}
				}
				if int(svc.Spec.HealthCheckNodePort) == cur {
					svc.Spec.HealthCheckNodePort = np
				}
				cur = int(np)
			})
			cur = a.PortBase + off
			if err != nil {
				if errors.Is(err, allocator.ErrFull) {
					return 0, apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: %v", err))
				}
				return 0, apierrors.NewInternalError(err)
			}
			if !t.deferred {
				t.ports = append(t.ports, a.PortBase+off)
			}
			claimed[a.PortBase+off] = true
			return int32(a.PortBase + off), nil
		}
		invalid := func(msg string) error {
			return apierrors.NewInvalid(serviceKind, svc.Name,
				field.ErrorList{field.Invalid(path, want, msg)})
		}
		if p < a.PortBase || p >= a.PortBase+a.PortSize {
			return 0, invalid(fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", a.PortBase, a.PortBase+a.PortSize-1))
		}
		if claimed[p] {
			return 0, invalid("provided port is already allocated")
		}
		claimed[p] = true
		if dry {
			if a.Ports.Has(p - a.PortBase) {
				return 0, invalid("provided port is already allocated")
			}
			return want, nil
		}
		if err := t.claim(ctx, a.Ports, p-a.PortBase, func() error { return invalid("provided port is already allocated") }); err != nil {
			return 0, err
		}
		if !t.deferred {
			t.ports = append(t.ports, p)
		}
		return want, nil
	}
	// Ports with the same port number (53/TCP and 53/UDP) share one nodePort; any other reuse of a
	// nodePort within the service is "already allocated", as in kube. A LoadBalancer with
	// allocateLoadBalancerNodePorts=false still holds the nodePorts the user asked for.
	if needsNodePort(svc) || svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		byPort := map[int32]int32{}
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			if sp.NodePort == 0 && !needsNodePort(svc) {
				continue
			}
			path := field.NewPath("spec", "ports").Index(i).Child("nodePort")
			shared := byPort[sp.Port]
			if shared == 0 {
				np, err := take(path, requestedNodePort(sp.Port, svc.Spec.Ports[i:]))
				if err != nil {
					return err
				}
				sp.NodePort, byPort[sp.Port] = np, np
				continue
			}
			if sp.NodePort == 0 {
				sp.NodePort = shared
			} else if sp.NodePort != shared {
				if _, err := take(path, sp.NodePort); err != nil {
					return err
				}
			}
		}
	}
	if needsHCNodePort(svc) {
		np, err := take(field.NewPath("spec", "healthCheckNodePort"), svc.Spec.HealthCheckNodePort)
		if err != nil {
			return err
		}
		svc.Spec.HealthCheckNodePort = np
	}
	return nil
}

// requestedNodePort is the first nodePort a user set on a port with this port number.
func requestedNodePort(port int32, ports []corev1.ServicePort) int32 {
	for _, p := range ports {
		if p.Port == port && p.NodePort != 0 {
			return p.NodePort
		}
	}
	return 0
}
