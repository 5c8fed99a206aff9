// Package defaults reproduces what kube-apiserver v1.35 does to a v1 Service
// before validating it: the scheme defaulting of the v1 API (Service), and the
// few registry-side rewrites of user input that decide which validation errors a
// request can produce (NormalizeClusterIPs, PatchAllocatedValues,
// DropTypeDependentFields).
//
// Everything here is a pure function on k8s.io/api/core/v1 types; svcnet has no
// internal API version, so these functions replace both kube's
// pkg/apis/core/v1/defaults.go and the relevant parts of
// pkg/registry/core/service.
//
// The order kube applies them in, and that the svcnet registry must copy,
// because validation results depend on it:
//
//	create: Service -> NormalizeClusterIPs(svc, nil) -> allocation -> status cleared -> validation
//	update: Service(new) -> PatchAllocatedValues -> NormalizeClusterIPs(new, old) -> allocation
//	        -> status copied from old -> DropTypeDependentFields -> validation
//
// Allocation (ClusterIPs, NodePorts, HealthCheckNodePort, and the IP family
// fields) is not done here; see the Service doc comment.
package defaults

import (
	"reflect"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Service applies the v1 scheme defaults to svc, as kube-apiserver v1.35 does on
// every decode of a Service (create and update alike), mirroring kube's
// SetDefaults_Service plus the generated +default for ServicePort.Protocol.
//
// It sets:
//   - spec.sessionAffinity to None when empty; a None affinity drops any
//     sessionAffinityConfig; ClientIP gets clientIP.timeoutSeconds 10800 when
//     any part of the config is missing;
//   - spec.type to ClusterIP when empty;
//   - each port's protocol to TCP, and targetPort to port when targetPort is 0
//     or "";
//   - spec.externalTrafficPolicy to Cluster when empty, for externally
//     accessible services only: NodePort, LoadBalancer, and ClusterIP with
//     externalIPs (kube 1.35 still defaults the last case);
//   - spec.internalTrafficPolicy to Cluster when nil, for ClusterIP, NodePort
//     and LoadBalancer (never for ExternalName or unknown types);
//   - spec.allocateLoadBalancerNodePorts to true for LoadBalancer;
//   - status.loadBalancer.ingress[].ipMode to VIP where an ip is set, for
//     LoadBalancer.
//
// It deliberately does NOT (kube does these in the registry, not in defaulting,
// and a request's errors differ if they are moved here):
//   - sync spec.clusterIP and spec.clusterIPs (NormalizeClusterIPs does, at
//     REST-storage time);
//   - set spec.ipFamilyPolicy or spec.ipFamilies; the allocator does, from
//     cluster configuration (on this single-stack IPv4 cluster: SingleStack and
//     [IPv4], except headless services without a selector, which get
//     RequireDualStack and [IPv4, IPv6]);
//   - allocate clusterIP(s), nodePorts or healthCheckNodePort;
//   - generate metadata.name from metadata.generateName;
//   - clear or copy status (strategy PrepareForCreate/PrepareForUpdate).
func Service(svc *v1.Service) {
	spec := &svc.Spec
	if spec.SessionAffinity == "" {
		spec.SessionAffinity = v1.ServiceAffinityNone
	}
	if spec.SessionAffinity == v1.ServiceAffinityNone {
		spec.SessionAffinityConfig = nil
	}
	if spec.SessionAffinity == v1.ServiceAffinityClientIP {
		c := spec.SessionAffinityConfig
		if c == nil || c.ClientIP == nil || c.ClientIP.TimeoutSeconds == nil {
			// kube replaces the whole config, not just the missing leaf.
			spec.SessionAffinityConfig = &v1.SessionAffinityConfig{
				ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(v1.DefaultClientIPServiceAffinitySeconds)},
			}
		}
	}
	if spec.Type == "" {
		spec.Type = v1.ServiceTypeClusterIP
	}
	for i := range spec.Ports {
		sp := &spec.Ports[i]
		if sp.Protocol == "" {
			sp.Protocol = v1.ProtocolTCP
		}
		if sp.TargetPort == intstr.FromInt32(0) || sp.TargetPort == intstr.FromString("") {
			sp.TargetPort = intstr.FromInt32(sp.Port)
		}
	}
	if externallyAccessible(svc) && spec.ExternalTrafficPolicy == "" {
		spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
	}
	if spec.InternalTrafficPolicy == nil {
		switch spec.Type {
		case v1.ServiceTypeClusterIP, v1.ServiceTypeNodePort, v1.ServiceTypeLoadBalancer:
			spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyCluster)
		}
	}
	if spec.Type == v1.ServiceTypeLoadBalancer {
		if spec.AllocateLoadBalancerNodePorts == nil {
			spec.AllocateLoadBalancerNodePorts = ptr.To(true)
		}
		for i, ing := range svc.Status.LoadBalancer.Ingress {
			if ing.IP != "" && ing.IPMode == nil {
				svc.Status.LoadBalancer.Ingress[i].IPMode = ptr.To(v1.LoadBalancerIPModeVIP)
			}
		}
	}
}

// externallyAccessible mirrors kube's service.ExternallyAccessible.
func externallyAccessible(svc *v1.Service) bool {
	return svc.Spec.Type == v1.ServiceTypeLoadBalancer ||
		svc.Spec.Type == v1.ServiceTypeNodePort ||
		(svc.Spec.Type == v1.ServiceTypeClusterIP && len(svc.Spec.ExternalIPs) > 0)
}

// NormalizeClusterIPs keeps spec.clusterIP and spec.clusterIPs in step for
// clients that only manage one of them, exactly as kube's normalizeClusterIPs
// in the Service REST storage does. oldSvc is nil on create. It must run after
// Service (defaulting) and, on update, after PatchAllocatedValues, and before
// allocation and validation. Service does not call it, because kube does not
// do this at defaulting time.
func NormalizeClusterIPs(newSvc, oldSvc *v1.Service) {
	if oldSvc == nil {
		// A client that only knows the singular field gets the plural filled
		// in; the reverse is never done, as a client that sets the plural is
		// expected to set both.
		if newSvc.Spec.ClusterIP != "" && len(newSvc.Spec.ClusterIPs) == 0 {
			newSvc.Spec.ClusterIPs = []string{newSvc.Spec.ClusterIP}
		}
		return
	}

	// An old client patching some other field sends no clusterIPs.
	if len(oldSvc.Spec.ClusterIPs) > 0 && len(newSvc.Spec.ClusterIPs) == 0 &&
		oldSvc.Spec.ClusterIP == newSvc.Spec.ClusterIP {
		newSvc.Spec.ClusterIPs = oldSvc.Spec.ClusterIPs
	}

	if oldSvc.Spec.ClusterIP != newSvc.Spec.ClusterIP {
		// Comparing only the plural field is kube's storage-package
		// sameClusterIPs; it makes a change of the singular field alone
		// surface as spec.clusterIPs[0] "may not change once set".
		same := sameStrings(oldSvc.Spec.ClusterIPs, newSvc.Spec.ClusterIPs)
		if oldSvc.Spec.ClusterIP != "" && newSvc.Spec.ClusterIP == "" {
			if same {
				newSvc.Spec.ClusterIPs = nil
			}
		} else if same {
			newSvc.Spec.ClusterIPs = []string{newSvc.Spec.ClusterIP}
		}
	}
}

// PatchAllocatedValues copies values the allocator chose for oldSvc into newSvc
// where the client left them out, so that re-submitting the same manifest is
// idempotent; this is kube's patchAllocatedValues, run on update before
// NormalizeClusterIPs.
func PatchAllocatedValues(newSvc, oldSvc *v1.Service) {
	if needsClusterIP(oldSvc) && needsClusterIP(newSvc) {
		if newSvc.Spec.ClusterIP == "" {
			newSvc.Spec.ClusterIP = oldSvc.Spec.ClusterIP
		}
		if len(newSvc.Spec.ClusterIPs) == 0 && len(oldSvc.Spec.ClusterIPs) > 0 {
			newSvc.Spec.ClusterIPs = oldSvc.Spec.ClusterIPs
		}
	}

	if needsNodePort(oldSvc) && needsNodePort(newSvc) {
		// A value still used by some port of the new object cannot be patched
		// into another port; ports are matched by name, as the user may have
		// changed everything else about them.
		used := map[int32]bool{}
		newUsed := map[int32]bool{}
		for _, p := range newSvc.Spec.Ports {
			if p.NodePort != 0 {
				newUsed[p.NodePort] = true
			}
		}
		byName := map[string]int32{}
		for _, p := range oldSvc.Spec.Ports {
			if p.NodePort != 0 && newUsed[p.NodePort] {
				used[p.NodePort] = true
			}
			byName[p.Name] = p.NodePort
		}
		for i := range newSvc.Spec.Ports {
			p := &newSvc.Spec.Ports[i]
			if p.NodePort == 0 {
				if v := byName[p.Name]; !used[v] {
					p.NodePort = v
				}
			}
		}
	}

	if needsHCNodePort(oldSvc) && needsHCNodePort(newSvc) && newSvc.Spec.HealthCheckNodePort == 0 {
		newSvc.Spec.HealthCheckNodePort = oldSvc.Spec.HealthCheckNodePort
	}
}

// DropTypeDependentFields clears, on update, fields that no longer apply after
// a change of spec.type but that the user did not change themselves (typically
// values the allocator set, carried over by a read-modify-write client). This
// is kube's dropTypeDependentFields from the Service strategy's
// PrepareForUpdate; a field the user did change is kept so that validation
// rejects it.
func DropTypeDependentFields(newSvc, oldSvc *v1.Service) {
	if oldSvc == nil {
		return
	}

	if needsClusterIP(oldSvc) && !needsClusterIP(newSvc) {
		// Unlike NormalizeClusterIPs, the strategy's notion of "same"
		// includes the singular field.
		if oldSvc.Spec.ClusterIP == newSvc.Spec.ClusterIP && sameStrings(oldSvc.Spec.ClusterIPs, newSvc.Spec.ClusterIPs) {
			newSvc.Spec.ClusterIP = ""
			newSvc.Spec.ClusterIPs = nil
		}
		if reflect.DeepEqual(oldSvc.Spec.IPFamilies, newSvc.Spec.IPFamilies) {
			newSvc.Spec.IPFamilies = nil
		}
		if ptr.Deref(oldSvc.Spec.IPFamilyPolicy, "") == ptr.Deref(newSvc.Spec.IPFamilyPolicy, "") {
			newSvc.Spec.IPFamilyPolicy = nil
		}
	}

	if needsNodePort(oldSvc) && !needsNodePort(newSvc) && nodePortsSubset(newSvc, oldSvc) {
		for i := range newSvc.Spec.Ports {
			newSvc.Spec.Ports[i].NodePort = 0
		}
	}

	if needsHCNodePort(oldSvc) && !needsHCNodePort(newSvc) &&
		oldSvc.Spec.HealthCheckNodePort == newSvc.Spec.HealthCheckNodePort {
		newSvc.Spec.HealthCheckNodePort = 0
	}

	if oldSvc.Spec.Type == v1.ServiceTypeLoadBalancer && newSvc.Spec.Type != v1.ServiceTypeLoadBalancer &&
		newSvc.Spec.AllocateLoadBalancerNodePorts != nil && oldSvc.Spec.AllocateLoadBalancerNodePorts != nil &&
		*oldSvc.Spec.AllocateLoadBalancerNodePorts == *newSvc.Spec.AllocateLoadBalancerNodePorts {
		newSvc.Spec.AllocateLoadBalancerNodePorts = nil
	}

	if oldSvc.Spec.Type == v1.ServiceTypeLoadBalancer && newSvc.Spec.Type != v1.ServiceTypeLoadBalancer &&
		reflect.DeepEqual(oldSvc.Spec.LoadBalancerClass, newSvc.Spec.LoadBalancerClass) {
		newSvc.Spec.LoadBalancerClass = nil
	}

	// Externally accessible, not "NodePort or LoadBalancer": dropping the
	// last externalIP of a ClusterIP service also ends the policy.
	if externallyAccessible(oldSvc) && !externallyAccessible(newSvc) &&
		oldSvc.Spec.ExternalTrafficPolicy == newSvc.Spec.ExternalTrafficPolicy {
		newSvc.Spec.ExternalTrafficPolicy = ""
	}

	// The load balancer is torn down asynchronously, but kube does not make
	// the user see that.
	if newSvc.Spec.Type != v1.ServiceTypeLoadBalancer {
		newSvc.Status.LoadBalancer = v1.LoadBalancerStatus{}
	}
}

func needsClusterIP(svc *v1.Service) bool {
	return svc.Spec.Type != v1.ServiceTypeExternalName
}

func needsNodePort(svc *v1.Service) bool {
	return svc.Spec.Type == v1.ServiceTypeNodePort || svc.Spec.Type == v1.ServiceTypeLoadBalancer
}

func needsHCNodePort(svc *v1.Service) bool {
	return svc.Spec.Type == v1.ServiceTypeLoadBalancer && svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal
}

// nodePortsSubset reports whether newSvc uses no nodePort that oldSvc did not
// already have: users may add, remove or edit ports, but a net-new nodePort
// means they meant to keep node ports.
func nodePortsSubset(newSvc, oldSvc *v1.Service) bool {
	old := map[int32]bool{}
	for _, p := range oldSvc.Spec.Ports {
		if p.NodePort != 0 {
			old[p.NodePort] = true
		}
	}
	for _, p := range newSvc.Spec.Ports {
		if p.NodePort != 0 && !old[p.NodePort] {
			return false
		}
	}
	return true
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
