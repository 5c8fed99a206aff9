package nft_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/knftables"

	"github.com/svcnet/svcnet/internal/proxy/model"
	"github.com/svcnet/svcnet/internal/proxy/nft"
)

// cluster builds n Services with k endpoints each (every third one a NodePort, every fifth with
// affinity), endpoints alternating between this node and node-2.
func cluster(n, k int, drop map[string]bool) []any {
	var objs []any
	for i := range n {
		name := fmt.Sprintf("svc-%03d", i)
		s := svc(name, fmt.Sprintf("10.96.%d.%d", i/200, i%200+10), func(s *corev1.Service) {
			if i%3 == 0 {
				s.Spec.Type = corev1.ServiceTypeNodePort
				s.Spec.Ports[0].NodePort = int32(30000 + i)
			}
			if i%5 == 0 {
				s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			}
		}, tcp("http", 80, 8080))
		objs = append(objs, s)
		var eps []ep
		for j := range k {
			node := nodeName
			if j%2 == 1 {
				node = "node-2"
			}
			ip := fmt.Sprintf("10.244.%d.%d", j%2+1, (i*k+j)%250+2)
			if drop[ip+"/"+name] {
				continue
			}
			eps = append(eps, ep{ip: ip, node: node})
		}
		objs = append(objs, slice(name, name+"-1", httpPorts, eps...))
	}
	return objs
}

// servicePorts names the ports of a Service in st (and in other, when given).
func servicePorts(name string, sts ...*model.State) map[model.ServicePortName]bool {
	out := map[model.ServicePortName]bool{}
	for _, st := range sts {
		for n := range st.Services {
			if n.Name == name {
				out[n] = true
			}
		}
	}
	return out
}

func partial(t *testing.T, s *nft.Syncer, st *model.State, changed map[model.ServicePortName]bool) nft.Result {
	t.Helper()
	if s.NeedsFull() {
		t.Fatal("syncer unexpectedly needs a full sync")
	}
	res, err := s.Sync(context.Background(), st, changed)
	if err != nil {
		t.Fatalf("partial sync: %v", err)
	}
	if res.Full {
		t.Fatal("expected a partial sync")
	}
	return res
}

// lastTx renders the fake's last transaction in our operation syntax.
func lastTx(fake *knftables.Fake) string {
	var b strings.Builder
	for _, line := range strings.Split(fake.LastTransaction.String(), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		b.WriteString(strings.Replace(line, " inet svcnet ", " ", 1) + "\n")
	}
	return b.String()
}

func without(objs []any, name string) []any {
	var out []any
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Service:
			if o.Name == name {
				continue
			}
		case *discoveryv1.EndpointSlice:
			if o.Labels[discoveryv1.LabelServiceName] == name {
				continue
			}
		}
		out = append(out, o)
	}
	return out
}

// normalized makes dumps comparable: element lines are sorted (the fake keeps insertion order, the
// kernel hash order), and an address's endpoint slots are listed as a sorted set, since which slot
// an endpoint occupies depends on the order it arrived in (by design: a change moves at most one).
func normalized(dump string) string {
	var rest, elems []string
	slots := map[string][]string{}
	for _, l := range strings.Split(dump, "\n") {
		if !strings.HasPrefix(l, "add element ") {
			rest = append(rest, l)
			continue
		}
		f := strings.Fields(l)
		if set := f[4]; strings.HasPrefix(set, "endpoints-") || strings.HasPrefix(set, "nodeport-endpoints-") {
			body := strings.TrimSuffix(strings.TrimPrefix(l[strings.Index(l, "{"):], "{ "), " }")
			key, val, _ := strings.Cut(body, " : ")
			key = key[:strings.LastIndex(key, " . ")]
			slots[set+" "+key] = append(slots[set+" "+key], val)
			continue
		}
		elems = append(elems, l)
	}
	for k, v := range slots {
		slices.Sort(v)
		elems = append(elems, "slots "+k+" : "+strings.Join(v, ", "))
	}
	slices.Sort(elems)
	return strings.Join(append(rest, elems...), "\n")
}

// checkConverged compares the fake with a fresh full sync of st.
func checkConverged(t *testing.T, fake *knftables.Fake, st *model.State) error {
	t.Helper()
	fresh, _ := apply(t, st, testOpt)
	if diff := cmp.Diff(normalized(fresh.Dump()), normalized(fake.Dump())); diff != "" {
		return fmt.Errorf("table differs from a fresh full sync (-fresh +got):\n%s", diff)
	}
	return nil
}

func TestOperationCounts(t *testing.T) {
	before := state(testNode, cluster(20, 3, nil)...)
	fake, s := apply(t, before, testOpt)
	full := fake.LastTransaction

	// Nothing changed: no transaction at all.
	all := map[model.ServicePortName]bool{}
	for n := range before.Services {
		all[n] = true
	}
	if res := partial(t, s, before, all); res.Ops != 0 {
		t.Errorf("no-change sync sent %d operations", res.Ops)
	}
	if res := partial(t, s, before, nil); res.Ops != 0 {
		t.Errorf("empty sync sent %d operations", res.Ops)
	}
	if fake.LastTransaction != full {
		t.Errorf("no-change syncs ran a transaction")
	}

	// svc-002 has 3 endpoints; svc-001 too, and svc-004 will keep a Service of size 2 in use.
	two := state(testNode, cluster(20, 3, map[string]bool{"10.244.2.15/svc-004": true})...)
	partial(t, s, two, servicePorts("svc-004", two))

	// One endpoint (on this node) of svc-001 goes away: its slot is taken by its last endpoint, its
	// size changes, its hairpin entry goes. Nothing else.
	after := state(testNode, cluster(20, 3, map[string]bool{"10.244.1.5/svc-001": true, "10.244.2.15/svc-004": true})...)
	res := partial(t, s, after, servicePorts("svc-001", after))
	want := `delete element endpoints-cluster { 10.96.0.11 . tcp . 80 . 0 }
delete element endpoints-cluster { 10.96.0.11 . tcp . 80 . 2 }
delete element hairpin { 10.244.1.5 . 10.244.1.5 }
delete element size-cluster-3 { 10.96.0.11 . tcp . 80 }
add element endpoints-cluster { 10.96.0.11 . tcp . 80 . 0 : 10.244.2.6 . 8080 }
add element size-cluster-2 { 10.96.0.11 . tcp . 80 }
`
	if diff := cmp.Diff(want, lastTx(fake)); diff != "" {
		t.Errorf("one endpoint removed (-want +got):\n%s", diff)
	}
	if res.Ops != 6 {
		t.Errorf("one endpoint removed: %d operations, want 6", res.Ops)
	}
	// And back: it takes the free slot at the end.
	res = partial(t, s, two, servicePorts("svc-001", two))
	t.Logf("one endpoint added back:\n%s", lastTx(fake))
	if res.Ops != 4 {
		t.Errorf("one endpoint added back: %d operations, want 4", res.Ops)
	}
	if err := checkConverged(t, fake, two); err != nil {
		t.Error(err)
	}

	// A Service deleted: its elements go, nothing else.
	removed := state(testNode, without(cluster(20, 3, map[string]bool{"10.244.2.15/svc-004": true}), "svc-003")...)
	res = partial(t, s, removed, servicePorts("svc-003", two))
	for _, line := range strings.Split(strings.TrimSpace(lastTx(fake)), "\n") {
		if !strings.Contains(line, "10.96.0.13") && !strings.Contains(line, "30003") && !strings.Contains(line, "hairpin") {
			t.Errorf("deleting svc-003 touched %q", line)
		}
	}
	t.Logf("delete a NodePort Service with 3 endpoints: %d operations", res.Ops)
	if err := checkConverged(t, fake, removed); err != nil {
		t.Error(err)
	}

	// An affinity Service (per-Service chains): an endpoint change rewrites its chain.
	aff := state(testNode, without(cluster(20, 3, map[string]bool{"10.244.2.15/svc-004": true, "10.244.2.33/svc-010": true}), "svc-003")...)
	res = partial(t, s, aff, servicePorts("svc-010", aff))
	t.Logf("affinity Service, one endpoint removed: %d operations", res.Ops)
	if err := checkConverged(t, fake, aff); err != nil {
		t.Error(err)
	}
}

// TestPartialSyncsConverge: whatever order changes arrive in and however they are grouped into
// syncs, the table ends equal to a full sync of the final state, and a further sync is free.
func TestPartialSyncsConverge(t *testing.T) {
	final := state(testNode, cluster(12, 4, map[string]bool{"10.244.1.2/svc-000": true})...)
	for seed := range 20 {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		drop := map[string]bool{}
		for i := range 12 {
			drop[fmt.Sprintf("10.244.2.%d/svc-%03d", (i*4+1)%250+2, i)] = r.IntN(2) == 0
		}
		cur := state(testNode, cluster(10, 3, drop)...)
		fake, s := apply(t, cur, testOpt)
		for range 5 {
			mid := state(testNode, cluster(8+r.IntN(6), 1+r.IntN(4), drop)...)
			applyRandomly(t, r, s, cur, mid)
			cur = mid
		}
		applyRandomly(t, r, s, cur, final)
		if err := checkConverged(t, fake, final); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if err := s.CheckIndex(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		all := servicePorts("", final)
		for n := range final.Services {
			all[n] = true
		}
		if res := partial(t, s, final, all); res.Ops != 0 {
			t.Fatalf("seed %d: a converged table still got %d operations", seed, res.Ops)
		}
	}
}

// applyRandomly moves the syncer from one state to another in randomly grouped partial syncs, each
// applying a mix of the two states (as the proxy does when changes arrive while it syncs).
func applyRandomly(t *testing.T, r *rand.Rand, s *nft.Syncer, from, to *model.State) {
	t.Helper()
	var order []model.ServicePortName
	seen := map[model.ServicePortName]bool{}
	for _, st := range []*model.State{from, to} {
		for n := range st.Services {
			if !seen[n] {
				seen[n] = true
				order = append(order, n)
			}
		}
	}
	slices.SortFunc(order, model.ServicePortName.Compare)
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	mix := &model.State{Services: map[model.ServicePortName]*model.ServicePort{}, Endpoints: map[model.ServicePortName][]model.Endpoint{}, Node: to.Node}
	for n, sp := range from.Services {
		mix.Services[n], mix.Endpoints[n] = sp, from.Endpoints[n]
	}
	for len(order) > 0 {
		k := 1 + r.IntN(len(order))
		batch := map[model.ServicePortName]bool{}
		for _, n := range order[:k] {
			batch[n] = true
			if sp := to.Services[n]; sp != nil {
				mix.Services[n], mix.Endpoints[n] = sp, to.Endpoints[n]
			} else {
				delete(mix.Services, n)
				delete(mix.Endpoints, n)
			}
		}
		order = order[k:]
		partial(t, s, mix, batch)
	}
}

// TestAdoption: a new syncer (an agent restart) adopts a table left by an earlier one, corrects it,
// and leaves live affinity sets' contents alone.
func TestAdoption(t *testing.T) {
	old := state(testNode, cluster(10, 3, nil)...)
	fake, _ := apply(t, old, testOpt)
	tx := fake.NewTransaction()
	tx.Add(&knftables.Chain{Name: "service-STALE000-default/gone/tcp/http"})
	tx.Add(&knftables.Rule{Chain: "service-STALE000-default/gone/tcp/http", Rule: "drop"})
	tx.Add(&knftables.Set{Name: "affinity-STALE000-default/gone/tcp/http__10.244.1.2/80", Type: "ipv4_addr"})
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}

	now := state(testNode, without(cluster(10, 2, nil), "svc-004")...)
	s := nft.NewSyncer(&nft.KnftablesBackend{NFT: fake}, testOpt)
	res, err := s.Sync(context.Background(), now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkConverged(t, fake, now); err != nil {
		t.Fatal(err)
	}
	ops := lastTx(fake)
	if strings.Contains(ops, "delete table") {
		t.Errorf("adoption replaced the table")
	}
	live := 0
	for n := range now.Services {
		for _, set := range s.Rules(n).Sets {
			if !strings.HasPrefix(set.Name, "affinity-") {
				continue
			}
			live++
			for _, line := range strings.Split(ops, "\n") {
				if strings.Contains(line, " "+set.Name) && !strings.HasPrefix(line, "add set") {
					t.Errorf("adoption touched a live affinity set: %s", line)
				}
			}
		}
	}
	if live == 0 {
		t.Fatal("no affinity sets in the test state")
	}
	t.Logf("adoption: %d operations", res.Ops)
	if res := partial(t, s, now, servicePorts("svc-001", now)); res.Ops != 0 {
		t.Errorf("after adoption, a no-change sync sent %d operations", res.Ops)
	}
}

// TestConflictingExternalIPs: two Services claiming the same external IP and port resolve the same
// way whichever is applied first.
func TestConflictingExternalIPs(t *testing.T) {
	mk := func(name, ip string, e ep) []any {
		return []any{
			svc(name, ip, func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"192.0.2.50"} }, tcp("http", 80, 8080)),
			slice(name, name+"-1", httpPorts, e),
		}
	}
	a, b := mk("aaa", "10.96.1.1", remoteEP), mk("bbb", "10.96.1.2", remoteEP2)
	both := state(testNode, append(slices.Clone(a), b...)...)
	for _, first := range []string{"aaa", "bbb"} {
		fake, s := apply(t, state(testNode), testOpt)
		mix := state(testNode, map[string][]any{"aaa": a, "bbb": b}[first]...)
		partial(t, s, mix, servicePorts(first, mix))
		partial(t, s, both, servicePorts("aaa", both))
		partial(t, s, both, servicePorts("bbb", both))
		if err := checkConverged(t, fake, both); err != nil {
			t.Errorf("%s first: %v", first, err)
		}
		el := fake.Table.Maps["endpoints-cluster"].FindElement("192.0.2.50", "tcp", "80", "0")
		if el == nil || el.Value[0] != "10.244.2.6" {
			t.Errorf("%s first: the conflict went to %v", first, el)
		}
		// Removing the winner hands the address to the other.
		onlyB := state(testNode, b...)
		partial(t, s, onlyB, servicePorts("aaa", both))
		el = fake.Table.Maps["endpoints-cluster"].FindElement("192.0.2.50", "tcp", "80", "0")
		if el == nil || el.Value[0] != "10.244.2.7" {
			t.Errorf("%s first, aaa deleted: %v", first, el)
		}
	}
}

// TestFullSyncGroupsElementsBySet: a full sync sends each set's elements together (so that a
// netlink message carries many of them), sets in the order they first appear, and each element
// once even when several Service ports want it (the ports of one Service share its ClusterIP).
func TestFullSyncGroupsElementsBySet(t *testing.T) {
	for _, tc := range []struct {
		name string
		objs []any
	}{
		{"20 Services", cluster(20, 3, nil)},
		{"a Service with two ports", []any{
			svc("web", "10.96.0.50", nil, tcp("http", 80, 8080), udp("dns", 53)),
			slice("web", "web-1", []discoveryv1.EndpointPort{eport("http", corev1.ProtocolTCP, 8080), eport("dns", corev1.ProtocolUDP, 5353)}, localEP, remoteEP),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tx *nft.Tx
			s := nft.NewSyncer(recorder{tx: &tx}, testOpt)
			if _, err := s.Sync(context.Background(), state(testNode, tc.objs...), nil); err != nil {
				t.Fatal(err)
			}
			done := map[string]bool{}
			seen := map[string]bool{}
			prev := ""
			for _, op := range tx.Ops {
				if op.Verb != nft.AddElement {
					continue
				}
				if op.Set.Name != prev {
					if done[op.Set.Name] {
						t.Errorf("elements of %s come in two runs", op.Set.Name)
					}
					done[prev], prev = true, op.Set.Name
				}
				if k := op.String(); seen[k] {
					t.Errorf("sent twice: %s", k)
				} else {
					seen[k] = true
				}
			}
			if len(seen) == 0 {
				t.Fatal("no elements")
			}
			if err := s.CheckIndex(); err != nil {
				t.Error(err)
			}
		})
	}
}
