// Package servicecases is a table of Service create and update requests with
// the field errors kube-apiserver v1.35 answers them with, on a cluster
// configured like svcnet's default one: single-stack IPv4 service CIDR
// 10.96.0.0/12 and NodePort range 30000-32767.
//
// The same table drives the unit tests of the validation package and the HTTP
// tests that replay it against a running svcnet API server, so the two cannot
// drift apart. Objects are given the way a user would send them (before
// defaulting), in namespace "default"; every case has its own name, and
// explicit ClusterIPs and NodePorts are unique across the table and lie in the
// bands kube reserves for static assignment (10.96.0.200-250, 30000-30085), so
// that replaying the whole table on one cluster cannot make one case collide
// with another or with a dynamically allocated value.
package servicecases

import (
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// Layers name which part of the API server rejects a request, because the
// unit tests of the validation package can only check their own layer.
const (
	// LayerValidation errors come from validation.ValidateService*, including
	// ValidateServiceClusterIPsRelatedFields when the registry runs it ahead
	// of allocation.
	LayerValidation = "validation"
	// LayerAllocation errors come from the registry's allocators, which kube
	// runs before validation: out-of-range or taken clusterIPs and nodePorts,
	// and IP families or policies the cluster is not configured for.
	LayerAllocation = "allocation"
)

// Err is one expected field error; message text is not part of the contract
// of the table, types and paths are.
type Err struct {
	Type  field.ErrorType
	Field string
}

// Case is a create request; an empty Errs means the create must succeed.
type Case struct {
	Name    string
	Service *v1.Service
	Errs    []Err
	Layer   string
}

// UpdateCase is an update of Old (created first, as given) to New (sent with
// PUT, without a resourceVersion, as Services allow unconditional updates).
type UpdateCase struct {
	Name     string
	Old, New *v1.Service
	Errs     []Err
	Layer    string
}

func required(f string) Err     { return Err{field.ErrorTypeRequired, f} }
func invalid(f string) Err      { return Err{field.ErrorTypeInvalid, f} }
func notSupported(f string) Err { return Err{field.ErrorTypeNotSupported, f} }
func duplicate(f string) Err    { return Err{field.ErrorTypeDuplicate, f} }
func forbidden(f string) Err    { return Err{field.ErrorTypeForbidden, f} }
func tooLong(f string) Err      { return Err{field.ErrorTypeTooLong, f} }

// svc builds a service of defaulted type selecting app=web on port 80, then
// applies the case's changes.
func svc(name string, mods ...func(*v1.Service)) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []v1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

func typ(t v1.ServiceType) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.Type = t }
}

func ports(ps ...v1.ServicePort) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.Ports = ps }
}

func clusterIP(ip string) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.ClusterIP = ip }
}

func clusterIPs(ips ...string) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.ClusterIPs = ips }
}

func families(fs ...v1.IPFamily) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.IPFamilies = fs }
}

func policy(p v1.IPFamilyPolicy) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.IPFamilyPolicy = &p }
}

// externalName turns the service into an ExternalName one the way users write
// them: no selector, no ports.
func externalName(n string) func(*v1.Service) {
	return func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeExternalName
		s.Spec.ExternalName = n
		s.Spec.Selector = nil
		s.Spec.Ports = nil
	}
}

func etp(p v1.ServiceExternalTrafficPolicy) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.ExternalTrafficPolicy = p }
}

func externalIPs(ips ...string) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.ExternalIPs = ips }
}

func affinity(a v1.ServiceAffinity, timeout *int32) func(*v1.Service) {
	return func(s *v1.Service) {
		s.Spec.SessionAffinity = a
		if timeout != nil {
			s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: timeout}}
		}
	}
}

func annotate(k, v string) func(*v1.Service) {
	return func(s *v1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
}

func set(f func(*v1.ServiceSpec)) func(*v1.Service) {
	return func(s *v1.Service) { f(&s.Spec) }
}

func named(name string, p, target int32) v1.ServicePort {
	return v1.ServicePort{Name: name, Port: p, TargetPort: intstr.FromInt32(target)}
}

// Create returns the create cases: at least 60 rejected and 20 accepted
// requests, in no particular order.
func Create() []Case {
	v := LayerValidation
	a := LayerAllocation
	lb := typ(v1.ServiceTypeLoadBalancer)
	np := typ(v1.ServiceTypeNodePort)

	return []Case{
		// Accepted. The first seven are the examples users start from.
		{Name: "seed: selector and targetPort", Layer: v, Service: svc("my-service", set(func(s *v1.ServiceSpec) {
			s.Selector = map[string]string{"app": "my-app"}
			s.Ports = []v1.ServicePort{{Protocol: v1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}}
		}))},
		{Name: "seed: explicit ClusterIP type", Layer: v, Service: svc("clusterip-typed", typ(v1.ServiceTypeClusterIP))},
		{Name: "seed: NodePort with nodePort 30007", Layer: v, Service: svc("nodeport-30007", np,
			ports(v1.ServicePort{Port: 80, TargetPort: intstr.FromInt32(80), NodePort: 30007}))},
		{Name: "seed: LoadBalancer", Layer: v, Service: svc("loadbalancer", lb)},
		{Name: "seed: ExternalName", Layer: v, Service: svc("externalname", externalName("my.db.example.com"))},
		{Name: "seed: headless", Layer: v, Service: svc("headless", clusterIP("None"))},
		{Name: "seed: named ports and named targetPorts", Layer: v, Service: svc("multi-port", ports(
			v1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("http-web")},
			v1.ServicePort{Name: "https", Port: 443, TargetPort: intstr.FromString("https-web")},
		))},
		{Name: "headless without ports", Layer: v, Service: svc("headless-no-ports", clusterIP("None"), ports())},
		// The allocator makes these RequireDualStack with [IPv4, IPv6] even
		// on a single-stack cluster; that must not fail.
		{Name: "headless without selector", Layer: v, Service: svc("headless-selectorless", clusterIP("None"),
			set(func(s *v1.ServiceSpec) { s.Selector = nil }))},
		{Name: "no selector (manual endpoints)", Layer: v, Service: svc("selectorless", set(func(s *v1.ServiceSpec) { s.Selector = nil }))},
		{Name: "same port number on TCP and UDP", Layer: v, Service: svc("dns-tcp-udp", ports(
			v1.ServicePort{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP},
			v1.ServicePort{Name: "dns-tcp", Port: 53, Protocol: v1.ProtocolTCP},
		))},
		{Name: "NodePort sharing one nodePort between TCP and UDP", Layer: v, Service: svc("nodeport-dns", np, ports(
			v1.ServicePort{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP, NodePort: 30053},
			v1.ServicePort{Name: "dns-tcp", Port: 53, Protocol: v1.ProtocolTCP, NodePort: 30053},
		))},
		{Name: "SCTP port", Layer: v, Service: svc("sctp", ports(v1.ServicePort{Port: 9999, Protocol: v1.ProtocolSCTP}))},
		{Name: "named targetPort on an unnamed single port", Layer: v, Service: svc("target-named",
			ports(v1.ServicePort{Port: 80, TargetPort: intstr.FromString("http")}))},
		{Name: "appProtocol", Layer: v, Service: svc("app-protocol", ports(
			v1.ServicePort{Name: "h2c", Port: 80, AppProtocol: ptr.To("kubernetes.io/h2c")},
			v1.ServicePort{Name: "web", Port: 8080, AppProtocol: ptr.To("http")},
		))},
		{Name: "ClientIP affinity gets the default timeout", Layer: v, Service: svc("affinity-default", affinity(v1.ServiceAffinityClientIP, nil))},
		{Name: "ClientIP affinity at the maximum timeout", Layer: v, Service: svc("affinity-max", affinity(v1.ServiceAffinityClientIP, ptr.To[int32](86400)))},
		// SetDefaults_Service drops the config before validation sees it.
		{Name: "None affinity with a config is cleaned by defaulting", Layer: v, Service: svc("affinity-none-config",
			affinity(v1.ServiceAffinityNone, ptr.To[int32](0)))},
		{Name: "externalIPs on ClusterIP get a defaulted external policy", Layer: v, Service: svc("external-ips", externalIPs("192.0.2.10", "2001:db8::10"))},
		{Name: "Local external policy on ClusterIP with externalIPs", Layer: v, Service: svc("external-ips-local",
			externalIPs("192.0.2.11"), etp(v1.ServiceExternalTrafficPolicyLocal))},
		{Name: "NodePort with Local external policy", Layer: v, Service: svc("nodeport-local", np, etp(v1.ServiceExternalTrafficPolicyLocal))},
		{Name: "LoadBalancer Local gets a health check node port", Layer: v, Service: svc("lb-local", lb, etp(v1.ServiceExternalTrafficPolicyLocal))},
		{Name: "LoadBalancer source ranges, space padded", Layer: v, Service: svc("lb-source-ranges", lb, set(func(s *v1.ServiceSpec) {
			s.LoadBalancerSourceRanges = []string{"10.0.0.0/8", " 192.168.0.0/16 "}
		}))},
		// StrictIPCIDRValidation is off in 1.35: host bits may be set.
		{Name: "LoadBalancer source range in ifaddr form", Layer: v, Service: svc("lb-source-ifaddr", lb, set(func(s *v1.ServiceSpec) {
			s.LoadBalancerSourceRanges = []string{"172.16.0.1/12"}
		}))},
		{Name: "LoadBalancer source ranges annotation", Layer: v, Service: svc("lb-source-annotation", lb,
			annotate(v1.AnnotationLoadBalancerSourceRangesKey, "10.0.0.0/8, 192.168.0.0/16"))},
		{Name: "LoadBalancer class", Layer: v, Service: svc("lb-class", lb, set(func(s *v1.ServiceSpec) {
			s.LoadBalancerClass = ptr.To("example.com/internal-vip")
		}))},
		{Name: "LoadBalancer without node ports", Layer: v, Service: svc("lb-no-nodeports", lb, set(func(s *v1.ServiceSpec) {
			s.AllocateLoadBalancerNodePorts = ptr.To(false)
		}))},
		{Name: "LoadBalancer with mixed protocols", Layer: v, Service: svc("lb-mixed", lb, ports(
			v1.ServicePort{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP},
			v1.ServicePort{Name: "dns-tcp", Port: 53, Protocol: v1.ProtocolTCP},
		))},
		{Name: "explicit clusterIP only (registry fills clusterIPs)", Layer: v, Service: svc("explicit-ip", clusterIP("10.96.0.201"))},
		{Name: "explicit clusterIP, clusterIPs and families", Layer: v, Service: svc("explicit-ips", clusterIP("10.96.0.202"),
			clusterIPs("10.96.0.202"), families(v1.IPv4Protocol), policy(v1.IPFamilyPolicySingleStack))},
		{Name: "PreferDualStack on a single-stack cluster", Layer: v, Service: svc("prefer-dual", policy(v1.IPFamilyPolicyPreferDualStack))},
		{Name: "Local internal traffic policy", Layer: v, Service: svc("itp-local", set(func(s *v1.ServiceSpec) {
			s.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
		}))},
		{Name: "trafficDistribution PreferClose", Layer: v, Service: svc("td-close", set(func(s *v1.ServiceSpec) {
			s.TrafficDistribution = ptr.To(v1.ServiceTrafficDistributionPreferClose)
		}))},
		// PreferSameTrafficDistribution is GA in 1.35.
		{Name: "trafficDistribution PreferSameZone", Layer: v, Service: svc("td-zone", set(func(s *v1.ServiceSpec) {
			s.TrafficDistribution = ptr.To(v1.ServiceTrafficDistributionPreferSameZone)
		}))},
		{Name: "trafficDistribution PreferSameNode", Layer: v, Service: svc("td-node", set(func(s *v1.ServiceSpec) {
			s.TrafficDistribution = ptr.To(v1.ServiceTrafficDistributionPreferSameNode)
		}))},
		{Name: "publishNotReadyAddresses", Layer: v, Service: svc("publish-not-ready", set(func(s *v1.ServiceSpec) {
			s.PublishNotReadyAddresses = true
		}))},
		{Name: "ExternalName with a trailing dot", Layer: v, Service: svc("externalname-fqdn", externalName("my.db.example.com."))},
		// validateServiceInternalTrafficFieldsValue: kept legal for stored objects.
		{Name: "ExternalName with an internal traffic policy", Layer: v, Service: svc("externalname-itp", externalName("db.example.com"),
			set(func(s *v1.ServiceSpec) { s.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal) }))},
		{Name: "ExternalName with ports", Layer: v, Service: svc("externalname-ports", externalName("db.example.com"),
			ports(v1.ServicePort{Port: 5432}))},
		// Only ClusterIP forbids nodePort (validateService); nothing
		// allocates it for ExternalName either.
		{Name: "ExternalName with a nodePort", Layer: v, Service: svc("externalname-nodeport", externalName("db.example.com"),
			ports(v1.ServicePort{Port: 5432, NodePort: 30050}))},
		{Name: "generateName", Layer: v, Service: svc("", func(s *v1.Service) { s.GenerateName = "web-" })},
		{Name: "qualified finalizer", Layer: v, Service: svc("finalizer-ok", func(s *v1.Service) {
			s.Finalizers = []string{"example.com/cleanup", "kubernetes"}
		})},
		{Name: "matching topology annotations", Layer: v, Service: svc("topology-ok",
			annotate(v1.AnnotationTopologyMode, "Auto"), annotate(v1.DeprecatedAnnotationTopologyAwareHints, "Auto"))},

		// Metadata.
		{Name: "name with capitals", Layer: v, Service: svc("My-Service"), Errs: []Err{invalid("metadata.name")}},
		// RelaxedServiceNameValidation is alpha in 1.35.
		{Name: "name starting with a digit", Layer: v, Service: svc("1-svc"), Errs: []Err{invalid("metadata.name")}},
		{Name: "name longer than 63", Layer: v, Service: svc(strings.Repeat("a", 64)), Errs: []Err{invalid("metadata.name")}},
		{Name: "no name", Layer: v, Service: svc(""), Errs: []Err{required("metadata.name")}},
		{Name: "invalid generateName", Layer: v, Service: svc("", func(s *v1.Service) { s.GenerateName = "Web-" }),
			Errs: []Err{invalid("metadata.generateName"), invalid("metadata.name")}},
		{Name: "invalid label key", Layer: v, Service: svc("bad-label", func(s *v1.Service) {
			s.Labels = map[string]string{"bad key!": "x"}
		}), Errs: []Err{invalid("metadata.labels")}},
		{Name: "invalid label value", Layer: v, Service: svc("bad-label-value", func(s *v1.Service) {
			s.Labels = map[string]string{"app": "not ok"}
		}), Errs: []Err{invalid("metadata.labels")}},
		{Name: "invalid annotation key", Layer: v, Service: svc("bad-annotation", annotate("bad key!", "x")),
			Errs: []Err{invalid("metadata.annotations")}},
		{Name: "annotations over 256KiB", Layer: v, Service: svc("big-annotation", annotate("example.com/blob", strings.Repeat("x", 256*1024))),
			Errs: []Err{tooLong("metadata.annotations")}},
		// kube's validateKubeFinalizerName, on top of apimachinery's checks.
		{Name: "unqualified finalizer", Layer: v, Service: svc("bad-finalizer", func(s *v1.Service) {
			s.Finalizers = []string{"cleanup"}
		}), Errs: []Err{invalid("metadata.finalizers[0]")}},
		{Name: "topology annotations disagree", Layer: v, Service: svc("topology-mismatch",
			annotate(v1.AnnotationTopologyMode, "Auto"), annotate(v1.DeprecatedAnnotationTopologyAwareHints, "Disabled")),
			Errs: []Err{invalid("metadata.annotations[service.kubernetes.io/topology-mode]")}},

		// Ports.
		{Name: "no ports", Layer: v, Service: svc("no-ports", ports()), Errs: []Err{required("spec.ports")}},
		{Name: "NodePort without ports", Layer: v, Service: svc("nodeport-no-ports", np, ports()), Errs: []Err{required("spec.ports")}},
		{Name: "two unnamed ports", Layer: v, Service: svc("unnamed-ports", ports(v1.ServicePort{Port: 80}, v1.ServicePort{Port: 443})),
			Errs: []Err{required("spec.ports[0].name"), required("spec.ports[1].name")}},
		{Name: "second port unnamed", Layer: v, Service: svc("second-unnamed", ports(named("http", 80, 8080), v1.ServicePort{Port: 443})),
			Errs: []Err{required("spec.ports[1].name")}},
		{Name: "duplicate port name", Layer: v, Service: svc("dup-port-name", ports(named("http", 80, 8080), named("http", 81, 8081))),
			Errs: []Err{duplicate("spec.ports[1].name")}},
		{Name: "port name with capitals", Layer: v, Service: svc("port-name-caps", ports(named("HTTP", 80, 8080))),
			Errs: []Err{invalid("spec.ports[0].name")}},
		{Name: "port name with underscore", Layer: v, Service: svc("port-name-underscore", ports(named("http_web", 80, 8080))),
			Errs: []Err{invalid("spec.ports[0].name")}},
		{Name: "port name longer than 63", Layer: v, Service: svc("port-name-long", ports(named(strings.Repeat("p", 64), 80, 8080))),
			Errs: []Err{invalid("spec.ports[0].name")}},
		{Name: "duplicate port and protocol", Layer: v, Service: svc("dup-port", ports(named("a", 80, 8080), named("b", 80, 8081))),
			Errs: []Err{duplicate("spec.ports[1]")}},
		{Name: "port 0", Layer: v, Service: svc("port-zero", ports(v1.ServicePort{Port: 0, TargetPort: intstr.FromInt32(8080)})),
			Errs: []Err{invalid("spec.ports[0].port")}},
		{Name: "port above 65535", Layer: v, Service: svc("port-big", ports(v1.ServicePort{Port: 65536, TargetPort: intstr.FromInt32(8080)})),
			Errs: []Err{invalid("spec.ports[0].port")}},
		// Defaulting copies the bad port into targetPort, so both fail.
		{Name: "negative port without targetPort", Layer: v, Service: svc("port-negative", ports(v1.ServicePort{Port: -1})),
			Errs: []Err{invalid("spec.ports[0].port"), invalid("spec.ports[0].targetPort")}},
		{Name: "unsupported protocol", Layer: v, Service: svc("proto-http", ports(v1.ServicePort{Port: 80, Protocol: "HTTP"})),
			Errs: []Err{notSupported("spec.ports[0].protocol")}},
		{Name: "lowercase protocol", Layer: v, Service: svc("proto-lower", ports(v1.ServicePort{Port: 80, Protocol: "tcp"})),
			Errs: []Err{notSupported("spec.ports[0].protocol")}},
		{Name: "targetPort above 65535", Layer: v, Service: svc("target-big", ports(v1.ServicePort{Port: 80, TargetPort: intstr.FromInt32(70000)})),
			Errs: []Err{invalid("spec.ports[0].targetPort")}},
		{Name: "negative targetPort", Layer: v, Service: svc("target-negative", ports(v1.ServicePort{Port: 80, TargetPort: intstr.FromInt32(-1)})),
			Errs: []Err{invalid("spec.ports[0].targetPort")}},
		{Name: "targetPort name with capitals", Layer: v, Service: svc("target-caps", ports(v1.ServicePort{Port: 80, TargetPort: intstr.FromString("Http")})),
			Errs: []Err{invalid("spec.ports[0].targetPort")}},
		{Name: "targetPort name longer than 15", Layer: v, Service: svc("target-long", ports(v1.ServicePort{Port: 80, TargetPort: intstr.FromString("this-name-is-too-long")})),
			Errs: []Err{invalid("spec.ports[0].targetPort")}},
		{Name: "targetPort name without a letter", Layer: v, Service: svc("target-digits", ports(v1.ServicePort{Port: 80, TargetPort: intstr.FromString("8080")})),
			Errs: []Err{invalid("spec.ports[0].targetPort")}},
		{Name: "invalid appProtocol", Layer: v, Service: svc("app-protocol-bad", ports(v1.ServicePort{Port: 80, AppProtocol: ptr.To("bad protocol")})),
			Errs: []Err{invalid("spec.ports[0].appProtocol")}},

		// NodePorts.
		{Name: "nodePort on ClusterIP", Layer: v, Service: svc("nodeport-on-clusterip", typ(v1.ServiceTypeClusterIP),
			ports(v1.ServicePort{Port: 80, NodePort: 30080})), Errs: []Err{forbidden("spec.ports[0].nodePort")}},
		{Name: "nodePort with the type defaulted to ClusterIP", Layer: v, Service: svc("nodeport-on-default",
			ports(v1.ServicePort{Port: 80, NodePort: 30081})), Errs: []Err{forbidden("spec.ports[0].nodePort")}},
		// The allocator sees the second request for the value before
		// validation's Duplicate check can (alloc.go initNodePorts).
		{Name: "same nodePort on two TCP ports", Layer: a, Service: svc("nodeport-dup", np, ports(
			v1.ServicePort{Name: "a", Port: 80, NodePort: 30071},
			v1.ServicePort{Name: "b", Port: 81, NodePort: 30071},
		)), Errs: []Err{invalid("spec.ports[1].nodePort")}},
		{Name: "nodePort below the range", Layer: a, Service: svc("nodeport-low", np, ports(v1.ServicePort{Port: 80, NodePort: 80})),
			Errs: []Err{invalid("spec.ports[0].nodePort")}},
		{Name: "nodePort above the range", Layer: a, Service: svc("nodeport-high", np, ports(v1.ServicePort{Port: 80, NodePort: 40000})),
			Errs: []Err{invalid("spec.ports[0].nodePort")}},

		// ClusterIPs and IP families.
		{Name: "headless NodePort", Layer: v, Service: svc("headless-nodeport", np, clusterIP("None")),
			Errs: []Err{invalid("spec.clusterIPs[0]")}},
		{Name: "headless LoadBalancer", Layer: v, Service: svc("headless-lb", lb, clusterIP("None")),
			Errs: []Err{invalid("spec.clusterIPs[0]")}},
		{Name: "clusterIP not an IP", Layer: v, Service: svc("clusterip-bogus", clusterIP("bogus")),
			Errs: []Err{invalid("spec.clusterIPs[0]")}},
		{Name: "clusterIP octet over 255", Layer: v, Service: svc("clusterip-octet", clusterIP("10.96.0.256")),
			Errs: []Err{invalid("spec.clusterIPs[0]")}},
		{Name: "clusterIPs[0] differs from clusterIP", Layer: v, Service: svc("clusterips-mismatch", clusterIP("10.96.0.220"), clusterIPs("10.96.0.221")),
			Errs: []Err{invalid("spec.clusterIPs")}},
		{Name: "clusterIPs without clusterIP", Layer: v, Service: svc("clusterips-only", clusterIPs("10.96.0.222")),
			Errs: []Err{invalid("spec.clusterIPs")}},
		{Name: "two IPv4 clusterIPs", Layer: v, Service: svc("clusterips-two-v4", clusterIP("10.96.0.223"), clusterIPs("10.96.0.223", "10.96.0.224")),
			Errs: []Err{invalid("spec.clusterIPs")}},
		{Name: "three clusterIPs", Layer: v, Service: svc("clusterips-three", clusterIP("10.96.0.225"),
			clusterIPs("10.96.0.225", "fd00::225", "10.96.0.226")), Errs: []Err{invalid("spec.clusterIPs")}},
		{Name: "None followed by an IP", Layer: v, Service: svc("clusterips-none-first", clusterIP("None"), clusterIPs("None", "10.96.0.227")),
			Errs: []Err{invalid("spec.clusterIPs")}},
		{Name: "clusterIP of the other family than ipFamilies", Layer: v, Service: svc("clusterip-family-mismatch",
			clusterIP("10.96.0.228"), families(v1.IPv6Protocol)), Errs: []Err{invalid("spec.clusterIPs[0]")}},
		{Name: "unknown IP family", Layer: v, Service: svc("family-bogus", families("IPv5")),
			Errs: []Err{notSupported("spec.ipFamilies[0]")}},
		{Name: "IP family twice", Layer: v, Service: svc("family-dup", families(v1.IPv4Protocol, v1.IPv4Protocol), policy(v1.IPFamilyPolicyPreferDualStack)),
			Errs: []Err{duplicate("spec.ipFamilies[1]")}},
		{Name: "unknown IP family policy", Layer: v, Service: svc("policy-bogus", policy("DualStack")),
			Errs: []Err{notSupported("spec.ipFamilyPolicy")}},
		{Name: "IPv6 clusterIP on an IPv4 cluster", Layer: a, Service: svc("clusterip-v6", clusterIP("fd00:10:96::10")),
			Errs: []Err{invalid("spec.clusterIPs[0]")}},
		{Name: "clusterIP outside the service CIDR", Layer: a, Service: svc("clusterip-outside", clusterIP("10.0.0.10")),
			Errs: []Err{invalid("spec.clusterIPs")}},
		{Name: "RequireDualStack on a single-stack cluster", Layer: a, Service: svc("require-dual", policy(v1.IPFamilyPolicyRequireDualStack)),
			Errs: []Err{invalid("spec.ipFamilyPolicy")}},
		{Name: "IPv6 family on an IPv4 cluster", Layer: a, Service: svc("family-v6", families(v1.IPv6Protocol)),
			Errs: []Err{invalid("spec.ipFamilies[0]")}},
		// The allocator defaults the policy to SingleStack first.
		{Name: "two families without a policy", Layer: a, Service: svc("families-dual-nopolicy", families(v1.IPv4Protocol, v1.IPv6Protocol)),
			Errs: []Err{invalid("spec.ipFamilyPolicy")}},
		{Name: "two families PreferDualStack on an IPv4 cluster", Layer: a, Service: svc("families-dual-prefer",
			families(v1.IPv4Protocol, v1.IPv6Protocol), policy(v1.IPFamilyPolicyPreferDualStack)),
			Errs: []Err{invalid("spec.ipFamilies[1]")}},

		// ExternalName.
		{Name: "ExternalName without externalName", Layer: v, Service: svc("externalname-missing", externalName("")),
			Errs: []Err{required("spec.externalName")}},
		{Name: "ExternalName not a DNS name", Layer: v, Service: svc("externalname-bad", externalName("not_valid!")),
			Errs: []Err{invalid("spec.externalName")}},
		{Name: "ExternalName with capitals", Layer: v, Service: svc("externalname-caps", externalName("My.DB.example.com")),
			Errs: []Err{invalid("spec.externalName")}},
		{Name: "ExternalName with a clusterIP", Layer: v, Service: svc("externalname-clusterip", externalName("db.example.com"), clusterIP("10.96.0.229")),
			Errs: []Err{forbidden("spec.clusterIPs")}},
		{Name: "ExternalName with ipFamilies", Layer: v, Service: svc("externalname-families", externalName("db.example.com"), families(v1.IPv4Protocol)),
			Errs: []Err{forbidden("spec.ipFamilies")}},
		{Name: "ExternalName with ipFamilyPolicy", Layer: v, Service: svc("externalname-policy", externalName("db.example.com"), policy(v1.IPFamilyPolicySingleStack)),
			Errs: []Err{forbidden("spec.ipFamilyPolicy")}},
		{Name: "ExternalName with an external traffic policy", Layer: v, Service: svc("externalname-etp", externalName("db.example.com"),
			etp(v1.ServiceExternalTrafficPolicyCluster)), Errs: []Err{invalid("spec.externalTrafficPolicy")}},
		{Name: "ExternalName with allocateLoadBalancerNodePorts", Layer: v, Service: svc("externalname-alloc", externalName("db.example.com"),
			set(func(s *v1.ServiceSpec) { s.AllocateLoadBalancerNodePorts = ptr.To(true) })),
			Errs: []Err{forbidden("spec.allocateLoadBalancerNodePorts")}},

		// Selector, affinity, type.
		{Name: "selector key with a space", Layer: v, Service: svc("selector-bad-key", set(func(s *v1.ServiceSpec) {
			s.Selector = map[string]string{"bad key": "web"}
		})), Errs: []Err{invalid("spec.selector")}},
		{Name: "selector value with a space", Layer: v, Service: svc("selector-bad-value", set(func(s *v1.ServiceSpec) {
			s.Selector = map[string]string{"app": "bad value"}
		})), Errs: []Err{invalid("spec.selector")}},
		{Name: "unknown session affinity", Layer: v, Service: svc("affinity-sticky", affinity("Sticky", nil)),
			Errs: []Err{notSupported("spec.sessionAffinity")}},
		{Name: "ClientIP timeout 0", Layer: v, Service: svc("affinity-zero", affinity(v1.ServiceAffinityClientIP, ptr.To[int32](0))),
			Errs: []Err{invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds")}},
		{Name: "ClientIP timeout over a day", Layer: v, Service: svc("affinity-too-long", affinity(v1.ServiceAffinityClientIP, ptr.To[int32](86401))),
			Errs: []Err{invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds")}},
		{Name: "unknown type", Layer: v, Service: svc("type-bogus", typ("Foo")), Errs: []Err{notSupported("spec.type")}},

		// External IPs.
		{Name: "externalIP not an IP", Layer: v, Service: svc("extip-bogus", externalIPs("bogus")), Errs: []Err{invalid("spec.externalIPs[0]")}},
		{Name: "loopback externalIP", Layer: v, Service: svc("extip-loopback", externalIPs("127.0.0.1")), Errs: []Err{invalid("spec.externalIPs[0]")}},
		{Name: "unspecified externalIP", Layer: v, Service: svc("extip-unspecified", externalIPs("0.0.0.0")), Errs: []Err{invalid("spec.externalIPs[0]")}},
		{Name: "link-local externalIP", Layer: v, Service: svc("extip-link-local", externalIPs("169.254.169.254")), Errs: []Err{invalid("spec.externalIPs[0]")}},
		{Name: "link-local multicast externalIP", Layer: v, Service: svc("extip-multicast", externalIPs("224.0.0.1")), Errs: []Err{invalid("spec.externalIPs[0]")}},
		{Name: "second externalIP is IPv6 loopback", Layer: v, Service: svc("extip-second", externalIPs("192.0.2.20", "::1")), Errs: []Err{invalid("spec.externalIPs[1]")}},

		// Traffic policies and health check node port.
		{Name: "unknown external traffic policy", Layer: v, Service: svc("etp-bogus", np, etp("Global")),
			Errs: []Err{notSupported("spec.externalTrafficPolicy")}},
		{Name: "external traffic policy on plain ClusterIP", Layer: v, Service: svc("etp-clusterip", etp(v1.ServiceExternalTrafficPolicyLocal)),
			Errs: []Err{invalid("spec.externalTrafficPolicy")}},
		{Name: "unknown internal traffic policy", Layer: v, Service: svc("itp-bogus", set(func(s *v1.ServiceSpec) {
			s.InternalTrafficPolicy = ptr.To[v1.ServiceInternalTrafficPolicy]("Node")
		})), Errs: []Err{notSupported("spec.internalTrafficPolicy")}},
		{Name: "healthCheckNodePort on ClusterIP", Layer: v, Service: svc("hcnp-clusterip", set(func(s *v1.ServiceSpec) {
			s.HealthCheckNodePort = 30040
		})), Errs: []Err{invalid("spec.healthCheckNodePort")}},
		{Name: "healthCheckNodePort on LoadBalancer with Cluster policy", Layer: v, Service: svc("hcnp-lb-cluster", lb, set(func(s *v1.ServiceSpec) {
			s.HealthCheckNodePort = 30041
		})), Errs: []Err{invalid("spec.healthCheckNodePort")}},
		{Name: "healthCheckNodePort on NodePort with Local policy", Layer: v, Service: svc("hcnp-nodeport-local", np,
			etp(v1.ServiceExternalTrafficPolicyLocal), set(func(s *v1.ServiceSpec) { s.HealthCheckNodePort = 30042 })),
			Errs: []Err{invalid("spec.healthCheckNodePort")}},

		// LoadBalancer-only fields.
		{Name: "source ranges on ClusterIP", Layer: v, Service: svc("ranges-clusterip", set(func(s *v1.ServiceSpec) {
			s.LoadBalancerSourceRanges = []string{"10.0.0.0/8"}
		})), Errs: []Err{forbidden("spec.LoadBalancerSourceRanges")}},
		{Name: "source range prefix over 32", Layer: v, Service: svc("ranges-bad-prefix", lb, set(func(s *v1.ServiceSpec) {
			s.LoadBalancerSourceRanges = []string{"10.0.0.0/33"}
		})), Errs: []Err{invalid("spec.LoadBalancerSourceRanges[0]")}},
		{Name: "source range without a prefix", Layer: v, Service: svc("ranges-no-prefix", lb, set(func(s *v1.ServiceSpec) {
			s.LoadBalancerSourceRanges = []string{"10.0.0.0/8", "10.1.0.0"}
		})), Errs: []Err{invalid("spec.LoadBalancerSourceRanges[1]")}},
		{Name: "source ranges annotation on ClusterIP", Layer: v, Service: svc("ranges-annotation-clusterip",
			annotate(v1.AnnotationLoadBalancerSourceRangesKey, "10.0.0.0/8")),
			Errs: []Err{forbidden("metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]")}},
		{Name: "invalid source ranges annotation", Layer: v, Service: svc("ranges-annotation-bad", lb,
			annotate(v1.AnnotationLoadBalancerSourceRangesKey, "10.0.0.0/8,bogus")),
			Errs: []Err{invalid("metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]")}},
		{Name: "allocateLoadBalancerNodePorts on NodePort", Layer: v, Service: svc("alloc-on-nodeport", np, set(func(s *v1.ServiceSpec) {
			s.AllocateLoadBalancerNodePorts = ptr.To(false)
		})), Errs: []Err{forbidden("spec.allocateLoadBalancerNodePorts")}},
		{Name: "loadBalancerClass on ClusterIP", Layer: v, Service: svc("class-clusterip", set(func(s *v1.ServiceSpec) {
			s.LoadBalancerClass = ptr.To("example.com/lb")
		})), Errs: []Err{forbidden("spec.loadBalancerClass")}},
		{Name: "loadBalancerClass not a qualified name", Layer: v, Service: svc("class-bad", lb, set(func(s *v1.ServiceSpec) {
			s.LoadBalancerClass = ptr.To("-bad-")
		})), Errs: []Err{invalid("spec.loadBalancerClass")}},
		{Name: "unknown trafficDistribution", Layer: v, Service: svc("td-bogus", set(func(s *v1.ServiceSpec) {
			s.TrafficDistribution = ptr.To("PreferRegion")
		})), Errs: []Err{notSupported("spec.trafficDistribution")}},
	}
}

// stored is the form a service created from base takes once the API server has
// allocated for it on this cluster, which is what a client reads back and
// edits: clusterIPs and IP family fields filled in. base must carry an explicit
// clusterIP (or none, for ExternalName) and explicit nodePorts, so that the
// same values come back when the HTTP replay creates it.
func stored(base *v1.Service, mods ...func(*v1.Service)) *v1.Service {
	s := base.DeepCopy()
	if s.Spec.Type != v1.ServiceTypeExternalName {
		s.Spec.ClusterIPs = []string{s.Spec.ClusterIP}
		s.Spec.IPFamilies = []v1.IPFamily{v1.IPv4Protocol}
		s.Spec.IPFamilyPolicy = ptr.To(v1.IPFamilyPolicySingleStack)
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

// Update returns the update cases, each with its own Old object.
func Update() []UpdateCase {
	v := LayerValidation
	a := LayerAllocation

	plain := func(name, ip string) *v1.Service { return svc(name, clusterIP(ip)) }
	nodePort := func(name, ip string, np int32) *v1.Service {
		return svc(name, typ(v1.ServiceTypeNodePort), clusterIP(ip), ports(v1.ServicePort{Name: "http", Port: 80, NodePort: np}))
	}
	lbWith := func(name, ip string, np int32, mods ...func(*v1.Service)) *v1.Service {
		base := svc(name, typ(v1.ServiceTypeLoadBalancer), clusterIP(ip), ports(v1.ServicePort{Name: "http", Port: 80, NodePort: np}))
		for _, m := range mods {
			m(base)
		}
		return base
	}
	withClass := func(c string) func(*v1.Service) {
		return set(func(s *v1.ServiceSpec) { s.LoadBalancerClass = ptr.To(c) })
	}
	local := func(hcnp int32) func(*v1.Service) {
		return set(func(s *v1.ServiceSpec) {
			s.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
			s.HealthCheckNodePort = hcnp
		})
	}
	// toExternalName is what a careful user sends: everything that only made
	// sense for a ClusterIP service is removed.
	toExternalName := func(s *v1.Service) {
		externalName("db.example.com")(s)
		s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil
		s.Spec.IPFamilies, s.Spec.IPFamilyPolicy = nil, nil
		s.Spec.InternalTrafficPolicy = nil
	}

	cases := []UpdateCase{
		{Name: "selector and ports change", Layer: v, Old: plain("u-edit", "10.96.0.210"),
			New: stored(plain("u-edit", "10.96.0.210"), set(func(s *v1.ServiceSpec) {
				s.Selector = map[string]string{"app": "web2"}
				s.Ports = []v1.ServicePort{named("http", 80, 8080), named("metrics", 9090, 9090)}
			}))},
		// PatchAllocatedValues puts the allocated values back.
		{Name: "resubmitting without the allocated clusterIP", Layer: v, Old: plain("u-resubmit", "10.96.0.211"),
			New: svc("u-resubmit")},
		{Name: "clusterIP and clusterIPs changed", Layer: v, Old: plain("u-ip-change", "10.96.0.212"),
			New: stored(plain("u-ip-change", "10.96.0.213")), Errs: []Err{invalid("spec.clusterIPs[0]")}},
		// NormalizeClusterIPs copies the new singular value into the
		// unchanged plural field, so the immutability check reports it.
		{Name: "only clusterIP changed", Layer: v, Old: plain("u-ip-singular", "10.96.0.214"),
			New: stored(plain("u-ip-singular", "10.96.0.214"), clusterIP("10.96.0.215")), Errs: []Err{invalid("spec.clusterIPs[0]")}},
		{Name: "headless to a clusterIP", Layer: v, Old: svc("u-headless", clusterIP("None")),
			New: stored(svc("u-headless", clusterIP("10.96.0.216"))), Errs: []Err{invalid("spec.clusterIPs[0]")}},
		// Caught by ValidateServiceClusterIPsRelatedFields ahead of
		// allocation, so the ipFamilies immutability error never shows.
		{Name: "ipFamilies changed", Layer: v, Old: plain("u-family", "10.96.0.217"),
			New: stored(plain("u-family", "10.96.0.217"), families(v1.IPv6Protocol)), Errs: []Err{invalid("spec.clusterIPs[0]")}},
		{Name: "adding an IPv6 clusterIP on an IPv4 cluster", Layer: a, Old: plain("u-dual", "10.96.0.218"),
			New:  stored(plain("u-dual", "10.96.0.218"), clusterIPs("10.96.0.218", "fd00:10:96::218"), policy(v1.IPFamilyPolicyRequireDualStack)),
			Errs: []Err{invalid("spec.clusterIPs[1]")}},
		{Name: "ClusterIP to ExternalName, fields cleared", Layer: v, Old: plain("u-to-en", "10.96.0.230"),
			New: stored(plain("u-to-en", "10.96.0.230"), toExternalName)},
		// DropTypeDependentFields wipes the untouched allocated values.
		{Name: "ClusterIP to ExternalName, fields left as read", Layer: v, Old: plain("u-to-en-kept", "10.96.0.231"),
			New: stored(plain("u-to-en-kept", "10.96.0.231"), func(s *v1.Service) {
				s.Spec.Type = v1.ServiceTypeExternalName
				s.Spec.ExternalName = "db.example.com"
			})},
		{Name: "ClusterIP to ExternalName with a new clusterIP", Layer: v, Old: plain("u-to-en-newip", "10.96.0.232"),
			New: stored(plain("u-to-en-newip", "10.96.0.232"), func(s *v1.Service) {
				s.Spec.Type = v1.ServiceTypeExternalName
				s.Spec.ExternalName = "db.example.com"
				s.Spec.ClusterIP = "10.96.0.233"
				s.Spec.ClusterIPs = []string{"10.96.0.233"}
			}), Errs: []Err{forbidden("spec.clusterIPs")}},
		{Name: "ExternalName to ClusterIP", Layer: v, Old: svc("u-from-en", externalName("db.example.com")),
			New: svc("u-from-en")},
		{Name: "ExternalName to ClusterIP with a chosen IP", Layer: v, Old: svc("u-from-en-ip", externalName("db.example.com")),
			New: svc("u-from-en-ip", clusterIP("10.96.0.234"))},
		{Name: "ClusterIP to NodePort", Layer: v, Old: plain("u-to-np", "10.96.0.235"),
			New: stored(plain("u-to-np", "10.96.0.235"), typ(v1.ServiceTypeNodePort))},
		{Name: "NodePort to ClusterIP, nodePort removed", Layer: v, Old: nodePort("u-np-to-cip", "10.96.0.236", 30060),
			New: stored(nodePort("u-np-to-cip", "10.96.0.236", 30060), typ(v1.ServiceTypeClusterIP), set(func(s *v1.ServiceSpec) {
				s.Ports[0].NodePort = 0
				s.ExternalTrafficPolicy = ""
			}))},
		{Name: "LoadBalancer to ClusterIP, fields left as read", Layer: v, Old: lbWith("u-lb-to-cip", "10.96.0.237", 30061, withClass("example.com/lb")),
			New: stored(lbWith("u-lb-to-cip", "10.96.0.237", 30061, withClass("example.com/lb")), typ(v1.ServiceTypeClusterIP), set(func(s *v1.ServiceSpec) {
				s.AllocateLoadBalancerNodePorts = ptr.To(true)
				s.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
			}))},
		{Name: "LoadBalancer to ClusterIP with a new nodePort", Layer: v, Old: lbWith("u-lb-to-cip-np", "10.96.0.238", 30062),
			New: stored(lbWith("u-lb-to-cip-np", "10.96.0.238", 30062), typ(v1.ServiceTypeClusterIP), set(func(s *v1.ServiceSpec) {
				s.Ports[0].NodePort = 30063
			})), Errs: []Err{forbidden("spec.ports[0].nodePort")}},
		{Name: "loadBalancerClass changed", Layer: v, Old: lbWith("u-class-change", "10.96.0.239", 30064, withClass("example.com/a")),
			New: stored(lbWith("u-class-change", "10.96.0.239", 30064, withClass("example.com/b"))), Errs: []Err{invalid("spec.loadBalancerClass")}},
		{Name: "loadBalancerClass added", Layer: v, Old: lbWith("u-class-add", "10.96.0.240", 30065),
			New: stored(lbWith("u-class-add", "10.96.0.240", 30065, withClass("example.com/a"))), Errs: []Err{invalid("spec.loadBalancerClass")}},
		{Name: "loadBalancerClass removed", Layer: v, Old: lbWith("u-class-remove", "10.96.0.241", 30066, withClass("example.com/a")),
			New: stored(lbWith("u-class-remove", "10.96.0.241", 30066)), Errs: []Err{invalid("spec.loadBalancerClass")}},
		{Name: "ClusterIP to LoadBalancer with a class", Layer: v, Old: plain("u-to-lb-class", "10.96.0.242"),
			New: stored(plain("u-to-lb-class", "10.96.0.242"), typ(v1.ServiceTypeLoadBalancer), withClass("example.com/a"))},
		{Name: "healthCheckNodePort changed", Layer: v, Old: lbWith("u-hcnp", "10.96.0.243", 30067, local(30068)),
			New: stored(lbWith("u-hcnp", "10.96.0.243", 30067, local(30069))), Errs: []Err{forbidden("spec.healthCheckNodePort")}},
		{Name: "Local to Cluster policy, healthCheckNodePort left as read", Layer: v, Old: lbWith("u-local-off", "10.96.0.244", 30070, local(30072)),
			New: stored(lbWith("u-local-off", "10.96.0.244", 30070, local(30072)), etp(v1.ServiceExternalTrafficPolicyCluster))},
		{Name: "last externalIP removed, external policy left as read", Layer: v,
			Old: svc("u-extip-gone", clusterIP("10.96.0.247"), externalIPs("192.0.2.31")),
			New: stored(svc("u-extip-gone", clusterIP("10.96.0.247")), etp(v1.ServiceExternalTrafficPolicyCluster))},
		{Name: "invalid label added", Layer: v, Old: plain("u-label", "10.96.0.245"),
			New:  stored(plain("u-label", "10.96.0.245"), func(s *v1.Service) { s.Labels = map[string]string{"bad key!": "x"} }),
			Errs: []Err{invalid("metadata.labels")}},
		{Name: "loopback externalIP added next to a stored one", Layer: v, Old: svc("u-extip", clusterIP("10.96.0.246"), externalIPs("192.0.2.30")),
			New: stored(svc("u-extip", clusterIP("10.96.0.246"), externalIPs("192.0.2.30", "127.0.0.2"))), Errs: []Err{invalid("spec.externalIPs[1]")}},
	}
	return cases
}
