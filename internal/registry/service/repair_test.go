package service

import (
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svcnet/svcnet/internal/allocator"
)

// testAllocators has the default ranges (10.96.0.0/12, 30000-32767) and no etcd: PlanRepair is pure.
func testAllocators(t *testing.T) *Allocators {
	t.Helper()
	codec, err := allocator.NewIPCodec("10.96.0.0/12")
	if err != nil {
		t.Fatal(err)
	}
	return &Allocators{IPCodec: codec, PortBase: 30000, PortSize: 2768}
}

// svc builds a Service "ns/name"; the options shape it.
func svc(name string, opts ...func(*corev1.Service)) corev1.Service {
	s := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP},
	}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func withIP(ip string) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = ip, []string{ip} }
}

func withType(t corev1.ServiceType) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.Type = t }
}

// withPort adds a port; nodePort 0 means none.
func withPort(port, nodePort int32, proto corev1.Protocol) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Port: port, NodePort: nodePort, Protocol: proto})
	}
}

func withHC(port int32) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		s.Spec.HealthCheckNodePort = port
	}
}

func ipv(off int) Value { return Value{"ip", off} }
func portv(p int) Value { return Value{"port", p - 30000} }

// ip is the offset of an address of 10.96.0.0/12 (offset 0 is 10.96.0.1).
func ip(addr string) int {
	off, ok := defaultCodec.Offset(addr)
	if !ok {
		panic(addr + " is not allocatable in 10.96.0.0/12")
	}
	return off
}

var defaultCodec = func() *allocator.IPCodec {
	c, err := allocator.NewIPCodec("10.96.0.0/12")
	if err != nil {
		panic(err)
	}
	return c
}()

type repairCase struct {
	name     string
	services []corev1.Service
	ips      map[int]string // offset -> owner
	ports    map[int]string // port number (not offset) -> owner
	prev     map[Value]string
	want     RepairPlan
}

func repairCases() []repairCase {
	return []repairCase{
		{
			name: "nothing at all",
		},
		{
			name: "consistent state",
			services: []corev1.Service{
				svc("a", withIP("10.96.0.10")),
				svc("b", withIP("10.96.0.11"), withType(corev1.ServiceTypeNodePort), withPort(80, 30080, corev1.ProtocolTCP), withPort(443, 30443, corev1.ProtocolTCP)),
				svc("lb", withIP("10.111.255.254"), withPort(80, 32767, corev1.ProtocolTCP), withHC(30000)),
				svc("headless", withIP(corev1.ClusterIPNone)),
			},
			ips:   map[int]string{ip("10.96.0.10"): "ns/a", ip("10.96.0.11"): "ns/b", ip("10.111.255.254"): "ns/lb"},
			ports: map[int]string{30080: "ns/b", 30443: "ns/b", 32767: "ns/lb", 30000: "ns/lb"},
			// Suspects from a previous pass that are now held or gone change nothing.
			prev: map[Value]string{ipv(ip("10.96.0.10")): "ns/a", portv(30001): "ns/gone"},
		},
		{
			name:     "missing cluster IP record is re-recorded",
			services: []corev1.Service{svc("a", withIP("10.96.0.10")), svc("b", withIP("10.96.0.11"))},
			ips:      map[int]string{ip("10.96.0.11"): "ns/b"},
			want:     RepairPlan{Reserve: map[Value]string{ipv(ip("10.96.0.10")): "ns/a"}},
		},
		{
			name: "missing nodePort and healthCheckNodePort records are re-recorded",
			services: []corev1.Service{
				svc("lb", withIP("10.96.0.20"), withPort(80, 30080, corev1.ProtocolTCP), withPort(81, 30081, corev1.ProtocolTCP), withHC(31000)),
			},
			ips:   map[int]string{ip("10.96.0.20"): "ns/lb"},
			ports: map[int]string{30081: "ns/lb"},
			want:  RepairPlan{Reserve: map[Value]string{portv(30080): "ns/lb", portv(31000): "ns/lb"}},
		},
		{
			name:     "record of another owner is rewritten, not released",
			services: []corev1.Service{svc("a", withIP("10.96.0.10"), withType(corev1.ServiceTypeNodePort), withPort(80, 30080, corev1.ProtocolTCP))},
			ips:      map[int]string{ip("10.96.0.10"): "ns/old"},
			ports:    map[int]string{30080: "other/x"},
			prev:     map[Value]string{ipv(ip("10.96.0.10")): "ns/old"},
			want:     RepairPlan{Reserve: map[Value]string{ipv(ip("10.96.0.10")): "ns/a", portv(30080): "ns/a"}},
		},
		{
			name:  "leak seen for the first time is only suspected",
			ips:   map[int]string{ip("10.96.0.10"): "ns/crashed"},
			ports: map[int]string{30080: "ns/crashed"},
			want:  RepairPlan{Suspects: map[Value]string{ipv(ip("10.96.0.10")): "ns/crashed", portv(30080): "ns/crashed"}},
		},
		{
			name:  "leak seen in two passes with the same owner is released",
			ips:   map[int]string{ip("10.96.0.10"): "ns/crashed"},
			ports: map[int]string{30080: "ns/crashed", 30081: "ns/new"},
			prev:  map[Value]string{ipv(ip("10.96.0.10")): "ns/crashed", portv(30080): "ns/crashed"},
			want: RepairPlan{
				Release:  map[Value]string{ipv(ip("10.96.0.10")): "ns/crashed", portv(30080): "ns/crashed"},
				Suspects: map[Value]string{ipv(ip("10.96.0.10")): "ns/crashed", portv(30080): "ns/crashed", portv(30081): "ns/new"},
			},
		},
		{
			name:  "leak re-owned between passes is not released",
			ips:   map[int]string{ip("10.96.0.10"): "ns/new"},
			prev:  map[Value]string{ipv(ip("10.96.0.10")): "ns/old"},
			want:  RepairPlan{Suspects: map[Value]string{ipv(ip("10.96.0.10")): "ns/new"}},
			ports: map[int]string{},
		},
		{
			name:     "suspect whose service got stored is not released",
			services: []corev1.Service{svc("slow", withIP("10.96.0.10"))},
			ips:      map[int]string{ip("10.96.0.10"): "ns/slow"},
			prev:     map[Value]string{ipv(ip("10.96.0.10")): "ns/slow"},
		},
		{
			name: "an ip and a port at the same offset are different values",
			ips:  map[int]string{80: "ns/a"},
			prev: map[Value]string{portv(30080): "ns/a"},
			want: RepairPlan{Suspects: map[Value]string{ipv(80): "ns/a"}},
		},
		{
			name: "record with an empty owner is not released on first sight",
			ips:  map[int]string{ip("10.96.0.10"): ""},
			want: RepairPlan{Suspects: map[Value]string{ipv(ip("10.96.0.10")): ""}},
		},
		{
			name: "record with an empty owner is released on the second pass",
			ips:  map[int]string{ip("10.96.0.10"): ""},
			prev: map[Value]string{ipv(ip("10.96.0.10")): ""},
			want: RepairPlan{
				Release:  map[Value]string{ipv(ip("10.96.0.10")): ""},
				Suspects: map[Value]string{ipv(ip("10.96.0.10")): ""},
			},
		},
		{
			name:     "two services holding one IP conflict; the recorded holder keeps it",
			services: []corev1.Service{svc("b", withIP("10.96.0.10")), svc("a", withIP("10.96.0.10"))},
			ips:      map[int]string{ip("10.96.0.10"): "ns/b"},
			want:     RepairPlan{Conflicts: []string{"ns/a and ns/b"}},
		},
		{
			name:     "two services holding one unrecorded IP conflict; the first by name gets the record",
			services: []corev1.Service{svc("b", withIP("10.96.0.10")), svc("a", withIP("10.96.0.10"))},
			want: RepairPlan{
				Conflicts: []string{"ns/a and ns/b"},
				Reserve:   map[Value]string{ipv(ip("10.96.0.10")): "ns/a"},
			},
		},
		{
			name:     "conflict recorded for a third owner is rewritten to the first holder",
			services: []corev1.Service{svc("b", withIP("10.96.0.10")), svc("a", withIP("10.96.0.10"))},
			ips:      map[int]string{ip("10.96.0.10"): "ns/z"},
			want: RepairPlan{
				Conflicts: []string{"ns/a and ns/b"},
				Reserve:   map[Value]string{ipv(ip("10.96.0.10")): "ns/a"},
			},
		},
		{
			name: "three holders of one nodePort and two of another",
			services: []corev1.Service{
				svc("c", withIP("10.96.0.3"), withType(corev1.ServiceTypeNodePort), withPort(80, 30080, corev1.ProtocolTCP)),
				svc("a", withIP("10.96.0.1"), withType(corev1.ServiceTypeNodePort), withPort(80, 30080, corev1.ProtocolTCP), withPort(81, 30081, corev1.ProtocolTCP)),
				svc("b", withIP("10.96.0.2"), withType(corev1.ServiceTypeNodePort), withPort(80, 30080, corev1.ProtocolTCP)),
				svc("d", withIP("10.96.0.4"), withHC(30081)),
			},
			ips:   map[int]string{ip("10.96.0.1"): "ns/a", ip("10.96.0.2"): "ns/b", ip("10.96.0.3"): "ns/c", ip("10.96.0.4"): "ns/d"},
			ports: map[int]string{30080: "ns/c", 30081: "ns/d"},
			want:  RepairPlan{Conflicts: []string{"ns/a and ns/b and ns/c", "ns/a and ns/d"}},
		},
		{
			name: "one nodePort for two protocols of a port is not a conflict",
			services: []corev1.Service{
				svc("dns", withIP("10.96.0.10"), withType(corev1.ServiceTypeNodePort), withPort(53, 30053, corev1.ProtocolUDP), withPort(53, 30053, corev1.ProtocolTCP)),
			},
			ips:  map[int]string{ip("10.96.0.10"): "ns/dns"},
			want: RepairPlan{Reserve: map[Value]string{portv(30053): "ns/dns"}},
		},
		{
			name: "a LoadBalancer's healthCheckNodePort is held like a nodePort",
			services: []corev1.Service{
				svc("lb", withIP("10.96.0.20"), withPort(80, 30080, corev1.ProtocolTCP), withHC(30999)),
			},
			ips:   map[int]string{ip("10.96.0.20"): "ns/lb"},
			ports: map[int]string{30080: "ns/lb", 30999: "ns/other"},
			want:  RepairPlan{Reserve: map[Value]string{portv(30999): "ns/lb"}},
		},
		{
			name: "headless and ExternalName services hold no IP",
			services: []corev1.Service{
				svc("headless", withIP(corev1.ClusterIPNone)),
				svc("ext", withType(corev1.ServiceTypeExternalName), withIP("10.96.0.11")),
			},
			ips:  map[int]string{ip("10.96.0.10"): "ns/headless", ip("10.96.0.11"): "ns/ext"},
			prev: map[Value]string{ipv(ip("10.96.0.11")): "ns/ext"},
			want: RepairPlan{
				Release:  map[Value]string{ipv(ip("10.96.0.11")): "ns/ext"},
				Suspects: map[Value]string{ipv(ip("10.96.0.10")): "ns/headless", ipv(ip("10.96.0.11")): "ns/ext"},
			},
		},
		{
			name: "values outside the ranges are left alone",
			services: []corev1.Service{
				svc("out", withIP("192.168.0.10"), withType(corev1.ServiceTypeNodePort), withPort(80, 29999, corev1.ProtocolTCP), withPort(81, 32768, corev1.ProtocolTCP)),
				svc("net", withIP("10.96.0.0")),
				svc("bcast", withIP("10.111.255.255")),
				svc("garbage", withIP("not-an-ip")),
			},
		},
		{
			name: "ports without a nodePort hold nothing",
			services: []corev1.Service{
				svc("a", withIP("10.96.0.10"), withPort(80, 0, corev1.ProtocolTCP)),
			},
			ips: map[int]string{ip("10.96.0.10"): "ns/a"},
		},
	}
}

// records returns fresh copies of a case's records, with port numbers turned into offsets.
func (c repairCase) records() (ips, ports map[int]string) {
	ips = maps.Clone(c.ips)
	ports = map[int]string{}
	for p, who := range c.ports {
		ports[p-30000] = who
	}
	return ips, ports
}

var emptyEqual = cmpopts.EquateEmpty()

func TestPlanRepair(t *testing.T) {
	a := testAllocators(t)
	cases := repairCases()
	rand.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ips, ports := c.records()
			services := cloneServices(c.services)
			prev := maps.Clone(c.prev)
			got := a.PlanRepair(services, ips, ports, prev)
			if diff := cmp.Diff(c.want, got, emptyEqual); diff != "" {
				t.Fatalf("plan (-want +got):\n%s", diff)
			}
			// The inputs are not modified.
			wantIPs, wantPorts := c.records()
			if diff := cmp.Diff(c.services, services, emptyEqual); diff != "" {
				t.Errorf("services modified (-before +after):\n%s", diff)
			}
			if !maps.Equal(ips, wantIPs) || !maps.Equal(ports, wantPorts) || !maps.Equal(prev, c.prev) {
				t.Errorf("record or suspect maps modified")
			}
			// A plan applied gives a state the next pass leaves alone: every holder recorded, nothing to
			// reserve; only values still leaked remain, and they are released on that pass.
			next := a.PlanRepair(services, apply(ips, got, "ip"), apply(ports, got, "port"), got.Suspects)
			if len(next.Reserve) != 0 {
				t.Errorf("second pass still reserves %v", next.Reserve)
			}
			if !maps.Equal(next.Release, next.Suspects) {
				t.Errorf("second pass: leaks %v are not all released (%v)", next.Suspects, next.Release)
			}
		})
	}
}

// apply returns the records of one kind after a plan ran.
func apply(records map[int]string, p RepairPlan, kind string) map[int]string {
	out := maps.Clone(records)
	if out == nil {
		out = map[int]string{}
	}
	for v, who := range p.Reserve {
		if v.Kind == kind {
			out[v.Offset] = who
		}
	}
	for v, who := range p.Release {
		if v.Kind == kind && out[v.Offset] == who {
			delete(out, v.Offset)
		}
	}
	return out
}

func cloneServices(in []corev1.Service) []corev1.Service {
	if in == nil {
		return nil
	}
	out := make([]corev1.Service, len(in))
	for i := range in {
		in[i].DeepCopyInto(&out[i])
	}
	return out
}

func TestPlanRepairDoesNotDependOnOrder(t *testing.T) {
	// Maps iterate in a different order on every call and the list of Services may come in any
	// order: the plan must be the same every time.
	a := testAllocators(t)
	for _, c := range repairCases() {
		t.Run(c.name, func(t *testing.T) {
			ips, ports := c.records()
			first := a.PlanRepair(c.services, ips, ports, c.prev)
			for range 50 {
				services := cloneServices(c.services)
				rand.Shuffle(len(services), func(i, j int) { services[i], services[j] = services[j], services[i] })
				ips, ports := c.records()
				got := a.PlanRepair(services, ips, ports, maps.Clone(c.prev))
				if diff := cmp.Diff(first, got, emptyEqual); diff != "" {
					t.Fatalf("plan changed with the order of inputs (-first +now):\n%s", diff)
				}
			}
		})
	}
}

func TestPlanRepairManyServices(t *testing.T) {
	// A larger consistent state with one drift of each kind, to exercise maps past their small sizes.
	a := testAllocators(t)
	var services []corev1.Service
	ips, ports := map[int]string{}, map[int]string{}
	for i := range 500 {
		name := "s" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		s := svc(name, withIP(a.IPCodec.Addr(i).String()), withType(corev1.ServiceTypeNodePort), withPort(80, int32(30000+i), corev1.ProtocolTCP))
		services = append(services, s)
		ips[i] = "ns/" + name
		ports[i] = "ns/" + name
	}
	delete(ips, 7)         // lost record
	ports[1000] = "ns/old" // leak
	ports[3] = "ns/thief"  // wrong owner
	prev := map[Value]string{{"port", 1000}: "ns/old"}
	got := a.PlanRepair(services, ips, ports, prev)
	want := RepairPlan{
		Reserve:  map[Value]string{ipv(7): "ns/" + services[7].Name, {"port", 3}: "ns/" + services[3].Name},
		Release:  map[Value]string{{"port", 1000}: "ns/old"},
		Suspects: map[Value]string{{"port", 1000}: "ns/old"},
	}
	if diff := cmp.Diff(want, got, emptyEqual); diff != "" {
		t.Fatalf("plan (-want +got):\n%s", diff)
	}
}
