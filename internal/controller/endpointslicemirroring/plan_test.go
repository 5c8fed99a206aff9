package endpointslicemirroring

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/ptr"
)

// Builders. Everything lives in namespace "ns"; the Service and Endpoints are "svc".

const epUID = types.UID("ep-uid")

type epOpt func(*corev1.Endpoints)

func endpoints(opts ...epOpt) *corev1.Endpoints {
	ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "svc", UID: epUID}}
	for _, o := range opts {
		o(ep)
	}
	return ep
}

func subset(ports []corev1.EndpointPort, ready []corev1.EndpointAddress, notReady ...corev1.EndpointAddress) epOpt {
	return func(ep *corev1.Endpoints) {
		ep.Subsets = append(ep.Subsets, corev1.EndpointSubset{Ports: ports, Addresses: ready, NotReadyAddresses: notReady})
	}
}

func withLabels(kv ...string) epOpt {
	return func(ep *corev1.Endpoints) { ep.Labels = pairs(kv) }
}

func withAnnotations(kv ...string) epOpt {
	return func(ep *corev1.Endpoints) { ep.Annotations = pairs(kv) }
}

func terminating(ep *corev1.Endpoints) { ep.DeletionTimestamp = ptr.To(metav1.Now()) }

func pairs(kv []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// ports builds Endpoints ports from "name/port/protocol".
func ports(spec ...string) []corev1.EndpointPort {
	var out []corev1.EndpointPort
	for _, s := range spec {
		parts := strings.Split(s, "/")
		port, err := strconv.Atoi(parts[1])
		if err != nil {
			panic(err)
		}
		out = append(out, corev1.EndpointPort{Name: parts[0], Port: int32(port), Protocol: corev1.Protocol(parts[2])})
	}
	return out
}

var (
	web      = ports("http/80/TCP", "https/443/TCP")
	httpOnly = ports("http/80/TCP")
	tlsOnly  = ports("https/443/TCP")
	dns      = ports("dns/53/UDP")
)

type addrOpt func(*corev1.EndpointAddress)

func addr(ip string, opts ...addrOpt) corev1.EndpointAddress {
	a := corev1.EndpointAddress{IP: ip}
	for _, o := range opts {
		o(&a)
	}
	return a
}

func addrs(a ...corev1.EndpointAddress) []corev1.EndpointAddress { return a }

func host(h string) addrOpt { return func(a *corev1.EndpointAddress) { a.Hostname = h } }
func node(n string) addrOpt { return func(a *corev1.EndpointAddress) { a.NodeName = ptr.To(n) } }
func pod(name string) addrOpt {
	return func(a *corev1.EndpointAddress) {
		a.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: name, UID: types.UID("uid-" + name)}
	}
}

func service(selector map[string]string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "svc"}, Spec: corev1.ServiceSpec{Selector: selector}}
}

var selectorless = service(nil)

// Slices as the controller writes them.

type sliceOpt func(*discovery.EndpointSlice)

func slice(addrType discovery.AddressType, p []corev1.EndpointPort, eps []discovery.Endpoint, opts ...sliceOpt) *discovery.EndpointSlice {
	s := &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:    "ns",
			GenerateName: "svc-",
			Labels:       map[string]string{discovery.LabelServiceName: "svc", discovery.LabelManagedBy: controllerName},
			Annotations:  map[string]string{},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Endpoints", Name: "svc", UID: epUID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		AddressType: addrType,
		Ports:       toSlicePorts(p),
		Endpoints:   eps,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// existingAs names a slice the way the server would have: name, resourceVersion, UID.
func existingAs(name string) sliceOpt {
	return func(s *discovery.EndpointSlice) {
		s.Name, s.ResourceVersion, s.UID = name, "rv-"+name, types.UID("uid-"+name)
	}
}

// updating is what an update of the named existing slice carries.
func updating(name string) sliceOpt {
	return func(s *discovery.EndpointSlice) { s.Name, s.ResourceVersion = name, "rv-"+name }
}

func sliceLabelsOpt(kv ...string) sliceOpt {
	return func(s *discovery.EndpointSlice) {
		for k, v := range pairs(kv) {
			s.Labels[k] = v
		}
	}
}

func sliceAnnotationsOpt(kv ...string) sliceOpt {
	return func(s *discovery.EndpointSlice) { s.Annotations = pairs(kv) }
}

func owner(uid types.UID) sliceOpt {
	return func(s *discovery.EndpointSlice) { s.OwnerReferences[0].UID = uid }
}

func noOwner(s *discovery.EndpointSlice) { s.OwnerReferences = nil }

type epnOpt func(*discovery.Endpoint)

func epn(ip string, ready bool, opts ...epnOpt) discovery.Endpoint {
	e := discovery.Endpoint{Addresses: []string{ip}, Conditions: discovery.EndpointConditions{Ready: ptr.To(ready)}}
	for _, o := range opts {
		o(&e)
	}
	return e
}

func eHost(h string) epnOpt { return func(e *discovery.Endpoint) { e.Hostname = ptr.To(h) } }
func eNode(n string) epnOpt { return func(e *discovery.Endpoint) { e.NodeName = ptr.To(n) } }
func ePod(name string) epnOpt {
	return func(e *discovery.Endpoint) {
		e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: name, UID: types.UID("uid-" + name)}
	}
}

func epns(e ...discovery.Endpoint) []discovery.Endpoint { return e }

const v4, v6 = discovery.AddressTypeIPv4, discovery.AddressTypeIPv6

type planCase struct {
	name     string
	ep       *corev1.Endpoints
	svc      *corev1.Service
	existing []*discovery.EndpointSlice
	max      int32
	// noShuffle: the input order matters by definition (first occurrence of an address wins).
	noShuffle bool

	wantReason  string
	wantCreate  []*discovery.EndpointSlice
	wantUpdate  []*discovery.EndpointSlice
	wantDelete  []string
	wantInvalid int
	wantSkipped int
}

func planCases() []planCase {
	full := endpoints(
		withLabels("app", "web", "tier", "front"),
		withAnnotations("team", "net", corev1.EndpointsLastChangeTriggerTime, "2026-01-01T00:00:00Z",
			corev1.LastAppliedConfigAnnotation, "{}", corev1.EndpointsOverCapacity, "truncated"),
		subset(web,
			addrs(addr("10.0.0.2", host("b"), node("n2"), pod("b")), addr("10.0.0.1", host("a"), node("n1"), pod("a"))),
			addr("10.0.0.3", node("n1"))))
	fullEndpoints := epns(
		epn("10.0.0.1", true, eHost("a"), eNode("n1"), ePod("a")),
		epn("10.0.0.2", true, eHost("b"), eNode("n2"), ePod("b")),
		epn("10.0.0.3", false, eNode("n1")))
	fullSlice := func(opts ...sliceOpt) *discovery.EndpointSlice {
		base := []sliceOpt{sliceLabelsOpt("app", "web", "tier", "front"),
			sliceAnnotationsOpt("team", "net", corev1.EndpointsOverCapacity, "truncated")}
		return slice(v4, web, slices.Clone(fullEndpoints), append(base, opts...)...)
	}
	one := endpoints(subset(httpOnly, addrs(addr("10.0.0.1"))))
	oneSlice := func(opts ...sliceOpt) *discovery.EndpointSlice {
		return slice(v4, httpOnly, epns(epn("10.0.0.1", true)), opts...)
	}

	return []planCase{{
		name: "no subsets", ep: endpoints(), svc: selectorless,
	}, {
		name: "ports but no addresses", ep: endpoints(subset(web, nil)), svc: selectorless,
	}, {
		name: "subset without ports is not mirrored (kube's repack drops it)",
		ep:   endpoints(subset(nil, addrs(addr("10.0.0.1")))), svc: selectorless,
	}, {
		name: "ready and not ready, hostname, nodeName, targetRef, labels; trigger time and last-applied not copied",
		ep:   full, svc: selectorless,
		wantCreate: []*discovery.EndpointSlice{fullSlice()},
	}, {
		name: "up to date: no writes, whatever the order of endpoints and ports",
		ep:   full, svc: selectorless,
		existing: []*discovery.EndpointSlice{func() *discovery.EndpointSlice {
			s := fullSlice(existingAs("svc-abcde"))
			slices.Reverse(s.Endpoints)
			slices.Reverse(s.Ports)
			return s
		}()},
	}, {
		name: "targetRef resourceVersion alone is not a change",
		ep: endpoints(subset(httpOnly, addrs(addr("10.0.0.1", func(a *corev1.EndpointAddress) {
			pod("a")(a)
			a.TargetRef.ResourceVersion = "7"
		})))),
		svc:      selectorless,
		existing: []*discovery.EndpointSlice{slice(v4, httpOnly, epns(epn("10.0.0.1", true, ePod("a"))), existingAs("s1"))},
	}, {
		name: "readiness flip updates the slice in place",
		ep:   one, svc: selectorless,
		existing:   []*discovery.EndpointSlice{slice(v4, httpOnly, epns(epn("10.0.0.1", false)), existingAs("s1"))},
		wantUpdate: []*discovery.EndpointSlice{oneSlice(updating("s1"))},
	}, {
		name: "address added",
		ep:   endpoints(subset(httpOnly, addrs(addr("10.0.0.1"), addr("10.0.0.2")))), svc: selectorless,
		existing:   []*discovery.EndpointSlice{oneSlice(existingAs("s1"))},
		wantUpdate: []*discovery.EndpointSlice{slice(v4, httpOnly, epns(epn("10.0.0.1", true), epn("10.0.0.2", true)), updating("s1"))},
	}, {
		name: "extra annotation on the slice is removed",
		ep:   one, svc: selectorless,
		existing:   []*discovery.EndpointSlice{oneSlice(existingAs("s1"), sliceAnnotationsOpt("foo", "bar"))},
		wantUpdate: []*discovery.EndpointSlice{oneSlice(updating("s1"))},
	}, {
		name: "last-applied annotation on the slice is removed",
		ep:   one, svc: selectorless,
		existing:   []*discovery.EndpointSlice{oneSlice(existingAs("s1"), sliceAnnotationsOpt(corev1.LastAppliedConfigAnnotation, "{}"))},
		wantUpdate: []*discovery.EndpointSlice{oneSlice(updating("s1"))},
	}, {
		name: "new Endpoints label is copied",
		ep:   endpoints(withLabels("foo", "bar"), subset(httpOnly, addrs(addr("10.0.0.1")))), svc: selectorless,
		existing:   []*discovery.EndpointSlice{oneSlice(existingAs("s1"))},
		wantUpdate: []*discovery.EndpointSlice{oneSlice(updating("s1"), sliceLabelsOpt("foo", "bar"))},
	}, {
		name: "owned by an older Endpoints of the same name: take it over",
		ep:   one, svc: selectorless,
		existing:   []*discovery.EndpointSlice{oneSlice(existingAs("s1"), owner("old-uid"))},
		wantUpdate: []*discovery.EndpointSlice{oneSlice(updating("s1"))},
	}, {
		name: "no owner reference at all is left alone, as kube does",
		ep:   one, svc: selectorless,
		existing: []*discovery.EndpointSlice{oneSlice(existingAs("s1"), noOwner)},
	}, {
		name: "dual stack: one slice per address family",
		ep:   endpoints(subset(web, addrs(addr("2001:db8::1"), addr("10.0.0.1")))), svc: selectorless,
		wantCreate: []*discovery.EndpointSlice{
			slice(v4, web, epns(epn("10.0.0.1", true))),
			slice(v6, web, epns(epn("2001:db8::1", true))),
		},
	}, {
		name: "irregular IPs are normalized; IPv4-mapped IPv6 is IPv4",
		ep:   endpoints(subset(httpOnly, addrs(addr("::ffff:10.0.0.1"), addr("010.000.000.002"), addr("2001:DB8:0::1")))), svc: selectorless,
		wantCreate: []*discovery.EndpointSlice{
			slice(v4, httpOnly, epns(epn("10.0.0.2", true), epn("10.0.0.1", true))),
			slice(v6, httpOnly, epns(epn("2001:db8::1", true))),
		},
	}, {
		name: "two subsets, different ports, same address: repacked into one slice",
		ep:   endpoints(subset(httpOnly, addrs(addr("10.0.0.1"))), subset(tlsOnly, addrs(addr("10.0.0.1")))), svc: selectorless,
		wantCreate: []*discovery.EndpointSlice{slice(v4, web, epns(epn("10.0.0.1", true)))},
	}, {
		name: "two subsets, same port, different addresses: one slice",
		ep:   endpoints(subset(httpOnly, addrs(addr("10.0.0.2"))), subset(httpOnly, addrs(addr("10.0.0.1")))), svc: selectorless,
		wantCreate: []*discovery.EndpointSlice{slice(v4, httpOnly, epns(epn("10.0.0.1", true), epn("10.0.0.2", true)))},
	}, {
		name: "overlapping subsets are split by the addresses each port has",
		ep: endpoints(subset(web, addrs(addr("10.0.0.1"), addr("10.0.0.2"))),
			subset(httpOnly, addrs(addr("10.0.0.3")))),
		svc: selectorless,
		wantCreate: []*discovery.EndpointSlice{
			slice(v4, httpOnly, epns(epn("10.0.0.1", true), epn("10.0.0.2", true), epn("10.0.0.3", true))),
			slice(v4, tlsOnly, epns(epn("10.0.0.1", true), epn("10.0.0.2", true))),
		},
	}, {
		name: "not ready on the same port in another subset wins",
		ep:   endpoints(subset(httpOnly, addrs(addr("10.0.0.1"))), subset(httpOnly, nil, addr("10.0.0.1"))), svc: selectorless,
		wantCreate: []*discovery.EndpointSlice{slice(v4, httpOnly, epns(epn("10.0.0.1", false)))},
	}, {
		name: "duplicate address in a subset is mirrored once",
		ep:   endpoints(subset(httpOnly, addrs(addr("10.0.0.1"), addr("10.0.0.1")))), svc: selectorless,
		wantCreate: []*discovery.EndpointSlice{slice(v4, httpOnly, epns(epn("10.0.0.1", true)))},
	}, {
		name: "first occurrence of an address supplies its attributes", noShuffle: true,
		ep:         endpoints(subset(httpOnly, addrs(addr("10.0.0.1", host("first")))), subset(tlsOnly, addrs(addr("10.0.0.1", host("second"))))),
		svc:        selectorless,
		wantCreate: []*discovery.EndpointSlice{slice(v4, web, epns(epn("10.0.0.1", true, eHost("first"))))},
	}, {
		name: "invalid IPs are skipped and counted",
		ep: endpoints(subset(web, addrs(addr("not-an-ip"), addr("10.0.0.1")), addr("also-not")),
			subset(dns, addrs(addr("bad")))),
		svc:         selectorless,
		wantCreate:  []*discovery.EndpointSlice{slice(v4, web, epns(epn("10.0.0.1", true)))},
		wantInvalid: 3, wantSkipped: 3,
	}, {
		name: "all invalid: nothing to write",
		ep:   endpoints(subset(web, addrs(addr("x"), addr("y")))), svc: selectorless,
		wantInvalid: 2, wantSkipped: 2,
	}, {
		name: "per-subset limit keeps ready addresses first, in IP order",
		ep: endpoints(subset(httpOnly, addrs(addr("10.0.0.9"), addr("10.0.0.2"), addr("10.0.0.10")), addr("10.0.0.1"), addr("10.0.0.5")),
			subset(dns, addrs(addr("10.0.1.1")))),
		svc: selectorless, max: 4,
		wantCreate: []*discovery.EndpointSlice{
			slice(v4, dns, epns(epn("10.0.1.1", true))),
			slice(v4, httpOnly, epns(epn("10.0.0.10", true), epn("10.0.0.2", true), epn("10.0.0.9", true), epn("10.0.0.1", false))),
		},
		wantSkipped: 1,
	}, {
		name: "per-subset limit counts both families together",
		ep:   endpoints(subset(httpOnly, addrs(addr("10.0.0.1"), addr("2001:db8::1"), addr("2001:db8::2")))), svc: selectorless, max: 2,
		wantCreate: []*discovery.EndpointSlice{
			slice(v4, httpOnly, epns(epn("10.0.0.1", true))),
			slice(v6, httpOnly, epns(epn("2001:db8::1", true))),
		},
		wantSkipped: 1,
	}, {
		name: "port set changed: the old slice is recycled, not deleted and created",
		ep:   endpoints(subset(tlsOnly, addrs(addr("10.0.0.1")))), svc: selectorless,
		existing:   []*discovery.EndpointSlice{oneSlice(existingAs("s1"))},
		wantUpdate: []*discovery.EndpointSlice{slice(v4, tlsOnly, epns(epn("10.0.0.1", true)), updating("s1"), func(s *discovery.EndpointSlice) { s.GenerateName = "svc-" })},
	}, {
		name: "family changed: address type is immutable, so delete and create",
		ep:   endpoints(subset(httpOnly, addrs(addr("2001:db8::1")))), svc: selectorless,
		existing:   []*discovery.EndpointSlice{oneSlice(existingAs("s1"))},
		wantCreate: []*discovery.EndpointSlice{slice(v6, httpOnly, epns(epn("2001:db8::1", true)))},
		wantDelete: []string{"s1"},
	}, {
		name: "duplicate slices for one key: keep the one already right",
		ep:   one, svc: selectorless,
		existing:   []*discovery.EndpointSlice{oneSlice(existingAs("b")), slice(v4, httpOnly, epns(epn("10.0.0.9", true)), existingAs("a"))},
		wantDelete: []string{"a"},
	}, {
		name: "duplicate slices for one key, none right: update the first by name, delete the other",
		ep:   one, svc: selectorless,
		existing: []*discovery.EndpointSlice{slice(v4, httpOnly, epns(epn("10.0.0.8", true)), existingAs("b")),
			slice(v4, httpOnly, epns(epn("10.0.0.9", true)), existingAs("a"))},
		wantUpdate: []*discovery.EndpointSlice{oneSlice(updating("a"))},
		wantDelete: []string{"b"},
	}, {
		name: "a mirrored FQDN slice is never wanted",
		ep:   one, svc: selectorless,
		existing:   []*discovery.EndpointSlice{oneSlice(existingAs("s1")), slice(discovery.AddressTypeFQDN, httpOnly, epns(epn("a.example", true)), existingAs("f"))},
		wantDelete: []string{"f"},
	}, {
		name: "endpoints emptied: slices deleted",
		ep:   endpoints(subset(httpOnly, nil)), svc: selectorless,
		existing:   []*discovery.EndpointSlice{oneSlice(existingAs("s1"))},
		wantDelete: []string{"s1"},
	}, {
		name: "terminating Endpoints: no creates, updates still",
		ep: endpoints(terminating, subset(httpOnly, addrs(addr("10.0.0.1"))),
			subset(tlsOnly, addrs(addr("10.0.0.2")))),
		svc:        selectorless,
		existing:   []*discovery.EndpointSlice{slice(v4, httpOnly, epns(epn("10.0.0.1", false)), existingAs("s1"))},
		wantUpdate: []*discovery.EndpointSlice{oneSlice(updating("s1"))},
	}, {
		name: "skip-mirror label: delete everything",
		ep:   endpoints(withLabels(discovery.LabelSkipMirror, "true"), subset(httpOnly, addrs(addr("10.0.0.1")))), svc: selectorless,
		existing:   []*discovery.EndpointSlice{oneSlice(existingAs("s2")), oneSlice(existingAs("s1"))},
		wantReason: reasonSkipMirror, wantDelete: []string{"s1", "s2"},
	}, {
		name: "skip-mirror=false mirrors, and is copied like any label",
		ep:   endpoints(withLabels(discovery.LabelSkipMirror, "false"), subset(httpOnly, addrs(addr("10.0.0.1")))), svc: selectorless,
		wantCreate: []*discovery.EndpointSlice{oneSlice(sliceLabelsOpt(discovery.LabelSkipMirror, "false"))},
	}, {
		name: "leader-election record: not a service",
		ep:   endpoints(withAnnotations(resourcelock.LeaderElectionRecordAnnotationKey, "{}"), subset(httpOnly, addrs(addr("10.0.0.1")))), svc: selectorless,
		existing:   []*discovery.EndpointSlice{oneSlice(existingAs("s1"))},
		wantReason: reasonLeaderElection, wantDelete: []string{"s1"},
	}, {
		name: "no Service", ep: one, svc: nil,
		existing:   []*discovery.EndpointSlice{oneSlice(existingAs("s1"))},
		wantReason: reasonNoService, wantDelete: []string{"s1"},
	}, {
		name: "Service with a selector belongs to the EndpointSlice controller", ep: one, svc: service(map[string]string{"app": "web"}),
		existing:   []*discovery.EndpointSlice{oneSlice(existingAs("s1"))},
		wantReason: reasonServiceSelector, wantDelete: []string{"s1"},
	}, {
		name: "no Endpoints", ep: nil, svc: selectorless,
		existing:   []*discovery.EndpointSlice{oneSlice(existingAs("s1"))},
		wantReason: reasonNoEndpoints, wantDelete: []string{"s1"},
	}}
}

// TestComputePlan runs the table in shuffled order, and each case several times with its inputs
// shuffled (subsets, addresses, ports, existing slices and their endpoints): the plan must not depend on
// any of those orders.
func TestComputePlan(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	cases := planCases()
	rng.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.max
			if max == 0 {
				max = DefaultMaxEndpointsPerSubset
			}
			for round := range 8 {
				ep, existing := tc.ep.DeepCopy(), deepCopySlices(tc.existing)
				if round > 0 && !tc.noShuffle {
					shuffleInputs(rng, ep, existing)
				}
				before := deepCopySlices(existing)
				epBefore := ep.DeepCopy()
				p := computePlan(ep, tc.svc, existing, max)
				if diff := cmp.Diff(before, existing); diff != "" {
					t.Fatalf("computePlan modified existing slices (-before +after):\n%s", diff)
				}
				if diff := cmp.Diff(epBefore, ep); diff != "" {
					t.Fatalf("computePlan modified the Endpoints (-before +after):\n%s", diff)
				}
				checkPlan(t, round, tc, p)
			}
		})
	}
}

func checkPlan(t *testing.T, round int, tc planCase, p plan) {
	t.Helper()
	if p.reason != tc.wantReason {
		t.Errorf("round %d: reason %q, want %q", round, p.reason, tc.wantReason)
	}
	if diff := cmp.Diff(normalize(tc.wantCreate), normalize(p.create)); diff != "" {
		t.Errorf("round %d: create (-want +got):\n%s", round, diff)
	}
	if diff := cmp.Diff(normalize(tc.wantUpdate), normalize(p.update)); diff != "" {
		t.Errorf("round %d: update (-want +got):\n%s", round, diff)
	}
	var deleted []string
	for _, s := range p.delete {
		deleted = append(deleted, s.Name)
	}
	if diff := cmp.Diff(tc.wantDelete, deleted); diff != "" {
		t.Errorf("round %d: delete (-want +got):\n%s", round, diff)
	}
	if p.invalidAddresses != tc.wantInvalid || p.skippedAddresses != tc.wantSkipped {
		t.Errorf("round %d: invalid/skipped %d/%d, want %d/%d", round, p.invalidAddresses, p.skippedAddresses, tc.wantInvalid, tc.wantSkipped)
	}
}

// normalize sorts ports, and slices by name, family and ports: the order of both follows port hashes,
// which are kube's and not worth spelling out in expectations. Endpoint order is compared as is.
func normalize(in []*discovery.EndpointSlice) []*discovery.EndpointSlice {
	out := deepCopySlices(in)
	for _, s := range out {
		sort.Slice(s.Ports, func(i, j int) bool { return *s.Ports[i].Port < *s.Ports[j].Port })
	}
	sortKey := func(s *discovery.EndpointSlice) string {
		k := s.Name + "|" + string(s.AddressType)
		for _, p := range s.Ports {
			k += fmt.Sprintf("|%05d", *p.Port)
		}
		return k
	}
	sort.Slice(out, func(i, j int) bool { return sortKey(out[i]) < sortKey(out[j]) })
	return out
}

func deepCopySlices(in []*discovery.EndpointSlice) []*discovery.EndpointSlice {
	var out []*discovery.EndpointSlice
	for _, s := range in {
		out = append(out, s.DeepCopy())
	}
	return out
}

func shuffleInputs(rng *rand.Rand, ep *corev1.Endpoints, existing []*discovery.EndpointSlice) {
	shuffle := func(n int, swap func(i, j int)) { rng.Shuffle(n, swap) }
	if ep != nil {
		ss := ep.Subsets
		shuffle(len(ss), func(i, j int) { ss[i], ss[j] = ss[j], ss[i] })
		for k := range ss {
			a, n, p := ss[k].Addresses, ss[k].NotReadyAddresses, ss[k].Ports
			shuffle(len(a), func(i, j int) { a[i], a[j] = a[j], a[i] })
			shuffle(len(n), func(i, j int) { n[i], n[j] = n[j], n[i] })
			shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		}
	}
	shuffle(len(existing), func(i, j int) { existing[i], existing[j] = existing[j], existing[i] })
	for _, s := range existing {
		e, p := s.Endpoints, s.Ports
		shuffle(len(e), func(i, j int) { e[i], e[j] = e[j], e[i] })
		shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
	}
}

// TestPlanReachesFixpoint applies every mirrored case's plan the way the API server would and plans
// again: the second plan must be empty. This is the property behind "a restart writes nothing".
func TestPlanReachesFixpoint(t *testing.T) {
	for _, tc := range planCases() {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.max
			if max == 0 {
				max = DefaultMaxEndpointsPerSubset
			}
			existing := deepCopySlices(tc.existing)
			p := computePlan(tc.ep, tc.svc, existing, max)
			after := applyAsServer(existing, p)
			if tc.ep != nil && tc.ep.DeletionTimestamp != nil {
				return // creates are withheld on purpose; nothing converges until it is gone
			}
			again := computePlan(tc.ep, tc.svc, after, max)
			if again.writes() != 0 {
				t.Fatalf("second plan writes: create %d update %d delete %d", len(again.create), len(again.update), len(again.delete))
			}
		})
	}
}

func applyAsServer(existing []*discovery.EndpointSlice, p plan) []*discovery.EndpointSlice {
	byName := map[string]*discovery.EndpointSlice{}
	for _, s := range existing {
		byName[s.Name] = s
	}
	for i, s := range p.create {
		s = s.DeepCopy()
		s.Name = fmt.Sprintf("%sgen%d", s.GenerateName, i)
		byName[s.Name] = s
	}
	for _, s := range p.update {
		byName[s.Name] = s.DeepCopy()
	}
	for _, s := range p.delete {
		delete(byName, s.Name)
	}
	var out []*discovery.EndpointSlice
	for _, s := range byName {
		out = append(out, s)
	}
	return out
}

func TestRepackSubsets(t *testing.T) {
	got := repackSubsets([]corev1.EndpointSubset{
		{Ports: web, Addresses: addrs(addr("10.0.0.2"), addr("10.0.0.1"))},
		{Ports: httpOnly, Addresses: addrs(addr("10.0.0.3")), NotReadyAddresses: addrs(addr("10.0.0.1"))},
	})
	want := []corev1.EndpointSubset{
		// 80: .1 not ready (not ready wins), .2 and .3 ready; 443: .1 and .2 ready.
		{Ports: tlsOnly, Addresses: addrs(addr("10.0.0.1"), addr("10.0.0.2"))},
		{Ports: httpOnly, Addresses: addrs(addr("10.0.0.2"), addr("10.0.0.3")), NotReadyAddresses: addrs(addr("10.0.0.1"))},
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Ports[0].Port > got[j].Ports[0].Port })
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("repack (-want +got):\n%s", diff)
	}
}

func TestSlicePrefix(t *testing.T) {
	if got := slicePrefix("web"); got != "web-" {
		t.Fatalf("prefix %q", got)
	}
}
