package dns

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// router is the server's root handler: it refuses what the server does not serve, sends names in the
// cluster zone (and PTR questions for cluster IPs) to kube, and everything else to the forwarder. Nothing
// in the zone ever goes upstream, so search-path expansions such as example.com.default.svc.cluster.local
// are answered NXDOMAIN locally.
type router struct {
	zone     string
	kube     *kube
	fwd      *forwarder
	autopath *autopath // nil unless enabled
}

// ServeDNS implements Handler.
func (h *router) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	q := r.Question[0]
	if q.Qclass != dns.ClassINET {
		return dns.RcodeRefused, nil // CHAOS, HESIOD, ANY, ...: not served
	}
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		return dns.RcodeRefused, nil // no zone transfers
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeNone:
		return dns.RcodeFormatError, nil // meta types are not questions
	case dns.TypeMAILA, dns.TypeMAILB:
		return dns.RcodeNotImplemented, nil
	}
	if h.autopath != nil {
		if rcode, err, done := h.autopath.serve(ctx, w, r, h.serve); done {
			return rcode, err
		}
	}
	return h.serve(ctx, w, r)
}

// serve routes one question (without autopath).
func (h *router) serve(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	q := r.Question[0]
	lname := strings.ToLower(q.Name)
	if inZone(lname, h.zone) {
		return h.kube.ServeDNS(ctx, w, r)
	}
	if q.Qtype == dns.TypePTR && isReverse(lname) {
		if ip, ok := reverseIP(lname); ok {
			if !h.kube.synced() {
				return dns.RcodeServerFailure, nil
			}
			// Whether the question is answered here or forwarded depends on the index.
			gen := h.kube.ix.gen.Load()
			hint := hintOf(w)
			if hint != nil {
				hint.indexed(gen)
			}
			if res, ok := h.kube.ptr(q.Name, ip); ok {
				m := new(dns.Msg)
				m.SetReply(r)
				m.Authoritative, m.RecursionAvailable = true, true
				m.Answer = res.answer
				if hint != nil {
					hint.keep = true
				}
				return dns.RcodeSuccess, w.WriteMsg(m)
			}
		}
	}
	return h.fwd.ServeDNS(ctx, w, r)
}

// autopath answers the first search-path expansion a pod's resolver sends with the answer the whole
// search would end in, as CoreDNS's autopath plugin does: a pod in namespace ns with ndots:5 asks
// "example.com.ns.svc.<zone>" first; the server tries example.com.ns.svc.<zone>, .svc.<zone>, .<zone>, the
// node's search domains and example.com. itself, and answers with the first that is not NXDOMAIN,
// behind a CNAME from the name asked. The pod is recognised by its source IP.
type autopath struct {
	zone     string
	zoneWire []byte   // zone in wire format
	search   []string // the node's search domains (lower case, fully qualified)
	ix       *index
}

type peerer interface{ Peer() netip.AddrPort }

// serve runs the search when the question is a pod's first expansion; done is false otherwise.
func (a *autopath) serve(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, next func(context.Context, dns.ResponseWriter, *dns.Msg) (int, error)) (rcode int, err error, done bool) {
	p, ok := w.(peerer)
	if !ok {
		return 0, nil, false
	}
	ns := a.podNamespace(p.Peer().Addr().Unmap())
	if ns == "" {
		return 0, nil, false
	}
	qname := r.Question[0].Name
	first := ns + ".svc." + a.zone
	lname := strings.ToLower(qname)
	if !strings.HasSuffix(lname, "."+first) {
		return 0, nil, false
	}
	base := qname[:len(qname)-len(first)-1]
	search := make([]string, 0, 4+len(a.search))
	search = append(search, first, "svc."+a.zone, a.zone)
	search = append(search, a.search...)
	search = append(search, "")
	var firstMsg *dns.Msg
	firstRcode := 0
	for i, s := range search {
		sub := r.Copy()
		sub.Question[0].Name = base + "." + s
		rec := &recorder{ResponseWriter: w}
		rc, err := next(ctx, rec, sub)
		if errors.Is(err, errWouldBlock) {
			return rc, err, true // the whole search runs again off the reader
		}
		if i == 0 {
			firstMsg, firstRcode = rec.msg, rc
		}
		if rec.msg == nil || rec.msg.Rcode == dns.RcodeNameError {
			continue
		}
		m := rec.msg
		if i > 0 {
			cnamer(m, qname)
		}
		m.Question = r.Question
		return m.Rcode, w.WriteMsg(m), true
	}
	if firstMsg != nil {
		return firstMsg.Rcode, w.WriteMsg(firstMsg), true
	}
	return firstRcode, nil, true
}

// cnamer puts a CNAME from the name asked to the name answered in front of the answer.
func cnamer(m *dns.Msg, orig string) {
	for _, rr := range m.Answer {
		name := rr.Header().Name
		if strings.EqualFold(name, orig) {
			return
		}
		cname := &dns.CNAME{Hdr: dns.RR_Header{Name: orig, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: rr.Header().Ttl}, Target: name}
		m.Answer = append([]dns.RR{cname}, m.Answer...)
		return
	}
}

// claims reports whether the question for name (lower case, wire format) from peer is the first
// search-path expansion of a pod, which serve answers for that pod alone. It may claim a name that is
// not one (a suffix match that does not start at a label): such a name only misses the packed cache.
func (a *autopath) claims(peer netip.AddrPort, name []byte) bool {
	ns := a.podNamespace(peer.Addr().Unmap())
	if ns == "" || len(ns) > 63 {
		return false
	}
	var buf [maxKeyLen]byte
	suffix := append(buf[:0], byte(len(ns)))
	suffix = append(suffix, ns...)
	suffix = append(suffix, "\x03svc"...)
	suffix = append(suffix, a.zoneWire...)
	return len(name) > len(suffix) && bytes.HasSuffix(name, suffix)
}

// wireName is a fully qualified name without escapes in wire format, uncompressed.
func wireName(name string) []byte {
	var b []byte
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if l != "" {
			b = append(append(b, byte(len(l))), l...)
		}
	}
	return append(b, 0)
}

func (a *autopath) podNamespace(ip netip.Addr) string {
	a.ix.mu.RLock()
	defer a.ix.mu.RUnlock()
	ns := ""
	a.ix.podIPs.each(ip, func(p *pod) bool {
		if p.running {
			ns = p.namespace
			return false
		}
		return true
	})
	return ns
}

// recorder keeps the response a handler writes instead of sending it.
type recorder struct {
	dns.ResponseWriter
	msg *dns.Msg
}

func (r *recorder) WriteMsg(m *dns.Msg) error {
	if r.msg == nil {
		r.msg = m
	}
	return nil
}

func (r *recorder) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	return len(b), r.WriteMsg(m)
}
