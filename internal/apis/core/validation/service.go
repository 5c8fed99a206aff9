// Package validation checks v1 Services exactly as kube-apiserver v1.35 does:
// same field paths, error types and, where it can be reproduced, the same
// message text, so that clients (kubectl, controllers, conformance-style tests)
// see the 422 responses they expect.
//
// The functions take Services that have already been through
// defaults.Service (and, in the registry, defaults.NormalizeClusterIPs and
// friends); like kube's, they report fields that defaulting always fills in as
// Required rather than guessing.
//
// Feature gates are fixed at their kube v1.35 defaults: StrictIPCIDRValidation
// off (legacy IP/CIDR parsing), RelaxedServiceNameValidation off (names are
// DNS-1035 labels), PreferSameTrafficDistribution on.
//
// What kube checks elsewhere is not here: NodePort range, ClusterIP range, IP
// families against the cluster's configuration and healthCheckNodePort
// reservation all belong to the allocator, which runs before validation.
package validation

import (
	"fmt"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	unversionedvalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	netutils "k8s.io/utils/net"
)

// strictIPCIDRValidation is the StrictIPCIDRValidation gate, alpha (off) in
// v1.35: IPs with leading zeros, IPv4-mapped IPv6 addresses and CIDRs with host
// bits set are still accepted in Service fields.
const strictIPCIDRValidation = false

// MaxClientIPServiceAffinitySeconds is the upper bound of
// spec.sessionAffinityConfig.clientIP.timeoutSeconds (kube's internal
// core.MaxClientIPServiceAffinitySeconds; the v1 package does not export it).
const MaxClientIPServiceAffinitySeconds = 60 * 60 * 24

// ValidateServiceName checks metadata.name. RelaxedServiceNameValidation
// (DNS-1123 labels, names may start with a digit) is alpha in v1.35, so
// Services keep the DNS-1035 rule.
var ValidateServiceName = apimachineryvalidation.NameIsDNS1035Label

var (
	supportedSessionAffinityType          = sets.New(v1.ServiceAffinityClientIP, v1.ServiceAffinityNone)
	supportedServiceType                  = sets.New(v1.ServiceTypeClusterIP, v1.ServiceTypeNodePort, v1.ServiceTypeLoadBalancer, v1.ServiceTypeExternalName)
	supportedServiceInternalTrafficPolicy = sets.New(v1.ServiceInternalTrafficPolicyCluster, v1.ServiceInternalTrafficPolicyLocal)
	supportedServiceIPFamily              = sets.New(v1.IPv4Protocol, v1.IPv6Protocol)
	supportedServiceIPFamilyPolicy        = sets.New(v1.IPFamilyPolicySingleStack, v1.IPFamilyPolicyPreferDualStack, v1.IPFamilyPolicyRequireDualStack)
	supportedPortProtocols                = sets.New(v1.ProtocolTCP, v1.ProtocolUDP, v1.ProtocolSCTP)
	validExternalTrafficPolicies          = sets.New(v1.ServiceExternalTrafficPolicyCluster, v1.ServiceExternalTrafficPolicyLocal)
	supportedLoadBalancerIPMode           = sets.New(v1.LoadBalancerIPModeVIP, v1.LoadBalancerIPModeProxy)

	// Kept in kube's order rather than sorted, because kube lists them so in
	// the NotSupported message.
	supportedTrafficDistribution = []string{
		v1.ServiceTrafficDistributionPreferClose,
		v1.ServiceTrafficDistributionPreferSameZone,
		v1.ServiceTrafficDistributionPreferSameNode,
	}
)

// ValidateService validates a Service being created, metadata included
// (kube's ValidateServiceCreate).
func ValidateService(service *v1.Service) field.ErrorList {
	allErrs := ValidateObjectMeta(&service.ObjectMeta, true, ValidateServiceName, field.NewPath("metadata"))
	return append(allErrs, validateService(service, nil)...)
}

// ValidateServiceCreate validates a Service being created. Kube has no
// create-only Service rule beyond metadata, so this is ValidateService.
func ValidateServiceCreate(service *v1.Service) field.ErrorList {
	return ValidateService(service)
}

// ValidateServiceUpdate validates newSvc replacing oldSvc. Both must be the
// objects as kube would see them: newSvc defaulted and passed through the
// registry rewrites, with metadata.resourceVersion set (the generic store fills
// it in for unconditional updates before validating).
func ValidateServiceUpdate(newSvc, oldSvc *v1.Service) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&newSvc.ObjectMeta, &oldSvc.ObjectMeta, field.NewPath("metadata"))

	// A client may add or remove a secondary clusterIP or IP family, but never
	// change the primary one, unless the service goes to, from or stays
	// ExternalName.
	allErrs = append(allErrs, validateUpgradeDowngradeClusterIPs(oldSvc, newSvc)...)
	allErrs = append(allErrs, validateUpgradeDowngradeIPFamilies(oldSvc, newSvc)...)
	allErrs = append(allErrs, validateLoadBalancerClassField(oldSvc, newSvc)...)
	allErrs = append(allErrs, validateServiceExternalTrafficFieldsUpdate(oldSvc, newSvc)...)
	return append(allErrs, validateService(newSvc, oldSvc)...)
}

// ValidateServiceStatusUpdate validates an update of the status subresource;
// only metadata and status.loadBalancer are checked, against newSvc.Spec
// (which the status strategy has already reset to the old spec).
func ValidateServiceStatusUpdate(newSvc, oldSvc *v1.Service) field.ErrorList {
	allErrs := ValidateObjectMetaUpdate(&newSvc.ObjectMeta, &oldSvc.ObjectMeta, field.NewPath("metadata"))
	return append(allErrs, ValidateLoadBalancerStatus(&newSvc.Status.LoadBalancer, &oldSvc.Status.LoadBalancer,
		field.NewPath("status", "loadBalancer"), &newSvc.Spec)...)
}

func validateService(service, oldService *v1.Service) field.ErrorList {
	var allErrs field.ErrorList
	metaPath := field.NewPath("metadata")
	specPath := field.NewPath("spec")

	hintsVal, hintsSet := service.Annotations[v1.DeprecatedAnnotationTopologyAwareHints]
	modeVal, modeSet := service.Annotations[v1.AnnotationTopologyMode]
	if modeSet && hintsSet && modeVal != hintsVal {
		allErrs = append(allErrs, field.Invalid(metaPath.Child("annotations").Key(v1.AnnotationTopologyMode), modeVal,
			fmt.Sprintf("must match annotations[%s] when both are specified", v1.DeprecatedAnnotationTopologyAwareHints)))
	}

	headless := isHeadlessService(service)
	if len(service.Spec.Ports) == 0 && !headless && service.Spec.Type != v1.ServiceTypeExternalName {
		allErrs = append(allErrs, field.Required(specPath.Child("ports"), ""))
	}
	switch service.Spec.Type {
	case v1.ServiceTypeLoadBalancer:
		if headless {
			allErrs = append(allErrs, field.Invalid(specPath.Child("clusterIPs").Index(0), service.Spec.ClusterIPs[0], "may not be set to 'None' for LoadBalancer services"))
		}
	case v1.ServiceTypeNodePort:
		if headless {
			allErrs = append(allErrs, field.Invalid(specPath.Child("clusterIPs").Index(0), service.Spec.ClusterIPs[0], "may not be set to 'None' for NodePort services"))
		}
	case v1.ServiceTypeExternalName:
		// The registry copies clusterIP into clusterIPs, so only the plural
		// field is checked.
		if len(service.Spec.ClusterIPs) > 0 {
			allErrs = append(allErrs, field.Forbidden(specPath.Child("clusterIPs"), "may not be set for ExternalName services"))
		}
		if len(service.Spec.IPFamilies) > 0 {
			allErrs = append(allErrs, field.Forbidden(specPath.Child("ipFamilies"), "may not be set for ExternalName services"))
		}
		if service.Spec.IPFamilyPolicy != nil {
			allErrs = append(allErrs, field.Forbidden(specPath.Child("ipFamilyPolicy"), "may not be set for ExternalName services"))
		}
		// A trailing dot marks the CNAME as fully qualified.
		if cname := strings.TrimSuffix(service.Spec.ExternalName, "."); cname != "" {
			allErrs = append(allErrs, validateDNS1123Subdomain(cname, specPath.Child("externalName"))...)
		} else {
			allErrs = append(allErrs, field.Required(specPath.Child("externalName"), ""))
		}
	}

	portsPath := specPath.Child("ports")
	allPortNames := sets.New[string]()
	for i := range service.Spec.Ports {
		allErrs = append(allErrs, validateServicePort(&service.Spec.Ports[i], len(service.Spec.Ports) > 1, allPortNames, portsPath.Index(i))...)
	}

	if service.Spec.Selector != nil {
		allErrs = append(allErrs, unversionedvalidation.ValidateLabels(service.Spec.Selector, specPath.Child("selector"))...)
	}

	if service.Spec.SessionAffinity == "" {
		allErrs = append(allErrs, field.Required(specPath.Child("sessionAffinity"), ""))
	} else if !supportedSessionAffinityType.Has(service.Spec.SessionAffinity) {
		allErrs = append(allErrs, field.NotSupported(specPath.Child("sessionAffinity"), service.Spec.SessionAffinity, sets.List(supportedSessionAffinityType)))
	}
	switch service.Spec.SessionAffinity {
	case v1.ServiceAffinityClientIP:
		allErrs = append(allErrs, validateClientIPAffinityConfig(service.Spec.SessionAffinityConfig, specPath.Child("sessionAffinityConfig"))...)
	case v1.ServiceAffinityNone:
		if service.Spec.SessionAffinityConfig != nil {
			allErrs = append(allErrs, field.Forbidden(specPath.Child("sessionAffinityConfig"), fmt.Sprintf("must not be set when session affinity is %s", v1.ServiceAffinityNone)))
		}
	}

	allErrs = append(allErrs, ValidateServiceClusterIPsRelatedFields(service, oldService)...)

	// External IPs that the old object already had were accepted under older
	// rules and cannot be rejected now; new ones must parse.
	ipPath := specPath.Child("externalIPs")
	var existingExternalIPs []string
	if oldService != nil {
		existingExternalIPs = oldService.Spec.ExternalIPs
	}
	for i, ip := range service.Spec.ExternalIPs {
		idxPath := ipPath.Index(i)
		if errs := validation.IsValidIPForLegacyField(idxPath, ip, strictIPCIDRValidation, existingExternalIPs); len(errs) != 0 {
			allErrs = append(allErrs, errs...)
		} else {
			allErrs = append(allErrs, ValidateEndpointIP(ip, idxPath)...)
		}
	}

	if service.Spec.Type == "" {
		allErrs = append(allErrs, field.Required(specPath.Child("type"), ""))
	} else if !supportedServiceType.Has(service.Spec.Type) {
		allErrs = append(allErrs, field.NotSupported(specPath.Child("type"), service.Spec.Type, sets.List(supportedServiceType)))
	}

	if service.Spec.Type == v1.ServiceTypeClusterIP {
		for i := range service.Spec.Ports {
			if service.Spec.Ports[i].NodePort != 0 {
				allErrs = append(allErrs, field.Forbidden(portsPath.Index(i).Child("nodePort"), "may not be used when `type` is 'ClusterIP'"))
			}
		}
	}

	type protoPort struct {
		protocol v1.Protocol
		port     int32
	}
	nodePorts := map[protoPort]bool{}
	for i, port := range service.Spec.Ports {
		if port.NodePort == 0 {
			continue
		}
		key := protoPort{port.Protocol, port.NodePort}
		if nodePorts[key] {
			allErrs = append(allErrs, field.Duplicate(portsPath.Index(i).Child("nodePort"), port.NodePort))
		}
		nodePorts[key] = true
	}

	ports := map[protoPort]bool{}
	for i, port := range service.Spec.Ports {
		key := protoPort{port.Protocol, port.Port}
		if ports[key] {
			allErrs = append(allErrs, field.Duplicate(portsPath.Index(i), internalServicePort{Protocol: port.Protocol, Port: port.Port}))
		}
		ports[key] = true
	}

	if len(service.Spec.LoadBalancerSourceRanges) > 0 {
		// The capital L is kube's, kept because clients match on it.
		fieldPath := specPath.Child("LoadBalancerSourceRanges")
		if service.Spec.Type != v1.ServiceTypeLoadBalancer {
			allErrs = append(allErrs, field.Forbidden(fieldPath, "may only be used when `type` is 'LoadBalancer'"))
		}
		var existingSourceRanges []string
		if oldService != nil {
			for _, value := range oldService.Spec.LoadBalancerSourceRanges {
				existingSourceRanges = append(existingSourceRanges, strings.TrimSpace(value))
			}
		}
		for idx, value := range service.Spec.LoadBalancerSourceRanges {
			// Space padding is part of the API: values used to come from a
			// comma-separated annotation.
			value = strings.TrimSpace(value)
			allErrs = append(allErrs, validation.IsValidCIDRForLegacyField(fieldPath.Index(idx), value, strictIPCIDRValidation, existingSourceRanges)...)
		}
	} else if val, annotationSet := service.Annotations[v1.AnnotationLoadBalancerSourceRangesKey]; annotationSet {
		fieldPath := metaPath.Child("annotations").Key(v1.AnnotationLoadBalancerSourceRangesKey)
		if service.Spec.Type != v1.ServiceTypeLoadBalancer {
			allErrs = append(allErrs, field.Forbidden(fieldPath, "may only be used when `type` is 'LoadBalancer'"))
		}
		if oldService == nil || oldService.Annotations[v1.AnnotationLoadBalancerSourceRangesKey] != val {
			if val = strings.TrimSpace(val); val != "" {
				for _, value := range strings.Split(val, ",") {
					allErrs = append(allErrs, validation.IsValidCIDRForLegacyField(fieldPath, strings.TrimSpace(value), strictIPCIDRValidation, nil)...)
				}
			}
		}
	}

	if service.Spec.AllocateLoadBalancerNodePorts != nil && service.Spec.Type != v1.ServiceTypeLoadBalancer {
		allErrs = append(allErrs, field.Forbidden(specPath.Child("allocateLoadBalancerNodePorts"), "may only be used when `type` is 'LoadBalancer'"))
	}
	if service.Spec.Type == v1.ServiceTypeLoadBalancer && service.Spec.AllocateLoadBalancerNodePorts == nil {
		// kube reports this without the "spec." prefix; defaulting makes it
		// unreachable through the API anyway.
		allErrs = append(allErrs, field.Required(field.NewPath("allocateLoadBalancerNodePorts"), ""))
	}

	allErrs = append(allErrs, validateLoadBalancerClassField(nil, service)...)
	allErrs = append(allErrs, validateServiceExternalTrafficPolicy(service)...)
	allErrs = append(allErrs, validateServiceInternalTrafficFieldsValue(service)...)
	allErrs = append(allErrs, validateServiceTrafficDistribution(service)...)
	return allErrs
}

// internalServicePort has the field names, order and (absent) JSON tags of
// kube's internal core.ServicePort, whose JSON form is what kube prints in the
// "Duplicate value" of a repeated (protocol, port) pair.
type internalServicePort struct {
	Name        string
	Protocol    v1.Protocol
	AppProtocol *string
	Port        int32
	TargetPort  intstr.IntOrString
	NodePort    int32
}

func validateServicePort(sp *v1.ServicePort, requireName bool, allNames sets.Set[string], fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if requireName && sp.Name == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("name"), ""))
	} else if sp.Name != "" {
		allErrs = append(allErrs, validateDNS1123Label(sp.Name, fldPath.Child("name"))...)
		if allNames.Has(sp.Name) {
			allErrs = append(allErrs, field.Duplicate(fldPath.Child("name"), sp.Name))
		} else {
			allNames.Insert(sp.Name)
		}
	}

	for _, msg := range validation.IsValidPortNum(int(sp.Port)) {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("port"), sp.Port, msg))
	}

	if sp.Protocol == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("protocol"), ""))
	} else if !supportedPortProtocols.Has(sp.Protocol) {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("protocol"), sp.Protocol, sets.List(supportedPortProtocols)))
	}

	allErrs = append(allErrs, ValidatePortNumOrName(sp.TargetPort, fldPath.Child("targetPort"))...)

	if sp.AppProtocol != nil {
		allErrs = append(allErrs, validateQualifiedName(*sp.AppProtocol, fldPath.Child("appProtocol"))...)
	}

	// The v1 API has always tolerated targetPort on headless services, so
	// unlike the internal API's intent, it is not checked against port.
	return allErrs
}

// ValidatePortNumOrName checks a port given as a number (1-65535) or as an
// IANA_SVC_NAME, the way kube checks Service targetPorts and probe ports.
func ValidatePortNumOrName(port intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	switch port.Type {
	case intstr.Int:
		for _, msg := range validation.IsValidPortNum(port.IntValue()) {
			allErrs = append(allErrs, field.Invalid(fldPath, port.IntValue(), msg))
		}
	case intstr.String:
		for _, msg := range validation.IsValidPortName(port.StrVal) {
			allErrs = append(allErrs, field.Invalid(fldPath, port.StrVal, msg))
		}
	default:
		allErrs = append(allErrs, field.InternalError(fldPath, fmt.Errorf("unknown type: %v", port.Type)))
	}
	return allErrs
}

func validateClientIPAffinityConfig(config *v1.SessionAffinityConfig, fldPath *field.Path) field.ErrorList {
	detail := fmt.Sprintf("when session affinity type is %s", v1.ServiceAffinityClientIP)
	switch {
	case config == nil:
		return field.ErrorList{field.Required(fldPath, detail)}
	case config.ClientIP == nil:
		return field.ErrorList{field.Required(fldPath.Child("clientIP"), detail)}
	case config.ClientIP.TimeoutSeconds == nil:
		return field.ErrorList{field.Required(fldPath.Child("clientIP").Child("timeoutSeconds"), detail)}
	}
	timeout := config.ClientIP.TimeoutSeconds
	if *timeout <= 0 || *timeout > MaxClientIPServiceAffinitySeconds {
		// "less than" although the maximum itself is accepted: kube's wording.
		return field.ErrorList{field.Invalid(fldPath.Child("clientIP").Child("timeoutSeconds"), timeout,
			fmt.Sprintf("must be greater than 0 and less than %d", MaxClientIPServiceAffinitySeconds))}
	}
	return nil
}

func validateServiceExternalTrafficPolicy(service *v1.Service) field.ErrorList {
	var allErrs field.ErrorList
	fldPath := field.NewPath("spec")

	if !externallyAccessible(service) {
		if service.Spec.ExternalTrafficPolicy != "" {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("externalTrafficPolicy"), service.Spec.ExternalTrafficPolicy,
				"may only be set for externally-accessible services"))
		}
	} else if service.Spec.ExternalTrafficPolicy == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("externalTrafficPolicy"), ""))
	} else if !validExternalTrafficPolicies.Has(service.Spec.ExternalTrafficPolicy) {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("externalTrafficPolicy"),
			service.Spec.ExternalTrafficPolicy, sets.List(validExternalTrafficPolicies)))
	}

	if !needsHealthCheck(service) {
		if service.Spec.HealthCheckNodePort != 0 {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("healthCheckNodePort"), service.Spec.HealthCheckNodePort,
				"may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
		}
	} else if service.Spec.HealthCheckNodePort == 0 {
		allErrs = append(allErrs, field.Required(fldPath.Child("healthCheckNodePort"), ""))
	} else {
		for _, msg := range validation.IsValidPortNum(int(service.Spec.HealthCheckNodePort)) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("healthCheckNodePort"), service.Spec.HealthCheckNodePort, msg))
		}
	}
	return allErrs
}

func validateServiceExternalTrafficFieldsUpdate(before, after *v1.Service) field.ErrorList {
	if needsHealthCheck(before) && needsHealthCheck(after) && after.Spec.HealthCheckNodePort != before.Spec.HealthCheckNodePort {
		return field.ErrorList{field.Forbidden(field.NewPath("spec", "healthCheckNodePort"), "field is immutable")}
	}
	return nil
}

func validateServiceInternalTrafficFieldsValue(service *v1.Service) field.ErrorList {
	var allErrs field.ErrorList
	fldPath := field.NewPath("spec").Child("internalTrafficPolicy")
	if service.Spec.InternalTrafficPolicy == nil {
		// Other types (ExternalName) may carry the field: kube did not forbid
		// it before it went beta and must keep accepting stored objects.
		switch service.Spec.Type {
		case v1.ServiceTypeNodePort, v1.ServiceTypeLoadBalancer, v1.ServiceTypeClusterIP:
			allErrs = append(allErrs, field.Required(fldPath, ""))
		}
	} else if !supportedServiceInternalTrafficPolicy.Has(*service.Spec.InternalTrafficPolicy) {
		allErrs = append(allErrs, field.NotSupported(fldPath, *service.Spec.InternalTrafficPolicy, sets.List(supportedServiceInternalTrafficPolicy)))
	}
	return allErrs
}

func validateServiceTrafficDistribution(service *v1.Service) field.ErrorList {
	if service.Spec.TrafficDistribution == nil || slices.Contains(supportedTrafficDistribution, *service.Spec.TrafficDistribution) {
		return nil
	}
	return field.ErrorList{field.NotSupported(field.NewPath("spec").Child("trafficDistribution"), *service.Spec.TrafficDistribution, supportedTrafficDistribution)}
}

// ValidateServiceClusterIPsRelatedFields checks spec.clusterIP(s),
// spec.ipFamilies and spec.ipFamilyPolicy on their own and against each other
// (not against the cluster's configuration). It is exported because the
// registry must run it before allocating, as kube does: when it fails, kube
// returns only these errors, before the rest of validation runs. oldService is
// nil on create.
func ValidateServiceClusterIPsRelatedFields(service, oldService *v1.Service) field.ErrorList {
	// ExternalName services had all these fields checked to be unset.
	if service.Spec.Type == v1.ServiceTypeExternalName {
		return nil
	}

	var allErrs field.ErrorList
	specPath := field.NewPath("spec")
	clusterIPsField := specPath.Child("clusterIPs")
	ipFamiliesField := specPath.Child("ipFamilies")

	if service.Spec.ClusterIP != "" {
		if len(service.Spec.ClusterIPs) == 0 {
			allErrs = append(allErrs, field.Required(clusterIPsField, ""))
		} else if service.Spec.ClusterIPs[0] != service.Spec.ClusterIP {
			allErrs = append(allErrs, field.Invalid(clusterIPsField, service.Spec.ClusterIPs, "first value must match `clusterIP`"))
		}
	} else if len(service.Spec.ClusterIPs) != 0 {
		allErrs = append(allErrs, field.Invalid(clusterIPsField, service.Spec.ClusterIPs, "must be empty when `clusterIP` is not specified"))
	}

	seen := sets.New[v1.IPFamily]()
	for i, ipFamily := range service.Spec.IPFamilies {
		if !supportedServiceIPFamily.Has(ipFamily) {
			allErrs = append(allErrs, field.NotSupported(ipFamiliesField.Index(i), ipFamily, sets.List(supportedServiceIPFamily)))
		}
		// Rejecting duplicates is also what keeps two families dual-stack.
		if seen.Has(ipFamily) {
			allErrs = append(allErrs, field.Duplicate(ipFamiliesField.Index(i), ipFamily))
		}
		seen.Insert(ipFamily)
	}

	// A nil policy is fine: the allocator picks one.
	if p := service.Spec.IPFamilyPolicy; p != nil && !supportedServiceIPFamilyPolicy.Has(*p) {
		allErrs = append(allErrs, field.NotSupported(specPath.Child("ipFamilyPolicy"), p, sets.List(supportedServiceIPFamilyPolicy)))
	}

	var existingClusterIPs []string
	if oldService != nil {
		existingClusterIPs = oldService.Spec.ClusterIPs
	}
	hasInvalidIPs := false
	for i, clusterIP := range service.Spec.ClusterIPs {
		if i == 0 && clusterIP == v1.ClusterIPNone {
			if len(service.Spec.ClusterIPs) > 1 {
				hasInvalidIPs = true
				allErrs = append(allErrs, field.Invalid(clusterIPsField, service.Spec.ClusterIPs, "'None' must be the first and only value"))
			}
			continue
		}
		errs := validation.IsValidIPForLegacyField(clusterIPsField.Index(i), clusterIP, strictIPCIDRValidation, existingClusterIPs)
		hasInvalidIPs = hasInvalidIPs || len(errs) != 0
		allErrs = append(allErrs, errs...)
	}

	if len(service.Spec.ClusterIPs) > 2 {
		allErrs = append(allErrs, field.Invalid(clusterIPsField, service.Spec.ClusterIPs, "may only hold up to 2 values"))
	}

	// Family checks on unparseable IPs would only add noise.
	if hasInvalidIPs {
		return allErrs
	}

	if len(service.Spec.ClusterIPs) > 1 {
		dualStack, err := netutils.IsDualStackIPStrings(service.Spec.ClusterIPs)
		if err != nil {
			allErrs = append(allErrs, field.InternalError(clusterIPsField, fmt.Errorf("failed to check for dual stack with error:%v", err)))
		}
		if !dualStack {
			allErrs = append(allErrs, field.Invalid(clusterIPsField, service.Spec.ClusterIPs, "may specify no more than one IP for each IP family"))
		}
	}

	if !isHeadlessService(service) && len(service.Spec.ClusterIPs) > 0 && len(service.Spec.IPFamilies) > 0 {
		for i, ip := range service.Spec.ClusterIPs {
			if i > len(service.Spec.IPFamilies)-1 {
				break
			}
			if service.Spec.IPFamilies[i] == v1.IPv4Protocol && netutils.IsIPv6String(ip) {
				allErrs = append(allErrs, field.Invalid(clusterIPsField.Index(i), ip, fmt.Sprintf("expected an IPv4 value as indicated by `ipFamilies[%v]`", i)))
			}
			if service.Spec.IPFamilies[i] == v1.IPv6Protocol && !netutils.IsIPv6String(ip) {
				allErrs = append(allErrs, field.Invalid(clusterIPsField.Index(i), ip, fmt.Sprintf("expected an IPv6 value as indicated by `ipFamilies[%v]`", i)))
			}
		}
	}
	return allErrs
}

func validateUpgradeDowngradeClusterIPs(oldService, service *v1.Service) field.ErrorList {
	var allErrs field.ErrorList
	if service.Spec.Type == v1.ServiceTypeExternalName || oldService.Spec.Type == v1.ServiceTypeExternalName {
		return allErrs
	}
	if isHeadlessService(oldService) && isHeadlessService(service) {
		return allErrs
	}

	// kube reports the whole list as the bad value at index 0.
	primary := field.NewPath("spec", "clusterIPs").Index(0)
	oldIPs, newIPs := oldService.Spec.ClusterIPs, service.Spec.ClusterIPs
	switch {
	case len(oldIPs) == len(newIPs):
		for i, ip := range oldIPs {
			if ip != newIPs[i] {
				allErrs = append(allErrs, field.Invalid(field.NewPath("spec", "clusterIPs").Index(i), newIPs, "may not change once set"))
			}
		}
	case len(oldIPs) > len(newIPs):
		if len(newIPs) == 0 {
			allErrs = append(allErrs, field.Invalid(primary, newIPs, "primary clusterIP can not be unset"))
		}
		if len(oldIPs) > 0 && len(newIPs) > 0 && newIPs[0] != oldIPs[0] {
			allErrs = append(allErrs, field.Invalid(primary, newIPs, "may not change once set"))
		}
		// Releasing the secondary IP needs an explicit SingleStack policy.
		if len(newIPs) == 1 && (service.Spec.IPFamilyPolicy == nil || *service.Spec.IPFamilyPolicy != v1.IPFamilyPolicySingleStack) {
			allErrs = append(allErrs, field.Invalid(field.NewPath("spec", "ipFamilyPolicy"), service.Spec.IPFamilyPolicy, "must be set to 'SingleStack' when releasing the secondary clusterIP"))
		}
	default:
		if len(oldIPs) > 0 && newIPs[0] != oldIPs[0] {
			allErrs = append(allErrs, field.Invalid(primary, newIPs, "may not change once set"))
		}
	}
	return allErrs
}

func validateUpgradeDowngradeIPFamilies(oldService, service *v1.Service) field.ErrorList {
	var allErrs field.ErrorList
	if service.Spec.Type == v1.ServiceTypeExternalName || oldService.Spec.Type == v1.ServiceTypeExternalName {
		return allErrs
	}
	// Headless services may change families, and so may a service turning
	// headless or back.
	if isHeadlessService(oldService) || isHeadlessService(service) {
		return allErrs
	}

	primary := field.NewPath("spec", "ipFamilies").Index(0)
	oldFams, newFams := oldService.Spec.IPFamilies, service.Spec.IPFamilies
	switch {
	case len(oldFams) == len(newFams):
		for i, fam := range oldFams {
			if fam != newFams[i] {
				// Always index 0, whichever family changed: kube's path.
				allErrs = append(allErrs, field.Invalid(primary, newFams, "may not change once set"))
			}
		}
	case len(oldFams) > len(newFams):
		// kube tests clusterIPs here, not ipFamilies, and reports the
		// clusterIPs as the bad value in the next check; both reproduced.
		if len(service.Spec.ClusterIPs) == 0 {
			allErrs = append(allErrs, field.Invalid(primary, newFams, "primary ipFamily can not be unset"))
		}
		if len(newFams) > 0 && newFams[0] != oldFams[0] {
			allErrs = append(allErrs, field.Invalid(primary, service.Spec.ClusterIPs, "may not change once set"))
		}
		if len(newFams) == 1 && (service.Spec.IPFamilyPolicy == nil || *service.Spec.IPFamilyPolicy != v1.IPFamilyPolicySingleStack) {
			allErrs = append(allErrs, field.Invalid(field.NewPath("spec", "ipFamilyPolicy"), service.Spec.IPFamilyPolicy, "must be set to 'SingleStack' when releasing the secondary ipFamily"))
		}
	default:
		if len(oldFams) > 0 && len(newFams) > 0 && newFams[0] != oldFams[0] {
			allErrs = append(allErrs, field.Invalid(primary, service.Spec.ClusterIPs, "may not change once set"))
		}
	}
	return allErrs
}

func isHeadlessService(service *v1.Service) bool {
	return service != nil && len(service.Spec.ClusterIPs) == 1 && service.Spec.ClusterIPs[0] == v1.ClusterIPNone
}

// validateLoadBalancerClassField checks the class format and, when oldService
// is set, that a LoadBalancer keeps its class: the class decides which
// controller owns the load balancer.
func validateLoadBalancerClassField(oldService, service *v1.Service) field.ErrorList {
	var allErrs field.ErrorList
	fldPath := field.NewPath("spec", "loadBalancerClass")
	isLB := service.Spec.Type == v1.ServiceTypeLoadBalancer
	if oldService != nil && oldService.Spec.Type == v1.ServiceTypeLoadBalancer && isLB &&
		!sameStringPtr(oldService.Spec.LoadBalancerClass, service.Spec.LoadBalancerClass) {
		allErrs = append(allErrs, field.Invalid(fldPath, service.Spec.LoadBalancerClass, "may not change once set"))
	}
	if isLB {
		if service.Spec.LoadBalancerClass != nil {
			allErrs = append(allErrs, validateQualifiedName(*service.Spec.LoadBalancerClass, fldPath)...)
		}
	} else if service.Spec.LoadBalancerClass != nil {
		allErrs = append(allErrs, field.Forbidden(fldPath, "may only be used when `type` is 'LoadBalancer'"))
	}
	return allErrs
}

func sameStringPtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// ValidateLoadBalancerStatus checks status.loadBalancer for a Service with the
// given spec. oldStatus may be nil; ingress IPs it already had are accepted
// as they are.
func ValidateLoadBalancerStatus(status, oldStatus *v1.LoadBalancerStatus, fldPath *field.Path, spec *v1.ServiceSpec) field.ErrorList {
	var allErrs field.ErrorList
	ingrPath := fldPath.Child("ingress")
	if spec.Type != v1.ServiceTypeLoadBalancer && len(status.Ingress) != 0 {
		return append(allErrs, field.Forbidden(ingrPath, "may only be used when `spec.type` is 'LoadBalancer'"))
	}

	var existingIngressIPs []string
	if oldStatus != nil {
		for _, ingress := range oldStatus.Ingress {
			if ingress.IP != "" {
				existingIngressIPs = append(existingIngressIPs, ingress.IP)
			}
		}
	}
	for i, ingress := range status.Ingress {
		idxPath := ingrPath.Index(i)
		if ingress.IP != "" {
			allErrs = append(allErrs, validation.IsValidIPForLegacyField(idxPath.Child("ip"), ingress.IP, strictIPCIDRValidation, existingIngressIPs)...)
		}

		switch {
		case ingress.IPMode == nil:
			if ingress.IP != "" {
				allErrs = append(allErrs, field.Required(idxPath.Child("ipMode"), "must be specified when `ip` is set"))
			}
		case ingress.IP == "":
			allErrs = append(allErrs, field.Forbidden(idxPath.Child("ipMode"), "may not be specified when `ip` is not set"))
		case !supportedLoadBalancerIPMode.Has(*ingress.IPMode):
			allErrs = append(allErrs, field.NotSupported(idxPath.Child("ipMode"), ingress.IPMode, sets.List(supportedLoadBalancerIPMode)))
		}

		if ingress.Hostname != "" {
			for _, msg := range validation.IsDNS1123Subdomain(ingress.Hostname) {
				allErrs = append(allErrs, field.Invalid(idxPath.Child("hostname"), ingress.Hostname, msg))
			}
			if netutils.ParseIPSloppy(ingress.Hostname) != nil {
				allErrs = append(allErrs, field.Invalid(idxPath.Child("hostname"), ingress.Hostname, "must be a DNS name, not an IP address"))
			}
		}
	}
	return allErrs
}

// ValidateEndpointIP rejects addresses that make no sense as a destination
// for Service traffic (unspecified, loopback, link-local); kube applies it to
// Endpoints, EndpointSlices and, for historical reasons, spec.externalIPs.
func ValidateEndpointIP(ipAddress string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	ip := netutils.ParseIPSloppy(ipAddress)
	if ip == nil {
		return append(allErrs, field.Invalid(fldPath, ipAddress, "must be a valid IP address"))
	}
	if ip.IsUnspecified() {
		allErrs = append(allErrs, field.Invalid(fldPath, ipAddress, fmt.Sprintf("may not be unspecified (%v)", ipAddress)))
	}
	if ip.IsLoopback() {
		allErrs = append(allErrs, field.Invalid(fldPath, ipAddress, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
	}
	if ip.IsLinkLocalUnicast() {
		allErrs = append(allErrs, field.Invalid(fldPath, ipAddress, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
	}
	if ip.IsLinkLocalMulticast() {
		allErrs = append(allErrs, field.Invalid(fldPath, ipAddress, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"))
	}
	return allErrs
}

// externallyAccessible mirrors kube's service.ExternallyAccessible.
func externallyAccessible(service *v1.Service) bool {
	return service.Spec.Type == v1.ServiceTypeLoadBalancer ||
		service.Spec.Type == v1.ServiceTypeNodePort ||
		(service.Spec.Type == v1.ServiceTypeClusterIP && len(service.Spec.ExternalIPs) > 0)
}

// needsHealthCheck mirrors kube's service.NeedsHealthCheck.
func needsHealthCheck(service *v1.Service) bool {
	return service.Spec.Type == v1.ServiceTypeLoadBalancer && service.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal
}

// The origins below are kube's; clients never see them, but tests written
// against kube's validation may match on them.
func validateDNS1123Label(value string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(value) {
		allErrs = append(allErrs, field.Invalid(fldPath, value, msg).WithOrigin("format=k8s-short-name"))
	}
	return allErrs
}

func validateDNS1123Subdomain(value string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(value) {
		allErrs = append(allErrs, field.Invalid(fldPath, value, msg).WithOrigin("format=k8s-long-name"))
	}
	return allErrs
}

func validateQualifiedName(value string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, msg := range validation.IsQualifiedName(value) {
		allErrs = append(allErrs, field.Invalid(fldPath, value, msg).WithOrigin("format=qualified-name"))
	}
	return allErrs
}
