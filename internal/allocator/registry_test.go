package allocator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/svcnet/svcnet/internal/etcd"
)

// testTimeout bounds every etcd-backed test.
const testTimeout = 60 * time.Second

// startEtcd runs an embedded etcd in a temporary directory for the test and returns its client URL.
func startEtcd(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv, err := etcd.Start(ctx, etcd.Config{DataDir: t.TempDir(), ClientURL: "http://127.0.0.1:0", Quiet: true})
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(srv.Close)
	return srv.ClientURL
}

// newClient connects one "API server" to etcd; every registry gets its own client, as separate
// API server processes would.
func newClient(t *testing.T, url string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// portCodec64 is a small node port range of one bitmap word.
var portCodec64 = PortCodec{Base: 30000, Size: 64}

// newServers starts n registries over one etcd prefix, each with its own client and watch, the way n
// API servers share one etcd. Their watches stop when the test ends.
func newServers(t *testing.T, ctx context.Context, url string, n int, codec Codec, size, static int) []*Registry {
	t.Helper()
	wctx, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	var regs []*Registry
	for range n {
		g := NewRegistry(newClient(t, url), "/registry/test/ports/", codec, size, static)
		if err := g.Start(wctx); err != nil {
			t.Fatalf("Start: %v", err)
		}
		regs = append(regs, g)
	}
	return regs
}

// eventually polls cond until it holds or the bounded wait ends.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		<-tick.C
	}
}

// has reports whether the registry's in-memory range has offset taken.
func (g *Registry) has(off int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.r.Has(off)
}

func TestRegistryReserve(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	regs := newServers(t, ctx, startEtcd(t), 2, portCodec64, 64, 16)
	a, b := regs[0], regs[1]

	steps := []struct {
		name  string
		g     *Registry
		off   int
		owner string
		want  error
	}{
		{"a takes 5", a, 5, "ns/a", nil},
		{"a again is idempotent", a, 5, "ns/a", nil},
		{"b cannot take a's value", b, 5, "ns/b", ErrAllocated},
		{"same owner through the other server is idempotent", b, 5, "ns/a", nil},
		{"b takes the last offset", b, 63, "ns/b", nil},
		{"a cannot take b's value", a, 63, "ns/a", ErrAllocated},
		{"b takes the first offset", b, 0, "ns/b", nil},
		{"negative offset", a, -1, "ns/a", ErrNotInRange},
		{"offset past the end", a, 64, "ns/a", ErrNotInRange},
	}
	for _, s := range steps {
		if err := s.g.Reserve(ctx, s.off, s.owner); !errors.Is(err, s.want) {
			t.Fatalf("%s: Reserve(%d, %s) = %v, want %v", s.name, s.off, s.owner, err, s.want)
		}
	}
	owners, rev, err := a.Owners(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[int]string{0: "ns/b", 5: "ns/a", 63: "ns/b"}; fmt.Sprint(owners) != fmt.Sprint(want) {
		t.Fatalf("Owners = %v, want %v", owners, want)
	}
	if rev <= 0 {
		t.Fatalf("Owners revision = %d", rev)
	}
	// Whoever reserved or lost knows the value is taken without waiting for the watch.
	for _, g := range regs {
		for _, off := range []int{5, 63} {
			if !g.has(off) {
				t.Errorf("registry does not know offset %d is taken after reserving it", off)
			}
		}
	}
}

func TestRegistryReserveRaceHasOneWinner(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	regs := newServers(t, ctx, startEtcd(t), 2, portCodec64, 64, 16)
	const contenders = 16
	for _, off := range []int{0, 17, 63} {
		var wg sync.WaitGroup
		errs := make([]error, contenders)
		for i := range contenders {
			wg.Go(func() { errs[i] = regs[i%2].Reserve(ctx, off, fmt.Sprintf("ns/s%d", i)) })
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("offset %d: both ns/s%d and ns/s%d reserved it", off, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, ErrAllocated):
				t.Fatalf("offset %d: Reserve: %v", off, err)
			}
		}
		if winner < 0 {
			t.Fatalf("offset %d: nobody won", off)
		}
		owners, _, err := regs[0].Owners(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if owners[off] != fmt.Sprintf("ns/s%d", winner) {
			t.Fatalf("offset %d: record owner %q, winner ns/s%d", off, owners[off], winner)
		}
	}
}

func TestRegistryNextConcurrentNeverDuplicates(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		owner func(server, worker int) string
	}{
		{"distinct owners", func(s, w int) string { return fmt.Sprintf("ns/s%d-w%d", s, w) }},
		// One owner allocating through two servers (a Service updated on another API server before
		// the first one's allocation reached it through the watch) must still get distinct values.
		{"one owner", func(int, int) string { return "ns/same" }},
	}
	url := startEtcd(t)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			wctx, stop := context.WithCancel(ctx)
			defer stop()
			const servers, workers, size = 2, 8, 64
			prefix := fmt.Sprintf("/registry/test/next%d/", i)
			var regs []*Registry
			for range servers {
				g := NewRegistry(newClient(t, url), prefix, portCodec64, size, StaticBand(size, 16, 32, 128))
				if err := g.Start(wctx); err != nil {
					t.Fatal(err)
				}
				regs = append(regs, g)
			}
			type got struct {
				off   int
				owner string
			}
			var (
				mu    sync.Mutex
				taken []got
				wg    sync.WaitGroup
			)
			for s := range servers {
				for w := range workers {
					wg.Go(func() {
						owner := c.owner(s, w)
						for {
							off, err := regs[s].Next(ctx, owner)
							if errors.Is(err, ErrFull) {
								return
							}
							if err != nil {
								t.Errorf("Next: %v", err)
								return
							}
							mu.Lock()
							taken = append(taken, got{off, owner})
							mu.Unlock()
						}
					})
				}
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			seen := map[int]string{}
			for _, g := range taken {
				if prev, dup := seen[g.off]; dup {
					t.Fatalf("offset %d handed out twice (to %s and %s)", g.off, prev, g.owner)
				}
				seen[g.off] = g.owner
			}
			if len(seen) != size {
				t.Fatalf("handed out %d values, want all %d", len(seen), size)
			}
			owners, _, err := regs[0].Owners(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(owners) != fmt.Sprint(seen) {
				t.Fatalf("records %v differ from what Next returned %v", owners, seen)
			}
			for _, g := range regs {
				if _, err := g.Next(ctx, "ns/late"); !errors.Is(err, ErrFull) {
					t.Fatalf("Next on a full range = %v, want ErrFull", err)
				}
				if g.Free() != 0 {
					t.Fatalf("Free() = %d on a full range", g.Free())
				}
			}
			// A freed value is handed out again, through either server.
			var off int
			for o, who := range seen {
				off = o
				if err := regs[1].Release(ctx, o, who); err != nil {
					t.Fatal(err)
				}
				break
			}
			eventually(t, "both servers see the release", func() bool { return !regs[0].has(off) && !regs[1].has(off) })
			if got, err := regs[0].Next(ctx, "ns/again"); err != nil || got != off {
				t.Fatalf("Next after release = %d,%v, want %d", got, err, off)
			}
		})
	}
}

func TestRegistryNextDoesNotReturnAValueTheOwnerAlreadyHolds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	url := startEtcd(t)
	// The second server never starts its watch, so its range stays empty: the stalest possible view.
	a := NewRegistry(newClient(t, url), "/registry/test/stale/", portCodec64, 4, 0)
	b := NewRegistry(newClient(t, url), "/registry/test/stale/", portCodec64, 4, 0)
	for off := range 3 {
		if err := a.Reserve(ctx, off, "ns/x"); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.Next(ctx, "ns/x")
	if err != nil || got != 3 {
		t.Fatalf("Next = %d,%v; want the only value ns/x does not hold yet (3)", got, err)
	}
	if _, err := b.Next(ctx, "ns/x"); !errors.Is(err, ErrFull) {
		t.Fatalf("Next on a full range = %v, want ErrFull", err)
	}
	// Reserve of a value the owner holds stays idempotent.
	if err := b.Reserve(ctx, 1, "ns/x"); err != nil {
		t.Fatalf("Reserve of a held value by its owner: %v", err)
	}
}

func TestRegistryNextFailsCleanly(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	g := newServers(t, ctx, startEtcd(t), 1, portCodec64, 64, 16)[0]
	dead, kill := context.WithCancel(ctx)
	kill()
	if _, err := g.Next(dead, "ns/a"); err == nil || errors.Is(err, ErrFull) {
		t.Fatalf("Next with a canceled context = %v, want the context error", err)
	}
	if g.Free() != 64 {
		t.Fatalf("a failed Next left %d of 64 free; its candidate must be given back", g.Free())
	}
}

func TestRegistryRelease(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	regs := newServers(t, ctx, startEtcd(t), 2, portCodec64, 64, 16)
	a, b := regs[0], regs[1]
	if err := a.Reserve(ctx, 3, "ns/a"); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name      string
		g         *Registry
		off       int
		owner     string
		wantOwner string // record after the step, "" for none
	}{
		{"another owner cannot free it", b, 3, "ns/b", "ns/a"},
		{"an empty owner cannot free it", b, 3, "", "ns/a"},
		{"the owner frees it through the other server", b, 3, "ns/a", ""},
		{"releasing a free value is a no-op", a, 3, "ns/a", ""},
		{"releasing a value never taken is a no-op", a, 40, "ns/a", ""},
	}
	for _, s := range steps {
		if err := s.g.Release(ctx, s.off, s.owner); err != nil {
			t.Fatalf("%s: Release: %v", s.name, err)
		}
		owners, _, err := a.Owners(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if owners[s.off] != s.wantOwner {
			t.Fatalf("%s: record owner %q, want %q", s.name, owners[s.off], s.wantOwner)
		}
	}
	eventually(t, "both servers see offset 3 free", func() bool { return !a.has(3) && !b.has(3) })
	if err := b.Reserve(ctx, 3, "ns/b"); err != nil {
		t.Fatalf("Reserve after release: %v", err)
	}
	if err := a.Release(ctx, 3, "ns/a"); err != nil {
		t.Fatal(err)
	}
	if owners, _, _ := a.Owners(ctx); owners[3] != "ns/b" {
		t.Fatalf("a stale release freed the new owner's value: record %q", owners[3])
	}
}

func TestRegistryWatchAndStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	url := startEtcd(t)
	regs := newServers(t, ctx, url, 2, portCodec64, 64, 16)
	a, b := regs[0], regs[1]

	for _, off := range []int{0, 7, 63} {
		if err := a.Reserve(ctx, off, "ns/a"); err != nil {
			t.Fatal(err)
		}
	}
	off, err := a.Next(ctx, "ns/a")
	if err != nil {
		t.Fatal(err)
	}
	want := []int{0, 7, 63, off}
	eventually(t, "the second server learns the first's allocations", func() bool {
		for _, o := range want {
			if !b.has(o) {
				return false
			}
		}
		return b.Free() == 64-len(want)
	})

	// A server started later loads everything at Start, including keys written by others.
	cli := newClient(t, url)
	if _, err := cli.Put(ctx, "/registry/test/ports/30020", "ns/hand"); err != nil {
		t.Fatal(err)
	}
	// Keys that do not decode to an offset are ignored, not miscounted.
	for _, k := range []string{"30064", "29999", "garbage", ""} {
		if _, err := cli.Put(ctx, "/registry/test/ports/"+k, "ns/junk"); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the watch delivers the hand-written key", func() bool { return a.has(20) && b.has(20) })
	late := newServers(t, ctx, url, 1, portCodec64, 64, 16)[0]
	for _, o := range append(want, 20) {
		if !late.has(o) {
			t.Errorf("a server started later does not know offset %d is taken", o)
		}
	}
	if late.Free() != 64-len(want)-1 {
		t.Errorf("late server Free() = %d, want %d", late.Free(), 64-len(want)-1)
	}
	owners, _, err := late.Owners(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int
	for o := range owners {
		offs = append(offs, o)
	}
	sort.Ints(offs)
	wantOffs := append([]int{}, want...)
	wantOffs = append(wantOffs, 20)
	sort.Ints(wantOffs)
	if fmt.Sprint(offs) != fmt.Sprint(wantOffs) || owners[20] != "ns/hand" || owners[7] != "ns/a" {
		t.Fatalf("Owners = %v, want offsets %v", owners, wantOffs)
	}

	// Deletions travel too.
	if err := b.Release(ctx, 7, "ns/a"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every server learns of the release", func() bool { return !a.has(7) && !b.has(7) && !late.has(7) })
}

func TestRegistryFollowRecoversFromCompaction(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	url := startEtcd(t)
	a := newServers(t, ctx, url, 1, portCodec64, 64, 16)[0]
	cli := newClient(t, url)
	for _, off := range []int{1, 2, 3} {
		if err := a.Reserve(ctx, off, "ns/a"); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Release(ctx, 2, "ns/a"); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	// A server whose watch resumes from a compacted revision reloads the whole picture and then
	// keeps following.
	b := NewRegistry(newClient(t, url), "/registry/test/ports/", portCodec64, 64, 16)
	b.mu.Lock()
	b.r.Set(40) // stale: no such record
	b.mu.Unlock()
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() { defer close(done); b.follow(wctx, 1) }()
	defer func() { stop(); <-done }()
	eventually(t, "the reload after compaction", func() bool { return b.has(1) && !b.has(2) && b.has(3) && !b.has(40) })
	if err := a.Reserve(ctx, 9, "ns/a"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the watch continues after the reload", func() bool { return b.has(9) })
}
