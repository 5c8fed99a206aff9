package nft

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/svcnet/svcnet/internal/proxy/model"
)

// TestElementForms: an element built in binary renders as nft writes it (what knftables and the
// golden files see) and is sent to the kernel as nf_tables lays the key out.
func TestElementForms(t *testing.T) {
	ip := netip.MustParseAddr("10.96.0.10")
	ep := netip.MustParseAddr("10.244.1.5")
	slot := func(i uint32) []byte { return binary.NativeEndian.AppendUint32(nil, i) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tuple := ElementKey{}.Addr(ip).Proto(model.UDP).Port(53)
	for _, tc := range []struct {
		name      string
		set       *Set
		el        Element
		key, val  string
		kernelKey []byte
	}{
		{"address", &Set{Name: SetClusterIPs, Key: []DataType{TypeIPv4}},
			Element{Key: ElementKey{}.Addr(ip)}, "10.96.0.10", "", []byte{10, 96, 0, 10}},
		{"address . address", &Set{Name: SetHairpin, Key: []DataType{TypeIPv4, TypeIPv4}},
			Element{Key: ElementKey{}.Addr(ep).Addr(ep)}, "10.244.1.5 . 10.244.1.5", "", []byte{10, 244, 1, 5, 10, 244, 1, 5}},
		{"address . protocol . port", &Set{Name: string(InternalCluster), Key: []DataType{TypeIPv4, TypeProto, TypePort}},
			Element{Key: tuple}, "10.96.0.10 . udp . 53", "", []byte{10, 96, 0, 10, 17, 0, 0, 0, 0, 53, 0, 0}},
		{"protocol . port", &Set{Name: string(NodePortCluster), Key: []DataType{TypeProto, TypePort}},
			Element{Key: ElementKey{}.Proto(model.SCTP).Port(30080)}, "sctp . 30080", "", []byte{132, 0, 0, 0, 0x75, 0x80, 0, 0}},
		{"endpoint map", endpointMaps[0],
			Element{Key: tuple.Slot(300), Value: EndpointValue(netip.AddrPortFrom(ep, 5353))},
			"10.96.0.10 . udp . 53 . 300", "10.244.1.5 . 5353", cat([]byte{10, 96, 0, 10, 17, 0, 0, 0, 0, 53, 0, 0}, slot(300))},
		{"NodePort endpoint map", endpointMaps[3],
			Element{Key: ElementKey{}.Proto(model.TCP).Port(30000).Slot(0), Value: EndpointValue(netip.AddrPortFrom(ep, 80))},
			"tcp . 30000 . 0", "10.244.1.5 . 80", cat([]byte{6, 0, 0, 0, 0x75, 0x30, 0, 0}, slot(0))},
		{"verdict map", &Set{Name: MapServiceIPs, Key: []DataType{TypeIPv4, TypeProto, TypePort}, Verdict: true},
			Element{Key: tuple, Value: ElementValue{Verdict: "goto service-X"}}, "10.96.0.10 . udp . 53", "goto service-X",
			[]byte{10, 96, 0, 10, 17, 0, 0, 0, 0, 53, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.set.KeyString(tc.el.Key); got != tc.key {
				t.Errorf("key %q, want %q", got, tc.key)
			}
			if got := strings.Join(tc.set.KeyParts(tc.el.Key), " . "); got != tc.key {
				t.Errorf("key parts %q, want %q", got, tc.key)
			}
			if got := tc.set.ValueString(tc.el.Value); got != tc.val {
				t.Errorf("value %q, want %q", got, tc.val)
			}
			if got := tc.el.Key.Bytes(keyLen(tc.set)); !bytes.Equal(got, tc.kernelKey) {
				t.Errorf("kernel key % x, want % x", got, tc.kernelKey)
			}
		})
	}
}

// TestSetNames: numbers are stable and dense, whatever the order of lookups.
func TestSetNames(t *testing.T) {
	var n setNames
	for _, tc := range []struct {
		name string
		want uint32
	}{{"endpoints-cluster", 0}, {"endpoints-cluster", 0}, {"hairpin", 1}, {"endpoints-cluster", 0}, {"size-cluster-3", 2}, {"hairpin", 1}} {
		if got := n.id(tc.name); got != tc.want {
			t.Errorf("id(%s) = %d, want %d", tc.name, got, tc.want)
		}
	}
	if len(n.names) != 3 || n.names[2] != "size-cluster-3" {
		t.Errorf("names %v", n.names)
	}
}
