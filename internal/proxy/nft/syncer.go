package nft

import (
	"context"
	"runtime"
	"sync"

	"github.com/svcnet/svcnet/internal/proxy/model"
)

// Syncer keeps the table in step with the proxy's state: it builds the objects of changed Service
// ports (passing each its previous result, so endpoints keep their slots), maintains the pickers in
// use, and hands the differences to the engine. It remembers only what was applied successfully.
type Syncer struct {
	engine  *Engine
	opts    Options
	rules   map[model.ServicePortName]*ServiceRules // applied
	pickers map[Picker]int                          // use counts over rules
	node    model.Node
}

// NewSyncer returns a syncer applying through b.
func NewSyncer(b Backend, o Options) *Syncer {
	return &Syncer{engine: NewEngine(b, Base(o)), opts: o, rules: map[model.ServicePortName]*ServiceRules{}, pickers: map[Picker]int{}}
}

// Change is what one sync changed for one Service port (nil: absent before or after).
type Change struct {
	Old, New *ServiceRules
}

// Result of a sync.
type Result struct {
	Stats
	// Changed lists the Service ports whose objects changed.
	Changed map[model.ServicePortName]Change
}

// NeedsFull reports whether the next sync will be a full one (first sync, or after a failure).
func (s *Syncer) NeedsFull() bool { return !s.engine.Synced() }

// build builds the objects of the named ports, on every core when there are many (a full sync).
func (s *Syncer) build(st *model.State, names map[model.ServicePortName]bool) map[model.ServicePortName]*ServiceRules {
	list := make([]model.ServicePortName, 0, len(names))
	for n := range names {
		if st.Services[n] != nil {
			list = append(list, n)
		}
	}
	out := make([]*ServiceRules, len(list))
	workers := min(runtime.GOMAXPROCS(0), 1+len(list)/500)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(list); i += workers {
				n := list[i]
				out[i] = BuildService(st.Services[n], st.Endpoints[n], st.Node, s.opts, s.rules[n])
			}
		}()
	}
	wg.Wait()
	m := make(map[model.ServicePortName]*ServiceRules, len(list))
	for i, n := range list {
		m[n] = out[i]
	}
	return m
}

// Invalidate makes the next sync a full one, which lists the kernel table and corrects anything that
// drifted from what the syncer applied.
func (s *Syncer) Invalidate() { s.engine.synced = false }

// Rules returns the applied objects of a Service port.
func (s *Syncer) Rules(n model.ServicePortName) *ServiceRules { return s.rules[n] }

// Sync applies st. When the syncer is synced and the node is unchanged, only the ports named in
// changed are rebuilt; otherwise every port is, and the engine does a full sync (listing and
// adopting the kernel table).
func (s *Syncer) Sync(ctx context.Context, st *model.State, changed map[model.ServicePortName]bool) (Result, error) {
	full := !s.engine.Synced() || st.Node != s.node
	names := changed
	if full {
		names = make(map[model.ServicePortName]bool, max(len(st.Services), len(s.rules)))
		for n := range st.Services {
			names[n] = true
		}
		for n := range s.rules {
			names[n] = true
		}
	}
	res := Result{Changed: make(map[model.ServicePortName]Change, len(names))}
	owners := make(map[string]*Objects, len(names)+1)
	pickers := make(map[Picker]int, len(s.pickers))
	for p, c := range s.pickers {
		pickers[p] = c
	}
	built := s.build(st, names)
	for n := range names {
		old, nw := s.rules[n], built[n]
		if old == nil && nw == nil {
			continue
		}
		if old != nil {
			for _, p := range old.Pickers {
				pickers[p]--
			}
		}
		if nw != nil {
			for _, p := range nw.Pickers {
				pickers[p]++
			}
			owners[n.String()] = &nw.Objects
		} else {
			owners[n.String()] = nil
		}
		res.Changed[n] = Change{Old: old, New: nw}
	}
	// The pick chains change only when a size above the static ones comes into or goes out of use.
	pickersChanged := full
	var inUse []Picker
	static := s.opts.staticSizes()
	for p, c := range pickers {
		switch {
		case c > 0:
			inUse = append(inUse, p)
			pickersChanged = pickersChanged || (s.pickers[p] == 0 && p.N > static)
		default:
			delete(pickers, p)
			pickersChanged = pickersChanged || (s.pickers[p] > 0 && p.N > static)
		}
	}
	if pickersChanged {
		owners[PickersOwner] = Pickers(inUse, static)
	}
	if full {
		// The engine's full sync needs every owner.
		for n, r := range s.rules {
			if _, ok := owners[n.String()]; !ok && st.Services[n] != nil {
				owners[n.String()] = &r.Objects
			}
		}
		for k, o := range owners {
			if o == nil {
				delete(owners, k)
			}
		}
	}
	stats, err := s.engine.Sync(ctx, owners, full)
	if err != nil {
		return res, err
	}
	res.Stats = stats
	for n, c := range res.Changed {
		if c.New == nil {
			delete(s.rules, n)
		} else {
			s.rules[n] = c.New
		}
	}
	s.pickers = pickers
	s.node = st.Node
	return res, nil
}
