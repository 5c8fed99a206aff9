package apiserver

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	serverstorage "k8s.io/apiserver/pkg/server/storage"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/storage/storagebackend/factory"
	"k8s.io/client-go/tools/cache"

	"github.com/svcnet/svcnet/internal/apiserver/scheme"
)

// keyPrefixes is Kubernetes' etcd key layout, so a svcnet etcd reads like a kube-apiserver's one
// (etcdctl get --prefix /registry/services/specs/ ...).
var keyPrefixes = map[schema.GroupResource]string{
	{Resource: "services"}:                                  "services/specs",
	{Resource: "endpoints"}:                                 "services/endpoints",
	{Resource: "pods"}:                                      "pods",
	{Resource: "nodes"}:                                     "minions",
	{Resource: "namespaces"}:                                "namespaces",
	{Resource: "events"}:                                    "events",
	{Group: "apps", Resource: "deployments"}:                "deployments",
	{Group: "apps", Resource: "replicasets"}:                "replicasets",
	{Group: "apps", Resource: "statefulsets"}:               "statefulsets",
	{Group: "discovery.k8s.io", Resource: "endpointslices"}: "endpointslices",
	{Group: "coordination.k8s.io", Resource: "leases"}:      "leases",
}

// restOptions gives every store its etcd config and key prefix. Objects are stored as protobuf, as
// kube-apiserver does, which is both smaller and faster to decode than JSON.
type restOptions struct {
	backend    storagebackend.Config
	watchCache bool
}

func newRESTOptions(servers []string, tls storagebackend.TransportConfig, watchCache bool) *restOptions {
	cfg := storagebackend.NewDefaultConfig("/registry", nil)
	cfg.Transport.ServerList = servers
	cfg.Transport.CertFile, cfg.Transport.KeyFile, cfg.Transport.TrustedCAFile = tls.CertFile, tls.KeyFile, tls.TrustedCAFile
	// Compaction keeps etcd's history bounded; watchers older than it get 410 Gone, as in kube.
	cfg.CompactionInterval = 5 * time.Minute
	return &restOptions{backend: *cfg, watchCache: watchCache}
}

func (o *restOptions) GetRESTOptions(gr schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
	prefix, ok := keyPrefixes[gr]
	if !ok {
		return generic.RESTOptions{}, fmt.Errorf("no storage for resource %s", gr)
	}
	gv := scheme.Scheme.PrioritizedVersionsForGroup(gr.Group)
	if len(gv) == 0 {
		return generic.RESTOptions{}, fmt.Errorf("no version for group %q", gr.Group)
	}
	codec, versioner, err := serverstorage.NewStorageCodec(serverstorage.StorageCodecConfig{
		StorageMediaType:  runtime.ContentTypeProtobuf,
		StorageSerializer: scheme.Codecs,
		StorageVersion:    gv[0],
		MemoryVersion:     schema.GroupVersion{Group: gr.Group, Version: runtime.APIVersionInternal},
	})
	if err != nil {
		return generic.RESTOptions{}, fmt.Errorf("storage codec for %s: %w", gr, err)
	}
	backend := o.backend
	backend.Codec = codec
	backend.EncodeVersioner = versioner
	decorator := generic.UndecoratedStorage
	if o.watchCache {
		decorator = genericregistry.StorageWithCacher()
	}
	return generic.RESTOptions{
		StorageConfig:           backend.ForResource(gr),
		Decorator:               decorator,
		EnableGarbageCollection: true,
		DeleteCollectionWorkers: 4,
		ResourcePrefix:          prefix,
		CountMetricPollPeriod:   time.Minute,
	}, nil
}

// wrappedOptions wraps the storage a store gets (the watch cache over etcd) at construction, before
// the store starts any goroutine that reads it.
type wrappedOptions struct {
	*restOptions
	wrap func(inner storage.Interface, config *storagebackend.ConfigForResource) storage.Interface
}

func (w wrappedOptions) GetRESTOptions(gr schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
	o, err := w.restOptions.GetRESTOptions(gr, example)
	if err != nil {
		return o, err
	}
	inner := o.Decorator
	o.Decorator = func(config *storagebackend.ConfigForResource, resourcePrefix string, keyFunc func(obj runtime.Object) (string, error),
		newFunc, newListFunc func() runtime.Object, getAttrsFunc storage.AttrFunc, trigger storage.IndexerFuncs,
		indexers *cache.Indexers) (storage.Interface, factory.DestroyFunc, error) {
		s, destroy, err := inner(config, resourcePrefix, keyFunc, newFunc, newListFunc, getAttrsFunc, trigger, indexers)
		if err != nil {
			return nil, nil, err
		}
		return w.wrap(s, config), destroy, nil
	}
	return o, nil
}
