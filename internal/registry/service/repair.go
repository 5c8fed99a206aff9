package service

import (
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Value identifies one allocated value: a cluster IP offset or a node port offset.
type Value struct {
	Kind   string // "ip" or "port"
	Offset int
}

// RepairPlan is what a repair pass must do to make etcd's allocations match the stored Services.
type RepairPlan struct {
	// Reserve are values a Service holds that have no allocation record (a record lost or never
	// written); the value is the owner to record.
	Reserve map[Value]string
	// Release are records no Service holds that were also leaked in the previous pass, so an
	// allocation whose Service is still being created is never released.
	Release map[Value]string
	// Suspects are this pass's leaks, to pass to the next pass.
	Suspects map[Value]string
	// Conflicts are values two Services hold at once (only possible by editing etcd by hand), one
	// entry per value naming its holders by name ("a/x and b/y"), sorted.
	Conflicts []string
}

// PlanRepair decides a repair pass as a pure function of the stored Services, the allocation records
// (offset -> owner) and the previous pass's suspects. The plan does not depend on the order of
// services: a value several Services hold keeps the record's owner when it is one of them, and
// otherwise goes to the first holder by name.
func (a *Allocators) PlanRepair(services []corev1.Service, ips, ports map[int]string, prevSuspects map[Value]string) RepairPlan {
	plan := RepairPlan{Reserve: map[Value]string{}, Release: map[Value]string{}, Suspects: map[Value]string{}}
	holders := map[Value][]string{}
	claim := func(v Value, who string) {
		if !slices.Contains(holders[v], who) {
			holders[v] = append(holders[v], who)
		}
	}
	for i := range services {
		s := &services[i]
		who := owner(s)
		h := a.holdings(s)
		if h.ip.IsValid() {
			if off, ok := a.IPCodec.OffsetOf(h.ip); ok {
				claim(Value{"ip", off}, who)
			}
		}
		for _, p := range h.ports {
			if p >= a.PortBase && p < a.PortBase+a.PortSize {
				claim(Value{"port", p - a.PortBase}, who)
			}
		}
	}
	records := map[Value]string{}
	for off, who := range ips {
		records[Value{"ip", off}] = who
	}
	for off, who := range ports {
		records[Value{"port", off}] = who
	}
	held := map[Value]string{}
	for v, who := range holders {
		slices.Sort(who)
		held[v] = who[0]
		// A record naming one of several holders stays: rewriting it would only move the value
		// between Services that all claim it.
		if rec, ok := records[v]; ok && slices.Contains(who, rec) {
			held[v] = rec
		}
		if len(who) > 1 {
			plan.Conflicts = append(plan.Conflicts, strings.Join(who, " and "))
		}
	}
	slices.Sort(plan.Conflicts)
	for v, who := range held {
		if rec, ok := records[v]; !ok || rec != who {
			plan.Reserve[v] = who
		}
	}
	for v, rec := range records {
		if who, ok := held[v]; ok && who == rec {
			continue
		}
		if _, ok := held[v]; ok {
			continue // held by another owner: Reserve rewrites the record
		}
		plan.Suspects[v] = rec
		if prev, ok := prevSuspects[v]; ok && prev == rec {
			plan.Release[v] = rec
		}
	}
	return plan
}

// IPOffset returns the offset of a cluster IP string, for callers outside the package.
func (a *Allocators) IPOffset(ip string) (int, bool) {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return 0, false
	}
	return a.IPCodec.OffsetOf(addr)
}
