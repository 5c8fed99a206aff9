package allocator

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

func TestIPCodec(t *testing.T) {
	type addrAt struct {
		offset int
		addr   string
	}
	cases := []struct {
		name       string
		cidr       string
		wantPrefix string
		wantSize   int
		at         []addrAt // offset <-> address, both ways
		outside    []string // addresses that are not allocatable
	}{
		{
			name: "default service CIDR /12", cidr: "10.96.0.0/12", wantPrefix: "10.96.0.0/12", wantSize: 1<<20 - 2,
			at: []addrAt{
				{0, "10.96.0.1"}, {9, "10.96.0.10"}, {254, "10.96.0.255"}, {255, "10.96.1.0"},
				{1<<20 - 3, "10.111.255.254"},
			},
			outside: []string{"10.96.0.0", "10.111.255.255", "10.95.255.255", "10.112.0.0", "192.168.0.1", "0.0.0.0", "::", "fd00::1", "::ffff:10.96.0.1"},
		},
		{
			name: "unmasked input is masked", cidr: "10.96.7.9/12", wantPrefix: "10.96.0.0/12", wantSize: 1<<20 - 2,
			at: []addrAt{{0, "10.96.0.1"}},
		},
		{
			name: "/29 has 6", cidr: "192.168.1.8/29", wantPrefix: "192.168.1.8/29", wantSize: 6,
			at:      []addrAt{{0, "192.168.1.9"}, {1, "192.168.1.10"}, {5, "192.168.1.14"}},
			outside: []string{"192.168.1.8", "192.168.1.15", "192.168.1.7", "192.168.1.16"},
		},
		{
			name: "/30 has 2", cidr: "10.0.0.4/30", wantPrefix: "10.0.0.4/30", wantSize: 2,
			at:      []addrAt{{0, "10.0.0.5"}, {1, "10.0.0.6"}},
			outside: []string{"10.0.0.4", "10.0.0.7"},
		},
		{
			name: "IPv6 /112", cidr: "fd00:10:96::/112", wantPrefix: "fd00:10:96::/112", wantSize: 1<<16 - 1,
			at: []addrAt{{0, "fd00:10:96::1"}, {9, "fd00:10:96::a"}, {1<<16 - 2, "fd00:10:96::ffff"}},
			// IPv6 has no broadcast: the last address is usable, only the network address is not.
			outside: []string{"fd00:10:96::", "fd00:10:96::1:0", "fd00:10:95:ffff:ffff:ffff:ffff:ffff", "10.96.0.1"},
		},
		{
			name: "IPv6 /127 has 1", cidr: "fd00::/127", wantPrefix: "fd00::/127", wantSize: 1,
			at:      []addrAt{{0, "fd00::1"}},
			outside: []string{"fd00::", "fd00::2"},
		},
		{
			name: "IPv6 /64 is capped at 2^20", cidr: "fd00:1:2:3::/64", wantPrefix: "fd00:1:2:3::/64", wantSize: 1 << 20,
			at:      []addrAt{{0, "fd00:1:2:3::1"}, {1<<20 - 1, "fd00:1:2:3::10:0"}},
			outside: []string{"fd00:1:2:3::", "fd00:1:2:3::10:1", "fd00:1:2:3:ffff:ffff:ffff:ffff"},
		},
		{
			name: "IPv4 /8 is capped at 2^20", cidr: "10.0.0.0/8", wantPrefix: "10.0.0.0/8", wantSize: 1 << 20,
			at:      []addrAt{{0, "10.0.0.1"}, {1<<20 - 1, "10.16.0.0"}},
			outside: []string{"10.16.0.1", "10.255.255.254"},
		},
	}
	rand.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			codec, err := NewIPCodec(c.cidr)
			if err != nil {
				t.Fatalf("NewIPCodec(%q): %v", c.cidr, err)
			}
			if codec.Prefix.String() != c.wantPrefix {
				t.Errorf("Prefix = %s, want %s", codec.Prefix, c.wantPrefix)
			}
			if codec.Size() != c.wantSize {
				t.Fatalf("Size() = %d, want %d", codec.Size(), c.wantSize)
			}
			for _, a := range c.at {
				if got := codec.Addr(a.offset).String(); got != a.addr {
					t.Errorf("Addr(%d) = %s, want %s", a.offset, got, a.addr)
				}
				if got := codec.Key(a.offset); got != a.addr {
					t.Errorf("Key(%d) = %s, want %s", a.offset, got, a.addr)
				}
				if off, ok := codec.OffsetOf(netip.MustParseAddr(a.addr)); !ok || off != a.offset {
					t.Errorf("OffsetOf(%s) = %d,%v, want %d,true", a.addr, off, ok, a.offset)
				}
				if off, ok := codec.Offset(a.addr); !ok || off != a.offset {
					t.Errorf("Offset(%q) = %d,%v, want %d,true", a.addr, off, ok, a.offset)
				}
			}
			for _, s := range c.outside {
				if off, ok := codec.OffsetOf(netip.MustParseAddr(s)); ok {
					t.Errorf("OffsetOf(%s) = %d,true; want not allocatable", s, off)
				}
				if off, ok := codec.Offset(s); ok {
					t.Errorf("Offset(%q) = %d,true; want not allocatable", s, off)
				}
			}
			for _, bad := range []string{"", "foo", "10.96.0.1/32", "10.96.0.01", "10.96.0.256"} {
				if off, ok := codec.Offset(bad); ok {
					t.Errorf("Offset(%q) = %d,true; want false", bad, off)
				}
			}
			// Round trip across the whole range at random and at its ends: every offset maps to an
			// address inside the prefix and back to itself.
			offs := []int{0, 1, 62, 63, 64, 65, c.wantSize - 1}
			for range 200 {
				offs = append(offs, rand.IntN(c.wantSize))
			}
			for _, off := range offs {
				if off < 0 || off >= c.wantSize {
					continue
				}
				a := codec.Addr(off)
				if !codec.Prefix.Contains(a) {
					t.Fatalf("Addr(%d) = %s outside %s", off, a, codec.Prefix)
				}
				if a == codec.Prefix.Addr() {
					t.Fatalf("Addr(%d) is the network address", off)
				}
				if got, ok := codec.Offset(codec.Key(off)); !ok || got != off {
					t.Fatalf("Offset(Key(%d)=%s) = %d,%v", off, codec.Key(off), got, ok)
				}
			}
		})
	}
}

func TestIPCodecRejects(t *testing.T) {
	// Like kube's hostsPerNetwork: IPv4 loses its network and broadcast addresses, so a /31 and a
	// /32 have nothing to allocate; IPv6 loses only its network address, so a /128 has nothing.
	for _, cidr := range []string{"10.0.0.0/31", "10.0.0.1/31", "10.0.0.0/32", "fd00::/128", "", "10.96.0.0", "10.96.0.0/33", "fd00::/129", "bogus/12"} {
		if c, err := NewIPCodec(cidr); err == nil {
			t.Errorf("NewIPCodec(%q) = size %d, want an error", cidr, c.Size())
		}
	}
}

func TestPortCodec(t *testing.T) {
	c := PortCodec{Base: 30000, Size: 2768}
	for _, tc := range []struct {
		key    string
		offset int
		ok     bool
	}{
		{"30000", 0, true},
		{"30080", 80, true},
		{"32767", 2767, true},
		{"29999", 0, false},
		{"32768", 0, false},
		{"0", 0, false},
		{"-1", 0, false},
		{"", 0, false},
		{"abc", 0, false},
		{"30000.5", 0, false},
		{"99999999999999999999", 0, false},
	} {
		off, ok := c.Offset(tc.key)
		if ok != tc.ok || (ok && off != tc.offset) {
			t.Errorf("Offset(%q) = %d,%v, want %d,%v", tc.key, off, ok, tc.offset, tc.ok)
		}
		if tc.ok && c.Key(tc.offset) != tc.key {
			t.Errorf("Key(%d) = %q, want %q", tc.offset, c.Key(tc.offset), tc.key)
		}
	}
	for off := 0; off < c.Size; off++ {
		if got, ok := c.Offset(c.Key(off)); !ok || got != off {
			t.Fatalf("Offset(Key(%d)) = %d,%v", off, got, ok)
		}
	}
}
