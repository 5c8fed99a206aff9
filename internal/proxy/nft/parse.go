package nft

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/svcnet/svcnet/internal/proxy/model"
)

// ParseRule parses rule text written by Rule.String back into terms. It accepts exactly the shapes
// this package emits and fails on anything else, so that tools reading a ruleset (the packet tracer,
// tests) notice a shape they do not understand instead of guessing.
func ParseRule(text string) ([]Term, error) {
	toks, err := tokenize(text)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	var terms []Term
	for !p.done() {
		t, err := p.term()
		if err != nil {
			return nil, fmt.Errorf("rule %q: %w", text, err)
		}
		terms = append(terms, t)
	}
	return terms, nil
}

func tokenize(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ' || c == '\t':
			i++
		case c == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				return nil, fmt.Errorf("unterminated string in %q", s)
			}
			toks = append(toks, s[i:i+j+2])
			i += j + 2
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '\t' {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks, nil
}

type parser struct {
	toks []string
	pos  int
}

func (p *parser) done() bool { return p.pos >= len(p.toks) }

func (p *parser) peek(n int) string {
	if p.pos+n < len(p.toks) {
		return p.toks[p.pos+n]
	}
	return ""
}

func (p *parser) next() string {
	t := p.peek(0)
	p.pos++
	return t
}

// accept consumes the given words if they come next.
func (p *parser) accept(words ...string) bool {
	for i, w := range words {
		if p.peek(i) != w {
			return false
		}
	}
	p.pos += len(words)
	return true
}

func (p *parser) field() (Field, bool) {
	switch {
	case p.accept("ip", "saddr"):
		return IPSaddr, true
	case p.accept("ip", "daddr"):
		return IPDaddr, true
	case p.accept("meta", "l4proto"):
		return L4Proto, true
	case p.accept("th", "dport"):
		return THDport, true
	}
	return 0, false
}

func (p *parser) term() (Term, error) {
	switch {
	case p.accept("ct", "state", "new"):
		return CtStateNew{}, nil
	case p.accept("ct", "status", "dnat"):
		return CtStatusDNAT{}, nil
	case p.accept("iifname", "!="):
		name, err := strconv.Unquote(p.next())
		if err != nil {
			return nil, fmt.Errorf("iifname: %w", err)
		}
		return IifnameNot{Name: name}, nil
	case p.accept("fib", "daddr", "type", "local"):
		return FibLocal{}, nil
	case p.accept("fib", "saddr", "type", "local"):
		return FibLocal{Saddr: true}, nil
	case p.accept("numgen", "random", "mod"):
		mod, err := strconv.ParseUint(p.next(), 10, 32)
		if err != nil || mod < 2 || !p.accept("0") {
			return nil, fmt.Errorf("bad numgen at %d", p.pos)
		}
		return Numgen{Mod: uint32(mod)}, nil
	case p.accept("meta", "mark", "set", "meta", "mark"):
		op := p.next()
		mark, err := parseHex32(p.next())
		if err != nil || (op != "|" && op != "^") {
			return nil, fmt.Errorf("bad mark statement at %d", p.pos)
		}
		return MarkSet{Xor: op == "^", Mark: mark}, nil
	case p.accept("meta", "mark", "&"):
		mark, err := parseHex32(p.next())
		if err != nil || !p.accept("==", "0") {
			return nil, fmt.Errorf("bad mark match at %d", p.pos)
		}
		return MarkUnset{Mark: mark}, nil
	case p.accept("dnat", "ip", "to"):
		if ap, err := netip.ParseAddrPort(p.peek(0)); err == nil {
			p.next()
			return Dnat{To: ap}, nil
		}
		var key Key
		for {
			f, ok := p.field()
			if !ok {
				return nil, fmt.Errorf("bad dnat at %d", p.pos)
			}
			key = append(key, f)
			if !p.accept(".") {
				return nil, fmt.Errorf("dnat map without numgen at %d", p.pos)
			}
			if p.accept("numgen", "random", "mod") {
				break
			}
		}
		mod, err := strconv.ParseUint(p.next(), 10, 32)
		if err != nil || mod < 1 || !p.accept("map") {
			return nil, fmt.Errorf("bad dnat map at %d", p.pos)
		}
		m, ok := strings.CutPrefix(p.next(), "@")
		if !ok || m == "" {
			return nil, fmt.Errorf("dnat map without map at %d", p.pos)
		}
		return DnatMap{Key: key, Mod: uint32(mod), Map: m}, nil
	case p.accept("masquerade", "fully-random"):
		return Masquerade{}, nil
	case p.accept("reject", "with", "tcp", "reset"):
		return Reject{TCPReset: true}, nil
	case p.accept("reject"):
		return Reject{}, nil
	case p.accept("update"):
		set, ok := strings.CutPrefix(p.next(), "@")
		if !ok || set == "" || !p.accept("{", "ip", "saddr", "}") {
			return nil, fmt.Errorf("bad update at %d", p.pos)
		}
		return Update{Set: set}, nil
	case p.accept("jump"), p.accept("goto"):
		kind := VerdictKind(p.toks[p.pos-1])
		chain := p.next()
		if chain == "" {
			return nil, fmt.Errorf("%s without chain", kind)
		}
		return Verdict{Kind: kind, Chain: chain}, nil
	case p.accept("return"):
		return Verdict{Kind: Return}, nil
	case p.accept("drop"):
		return Verdict{Kind: Drop}, nil
	case p.accept("accept"):
		return Verdict{Kind: Accept}, nil
	}
	// A key: one field or a concatenation, followed by a set, a vmap, or (one field) a value.
	start := p.pos
	var key Key
	for {
		f, ok := p.field()
		if !ok {
			p.pos = start
			return nil, fmt.Errorf("unknown term at %q", strings.Join(p.toks[start:], " "))
		}
		key = append(key, f)
		if !p.accept(".") {
			break
		}
	}
	if set, ok := strings.CutPrefix(p.peek(0), "@"); ok {
		p.next()
		return SetMatch{Key: key, Set: set}, nil
	}
	if p.accept("vmap") {
		m, ok := strings.CutPrefix(p.next(), "@")
		if !ok || m == "" {
			return nil, fmt.Errorf("vmap without map at %d", p.pos)
		}
		return Vmap{Key: key, Map: m}, nil
	}
	if len(key) != 1 {
		return nil, fmt.Errorf("concatenation without set at %d", p.pos)
	}
	switch key[0] {
	case L4Proto:
		switch pr := model.Protocol(p.next()); pr {
		case model.TCP, model.UDP, model.SCTP:
			return L4ProtoMatch{Proto: pr}, nil
		default:
			return nil, fmt.Errorf("unknown protocol %q", pr)
		}
	case IPSaddr, IPDaddr:
		neg := p.accept("!=")
		v := p.next()
		var pfx netip.Prefix
		var err error
		if strings.Contains(v, "/") {
			pfx, err = netip.ParsePrefix(v)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(v)
			pfx = netip.PrefixFrom(a, 32)
		}
		if err != nil || !pfx.Addr().Is4() || pfx != pfx.Masked() {
			return nil, fmt.Errorf("bad address %q", v)
		}
		return IPMatch{Field: key[0], Neg: neg, Prefix: pfx}, nil
	}
	return nil, fmt.Errorf("unsupported match on %s", key)
}

func parseHex32(s string) (uint32, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 32)
	return uint32(v), err
}
