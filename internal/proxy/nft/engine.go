package nft

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Verb is the kind of an operation in a transaction.
type Verb int

// Operation verbs.
const (
	AddTable Verb = iota + 1
	AddChain
	FlushChain
	DeleteChain
	AddRule
	AddSet
	FlushSet
	DeleteSet
	AddElement
	DeleteElement
	DeleteTable
)

func (v Verb) String() string {
	return [...]string{"?", "add table", "add chain", "flush chain", "delete chain", "add rule", "add set",
		"flush set", "delete set", "add element", "delete element", "delete table"}[v]
}

// Op is one operation of a transaction. Chain is set for chain and rule operations (AddChain of a
// base chain carries its hook); Set for set and element operations.
type Op struct {
	Verb    Verb
	Chain   *Chain
	Rule    *Rule
	Set     *Set
	Element *Element
}

func (o Op) String() string {
	switch o.Verb {
	case AddChain, FlushChain, DeleteChain:
		return o.Verb.String() + " " + o.Chain.Name
	case AddRule:
		return "add rule " + o.Chain.Name + " " + o.Rule.String()
	case AddSet, FlushSet, DeleteSet:
		return o.Verb.String() + " " + o.Set.Name
	case AddElement, DeleteElement:
		s := o.Verb.String() + " " + o.Set.Name + " { " + o.Element.Key
		if o.Verb == AddElement && o.Element.Value != "" {
			s += " : " + o.Element.Value
		}
		return s + " }"
	}
	return o.Verb.String()
}

// Tx is a transaction: operations applied atomically, in order.
type Tx struct{ Ops []Op }

// Len is the number of operations.
func (t *Tx) Len() int { return len(t.Ops) }

// String lists the operations, one a line.
func (t *Tx) String() string {
	var b strings.Builder
	for _, o := range t.Ops {
		b.WriteString(o.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Listing is what a backend finds in the kernel table.
type Listing struct {
	Exists bool
	Chains []string
	Sets   []string
	Maps   []string
}

// Backend applies transactions to one nftables table of family inet.
type Backend interface {
	// List names the chains and sets/maps in the table.
	List(ctx context.Context) (Listing, error)
	// Run applies tx atomically: all of it or none.
	Run(ctx context.Context, tx *Tx) error
}

// Stats describe one sync.
type Stats struct {
	Full     bool
	Ops      int // operations sent to the kernel (0: nothing changed, nothing sent)
	Chains   int // in the table after the sync
	Rules    int
	Elements int
}

type elemKey struct{ set, key string }

type ownerValue struct{ owner, value string }

type elemEntry struct {
	elem Element // the element (value: the applied one)
	// Who wants the element with which value (owner "" is the base): almost always exactly one,
	// kept inline; others (conflicting Services, shared hairpin entries) in more.
	first   ownerValue
	hasOne  bool
	more    []ownerValue
	applied bool
}

func (e *elemEntry) set(owner, value string) {
	if e.hasOne && e.first.owner == owner {
		e.first.value = value
		return
	}
	for i := range e.more {
		if e.more[i].owner == owner {
			e.more[i].value = value
			return
		}
	}
	if !e.hasOne {
		e.first, e.hasOne = ownerValue{owner, value}, true
		return
	}
	e.more = append(e.more, ownerValue{owner, value})
}

func (e *elemEntry) remove(owner string) {
	if e.hasOne && e.first.owner == owner {
		if len(e.more) > 0 {
			e.first, e.more = e.more[0], slices.Clone(e.more[1:])
		} else {
			e.hasOne = false
		}
		return
	}
	for i := range e.more {
		if e.more[i].owner == owner {
			e.more = append(e.more[:i:i], e.more[i+1:]...)
			return
		}
	}
}

func (e *elemEntry) empty() bool { return !e.hasOne }

// winner is the value the element should have: that of its smallest owner, so that conflicting
// Services (two claiming the same external IP and port) resolve the same way whatever the order.
func (e *elemEntry) winner() (string, bool) {
	if !e.hasOne {
		return "", false
	}
	best := e.first
	for _, o := range e.more {
		if o.owner < best.owner {
			best = o
		}
	}
	return best.value, true
}

// Engine keeps a table in the kernel equal to the desired objects, sending only differences. It
// remembers what it applied; the first sync (and any after a failure) is a full one that reads the
// table's chain and set names from the kernel, adopts what is there and corrects it.
type Engine struct {
	backend Backend
	base    *Objects

	owners map[string]*Objects // applied, by owner key
	chains map[string]*Chain   // applied chains (base and services)
	sets   map[string]*Set     // applied sets
	elems  map[elemKey]*elemEntry
	rules  int
	nelems int
	synced bool
}

// NewEngine returns an engine for the backend's table with the given fixed objects.
func NewEngine(b Backend, base *Objects) *Engine {
	return &Engine{backend: b, base: base}
}

// Synced reports whether the engine's memory of the table is trustworthy (the last sync succeeded).
func (e *Engine) Synced() bool { return e.synced }

// OwnerKey names a Service port's objects in the engine.
func OwnerKey(r *ServiceRules) string { return r.Name.String() }

// Sync brings the table to the desired state. The objects beyond the base belong to owners (a
// Service port, or the pickers). With full=false, changed holds only the owners whose objects
// changed (nil value: removed) and the sync touches nothing else; with full=true (or when the engine
// is not synced), changed must hold every owner, and the sync lists the kernel table, adopts it and
// rewrites its contents in one transaction.
func (e *Engine) Sync(ctx context.Context, changed map[string]*Objects, full bool) (Stats, error) {
	if full || !e.synced {
		return e.fullSync(ctx, changed)
	}
	return e.partialSync(ctx, changed)
}

func (e *Engine) stats(full bool, ops int) Stats {
	return Stats{Full: full, Ops: ops, Chains: len(e.chains), Rules: e.rules, Elements: e.nelems}
}

// txBuilder collects operations in phases so that every reference is valid when it is made:
// chains exist before rules and elements point at them, sets exist before rules use them, and
// nothing is deleted while referenced.
type txBuilder struct {
	addTable, baseChains, addChains, flushChains, deleteSets, addSets, flushSets, rules, delElems, addElems, deleteChains []Op
}

func (b *txBuilder) tx() *Tx {
	var t Tx
	n := 0
	for _, p := range [][]Op{b.addTable, b.baseChains, b.addChains, b.flushChains, b.deleteSets, b.addSets, b.flushSets, b.rules, b.delElems, b.addElems, b.deleteChains} {
		n += len(p)
	}
	t.Ops = make([]Op, 0, n)
	for _, p := range [][]Op{b.addTable, b.baseChains, b.addChains, b.flushChains, b.deleteSets, b.addSets, b.flushSets, b.rules, b.delElems, b.addElems, b.deleteChains} {
		t.Ops = append(t.Ops, p...)
	}
	return &t
}

func (b *txBuilder) addRules(c *Chain) {
	for i := range c.Rules {
		b.rules = append(b.rules, Op{Verb: AddRule, Chain: c, Rule: &c.Rules[i]})
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (e *Engine) partialSync(ctx context.Context, changed map[string]*Objects) (Stats, error) {
	var b txBuilder
	// Work on copies so that a failed transaction leaves the engine's memory as it was.
	chains := map[string]*Chain{}
	sets := map[string]*Set{}
	touched := map[elemKey]bool{}
	ownerDelta := map[elemKey]map[string]*string{} // owner -> new value (nil: removed)
	rules := e.rules

	for _, owner := range sortedKeys(changed) {
		nw, old := changed[owner], e.owners[owner]
		if nw == nil && old == nil {
			continue
		}
		var oldObj, newObj Objects
		if old != nil {
			oldObj = *old
		}
		if nw != nil {
			newObj = *nw
		}
		oldChains := map[string]*Chain{}
		for _, c := range oldObj.Chains {
			oldChains[c.Name] = c
		}
		oldSets := map[string]*Set{}
		for _, s := range oldObj.Sets {
			oldSets[s.Name] = s
		}
		newSets := map[string]*Set{}
		setChanged := false
		for _, s := range newObj.Sets {
			newSets[s.Name] = s
			if os, ok := oldSets[s.Name]; ok && !os.Equal(s) {
				setChanged = true
			}
		}
		newChains := map[string]bool{}
		for _, c := range newObj.Chains {
			newChains[c.Name] = true
			oc, existed := oldChains[c.Name]
			switch {
			case !existed:
				b.addChains = append(b.addChains, Op{Verb: AddChain, Chain: c})
				b.addRules(c)
				rules += len(c.Rules)
			case setChanged || !sameRules(oc, c):
				b.flushChains = append(b.flushChains, Op{Verb: FlushChain, Chain: c})
				b.addRules(c)
				rules += len(c.Rules) - len(oc.Rules)
			}
			chains[c.Name] = c
		}
		for _, c := range oldObj.Chains {
			if !newChains[c.Name] {
				b.flushChains = append(b.flushChains, Op{Verb: FlushChain, Chain: c})
				b.deleteChains = append(b.deleteChains, Op{Verb: DeleteChain, Chain: c})
				rules -= len(c.Rules)
				chains[c.Name] = nil
			}
		}
		for _, s := range oldObj.Sets {
			if ns, ok := newSets[s.Name]; !ok || !ns.Equal(s) {
				b.deleteSets = append(b.deleteSets, Op{Verb: DeleteSet, Set: s})
				sets[s.Name] = nil
			}
		}
		for _, s := range newObj.Sets {
			if os, ok := oldSets[s.Name]; !ok || !os.Equal(s) {
				b.addSets = append(b.addSets, Op{Verb: AddSet, Set: s})
			}
			sets[s.Name] = s
		}
		for _, el := range oldObj.Elements {
			k := elemKey{el.Set, el.Key}
			if ownerDelta[k] == nil {
				ownerDelta[k] = map[string]*string{}
			}
			ownerDelta[k][owner] = nil
			touched[k] = true
		}
		for i := range newObj.Elements {
			el := &newObj.Elements[i]
			k := elemKey{el.Set, el.Key}
			if ownerDelta[k] == nil {
				ownerDelta[k] = map[string]*string{}
			}
			ownerDelta[k][owner] = &el.Value
			touched[k] = true
		}
	}

	// Elements: compare the winning value before and after.
	newEntries := map[elemKey]*elemEntry{}
	nelems := e.nelems
	elemKeys := make([]elemKey, 0, len(touched))
	for k := range touched {
		elemKeys = append(elemKeys, k)
	}
	slices.SortFunc(elemKeys, func(a, b elemKey) int {
		if c := strings.Compare(a.set, b.set); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	for _, k := range elemKeys {
		cur := e.elems[k]
		ne := &elemEntry{}
		if cur != nil {
			ne.elem = cur.elem
			ne.applied = cur.applied
			ne.first, ne.hasOne, ne.more = cur.first, cur.hasOne, slices.Clone(cur.more)
		} else {
			ne.elem = Element{Set: k.set, Key: k.key}
		}
		for o, v := range ownerDelta[k] {
			if v == nil {
				ne.remove(o)
			} else {
				ne.set(o, *v)
			}
		}
		want, keep := ne.winner()
		set := e.setFor(k.set, sets)
		if set == nil && keep {
			return Stats{}, fmt.Errorf("element %s of unknown set %s", k.key, k.set)
		}
		if ne.applied && (!keep || want != ne.elem.Value) {
			// Elements of a set deleted in this transaction go with it.
			if s, pending := sets[k.set]; !pending || s != nil {
				del := ne.elem
				b.delElems = append(b.delElems, Op{Verb: DeleteElement, Set: set, Element: &del})
			}
			ne.applied = false
			nelems--
		}
		if !ne.applied && keep {
			ne.elem.Value = want
			add := ne.elem
			b.addElems = append(b.addElems, Op{Verb: AddElement, Set: set, Element: &add})
			ne.applied = true
			nelems++
		}
		newEntries[k] = ne
	}

	tx := b.tx()
	if tx.Len() > 0 {
		if err := e.backend.Run(ctx, tx); err != nil {
			e.synced = false
			return Stats{}, fmt.Errorf("apply %d nftables operations: %w", tx.Len(), err)
		}
	}
	// Commit to memory.
	for owner, nw := range changed {
		if nw == nil {
			delete(e.owners, owner)
		} else {
			e.owners[owner] = nw
		}
	}
	for n, c := range chains {
		if c == nil {
			delete(e.chains, n)
		} else {
			e.chains[n] = c
		}
	}
	for n, s := range sets {
		if s == nil {
			delete(e.sets, n)
		} else {
			e.sets[n] = s
		}
	}
	for k, ne := range newEntries {
		if ne.empty() {
			delete(e.elems, k)
		} else {
			e.elems[k] = ne
		}
	}
	e.rules, e.nelems = rules, nelems
	return e.stats(false, tx.Len()), nil
}

// setFor finds the definition of a set being changed in this sync, or already applied.
func (e *Engine) setFor(name string, pending map[string]*Set) *Set {
	if s, ok := pending[name]; ok && s != nil {
		return s
	}
	return e.sets[name]
}

func (e *Engine) fullSync(ctx context.Context, all map[string]*Objects) (Stats, error) {
	listing, err := e.backend.List(ctx)
	if err != nil {
		e.synced = false
		return Stats{}, fmt.Errorf("list nftables table: %w", err)
	}
	tx, st := e.fullTx(all, listing)
	if err := e.backend.Run(ctx, tx); err != nil {
		// The table may hold something this transaction cannot adopt (a set of another type left by
		// an older version, say): replace the whole table atomically instead. Established
		// connections keep their conntrack NAT state either way.
		tx2, st2 := e.fullTx(all, Listing{})
		tx2.Ops = append([]Op{{Verb: AddTable}, {Verb: DeleteTable}}, tx2.Ops...)
		if err2 := e.backend.Run(ctx, tx2); err2 != nil {
			e.synced = false
			return Stats{}, fmt.Errorf("apply full nftables sync: %w (replacing the table: %v)", err, err2)
		}
		tx, st = tx2, st2
	}
	*e = *st
	e.synced = true
	return e.stats(true, tx.Len()), nil
}

// fullTx builds the transaction that turns the listed table into the desired one, and the engine
// state that results.
func (e *Engine) fullTx(all map[string]*Objects, listing Listing) (*Tx, *Engine) {
	nElems := len(e.base.Elements)
	for _, o := range all {
		if o != nil {
			nElems += len(o.Elements)
		}
	}
	st := &Engine{backend: e.backend, base: e.base, owners: make(map[string]*Objects, len(all)), chains: map[string]*Chain{},
		sets: map[string]*Set{}, elems: make(map[elemKey]*elemEntry, nElems)}
	existingChains := map[string]bool{}
	for _, c := range listing.Chains {
		existingChains[c] = true
	}
	existingSets := map[string]bool{}
	for _, s := range append(slices.Clone(listing.Sets), listing.Maps...) {
		existingSets[s] = true
	}
	var b txBuilder
	b.addTable = []Op{{Verb: AddTable}}
	// Entries live in one slice; elements are added in the order owners (sorted) list them.
	entries := make([]elemEntry, 0, nElems)
	order := make([]*elemEntry, 0, nElems)

	addObjects := func(owner string, o *Objects) {
		for _, c := range o.Chains {
			st.chains[c.Name] = c
			st.rules += len(c.Rules)
			switch {
			case c.Base != nil && existingChains[c.Name]:
				// Recreate base chains so that a changed hook or priority is applied.
				plain := &Chain{Name: c.Name}
				b.baseChains = append(b.baseChains, Op{Verb: FlushChain, Chain: plain}, Op{Verb: DeleteChain, Chain: plain}, Op{Verb: AddChain, Chain: c})
			case c.Base != nil:
				b.baseChains = append(b.baseChains, Op{Verb: AddChain, Chain: c})
			case existingChains[c.Name]:
				b.flushChains = append(b.flushChains, Op{Verb: FlushChain, Chain: c})
			default:
				b.addChains = append(b.addChains, Op{Verb: AddChain, Chain: c})
			}
			b.addRules(c)
		}
		for _, s := range o.Sets {
			st.sets[s.Name] = s
			switch {
			case !existingSets[s.Name]:
				b.addSets = append(b.addSets, Op{Verb: AddSet, Set: s})
			case s.Timeout == 0:
				// Shared sets and maps are refilled; affinity sets keep their entries.
				b.flushSets = append(b.flushSets, Op{Verb: FlushSet, Set: s})
			}
		}
		for _, el := range o.Elements {
			k := elemKey{el.Set, el.Key}
			ent := st.elems[k]
			if ent == nil {
				entries = append(entries, elemEntry{elem: Element{Set: el.Set, Key: el.Key}})
				ent = &entries[len(entries)-1]
				st.elems[k] = ent
				order = append(order, ent)
			}
			ent.set(owner, el.Value)
		}
	}
	addObjects("", e.base)
	for _, owner := range sortedKeys(all) {
		if r := all[owner]; r != nil {
			st.owners[owner] = r
			addObjects(owner, r)
		}
	}
	for _, name := range listing.Chains {
		if _, ok := st.chains[name]; !ok {
			c := &Chain{Name: name}
			b.flushChains = append(b.flushChains, Op{Verb: FlushChain, Chain: c})
			b.deleteChains = append(b.deleteChains, Op{Verb: DeleteChain, Chain: c})
		}
	}
	for _, name := range listing.Sets {
		if _, ok := st.sets[name]; !ok {
			b.deleteSets = append(b.deleteSets, Op{Verb: DeleteSet, Set: &Set{Name: name}})
		}
	}
	for _, name := range listing.Maps {
		if _, ok := st.sets[name]; !ok {
			b.deleteSets = append(b.deleteSets, Op{Verb: DeleteSet, Set: &Set{Name: name, Verdict: true}})
		}
	}
	b.addElems = make([]Op, 0, len(order))
	for _, ent := range order {
		v, _ := ent.winner()
		ent.elem.Value = v
		ent.applied = true
		b.addElems = append(b.addElems, Op{Verb: AddElement, Set: st.sets[ent.elem.Set], Element: &ent.elem})
		st.nelems++
	}
	// The element operations refer to entries' elements: from here on, an entry's element is only
	// replaced, never modified in place.
	return b.tx(), st
}

// ErrUnknownSet is returned for elements of sets the engine does not know.
var ErrUnknownSet = errors.New("unknown set")
