// Package nft is the proxy's nftables dataplane: a pure function from the proxy's model to a ruleset
// (Build, BuildService), a small typed representation of the rules it emits, and an engine that turns
// the difference between two rulesets into one atomic transaction for a Backend (the nft tool through
// knftables, knftables' fake in tests, or netlink directly).
//
// Rules are values of a closed set of terms (this file). Each term renders to nft syntax, parses back
// from it (parse.go), and encodes to netlink expressions (netlink_linux.go); the packet tracer in
// ../tracer interprets the same terms, so a rule shape that one of them does not know is an error
// everywhere.
package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/svcnet/svcnet/internal/proxy/model"
)

// Field is a packet field used in matches and map keys.
type Field int

// The fields rules use.
const (
	IPSaddr Field = iota + 1
	IPDaddr
	L4Proto
	THDport
)

func (f Field) String() string {
	switch f {
	case IPSaddr:
		return "ip saddr"
	case IPDaddr:
		return "ip daddr"
	case L4Proto:
		return "meta l4proto"
	case THDport:
		return "th dport"
	}
	return fmt.Sprintf("field(%d)", int(f))
}

// Key is a concatenation of fields, as used by set matches and verdict maps.
type Key []Field

func (k Key) String() string {
	parts := make([]string, len(k))
	for i, f := range k {
		parts[i] = f.String()
	}
	return strings.Join(parts, " . ")
}

// Term is one match or statement of a rule.
type Term interface {
	// String renders the term in nft syntax.
	String() string
	term()
}

// CtStateNew matches the first packet of a connection: "ct state new".
type CtStateNew struct{}

// CtStatusDNAT matches connections whose destination was NATed: "ct status dnat".
type CtStatusDNAT struct{}

// IifnameNot matches packets that did not arrive on the named interface: `iifname != "lo"`.
type IifnameNot struct{ Name string }

// FibLocal matches when the packet's source (Saddr) or destination address is local to the node:
// "fib daddr type local".
type FibLocal struct{ Saddr bool }

// IPMatch compares the source or destination address with an address or prefix:
// "ip saddr != 10.244.0.0/16", "ip daddr 10.96.0.1".
type IPMatch struct {
	Field  Field // IPSaddr or IPDaddr
	Neg    bool
	Prefix netip.Prefix // a /32 renders as a plain address
}

// L4ProtoMatch matches the transport protocol: "meta l4proto tcp".
type L4ProtoMatch struct{ Proto model.Protocol }

// Numgen matches with probability 1/Mod: "numgen random mod 3 0".
type Numgen struct{ Mod uint32 }

// MarkUnset matches packets without the given mark bits: "meta mark & 0x00004000 == 0".
type MarkUnset struct{ Mark uint32 }

// SetMatch looks the key up in a named set: "ip daddr @cluster-ips".
type SetMatch struct {
	Key Key
	Set string
}

// Vmap looks the key up in a verdict map and applies the verdict found: "... vmap @service-ips".
type Vmap struct {
	Key Key
	Map string
}

// VerdictKind is the kind of a Verdict.
type VerdictKind string

// Verdicts.
const (
	Jump   VerdictKind = "jump"
	Goto   VerdictKind = "goto"
	Return VerdictKind = "return"
	Drop   VerdictKind = "drop"
	Accept VerdictKind = "accept"
)

// Verdict ends the rule: "jump CHAIN", "goto CHAIN", "return", "drop", "accept".
type Verdict struct {
	Kind  VerdictKind
	Chain string // for jump and goto
}

// Dnat rewrites the destination: "dnat ip to 10.244.1.5:8080". A rule with Dnat must match the
// transport protocol first.
type Dnat struct{ To netip.AddrPort }

// DnatMap picks the destination from a map keyed by Key and a random index below Mod:
// "dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 3 map @endpoints-cluster-3".
// A miss (no element for the key) does not match, and evaluation goes on with the next rule. A rule
// with DnatMap must match the transport protocol first.
type DnatMap struct {
	Key Key
	Mod uint32
	Map string
}

// Masquerade rewrites the source to the outgoing interface's address: "masquerade fully-random".
type Masquerade struct{}

// MarkSet sets (Xor=false: OR) or toggles (Xor=true: XOR) mark bits:
// "meta mark set meta mark | 0x00004000".
type MarkSet struct {
	Xor  bool
	Mark uint32
}

// Reject refuses the packet: with a TCP reset, or with ICMP port unreachable ("reject").
type Reject struct{ TCPReset bool }

// Update adds or refreshes the packet's source address in a dynamic set: "update @set { ip saddr }".
type Update struct{ Set string }

func (CtStateNew) term()   {}
func (CtStatusDNAT) term() {}
func (IifnameNot) term()   {}
func (FibLocal) term()     {}
func (IPMatch) term()      {}
func (L4ProtoMatch) term() {}
func (Numgen) term()       {}
func (MarkUnset) term()    {}
func (SetMatch) term()     {}
func (Vmap) term()         {}
func (Verdict) term()      {}
func (Dnat) term()         {}
func (DnatMap) term()      {}
func (Masquerade) term()   {}
func (MarkSet) term()      {}
func (Reject) term()       {}
func (Update) term()       {}

func (CtStateNew) String() string   { return "ct state new" }
func (CtStatusDNAT) String() string { return "ct status dnat" }
func (t IifnameNot) String() string { return "iifname != " + strconv.Quote(t.Name) }
func (t FibLocal) String() string {
	if t.Saddr {
		return "fib saddr type local"
	}
	return "fib daddr type local"
}
func (t IPMatch) String() string {
	s := t.Field.String() + " "
	if t.Neg {
		s += "!= "
	}
	if t.Prefix.IsSingleIP() {
		return s + t.Prefix.Addr().String()
	}
	return s + t.Prefix.String()
}
func (t L4ProtoMatch) String() string { return "meta l4proto " + string(t.Proto) }
func (t Numgen) String() string       { return fmt.Sprintf("numgen random mod %d 0", t.Mod) }
func (t MarkUnset) String() string    { return fmt.Sprintf("meta mark & 0x%08x == 0", t.Mark) }
func (t SetMatch) String() string     { return t.Key.String() + " @" + t.Set }
func (t Vmap) String() string         { return t.Key.String() + " vmap @" + t.Map }
func (t Verdict) String() string {
	if t.Kind == Jump || t.Kind == Goto {
		return string(t.Kind) + " " + t.Chain
	}
	return string(t.Kind)
}
func (t Dnat) String() string { return "dnat ip to " + t.To.String() }
func (t DnatMap) String() string {
	return fmt.Sprintf("dnat ip to %s . numgen random mod %d map @%s", t.Key, t.Mod, t.Map)
}
func (Masquerade) String() string { return "masquerade fully-random" }
func (t MarkSet) String() string {
	op := "|"
	if t.Xor {
		op = "^"
	}
	return fmt.Sprintf("meta mark set meta mark %s 0x%08x", op, t.Mark)
}
func (t Reject) String() string {
	if t.TCPReset {
		return "reject with tcp reset"
	}
	return "reject"
}
func (t Update) String() string { return "update @" + t.Set + " { ip saddr }" }

// Rule is a sequence of terms with an optional comment.
type Rule struct {
	Terms   []Term
	Comment string
}

// R builds a rule from terms.
func R(terms ...Term) Rule { return Rule{Terms: terms} }

// String renders the rule's terms (not its comment) in nft syntax.
func (r Rule) String() string {
	var b strings.Builder
	for i, t := range r.Terms {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(t.String())
	}
	return b.String()
}

// key is the rule's identity for diffs: its text and comment.
func (r Rule) key() string {
	if r.Comment == "" {
		return r.String()
	}
	return r.String() + " #" + r.Comment
}

// BaseChain is the hook of a base chain.
type BaseChain struct {
	Type     string // "filter" or "nat"
	Hook     string // "prerouting", "input", "forward", "output", "postrouting"
	Priority int
}

// Chain is a chain with its rules.
type Chain struct {
	Name    string
	Base    *BaseChain // nil for a regular chain
	Comment string
	Rules   []Rule
}

// sameRules reports whether two chains hold the same rules.
func sameRules(a, b *Chain) bool {
	if len(a.Rules) != len(b.Rules) {
		return false
	}
	for i := range a.Rules {
		if a.Rules[i].key() != b.Rules[i].key() {
			return false
		}
	}
	return true
}

// DataType is the type of one part of a set key or of a map's value.
type DataType int

// Data types.
const (
	TypeIPv4    DataType = iota + 1 // ipv4_addr
	TypeProto                       // inet_proto
	TypePort                        // inet_service
	TypeVerdict                     // verdict (map values only)
)

func (t DataType) String() string {
	switch t {
	case TypeIPv4:
		return "ipv4_addr"
	case TypeProto:
		return "inet_proto"
	case TypePort:
		return "inet_service"
	case TypeVerdict:
		return "verdict"
	}
	return "?"
}

// Set is a named set, a verdict map when Verdict is true, or an endpoint map when Endpoints is
// true: key Key . (a random index), value address . port.
type Set struct {
	Name      string
	Key       []DataType
	Verdict   bool
	Endpoints bool
	// Timeout > 0 makes the set dynamic with this element timeout (affinity sets).
	Timeout time.Duration
	Comment string
}

// TypeString is the set's type in nft syntax: "ipv4_addr . inet_proto . inet_service : verdict"; for
// endpoint maps, a typeof declaration: "typeof ip daddr . meta l4proto . th dport . numgen random mod
// 1 : ip daddr . th dport".
func (s *Set) TypeString() string {
	if s.Endpoints {
		var k Key
		for _, t := range s.Key {
			switch t {
			case TypeIPv4:
				k = append(k, IPDaddr)
			case TypeProto:
				k = append(k, L4Proto)
			case TypePort:
				k = append(k, THDport)
			}
		}
		return "typeof " + k.String() + " . numgen random mod 1 : ip daddr . th dport"
	}
	parts := make([]string, len(s.Key))
	for i, t := range s.Key {
		parts[i] = t.String()
	}
	out := strings.Join(parts, " . ")
	if s.Verdict {
		out += " : verdict"
	}
	return out
}

// Equal compares set definitions.
func (s *Set) Equal(o *Set) bool {
	return s.Name == o.Name && s.TypeString() == o.TypeString() && s.Timeout == o.Timeout && s.Comment == o.Comment
}

// Element is one element of a set or map, held in the kernel's binary form: a full sync writes
// over 100,000 of them, so they are built, compared and encoded without formatting or parsing text.
// The set's definition (Set.KeyString, Set.ValueString) renders them in nft syntax.
type Element struct {
	Set   string
	Key   ElementKey
	Value ElementValue
}

// ElementKey is an element's key as nf_tables takes it: each field of the set's key in network
// order, padded to 4 bytes (a set of a single address is those 4 bytes); an endpoint map's slot
// (its last field) is in host order, as numgen produces it. svcnet's keys have at most four fields.
type ElementKey struct {
	b [16]byte
	n uint8 // 4-byte words in use
}

// word appends one 4-byte field.
func (k ElementKey) word(w [4]byte) ElementKey {
	if k.n == 4 {
		panic("nft: element key with more than four fields")
	}
	copy(k.b[4*k.n:], w[:])
	k.n++
	return k
}

// Addr appends an IPv4 address.
func (k ElementKey) Addr(a netip.Addr) ElementKey { return k.word(a.As4()) }

// Proto appends a protocol.
func (k ElementKey) Proto(p model.Protocol) ElementKey { return k.word([4]byte{p.Number()}) }

// Port appends a port.
func (k ElementKey) Port(p uint16) ElementKey { return k.word([4]byte{byte(p >> 8), byte(p)}) }

// Slot appends an endpoint map's slot index.
func (k ElementKey) Slot(i int) ElementKey {
	var w [4]byte
	binary.NativeEndian.PutUint32(w[:], uint32(i))
	return k.word(w)
}

// Bytes returns the key as sent to the kernel for a set whose key is made of keyLen bytes.
func (k *ElementKey) Bytes(keyLen int) []byte { return k.b[:keyLen] }

// ElementValue is a map element's value: an endpoint (endpoint maps) or a verdict in nft syntax,
// "goto CHAIN" (verdict maps). It is zero for set elements.
type ElementValue struct {
	IP      [4]byte
	Port    uint16
	Verdict string
}

// EndpointValue is the value of an endpoint map element.
func EndpointValue(ap netip.AddrPort) ElementValue {
	return ElementValue{IP: ap.Addr().As4(), Port: ap.Port()}
}

// KeyParts renders k in nft syntax, one string per field: ["10.96.0.1", "tcp", "80"].
func (s *Set) KeyParts(k ElementKey) []string {
	n := len(s.Key)
	if s.Endpoints {
		n++
	}
	out := make([]string, 0, n)
	for i := range n {
		w := k.b[4*i : 4*i+4]
		if i == len(s.Key) { // the endpoint map's slot
			out = append(out, strconv.FormatUint(uint64(binary.NativeEndian.Uint32(w)), 10))
			continue
		}
		switch s.Key[i] {
		case TypeIPv4:
			out = append(out, netip.AddrFrom4([4]byte(w)).String())
		case TypeProto:
			out = append(out, protocolName(w[0]))
		case TypePort:
			out = append(out, strconv.Itoa(int(binary.BigEndian.Uint16(w))))
		default:
			out = append(out, "?")
		}
	}
	return out
}

// KeyString renders k in nft syntax: "10.96.0.1 . tcp . 80".
func (s *Set) KeyString(k ElementKey) string { return strings.Join(s.KeyParts(k), " . ") }

// ValueParts renders v in nft syntax, one string per field ("10.244.1.5", "8080"; or "goto
// CHAIN"); nil for set elements.
func (s *Set) ValueParts(v ElementValue) []string {
	switch {
	case s.Endpoints:
		return []string{netip.AddrFrom4(v.IP).String(), strconv.Itoa(int(v.Port))}
	case s.Verdict:
		return []string{v.Verdict}
	}
	return nil
}

// ValueString renders v in nft syntax: "10.244.1.5 . 8080", "goto CHAIN", or "" for set elements.
func (s *Set) ValueString(v ElementValue) string { return strings.Join(s.ValueParts(v), " . ") }

func protocolName(n uint8) string {
	for _, p := range allProtocols {
		if p.Number() == n {
			return string(p)
		}
	}
	return strconv.Itoa(int(n))
}
