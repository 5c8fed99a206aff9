package dns

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// index holds the slim objects the way queries look them up: by namespace and name, by IP for reverse
// lookups, by subdomain and hostname for pod records. Informer events update it in place, one object at a
// time; nothing is rebuilt per query or per event.
type index struct {
	mu         sync.RWMutex
	namespaces map[string]*nsEntry
	svcIPs     multimap[*service] // cluster IP -> services
	epIPs      multimap[*slice]   // endpoint IP -> slices that list it
	podIPs     multimap[*pod]     // pod IP -> pods (only when the pod IP index is on)
	indexPods  bool               // fill podIPs

	counts [4]atomic.Int64 // services, slices, pods, namespaces
	serial atomic.Uint32   // the SOA serial: unix time of the last change
	// gen counts changes; packed answers built from the index are valid while it stays the same.
	// Every change bumps it, whatever names it touches: negative answers carry the SOA serial, which
	// any change may move.
	gen atomic.Uint64
	now func() time.Time
}

// nsEntry is everything in one namespace.
type nsEntry struct {
	exists   bool // the Namespace object exists
	services map[string]*svcEntry
	hosts    map[hostKey][]*pod // pods with spec.hostname and spec.subdomain
}

func (n *nsEntry) empty() bool { return !n.exists && len(n.services) == 0 && len(n.hosts) == 0 }

// svcEntry is a Service and its EndpointSlices; either may arrive first.
type svcEntry struct {
	svc    *service
	slices []*slice // sorted by name, so answers do not depend on event order
}

type hostKey struct{ subdomain, hostname string }

const (
	countServices = iota
	countSlices
	countPods
	countNamespaces
)

func newIndex(now func() time.Time, indexPods bool) *index {
	if now == nil {
		now = time.Now
	}
	ix := &index{
		namespaces: map[string]*nsEntry{},
		svcIPs:     newMultimap[*service](),
		epIPs:      newMultimap[*slice](),
		podIPs:     newMultimap[*pod](),
		indexPods:  indexPods,
		now:        now,
	}
	ix.touch()
	return ix
}

// touch records a change. Writers call it under the write lock, after the change.
func (ix *index) touch() {
	ix.serial.Store(uint32(ix.now().Unix()))
	ix.gen.Add(1)
}

// ns returns the entry of namespace name, creating it when create is set. Callers hold the write lock.
func (ix *index) ns(name string, create bool) *nsEntry {
	n := ix.namespaces[name]
	if n == nil && create {
		n = &nsEntry{services: map[string]*svcEntry{}}
		ix.namespaces[name] = n
	}
	return n
}

func (ix *index) gcNS(name string, n *nsEntry) {
	if n != nil && n.empty() {
		delete(ix.namespaces, name)
	}
}

func (ix *index) entry(ns, name string, create bool) *svcEntry {
	n := ix.ns(ns, create)
	if n == nil {
		return nil
	}
	e := n.services[name]
	if e == nil && create {
		e = &svcEntry{}
		n.services[name] = e
	}
	return e
}

func (ix *index) gcEntry(ns, name string) {
	n := ix.namespaces[ns]
	if n == nil {
		return
	}
	if e := n.services[name]; e != nil && e.svc == nil && len(e.slices) == 0 {
		delete(n.services, name)
	}
	ix.gcNS(ns, n)
}

// setNamespace records that a namespace exists (or no longer does).
func (ix *index) setNamespace(name string, exists bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	n := ix.ns(name, exists)
	if n == nil || n.exists == exists {
		return
	}
	n.exists = exists
	if exists {
		ix.counts[countNamespaces].Add(1)
	} else {
		ix.counts[countNamespaces].Add(-1)
	}
	ix.gcNS(name, n)
	ix.touch()
}

// setService replaces old (nil on add) by cur (nil on delete).
func (ix *index) setService(old, cur *service) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if old != nil {
		// By name: a delete event carries a newly transformed object, not the one stored here.
		if e := ix.entry(old.namespace, old.name, false); e != nil && e.svc != nil {
			for _, ip := range e.svc.ips {
				ix.svcIPs.remove(ip, e.svc)
			}
			e.svc = nil
			ix.counts[countServices].Add(-1)
		}
		ix.gcEntry(old.namespace, old.name)
	}
	if cur != nil {
		e := ix.entry(cur.namespace, cur.name, true)
		if e.svc != nil {
			// An update whose old object we did not see (or a repeated add): drop the stale IPs.
			for _, ip := range e.svc.ips {
				ix.svcIPs.remove(ip, e.svc)
			}
		} else {
			ix.counts[countServices].Add(1)
		}
		e.svc = cur
		for _, ip := range cur.ips {
			ix.svcIPs.add(ip, cur)
		}
	}
	ix.touch()
}

// setSlice replaces old (nil on add) by cur (nil on delete).
func (ix *index) setSlice(old, cur *slice) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if old != nil {
		ix.removeSlice(old.namespace, old.service, old.name)
	}
	if cur != nil {
		// The service label may have changed, or we may have missed the old object: remove by name.
		ix.removeSlice(cur.namespace, cur.service, cur.name)
		e := ix.entry(cur.namespace, cur.service, true)
		i, _ := slices.BinarySearchFunc(e.slices, cur.name, func(s *slice, name string) int { return strings.Compare(s.name, name) })
		e.slices = slices.Insert(e.slices, i, cur)
		for _, ep := range cur.endpoints {
			ix.epIPs.add(ep.addr, cur)
		}
		ix.counts[countSlices].Add(1)
	}
	ix.touch()
}

func (ix *index) removeSlice(ns, svc, name string) {
	e := ix.entry(ns, svc, false)
	if e == nil {
		return
	}
	i, found := slices.BinarySearchFunc(e.slices, name, func(s *slice, name string) int { return strings.Compare(s.name, name) })
	if !found {
		return
	}
	old := e.slices[i]
	for _, ep := range old.endpoints {
		ix.epIPs.remove(ep.addr, old)
	}
	e.slices = slices.Delete(e.slices, i, i+1)
	if len(e.slices) == 0 {
		e.slices = nil
	}
	ix.counts[countSlices].Add(-1)
	ix.gcEntry(ns, svc)
}

// setPod replaces old (nil on add) by cur (nil on delete).
func (ix *index) setPod(old, cur *pod) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if old != nil {
		ix.removePod(old)
		ix.counts[countPods].Add(-1)
	}
	if cur != nil {
		if cur.hostname != "" {
			n := ix.ns(cur.namespace, true)
			if n.hosts == nil {
				n.hosts = map[hostKey][]*pod{}
			}
			k := hostKey{cur.subdomain, cur.hostname}
			n.hosts[k] = append(n.hosts[k], cur)
		}
		if ix.indexPods {
			for _, ip := range cur.ips {
				ix.podIPs.add(ip, cur)
			}
		}
		ix.counts[countPods].Add(1)
	}
	ix.touch()
}

func (ix *index) removePod(old *pod) {
	if old.hostname != "" {
		if n := ix.namespaces[old.namespace]; n != nil {
			k := hostKey{old.subdomain, old.hostname}
			list := n.hosts[k]
			for i, p := range list {
				if p.namespace == old.namespace && p.name == old.name {
					list = slices.Delete(list, i, i+1)
					break
				}
			}
			if len(list) == 0 {
				delete(n.hosts, k)
			} else {
				n.hosts[k] = list
			}
			ix.gcNS(old.namespace, n)
		}
	}
	if ix.indexPods {
		for _, ip := range old.ips {
			ix.podIPs.removeFunc(ip, func(p *pod) bool { return p.namespace == old.namespace && p.name == old.name })
		}
	}
}

// multimap maps an IP to values; almost every IP has exactly one, which lives in one without a slice.
type multimap[V comparable] struct {
	one  map[netip.Addr]V
	more map[netip.Addr][]V
}

func newMultimap[V comparable]() multimap[V] {
	return multimap[V]{one: map[netip.Addr]V{}, more: map[netip.Addr][]V{}}
}

func (m multimap[V]) add(k netip.Addr, v V) {
	if _, ok := m.one[k]; !ok {
		m.one[k] = v
		return
	}
	m.more[k] = append(m.more[k], v)
}

func (m multimap[V]) remove(k netip.Addr, v V) {
	m.removeFunc(k, func(x V) bool { return x == v })
}

// removeFunc removes the first value for k that match reports.
func (m multimap[V]) removeFunc(k netip.Addr, match func(V) bool) {
	first, ok := m.one[k]
	if !ok {
		return
	}
	rest := m.more[k]
	if match(first) {
		if len(rest) == 0 {
			delete(m.one, k)
			return
		}
		m.one[k] = rest[0]
		rest = rest[1:]
	} else {
		for i, x := range rest {
			if match(x) {
				rest = slices.Delete(slices.Clone(rest), i, i+1)
				break
			}
		}
	}
	if len(rest) == 0 {
		delete(m.more, k)
	} else {
		m.more[k] = rest
	}
}

// each calls f for every value of k until f returns false.
func (m multimap[V]) each(k netip.Addr, f func(V) bool) {
	first, ok := m.one[k]
	if !ok || !f(first) {
		return
	}
	for _, v := range m.more[k] {
		if !f(v) {
			return
		}
	}
}
