package validation

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/svcnet/svcnet/internal/apis/core/defaults"
	"github.com/svcnet/svcnet/internal/apis/core/validation/servicecases"
)

// createPath does to a create request what kube-apiserver does before and
// while validating it, except allocating: name generation, defaulting,
// clusterIP normalisation, the allocator's pre-validation (whose errors, when
// any, are all the client gets), status reset and validation.
func createPath(in *v1.Service) field.ErrorList {
	svc := in.DeepCopy()
	if svc.Name == "" && svc.GenerateName != "" {
		svc.Name = svc.GenerateName + "x7k2q"
	}
	defaults.Service(svc)
	defaults.NormalizeClusterIPs(svc, nil)
	if errs := ValidateServiceClusterIPsRelatedFields(svc, nil); len(errs) > 0 {
		return errs
	}
	// The one allocation whose absence validation notices: kube's allocator
	// picks a health check node port before validation runs.
	if needsHealthCheck(svc) && svc.Spec.HealthCheckNodePort == 0 {
		svc.Spec.HealthCheckNodePort = 32767
	}
	svc.Status = v1.ServiceStatus{}
	return ValidateServiceCreate(svc)
}

// storedForm is what the API server keeps for a valid create of in, given
// that the table spells out every value the allocator would otherwise pick.
func storedForm(t *testing.T, in *v1.Service) *v1.Service {
	t.Helper()
	if errs := createPath(in); len(errs) > 0 {
		t.Fatalf("old object of an update case is not creatable: %v", errs)
	}
	svc := in.DeepCopy()
	defaults.Service(svc)
	defaults.NormalizeClusterIPs(svc, nil)
	if svc.Spec.Type != v1.ServiceTypeExternalName {
		if svc.Spec.ClusterIP == "" {
			t.Fatalf("old object must choose its clusterIP")
		}
		if svc.Spec.IPFamilyPolicy == nil {
			svc.Spec.IPFamilyPolicy = ptr.To(v1.IPFamilyPolicySingleStack)
		}
		if len(svc.Spec.IPFamilies) == 0 {
			svc.Spec.IPFamilies = []v1.IPFamily{v1.IPv4Protocol}
		}
	}
	if svc.Spec.Type == v1.ServiceTypeNodePort || svc.Spec.Type == v1.ServiceTypeLoadBalancer {
		for _, p := range svc.Spec.Ports {
			if p.NodePort == 0 {
				t.Fatalf("old object must choose its nodePorts")
			}
		}
	}
	if needsHealthCheck(svc) && svc.Spec.HealthCheckNodePort == 0 {
		t.Fatalf("old object must choose its healthCheckNodePort")
	}
	svc.ResourceVersion = "1"
	return svc
}

// updatePath does to an update what kube-apiserver does, allocation aside:
// defaulting, the REST storage rewrites, the allocator's pre-validation,
// the strategy's PrepareForUpdate and validation. The generic store fills in
// resourceVersion for unconditional updates, so it is set here too.
func updatePath(t *testing.T, oldIn, newIn *v1.Service) field.ErrorList {
	old := storedForm(t, oldIn)
	svc := newIn.DeepCopy()
	defaults.Service(svc)
	svc.ResourceVersion = old.ResourceVersion
	defaults.PatchAllocatedValues(svc, old)
	defaults.NormalizeClusterIPs(svc, old)
	if errs := ValidateServiceClusterIPsRelatedFields(svc, old); len(errs) > 0 {
		return errs
	}
	svc.Status = old.Status
	defaults.DropTypeDependentFields(svc, old)
	return ValidateServiceUpdate(svc, old)
}

type errKey = servicecases.Err

func keys(errs field.ErrorList) []errKey {
	var out []errKey
	for _, e := range errs {
		k := errKey{Type: e.Type, Field: e.Field}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func sameSet(want []errKey, got field.ErrorList) bool {
	g := keys(got)
	if len(g) != len(want) {
		return false
	}
	for _, w := range want {
		if !slices.Contains(g, w) {
			return false
		}
	}
	return true
}

func TestCreateCases(t *testing.T) {
	cases := servicecases.Create()
	rand.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			if tc.Layer != servicecases.LayerValidation {
				t.Skipf("rejected by the %s layer, not by validation", tc.Layer)
			}
			before := tc.Service.DeepCopy()
			got := createPath(tc.Service)
			if !sameSet(tc.Errs, got) {
				t.Errorf("errors mismatch\nwant: %v\ngot:  %v", tc.Errs, got)
			}
			if !equalServices(before, tc.Service) {
				t.Errorf("table object was modified")
			}
		})
	}
}

// Allocation-layer cases pass validation, except where kube's own validation
// would also object if the allocator let the request through.
func TestAllocationCasesPassValidation(t *testing.T) {
	alsoValidation := map[string]field.ErrorList{
		"same nodePort on two TCP ports": {field.Duplicate(field.NewPath("spec", "ports").Index(1).Child("nodePort"), int32(30071))},
	}
	for _, tc := range servicecases.Create() {
		if tc.Layer != servicecases.LayerAllocation {
			continue
		}
		t.Run(tc.Name, func(t *testing.T) {
			got := createPath(tc.Service)
			if !sameSet(keys(alsoValidation[tc.Name]), got) {
				t.Errorf("unexpected validation errors: %v", got)
			}
		})
	}
}

func TestUpdateCases(t *testing.T) {
	cases := servicecases.Update()
	rand.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			if tc.Old.Name != tc.New.Name {
				t.Fatalf("an update cannot rename: %q -> %q", tc.Old.Name, tc.New.Name)
			}
			if tc.Layer != servicecases.LayerValidation {
				t.Skipf("rejected by the %s layer, not by validation", tc.Layer)
			}
			got := updatePath(t, tc.Old, tc.New)
			if !sameSet(tc.Errs, got) {
				t.Errorf("errors mismatch\nwant: %v\ngot:  %v", tc.Errs, got)
			}
		})
	}
}

// The table is replayed on one live cluster, so it must not collide with
// itself and must keep enough coverage.
func TestCaseTableShape(t *testing.T) {
	creates, updates := servicecases.Create(), servicecases.Update()
	var valid, invalid int
	caseNames, svcNames := map[string]bool{}, map[string]bool{}
	ips := map[string]string{}
	claim := func(owner string, s *v1.Service, isNew bool) {
		if s.Namespace != "default" {
			t.Errorf("%s: namespace %q", owner, s.Namespace)
		}
		if s.Name != "" && !isNew {
			if svcNames[s.Name] {
				t.Errorf("%s: service name %q used twice", owner, s.Name)
			}
			svcNames[s.Name] = true
		}
		var vals []string
		if ip := s.Spec.ClusterIP; ip != "" && ip != v1.ClusterIPNone {
			vals = append(vals, ip)
		}
		for _, p := range s.Spec.Ports {
			if p.NodePort != 0 {
				vals = append(vals, "np/"+string(p.Protocol)+"/"+strconv.Itoa(int(p.NodePort)))
			}
		}
		if s.Spec.HealthCheckNodePort != 0 {
			vals = append(vals, "np//"+strconv.Itoa(int(s.Spec.HealthCheckNodePort)))
		}
		for _, v := range slices.Compact(slices.Sorted(slices.Values(vals))) {
			if prev, ok := ips[v]; ok && prev != s.Name {
				t.Errorf("%s: %s also used by %s", owner, v, prev)
			}
			ips[v] = s.Name
		}
	}
	for _, c := range creates {
		if caseNames[c.Name] {
			t.Errorf("duplicate case name %q", c.Name)
		}
		caseNames[c.Name] = true
		if len(c.Errs) == 0 {
			valid++
		} else {
			invalid++
		}
		if c.Layer != servicecases.LayerValidation && c.Layer != servicecases.LayerAllocation {
			t.Errorf("%s: layer %q", c.Name, c.Layer)
		}
		if c.Layer == servicecases.LayerAllocation && len(c.Errs) == 0 {
			t.Errorf("%s: allocation case without errors", c.Name)
		}
		claim(c.Name, c.Service, false)
	}
	for _, u := range updates {
		if caseNames[u.Name] {
			t.Errorf("duplicate case name %q", u.Name)
		}
		caseNames[u.Name] = true
		claim(u.Name, u.Old, false)
		claim(u.Name, u.New, true)
	}
	if invalid < 60 || valid < 20 || len(updates) < 10 {
		t.Errorf("table too small: %d invalid, %d valid creates, %d updates", invalid, valid, len(updates))
	}
	t.Logf("%d invalid and %d valid creates, %d updates", invalid, valid, len(updates))
}

func caseByName(t *testing.T, name string) *v1.Service {
	t.Helper()
	for _, c := range servicecases.Create() {
		if c.Name == name {
			return c.Service
		}
	}
	t.Fatalf("no create case %q", name)
	return nil
}

// Messages are not part of the table's contract, but clients print them, so a
// sample is pinned to kube's exact text.
func TestMessages(t *testing.T) {
	tests := []struct {
		caseName string
		want     string
	}{
		{"second port unnamed", "spec.ports[1].name: Required value"},
		{"nodePort on ClusterIP", "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"},
		{"duplicate port and protocol", `spec.ports[1]: Duplicate value: {"Name":"","Protocol":"TCP","AppProtocol":null,"Port":80,"TargetPort":0,"NodePort":0}`},
		{"duplicate port name", `spec.ports[1].name: Duplicate value: "http"`},
		{"port 0", "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"},
		{"unsupported protocol", `spec.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"`},
		{"targetPort name without a letter", `spec.ports[0].targetPort: Invalid value: "8080": must contain at least one letter (a-z)`},
		{"ClientIP timeout 0", "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater than 0 and less than 86400"},
		{"name with capitals", `metadata.name: Invalid value: "My-Service": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`},
		{"no name", "metadata.name: Required value: name or generateName is required"},
		{"ExternalName without externalName", "spec.externalName: Required value"},
		{"ExternalName with a clusterIP", "spec.clusterIPs: Forbidden: may not be set for ExternalName services"},
		{"headless NodePort", `spec.clusterIPs[0]: Invalid value: "None": may not be set to 'None' for NodePort services`},
		{"clusterIP not an IP", `spec.clusterIPs[0]: Invalid value: "bogus": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)`},
		{"clusterIPs[0] differs from clusterIP", "spec.clusterIPs: Invalid value: [\"10.96.0.221\"]: first value must match `clusterIP`"},
		{"loopback externalIP", `spec.externalIPs[0]: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)`},
		{"unknown type", `spec.type: Unsupported value: "Foo": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"`},
		{"unknown trafficDistribution", `spec.trafficDistribution: Unsupported value: "PreferRegion": supported values: "PreferClose", "PreferSameZone", "PreferSameNode"`},
		{"unknown IP family policy", `spec.ipFamilyPolicy: Unsupported value: "DualStack": supported values: "PreferDualStack", "RequireDualStack", "SingleStack"`},
		{"external traffic policy on plain ClusterIP", `spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services`},
		{"healthCheckNodePort on ClusterIP", "spec.healthCheckNodePort: Invalid value: 30040: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"},
		{"source ranges on ClusterIP", "spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'"},
		{"source range prefix over 32", `spec.LoadBalancerSourceRanges[0]: Invalid value: "10.0.0.0/33": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)`},
		{"unqualified finalizer", `metadata.finalizers[0]: Invalid value: "cleanup": name is neither a standard finalizer name nor is it fully qualified`},
	}
	for _, tc := range tests {
		t.Run(tc.caseName, func(t *testing.T) {
			errs := createPath(caseByName(t, tc.caseName))
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if !slices.Contains(got, tc.want) {
				t.Errorf("missing message\nwant: %s\ngot:  %s", tc.want, strings.Join(got, "\n      "))
			}
		})
	}
}

func TestUpdateMessages(t *testing.T) {
	for _, u := range servicecases.Update() {
		if u.Name != "clusterIP and clusterIPs changed" {
			continue
		}
		errs := updatePath(t, u.Old, u.New)
		want := `spec.clusterIPs[0]: Invalid value: ["10.96.0.213"]: may not change once set`
		if len(errs) != 1 || errs[0].Error() != want {
			t.Errorf("got %v, want %s", errs, want)
		}
		return
	}
	t.Fatal("update case not found")
}

func base() *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", ResourceVersion: "1"},
		Spec: v1.ServiceSpec{
			Type:                  v1.ServiceTypeClusterIP,
			ClusterIP:             "10.96.0.50",
			ClusterIPs:            []string{"10.96.0.50"},
			IPFamilies:            []v1.IPFamily{v1.IPv4Protocol},
			IPFamilyPolicy:        ptr.To(v1.IPFamilyPolicySingleStack),
			SessionAffinity:       v1.ServiceAffinityNone,
			InternalTrafficPolicy: ptr.To(v1.ServiceInternalTrafficPolicyCluster),
			Selector:              map[string]string{"app": "web"},
			Ports:                 []v1.ServicePort{{Port: 80, Protocol: v1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}},
		},
	}
}

// Rules that the API path cannot reach, because defaulting or the request
// handling fill the field in first, still behave like kube's.
func TestValidateServiceDirect(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*v1.Service)
		want []errKey
	}{
		{"valid", func(*v1.Service) {}, nil},
		{"namespace required", func(s *v1.Service) { s.Namespace = "" }, []errKey{ek(field.ErrorTypeRequired, "metadata.namespace")}},
		{"type required", func(s *v1.Service) { s.Spec.Type = "" }, []errKey{ek(field.ErrorTypeRequired, "spec.type")}},
		{"session affinity required", func(s *v1.Service) { s.Spec.SessionAffinity = "" }, []errKey{ek(field.ErrorTypeRequired, "spec.sessionAffinity")}},
		{"protocol required", func(s *v1.Service) { s.Spec.Ports[0].Protocol = "" }, []errKey{ek(field.ErrorTypeRequired, "spec.ports[0].protocol")}},
		{"internal traffic policy required", func(s *v1.Service) { s.Spec.InternalTrafficPolicy = nil }, []errKey{ek(field.ErrorTypeRequired, "spec.internalTrafficPolicy")}},
		{"clusterIPs required when clusterIP is set", func(s *v1.Service) { s.Spec.ClusterIPs = nil }, []errKey{ek(field.ErrorTypeRequired, "spec.clusterIPs")}},
		{"external traffic policy required", func(s *v1.Service) { s.Spec.Type = v1.ServiceTypeNodePort },
			[]errKey{ek(field.ErrorTypeRequired, "spec.externalTrafficPolicy")}},
		{"health check node port required", func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeLoadBalancer
			s.Spec.AllocateLoadBalancerNodePorts = ptr.To(true)
			s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
		}, []errKey{ek(field.ErrorTypeRequired, "spec.healthCheckNodePort")}},
		{"health check node port out of range", func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeLoadBalancer
			s.Spec.AllocateLoadBalancerNodePorts = ptr.To(true)
			s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
			s.Spec.HealthCheckNodePort = 70000
		}, []errKey{ek(field.ErrorTypeInvalid, "spec.healthCheckNodePort")}},
		// kube's path really has no "spec." here.
		{"allocateLoadBalancerNodePorts required", func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeLoadBalancer
			s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
		}, []errKey{ek(field.ErrorTypeRequired, "allocateLoadBalancerNodePorts")}},
		{"duplicate nodePort", func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeNodePort
			s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
			s.Spec.Ports = []v1.ServicePort{
				{Name: "a", Port: 80, Protocol: v1.ProtocolTCP, TargetPort: intstr.FromInt32(80), NodePort: 30080},
				{Name: "b", Port: 81, Protocol: v1.ProtocolTCP, TargetPort: intstr.FromInt32(81), NodePort: 30080},
			}
		}, []errKey{ek(field.ErrorTypeDuplicate, "spec.ports[1].nodePort")}},
		{"ClientIP config required", func(s *v1.Service) { s.Spec.SessionAffinity = v1.ServiceAffinityClientIP },
			[]errKey{ek(field.ErrorTypeRequired, "spec.sessionAffinityConfig")}},
		{"ClientIP timeout required", func(s *v1.Service) {
			s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{}}
		}, []errKey{ek(field.ErrorTypeRequired, "spec.sessionAffinityConfig.clientIP.timeoutSeconds")}},
		{"None affinity with config", func(s *v1.Service) {
			s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{}
		}, []errKey{ek(field.ErrorTypeForbidden, "spec.sessionAffinityConfig")}},
		{"clusterIP with leading zeros is legacy-valid", func(s *v1.Service) {
			s.Spec.ClusterIP = "010.096.000.050"
			s.Spec.ClusterIPs = []string{"010.096.000.050"}
		}, nil},
		{"IPv4-mapped IPv6 externalIP is legacy-valid", func(s *v1.Service) {
			s.Spec.ExternalIPs = []string{"::ffff:192.0.2.1"}
			s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
		}, nil},
		{"dual-stack clusterIPs are valid on their own", func(s *v1.Service) {
			s.Spec.ClusterIPs = []string{"10.96.0.50", "fd00::50"}
			s.Spec.IPFamilies = []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}
			s.Spec.IPFamilyPolicy = ptr.To(v1.IPFamilyPolicyRequireDualStack)
		}, nil},
		{"second clusterIP of the wrong family", func(s *v1.Service) {
			s.Spec.ClusterIPs = []string{"10.96.0.50", "fd00::50"}
			s.Spec.IPFamilies = []v1.IPFamily{v1.IPv4Protocol, v1.IPv4Protocol}
		}, []errKey{ek(field.ErrorTypeDuplicate, "spec.ipFamilies[1]"), ek(field.ErrorTypeInvalid, "spec.clusterIPs[1]")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.mod(s)
			if got := ValidateService(s); !sameSet(tc.want, got) {
				t.Errorf("want %v, got %v", tc.want, got)
			}
		})
	}
}

func TestValidateServiceUpdateDirect(t *testing.T) {
	t.Run("resourceVersion required", func(t *testing.T) {
		s := base()
		s.ResourceVersion = ""
		got := ValidateServiceUpdate(s, base())
		if !sameSet([]errKey{ek(field.ErrorTypeInvalid, "metadata.resourceVersion")}, got) {
			t.Errorf("got %v", got)
		}
	})
	t.Run("stored invalid source range may stay", func(t *testing.T) {
		old := base()
		old.Spec.Type = v1.ServiceTypeLoadBalancer
		old.Spec.AllocateLoadBalancerNodePorts = ptr.To(true)
		old.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
		old.Spec.Ports[0].NodePort = 30080
		old.Spec.LoadBalancerSourceRanges = []string{"10.0.0.0/33"}
		s := old.DeepCopy()
		s.Spec.Selector = map[string]string{"app": "other"}
		if got := ValidateServiceUpdate(s, old); len(got) != 0 {
			t.Errorf("got %v", got)
		}
		s.Spec.LoadBalancerSourceRanges = append(s.Spec.LoadBalancerSourceRanges, "10.1.0.0/33")
		want := []errKey{ek(field.ErrorTypeInvalid, "spec.LoadBalancerSourceRanges[1]")}
		if got := ValidateServiceUpdate(s, old); !sameSet(want, got) {
			t.Errorf("got %v", got)
		}
	})
	t.Run("releasing a secondary clusterIP needs SingleStack", func(t *testing.T) {
		old := base()
		old.Spec.ClusterIPs = []string{"10.96.0.50", "fd00::50"}
		old.Spec.IPFamilies = []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}
		old.Spec.IPFamilyPolicy = ptr.To(v1.IPFamilyPolicyPreferDualStack)
		s := base()
		s.Spec.IPFamilyPolicy = ptr.To(v1.IPFamilyPolicyPreferDualStack)
		want := []errKey{ek(field.ErrorTypeInvalid, "spec.ipFamilyPolicy")}
		if got := ValidateServiceUpdate(s, old); !sameSet(want, got) {
			t.Errorf("got %v", got)
		}
		s.Spec.IPFamilyPolicy = ptr.To(v1.IPFamilyPolicySingleStack)
		if got := ValidateServiceUpdate(s, old); len(got) != 0 {
			t.Errorf("got %v", got)
		}
	})
	t.Run("primary clusterIP cannot be unset", func(t *testing.T) {
		s := base()
		s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil
		want := []errKey{ek(field.ErrorTypeInvalid, "spec.clusterIPs[0]")}
		if got := ValidateServiceUpdate(s, base()); !sameSet(want, got) {
			t.Errorf("got %v", got)
		}
	})
}

func TestValidateServiceStatusUpdate(t *testing.T) {
	lb := func() *v1.Service {
		s := base()
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		return s
	}
	vip := ptr.To(v1.LoadBalancerIPModeVIP)
	tests := []struct {
		name    string
		svc     func() *v1.Service
		ingress []v1.LoadBalancerIngress
		want    []errKey
	}{
		{"ip and hostname", lb, []v1.LoadBalancerIngress{{IP: "192.0.2.1", IPMode: vip}, {Hostname: "lb.example.com"}}, nil},
		{"proxy mode", lb, []v1.LoadBalancerIngress{{IP: "192.0.2.1", IPMode: ptr.To(v1.LoadBalancerIPModeProxy)}}, nil},
		{"not a LoadBalancer", base, []v1.LoadBalancerIngress{{IP: "192.0.2.1", IPMode: vip}},
			[]errKey{ek(field.ErrorTypeForbidden, "status.loadBalancer.ingress")}},
		{"bad ip", lb, []v1.LoadBalancerIngress{{IP: "192.0.2", IPMode: vip}},
			[]errKey{ek(field.ErrorTypeInvalid, "status.loadBalancer.ingress[0].ip")}},
		{"ipMode missing", lb, []v1.LoadBalancerIngress{{IP: "192.0.2.1"}},
			[]errKey{ek(field.ErrorTypeRequired, "status.loadBalancer.ingress[0].ipMode")}},
		{"ipMode without ip", lb, []v1.LoadBalancerIngress{{Hostname: "lb.example.com", IPMode: vip}},
			[]errKey{ek(field.ErrorTypeForbidden, "status.loadBalancer.ingress[0].ipMode")}},
		{"unknown ipMode", lb, []v1.LoadBalancerIngress{{IP: "192.0.2.1", IPMode: ptr.To[v1.LoadBalancerIPMode]("Direct")}},
			[]errKey{ek(field.ErrorTypeNotSupported, "status.loadBalancer.ingress[0].ipMode")}},
		{"hostname that is an IP", lb, []v1.LoadBalancerIngress{{Hostname: "192.0.2.1"}},
			[]errKey{ek(field.ErrorTypeInvalid, "status.loadBalancer.ingress[0].hostname")}},
		{"hostname not DNS", lb, []v1.LoadBalancerIngress{{Hostname: "LB_1"}},
			[]errKey{ek(field.ErrorTypeInvalid, "status.loadBalancer.ingress[0].hostname")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := tc.svc()
			s := tc.svc()
			s.Status.LoadBalancer.Ingress = tc.ingress
			if got := ValidateServiceStatusUpdate(s, old); !sameSet(tc.want, got) {
				t.Errorf("want %v, got %v", tc.want, got)
			}
		})
	}

	t.Run("stored ingress IP may stay", func(t *testing.T) {
		old := lb()
		old.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "not-an-ip", IPMode: vip}}
		s := old.DeepCopy()
		if got := ValidateServiceStatusUpdate(s, old); len(got) != 0 {
			t.Errorf("got %v", got)
		}
	})
}

func equalServices(a, b *v1.Service) bool {
	return a.String() == b.String()
}

func ek(t field.ErrorType, f string) errKey { return errKey{Type: t, Field: f} }
