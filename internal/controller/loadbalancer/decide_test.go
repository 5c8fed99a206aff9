package loadbalancer

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/svcnet/svcnet/internal/lbpool"
)

type svcOpt func(*corev1.Service)

// lbService returns the LoadBalancer Service default/web, IPv4 single-stack, without status.
func lbService(opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeLoadBalancer,
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports:      []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func ofType(t corev1.ServiceType) svcOpt { return func(s *corev1.Service) { s.Spec.Type = t } }

func class(c string) svcOpt { return func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To(c) } }

func families(f ...corev1.IPFamily) svcOpt { return func(s *corev1.Service) { s.Spec.IPFamilies = f } }

func specIP(ip string) svcOpt { return func(s *corev1.Service) { s.Spec.LoadBalancerIP = ip } }

func annotated(kv ...string) svcOpt {
	return func(s *corev1.Service) {
		s.Annotations = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func status(ing ...corev1.LoadBalancerIngress) svcOpt {
	return func(s *corev1.Service) { s.Status.LoadBalancer.Ingress = ing }
}

func ipIng(ip string) corev1.LoadBalancerIngress { return corev1.LoadBalancerIngress{IP: ip} }

func vip(ip string) corev1.LoadBalancerIngress {
	return corev1.LoadBalancerIngress{IP: ip, IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)}
}

func allocated(ip string) Decision {
	return Decision{IP: netip.MustParseAddr(ip), SetIngress: true, Ingress: []corev1.LoadBalancerIngress{vip(ip)},
		EventType: corev1.EventTypeNormal, Reason: ReasonIPAllocated, Message: `Assigned IP ["` + ip + `"]`}
}

// kept is an allocation the status already showed: nothing to report.
func kept(ip string) Decision {
	return Decision{IP: netip.MustParseAddr(ip), SetIngress: true, Ingress: []corev1.LoadBalancerIngress{vip(ip)}}
}

func failed(waiting bool, why string, ingress ...corev1.LoadBalancerIngress) Decision {
	return Decision{SetIngress: true, Ingress: ingress, EventType: corev1.EventTypeWarning, Reason: ReasonAllocationFailed,
		Message: `Failed to allocate IP for "default/web": ` + why, Waiting: waiting}
}

func ownedBy(kv ...string) map[netip.Addr]string {
	m := map[netip.Addr]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[netip.MustParseAddr(kv[i])] = kv[i+1]
	}
	return m
}

func TestDecide(t *testing.T) {
	const self, other = "default/web", "default/other"
	pool3 := "172.31.0.100-172.31.0.102"
	cases := []struct {
		name   string
		pool   string // pool3 when empty
		svc    *corev1.Service
		owners map[netip.Addr]string
		want   Decision
	}{
		// Allocation from the pool.
		{name: "new service gets the first address", svc: lbService(), want: allocated("172.31.0.100")},
		{name: "first free skips addresses of others", svc: lbService(),
			owners: ownedBy("172.31.0.100", other), want: allocated("172.31.0.101")},
		{name: "first free follows the pool's range order", pool: "10.9.0.7,172.31.0.100-172.31.0.102", svc: lbService(),
			want: allocated("10.9.0.7")},
		{name: "unset ipFamilies read as IPv4", svc: lbService(families()), want: allocated("172.31.0.100")},
		{name: "dual-stack gets one IPv4 address", svc: lbService(families(corev1.IPv6Protocol, corev1.IPv4Protocol)),
			want: allocated("172.31.0.100")},
		{name: "pool exhausted", svc: lbService(),
			owners: ownedBy("172.31.0.100", other, "172.31.0.101", other, "172.31.0.102", "default/third"),
			want:   failed(true, "no available IPs")},

		// Keeping what the status shows.
		{name: "keeps its address from status", svc: lbService(status(vip("172.31.0.102"))),
			owners: ownedBy("172.31.0.102", self), want: kept("172.31.0.102")},
		{name: "keeps a free address from status (restart)", svc: lbService(status(vip("172.31.0.102"))),
			want: kept("172.31.0.102")},
		{name: "status without ipMode is rewritten, not reported", svc: lbService(status(ipIng("172.31.0.101"))),
			want: kept("172.31.0.101")},
		{name: "status with ipMode Proxy is set back to VIP",
			svc:  lbService(status(corev1.LoadBalancerIngress{IP: "172.31.0.101", IPMode: ptr.To(corev1.LoadBalancerIPModeProxy)})),
			want: kept("172.31.0.101")},
		{name: "IPv4-mapped status address is kept in canonical form", svc: lbService(status(vip("::ffff:172.31.0.101"))),
			want: kept("172.31.0.101")},
		{name: "first usable of several status addresses", svc: lbService(status(vip("172.31.0.101"), vip("172.31.0.102"))),
			owners: ownedBy("172.31.0.101", other), want: kept("172.31.0.102")},
		{name: "status address held by another service is not kept", svc: lbService(status(vip("172.31.0.101"))),
			owners: ownedBy("172.31.0.101", other), want: allocated("172.31.0.100")},
		{name: "status address outside the pool is replaced", svc: lbService(status(vip("10.0.0.1"))),
			want: allocated("172.31.0.100")},
		{name: "hostname-only status is replaced", svc: lbService(status(corev1.LoadBalancerIngress{Hostname: "lb.example.com"})),
			want: allocated("172.31.0.100")},
		{name: "held address the status does not show yet", svc: lbService(),
			owners: ownedBy("172.31.0.102", self), want: allocated("172.31.0.102")},
		{name: "exhausted pool still keeps its own address", svc: lbService(status(vip("172.31.0.102"))),
			owners: ownedBy("172.31.0.100", other, "172.31.0.101", other, "172.31.0.102", self), want: kept("172.31.0.102")},

		// Requested addresses.
		{name: "spec.loadBalancerIP", svc: lbService(specIP("172.31.0.101")), want: allocated("172.31.0.101")},
		{name: "annotation", svc: lbService(annotated(AnnotationLoadBalancerIPs, "172.31.0.102")), want: allocated("172.31.0.102")},
		{name: "deprecated annotation", svc: lbService(annotated(DeprecatedAnnotationLoadBalancerIPs, " 172.31.0.102 ")),
			want: allocated("172.31.0.102")},
		{name: "current annotation wins over deprecated",
			svc:  lbService(annotated(AnnotationLoadBalancerIPs, "172.31.0.101", DeprecatedAnnotationLoadBalancerIPs, "172.31.0.102")),
			want: allocated("172.31.0.101")},
		{name: "empty annotation is no request", svc: lbService(annotated(AnnotationLoadBalancerIPs, ""), specIP("172.31.0.102")),
			want: allocated("172.31.0.102")},
		{name: "request held by itself", svc: lbService(specIP("172.31.0.101"), status(vip("172.31.0.101"))),
			owners: ownedBy("172.31.0.101", self), want: kept("172.31.0.101")},
		{name: "request beats the status address", svc: lbService(specIP("172.31.0.102"), status(vip("172.31.0.100"))),
			owners: ownedBy("172.31.0.100", self), want: allocated("172.31.0.102")},
		{name: "request held by another service", svc: lbService(specIP("172.31.0.101")),
			owners: ownedBy("172.31.0.101", other),
			want:   failed(true, `["172.31.0.101"] is already in use by default/other`)},
		{name: "request outside the pool", svc: lbService(specIP("10.0.0.5")),
			want: failed(false, `["10.0.0.5"] is not allowed in config`)},
		{name: "failed request takes back the address shown",
			svc:    lbService(specIP("10.0.0.5"), status(vip("172.31.0.100"), corev1.LoadBalancerIngress{Hostname: "keep.example.com"})),
			owners: ownedBy("172.31.0.100", self),
			want:   failed(false, `["10.0.0.5"] is not allowed in config`, corev1.LoadBalancerIngress{Hostname: "keep.example.com"})},
		{name: "two annotated addresses", svc: lbService(annotated(AnnotationLoadBalancerIPs, "172.31.0.100,172.31.0.101")),
			want: failed(false, `["172.31.0.100" "172.31.0.101"]: only one IPv4 address can be requested`)},
		{name: "dual-stack annotation", svc: lbService(annotated(AnnotationLoadBalancerIPs, "172.31.0.100, fd00::1")),
			want: failed(false, `["172.31.0.100" "fd00::1"]: only one IPv4 address can be requested`)},
		{name: "IPv6 annotation", svc: lbService(annotated(AnnotationLoadBalancerIPs, "fd00::1")),
			want: failed(false, `["fd00::1"]: only IPv4 addresses can be allocated`)},
		{name: "IPv6 spec.loadBalancerIP", svc: lbService(specIP("fd00::1")),
			want: failed(false, `["fd00::1"]: only IPv4 addresses can be allocated`)},
		{name: "malformed annotation", svc: lbService(annotated(DeprecatedAnnotationLoadBalancerIPs, "172.31.0.300")),
			want: failed(false, `invalid metallb.universe.tf/loadBalancerIPs: "172.31.0.300"`)},
		{name: "malformed spec.loadBalancerIP", svc: lbService(specIP("nope")),
			want: failed(false, `invalid spec.loadBalancerIP "nope"`)},
		{name: "annotation and spec.loadBalancerIP together",
			svc:  lbService(annotated(AnnotationLoadBalancerIPs, "172.31.0.101"), specIP("172.31.0.101")),
			want: failed(false, "service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP")},

		// IPv6-only.
		{name: "IPv6-only", svc: lbService(families(corev1.IPv6Protocol)),
			want: failed(false, "the Service is IPv6-only (spec.ipFamilies [IPv6]) and the address pool has only IPv4 addresses")},
		{name: "IPv6-only loses a pool address", svc: lbService(families(corev1.IPv6Protocol), status(vip("172.31.0.100"))),
			owners: ownedBy("172.31.0.100", self),
			want:   failed(false, "the Service is IPv6-only (spec.ipFamilies [IPv6]) and the address pool has only IPv4 addresses")},

		// Services that are not ours.
		{name: "ClusterIP without status", svc: lbService(ofType(corev1.ServiceTypeClusterIP)), want: Decision{SetIngress: true}},
		{name: "type changed away loses pool addresses only",
			svc:    lbService(ofType(corev1.ServiceTypeNodePort), status(vip("172.31.0.100"), vip("192.0.2.1"))),
			owners: ownedBy("172.31.0.100", self),
			want:   Decision{SetIngress: true, Ingress: []corev1.LoadBalancerIngress{vip("192.0.2.1")}}},
		{name: "type changed away while we were down", svc: lbService(ofType(corev1.ServiceTypeClusterIP), status(vip("172.31.0.100"))),
			want: Decision{SetIngress: true}},
		{name: "class set: status left alone", svc: lbService(class("example.com/lb"), status(vip("172.31.0.100"))),
			want: Decision{}},
		{name: "class set: requests ignored", svc: lbService(class("example.com/lb"), specIP("10.0.0.5")),
			want: Decision{}},
		{name: "class set after we gave an address", svc: lbService(class("example.com/lb"), status(vip("172.31.0.100"))),
			owners: ownedBy("172.31.0.100", self), want: Decision{SetIngress: true}},
	}
	rand.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.pool
			if spec == "" {
				spec = pool3
			}
			pool, err := lbpool.Parse(spec)
			if err != nil {
				t.Fatal(err)
			}
			owners := tc.owners
			if owners == nil {
				owners = map[netip.Addr]string{}
			}
			before := tc.svc.DeepCopy()
			got := Decide(tc.svc, owners, pool)
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tc.svc); diff != "" {
				t.Errorf("Decide modified the Service:\n%s", diff)
			}
		})
	}
}
