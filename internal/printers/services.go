package printers

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	discoveryv1beta1 "k8s.io/api/discovery/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
)

var serviceColumns = []metav1.TableColumnDefinition{
	nameColumn,
	{Name: "Type", Type: "string", Description: corev1.ServiceSpec{}.SwaggerDoc()["type"]},
	{Name: "Cluster-IP", Type: "string", Description: corev1.ServiceSpec{}.SwaggerDoc()["clusterIP"]},
	{Name: "External-IP", Type: "string", Description: corev1.ServiceSpec{}.SwaggerDoc()["externalIPs"]},
	{Name: "Port(s)", Type: "string", Description: corev1.ServiceSpec{}.SwaggerDoc()["ports"]},
	ageColumn,
	{Name: "Selector", Type: "string", Priority: 1, Description: corev1.ServiceSpec{}.SwaggerDoc()["selector"]},
}

var endpointsColumns = []metav1.TableColumnDefinition{
	nameColumn,
	{Name: "Endpoints", Type: "string", Description: corev1.Endpoints{}.SwaggerDoc()["subsets"]},
	ageColumn,
}

// Kube still describes these columns with the v1beta1 docs; the text is what
// clients show as column help, so it is kept as is.
var endpointSliceColumns = []metav1.TableColumnDefinition{
	nameColumn,
	{Name: "AddressType", Type: "string", Description: discoveryv1beta1.EndpointSlice{}.SwaggerDoc()["addressType"]},
	{Name: "Ports", Type: "string", Description: discoveryv1beta1.EndpointSlice{}.SwaggerDoc()["ports"]},
	{Name: "Endpoints", Type: "string", Description: discoveryv1beta1.EndpointSlice{}.SwaggerDoc()["endpoints"]},
	ageColumn,
}

func printService(svc *corev1.Service, now time.Time) metav1.TableRow {
	clusterIP := "<none>"
	if ip := serviceClusterIP(&svc.Spec); ip != "" {
		clusterIP = ip
	}
	ports := makePortString(svc.Spec.Ports)
	if ports == "" {
		ports = "<none>"
	}
	return metav1.TableRow{Cells: []any{
		svc.Name,
		string(svc.Spec.Type),
		clusterIP,
		serviceExternalIP(svc),
		ports,
		age(svc.CreationTimestamp, now),
		labels.FormatLabels(svc.Spec.Selector),
	}}
}

// serviceClusterIP is the first entry of the internal ClusterIPs that the v1
// conversion produces: spec.clusterIP wins when set, else clusterIPs[0].
func serviceClusterIP(spec *corev1.ServiceSpec) string {
	if spec.ClusterIP != "" {
		return spec.ClusterIP
	}
	if len(spec.ClusterIPs) > 0 {
		return spec.ClusterIPs[0]
	}
	return ""
}

// serviceExternalIP is kube's getServiceExternalIP for wide output: the
// server always prints wide, so load-balancer addresses are never clipped.
func serviceExternalIP(svc *corev1.Service) string {
	switch svc.Spec.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
		if len(svc.Spec.ExternalIPs) > 0 {
			return strings.Join(svc.Spec.ExternalIPs, ",")
		}
		return "<none>"
	case corev1.ServiceTypeLoadBalancer:
		lbIPs := loadBalancerIngress(svc.Status.LoadBalancer)
		if len(svc.Spec.ExternalIPs) > 0 {
			return strings.Join(append(lbIPs, svc.Spec.ExternalIPs...), ",")
		}
		if len(lbIPs) > 0 {
			return strings.Join(lbIPs, ",")
		}
		return "<pending>"
	case corev1.ServiceTypeExternalName:
		return svc.Spec.ExternalName
	}
	return "<unknown>"
}

// loadBalancerIngress returns the ingress points sorted and de-duplicated,
// an IP preferred over a hostname for the same entry.
func loadBalancerIngress(s corev1.LoadBalancerStatus) []string {
	result := sets.New[string]()
	for _, ing := range s.Ingress {
		if ing.IP != "" {
			result.Insert(ing.IP)
		} else if ing.Hostname != "" {
			result.Insert(ing.Hostname)
		}
	}
	return sets.List(result)
}

func makePortString(ports []corev1.ServicePort) string {
	pieces := make([]string, len(ports))
	for i := range ports {
		port := &ports[i]
		pieces[i] = fmt.Sprintf("%d/%s", port.Port, port.Protocol)
		if port.NodePort > 0 {
			pieces[i] = fmt.Sprintf("%d:%d/%s", port.Port, port.NodePort, port.Protocol)
		}
	}
	return strings.Join(pieces, ",")
}

func printEndpoints(ep *corev1.Endpoints, now time.Time) metav1.TableRow {
	return metav1.TableRow{Cells: []any{ep.Name, formatEndpoints(ep), age(ep.CreationTimestamp, now)}}
}

// formatEndpoints lists ready addresses as ip:port for every port (bare IPs
// for a subset without ports), showing the first three and counting the rest.
func formatEndpoints(ep *corev1.Endpoints) string {
	if len(ep.Subsets) == 0 {
		return "<none>"
	}
	const max = 3
	list := []string{}
	more := false
	count := 0
	for i := range ep.Subsets {
		ss := &ep.Subsets[i]
		if len(ss.Ports) == 0 {
			// Headless services may have no ports.
			count += len(ss.Addresses)
			for j := range ss.Addresses {
				if len(list) == max {
					more = true
					break
				}
				list = append(list, ss.Addresses[j].IP)
			}
			continue
		}
		for p := range ss.Ports {
			port := &ss.Ports[p]
			count += len(ss.Addresses)
			for j := range ss.Addresses {
				if len(list) == max {
					more = true
					break
				}
				list = append(list, net.JoinHostPort(ss.Addresses[j].IP, strconv.Itoa(int(port.Port))))
			}
		}
	}
	ret := strings.Join(list, ",")
	if more {
		return fmt.Sprintf("%s + %d more...", ret, count-max)
	}
	return ret
}

func printEndpointSlice(slice *discoveryv1.EndpointSlice, now time.Time) metav1.TableRow {
	return metav1.TableRow{Cells: []any{
		slice.Name,
		string(slice.AddressType),
		formatDiscoveryPorts(slice.Ports),
		formatDiscoveryEndpoints(slice.Endpoints),
		age(slice.CreationTimestamp, now),
	}}
}

func formatDiscoveryPorts(ports []discoveryv1.EndpointPort) string {
	const max = 3
	list := []string{}
	more := false
	count := 0
	for _, port := range ports {
		if len(list) < max {
			portNum := "*"
			if port.Port != nil {
				portNum = strconv.Itoa(int(*port.Port))
			} else if port.Name != nil {
				portNum = *port.Name
			}
			list = append(list, portNum)
		} else if len(list) == max {
			more = true
		}
		count++
	}
	return listWithMore(list, more, count, max)
}

// formatDiscoveryEndpoints lists addresses regardless of readiness, unlike
// Endpoints, because that is what kube prints for slices.
func formatDiscoveryEndpoints(endpoints []discoveryv1.Endpoint) string {
	const max = 3
	list := []string{}
	more := false
	count := 0
	for _, endpoint := range endpoints {
		for _, address := range endpoint.Addresses {
			if len(list) < max {
				list = append(list, address)
			} else if len(list) == max {
				more = true
			}
			count++
		}
	}
	return listWithMore(list, more, count, max)
}
