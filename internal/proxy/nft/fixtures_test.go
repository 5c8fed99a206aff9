package nft_test

import (
	"context"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"

	"github.com/svcnet/svcnet/internal/proxy/model"
	"github.com/svcnet/svcnet/internal/proxy/nft"
)

const (
	testTable = "svcnet"
	nodeName  = "node-1"
)

var (
	nodeIP  = netip.MustParseAddr("172.31.0.11")
	testOpt = nft.Options{
		ClusterCIDR:        netip.MustParsePrefix("10.244.0.0/16"),
		ServiceCIDRs:       []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")},
		NodePortAddresses:  []netip.Addr{nodeIP},
		LocalhostNodePorts: true,
		StaticSizes:        2, // keeps the golden files short; sizes 3 and up are created on demand
	}
	testNode = model.Node{Name: nodeName, Zone: "zone-a"}
)

// svc builds a Service; mutate adjusts it.
func svc(name, clusterIP string, mutate func(*corev1.Service), ports ...corev1.ServicePort) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: clusterIP, Ports: ports},
	}
	if mutate != nil {
		mutate(s)
	}
	return s
}

func tcp(name string, port, target int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: corev1.ProtocolTCP, Port: port}
}

func udp(name string, port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: corev1.ProtocolUDP, Port: port}
}

// ep describes an endpoint for slice().
type ep struct {
	ip          string
	node        string
	notReady    bool
	terminating bool
	notServing  bool
	zones       []string
}

// slice builds an EndpointSlice for a Service with the given ports (name:port pairs via sp) and endpoints.
func slice(svcName, sliceName string, ports []discoveryv1.EndpointPort, eps ...ep) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: sliceName,
			Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
	}
	for _, e := range eps {
		de := discoveryv1.Endpoint{
			Addresses: []string{e.ip},
			Conditions: discoveryv1.EndpointConditions{
				Ready:       ptr.To(!e.notReady && !e.terminating),
				Serving:     ptr.To(!e.notServing),
				Terminating: ptr.To(e.terminating),
			},
		}
		if e.node != "" {
			de.NodeName = ptr.To(e.node)
		}
		if len(e.zones) > 0 {
			de.Hints = &discoveryv1.EndpointHints{}
			for _, z := range e.zones {
				de.Hints.ForZones = append(de.Hints.ForZones, discoveryv1.ForZone{Name: z})
			}
		}
		s.Endpoints = append(s.Endpoints, de)
	}
	return s
}

func eport(name string, proto corev1.Protocol, port int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr.To(name), Protocol: ptr.To(proto), Port: ptr.To(port)}
}

// state converts API objects into the proxy's model, as the proxy's informer handlers do.
func state(node model.Node, objs ...any) *model.State {
	st := &model.State{Services: map[model.ServicePortName]*model.ServicePort{}, Endpoints: map[model.ServicePortName][]model.Endpoint{}, Node: node}
	slices := map[types.NamespacedName][]*model.Slice{}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Service:
			for _, sp := range model.ServicePorts(o) {
				st.Services[sp.Name] = sp
			}
		case *discoveryv1.EndpointSlice:
			if s := model.FromEndpointSlice(o); s != nil {
				slices[s.Service] = append(slices[s.Service], s)
			}
		}
	}
	for name, ss := range slices {
		for k, v := range model.MergeSlices(name, ss) {
			st.Endpoints[k] = v
		}
	}
	return st
}

// servicesOf builds every owner's objects (each Service port's, and the pickers) for the engine.
func servicesOf(st *model.State, o nft.Options) map[string]*nft.Objects {
	_, svcs, pickers := nft.Build(st, o)
	out := map[string]*nft.Objects{nft.PickersOwner: pickers}
	for _, r := range svcs {
		out[nft.OwnerKey(r)] = &r.Objects
	}
	return out
}

// apply runs a full sync of st into a new fake and returns the fake and the syncer.
func apply(t *testing.T, st *model.State, o nft.Options) (*knftables.Fake, *nft.Syncer) {
	t.Helper()
	fake := knftables.NewFake(knftables.InetFamily, testTable)
	s := nft.NewSyncer(&nft.KnftablesBackend{NFT: fake}, o)
	if _, err := s.Sync(context.Background(), st, nil); err != nil {
		t.Fatalf("full sync: %v", err)
	}
	return fake, s
}
