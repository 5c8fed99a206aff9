package userspace

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Affinity is the ClientIP session affinity table of one Service port: a client keeps the
// endpoint it was given as long as it comes back within the timeout (each new connection or UDP
// session refreshes it) and the endpoint is still among those it may use. It is shared by every
// address of the port, as the nftables dataplane's affinity sets are.
type Affinity struct {
	timeout time.Duration

	mu        sync.Mutex
	entries   map[netip.Addr]affinityEntry
	nextSweep time.Time
}

type affinityEntry struct {
	ep      netip.AddrPort
	expires time.Time
}

// NewAffinity returns an empty table.
func NewAffinity(timeout time.Duration) *Affinity {
	return &Affinity{timeout: timeout, entries: map[netip.Addr]affinityEntry{}}
}

// Len is the number of entries, expired or not.
func (a *Affinity) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.entries)
}

// Pick returns the client's endpoint among targets: its affinity entry when still valid, otherwise
// one chosen by choose (an index below len(targets)), recorded for the client.
func (a *Affinity) Pick(client netip.Addr, targets []netip.AddrPort, now time.Time, choose func(n int) int) netip.AddrPort {
	a.mu.Lock()
	defer a.mu.Unlock()
	if now.After(a.nextSweep) {
		for c, e := range a.entries {
			if now.After(e.expires) {
				delete(a.entries, c)
			}
		}
		a.nextSweep = now.Add(max(a.timeout, time.Minute))
	}
	if e, ok := a.entries[client]; ok && !now.After(e.expires) && slices.Contains(targets, e.ep) {
		e.expires = now.Add(a.timeout)
		a.entries[client] = e
		return e.ep
	}
	ep := targets[choose(len(targets))]
	a.entries[client] = affinityEntry{ep: ep, expires: now.Add(a.timeout)}
	return ep
}

// Forget drops a client's entry (its endpoint failed).
func (a *Affinity) Forget(client netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.entries, client)
}

// Picker chooses endpoints: at random, through the Service port's affinity table when it has one.
type Picker struct {
	Now    func() time.Time
	Choose func(n int) int
}

func defaultPicker() Picker {
	return Picker{Now: time.Now, Choose: rand.IntN}
}

// Pick chooses an endpoint among targets (non-empty) for client, skipping those in exclude when
// another is left (endpoints that already failed to connect). aff may be nil.
func (p Picker) Pick(aff *Affinity, client netip.Addr, targets, exclude []netip.AddrPort) netip.AddrPort {
	if len(exclude) > 0 {
		left := make([]netip.AddrPort, 0, len(targets))
		for _, t := range targets {
			if !slices.Contains(exclude, t) {
				left = append(left, t)
			}
		}
		if len(left) > 0 {
			targets = left
		}
		if aff != nil {
			aff.Forget(client)
		}
	}
	if aff != nil {
		return aff.Pick(client, targets, p.Now(), p.Choose)
	}
	return targets[p.Choose(len(targets))]
}
