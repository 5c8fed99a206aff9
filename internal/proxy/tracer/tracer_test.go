package tracer

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/svcnet/svcnet/internal/proxy/model"
)

func fakeWith(t *testing.T, rules ...string) *knftables.Fake {
	t.Helper()
	f := knftables.NewFake(knftables.InetFamily, "t")
	tx := f.NewTransaction()
	tx.Add(&knftables.Table{})
	tx.Add(&knftables.Chain{Name: "pre", Type: knftables.PtrTo(knftables.FilterType), Hook: knftables.PtrTo(knftables.PreroutingHook), Priority: knftables.PtrTo(knftables.BaseChainPriority("-110"))})
	for _, r := range rules {
		tx.Add(&knftables.Rule{Chain: "pre", Rule: r})
	}
	if err := f.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestUnknownShapesFail(t *testing.T) {
	for _, r := range []string{"counter accept", "tcp dport 22 drop", "ip saddr 1.2.3.4 log drop"} {
		if _, err := New(fakeWith(t, r)); err == nil || !strings.Contains(err.Error(), "unknown term") {
			t.Errorf("%q: %v, want an unknown-term error", r, err)
		}
	}
}

func TestWrongHookFails(t *testing.T) {
	tr, err := New(fakeWith(t, "masquerade fully-random"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = tr.Trace(Packet{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Proto: model.TCP, DPort: 80})
	if err == nil || !strings.Contains(err.Error(), "masquerade in hook prerouting") {
		t.Errorf("masquerade in prerouting: %v", err)
	}
}

func TestDropAndAccept(t *testing.T) {
	tr, err := New(fakeWith(t, "ip saddr 10.0.0.0/8 drop"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := tr.Trace(Packet{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("192.0.2.1"), Proto: model.UDP, DPort: 53})
	if err != nil || len(got) != 1 || got[0].Verdict != Drop {
		t.Errorf("drop: %v %v", got, err)
	}
	got, err = tr.Trace(Packet{Src: netip.MustParseAddr("192.0.2.9"), Dst: netip.MustParseAddr("192.0.2.1"), Proto: model.UDP, DPort: 53})
	if err != nil || len(got) != 1 || got[0].Verdict != Accept || got[0].Delivered != "out" {
		t.Errorf("accept: %v %v", got, err)
	}
}
