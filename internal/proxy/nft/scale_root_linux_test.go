package nft_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/svcnet/svcnet/internal/netnstest"
	"github.com/svcnet/svcnet/internal/proxy/model"
	"github.com/svcnet/svcnet/internal/proxy/nft"
)

// TestScaleNetlink measures, in a throwaway namespace, a cold full sync of 10,000 Services with
// 100,000 endpoints and single endpoint changes at that size, through the netlink backend.
// Set SVCNET_PROXY_SCALE=1 to run it (SVCNET_PROXY_SCALE=small: 100 Services). bench/proxy.sh runs
// the same measurement through the whole proxy, from API objects.
func TestScaleNetlink(t *testing.T) {
	if os.Getenv("SVCNET_PROXY_SCALE") == "" {
		t.Skip("set SVCNET_PROXY_SCALE=1 to run the scale measurement")
	}
	netnstest.RequireRoot(t)
	ns := netnstest.New(t)
	size := 10000
	if os.Getenv("SVCNET_PROXY_SCALE") == "small" {
		size = 100
	}
	st := bigState(size, 10)
	b, err := nft.NewNetlinkBackend(testTable, ns.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := nft.NewSyncer(b, scaleOpt)

	start := time.Now()
	full, err := s.Sync(context.Background(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cold full sync: %v (netlink encoding %v, kernel %v), %d operations, %d chains, %d rules, %d elements",
		time.Since(start), b.LastEncode, b.LastKernel, full.Ops, full.Chains, full.Rules, full.Elements)

	names := st.SortedNames()
	var lat, kern []time.Duration
	for i := range 400 {
		name := names[(i*37)%len(names)]
		eps := st.Endpoints[name]
		st.Endpoints[name] = slices.Delete(slices.Clone(eps), i%len(eps), i%len(eps)+1)
		t0 := time.Now()
		res, err := s.Sync(context.Background(), st, map[model.ServicePortName]bool{name: true})
		if err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		kern = append(kern, b.LastKernel)
		if res.Ops == 0 || res.Ops > 12 {
			t.Fatalf("%d operations for %s", res.Ops, name)
		}
		st.Endpoints[name] = eps
		if _, err := s.Sync(context.Background(), st, map[model.ServicePortName]bool{name: true}); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(lat)
	slices.Sort(kern)
	q := func(d []time.Duration, p int) time.Duration { return d[len(d)*p/100] }
	t.Logf("one endpoint change, %d samples: build+diff+kernel p50 %v p99 %v max %v; kernel alone p50 %v p99 %v",
		len(lat), q(lat, 50), q(lat, 99), lat[len(lat)-1], q(kern, 50), q(kern, 99))
}
