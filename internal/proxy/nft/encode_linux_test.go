package nft

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/svcnet/svcnet/internal/proxy/model"
)

// sentElem is an element as decoded from an encoded batch.
type sentElem struct {
	set        string
	key, value []byte
}

// elementMessages decodes the set element messages of an encoded batch: per message, its set and
// the size of its element list attribute; and every element in order.
func elementMessages(t *testing.T, buf []byte) (lists []int, elems []sentElem) {
	t.Helper()
	attrs := func(b []byte, fn func(typ uint16, data []byte)) {
		for len(b) >= 4 {
			l := int(binary.NativeEndian.Uint16(b))
			if l < 4 || l > len(b) {
				t.Fatalf("bad attribute length %d", l)
			}
			fn(binary.NativeEndian.Uint16(b[2:])&^unix.NLA_F_NESTED, b[4:l])
			b = b[min((l+3)&^3, len(b)):]
		}
	}
	for off := 0; off < len(buf); {
		l := int(binary.NativeEndian.Uint32(buf[off:]))
		typ := binary.NativeEndian.Uint16(buf[off+4:])
		if typ == unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWSETELEM || typ == unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_DELSETELEM {
			var set string
			attrs(buf[off+unix.NLMSG_HDRLEN+4:off+l], func(typ uint16, data []byte) {
				switch typ {
				case unix.NFTA_SET_ELEM_LIST_SET:
					set = string(bytes.TrimRight(data, "\x00"))
				case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
					lists = append(lists, 4+len(data))
					attrs(data, func(_ uint16, elem []byte) {
						e := sentElem{set: set}
						attrs(elem, func(typ uint16, data []byte) {
							attrs(data, func(_ uint16, v []byte) {
								if typ == unix.NFTA_SET_ELEM_KEY {
									e.key = v
								} else {
									e.value = v
								}
							})
						})
						elems = append(elems, e)
					})
				}
			})
		}
		off += (l + 3) &^ 3
	}
	return lists, elems
}

// TestEncodeElementRuns: consecutive element operations on one set share a message, each message's
// element list stays within the 64 KiB a netlink attribute can hold, and every element arrives
// with its key and value, in order.
func TestEncodeElementRuns(t *testing.T) {
	ip := netip.MustParseAddr("10.96.0.10")
	ep := netip.AddrPortFrom(netip.MustParseAddr("10.244.1.5"), 8080)
	endpoints, hairpin := endpointMaps[0], &Set{Name: SetHairpin, Key: []DataType{TypeIPv4, TypeIPv4}}
	ops := func(verb Verb, runs ...int) []Op {
		var out []Op
		for r, n := range runs {
			for i := range n {
				if r%2 == 0 {
					el := &Element{Set: endpoints.Name, Key: ElementKey{}.Addr(ip).Proto(model.TCP).Port(uint16(r)).Slot(i), Value: EndpointValue(ep)}
					out = append(out, Op{Verb: verb, Set: endpoints, Element: el})
				} else {
					a := netip.AddrFrom4([4]byte{10, 244, byte(i >> 8), byte(i)})
					out = append(out, Op{Verb: verb, Set: hairpin, Element: &Element{Set: SetHairpin, Key: ElementKey{}.Addr(a).Addr(a)}})
				}
			}
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		ops      []Op
		messages int
	}{
		{"one element", ops(AddElement, 1), 1},
		{"one set, 3,000 endpoints (44 bytes each): three messages", ops(AddElement, 3000), 3},
		{"runs of two sets", ops(AddElement, 5, 7, 5), 3},
		{"deletions carry no value (28 bytes each)", ops(DeleteElement, 2500, 3), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := &batchEncoder{table: "svcnet"}
			if err := enc.encode(&Tx{Ops: tc.ops}); err != nil {
				t.Fatal(err)
			}
			lists, got := elementMessages(t, enc.finish())
			if len(lists) != tc.messages {
				t.Errorf("%d messages, want %d", len(lists), tc.messages)
			}
			for _, l := range lists {
				if l > 0xffff {
					t.Errorf("element list attribute of %d bytes", l)
				}
			}
			if len(got) != len(tc.ops) {
				t.Fatalf("%d elements sent, want %d", len(got), len(tc.ops))
			}
			for i, op := range tc.ops {
				want := sentElem{set: op.Set.Name, key: op.Element.Key.Bytes(keyLen(op.Set))}
				if op.Verb == AddElement && op.Set.Endpoints {
					want.value = []byte{10, 244, 1, 5, 0x1f, 0x90, 0, 0}
				}
				if g := got[i]; g.set != want.set || !bytes.Equal(g.key, want.key) || !bytes.Equal(g.value, want.value) {
					t.Fatalf("element %d: sent %s, want %s", i, fmtElem(g), fmtElem(want))
				}
			}
		})
	}
}

func fmtElem(e sentElem) string { return fmt.Sprintf("%s {% x : % x}", e.set, e.key, e.value) }
