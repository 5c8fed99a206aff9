package nft_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/svcnet/svcnet/internal/proxy/model"
	"github.com/svcnet/svcnet/internal/proxy/nft"
)

// scaleOpt is testOpt with the default static sizes, as in production.
var scaleOpt = func() nft.Options { o := testOpt; o.StaticSizes = 0; return o }()

// bigState is services Services of endpoints endpoints each (every tenth a NodePort), endpoints
// spread over 100 nodes, this node being node-000.
func bigState(services, endpoints int) *model.State {
	st := &model.State{Services: map[model.ServicePortName]*model.ServicePort{}, Endpoints: map[model.ServicePortName][]model.Endpoint{},
		Node: model.Node{Name: "node-000", Zone: "zone-a"}}
	for i := range services {
		n := model.ServicePortName{Namespace: fmt.Sprintf("ns-%02d", i%100), Name: fmt.Sprintf("svc-%05d", i), Port: "http", Protocol: model.TCP}
		sp := &model.ServicePort{Name: n, ClusterIP: netip.AddrFrom4([4]byte{10, 96 + byte(i>>16), byte(i >> 8), byte(i)}), Port: 80}
		if i%10 == 0 {
			sp.NodePort = uint16(30000 + i/10)
		}
		st.Services[n] = sp
		for j := range endpoints {
			k := i*endpoints + j
			st.Endpoints[n] = append(st.Endpoints[n], model.Endpoint{
				IP: netip.AddrFrom4([4]byte{10, 128 + byte(k>>16), byte(k >> 8), byte(k)}), Port: 8080,
				NodeName: fmt.Sprintf("node-%03d", k%100), Ready: true, Serving: true,
			})
		}
	}
	return st
}

// BenchmarkBuild measures the pure function at 10,000 Services / 100,000 endpoints.
func BenchmarkBuild(b *testing.B) {
	st := bigState(10000, 10)
	for b.Loop() {
		nft.Build(st, scaleOpt)
	}
}

// BenchmarkFullSyncTx measures building the cold-start transaction (no kernel), Build included.
func BenchmarkFullSyncTx(b *testing.B) {
	st := bigState(10000, 10)
	for b.Loop() {
		s := nft.NewSyncer(nullBackend{}, scaleOpt)
		if _, err := s.Sync(context.Background(), st, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEndpointChange measures one endpoint change at 10,000 Services (no kernel): build the
// Service's objects, diff, produce the transaction.
func BenchmarkEndpointChange(b *testing.B) {
	st := bigState(10000, 10)
	s := nft.NewSyncer(nullBackend{}, scaleOpt)
	if _, err := s.Sync(context.Background(), st, nil); err != nil {
		b.Fatal(err)
	}
	name := st.SortedNames()[5000]
	eps := st.Endpoints[name]
	i := 0
	for b.Loop() {
		if i%2 == 0 {
			st.Endpoints[name] = eps[1:]
		} else {
			st.Endpoints[name] = eps
		}
		i++
		res, err := s.Sync(context.Background(), st, map[model.ServicePortName]bool{name: true})
		if err != nil || res.Ops == 0 {
			b.Fatal(err, res.Stats)
		}
	}
}

type nullBackend struct{}

func (nullBackend) List(context.Context) (nft.Listing, error) { return nft.Listing{}, nil }
func (nullBackend) Run(context.Context, *nft.Tx) error        { return nil }

// TestOperationCountAtScale: at 10,000 Services, one endpoint change is still a handful of
// operations, and no change is none (knftables' fake is too slow at this size; this counts the
// transaction).
func TestOperationCountAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 10,000 Services")
	}
	st := bigState(10000, 10)
	var last *nft.Tx
	s := nft.NewSyncer(recorder{tx: &last}, scaleOpt)
	start := time.Now()
	full, err := s.Sync(context.Background(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("full sync transaction: %d operations, %d chains, %d rules, %d elements, built in %v", full.Ops, full.Chains, full.Rules, full.Elements, time.Since(start))
	names := st.SortedNames()
	all := map[model.ServicePortName]bool{}
	for _, n := range names {
		all[n] = true
	}
	if res, _ := s.Sync(context.Background(), st, all); res.Ops != 0 {
		t.Errorf("no change: %d operations", res.Ops)
	}
	// The first change brings size 9 into use (the pick chains gain a rule); the next ones do not.
	for _, i := range []int{30, 42, 40} {
		name := names[i]
		st.Endpoints[name] = st.Endpoints[name][1:]
		res, err := s.Sync(context.Background(), st, map[model.ServicePortName]bool{name: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("one endpoint removed from %s (NodePort %d): %d operations\n%s", name, st.Services[name].NodePort, res.Ops, last)
		if i != 30 && res.Ops > 12 {
			t.Errorf("one endpoint change: %d operations", res.Ops)
		}
	}
}

type recorder struct{ tx **nft.Tx }

func (recorder) List(context.Context) (nft.Listing, error) { return nft.Listing{}, nil }
func (r recorder) Run(_ context.Context, tx *nft.Tx) error { *r.tx = tx; return nil }
