package defaults

import (
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func port(p int32) v1.ServicePort { return v1.ServicePort{Port: p} }

// defaulted is what Service adds to every ClusterIP service, so that
// expectations only spell out what a case is about.
func defaulted(spec v1.ServiceSpec) v1.ServiceSpec {
	if spec.SessionAffinity == "" {
		spec.SessionAffinity = v1.ServiceAffinityNone
	}
	if spec.Type == "" {
		spec.Type = v1.ServiceTypeClusterIP
	}
	return spec
}

func TestService(t *testing.T) {
	cluster := ptr.To(v1.ServiceInternalTrafficPolicyCluster)
	local := ptr.To(v1.ServiceInternalTrafficPolicyLocal)
	tcp80 := v1.ServicePort{Port: 80, Protocol: v1.ProtocolTCP, TargetPort: intstr.FromInt32(80)}

	tests := []struct {
		name string
		in   v1.Service
		want v1.Service
	}{{
		name: "empty spec gets type, affinity and internal policy",
		in:   v1.Service{},
		want: v1.Service{Spec: defaulted(v1.ServiceSpec{InternalTrafficPolicy: cluster})},
	}, {
		name: "port protocol and target port",
		in:   v1.Service{Spec: v1.ServiceSpec{Ports: []v1.ServicePort{port(80)}}},
		want: v1.Service{Spec: defaulted(v1.ServiceSpec{Ports: []v1.ServicePort{tcp80}, InternalTrafficPolicy: cluster})},
	}, {
		name: "empty string target port is defaulted too",
		in:   v1.Service{Spec: v1.ServiceSpec{Ports: []v1.ServicePort{{Port: 53, Protocol: v1.ProtocolUDP, TargetPort: intstr.FromString("")}}}},
		want: v1.Service{Spec: defaulted(v1.ServiceSpec{
			Ports:                 []v1.ServicePort{{Port: 53, Protocol: v1.ProtocolUDP, TargetPort: intstr.FromInt32(53)}},
			InternalTrafficPolicy: cluster,
		})},
	}, {
		name: "explicit target port and protocol are kept",
		in:   v1.Service{Spec: v1.ServiceSpec{Ports: []v1.ServicePort{{Port: 80, Protocol: v1.ProtocolSCTP, TargetPort: intstr.FromString("web")}}}},
		want: v1.Service{Spec: defaulted(v1.ServiceSpec{
			Ports:                 []v1.ServicePort{{Port: 80, Protocol: v1.ProtocolSCTP, TargetPort: intstr.FromString("web")}},
			InternalTrafficPolicy: cluster,
		})},
	}, {
		name: "invalid port still copied to target port",
		in:   v1.Service{Spec: v1.ServiceSpec{Ports: []v1.ServicePort{port(-1)}}},
		want: v1.Service{Spec: defaulted(v1.ServiceSpec{
			Ports:                 []v1.ServicePort{{Port: -1, Protocol: v1.ProtocolTCP, TargetPort: intstr.FromInt32(-1)}},
			InternalTrafficPolicy: cluster,
		})},
	}, {
		name: "ClientIP affinity gets the default timeout",
		in:   v1.Service{Spec: v1.ServiceSpec{SessionAffinity: v1.ServiceAffinityClientIP}},
		want: v1.Service{Spec: defaulted(v1.ServiceSpec{
			SessionAffinity:       v1.ServiceAffinityClientIP,
			SessionAffinityConfig: &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](10800)}},
			InternalTrafficPolicy: cluster,
		})},
	}, {
		name: "ClientIP affinity with an empty clientIP config",
		in: v1.Service{Spec: v1.ServiceSpec{
			SessionAffinity:       v1.ServiceAffinityClientIP,
			SessionAffinityConfig: &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{}},
		}},
		want: v1.Service{Spec: defaulted(v1.ServiceSpec{
			SessionAffinity:       v1.ServiceAffinityClientIP,
			SessionAffinityConfig: &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](10800)}},
			InternalTrafficPolicy: cluster,
		})},
	}, {
		name: "ClientIP timeout set by the user is kept even when invalid",
		in: v1.Service{Spec: v1.ServiceSpec{
			SessionAffinity:       v1.ServiceAffinityClientIP,
			SessionAffinityConfig: &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](0)}},
		}},
		want: v1.Service{Spec: defaulted(v1.ServiceSpec{
			SessionAffinity:       v1.ServiceAffinityClientIP,
			SessionAffinityConfig: &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](0)}},
			InternalTrafficPolicy: cluster,
		})},
	}, {
		name: "None affinity drops the config",
		in: v1.Service{Spec: v1.ServiceSpec{
			SessionAffinityConfig: &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](5)}},
		}},
		want: v1.Service{Spec: defaulted(v1.ServiceSpec{InternalTrafficPolicy: cluster})},
	}, {
		name: "unknown affinity is left for validation",
		in: v1.Service{Spec: v1.ServiceSpec{
			SessionAffinity:       "Sticky",
			SessionAffinityConfig: &v1.SessionAffinityConfig{},
		}},
		want: v1.Service{Spec: defaulted(v1.ServiceSpec{
			SessionAffinity:       "Sticky",
			SessionAffinityConfig: &v1.SessionAffinityConfig{},
			InternalTrafficPolicy: cluster,
		})},
	}, {
		name: "NodePort gets external traffic policy",
		in:   v1.Service{Spec: v1.ServiceSpec{Type: v1.ServiceTypeNodePort}},
		want: v1.Service{Spec: defaulted(v1.ServiceSpec{
			Type:                  v1.ServiceTypeNodePort,
			ExternalTrafficPolicy: v1.ServiceExternalTrafficPolicyCluster,
			InternalTrafficPolicy: cluster,
		})},
	}, {
		name: "ClusterIP with externalIPs gets external traffic policy",
		in:   v1.Service{Spec: v1.ServiceSpec{ExternalIPs: []string{"192.0.2.1"}}},
		want: v1.Service{Spec: defaulted(v1.ServiceSpec{
			ExternalIPs:           []string{"192.0.2.1"},
			ExternalTrafficPolicy: v1.ServiceExternalTrafficPolicyCluster,
			InternalTrafficPolicy: cluster,
		})},
	}, {
		name: "explicit external traffic policy is kept",
		in:   v1.Service{Spec: v1.ServiceSpec{Type: v1.ServiceTypeNodePort, ExternalTrafficPolicy: v1.ServiceExternalTrafficPolicyLocal}},
		want: v1.Service{Spec: defaulted(v1.ServiceSpec{
			Type:                  v1.ServiceTypeNodePort,
			ExternalTrafficPolicy: v1.ServiceExternalTrafficPolicyLocal,
			InternalTrafficPolicy: cluster,
		})},
	}, {
		name: "ClusterIP without externalIPs gets no external traffic policy",
		in:   v1.Service{Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, InternalTrafficPolicy: local}},
		want: v1.Service{Spec: defaulted(v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, InternalTrafficPolicy: local})},
	}, {
		name: "LoadBalancer gets policy, node ports flag and ingress ipMode",
		in: v1.Service{
			Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer},
			Status: v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{
				{IP: "192.0.2.7"}, {Hostname: "lb.example.com"}, {IP: "192.0.2.8", IPMode: ptr.To(v1.LoadBalancerIPModeProxy)},
			}}},
		},
		want: v1.Service{
			Spec: defaulted(v1.ServiceSpec{
				Type:                          v1.ServiceTypeLoadBalancer,
				ExternalTrafficPolicy:         v1.ServiceExternalTrafficPolicyCluster,
				InternalTrafficPolicy:         cluster,
				AllocateLoadBalancerNodePorts: ptr.To(true),
			}),
			Status: v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{
				{IP: "192.0.2.7", IPMode: ptr.To(v1.LoadBalancerIPModeVIP)},
				{Hostname: "lb.example.com"},
				{IP: "192.0.2.8", IPMode: ptr.To(v1.LoadBalancerIPModeProxy)},
			}}},
		},
	}, {
		name: "LoadBalancer keeps allocateLoadBalancerNodePorts false",
		in:   v1.Service{Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, AllocateLoadBalancerNodePorts: ptr.To(false)}},
		want: v1.Service{Spec: defaulted(v1.ServiceSpec{
			Type:                          v1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy:         v1.ServiceExternalTrafficPolicyCluster,
			InternalTrafficPolicy:         cluster,
			AllocateLoadBalancerNodePorts: ptr.To(false),
		})},
	}, {
		name: "ingress ipMode is not defaulted for other types",
		in:   v1.Service{Status: v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: "192.0.2.7"}}}}},
		want: v1.Service{
			Spec:   defaulted(v1.ServiceSpec{InternalTrafficPolicy: cluster}),
			Status: v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: "192.0.2.7"}}}},
		},
	}, {
		name: "ExternalName gets no traffic policies",
		in:   v1.Service{Spec: v1.ServiceSpec{Type: v1.ServiceTypeExternalName, ExternalName: "db.example.com"}},
		want: v1.Service{Spec: defaulted(v1.ServiceSpec{Type: v1.ServiceTypeExternalName, ExternalName: "db.example.com"})},
	}, {
		name: "unknown type gets no traffic policies",
		in:   v1.Service{Spec: v1.ServiceSpec{Type: "Foo"}},
		want: v1.Service{Spec: defaulted(v1.ServiceSpec{Type: "Foo"})},
	}, {
		name: "clusterIP, IP families and names are left alone",
		in: v1.Service{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "web-"},
			Spec:       v1.ServiceSpec{ClusterIP: "10.96.0.10"},
		},
		want: v1.Service{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "web-"},
			Spec:       defaulted(v1.ServiceSpec{ClusterIP: "10.96.0.10", InternalTrafficPolicy: cluster}),
		},
	}}

	// Results must not depend on table order.
	rand.Shuffle(len(tests), func(i, j int) { tests[i], tests[j] = tests[j], tests[i] })
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in.DeepCopy()
			Service(got)
			if diff := cmp.Diff(&tc.want, got); diff != "" {
				t.Errorf("Service() mismatch (-want +got):\n%s", diff)
			}
			again := got.DeepCopy()
			Service(again)
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("Service() is not idempotent (-first +second):\n%s", diff)
			}
		})
	}
}

func withIPs(ip string, ips ...string) v1.ServiceSpec {
	return v1.ServiceSpec{ClusterIP: ip, ClusterIPs: ips}
}

func TestNormalizeClusterIPs(t *testing.T) {
	tests := []struct {
		name     string
		old, new v1.ServiceSpec
		noOld    bool
		want     []string
	}{
		{name: "create singular only", noOld: true, new: withIPs("10.96.0.5"), want: []string{"10.96.0.5"}},
		{name: "create None", noOld: true, new: withIPs("None"), want: []string{"None"}},
		{name: "create plural only is not back-filled", noOld: true, new: withIPs("", "10.96.0.5"), want: []string{"10.96.0.5"}},
		{name: "create both kept", noOld: true, new: withIPs("10.96.0.5", "10.96.0.6"), want: []string{"10.96.0.6"}},
		{name: "create neither", noOld: true, new: withIPs(""), want: nil},
		{name: "update omitted plural restored", old: withIPs("10.96.0.5", "10.96.0.5"), new: withIPs("10.96.0.5"), want: []string{"10.96.0.5"}},
		{name: "update singular changed, plural same", old: withIPs("10.96.0.5", "10.96.0.5"), new: withIPs("10.96.0.6", "10.96.0.5"), want: []string{"10.96.0.6"}},
		{name: "update singular changed, plural omitted", old: withIPs("10.96.0.5", "10.96.0.5"), new: withIPs("10.96.0.6"), want: nil},
		{name: "update both cleared", old: withIPs("10.96.0.5", "10.96.0.5"), new: withIPs(""), want: nil},
		{name: "update singular cleared, plural same", old: withIPs("10.96.0.5", "10.96.0.5"), new: withIPs("", "10.96.0.5"), want: nil},
		{name: "update singular cleared, plural changed", old: withIPs("10.96.0.5", "10.96.0.5"), new: withIPs("", "10.96.0.7"), want: []string{"10.96.0.7"}},
		{name: "update both changed", old: withIPs("10.96.0.5", "10.96.0.5"), new: withIPs("10.96.0.6", "10.96.0.7"), want: []string{"10.96.0.7"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			newSvc := &v1.Service{Spec: tc.new}
			var oldSvc *v1.Service
			if !tc.noOld {
				oldSvc = &v1.Service{Spec: tc.old}
			}
			NormalizeClusterIPs(newSvc, oldSvc)
			if diff := cmp.Diff(tc.want, newSvc.Spec.ClusterIPs); diff != "" {
				t.Errorf("clusterIPs mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPatchAllocatedValues(t *testing.T) {
	old := &v1.Service{Spec: v1.ServiceSpec{
		Type:                  v1.ServiceTypeLoadBalancer,
		ClusterIP:             "10.96.0.5",
		ClusterIPs:            []string{"10.96.0.5"},
		ExternalTrafficPolicy: v1.ServiceExternalTrafficPolicyLocal,
		HealthCheckNodePort:   30500,
		Ports: []v1.ServicePort{
			{Name: "http", Port: 80, NodePort: 30080},
			{Name: "https", Port: 443, NodePort: 30443},
		},
	}}
	newSvc := &v1.Service{Spec: v1.ServiceSpec{
		Type:                  v1.ServiceTypeLoadBalancer,
		ExternalTrafficPolicy: v1.ServiceExternalTrafficPolicyLocal,
		Ports: []v1.ServicePort{
			{Name: "http", Port: 8080},
			// 30080 is taken by this port, so "http" cannot get it back.
			{Name: "https", Port: 443, NodePort: 30080},
			{Name: "extra", Port: 9000},
		},
	}}
	PatchAllocatedValues(newSvc, old)
	want := v1.ServiceSpec{
		Type:                  v1.ServiceTypeLoadBalancer,
		ClusterIP:             "10.96.0.5",
		ClusterIPs:            []string{"10.96.0.5"},
		ExternalTrafficPolicy: v1.ServiceExternalTrafficPolicyLocal,
		HealthCheckNodePort:   30500,
		Ports: []v1.ServicePort{
			{Name: "http", Port: 8080},
			{Name: "https", Port: 443, NodePort: 30080},
			{Name: "extra", Port: 9000},
		},
	}
	if diff := cmp.Diff(want, newSvc.Spec); diff != "" {
		t.Errorf("PatchAllocatedValues mismatch (-want +got):\n%s", diff)
	}

	toExternal := &v1.Service{Spec: v1.ServiceSpec{Type: v1.ServiceTypeExternalName}}
	PatchAllocatedValues(toExternal, old)
	if toExternal.Spec.ClusterIP != "" || toExternal.Spec.HealthCheckNodePort != 0 {
		t.Errorf("values patched into a type that does not use them: %+v", toExternal.Spec)
	}
}

func TestDropTypeDependentFields(t *testing.T) {
	class := ptr.To("example.com/lb")
	singleStack := ptr.To(v1.IPFamilyPolicySingleStack)
	lb := func() *v1.Service {
		return &v1.Service{
			Spec: v1.ServiceSpec{
				Type:                          v1.ServiceTypeLoadBalancer,
				ClusterIP:                     "10.96.0.5",
				ClusterIPs:                    []string{"10.96.0.5"},
				IPFamilies:                    []v1.IPFamily{v1.IPv4Protocol},
				IPFamilyPolicy:                singleStack,
				ExternalTrafficPolicy:         v1.ServiceExternalTrafficPolicyLocal,
				HealthCheckNodePort:           30500,
				AllocateLoadBalancerNodePorts: ptr.To(true),
				LoadBalancerClass:             class,
				Ports:                         []v1.ServicePort{{Port: 80, NodePort: 30080}},
			},
			Status: v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: "192.0.2.1"}}}},
		}
	}

	t.Run("LoadBalancer to ClusterIP wipes untouched values", func(t *testing.T) {
		newSvc := lb()
		newSvc.Spec.Type = v1.ServiceTypeClusterIP
		DropTypeDependentFields(newSvc, lb())
		want := v1.ServiceSpec{
			Type:           v1.ServiceTypeClusterIP,
			ClusterIP:      "10.96.0.5",
			ClusterIPs:     []string{"10.96.0.5"},
			IPFamilies:     []v1.IPFamily{v1.IPv4Protocol},
			IPFamilyPolicy: singleStack,
			Ports:          []v1.ServicePort{{Port: 80}},
		}
		if diff := cmp.Diff(want, newSvc.Spec); diff != "" {
			t.Errorf("spec mismatch (-want +got):\n%s", diff)
		}
		if len(newSvc.Status.LoadBalancer.Ingress) != 0 {
			t.Errorf("load balancer status kept: %+v", newSvc.Status.LoadBalancer)
		}
	})

	t.Run("values the user changed are kept for validation to reject", func(t *testing.T) {
		newSvc := lb()
		newSvc.Spec.Type = v1.ServiceTypeClusterIP
		newSvc.Spec.Ports[0].NodePort = 30081
		newSvc.Spec.HealthCheckNodePort = 30501
		newSvc.Spec.AllocateLoadBalancerNodePorts = ptr.To(false)
		newSvc.Spec.LoadBalancerClass = ptr.To("example.com/other")
		newSvc.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
		want := newSvc.Spec.DeepCopy()
		DropTypeDependentFields(newSvc, lb())
		if diff := cmp.Diff(want, &newSvc.Spec); diff != "" {
			t.Errorf("spec mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("to ExternalName wipes allocated IP fields", func(t *testing.T) {
		newSvc := lb()
		newSvc.Spec.Type = v1.ServiceTypeExternalName
		DropTypeDependentFields(newSvc, lb())
		if newSvc.Spec.ClusterIP != "" || newSvc.Spec.ClusterIPs != nil || newSvc.Spec.IPFamilies != nil || newSvc.Spec.IPFamilyPolicy != nil {
			t.Errorf("IP fields kept: %+v", newSvc.Spec)
		}
	})

	t.Run("to ExternalName keeps a changed clusterIP", func(t *testing.T) {
		newSvc := lb()
		newSvc.Spec.Type = v1.ServiceTypeExternalName
		newSvc.Spec.ClusterIP = "10.96.0.6"
		newSvc.Spec.ClusterIPs = []string{"10.96.0.6"}
		DropTypeDependentFields(newSvc, lb())
		if newSvc.Spec.ClusterIP != "10.96.0.6" || newSvc.Spec.IPFamilies != nil {
			t.Errorf("unexpected spec: %+v", newSvc.Spec)
		}
	})

	t.Run("nil old is a create and changes nothing", func(t *testing.T) {
		newSvc := lb()
		newSvc.Spec.Type = v1.ServiceTypeClusterIP
		want := newSvc.DeepCopy()
		DropTypeDependentFields(newSvc, nil)
		if diff := cmp.Diff(want, newSvc); diff != "" {
			t.Errorf("mismatch (-want +got):\n%s", diff)
		}
	})
}
