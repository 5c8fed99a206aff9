package allocator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrFull is returned when no value is left to allocate.
var ErrFull = errors.New("range is full")

// ErrAllocated is returned when a requested value is taken by another owner.
var ErrAllocated = errors.New("provided value is already allocated")

// ErrNotInRange is returned for a requested value outside the range.
var ErrNotInRange = errors.New("provided value is not in the valid range")

// Codec maps between a range offset and the value stored as the etcd key suffix.
type Codec interface {
	Key(offset int) string
	Offset(key string) (int, bool)
}

// Registry is one allocation space (cluster IPs or node ports) kept in etcd under prefix, one key per
// value whose content is the owner ("namespace/name"). A value belongs to whoever created its key
// first; the etcd transaction is the only arbiter, the in-memory Range is a hint kept current by a
// watch so that candidates are usually free.
type Registry struct {
	cli    *clientv3.Client
	prefix string
	codec  Codec
	size   int // fixed; read without mu (r itself is replaced by reload)

	mu sync.Mutex
	r  *Range
}

// watchRetry spaces re-watches when etcd ends a watch (e.g. no leader), so the loop never spins.
const watchRetry = 200 * time.Millisecond

// NewRegistry returns a registry over an empty range; call Start to load and follow etcd.
func NewRegistry(cli *clientv3.Client, prefix string, codec Codec, size, static int) *Registry {
	r := NewRange(size, static)
	return &Registry{cli: cli, prefix: prefix, codec: codec, size: r.size, r: r}
}

// Start loads every allocation from etcd and follows changes until ctx ends.
func (g *Registry) Start(ctx context.Context) error {
	resp, err := g.cli.Get(ctx, g.prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return fmt.Errorf("list allocations %s: %w", g.prefix, err)
	}
	g.mu.Lock()
	for _, kv := range resp.Kvs {
		if off, ok := g.codec.Offset(string(kv.Key[len(g.prefix):])); ok {
			g.r.Set(off)
		}
	}
	g.mu.Unlock()
	go g.follow(ctx, resp.Header.Revision+1)
	return nil
}

func (g *Registry) follow(ctx context.Context, rev int64) {
	for ctx.Err() == nil {
		wc := g.cli.Watch(clientv3.WithRequireLeader(ctx), g.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev), clientv3.WithKeysOnly())
		reloaded := false
		for wr := range wc {
			if wr.CompactRevision != 0 {
				// History is gone: reload the whole picture and continue right after the revision
				// it was read at, so no change between the reload and the new watch is missed.
				if r, err := g.reload(ctx); err == nil {
					rev, reloaded = r+1, true
				}
				break
			}
			g.mu.Lock()
			for _, ev := range wr.Events {
				off, ok := g.codec.Offset(string(ev.Kv.Key[len(g.prefix):]))
				if !ok {
					continue
				}
				if ev.Type == clientv3.EventTypeDelete {
					g.r.Clear(off)
				} else {
					g.r.Set(off)
				}
				rev = ev.Kv.ModRevision + 1
			}
			g.mu.Unlock()
		}
		if !reloaded {
			// etcd ended the watch (no leader, shutting down) or the reload failed: wait a little
			// before the next attempt.
			select {
			case <-ctx.Done():
			case <-time.After(watchRetry):
			}
		}
	}
}

func (g *Registry) reload(ctx context.Context) (int64, error) {
	resp, err := g.cli.Get(ctx, g.prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return 0, err
	}
	fresh := NewRange(g.r.size, g.r.static)
	for _, kv := range resp.Kvs {
		if off, ok := g.codec.Offset(string(kv.Key[len(g.prefix):])); ok {
			fresh.Set(off)
		}
	}
	g.mu.Lock()
	g.r = fresh
	g.mu.Unlock()
	return resp.Header.Revision, nil
}

// Reserve takes the value at offset for owner. Taking a value the owner already holds succeeds.
func (g *Registry) Reserve(ctx context.Context, offset int, owner string) error {
	return g.reserve(ctx, offset, owner, false)
}

// reserve creates the record of offset for owner. Unless fresh, a record the owner already holds
// counts as success; with fresh only a newly created record does.
func (g *Registry) reserve(ctx context.Context, offset int, owner string, fresh bool) error {
	if offset < 0 || offset >= g.size {
		return ErrNotInRange
	}
	key := g.prefix + g.codec.Key(offset)
	resp, err := g.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, owner)).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return fmt.Errorf("reserve %s: %w", key, err)
	}
	g.mu.Lock()
	g.r.Set(offset)
	g.mu.Unlock()
	if resp.Succeeded {
		return nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; !fresh && len(kvs) > 0 && string(kvs[0].Value) == owner {
		return nil
	}
	return ErrAllocated
}

// Next takes any free value for owner and returns its offset.
func (g *Registry) Next(ctx context.Context, owner string) (int, error) {
	// Every failed attempt marks the value taken locally, so this ends after at most size tries.
	for {
		g.mu.Lock()
		off, ok := g.r.Candidate()
		if ok {
			g.r.Set(off) // keep concurrent local callers off this candidate
		}
		g.mu.Unlock()
		if !ok {
			return 0, ErrFull
		}
		// Only a value nobody held is "next": a record this owner already has (seen by another API
		// server, not yet here through the watch) would hand out one value twice.
		err := g.reserve(ctx, off, owner, true)
		if err == nil {
			return off, nil
		}
		if !errors.Is(err, ErrAllocated) {
			g.mu.Lock()
			g.r.Clear(off)
			g.mu.Unlock()
			return 0, err
		}
	}
}

// Release frees the value at offset if owner still holds it.
func (g *Registry) Release(ctx context.Context, offset int, owner string) error {
	key := g.prefix + g.codec.Key(offset)
	resp, err := g.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(key), "=", owner)).
		Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return fmt.Errorf("release %s: %w", key, err)
	}
	if resp.Succeeded {
		g.mu.Lock()
		g.r.Clear(offset)
		g.mu.Unlock()
	}
	return nil
}

// Owners lists every allocation as offset -> owner, with the etcd revision it was read at.
func (g *Registry) Owners(ctx context.Context) (map[int]string, int64, error) {
	resp, err := g.cli.Get(ctx, g.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("list allocations %s: %w", g.prefix, err)
	}
	out := make(map[int]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if off, ok := g.codec.Offset(string(kv.Key[len(g.prefix):])); ok {
			out[off] = string(kv.Value)
		}
	}
	return out, resp.Header.Revision, nil
}

// Free is the number of values not taken, as far as this process knows.
func (g *Registry) Free() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.size - g.r.used
}

// Pick chooses a free value for automatic allocation and marks it taken locally, without writing
// etcd: the caller writes the record in its own transaction (with the object that holds it), and
// calls Unpick if that transaction does not happen.
func (g *Registry) Pick() (int, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	off, ok := g.r.Candidate()
	if ok {
		g.r.Set(off)
	}
	return off, ok
}

// Unpick forgets a local mark made by Pick or Taken whose record was never written.
func (g *Registry) Unpick(off int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.r.Clear(off)
}

// Taken marks a value taken locally, e.g. after a transaction found its record already present.
func (g *Registry) Taken(off int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.r.Set(off)
}

// Has reports whether this process believes the value is taken.
func (g *Registry) Has(off int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.r.Has(off)
}

// RecordKey is the etcd key of a value's allocation record.
func (g *Registry) RecordKey(off int) string { return g.prefix + g.codec.Key(off) }

// Size is the number of values in the range.
func (g *Registry) Size() int { return g.size }
