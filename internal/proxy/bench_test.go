package proxy

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/svcnet/svcnet/internal/proxy/model"
	"github.com/svcnet/svcnet/internal/proxy/nft"
)

type nullBackend struct{}

func (nullBackend) List(context.Context) (nft.Listing, error) { return nft.Listing{}, nil }
func (nullBackend) Run(context.Context, *nft.Tx) error        { return nil }

func benchObjects(services, endpoints int) ([]*corev1.Service, []*discoveryv1.EndpointSlice) {
	var svcs []*corev1.Service
	var sls []*discoveryv1.EndpointSlice
	for i := range services {
		ns, name := fmt.Sprintf("ns-%02d", i%100), fmt.Sprintf("svc-%05d", i)
		ip := netip.AddrFrom4([4]byte{10, 96 + byte(i>>16), byte(i >> 8), byte(i)}).String()
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: ip, Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}}}
		if i%10 == 0 {
			svc.Spec.Type = corev1.ServiceTypeNodePort
			svc.Spec.Ports[0].NodePort = int32(30000 + i/10)
		}
		sl := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080)}}}
		for j := range endpoints {
			k := i*endpoints + j
			sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{netip.AddrFrom4([4]byte{10, 128 + byte(k>>16), byte(k >> 8), byte(k)}).String()},
				NodeName: ptr.To(fmt.Sprintf("node-%03d", k%100)), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
		}
		svcs, sls = append(svcs, svc), append(sls, sl)
	}
	return svcs, sls
}

// BenchmarkColdStart: the handlers' processing of 10,000 Services and their slices and the first
// sync, without informers and without a kernel.
func BenchmarkColdStart(b *testing.B) {
	svcs, sls := benchObjects(10000, 10)
	cfg := testConfig()
	for b.Loop() {
		p := newProxier(cfg, nullBackend{}, nil, nil)
		for i := range svcs {
			p.OnService(types.NamespacedName{Namespace: svcs[i].Namespace, Name: svcs[i].Name}, svcs[i])
			p.OnSlice(types.NamespacedName{Namespace: sls[i].Namespace, Name: sls[i].Name}, nil, sls[i])
		}
		p.SetSynced()
		if err := p.syncOnce(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	_ = model.TCP
}
