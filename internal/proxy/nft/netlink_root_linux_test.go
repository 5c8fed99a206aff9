package nft_test

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/knftables"

	"github.com/svcnet/svcnet/internal/netnstest"
	"github.com/svcnet/svcnet/internal/proxy/model"
	"github.com/svcnet/svcnet/internal/proxy/nft"
)

// listTable is the kernel's own rendering of the table, with the order of sets, maps and chains
// (creation order) and of elements (hash order) normalised away.
func listTable(t *testing.T, ns *netnstest.NS) string {
	t.Helper()
	out := ns.MustExec(t, "nft", "list", "table", "inet", testTable)
	out = regexp.MustCompile(`(?m)^\s+$`).ReplaceAllString(out, "")
	var blocks []string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			blocks = append(blocks, normalizeElements(strings.Join(cur, "\n")))
			cur = nil
		}
	}
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "\tset "), strings.HasPrefix(l, "\tmap "), strings.HasPrefix(l, "\tchain "):
			flush()
			cur = append(cur, l)
		case l == "\t}":
			cur = append(cur, l)
			flush()
		case len(cur) > 0:
			cur = append(cur, l)
		}
	}
	flush()
	slices.Sort(blocks)
	return strings.Join(blocks, "\n")
}

// normalizeElements sorts the elements of a set or map block.
func normalizeElements(block string) string {
	i := strings.Index(block, "elements = { ")
	if i < 0 {
		return block
	}
	j := strings.Index(block[i:], " }")
	body := block[i+len("elements = { ") : i+j]
	var elems []string
	for _, e := range strings.Split(body, ",") {
		if e = strings.TrimSpace(e); e != "" {
			elems = append(elems, e)
		}
	}
	slices.Sort(elems)
	return block[:i] + "elements = { " + strings.Join(elems, ", ") + block[i+j:]
}

// knftablesApply applies st with the nft tool inside ns (a fresh syncer: canonical slots).
func knftablesApply(t *testing.T, ns *netnstest.NS, st *model.State, o nft.Options) {
	t.Helper()
	err := ns.Do(func() error {
		k, err := knftables.New(knftables.InetFamily, testTable)
		if err != nil {
			return err
		}
		_, err = nft.NewSyncer(&nft.KnftablesBackend{NFT: k}, o).Sync(context.Background(), st, nil)
		return err
	})
	if err != nil {
		t.Fatalf("apply with nft: %v", err)
	}
}

func netlinkSyncer(t *testing.T, ns *netnstest.NS, o nft.Options) *nft.Syncer {
	t.Helper()
	b, err := nft.NewNetlinkBackend(testTable, ns.Handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return nft.NewSyncer(b, o)
}

// TestNetlinkMatchesNft: for every scenario, the table the netlink backend builds is, as the
// kernel lists it, identical to the one the nft tool builds from the rule text.
func TestNetlinkMatchesNft(t *testing.T) {
	netnstest.RequireRoot(t)
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			opts := testOpt
			if sc.opts != nil {
				opts = *sc.opts
			}
			st := state(testNode, sc.objs...)
			a, b := netnstest.New(t), netnstest.New(t)
			knftablesApply(t, a, st, opts)
			if _, err := netlinkSyncer(t, b, opts).Sync(context.Background(), st, nil); err != nil {
				t.Fatalf("netlink full sync: %v", err)
			}
			want, got := listTable(t, a), listTable(t, b)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("netlink table differs from nft's (-nft +netlink):\n%s", diff)
			}
		})
	}
}

// TestNetlinkPartialSyncsAndAdoption: partial syncs through netlink end where a fresh nft apply
// does; a second syncer adopts the table.
func TestNetlinkPartialSyncsAndAdoption(t *testing.T) {
	netnstest.RequireRoot(t)
	a, b := netnstest.New(t), netnstest.New(t)
	before := state(testNode, cluster(20, 3, nil)...)
	// The removed endpoint is the last one of svc-001 (in sorted order), so the slots stay canonical.
	after := state(testNode, without(cluster(20, 3, map[string]bool{"10.244.2.6/svc-001": true}), "svc-003")...)

	s := netlinkSyncer(t, b, testOpt)
	if _, err := s.Sync(context.Background(), before, nil); err != nil {
		t.Fatal(err)
	}
	changed := servicePorts("svc-001", after)
	for n := range servicePorts("svc-003", before) {
		changed[n] = true
	}
	res, err := s.Sync(context.Background(), after, changed)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("partial sync: %d operations", res.Ops)
	knftablesApply(t, a, after, testOpt)
	if diff := cmp.Diff(listTable(t, a), listTable(t, b)); diff != "" {
		t.Fatalf("after partial syncs (-nft +netlink):\n%s", diff)
	}

	// Restart: a new syncer adopts b's table and corrects it to a third state.
	third := state(testNode, cluster(15, 2, nil)...)
	s2 := netlinkSyncer(t, b, testOpt)
	if _, err := s2.Sync(context.Background(), third, nil); err != nil {
		t.Fatal(err)
	}
	knftablesApply(t, a, third, testOpt)
	if diff := cmp.Diff(listTable(t, a), listTable(t, b)); diff != "" {
		t.Fatalf("after adoption (-nft +netlink):\n%s", diff)
	}
	if res, err := s2.Sync(context.Background(), third, servicePorts("svc-001", third)); err != nil || res.Ops != 0 {
		t.Fatalf("no-change sync after adoption: %d operations, %v", res.Ops, err)
	}
}
