// Package apiserver is svcnet's Kubernetes API server: the generic machinery of k8s.io/apiserver
// (REST verbs, watch, patch, server-side apply, tables, discovery, OpenAPI) over etcd, serving the
// official types with kube-apiserver's defaulting, validation and Service allocation.
package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	apimachineryversion "k8s.io/apimachinery/pkg/version"
	nslifecycle "k8s.io/apiserver/pkg/admission/plugin/namespace/lifecycle"
	"k8s.io/apiserver/pkg/authentication/request/bearertoken"
	"k8s.io/apiserver/pkg/authentication/token/tokenfile"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	basecompatibility "k8s.io/component-base/compatibility"

	"github.com/svcnet/svcnet/internal/allocator"
	"github.com/svcnet/svcnet/internal/apis/core/defaults"
	"github.com/svcnet/svcnet/internal/apiserver/scheme"
	"github.com/svcnet/svcnet/internal/openapi"
	"github.com/svcnet/svcnet/internal/printers"
	"github.com/svcnet/svcnet/internal/registry"
	svcregistry "github.com/svcnet/svcnet/internal/registry/service"
)

// KubeVersion is the Kubernetes API version svcnet implements and reports on /version.
const KubeVersion = "1.35.10"

// Config is what the API server needs; zero values are filled by Default.
type Config struct {
	EtcdServers   []string
	EtcdTLS       storagebackend.TransportConfig
	BindAddress   string
	Port          int
	CertFile      string
	KeyFile       string
	TokenFile     string // kube's token CSV: token,user,uid,"group1,group2"
	ServiceCIDR   string
	NodePortRange string
	// AdvertiseAddress is the address the `kubernetes` Service's endpoints point at.
	AdvertiseAddress string
	WatchCache       bool
	// FeatureGates are kube-apiserver's --feature-gates, "Name=true,Other=false", applied over
	// svcnet's defaults (DefaultFeatureGates).
	FeatureGates string
	// Listener, when set, is used instead of binding BindAddress:Port (tests pass a :0 listener).
	Listener net.Listener
}

// Default fills unset fields with svcnet's defaults.
func (c *Config) Default() {
	if c.BindAddress == "" {
		c.BindAddress = "127.0.0.1"
	}
	if c.Port == 0 {
		c.Port = 6443
	}
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = "10.96.0.0/12"
	}
	if c.NodePortRange == "" {
		c.NodePortRange = "30000-32767"
	}
}

// Validate reports every bad setting at once, each with how to fix it.
func (c *Config) Validate() error {
	var errs []error
	if len(c.EtcdServers) == 0 {
		errs = append(errs, errors.New("--etcd-servers is required: the address of an etcd client URL, e.g. http://127.0.0.1:2379"))
	}
	if err := CheckFeatureGates(c.FeatureGates); err != nil {
		errs = append(errs, err)
	}
	if net.ParseIP(c.BindAddress) == nil {
		errs = append(errs, fmt.Errorf("--bind-address %q is not an IP address", c.BindAddress))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("--secure-port %d is out of range 0-65535", c.Port))
	}
	if c.CertFile == "" || c.KeyFile == "" {
		errs = append(errs, errors.New("--tls-cert-file and --tls-private-key-file are required (svcnet up generates them in the data dir)"))
	}
	if c.TokenFile == "" {
		errs = append(errs, errors.New("--token-auth-file is required: a CSV of token,user,uid,groups"))
	}
	// kube-apiserver refuses ranges with more than 20 host bits; so do we.
	if p, err := netip.ParsePrefix(c.ServiceCIDR); err != nil || !p.Addr().Is4() || p.Bits() > 30 || p.Bits() < 12 {
		errs = append(errs, fmt.Errorf("--service-cluster-ip-range %q must be an IPv4 CIDR between /12 and /30, e.g. 10.96.0.0/12", c.ServiceCIDR))
	}
	if _, _, err := ParsePortRange(c.NodePortRange); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ParsePortRange parses "30000-32767" into base and size.
func ParsePortRange(s string) (base, size int, err error) {
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if !ok || err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
		return 0, 0, fmt.Errorf("--service-node-port-range %q must be LOW-HIGH within 1-65535, e.g. 30000-32767", s)
	}
	return a, b - a + 1, nil
}

// Server is a prepared API server.
type Server struct {
	cfg     Config
	generic *genericapiserver.GenericAPIServer
	etcd    *clientv3.Client
	alloc   *svcregistry.Allocators
	// bootstrapped is closed once the built-in namespaces and the kubernetes Service exist.
	bootstrapped chan struct{}
}

// effectiveVersion reports svcnet's Kubernetes version on /version, whatever the build stamped into
// k8s.io/component-base (clients such as kubectl parse it).
type effectiveVersion struct {
	basecompatibility.MutableEffectiveVersion
}

func (v effectiveVersion) Info() *apimachineryversion.Info {
	info := v.MutableEffectiveVersion.Info()
	info.GitVersion = "v" + KubeVersion
	info.GitCommit, info.GitTreeState, info.BuildDate = "", "clean", ""
	return info
}

// New builds the server; Run starts it.
func New(cfg Config) (*Server, error) {
	cfg.Default()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := setFeatureGates(cfg.FeatureGates); err != nil {
		return nil, err
	}
	gc := genericapiserver.NewRecommendedConfig(scheme.Codecs)
	gc.EffectiveVersion = effectiveVersion{basecompatibility.NewEffectiveVersionFromString(KubeVersion, "", "")}

	secure := genericoptions.NewSecureServingOptions().WithLoopback()
	secure.BindAddress = net.ParseIP(cfg.BindAddress)
	secure.BindPort = cfg.Port
	secure.ServerCert.CertKey = genericoptions.CertKey{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile}
	if cfg.Listener != nil {
		secure.Listener = cfg.Listener
		secure.BindPort = cfg.Listener.Addr().(*net.TCPAddr).Port
	}
	if err := secure.ApplyTo(&gc.SecureServing, &gc.LoopbackClientConfig); err != nil {
		return nil, fmt.Errorf("serving on %s:%d: %w", cfg.BindAddress, cfg.Port, err)
	}
	tokens, err := tokenfile.NewCSV(cfg.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("read token file: %w", err)
	}
	gc.Authentication.Authenticator = bearertoken.New(tokens)
	gc.Authorization.Authorizer = authorizerfactory.NewAlwaysAllowAuthorizer()

	namer := openapinamer.NewDefinitionNamer(scheme.Scheme)
	gc.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(openapi.GetOpenAPIDefinitions, namer)
	gc.OpenAPIConfig.Info.Title = "Kubernetes"
	gc.OpenAPIConfig.Info.Version = "v" + KubeVersion
	gc.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(openapi.GetOpenAPIDefinitions, namer)
	gc.OpenAPIV3Config.Info.Title = "Kubernetes"
	gc.OpenAPIV3Config.Info.Version = "v" + KubeVersion

	// NamespaceLifecycle, as in kube-apiserver: no objects in missing or terminating namespaces, and
	// the system namespaces can never be deleted. It reads namespaces through this server's own client.
	loopback, err := kubernetes.NewForConfig(gc.LoopbackClientConfig)
	if err != nil {
		return nil, err
	}
	nsInformers := informers.NewSharedInformerFactory(loopback, 0)
	lifecycle, err := nslifecycle.NewLifecycle(sets.NewString(metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic))
	if err != nil {
		return nil, err
	}
	lifecycle.SetExternalKubeInformerFactory(nsInformers)
	lifecycle.SetExternalKubeClientSet(loopback)
	if err := lifecycle.ValidateInitialization(); err != nil {
		return nil, err
	}
	gc.AdmissionControl = lifecycle

	opts := newRESTOptions(cfg.EtcdServers, cfg.EtcdTLS, cfg.WatchCache)
	gc.RESTOptionsGetter = opts
	// Nothing here is slow to serve; long timeouts only hide bugs.
	gc.RequestTimeout = 60 * time.Second

	completed := gc.Complete()
	gs, err := completed.New("svcnet-apiserver", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return nil, fmt.Errorf("create API server: %w", err)
	}

	cli, err := newEtcdClient(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, generic: gs, etcd: cli, bootstrapped: make(chan struct{})}
	if err := s.installAPIs(opts); err != nil {
		cli.Close()
		return nil, err
	}
	gs.AddPostStartHookOrDie("svcnet-namespace-informer", func(hctx genericapiserver.PostStartHookContext) error {
		nsInformers.Start(hctx.Done())
		return nil
	})
	gs.AddPostStartHookOrDie("svcnet-bootstrap", func(hctx genericapiserver.PostStartHookContext) error {
		client, err := kubernetes.NewForConfig(hctx.LoopbackClientConfig)
		if err != nil {
			return err
		}
		go s.bootstrap(hctx, client)
		return nil
	})
	return s, nil
}

func newEtcdClient(cfg Config) (*clientv3.Client, error) {
	ccfg := clientv3.Config{Endpoints: cfg.EtcdServers, DialTimeout: 10 * time.Second}
	if cfg.EtcdTLS.CertFile != "" || cfg.EtcdTLS.TrustedCAFile != "" {
		tlsCfg, err := etcdTLS(cfg.EtcdTLS)
		if err != nil {
			return nil, err
		}
		ccfg.TLS = tlsCfg
	}
	cli, err := clientv3.New(ccfg)
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %v: %w", cfg.EtcdServers, err)
	}
	return cli, nil
}

func (s *Server) installAPIs(opts *restOptions) error {
	ipCodec, err := allocator.NewIPCodec(s.cfg.ServiceCIDR)
	if err != nil {
		return err
	}
	base, size, _ := ParsePortRange(s.cfg.NodePortRange)
	s.alloc = &svcregistry.Allocators{
		IPs: allocator.NewRegistry(s.etcd, "/registry/svcnet/clusterips/", ipCodec, ipCodec.Size(),
			allocator.StaticBand(ipCodec.Size(), 16, 16, 256)),
		IPCodec: ipCodec,
		Ports: allocator.NewRegistry(s.etcd, "/registry/svcnet/nodeports/", allocator.PortCodec{Base: base, Size: size}, size,
			allocator.StaticBand(size, 16, 32, 128)),
		PortBase: base, PortSize: size,
	}

	storages := map[schema.GroupVersion]map[string]rest.Storage{}
	add := func(gv schema.GroupVersion, name string, st rest.Storage) {
		if storages[gv] == nil {
			storages[gv] = map[string]rest.Storage{}
		}
		storages[gv][name] = st
	}
	for gv, list := range resources() {
		for _, r := range list {
			st, err := registry.NewStore(opts, r)
			if err != nil {
				return err
			}
			add(gv, r.GroupResource.Resource, registry.Wrap(st, r))
			if r.Kind.HasStatus {
				add(gv, r.GroupResource.Resource+"/status", registry.NewStatusREST(st, r.Kind))
			}
			if gv == appsv1.SchemeGroupVersion {
				add(gv, r.GroupResource.Resource+"/scale", registry.NewScaleREST(st))
			}
			if r.GroupResource.Resource == "pods" {
				add(gv, "pods/binding", registry.NewBindingREST(st))
			}
		}
	}

	core := corev1.SchemeGroupVersion
	svcKind := serviceKind()
	svcKind.PrepareUpdate = func(o, old runtime.Object) {
		defaults.DropTypeDependentFields(o.(*corev1.Service), old.(*corev1.Service))
	}
	svcRes := registry.Resource{
		GroupResource: corev1.Resource("services"), Singular: "service", Kind: svcKind,
		New: func() runtime.Object { return &corev1.Service{} }, NewList: func() runtime.Object { return &corev1.ServiceList{} },
		Table: printers.For(corev1.Resource("services")), ShortNames: []string{"svc"}, Categories: []string{"all"},
	}
	// A Service and its allocation records are written in one etcd transaction.
	svcOpts := wrappedOptions{restOptions: opts, wrap: func(inner storage.Interface, config *storagebackend.ConfigForResource) storage.Interface {
		return &svcregistry.CreateStorage{Interface: inner, Allocators: s.alloc, Client: s.etcd, Codec: config.Codec, Prefix: opts.backend.Prefix + "/"}
	}}
	svc, err := registry.NewStore(svcOpts, svcRes)
	if err != nil {
		return err
	}
	svc.BeginCreate = s.alloc.BeginCreate
	svc.BeginUpdate = s.alloc.BeginUpdate
	svc.AfterDelete = s.alloc.AfterDelete
	add(core, "services", registry.Wrap(svc, svcRes))
	add(core, "services/status", registry.NewStatusREST(svc, svcKind))

	ns, err := registry.NewNamespaceREST(opts, printers.For(corev1.Resource("namespaces")))
	if err != nil {
		return err
	}
	add(core, "namespaces", ns)
	add(core, "namespaces/status", ns.Status())
	add(core, "namespaces/finalize", ns.Finalize())

	legacy := genericapiserver.NewDefaultAPIGroupInfo("", scheme.Scheme, scheme.ParameterCodec, scheme.Codecs)
	legacy.VersionedResourcesStorageMap["v1"] = storages[core]
	if err := s.generic.InstallLegacyAPIGroup(genericapiserver.DefaultLegacyAPIPrefix, &legacy); err != nil {
		return fmt.Errorf("install core API: %w", err)
	}
	var groups []*genericapiserver.APIGroupInfo
	for _, gv := range scheme.Served[1:] {
		if storages[gv] == nil {
			continue
		}
		g := genericapiserver.NewDefaultAPIGroupInfo(gv.Group, scheme.Scheme, scheme.ParameterCodec, scheme.Codecs)
		g.VersionedResourcesStorageMap[gv.Version] = storages[gv]
		groups = append(groups, &g)
	}
	if err := s.generic.InstallAPIGroups(groups...); err != nil {
		return fmt.Errorf("install API groups: %w", err)
	}
	return nil
}

// Run serves until ctx ends. ready is closed once requests are served.
func (s *Server) Run(ctx context.Context, ready chan<- struct{}) error {
	defer s.etcd.Close()
	if err := s.alloc.IPs.Start(ctx); err != nil {
		return err
	}
	if err := s.alloc.Ports.Start(ctx); err != nil {
		return err
	}
	if ready != nil {
		go func() {
			select {
			case <-s.bootstrapped:
				close(ready)
			case <-ctx.Done():
			}
		}()
	}
	return s.generic.PrepareRun().RunWithContext(ctx)
}
