package dns

import (
	"context"
	"encoding/binary"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// errorCounter is a slog handler counting error records: the server logs a recovered panic as one.
type errorCounter struct{ n atomic.Int32 }

func (h *errorCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h *errorCounter) Handle(context.Context, slog.Record) error    { h.n.Add(1); return nil }
func (h *errorCounter) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *errorCounter) WithGroup(string) slog.Handler                { return h }

// FuzzServeDNS feeds arbitrary bytes to the packet handler every transport uses. It must never panic,
// answer at most once, answer with the query's ID and the QR bit, stay within 512 bytes unless the query
// had EDNS0, and never go upstream (the fixture has no upstream). Run with
// go test -fuzz FuzzServeDNS ./internal/dns; as a normal test it runs the seed corpus.
func FuzzServeDNS(f *testing.F) {
	errs := &errorCounter{}
	s := newFixtureServer(f, Config{PodRecords: PodsInsecure, Autopath: true, Logger: slog.New(errs)},
		append(fixture(), bigService(120)...)...)
	s.kube.external = stubExternal

	for _, tc := range specCases {
		for _, edns := range []bool{false, true} {
			m := tc.msg()
			if edns {
				m.SetEdns0(1232, true)
			}
			b, err := m.Pack()
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	for _, name := range []string{"big.testns.svc.cluster.local.", "1-2-3-4.testns.pod.cluster.local.", "fd00--1.testns.pod.cluster.local.", "example.org."} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		b, _ := m.Pack()
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1})
	f.Add([]byte{0, 1, 0x28, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1})
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 41, 0x10, 0, 1, 0, 0, 0, 0, 0})

	f.Fuzz(func(t *testing.T, data []byte) {
		var out []byte
		writes := 0
		w := &writer{t: s.transport, sink: func(b []byte) { out = append([]byte(nil), b...); writes++ }}
		s.transport.servePacket(context.Background(), data, w)
		if n := errs.n.Load(); n > 0 {
			t.Fatalf("the handler panicked (%d errors logged)", n)
		}
		if writes > 1 {
			t.Fatalf("%d responses to one query", writes)
		}
		if writes == 0 {
			return
		}
		if len(data) < 12 || len(out) < 12 {
			t.Fatalf("response %x to a %d-byte query", out, len(data))
		}
		if binary.BigEndian.Uint16(out) != binary.BigEndian.Uint16(data) {
			t.Fatalf("response ID %x, query ID %x", out[:2], data[:2])
		}
		if out[2]&0x80 == 0 {
			t.Fatal("response without the QR bit")
		}
		m := new(dns.Msg)
		if err := m.Unpack(out); err != nil {
			t.Fatalf("unparseable response: %v", err)
		}
		if m.IsEdns0() == nil && len(out) > dns.MinMsgSize {
			t.Fatalf("%d-byte UDP response without EDNS0", len(out))
		}
		if len(out) > maxUDPSize {
			t.Fatalf("%d-byte UDP response", len(out))
		}
	})
}
