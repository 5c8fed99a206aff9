package apiserver

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/transport"
	"k8s.io/utils/ptr"
)

// SystemNamespaces are created at start and can never be deleted.
var SystemNamespaces = []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease}

// bootstrap creates the built-in namespaces and the `kubernetes` Service (with the first address of
// the service CIDR), then keeps allocations repaired. It retries until the context ends.
func (s *Server) bootstrap(ctx context.Context, client kubernetes.Interface) {
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if err := s.ensureBuiltins(ctx, client); err != nil {
			slog.Warn("bootstrap failed, retrying", "err", err)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return
	}
	close(s.bootstrapped)
	s.repairLoop(ctx, client)
}

func (s *Server) ensureBuiltins(ctx context.Context, client kubernetes.Interface) error {
	for _, name := range SystemNamespaces {
		_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
	}
	first := s.alloc.IPCodec.Addr(0).String()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		Spec: corev1.ServiceSpec{
			ClusterIP: first,
			Ports: []corev1.ServicePort{{Name: "https", Protocol: corev1.ProtocolTCP, Port: 443,
				TargetPort: intstr.FromInt32(int32(s.cfg.Port))}},
			SessionAffinity: corev1.ServiceAffinityNone,
		},
	}
	_, err := client.CoreV1().Services(metav1.NamespaceDefault).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create kubernetes service: %w", err)
	}
	return s.ensureKubernetesEndpoints(ctx, client)
}

// ensureKubernetesEndpoints points the kubernetes Service at this API server, when it has an address
// other clients can reach (kube rejects loopback endpoints, and so do we).
func (s *Server) ensureKubernetesEndpoints(ctx context.Context, client kubernetes.Interface) error {
	ip := net.ParseIP(s.cfg.AdvertiseAddress)
	if ip == nil || ip.IsLoopback() || ip.IsUnspecified() {
		return nil
	}
	port := int32(s.cfg.Port)
	ep := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{discoveryv1.LabelSkipMirror: "true"}},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: ip.String()}},
			Ports:     []corev1.EndpointPort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}},
		}},
	}
	if _, err := client.CoreV1().Endpoints(metav1.NamespaceDefault).Update(ctx, ep, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("write kubernetes endpoints: %w", err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip.String()}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: &port, Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	cur, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Create(ctx, slice, metav1.CreateOptions{})
	case err == nil:
		slice.ResourceVersion = cur.ResourceVersion
		_, err = client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Update(ctx, slice, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("write kubernetes endpointslice: %w", err)
	}
	return nil
}

func etcdTLS(c storagebackend.TransportConfig) (*tls.Config, error) {
	cfg, err := transport.TLSConfigFor(&transport.Config{TLS: transport.TLSConfig{
		CAFile: c.TrustedCAFile, CertFile: c.CertFile, KeyFile: c.KeyFile}})
	if err != nil {
		return nil, fmt.Errorf("etcd TLS: %w", err)
	}
	return cfg, nil
}
