// Package controller runs svcnet's cluster-wide controllers (the kube-controller-manager role):
// EndpointSlices, Endpoints, EndpointSlice mirroring, ReplicaSets, Deployments, StatefulSets,
// scheduling, node lifecycle, namespace deletion
// and garbage collection, under leader election so that several replicas can run and only one acts.
package controller

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/discovery"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/svcnet/svcnet/internal/controller/deployment"
	"github.com/svcnet/svcnet/internal/controller/endpoints"
	"github.com/svcnet/svcnet/internal/controller/endpointslice"
	"github.com/svcnet/svcnet/internal/controller/endpointslicemirroring"
	"github.com/svcnet/svcnet/internal/controller/gc"
	"github.com/svcnet/svcnet/internal/controller/loadbalancer"
	"github.com/svcnet/svcnet/internal/controller/namespace"
	"github.com/svcnet/svcnet/internal/controller/nodelifecycle"
	"github.com/svcnet/svcnet/internal/controller/replicaset"
	"github.com/svcnet/svcnet/internal/controller/scheduler"
	"github.com/svcnet/svcnet/internal/controller/statefulset"
	"github.com/svcnet/svcnet/internal/lbpool"
)

// Options of the controllers.
type Options struct {
	// Workers per controller.
	Workers int
	// EndpointWorkers per endpoint controller (EndpointSlice, Endpoints, EndpointSlice mirroring):
	// kube's --concurrent-service-endpoint-syncs, --concurrent-endpoint-syncs and
	// --mirroring-concurrent-service-endpoint-syncs, all 5 by default. A sync mostly waits for its
	// one API write, so more workers than cores keep a burst of Service changes from queueing.
	EndpointWorkers int
	// LoadBalancerPool is where LoadBalancer Services get their addresses (empty: nowhere; a
	// cloud provider or another implementation may serve them).
	LoadBalancerPool lbpool.Pool
	// MaxEndpointsPerSlice caps the endpoints of one EndpointSlice (kube's default is 100).
	MaxEndpointsPerSlice int32
	// LeaderElect makes replicas compete for the kube-system/svcnet-controller-manager Lease.
	LeaderElect bool
	// Identity is this replica's name in the Lease; a restarted replica with the same identity takes
	// the lease back at once instead of waiting for it to expire.
	Identity string
	// NodeMonitorGracePeriod is how long a node may go without a heartbeat before it is marked
	// unreachable (kube's default: 40 s).
	NodeMonitorGracePeriod time.Duration
}

// Run starts every controller and blocks until ctx ends.
func Run(ctx context.Context, cfg *rest.Config, o Options) error {
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.EndpointWorkers == 0 {
		o.EndpointWorkers = 5
	}
	if o.MaxEndpointsPerSlice == 0 {
		o.MaxEndpointsPerSlice = 100
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 500, 1000
	// The Endpoints controller uses v1 Endpoints by design; the API's deprecation warning on every
	// request would only fill the log.
	cfg.WarningHandler = rest.NoWarnings{}
	// Protobuf, as kube-controller-manager uses: listing 100,000 pods decodes several times faster.
	typedCfg := rest.CopyConfig(cfg)
	typedCfg.ContentType = runtime.ContentTypeProtobuf
	typedCfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	kube, err := kubernetes.NewForConfig(typedCfg)
	if err != nil {
		return err
	}
	if !o.LeaderElect {
		return runAll(ctx, cfg, kube, o)
	}
	return runLeading(ctx, kube, o.Identity, func(ctx context.Context) error { return runAll(ctx, cfg, kube, o) })
}

func runAll(ctx context.Context, cfg *rest.Config, kube kubernetes.Interface, o Options) error {
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		return err
	}
	resources, err := Deletable(disc)
	if err != nil {
		return err
	}
	// The controllers read names, owners, finalizers and deletion state; dropping managedFields keeps
	// their caches a fraction of the size, as kube-controller-manager does.
	factory := metadatainformer.NewSharedInformerFactoryWithOptions(meta, 0, metadatainformer.WithTransform(stripManagedFields))
	typed := kubeinformers.NewSharedInformerFactoryWithOptions(kube, 0, kubeinformers.WithTransform(stripManagedFields))
	informers := map[schema.GroupVersionResource]cache.SharedIndexInformer{}
	for _, r := range resources {
		if sharedTyped[r.GVR] {
			// As kube-controller-manager's InformerFactory: a resource the typed controllers watch
			// anyway is read from their informer, not listed, watched and cached a second time as
			// metadata (every pod status change was sent twice; at 30,000 pods the second cache held
			// about 150 MB).
			if inf, err := typed.ForResource(r.GVR); err == nil {
				informers[r.GVR] = inf.Informer()
				continue
			}
		}
		informers[r.GVR] = factory.ForResource(r.GVR).Informer()
	}
	collector := gc.New(meta, resources, informers)
	nsc := namespace.New(meta, kube, resources, informers)
	slices := endpointslice.New(kube, typed, o.MaxEndpointsPerSlice)
	eps := endpoints.New(kube, typed)
	mirror := endpointslicemirroring.New(kube, typed, endpointslicemirroring.DefaultMaxEndpointsPerSubset)
	lbc := loadbalancer.New(kube, typed, o.LoadBalancerPool)
	rsc := replicaset.New(kube, typed)
	dc := deployment.New(kube, typed)
	ssc := statefulset.New(kube, typed)
	sched := scheduler.New(kube, typed)
	lifecycle := nodelifecycle.New(kube, typed, nodelifecycle.Options{GracePeriod: o.NodeMonitorGracePeriod})
	typed.Start(ctx.Done())
	factory.Start(ctx.Done())
	for gvr, inf := range informers {
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			return fmt.Errorf("sync %s: %w", gvr, ctx.Err())
		}
	}
	slog.Info("controllers started", "resources", len(resources))
	go collector.Run(ctx, o.Workers)
	go nsc.Run(ctx, o.Workers)
	go slices.Run(ctx, o.EndpointWorkers)
	go eps.Run(ctx, o.EndpointWorkers)
	go mirror.Run(ctx, o.EndpointWorkers)
	go lbc.Run(ctx, o.Workers)
	go rsc.Run(ctx, o.Workers)
	go dc.Run(ctx, o.Workers)
	go ssc.Run(ctx, o.Workers)
	go sched.Run(ctx, o.Workers)
	go lifecycle.Run(ctx, o.Workers)
	<-ctx.Done()
	return nil
}

// Deletable lists the served resources that support list, watch and delete, with their kinds.
func Deletable(disc discovery.DiscoveryInterface) ([]gc.Resource, error) {
	var lists []*metav1.APIResourceList
	var err error
	for i := 0; i < 50; i++ {
		lists, err = disc.ServerPreferredResources()
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("discover resources: %w", err)
	}
	var out []gc.Resource
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			verbs := sets.New(r.Verbs...)
			if !verbs.HasAll("list", "watch", "delete") {
				continue
			}
			out = append(out, gc.Resource{GVR: gv.WithResource(r.Name), Kind: gv.WithKind(r.Kind), Namespaced: r.Namespaced})
		}
	}
	return out, nil
}

// sharedTyped are the resources the controllers of runAll watch through the typed factory; the
// garbage collector and the namespace controller share those informers.
var sharedTyped = map[schema.GroupVersionResource]bool{
	{Version: "v1", Resource: "pods"}:                                      true,
	{Version: "v1", Resource: "services"}:                                  true,
	{Version: "v1", Resource: "endpoints"}:                                 true,
	{Version: "v1", Resource: "nodes"}:                                     true,
	{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}: true,
	{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}:      true,
	{Group: "apps", Version: "v1", Resource: "replicasets"}:                true,
	{Group: "apps", Version: "v1", Resource: "deployments"}:                true,
	{Group: "apps", Version: "v1", Resource: "statefulsets"}:               true,
}

func stripManagedFields(obj interface{}) (interface{}, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}
