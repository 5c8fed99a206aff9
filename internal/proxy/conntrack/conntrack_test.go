package conntrack

import (
	"net/netip"
	"testing"
)

func TestFilterMatch(t *testing.T) {
	var f Filter
	if !f.Empty() {
		t.Fatal("new filter not empty")
	}
	svc := Frontend{Addr: netip.MustParseAddr("10.96.0.10"), Port: 53}
	np := Frontend{Port: 30053}
	gone := netip.MustParseAddrPort("10.244.1.5:5353")
	f.AddStale(svc, gone)
	f.AddStale(np, gone)
	f.AddUnanswered(Frontend{Addr: netip.MustParseAddr("10.96.0.20"), Port: 53})
	ap := netip.MustParseAddrPort
	cases := []struct {
		e    Entry
		want bool
	}{
		{Entry{17, ap("10.96.0.10:53"), gone}, true},
		{Entry{17, ap("172.31.0.11:30053"), gone}, true},                 // NodePort on any local address
		{Entry{17, ap("10.96.0.10:53"), ap("10.244.2.6:5353")}, false},   // answered by a live endpoint
		{Entry{6, ap("10.96.0.10:53"), gone}, false},                     // TCP
		{Entry{17, ap("10.96.0.11:53"), gone}, false},                    // another Service
		{Entry{17, ap("10.96.0.20:53"), ap("10.96.0.20:53")}, true},      // not NATed, Service now has endpoints
		{Entry{17, ap("10.96.0.20:53"), ap("10.244.2.6:5353")}, false},   // NATed
		{Entry{17, ap("10.96.0.10:5353"), ap("10.244.1.5:5353")}, false}, // another port
	}
	for _, c := range cases {
		if got := f.Match(c.e); got != c.want {
			t.Errorf("%+v: %v, want %v (filter %s)", c.e, got, c.want, &f)
		}
	}
}
