// Package objects makes the synthetic cluster the proxy benchmarks feed the service proxy: Service i
// and its EndpointSlice, the same in bench/cmd/proxybench and bench/cmd/connbench.
package objects

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Service returns Service i and its EndpointSlice. The Service is svc-NNNNN in namespace ns-NN (i
// modulo 100), ClusterIP 10.96.0.0 + i, one TCP port 80 named http, and every tenth one a NodePort
// (30000 + i/10). Its slice has endpoints endpoints, each on targetPort, with addresses from
// 10.128.0.0 on (i*endpoints + j) spread over nodes node-000 to node-099, all ready.
func Service(i, endpoints, targetPort int) (*corev1.Service, *discoveryv1.EndpointSlice) {
	ns := fmt.Sprintf("ns-%02d", i%100)
	name := fmt.Sprintf("svc-%05d", i)
	ip := netip.AddrFrom4([4]byte{10, 96 + byte(i>>16), byte(i >> 8), byte(i)})
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: ip.String(), ClusterIPs: []string{ip.String()},
			Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}},
	}
	if i%10 == 0 {
		svc.Spec.Type = corev1.ServiceTypeNodePort
		svc.Spec.Ports[0].NodePort = int32(30000 + i/10)
	}
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-abcde", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(int32(targetPort))}},
	}
	for j := range endpoints {
		k := i*endpoints + j
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{netip.AddrFrom4([4]byte{10, 128 + byte(k>>16), byte(k >> 8), byte(k)}).String()},
			NodeName:   ptr.To(fmt.Sprintf("node-%03d", k%100)),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		})
	}
	return svc, sl
}
