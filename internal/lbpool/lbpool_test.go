package lbpool

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		size     int
		err      string
	}{
		{in: "", want: "", size: 0},
		{in: "172.31.0.100-172.31.0.150", want: "172.31.0.100-172.31.0.150", size: 51},
		{in: " 10.0.0.1 , 10.0.1.0/30", want: "10.0.0.1,10.0.1.0-10.0.1.3", size: 5},
		{in: "10.0.1.7/30", want: "10.0.1.4-10.0.1.7", size: 4},
		{in: "10.0.0.5-10.0.0.1", err: "the last address is before the first"},
		{in: "10.0.0.0/24,10.0.0.9", err: "overlaps"},
		{in: "fd00::1-fd00::5", err: "only IPv4"},
		{in: "10.0.0.0/8", err: "larger than a /16"},
		{in: "nope", err: "not an address"},
		{in: "10.0.0.1-x", err: "not an address range"},
	} {
		p, err := Parse(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) error = %v, want it to say %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if p.String() != tc.want || p.Size() != tc.size || p.Empty() != (tc.size == 0) {
			t.Errorf("Parse(%q) = %q size %d, want %q size %d", tc.in, p.String(), p.Size(), tc.want, tc.size)
		}
	}
}

func TestContainsAndFirst(t *testing.T) {
	p, err := Parse("10.0.0.254-10.0.1.1,192.168.5.5")
	if err != nil {
		t.Fatal(err)
	}
	for a, want := range map[string]bool{"10.0.0.253": false, "10.0.0.254": true, "10.0.1.0": true, "10.0.1.1": true, "10.0.1.2": false, "192.168.5.5": true, "::ffff:10.0.0.255": true} {
		if got := p.Contains(netip.MustParseAddr(a)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", a, got, want)
		}
	}
	used := map[string]bool{"10.0.0.254": true, "10.0.0.255": true}
	a, ok := p.First(func(a netip.Addr) bool { return !used[a.String()] })
	if !ok || a.String() != "10.0.1.0" {
		t.Errorf("First = %v %v, want 10.0.1.0", a, ok)
	}
	if _, ok := p.First(func(a netip.Addr) bool { return false }); ok {
		t.Error("First found an address in a full pool")
	}
}
