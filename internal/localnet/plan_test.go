package localnet

import (
	"strings"
	"testing"
)

func TestPlan(t *testing.T) {
	p, err := NewPlan(DefaultSettings(3))
	if err != nil {
		t.Fatal(err)
	}
	if p.Fabric != "svcnet-net" || p.Outside.Netns != "svcnet-outside" || p.Outside.IP.String() != "172.31.0.200/24" {
		t.Errorf("plan %+v", p)
	}
	want := []struct{ name, netns, ip, cidr string }{
		{"node-1", "svcnet-node-1", "172.31.0.11/24", "10.244.1.0/24"},
		{"node-2", "svcnet-node-2", "172.31.0.12/24", "10.244.2.0/24"},
		{"node-3", "svcnet-node-3", "172.31.0.13/24", "10.244.3.0/24"},
	}
	for i, w := range want {
		n := p.Nodes[i]
		if n.Name != w.name || n.Netns != w.netns || n.IP.String() != w.ip || n.PodCIDR.String() != w.cidr || !strings.Contains(n.Port, "svcnet") {
			t.Errorf("node %d: %+v, want %+v", i, n, w)
		}
	}
	for _, bad := range []Settings{
		func() Settings { s := DefaultSettings(0); return s }(),
		func() Settings { s := DefaultSettings(2); s.Prefix = "mine"; return s }(),
		func() Settings { s := DefaultSettings(2); s.Prefix = "svcnet-pod"; return s }(),
		func() Settings { s := DefaultSettings(2); s.Prefix = "svcnet-node-x"; return s }(),
		func() Settings { s := DefaultSettings(90); return s }(),
	} {
		if _, err := NewPlan(bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

func TestOwns(t *testing.T) {
	for _, tc := range []struct {
		prefix, name string
		want         bool
	}{
		{"svcnet", "svcnet-net", true},
		{"svcnet", "svcnet-node-12", true},
		{"svcnet", "svcnet-outside", true},
		{"svcnet", "svcnet-pod-default-web-0-ab12c", true},
		{"svcnet", "svcnet-t1-node-1", false},
		{"svcnet", "svcnet-t1-pod-x", false},
		{"svcnet", "svcnet-node-x", false},
		{"svcnet-t1", "svcnet-t1-node-1", true},
		{"svcnet-t1", "svcnet-t10-node-1", false},
		{"svcnet", "other", false},
	} {
		if got := Owns(tc.prefix, tc.name); got != tc.want {
			t.Errorf("Owns(%q, %q) = %v", tc.prefix, tc.name, got)
		}
	}
}
