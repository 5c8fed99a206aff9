package dns

import (
	"net/netip"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The informers keep slim copies of the API objects (convention 8): only what DNS answers need. The
// transforms below run before an object reaches an informer's store, so the full object is garbage as soon
// as it has been converted. Each slim type embeds objMeta, which gives the store the namespace, name and
// resourceVersion it keys and compares by, and implements the rest of metav1.Object as no-ops.

// objMeta is the identity of a slim object.
type objMeta struct {
	namespace, name, resourceVersion string
}

func (m *objMeta) GetNamespace() string                                       { return m.namespace }
func (m *objMeta) SetNamespace(string)                                        {}
func (m *objMeta) GetName() string                                            { return m.name }
func (m *objMeta) SetName(string)                                             {}
func (m *objMeta) GetGenerateName() string                                    { return "" }
func (m *objMeta) SetGenerateName(string)                                     {}
func (m *objMeta) GetUID() types.UID                                          { return "" }
func (m *objMeta) SetUID(types.UID)                                           {}
func (m *objMeta) GetResourceVersion() string                                 { return m.resourceVersion }
func (m *objMeta) SetResourceVersion(string)                                  {}
func (m *objMeta) GetGeneration() int64                                       { return 0 }
func (m *objMeta) SetGeneration(int64)                                        {}
func (m *objMeta) GetSelfLink() string                                        { return "" }
func (m *objMeta) SetSelfLink(string)                                         {}
func (m *objMeta) GetCreationTimestamp() metav1.Time                          { return metav1.Time{} }
func (m *objMeta) SetCreationTimestamp(metav1.Time)                           {}
func (m *objMeta) GetDeletionTimestamp() *metav1.Time                         { return nil }
func (m *objMeta) SetDeletionTimestamp(*metav1.Time)                          {}
func (m *objMeta) GetDeletionGracePeriodSeconds() *int64                      { return nil }
func (m *objMeta) SetDeletionGracePeriodSeconds(*int64)                       {}
func (m *objMeta) GetLabels() map[string]string                               { return nil }
func (m *objMeta) SetLabels(map[string]string)                                {}
func (m *objMeta) GetAnnotations() map[string]string                          { return nil }
func (m *objMeta) SetAnnotations(map[string]string)                           {}
func (m *objMeta) GetFinalizers() []string                                    { return nil }
func (m *objMeta) SetFinalizers([]string)                                     {}
func (m *objMeta) GetOwnerReferences() []metav1.OwnerReference                { return nil }
func (m *objMeta) SetOwnerReferences([]metav1.OwnerReference)                 {}
func (m *objMeta) GetManagedFields() []metav1.ManagedFieldsEntry              { return nil }
func (m *objMeta) SetManagedFields(managedFields []metav1.ManagedFieldsEntry) {}

var _ metav1.Object = &objMeta{}

// Service kinds.
const (
	kindClusterIP    uint8 = iota // a virtual IP (ClusterIP, NodePort, LoadBalancer)
	kindHeadless                  // clusterIP: None: answers with the endpoints
	kindExternalName              // a CNAME
)

// port is a Service or EndpointSlice port. name and proto are lower case; port is -1 when the slice
// leaves it unset.
type port struct {
	name  string
	proto string
	port  int32
}

// service is the slim Service.
type service struct {
	objMeta
	kind            uint8
	publishNotReady bool         // spec.publishNotReadyAddresses or the tolerate-unready-endpoints annotation
	ips             []netip.Addr // cluster IPs (kindClusterIP only)
	externalName    string       // lower case, fully qualified (kindExternalName only)
	ports           []port
}

// endpoint is one address of an EndpointSlice endpoint.
type endpoint struct {
	addr     netip.Addr
	hostname string // lower case; "" when the endpoint has none
	ready    bool   // conditions.ready is true or unset
}

// slice is the slim EndpointSlice.
type slice struct {
	objMeta
	service   string // the kubernetes.io/service-name label
	ports     []port
	endpoints []endpoint
}

// pod is the slim Pod. ips is kept only when something needs it (hostname.subdomain records, the pod IP
// index for autopath and verified pod records).
type pod struct {
	objMeta
	hostname, subdomain string // lower case; both set or both empty
	ips                 []netip.Addr
	ready               bool // Ready condition true, not terminating, not finished
	running             bool // phase Running
}

// podStub stands for a pod DNS needs nothing of (no hostname and subdomain, and no pod IP index): the
// informer must still track it, but with nothing but its identity.
type podStub struct {
	objMeta
}

// namespace is the slim Namespace.
type namespace struct {
	objMeta
}

// tolerateUnreadyAnnotation is the annotation the DNS specification names as the old form of
// publishNotReadyAddresses.
const tolerateUnreadyAnnotation = "service.alpha.kubernetes.io/tolerate-unready-endpoints"

// interner shares the strings many objects repeat (namespace names, protocols).
type interner struct {
	mu sync.Mutex
	m  map[string]string
}

func newInterner() *interner { return &interner{m: map[string]string{}} }

func (in *interner) intern(s string) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if v, ok := in.m[s]; ok {
		return v
	}
	s = strings.Clone(s)
	in.m[s] = s
	return s
}

// forget drops s, so a deleted namespace's name does not stay interned forever.
func (in *interner) forget(s string) {
	in.mu.Lock()
	delete(in.m, s)
	in.mu.Unlock()
}

func protoName(p corev1.Protocol) string {
	switch p {
	case corev1.ProtocolTCP, "":
		return "tcp"
	case corev1.ProtocolUDP:
		return "udp"
	case corev1.ProtocolSCTP:
		return "sctp"
	}
	return strings.ToLower(string(p))
}

// transformer converts API objects to slim ones. It is safe for concurrent use.
type transformer struct {
	strs *interner
	// podIPs keeps every pod's IPs (for the pod IP index); otherwise only pods with a hostname and a
	// subdomain keep theirs.
	podIPs bool
}

func (t *transformer) meta(m *metav1.ObjectMeta) objMeta {
	return objMeta{namespace: t.strs.intern(m.Namespace), name: m.Name, resourceVersion: m.ResourceVersion}
}

func (t *transformer) service(s *corev1.Service) *service {
	out := &service{objMeta: t.meta(&s.ObjectMeta)}
	out.publishNotReady = s.Spec.PublishNotReadyAddresses || s.Annotations[tolerateUnreadyAnnotation] == "true"
	switch {
	case s.Spec.Type == corev1.ServiceTypeExternalName:
		out.kind = kindExternalName
		out.externalName = strings.ToLower(strings.TrimSuffix(s.Spec.ExternalName, ".")) + "."
	case s.Spec.ClusterIP == corev1.ClusterIPNone:
		out.kind = kindHeadless
	default:
		ips := s.Spec.ClusterIPs
		if len(ips) == 0 && s.Spec.ClusterIP != "" {
			ips = []string{s.Spec.ClusterIP}
		}
		for _, ip := range ips {
			if a, err := netip.ParseAddr(ip); err == nil {
				out.ips = append(out.ips, a.Unmap())
			}
		}
	}
	if len(s.Spec.Ports) > 0 {
		out.ports = make([]port, len(s.Spec.Ports))
		for i, p := range s.Spec.Ports {
			out.ports[i] = port{name: t.strs.intern(strings.ToLower(p.Name)), proto: protoName(p.Protocol), port: p.Port}
		}
	}
	return out
}

func (t *transformer) slice(s *discoveryv1.EndpointSlice) *slice {
	out := &slice{objMeta: t.meta(&s.ObjectMeta), service: s.Labels[discoveryv1.LabelServiceName]}
	if len(s.Ports) > 0 {
		out.ports = make([]port, len(s.Ports))
		for i, p := range s.Ports {
			o := port{port: -1, proto: "tcp"}
			if p.Name != nil {
				o.name = t.strs.intern(strings.ToLower(*p.Name))
			}
			if p.Protocol != nil {
				o.proto = protoName(*p.Protocol)
			}
			if p.Port != nil {
				o.port = *p.Port
			}
			out.ports[i] = o
		}
	}
	if s.AddressType == discoveryv1.AddressTypeFQDN {
		return out
	}
	n := 0
	for i := range s.Endpoints {
		n += len(s.Endpoints[i].Addresses)
	}
	if n > 0 {
		out.endpoints = make([]endpoint, 0, n)
	}
	for i := range s.Endpoints {
		e := &s.Endpoints[i]
		ready := e.Conditions.Ready == nil || *e.Conditions.Ready
		host := ""
		if e.Hostname != nil {
			host = strings.ToLower(*e.Hostname)
		}
		for _, a := range e.Addresses {
			addr, err := netip.ParseAddr(a)
			if err != nil {
				continue
			}
			out.endpoints = append(out.endpoints, endpoint{addr: addr.Unmap(), hostname: host, ready: ready})
		}
	}
	return out
}

// pod converts a Pod: to a *pod when DNS uses it, else to a *podStub.
func (t *transformer) pod(p *corev1.Pod) any {
	if !t.podIPs && (p.Spec.Hostname == "" || p.Spec.Subdomain == "") {
		return &podStub{objMeta: t.meta(&p.ObjectMeta)}
	}
	out := &pod{objMeta: t.meta(&p.ObjectMeta)}
	if p.Spec.Hostname != "" && p.Spec.Subdomain != "" {
		out.hostname = strings.ToLower(p.Spec.Hostname)
		out.subdomain = strings.ToLower(p.Spec.Subdomain)
	}
	finished := p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	out.running = p.Status.Phase == corev1.PodRunning
	if !finished && p.DeletionTimestamp == nil {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				out.ready = c.Status == corev1.ConditionTrue
				break
			}
		}
	}
	if (out.hostname != "" || t.podIPs) && !finished {
		ips := p.Status.PodIPs
		if len(ips) == 0 && p.Status.PodIP != "" {
			ips = []corev1.PodIP{{IP: p.Status.PodIP}}
		}
		for _, ip := range ips {
			if a, err := netip.ParseAddr(ip.IP); err == nil {
				out.ips = append(out.ips, a.Unmap())
			}
		}
	}
	return out
}

// transform is the informers' TransformFunc. Objects that are already slim pass through unchanged, as
// client-go requires a transform to be idempotent.
func (t *transformer) transform(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Service:
		return t.service(o), nil
	case *discoveryv1.EndpointSlice:
		return t.slice(o), nil
	case *corev1.Pod:
		return t.pod(o), nil
	case *service, *slice, *pod, *podStub, *namespace:
		return obj, nil
	case *corev1.Namespace:
		return &namespace{objMeta: t.meta(&o.ObjectMeta)}, nil
	}
	return obj, nil
}
