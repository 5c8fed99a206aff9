package discovery

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// keys renders errors as the sorted set of "Type field" pairs the tables assert.
func keys(errs field.ErrorList) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range errs {
		k := string(e.Type) + " " + e.Field
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func k(t field.ErrorType, f string) string { return string(t) + " " + f }

func validSlice() *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-abc12", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{"10.244.1.5"},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			Hostname:   ptr.To("web-0"),
			NodeName:   ptr.To("node-1"),
			Zone:       ptr.To("zone-a"),
			Hints:      &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "zone-a"}}},
		}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080), AppProtocol: ptr.To("http")}},
	}
}

func TestDefaultEndpointSlice(t *testing.T) {
	s := &discoveryv1.EndpointSlice{Ports: []discoveryv1.EndpointPort{{Port: ptr.To[int32](80)}, {Name: ptr.To("dns"), Protocol: ptr.To(corev1.ProtocolUDP)}}}
	DefaultEndpointSlice(s)
	if *s.Ports[0].Name != "" || *s.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("port 0 defaults: name %q protocol %q", *s.Ports[0].Name, *s.Ports[0].Protocol)
	}
	if *s.Ports[1].Name != "dns" || *s.Ports[1].Protocol != corev1.ProtocolUDP {
		t.Errorf("explicit values overwritten")
	}
}

func TestValidateEndpointSlice(t *testing.T) {
	manyEndpoints := make([]discoveryv1.Endpoint, maxEndpoints+1)
	for i := range manyEndpoints {
		manyEndpoints[i] = discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)}}
	}
	manyAddrs := make([]string, maxAddresses+1)
	for i := range manyAddrs {
		manyAddrs[i] = fmt.Sprintf("10.1.0.%d", i+1)
	}
	manyTopology := map[string]string{}
	for i := 0; i <= maxTopologyLabels; i++ {
		manyTopology[fmt.Sprintf("k%d", i)] = "v"
	}
	cases := []struct {
		name   string
		mutate func(s *discoveryv1.EndpointSlice)
		want   []string
	}{
		{"valid", func(s *discoveryv1.EndpointSlice) {}, nil},
		{"valid empty", func(s *discoveryv1.EndpointSlice) { s.Endpoints, s.Ports = nil, nil }, nil},
		{"valid IPv6", func(s *discoveryv1.EndpointSlice) {
			s.AddressType = discoveryv1.AddressTypeIPv6
			s.Endpoints[0].Addresses = []string{"fd00:10:244::5"}
		}, nil},
		{"valid FQDN", func(s *discoveryv1.EndpointSlice) {
			s.AddressType = discoveryv1.AddressTypeFQDN
			s.Endpoints[0].Addresses = []string{"db.example.com"}
		}, nil},
		{"valid unnamed single port", func(s *discoveryv1.EndpointSlice) { s.Ports[0].Name = ptr.To("") }, nil},
		{"missing name", func(s *discoveryv1.EndpointSlice) { s.Name = "" }, []string{k(field.ErrorTypeRequired, "metadata.name")}},
		{"missing namespace", func(s *discoveryv1.EndpointSlice) { s.Namespace = "" }, []string{k(field.ErrorTypeRequired, "metadata.namespace")}},
		{"missing addressType", func(s *discoveryv1.EndpointSlice) { s.AddressType = "" }, []string{k(field.ErrorTypeRequired, "addressType")}},
		{"deprecated IP addressType", func(s *discoveryv1.EndpointSlice) { s.AddressType = "IP" }, []string{k(field.ErrorTypeNotSupported, "addressType")}},
		{"too many endpoints", func(s *discoveryv1.EndpointSlice) { s.Endpoints = manyEndpoints }, []string{k(field.ErrorTypeTooMany, "endpoints")}},
		{"no addresses", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses = nil }, []string{k(field.ErrorTypeRequired, "endpoints[0].addresses")}},
		{"too many addresses", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses = manyAddrs }, []string{k(field.ErrorTypeTooMany, "endpoints[0].addresses")}},
		{"not an IP", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses = []string{"web-0"} }, []string{k(field.ErrorTypeInvalid, "endpoints[0].addresses[0]")}},
		{"IPv6 in IPv4 slice", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses = []string{"fd00::1"} }, []string{k(field.ErrorTypeInvalid, "endpoints[0].addresses[0]")}},
		{"IPv4 in IPv6 slice", func(s *discoveryv1.EndpointSlice) { s.AddressType = discoveryv1.AddressTypeIPv6 }, []string{k(field.ErrorTypeInvalid, "endpoints[0].addresses[0]")}},
		{"loopback", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses = []string{"127.0.0.1"} }, []string{k(field.ErrorTypeInvalid, "endpoints[0].addresses[0]")}},
		{"link-local", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses = []string{"169.254.169.254"} }, []string{k(field.ErrorTypeInvalid, "endpoints[0].addresses[0]")}},
		{"unspecified", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses = []string{"0.0.0.0"} }, []string{k(field.ErrorTypeInvalid, "endpoints[0].addresses[0]")}},
		{"bad FQDN", func(s *discoveryv1.EndpointSlice) {
			s.AddressType = discoveryv1.AddressTypeFQDN
			s.Endpoints[0].Addresses = []string{"single"}
		}, []string{k(field.ErrorTypeInvalid, "endpoints[0].addresses[0]")}},
		{"bad hostname", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Hostname = ptr.To("web.0") }, []string{k(field.ErrorTypeInvalid, "endpoints[0].hostname")}},
		{"bad nodeName", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].NodeName = ptr.To("Node_1") }, []string{k(field.ErrorTypeInvalid, "endpoints[0].nodeName")}},
		{"too much topology", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].DeprecatedTopology = manyTopology }, []string{k(field.ErrorTypeTooMany, "endpoints[0].deprecatedTopology")}},
		{"bad topology label", func(s *discoveryv1.EndpointSlice) {
			s.Endpoints[0].DeprecatedTopology = map[string]string{"bad key": "v"}
		}, []string{k(field.ErrorTypeInvalid, "endpoints[0].deprecatedTopology")}},
		{"duplicate zone hint", func(s *discoveryv1.EndpointSlice) {
			s.Endpoints[0].Hints.ForZones = append(s.Endpoints[0].Hints.ForZones, discoveryv1.ForZone{Name: "zone-a"})
		}, []string{k(field.ErrorTypeDuplicate, "endpoints[0].hints.forZones[1].name")}},
		{"bad node hint", func(s *discoveryv1.EndpointSlice) {
			s.Endpoints[0].Hints.ForNodes = []discoveryv1.ForNode{{Name: "Node_1"}}
		}, []string{k(field.ErrorTypeInvalid, "endpoints[0].hints.forNodes[0].name")}},
		{"bad port name", func(s *discoveryv1.EndpointSlice) { s.Ports[0].Name = ptr.To("HTTP") }, []string{k(field.ErrorTypeInvalid, "ports[0].name")}},
		{"duplicate port name", func(s *discoveryv1.EndpointSlice) {
			s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To[int32](53)})
		}, []string{k(field.ErrorTypeDuplicate, "ports[1].name")}},
		{"missing protocol", func(s *discoveryv1.EndpointSlice) { s.Ports[0].Protocol = nil }, []string{k(field.ErrorTypeRequired, "ports[0].protocol")}},
		{"bad protocol", func(s *discoveryv1.EndpointSlice) { s.Ports[0].Protocol = ptr.To(corev1.Protocol("ICMP")) }, []string{k(field.ErrorTypeNotSupported, "ports[0].protocol")}},
		{"bad appProtocol", func(s *discoveryv1.EndpointSlice) { s.Ports[0].AppProtocol = ptr.To("-bad-") }, []string{k(field.ErrorTypeInvalid, "ports[0].appProtocol")}},
	}
	// Shuffled: validation is pure, so case order must not matter.
	for _, i := range rand.Perm(len(cases)) {
		tc := cases[i]
		t.Run(tc.name, func(t *testing.T) {
			s := validSlice()
			tc.mutate(s)
			got := keys(ValidateEndpointSlice(s))
			sort.Strings(tc.want)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestValidateEndpointSliceMessages(t *testing.T) {
	s := validSlice()
	s.AddressType = "IP"
	errs := ValidateEndpointSlice(s)
	if len(errs) != 1 || errs[0].Error() != `addressType: Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6"` {
		t.Errorf("addressType error = %v", errs)
	}
	s = validSlice()
	s.Endpoints[0].Addresses = []string{"127.0.0.1"}
	errs = ValidateEndpointSlice(s)
	if len(errs) != 1 || errs[0].Error() != `endpoints[0].addresses[0]: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)` {
		t.Errorf("loopback error = %v", errs)
	}
	s = validSlice()
	s.Endpoints[0].Addresses = nil
	errs = ValidateEndpointSlice(s)
	if len(errs) != 1 || errs[0].Error() != "endpoints[0].addresses: Required value: must contain at least 1 address" {
		t.Errorf("no address error = %v", errs)
	}
}

func TestValidateEndpointSliceUpdate(t *testing.T) {
	old := validSlice()
	s := old.DeepCopy()
	s.Endpoints[0].Addresses = []string{"10.244.2.7"}
	s.Labels["extra"] = "x"
	if errs := ValidateEndpointSliceUpdate(s, old); len(errs) != 0 {
		t.Errorf("unexpected errors: %v", errs)
	}

	s = old.DeepCopy()
	s.AddressType = discoveryv1.AddressTypeIPv6
	s.Endpoints[0].Addresses = []string{"fd00::5"}
	got := keys(ValidateEndpointSliceUpdate(s, old))
	if strings.Join(got, ",") != k(field.ErrorTypeInvalid, "addressType") {
		t.Errorf("addressType change: %q", got)
	}

	// Endpoints stored under older rules are not revalidated unless they change.
	old.Endpoints[0].Addresses = []string{"127.0.0.1"}
	s = old.DeepCopy()
	s.Labels["touched"] = "yes"
	if errs := ValidateEndpointSliceUpdate(s, old); len(errs) != 0 {
		t.Errorf("unchanged endpoints revalidated: %v", errs)
	}
	s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.244.3.3"}})
	got = keys(ValidateEndpointSliceUpdate(s, old))
	if strings.Join(got, ",") != k(field.ErrorTypeInvalid, "endpoints[0].addresses[0]") {
		t.Errorf("changed endpoints: %q", got)
	}
}
