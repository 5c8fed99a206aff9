// Package discovery holds kube-apiserver's defaulting and validation for discovery.k8s.io/v1 EndpointSlices,
// written against the versioned types with kube v1.35's field paths, error types and messages.
package discovery

import (
	corevalidation "github.com/svcnet/svcnet/internal/apis/core/validation"

	"net/netip"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// Limits kube enforces on a single slice; they keep every slice small enough to fan out cheaply.
const (
	maxTopologyLabels = 16
	maxAddresses      = 100
	maxPorts          = 20000
	maxEndpoints      = 1000
	maxZoneHints      = 8
	maxNodeHints      = 8
)

var (
	supportedAddressTypes  = []discoveryv1.AddressType{discoveryv1.AddressTypeFQDN, discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6}
	supportedPortProtocols = []corev1.Protocol{corev1.ProtocolSCTP, corev1.ProtocolTCP, corev1.ProtocolUDP}
)

// DefaultEndpointSlice applies discovery/v1 SetDefaults_EndpointPort: an unset port name becomes "" and an
// unset protocol TCP.
func DefaultEndpointSlice(s *discoveryv1.EndpointSlice) {
	if s == nil {
		return
	}
	for i := range s.Ports {
		if s.Ports[i].Name == nil {
			s.Ports[i].Name = ptr.To("")
		}
		if s.Ports[i].Protocol == nil {
			s.Ports[i].Protocol = ptr.To(corev1.ProtocolTCP)
		}
	}
}

// ValidateEndpointSlice validates an EndpointSlice on create.
func ValidateEndpointSlice(s *discoveryv1.EndpointSlice) field.ErrorList {
	return validateEndpointSlice(s, nil)
}

// ValidateEndpointSliceUpdate validates an update: the same rules as create, except that endpoints left
// exactly as they were are not revalidated (they may predate stricter address rules), plus an immutable
// addressType.
func ValidateEndpointSliceUpdate(newS, oldS *discoveryv1.EndpointSlice) field.ErrorList {
	allErrs := validateEndpointSlice(newS, oldS)
	return append(allErrs, apimachineryvalidation.ValidateImmutableField(newS.AddressType, oldS.AddressType, field.NewPath("addressType"))...)
}

func validateEndpointSlice(s, old *discoveryv1.EndpointSlice) field.ErrorList {
	allErrs := corevalidation.ValidateObjectMeta(&s.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	allErrs = append(allErrs, validateAddressType(s.AddressType)...)
	allErrs = append(allErrs, validatePorts(s.Ports, field.NewPath("ports"))...)
	if old == nil || !reflect.DeepEqual(old.Endpoints, s.Endpoints) {
		allErrs = append(allErrs, validateEndpoints(s.Endpoints, s.AddressType, field.NewPath("endpoints"))...)
	}
	return allErrs
}

func validateAddressType(t discoveryv1.AddressType) field.ErrorList {
	p := field.NewPath("addressType")
	switch t {
	case "":
		return field.ErrorList{field.Required(p, "")}
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN:
		return nil
	}
	return field.ErrorList{field.NotSupported(p, t, supportedAddressTypes)}
}

func validateEndpoints(endpoints []discoveryv1.Endpoint, addrType discoveryv1.AddressType, fldPath *field.Path) field.ErrorList {
	allErrs := field.ErrorList{}
	if len(endpoints) > maxEndpoints {
		return append(allErrs, field.TooMany(fldPath, len(endpoints), maxEndpoints))
	}
	for i, ep := range endpoints {
		p := fldPath.Index(i)
		ap := p.Child("addresses")
		if len(ep.Addresses) == 0 {
			allErrs = append(allErrs, field.Required(ap, "must contain at least 1 address"))
		} else if len(ep.Addresses) > maxAddresses {
			allErrs = append(allErrs, field.TooMany(ap, len(ep.Addresses), maxAddresses))
		}
		for j, addr := range ep.Addresses {
			// Unknown address types were already reported and are not validated further.
			switch addrType {
			case discoveryv1.AddressTypeIPv4:
				allErrs = append(allErrs, validateIP(addr, true, ap.Index(j))...)
			case discoveryv1.AddressTypeIPv6:
				allErrs = append(allErrs, validateIP(addr, false, ap.Index(j))...)
			case discoveryv1.AddressTypeFQDN:
				allErrs = append(allErrs, validation.IsFullyQualifiedDomainName(ap.Index(j), addr)...)
			}
		}
		if ep.NodeName != nil {
			for _, msg := range apimachineryvalidation.NameIsDNSSubdomain(*ep.NodeName, false) {
				allErrs = append(allErrs, field.Invalid(p.Child("nodeName"), *ep.NodeName, msg))
			}
		}
		tp := p.Child("deprecatedTopology")
		if len(ep.DeprecatedTopology) > maxTopologyLabels {
			allErrs = append(allErrs, field.TooMany(tp, len(ep.DeprecatedTopology), maxTopologyLabels))
		}
		allErrs = append(allErrs, metav1validation.ValidateLabels(ep.DeprecatedTopology, tp)...)
		if ep.Hostname != nil {
			for _, msg := range validation.IsDNS1123Label(*ep.Hostname) {
				allErrs = append(allErrs, field.Invalid(p.Child("hostname"), *ep.Hostname, msg))
			}
		}
		if ep.Hints != nil {
			allErrs = append(allErrs, validateHints(ep.Hints, p.Child("hints"))...)
		}
	}
	return allErrs
}

// validateIP accepts what kube accepts for EndpointSlice addresses at 1.35 defaults (StrictIPCIDRValidation
// off): any address the legacy parser takes, of the slice's family, and not unspecified, loopback or
// link-local, because proxies must never be pointed at those.
func validateIP(addr string, wantV4 bool, fldPath *field.Path) field.ErrorList {
	if errs := validation.IsValidIPForLegacyField(fldPath, addr, false, nil); len(errs) > 0 {
		return errs
	}
	allErrs := field.ErrorList{}
	ip, _ := parseIPSloppy(addr)
	isV4 := ip.Is4()
	if wantV4 && !isV4 {
		allErrs = append(allErrs, field.Invalid(fldPath, addr, "must be an IPv4 address"))
	}
	if !wantV4 && isV4 {
		allErrs = append(allErrs, field.Invalid(fldPath, addr, "must be an IPv6 address"))
	}
	return append(allErrs, validateNonSpecialIP(addr, fldPath)...)
}

// validateNonSpecialIP is kube's ValidateNonSpecialIP.
func validateNonSpecialIP(addr string, fldPath *field.Path) field.ErrorList {
	allErrs := field.ErrorList{}
	ip, err := parseIPSloppy(addr)
	if err != nil {
		return append(allErrs, field.Invalid(fldPath, addr, "must be a valid IP address"))
	}
	if ip.IsUnspecified() {
		allErrs = append(allErrs, field.Invalid(fldPath, addr, "may not be unspecified ("+addr+")"))
	}
	if ip.IsLoopback() {
		allErrs = append(allErrs, field.Invalid(fldPath, addr, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
	}
	if ip.IsLinkLocalUnicast() {
		allErrs = append(allErrs, field.Invalid(fldPath, addr, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
	}
	if ip.IsLinkLocalMulticast() {
		allErrs = append(allErrs, field.Invalid(fldPath, addr, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"))
	}
	return allErrs
}

// parseIPSloppy parses like netutils.ParseIPSloppy: IPv4 octets may carry leading zeros (read as decimal),
// and IPv4-mapped IPv6 addresses count as IPv4.
func parseIPSloppy(s string) (netip.Addr, error) {
	if !strings.Contains(s, ":") {
		parts := strings.Split(s, ".")
		for i, part := range parts {
			trimmed := strings.TrimLeft(part, "0")
			if trimmed == "" && part != "" {
				trimmed = "0"
			}
			parts[i] = trimmed
		}
		s = strings.Join(parts, ".")
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return ip, err
	}
	return ip.Unmap(), nil
}

func validatePorts(ports []discoveryv1.EndpointPort, fldPath *field.Path) field.ErrorList {
	allErrs := field.ErrorList{}
	if len(ports) > maxPorts {
		return append(allErrs, field.TooMany(fldPath, len(ports), maxPorts))
	}
	names := sets.New[string]()
	for i, port := range ports {
		p := fldPath.Index(i)
		// Defaulting sets the name; treat a missing one as "" so undefaulted input cannot panic.
		name := ptr.Deref(port.Name, "")
		if len(name) > 0 {
			for _, msg := range validation.IsDNS1123Label(name) {
				allErrs = append(allErrs, field.Invalid(p.Child("name"), name, msg))
			}
		}
		if names.Has(name) {
			allErrs = append(allErrs, field.Duplicate(p.Child("name"), port.Name))
		} else {
			names.Insert(name)
		}
		if port.Protocol == nil {
			allErrs = append(allErrs, field.Required(p.Child("protocol"), ""))
		} else if *port.Protocol != corev1.ProtocolTCP && *port.Protocol != corev1.ProtocolUDP && *port.Protocol != corev1.ProtocolSCTP {
			allErrs = append(allErrs, field.NotSupported(p.Child("protocol"), *port.Protocol, supportedPortProtocols))
		}
		if port.AppProtocol != nil {
			for _, msg := range validation.IsQualifiedName(*port.AppProtocol) {
				allErrs = append(allErrs, field.Invalid(p.Child("appProtocol"), *port.AppProtocol, msg))
			}
		}
	}
	return allErrs
}

func validateHints(h *discoveryv1.EndpointHints, fldPath *field.Path) field.ErrorList {
	allErrs := field.ErrorList{}
	zp := fldPath.Child("forZones")
	if len(h.ForZones) > maxZoneHints {
		return append(allErrs, field.TooMany(zp, len(h.ForZones), maxZoneHints))
	}
	zones := sets.New[string]()
	for i, z := range h.ForZones {
		p := zp.Index(i).Child("name")
		if zones.Has(z.Name) {
			allErrs = append(allErrs, field.Duplicate(p, z.Name))
		} else {
			zones.Insert(z.Name)
		}
		for _, msg := range validation.IsValidLabelValue(z.Name) {
			allErrs = append(allErrs, field.Invalid(p, z.Name, msg))
		}
	}
	np := fldPath.Child("forNodes")
	if len(h.ForNodes) > maxNodeHints {
		return append(allErrs, field.TooMany(np, len(h.ForNodes), maxNodeHints))
	}
	nodes := sets.New[string]()
	for i, n := range h.ForNodes {
		p := np.Index(i).Child("name")
		if nodes.Has(n.Name) {
			allErrs = append(allErrs, field.Duplicate(p, n.Name))
		} else {
			nodes.Insert(n.Name)
		}
		for _, msg := range apimachineryvalidation.NameIsDNSSubdomain(n.Name, false) {
			allErrs = append(allErrs, field.Invalid(p, n.Name, msg))
		}
	}
	return allErrs
}
