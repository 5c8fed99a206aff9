package agent

import (
	"context"
	"log/slog"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/svcnet/svcnet/internal/announce"
	"github.com/svcnet/svcnet/internal/controller/labelindex"
)

// announcer runs the load balancer announcer (package announce) of this node: it owns the pool
// addresses the election gives the node, re-deciding on every Service, Node or EndpointSlice
// change. It is registered before the informers start and runs once they have synced.
type announcer struct {
	a       *Agent
	svcs    coreinformers.ServiceInformer
	nodes   coreinformers.NodeInformer
	slices  discoverylisters.EndpointSliceLister
	synced  []cache.InformerSynced
	changed chan struct{}
}

// newAnnouncer registers the announcer's handlers on the agent's Service and Node informers and
// adds an EndpointSlice informer to sliceFactory (slimmed: the election reads only each endpoint's
// node and readiness).
func newAnnouncer(a *Agent, svcs coreinformers.ServiceInformer, nodes coreinformers.NodeInformer, sliceFactory informers.SharedInformerFactory) (*announcer, error) {
	an := &announcer{a: a, svcs: svcs, nodes: nodes, changed: make(chan struct{}, 1)}
	poke := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { an.poke() }, UpdateFunc: func(_, _ any) { an.poke() }, DeleteFunc: func(any) { an.poke() },
	}
	sliceInf := sliceFactory.Discovery().V1().EndpointSlices().Informer()
	if err := labelindex.AddSliceIndex(sliceInf); err != nil {
		return nil, err
	}
	for _, inf := range []cache.SharedIndexInformer{svcs.Informer(), nodes.Informer(), sliceInf} {
		if _, err := inf.AddEventHandler(poke); err != nil {
			return nil, err
		}
		an.synced = append(an.synced, inf.HasSynced)
	}
	an.slices = labelindex.NewSliceLister(sliceInf.GetIndexer())
	return an, nil
}

// slimSlice keeps what the election reads of a slice: its labels and each endpoint's node and
// readiness.
func slimSlice(obj any) (any, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	out := &discoveryv1.EndpointSlice{}
	out.Name, out.Namespace, out.Labels, out.ResourceVersion, out.UID = s.Name, s.Namespace, s.Labels, s.ResourceVersion, s.UID
	out.Endpoints = make([]discoveryv1.Endpoint, len(s.Endpoints))
	for i, ep := range s.Endpoints {
		out.Endpoints[i] = discoveryv1.Endpoint{NodeName: ep.NodeName, Conditions: discoveryv1.EndpointConditions{Ready: ep.Conditions.Ready}}
	}
	return out, nil
}

func (an *announcer) poke() {
	select {
	case an.changed <- struct{}{}:
	default:
	}
}

func (an *announcer) run(ctx context.Context) {
	if !cache.WaitForCacheSync(ctx.Done(), an.synced...) {
		return
	}
	uplink, err := announce.UplinkFor(an.a.cfg.NodeIP)
	if err != nil {
		slog.Error("load balancer announcer not started", "err", err)
		return
	}
	ann := &announce.Announcer{Uplink: uplink}
	slicesOf := func(ns, name string) []*discoveryv1.EndpointSlice {
		out, _ := an.slices.EndpointSlices(ns).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name}))
		return out
	}
	// Addresses stay on the node when the agent stops, as pods do: the node's kernel and proxy
	// keep serving them, and a restarted agent corrects the set from the link.
	retry := time.Duration(0)
	for {
		svcs, _ := an.svcs.Lister().List(labels.Everything())
		nodes, _ := an.nodes.Lister().List(labels.Everything())
		want := announce.Desired(an.a.cfg.NodeName, an.a.cfg.LoadBalancerPool, svcs, nodes, slicesOf)
		var wait <-chan time.Time
		if err := ann.Sync(want); err != nil {
			retry = min(max(2*retry, 100*time.Millisecond), 10*time.Second)
			slog.Warn("load balancer announcement failed; retrying", "err", err, "in", retry)
			wait = time.After(retry)
		} else {
			retry = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-an.changed:
		case <-wait:
		}
	}
}
