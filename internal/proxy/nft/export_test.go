package nft

import "fmt"

// CheckIndex verifies the engine's element index after any sequence of syncs: every indexed
// element has an owner, the count matches, and no slot is both used and free.
func (s *Syncer) CheckIndex() error {
	e := s.engine
	if len(e.elems) != e.nelems {
		return fmt.Errorf("%d elements indexed, %d counted", len(e.elems), e.nelems)
	}
	if len(e.elems)+len(e.free) != len(e.entries) {
		return fmt.Errorf("%d indexed + %d free slots, %d entries", len(e.elems), len(e.free), len(e.entries))
	}
	used := make(map[int32]bool, len(e.elems))
	for k, i := range e.elems {
		if used[i] {
			return fmt.Errorf("entry %d indexed twice", i)
		}
		used[i] = true
		w := e.entries[i].winner()
		if w == nil {
			return fmt.Errorf("element %x of set %s has no owner", k.key, e.setNames.names[k.set])
		}
		if w.Set != e.setNames.names[k.set] || w.Key.b != k.key {
			return fmt.Errorf("entry %d holds %s %x, indexed as %s %x", i, w.Set, w.Key.b, e.setNames.names[k.set], k.key)
		}
	}
	for _, i := range e.free {
		if used[i] {
			return fmt.Errorf("entry %d is both used and free", i)
		}
	}
	return nil
}
