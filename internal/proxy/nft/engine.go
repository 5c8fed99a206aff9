package nft

import (
	"bytes"
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
		s := o.Verb.String() + " " + o.Set.Name + " { " + o.Set.KeyString(o.Element.Key)
		if v := o.Set.ValueString(o.Element.Value); o.Verb == AddElement && v != "" {
			s += " : " + v
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

// elemKey identifies an element: its set, by number, and its key's bytes (a set's keys all have
// the same length). It holds no pointer and no padding, so the engine's index of every element
// (over 100,000 at 10,000 Services) is compact, hashes in one call without reading strings, and is
// never scanned by the garbage collector.
type elemKey struct {
	key [16]byte
	set uint32
}

func keyOf(set uint32, k ElementKey) elemKey { return elemKey{k.b, set} }

// setNames numbers the names of the sets that have elements.
type setNames struct {
	ids   map[string]uint32
	names []string
	// last is the most recent lookup: elements come in runs of one set.
	last   string
	lastID uint32
}

func (n *setNames) id(name string) uint32 {
	if len(n.names) > 0 && name == n.last {
		return n.lastID
	}
	id, ok := n.ids[name]
	if !ok {
		if n.ids == nil {
			n.ids = map[string]uint32{}
		}
		id = uint32(len(n.names))
		n.ids[name] = id
		n.names = append(n.names, name)
	}
	n.last, n.lastID = name, id
	return id
}

func (n *setNames) compare(a, b elemKey) int {
	if a.set != b.set {
		return strings.Compare(n.names[a.set], n.names[b.set])
	}
	return bytes.Compare(a.key[:], b.key[:])
}

// ownerElem is an owner's element: its key and the value that owner wants. Elements are never
// modified once built, so entries point at them instead of holding copies.
type ownerElem struct {
	owner string
	el    *Element
}

// elemEntry records who wants an element (owner "" is the base): almost always exactly one, kept
// inline; others (conflicting Services, hairpin entries shared by Services) in more. The kernel
// holds the winner's value: after every successful sync, an element is in the kernel exactly when
// it has an owner, with its winner's value.
type elemEntry struct {
	first  ownerElem
	more   []ownerElem
	hasOne bool
}

func (e *elemEntry) set(owner string, el *Element) {
	if e.hasOne && e.first.owner == owner {
		e.first.el = el
		return
	}
	for i := range e.more {
		if e.more[i].owner == owner {
			e.more[i].el = el
			return
		}
	}
	if !e.hasOne {
		e.first, e.hasOne = ownerElem{owner, el}, true
		return
	}
	e.more = append(e.more, ownerElem{owner, el})
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

// winner is the element as it should be: that of its smallest owner, so that conflicting Services
// (two claiming the same external IP and port) resolve the same way whatever the order; nil when
// no owner wants it.
func (e *elemEntry) winner() *Element {
	if !e.hasOne {
		return nil
	}
	best := e.first
	for _, o := range e.more {
		if o.owner < best.owner {
			best = o
		}
	}
	return best.el
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
	// Elements: the index (by set number and key) of their entries, which live in one slice;
	// free lists the slots of removed ones.
	setNames setNames
	elems    map[elemKey]int32
	entries  []elemEntry
	free     []int32
	rules    int
	nelems   int
	synced   bool
}

// entry returns the element's entry, or nil.
func (e *Engine) entry(k elemKey) *elemEntry {
	if i, ok := e.elems[k]; ok {
		return &e.entries[i]
	}
	return nil
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
	t, _ := b.txWithElements(0)
	return t
}

// txWithElements assembles the transaction with room for n more element additions after
// b.addElems, returned for the caller to fill in place: a full sync's hundred thousand element
// operations are written once, into the final slice.
func (b *txBuilder) txWithElements(n int) (*Tx, []Op) {
	var t Tx
	phases := [][]Op{b.addTable, b.baseChains, b.addChains, b.flushChains, b.deleteSets, b.addSets, b.flushSets, b.rules, b.delElems, b.addElems}
	total := n + len(b.deleteChains)
	for _, p := range phases {
		total += len(p)
	}
	t.Ops = make([]Op, 0, total)
	for _, p := range phases {
		t.Ops = append(t.Ops, p...)
	}
	at := len(t.Ops)
	t.Ops = t.Ops[:at+n]
	t.Ops = append(t.Ops, b.deleteChains...)
	return &t, t.Ops[at : at+n]
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
	ownerDelta := map[elemKey]map[string]*Element{} // owner -> its element now (nil: removed)
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
		// Most owners have no chain or set of their own: no map is made for them.
		var oldChains map[string]*Chain
		if len(oldObj.Chains) > 0 {
			oldChains = make(map[string]*Chain, len(oldObj.Chains))
		}
		for _, c := range oldObj.Chains {
			oldChains[c.Name] = c
		}
		var oldSets, newSets map[string]*Set
		if len(oldObj.Sets) > 0 {
			oldSets = make(map[string]*Set, len(oldObj.Sets))
		}
		for _, s := range oldObj.Sets {
			oldSets[s.Name] = s
		}
		if len(newObj.Sets) > 0 {
			newSets = make(map[string]*Set, len(newObj.Sets))
		}
		setChanged := false
		for _, s := range newObj.Sets {
			newSets[s.Name] = s
			if os, ok := oldSets[s.Name]; ok && !os.Equal(s) {
				setChanged = true
			}
		}
		var newChains map[string]bool
		if len(newObj.Chains) > 0 {
			newChains = make(map[string]bool, len(newObj.Chains))
		}
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
			k := keyOf(e.setNames.id(el.Set), el.Key)
			if ownerDelta[k] == nil {
				ownerDelta[k] = map[string]*Element{}
			}
			ownerDelta[k][owner] = nil
		}
		for i := range newObj.Elements {
			el := &newObj.Elements[i]
			k := keyOf(e.setNames.id(el.Set), el.Key)
			if ownerDelta[k] == nil {
				ownerDelta[k] = map[string]*Element{}
			}
			ownerDelta[k][owner] = el
		}
	}

	// Elements: compare the winning value before and after.
	nelems := e.nelems
	elemKeys := make([]elemKey, 0, len(ownerDelta))
	for k := range ownerDelta {
		elemKeys = append(elemKeys, k)
	}
	slices.SortFunc(elemKeys, e.setNames.compare)
	newEntries := make([]elemEntry, len(elemKeys))
	for i, k := range elemKeys {
		// applied is the element in the kernel: the winner before this sync's changes.
		var applied *Element
		ne := &newEntries[i]
		if cur := e.entry(k); cur != nil {
			applied = cur.winner()
			ne.first, ne.hasOne, ne.more = cur.first, cur.hasOne, slices.Clone(cur.more)
		}
		for o, el := range ownerDelta[k] {
			if el == nil {
				ne.remove(o)
			} else {
				ne.set(o, el)
			}
		}
		want := ne.winner()
		setName := e.setNames.names[k.set]
		set := e.setFor(setName, sets)
		if set == nil && want != nil {
			return Stats{}, fmt.Errorf("element %x of unknown set %s", k.key, setName)
		}
		if applied != nil && (want == nil || want.Value != applied.Value) {
			// Elements of a set deleted in this transaction go with it.
			if s, pending := sets[setName]; !pending || s != nil {
				b.delElems = append(b.delElems, Op{Verb: DeleteElement, Set: set, Element: applied})
			}
			applied = nil
			nelems--
		}
		if applied == nil && want != nil {
			b.addElems = append(b.addElems, Op{Verb: AddElement, Set: set, Element: want})
			nelems++
		}
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
	for i, k := range elemKeys {
		ne := newEntries[i]
		idx, ok := e.elems[k]
		switch {
		case ok && ne.empty():
			delete(e.elems, k)
			e.entries[idx] = elemEntry{}
			e.free = append(e.free, idx)
		case ok:
			e.entries[idx] = ne
		case !ne.empty():
			if n := len(e.free); n > 0 {
				idx, e.free = e.free[n-1], e.free[:n-1]
				e.entries[idx] = ne
			} else {
				idx = int32(len(e.entries))
				e.entries = append(e.entries, ne)
			}
			e.elems[k] = idx
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
		sets: map[string]*Set{}, elems: make(map[elemKey]int32, nElems)}
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
	// Elements are sent grouped by set, in the order the sets first appear (owners sorted; the
	// set numbers of the new state follow the same order), each set's in the order its owners
	// list them: a netlink message then carries up to 64 KiB of one set's elements, where
	// interleaved sets would make it a message of a few elements each, with the kernel looking the
	// table and set up again for every one.
	entries := make([]elemEntry, 0, nElems)
	setOfEntry := make([]uint32, 0, nElems)
	var setSizes []int

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
		for i := range o.Elements {
			el := &o.Elements[i]
			k := keyOf(st.setNames.id(el.Set), el.Key)
			idx, ok := st.elems[k]
			if !ok {
				idx = int32(len(entries))
				entries = append(entries, elemEntry{})
				st.elems[k] = idx
				setOfEntry = append(setOfEntry, k.set)
				for int(k.set) >= len(setSizes) {
					setSizes = append(setSizes, 0)
				}
				setSizes[k.set]++
			}
			entries[idx].set(owner, el)
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
	// Each set's operations start after those of the sets before it.
	next := make([]int, len(setSizes))
	for g := 1; g < len(setSizes); g++ {
		next[g] = next[g-1] + setSizes[g-1]
	}
	setDefs := make([]*Set, len(setSizes))
	for id := range setDefs {
		setDefs[id] = st.sets[st.setNames.names[id]]
	}
	tx, elemOps := b.txWithElements(len(entries))
	for i := range entries {
		g := setOfEntry[i]
		elemOps[next[g]] = Op{Verb: AddElement, Set: setDefs[g], Element: entries[i].winner()}
		next[g]++
	}
	st.entries = entries
	st.nelems = len(entries)
	return tx, st
}

// ErrUnknownSet is returned for elements of sets the engine does not know.
var ErrUnknownSet = errors.New("unknown set")
