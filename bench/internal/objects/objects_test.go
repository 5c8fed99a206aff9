package objects

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestService(t *testing.T) {
	for _, tc := range []struct {
		i, endpoints, port int
		ns, name, ip       string
		nodePort           int32
		firstEndpoint      string
		firstNode          string
	}{
		{0, 2, 8080, "ns-00", "svc-00000", "10.96.0.0", 30000, "10.128.0.0", "node-000"},
		{7, 10, 8080, "ns-07", "svc-00007", "10.96.0.7", 0, "10.128.0.70", "node-070"},
		{300, 1, 9090, "ns-00", "svc-00300", "10.96.1.44", 30030, "10.128.1.44", "node-000"},
		{70001, 10, 80, "ns-01", "svc-70001", "10.97.17.113", 0, "10.138.174.106", "node-010"},
	} {
		svc, sl := Service(tc.i, tc.endpoints, tc.port)
		if svc.Namespace != tc.ns || svc.Name != tc.name || svc.Spec.ClusterIP != tc.ip || svc.Spec.ClusterIPs[0] != tc.ip ||
			svc.Spec.Ports[0].Port != 80 || svc.Spec.Ports[0].NodePort != tc.nodePort {
			t.Errorf("Service %d: %s/%s %s ports %+v", tc.i, svc.Namespace, svc.Name, svc.Spec.ClusterIP, svc.Spec.Ports)
		}
		wantType := corev1.ServiceTypeClusterIP
		if tc.nodePort != 0 {
			wantType = corev1.ServiceTypeNodePort
		}
		if svc.Spec.Type != wantType {
			t.Errorf("Service %d: type %s, want %s", tc.i, svc.Spec.Type, wantType)
		}
		if sl.Namespace != tc.ns || sl.Name != tc.name+"-abcde" || sl.Labels["kubernetes.io/service-name"] != tc.name ||
			len(sl.Endpoints) != tc.endpoints || int(*sl.Ports[0].Port) != tc.port || *sl.Ports[0].Name != "http" {
			t.Errorf("slice %d: %s/%s labels %v, %d endpoints, port %d", tc.i, sl.Namespace, sl.Name, sl.Labels, len(sl.Endpoints), *sl.Ports[0].Port)
			continue
		}
		ep := sl.Endpoints[0]
		if ep.Addresses[0] != tc.firstEndpoint || *ep.NodeName != tc.firstNode || !*ep.Conditions.Ready {
			t.Errorf("slice %d: first endpoint %v on %s", tc.i, ep.Addresses, *ep.NodeName)
		}
	}
}
