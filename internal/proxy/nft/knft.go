package nft

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"
)

// KnftablesBackend applies transactions through a knftables.Interface: the nft tool (one `nft -f`
// per transaction) or knftables' Fake in tests.
type KnftablesBackend struct {
	NFT knftables.Interface
}

// List implements Backend.
func (k *KnftablesBackend) List(ctx context.Context) (Listing, error) {
	var l Listing
	chains, err := k.NFT.List(ctx, "chains")
	if knftables.IsNotFound(err) {
		return l, nil
	}
	if err != nil {
		return l, err
	}
	l.Exists, l.Chains = true, chains
	if l.Sets, err = k.NFT.List(ctx, "sets"); err != nil && !knftables.IsNotFound(err) {
		return l, err
	}
	if l.Maps, err = k.NFT.List(ctx, "maps"); err != nil && !knftables.IsNotFound(err) {
		return l, err
	}
	return l, nil
}

// Run implements Backend.
func (k *KnftablesBackend) Run(ctx context.Context, tx *Tx) error {
	return k.NFT.Run(ctx, KnftablesTransaction(k.NFT, tx))
}

// KnftablesTransaction converts tx into a knftables transaction, one knftables operation per Op.
func KnftablesTransaction(nft knftables.Interface, tx *Tx) *knftables.Transaction {
	t := nft.NewTransaction()
	for _, op := range tx.Ops {
		switch op.Verb {
		case AddTable:
			t.Add(&knftables.Table{Comment: knftables.PtrTo("svcnet service proxy")})
		case DeleteTable:
			t.Delete(&knftables.Table{})
		case AddChain:
			t.Add(KnftablesChain(op.Chain))
		case FlushChain:
			t.Flush(&knftables.Chain{Name: op.Chain.Name})
		case DeleteChain:
			t.Delete(&knftables.Chain{Name: op.Chain.Name})
		case AddRule:
			r := &knftables.Rule{Chain: op.Chain.Name, Rule: op.Rule.String()}
			if op.Rule.Comment != "" {
				r.Comment = knftables.PtrTo(op.Rule.Comment)
			}
			t.Add(r)
		case AddSet:
			t.Add(knftablesSet(op.Set))
		case FlushSet:
			if op.Set.Verdict || op.Set.Endpoints {
				t.Flush(&knftables.Map{Name: op.Set.Name})
			} else {
				t.Flush(&knftables.Set{Name: op.Set.Name})
			}
		case DeleteSet:
			if op.Set.Verdict || op.Set.Endpoints {
				t.Delete(&knftables.Map{Name: op.Set.Name})
			} else {
				t.Delete(&knftables.Set{Name: op.Set.Name})
			}
		case AddElement, DeleteElement:
			el := &knftables.Element{Key: op.Set.KeyParts(op.Element.Key)}
			if op.Set.Verdict || op.Set.Endpoints {
				el.Map = op.Set.Name
			} else {
				el.Set = op.Set.Name
			}
			if op.Verb == AddElement {
				el.Value = op.Set.ValueParts(op.Element.Value)
				t.Add(el)
			} else {
				t.Delete(el)
			}
		default:
			panic(fmt.Sprintf("nft: unknown operation %v", op.Verb))
		}
	}
	return t
}

// KnftablesChain converts a chain (without its rules).
func KnftablesChain(c *Chain) *knftables.Chain {
	kc := &knftables.Chain{Name: c.Name}
	if c.Comment != "" {
		kc.Comment = knftables.PtrTo(c.Comment)
	}
	if c.Base != nil {
		kc.Type = knftables.PtrTo(knftables.BaseChainType(c.Base.Type))
		kc.Hook = knftables.PtrTo(knftables.BaseChainHook(c.Base.Hook))
		kc.Priority = knftables.PtrTo(knftables.BaseChainPriority(strconv.Itoa(c.Base.Priority)))
	}
	return kc
}

func knftablesSet(s *Set) knftables.Object {
	var comment *string
	if s.Comment != "" {
		comment = knftables.PtrTo(s.Comment)
	}
	if s.Endpoints {
		return &knftables.Map{Name: s.Name, TypeOf: strings.TrimPrefix(s.TypeString(), "typeof "), Comment: comment}
	}
	if s.Verdict {
		return &knftables.Map{Name: s.Name, Type: s.TypeString(), Comment: comment}
	}
	ks := &knftables.Set{Name: s.Name, Type: s.TypeString(), Comment: comment}
	if s.Timeout > 0 {
		ks.Flags = []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag}
		ks.Timeout = knftables.PtrTo(s.Timeout)
	}
	return ks
}
