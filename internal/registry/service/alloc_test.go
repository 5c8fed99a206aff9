package service

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
)

var (
	v4, v6       = corev1.IPv4Protocol, corev1.IPv6Protocol
	singleStack  = corev1.IPFamilyPolicySingleStack
	preferDual   = corev1.IPFamilyPolicyPreferDualStack
	requireDual  = corev1.IPFamilyPolicyRequireDualStack
	someSelector = func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "x"} }
	headless     = withIP(corev1.ClusterIPNone)
	withPolicy   = func(p corev1.IPFamilyPolicy) func(*corev1.Service) {
		return func(s *corev1.Service) { s.Spec.IPFamilyPolicy = ptr.To(p) }
	}
	withFamilies = func(f ...corev1.IPFamily) func(*corev1.Service) {
		return func(s *corev1.Service) { s.Spec.IPFamilies = f }
	}
	withClusterIP = func(ip string, ips ...string) func(*corev1.Service) {
		return func(s *corev1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = ip, ips }
	}
)

func TestInitIPFamilies(t *testing.T) {
	cases := []struct {
		name         string
		svc          corev1.Service
		old          *corev1.Service
		wantPolicy   *corev1.IPFamilyPolicy // nil: left unset
		wantFamilies []corev1.IPFamily
		// wantErrs are the fields of the 422's causes, each with a piece of its message.
		wantErrs []string
	}{
		{name: "ClusterIP defaults to single-stack IPv4", svc: svc("a"), wantPolicy: &singleStack, wantFamilies: []corev1.IPFamily{v4}},
		{name: "LoadBalancer defaults to single-stack IPv4", svc: svc("a", withType(corev1.ServiceTypeLoadBalancer)), wantPolicy: &singleStack, wantFamilies: []corev1.IPFamily{v4}},
		{name: "family inferred from the cluster IP", svc: svc("a", withIP("10.96.0.10")), wantPolicy: &singleStack, wantFamilies: []corev1.IPFamily{v4}},
		{name: "ExternalName is left alone", svc: svc("a", withType(corev1.ServiceTypeExternalName), withFamilies(v6)), wantFamilies: []corev1.IPFamily{v6}},
		{name: "PreferDualStack stays single IPv4 here", svc: svc("a", withPolicy(preferDual)), wantPolicy: &preferDual, wantFamilies: []corev1.IPFamily{v4}},
		{name: "explicit single-stack IPv4", svc: svc("a", withPolicy(singleStack), withFamilies(v4)), wantPolicy: &singleStack, wantFamilies: []corev1.IPFamily{v4}},
		{name: "headless with selector is single-stack", svc: svc("a", headless, someSelector), wantPolicy: &singleStack, wantFamilies: []corev1.IPFamily{v4}},
		{name: "headless selectorless defaults to both families", svc: svc("a", headless), wantPolicy: &requireDual, wantFamilies: []corev1.IPFamily{v4, v6}},
		{name: "headless selectorless IPv6 first", svc: svc("a", headless, withFamilies(v6)), wantPolicy: &requireDual, wantFamilies: []corev1.IPFamily{v6, v4}},
		{name: "headless selectorless PreferDualStack", svc: svc("a", headless, withPolicy(preferDual)), wantPolicy: &preferDual, wantFamilies: []corev1.IPFamily{v4, v6}},
		{name: "headless selectorless SingleStack", svc: svc("a", headless, withPolicy(singleStack)), wantPolicy: &singleStack, wantFamilies: []corev1.IPFamily{v4}},
		{name: "headless selectorless both families", svc: svc("a", headless, withFamilies(v4, v6), withPolicy(requireDual)), wantPolicy: &requireDual, wantFamilies: []corev1.IPFamily{v4, v6}},
		{
			name: "update keeps the old policy", svc: svc("a", withIP("10.96.0.10"), withFamilies(v4)),
			old:        ptr.To(svc("a", withIP("10.96.0.10"), withFamilies(v4), withPolicy(preferDual))),
			wantPolicy: &preferDual, wantFamilies: []corev1.IPFamily{v4},
		},
		{
			name: "update may drop a family with SingleStack", svc: svc("a", headless, withFamilies(v4), withPolicy(singleStack)),
			old:        ptr.To(svc("a", headless, withFamilies(v4, v6), withPolicy(requireDual))),
			wantPolicy: &singleStack, wantFamilies: []corev1.IPFamily{v4},
		},
		{
			name: "update may not drop a family without SingleStack", svc: svc("a", headless, withFamilies(v4), withPolicy(requireDual)),
			old:      ptr.To(svc("a", headless, withFamilies(v4, v6), withPolicy(requireDual))),
			wantErrs: []string{"spec.ipFamilyPolicy: must be 'SingleStack' to release the secondary IP family"},
		},
		{name: "RequireDualStack is refused", svc: svc("a", withPolicy(requireDual)), wantErrs: []string{"spec.ipFamilyPolicy: this cluster is not configured for dual-stack services"}},
		{name: "IPv6 family is refused", svc: svc("a", withFamilies(v6)), wantErrs: []string{"spec.ipFamilies[0]: not configured on this cluster"}},
		{
			name: "IPv6 cluster IP is refused", svc: svc("a", withIP("fd00::10")),
			wantErrs: []string{"spec.clusterIPs[0]: IPv6 is not configured on this cluster"},
		},
		{
			name: "SingleStack with two families", svc: svc("a", withPolicy(singleStack), withFamilies(v4, v6)),
			wantErrs: []string{
				"spec.ipFamilyPolicy: must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
			},
		},
		{
			name: "SingleStack with two cluster IPs", svc: svc("a", withPolicy(singleStack), withClusterIP("10.96.0.10", "10.96.0.10", "fd00::10")),
			wantErrs: []string{
				"spec.ipFamilyPolicy: must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
				"spec.clusterIPs[1]: IPv6 is not configured on this cluster",
			},
		},
		{name: "clusterIP without clusterIPs fails validation first", svc: svc("a", withClusterIP("10.96.0.10")), wantErrs: []string{"spec.clusterIPs: Required"}},
		{name: "unknown family fails validation first", svc: svc("a", withFamilies("IPv5")), wantErrs: []string{"spec.ipFamilies[0]: Unsupported value"}},
	}
	rand.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.svc.DeepCopy()
			err := initIPFamilies(s, c.old)
			if len(c.wantErrs) > 0 {
				checkInvalid(t, err, c.wantErrs)
				return
			}
			if err != nil {
				t.Fatalf("initIPFamilies: %v", err)
			}
			if diff := cmp.Diff(c.wantPolicy, s.Spec.IPFamilyPolicy); diff != "" {
				t.Errorf("ipFamilyPolicy (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(c.wantFamilies, s.Spec.IPFamilies); diff != "" {
				t.Errorf("ipFamilies (-want +got):\n%s", diff)
			}
			// Filling is idempotent: a second run on the result changes nothing.
			again := s.DeepCopy()
			if err := initIPFamilies(again, c.old); err != nil {
				t.Fatalf("second initIPFamilies: %v", err)
			}
			if diff := cmp.Diff(s, again); diff != "" {
				t.Errorf("second run changed the service (-first +second):\n%s", diff)
			}
		})
	}
}

// checkInvalid requires a 422 whose causes are exactly want, each "field: message fragment".
func checkInvalid(t *testing.T, err error, want []string) {
	t.Helper()
	var se *apierrors.StatusError
	if !errors.As(err, &se) || !apierrors.IsInvalid(err) {
		t.Fatalf("error = %v, want a 422 Invalid", err)
	}
	causes := se.ErrStatus.Details.Causes
	if len(causes) != len(want) {
		t.Fatalf("causes = %+v, want %d: %q", causes, len(want), want)
	}
	for i, w := range want {
		f, msg, _ := strings.Cut(w, ": ")
		if causes[i].Field != f || !strings.Contains(causes[i].Message, msg) {
			t.Errorf("cause %d = %s: %q, want %s: ...%s...", i, causes[i].Field, causes[i].Message, f, msg)
		}
	}
}

func TestRequestedNodePort(t *testing.T) {
	p := func(port, nodePort int32, proto corev1.Protocol) corev1.ServicePort {
		return corev1.ServicePort{Port: port, NodePort: nodePort, Protocol: proto}
	}
	cases := []struct {
		name  string
		port  int32
		ports []corev1.ServicePort
		want  int32
	}{
		{"none", 80, nil, 0},
		{"only port", 80, []corev1.ServicePort{p(80, 30080, "TCP")}, 30080},
		{"unset", 80, []corev1.ServicePort{p(80, 0, "TCP")}, 0},
		{"later protocol of the same port names it", 53, []corev1.ServicePort{p(53, 0, "UDP"), p(53, 30053, "TCP")}, 30053},
		{"first of two wins", 53, []corev1.ServicePort{p(53, 30054, "UDP"), p(53, 30053, "TCP")}, 30054},
		{"other port numbers do not count", 80, []corev1.ServicePort{p(443, 30443, "TCP"), p(80, 0, "TCP"), p(8080, 30080, "TCP")}, 0},
		{"skips other ports", 80, []corev1.ServicePort{p(443, 30443, "TCP"), p(80, 30080, "TCP")}, 30080},
	}
	rand.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
	for _, c := range cases {
		if got := requestedNodePort(c.port, c.ports); got != c.want {
			t.Errorf("%s: requestedNodePort(%d) = %d, want %d", c.name, c.port, got, c.want)
		}
	}
}

func TestHoldings(t *testing.T) {
	a := testAllocators(t)
	cases := []struct {
		name  string
		svc   corev1.Service
		ip    string // "" for none
		ports []int
	}{
		{name: "nothing allocated", svc: svc("a")},
		{name: "cluster IP", svc: svc("a", withIP("10.96.0.10")), ip: "10.96.0.10"},
		{name: "headless", svc: svc("a", headless)},
		{name: "ExternalName with a stale clusterIP", svc: svc("a", withType(corev1.ServiceTypeExternalName), withIP("10.96.0.10"))},
		{name: "unparseable cluster IP", svc: svc("a", withIP("10.96.0.300"))},
		{
			name: "NodePort ports in order, unset ones skipped",
			svc:  svc("a", withIP("10.96.0.10"), withType(corev1.ServiceTypeNodePort), withPort(80, 30080, "TCP"), withPort(81, 0, "TCP"), withPort(82, 30082, "TCP")),
			ip:   "10.96.0.10", ports: []int{30080, 30082},
		},
		{
			name: "shared nodePort listed per port",
			svc:  svc("a", withIP("10.96.0.10"), withType(corev1.ServiceTypeNodePort), withPort(53, 30053, "UDP"), withPort(53, 30053, "TCP")),
			ip:   "10.96.0.10", ports: []int{30053, 30053},
		},
		{
			name: "healthCheckNodePort last",
			svc:  svc("a", withIP("10.96.0.10"), withPort(80, 30080, "TCP"), withHC(30500)),
			ip:   "10.96.0.10", ports: []int{30080, 30500},
		},
		{
			name: "values outside the ranges are still held (PlanRepair filters them)",
			svc:  svc("a", withIP("192.168.0.1"), withType(corev1.ServiceTypeNodePort), withPort(80, 80, "TCP")),
			ip:   "192.168.0.1", ports: []int{80},
		},
	}
	rand.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
	for _, c := range cases {
		h := a.holdings(&c.svc)
		var want netip.Addr
		if c.ip != "" {
			want = netip.MustParseAddr(c.ip)
		}
		if h.ip != want {
			t.Errorf("%s: ip = %v, want %v", c.name, h.ip, want)
		}
		if !slices.Equal(h.ports, c.ports) {
			t.Errorf("%s: ports = %v, want %v", c.name, h.ports, c.ports)
		}
	}
}
