package model

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// Decision is which endpoints this node sends a Service port's traffic to: the value the ruleset is
// built from, logged when it changes and tested on its own (DESIGN.md convention 6).
type Decision struct {
	// Cluster is the endpoints for traffic policy Cluster (ready ones, narrowed by topology hints;
	// serving-but-terminating ones only when no endpoint is ready). Nil when the port never uses it.
	Cluster []Endpoint
	// Local is this node's endpoints for traffic policy Local (ready ones, or serving-but-terminating
	// ones when none is ready). Nil when the port never uses it.
	Local []Endpoint
	// HasAny is true when the port has a usable endpoint anywhere in the cluster.
	HasAny bool
	// Topology is "", "PreferSameZone" or "PreferSameNode": the hints-based narrowing in force.
	Topology string
}

// Categorize decides which endpoints a node uses for a Service port, with Kubernetes' semantics:
// ready endpoints first, serving-and-terminating ones as a fallback when none is ready (separately for
// the Cluster and the Local policy), and topology hints (PreferSameNode, then PreferSameZone) when
// every ready endpoint carries them and one of them is for this node or its zone. Endpoints are in
// sorted order (the input's).
func Categorize(sp *ServicePort, eps []Endpoint, node Node) Decision {
	var d Decision
	if len(eps) == 0 {
		return d
	}
	if sp.UsesClusterEndpoints() {
		d.Topology = topologyMode(eps, node)
		d.Cluster = filter(eps, func(e Endpoint) bool { return e.Ready && availableForTopology(e, d.Topology, node) })
		if len(d.Cluster) == 0 {
			d.Cluster = filter(eps, func(e Endpoint) bool { return e.Serving && e.Terminating })
		}
		if len(d.Cluster) > 0 {
			d.HasAny = true
		}
	}
	if !sp.UsesLocalEndpoints() {
		return d
	}
	var localReady, localTerminating bool
	for _, e := range eps {
		switch {
		case e.Ready:
			d.HasAny = true
			localReady = localReady || e.NodeName == node.Name
		case e.Serving && e.Terminating:
			d.HasAny = true
			localTerminating = localTerminating || e.NodeName == node.Name
		}
	}
	switch {
	case localReady:
		d.Local = filter(eps, func(e Endpoint) bool { return e.NodeName == node.Name && e.Ready })
	case localTerminating:
		d.Local = filter(eps, func(e Endpoint) bool { return e.NodeName == node.Name && e.Serving && e.Terminating })
	default:
		d.Local = []Endpoint{}
	}
	return d
}

// LocalReady counts this node's ready endpoints: what a healthCheckNodePort reports.
func LocalReady(eps []Endpoint, node Node) int {
	n := 0
	for _, e := range eps {
		if e.Ready && e.NodeName == node.Name {
			n++
		}
	}
	return n
}

func topologyMode(eps []Endpoint, node Node) string {
	hasReady, forNode, allNodeHints, forZone, allZoneHints := false, false, true, false, true
	for _, e := range eps {
		if !e.Ready {
			continue
		}
		hasReady = true
		if nodes := e.NodeHints(); len(nodes) == 0 {
			allNodeHints = false
		} else if slices.Contains(nodes, node.Name) {
			forNode = true
		}
		if zones := e.ZoneHints(); len(zones) == 0 {
			allZoneHints = false
		} else if node.Zone != "" && slices.Contains(zones, node.Zone) {
			forZone = true
		}
	}
	switch {
	case !hasReady:
		return ""
	case allNodeHints && forNode:
		return corev1.ServiceTrafficDistributionPreferSameNode
	case allZoneHints && forZone:
		return corev1.ServiceTrafficDistributionPreferSameZone
	}
	return ""
}

func availableForTopology(e Endpoint, mode string, node Node) bool {
	switch mode {
	case "":
		return true
	case corev1.ServiceTrafficDistributionPreferSameNode:
		return slices.Contains(e.NodeHints(), node.Name)
	case corev1.ServiceTrafficDistributionPreferSameZone:
		return slices.Contains(e.ZoneHints(), node.Zone)
	}
	return false
}

// filter returns the endpoints keep accepts. When it accepts all of them (the common case: every
// endpoint ready), the result shares eps' array, clipped so that appending to it copies: endpoint
// slices are never modified in place, and at 100,000 endpoints the copies would be megabytes.
func filter(eps []Endpoint, keep func(Endpoint) bool) []Endpoint {
	i := 0
	for i < len(eps) && keep(eps[i]) {
		i++
	}
	if i == len(eps) {
		return slices.Clip(eps)
	}
	out := make([]Endpoint, i, len(eps))
	copy(out, eps[:i])
	for _, e := range eps[i+1:] {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}
