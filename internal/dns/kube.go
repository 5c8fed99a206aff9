package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// SchemaVersion is the version of the Kubernetes DNS-Based Service Discovery specification served, in the
// TXT record dns-version.<zone>.
const SchemaVersion = "1.1.0"

// versionTTL is the TTL of the dns-version record, as CoreDNS uses.
const versionTTL = 28800

// maxCNAMEChain bounds how many CNAMEs an answer follows (CoreDNS stops at 8 as well).
const maxCNAMEChain = 8

// Pod record modes (Config.PodRecords), as CoreDNS's kubernetes `pods` option.
const (
	PodsDisabled = "disabled" // no a-b-c-d.<ns>.pod.<zone> records
	PodsInsecure = "insecure" // a record for any IP in any existing namespace, without checking a pod has it
	PodsVerified = "verified" // only when a pod in that namespace has that IP
)

// kube answers the cluster zone and reverse lookups of cluster IPs from the index.
type kube struct {
	zone    string // lower case, fully qualified, e.g. "cluster.local."
	ttl     uint32
	podMode string
	ix      *index
	synced  func() bool
	nsAddrs []netip.Addr // the addresses of ns.dns.<zone>
	// external resolves CNAME targets outside the zone; nil means they are not chased.
	external func(ctx context.Context, name string, qtype uint16, do bool) (*dns.Msg, error)
}

// result is what a lookup of one name found.
type result struct {
	rcode  int
	answer []dns.RR
	extra  []dns.RR
	ns     []dns.RR // authority; filled for negative answers
	target string   // a CNAME target still to resolve (lower case); "" when the answer is complete
}

// inZone reports whether lname (lower case, fully qualified) is the zone or below it.
func inZone(lname, zone string) bool {
	return lname == zone || (len(lname) > len(zone) && lname[len(lname)-len(zone)-1] == '.' && strings.HasSuffix(lname, zone))
}

// ServeDNS answers a query for a name in the zone. It follows the CoreDNS plugin contract: it writes the
// answer and returns its rcode, or returns SERVFAIL/REFUSED without writing for the server to answer.
func (k *kube) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if !k.synced() {
		return dns.RcodeServerFailure, nil
	}
	q := r.Question[0]
	// Read before the index: an answer kept under an older generation is only ever thrown away.
	gen := k.ix.gen.Load()
	res, up, err := k.resolve(ctx, q.Name, strings.ToLower(q.Name), q.Qtype, doBit(r))
	if err != nil {
		return dns.RcodeServerFailure, err // only errWouldBlock: nothing written, the query runs again
	}
	m := new(dns.Msg)
	m.SetRcode(r, res.rcode)
	m.Authoritative = true
	m.RecursionAvailable = true
	m.Answer, m.Ns, m.Extra = res.answer, res.ns, res.extra
	if h := hintOf(w); h != nil {
		h.indexed(gen)
		switch {
		case !up.asked:
			h.keep = true
		case up.st.ttl > 0:
			h.keep = true
			h.upstream(up.st, up.from, up.ns, false)
		}
	}
	if err := w.WriteMsg(m); err != nil {
		return res.rcode, err
	}
	return res.rcode, nil
}

// upstreamPart says which records of a zone answer come from the forwarder, when a CNAME was chased out
// of the zone: the answer records from index `from` on, and the authority records when ns is set.
type upstreamPart struct {
	asked bool  // the forwarder was asked
	st    stamp // the stamp of its answer; ttl 0 when it was not cached
	from  int
	ns    bool
}

// resolve looks lname up and follows CNAMEs: inside the zone from the index, outside it upstream.
func (k *kube) resolve(ctx context.Context, qname, lname string, qtype uint16, do bool) (result, upstreamPart, error) {
	var up upstreamPart
	res := k.lookup(qname, lname, qtype)
	if res.target == "" {
		return res, up, nil
	}
	seen := map[string]bool{lname: true}
	for hops := 0; res.target != "" && hops < maxCNAMEChain; hops++ {
		target := res.target
		res.target = ""
		if seen[target] {
			break // a CNAME loop: return what we have
		}
		seen[target] = true
		if inZone(target, k.zone) {
			next := k.lookup(target, target, qtype)
			res.answer = append(res.answer, next.answer...)
			res.extra = append(res.extra, next.extra...)
			res.rcode, res.ns, res.target = next.rcode, next.ns, next.target
			continue
		}
		if k.external == nil {
			break
		}
		up.asked = true
		st := new(stamp)
		m, err := k.external(context.WithValue(ctx, stampKey{}, st), target, qtype, do)
		if errors.Is(err, errWouldBlock) {
			return result{}, up, err
		}
		if err != nil || m == nil {
			// The CNAME stays: the client can resolve the target itself. Not kept (st.ttl is 0):
			// the next question may find the upstream answering.
			break
		}
		up.st = *st
		up.from = len(res.answer)
		res.answer = append(res.answer, m.Answer...)
		if m.Rcode == dns.RcodeNameError || (m.Rcode == dns.RcodeSuccess && len(m.Answer) == 0) {
			res.rcode, res.ns = m.Rcode, m.Ns
			up.ns = true
		}
	}
	return res, up, nil
}

// lookup answers one name from the index, without following CNAMEs.
func (k *kube) lookup(qname, lname string, qtype uint16) result {
	if lname == k.zone {
		return k.apex(qname, qtype)
	}
	if !inZone(lname, k.zone) {
		return k.nxdomain()
	}
	base := lname[:len(lname)-len(k.zone)-1]
	var labels [6]string
	n := splitLabels(base, labels[:])
	if n <= 0 {
		return k.nxdomain()
	}
	k.ix.mu.RLock()
	defer k.ix.mu.RUnlock()
	switch labels[n-1] {
	case "svc":
		return k.services(qname, labels[:n-1], qtype)
	case "pod":
		return k.pods(qname, labels[:n-1], qtype)
	case "dns-version":
		if n != 1 {
			return k.nxdomain()
		}
		if qtype != dns.TypeTXT {
			return k.nodata()
		}
		return result{answer: []dns.RR{&dns.TXT{Hdr: hdr(qname, dns.TypeTXT, versionTTL), Txt: []string{SchemaVersion}}}}
	case "dns":
		switch {
		case n == 1:
			return k.nodata() // an empty non-terminal above ns.dns
		case n == 2 && labels[0] == "ns":
			return k.addresses(qname, k.nsAddrs, qtype)
		}
	}
	return k.nxdomain()
}

// splitLabels splits a dotted name into out, left to right, and returns the count; -1 if there are more
// labels than out holds or a label is empty.
func splitLabels(name string, out []string) int {
	n := 0
	for name != "" {
		if n == len(out) {
			return -1
		}
		i := strings.IndexByte(name, '.')
		if i < 0 {
			out[n] = name
			n++
			break
		}
		if i == 0 {
			return -1
		}
		out[n] = name[:i]
		n++
		name = name[i+1:]
	}
	return n
}

func (k *kube) apex(qname string, qtype uint16) result {
	switch qtype {
	case dns.TypeSOA:
		return result{answer: []dns.RR{k.soa()}}
	case dns.TypeNS:
		nsName := "ns.dns." + k.zone
		res := result{answer: []dns.RR{&dns.NS{Hdr: hdr(qname, dns.TypeNS, k.ttl), Ns: nsName}}}
		for _, a := range k.nsAddrs {
			res.extra = append(res.extra, k.addr(nsName, a))
		}
		return res
	}
	return k.nodata()
}

// soa is the zone's SOA record, in CoreDNS's format.
func (k *kube) soa() *dns.SOA {
	ttl := k.ttl
	if ttl > 300 {
		ttl = 300
	}
	return &dns.SOA{
		Hdr:     hdr(k.zone, dns.TypeSOA, ttl),
		Ns:      "ns.dns." + k.zone,
		Mbox:    "hostmaster." + k.zone,
		Serial:  k.ix.serial.Load(),
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  k.ttl,
	}
}

func (k *kube) nxdomain() result {
	return result{rcode: dns.RcodeNameError, ns: []dns.RR{k.soa()}}
}

func (k *kube) nodata() result { return result{ns: []dns.RR{k.soa()}} }

func hdr(name string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

// addr is an A or AAAA record for ip.
func (k *kube) addr(name string, ip netip.Addr) dns.RR {
	if ip.Is4() {
		b := ip.As4()
		return &dns.A{Hdr: hdr(name, dns.TypeA, k.ttl), A: net.IP(b[:])}
	}
	b := ip.As16()
	return &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA, k.ttl), AAAA: net.IP(b[:])}
}

// addresses answers an A or AAAA question from ips: NODATA when the name has addresses of the other
// family only, or for other types.
func (k *kube) addresses(qname string, ips []netip.Addr, qtype uint16) result {
	var family []netip.Addr
	for i, ip := range ips {
		if (qtype == dns.TypeA && ip.Is4()) || (qtype == dns.TypeAAAA && ip.Is6()) {
			if family == nil && i == 0 && allFamily(ips, ip.Is4()) {
				family = ips // the common case: no copy
				break
			}
			family = append(family, ip)
		}
	}
	return k.addressRecords(qname, family)
}

func allFamily(ips []netip.Addr, v4 bool) bool {
	for _, ip := range ips {
		if ip.Is4() != v4 {
			return false
		}
	}
	return true
}

// services answers names ending in .svc.<zone>; labels are the ones left of "svc".
func (k *kube) services(qname string, labels []string, qtype uint16) result {
	l := len(labels)
	if l == 0 {
		return k.nodata() // svc.<zone>
	}
	ns := labels[l-1]
	n := k.ix.namespaces[ns]
	if n == nil || !n.exists {
		return k.nxdomain()
	}
	if l == 1 {
		return k.nodata() // <ns>.svc.<zone>
	}
	name := labels[l-2]
	e := n.services[name]
	if e == nil || e.svc == nil {
		return k.nxdomain()
	}
	switch l {
	case 2: // <service>.<ns>.svc.<zone>
		return k.service(qname, ns, name, e, qtype, "", "")
	case 3: // <hostname>.<service>.<ns>.svc.<zone>
		res := k.host(qname, ns, name, n, e, labels[0], qtype)
		if res.rcode == dns.RcodeNameError && isProtoLabel(labels[0]) && e.svc.kind != kindExternalName {
			// _<proto>.<service>...: an empty non-terminal above the SRV names of that protocol.
			for _, p := range e.svc.ports {
				if p.name != "" && p.proto == labels[0][1:] {
					return k.nodata()
				}
			}
		}
		return res
	case 4: // _<port>._<proto>.<service>.<ns>.svc.<zone>
		if e.svc.kind == kindExternalName {
			return k.nxdomain()
		}
		return k.service(qname, ns, name, e, qtype, strings.TrimPrefix(labels[0], "_"), strings.TrimPrefix(labels[1], "_"))
	}
	return k.nxdomain()
}

func isProtoLabel(s string) bool { return s == "_tcp" || s == "_udp" || s == "_sctp" }

// matchPort is CoreDNS's port selection: an empty wanted name or protocol matches every port.
func matchPort(p port, name, proto string) bool {
	return (name == "" || name == p.name) && (proto == "" || proto == p.proto)
}

// published reports whether an endpoint is in DNS: it is ready, or its Service publishes unready ones.
func published(ep *endpoint, svc *service) bool { return ep.ready || svc.publishNotReady }

// endpointHostname is an endpoint's name under its Service: its hostname, or else its IP with dashes,
// as CoreDNS names them.
func endpointHostname(ep *endpoint) string {
	if ep.hostname != "" {
		return ep.hostname
	}
	return dashed(ep.addr)
}

func dashed(ip netip.Addr) string {
	s := ip.String()
	if ip.Is4() {
		return strings.ReplaceAll(s, ".", "-")
	}
	return strings.ReplaceAll(s, ":", "-")
}

// srvEntry is one (target, address, port) combination behind SRV answers. host is the target's first
// label, "" for the Service's own name.
type srvEntry struct {
	host string
	addr netip.Addr
	port int32
}

// service answers <service>.<ns>.svc.<zone>, or its SRV names when portName/proto are set.
func (k *kube) service(qname, ns, name string, e *svcEntry, qtype uint16, portName, proto string) result {
	svc := e.svc
	switch svc.kind {
	case kindExternalName:
		target := svc.externalName
		if _, err := netip.ParseAddr(strings.TrimSuffix(target, ".")); err == nil || target == "." {
			return k.nxdomain() // not a name; CoreDNS does not answer it either
		}
		if target == name+"."+ns+".svc."+k.zone {
			return k.nodata() // x CNAME x: a loop, left out as CoreDNS does
		}
		res := result{answer: []dns.RR{&dns.CNAME{Hdr: hdr(qname, dns.TypeCNAME, k.ttl), Target: target}}}
		if qtype != dns.TypeCNAME && qtype != dns.TypeANY {
			res.target = target
		}
		return res

	case kindClusterIP:
		if qtype != dns.TypeSRV {
			if portName != "" || proto != "" {
				matched := false
				for _, p := range svc.ports {
					matched = matched || matchPort(p, portName, proto)
				}
				if !matched {
					return k.nxdomain()
				}
			}
			return k.addresses(qname, svc.ips, qtype)
		}
		var entries []srvEntry
		matched := false
		for _, p := range svc.ports {
			if !matchPort(p, portName, proto) {
				continue
			}
			matched = true
			for _, ip := range svc.ips {
				entries = append(entries, srvEntry{addr: ip, port: p.port})
			}
		}
		if !matched && (portName != "" || proto != "") {
			return k.nxdomain()
		}
		return k.srv(qname, name+"."+ns+".svc."+k.zone, entries)

	default: // headless
		if qtype != dns.TypeSRV && portName == "" && proto == "" {
			ips, any := k.endpointAddrs(e, "", qtype)
			if !any {
				return k.nxdomain() // no ready endpoints: NXDOMAIN, per the spec
			}
			return k.addressRecords(qname, ips)
		}
		entries := k.endpointEntries(e, portName, proto, "")
		if len(entries) == 0 {
			return k.nxdomain() // no ready endpoints (or no port of that name)
		}
		if qtype == dns.TypeSRV {
			return k.srv(qname, name+"."+ns+".svc."+k.zone, entries)
		}
		return k.addresses(qname, entryAddrs(entries), qtype)
	}
}

// endpointAddrs returns the distinct addresses of qtype's family of e's published endpoints (only those
// named host, when set), and whether any published endpoint matched at all.
func (k *kube) endpointAddrs(e *svcEntry, host string, qtype uint16) (ips []netip.Addr, any bool) {
	for _, s := range e.slices {
		for i := range s.endpoints {
			ep := &s.endpoints[i]
			if !published(ep, e.svc) || (host != "" && !hostIs(ep, host)) {
				continue
			}
			any = true
			if (qtype == dns.TypeA && ep.addr.Is4()) || (qtype == dns.TypeAAAA && ep.addr.Is6()) {
				ips = appendUnique(ips, ep.addr)
			}
		}
	}
	return ips, any
}

// hostIs reports whether ep's name under its Service is host, without building the name.
func hostIs(ep *endpoint, host string) bool {
	if ep.hostname != "" {
		return ep.hostname == host
	}
	return dashed(ep.addr) == host
}

func appendUnique(ips []netip.Addr, ip netip.Addr) []netip.Addr {
	if len(ips) < 32 {
		for _, x := range ips {
			if x == ip {
				return ips
			}
		}
		return append(ips, ip)
	}
	if slices.Contains(ips, ip) {
		return ips
	}
	return append(ips, ip)
}

// endpointEntries lists the published endpoints of e with their matching ports; host, when set, keeps only
// the endpoints of that hostname.
func (k *kube) endpointEntries(e *svcEntry, portName, proto, host string) []srvEntry {
	var entries []srvEntry
	for _, s := range e.slices {
		for i := range s.endpoints {
			ep := &s.endpoints[i]
			if !published(ep, e.svc) || (host != "" && !hostIs(ep, host)) {
				continue
			}
			h := endpointHostname(ep)
			if len(s.ports) == 0 {
				// A slice without ports: the endpoint exists, with CoreDNS's port -1 (no SRV record).
				if portName == "" && proto == "" {
					entries = append(entries, srvEntry{host: h, addr: ep.addr, port: -1})
				}
				continue
			}
			for _, p := range s.ports {
				if matchPort(p, portName, proto) {
					entries = append(entries, srvEntry{host: h, addr: ep.addr, port: p.port})
				}
			}
		}
	}
	return entries
}

func entryAddrs(entries []srvEntry) []netip.Addr {
	out := make([]netip.Addr, 0, len(entries))
	for _, e := range entries {
		out = appendUnique(out, e.addr)
	}
	return out
}

// addressRecords answers with A/AAAA records for ips (already of the question's family): NODATA when
// there are none.
func (k *kube) addressRecords(qname string, ips []netip.Addr) result {
	if len(ips) == 0 {
		return k.nodata()
	}
	// One allocation for the records and one for their addresses, whatever their number.
	res := result{answer: make([]dns.RR, len(ips))}
	if ips[0].Is4() {
		recs, raw := make([]dns.A, len(ips)), make([]byte, 4*len(ips))
		for i, ip := range ips {
			b := raw[4*i : 4*i+4 : 4*i+4]
			a4 := ip.As4()
			copy(b, a4[:])
			recs[i] = dns.A{Hdr: hdr(qname, dns.TypeA, k.ttl), A: net.IP(b)}
			res.answer[i] = &recs[i]
		}
		return res
	}
	recs, raw := make([]dns.AAAA, len(ips)), make([]byte, 16*len(ips))
	for i, ip := range ips {
		b := raw[16*i : 16*i+16 : 16*i+16]
		a16 := ip.As16()
		copy(b, a16[:])
		recs[i] = dns.AAAA{Hdr: hdr(qname, dns.TypeAAAA, k.ttl), AAAA: net.IP(b)}
		res.answer[i] = &recs[i]
	}
	return res
}

// srv builds SRV answers and their address records the way CoreDNS does: priority 0, every record the
// same weight 100/len(entries) (at least 1), one SRV per (target, port), one address per (target, IP).
// base is the Service's name; an entry's target is its host under it.
func (k *kube) srv(qname, base string, entries []srvEntry) result {
	var res result
	if len(entries) == 0 {
		return k.nodata()
	}
	weight := uint16(100 / len(entries))
	if weight == 0 {
		weight = 1
	}
	type srvKey struct {
		host string
		port int32
	}
	type addrKey struct {
		host string
		addr netip.Addr
	}
	srvs := map[srvKey]bool{}
	addrs := map[addrKey]bool{}
	targets := map[string]string{}
	for _, e := range entries {
		if e.port < 0 || e.port > 65535 {
			continue
		}
		target, ok := targets[e.host]
		if !ok {
			target = base
			if e.host != "" {
				target = e.host + "." + base
			}
			targets[e.host] = target
		}
		if sk := (srvKey{e.host, e.port}); !srvs[sk] {
			srvs[sk] = true
			res.answer = append(res.answer, &dns.SRV{Hdr: hdr(qname, dns.TypeSRV, k.ttl), Priority: 0, Weight: weight, Port: uint16(e.port), Target: target})
		}
		if ak := (addrKey{e.host, e.addr}); !addrs[ak] {
			addrs[ak] = true
			res.extra = append(res.extra, k.addr(target, e.addr))
		}
	}
	if len(res.answer) == 0 {
		return k.nodata()
	}
	return res
}

// host answers <hostname>.<service>.<ns>.svc.<zone>: the Service's endpoints of that hostname (a
// StatefulSet pod's, or an IP-derived one), and for a headless Service the pods whose spec.hostname and
// spec.subdomain name it.
func (k *kube) host(qname, ns, name string, n *nsEntry, e *svcEntry, host string, qtype uint16) result {
	svc := e.svc
	if svc.kind == kindExternalName {
		return k.nxdomain()
	}
	var pods []*pod
	if svc.kind == kindHeadless {
		for _, p := range n.hosts[hostKey{subdomain: name, hostname: host}] {
			if (p.ready || svc.publishNotReady) && len(p.ips) > 0 {
				pods = append(pods, p)
			}
		}
	}
	if qtype == dns.TypeSRV {
		entries := k.endpointEntries(e, "", "", host)
		if len(entries) == 0 && len(pods) == 0 {
			return k.nxdomain()
		}
		return k.srv(qname, name+"."+ns+".svc."+k.zone, entries)
	}
	ips, any := k.endpointAddrs(e, host, qtype)
	if !any && len(pods) == 0 {
		return k.nxdomain()
	}
	for _, p := range pods {
		for _, ip := range p.ips {
			if (qtype == dns.TypeA && ip.Is4()) || (qtype == dns.TypeAAAA && ip.Is6()) {
				ips = appendUnique(ips, ip)
			}
		}
	}
	return k.addressRecords(qname, ips)
}

// pods answers names ending in .pod.<zone>; labels are the ones left of "pod".
func (k *kube) pods(qname string, labels []string, qtype uint16) result {
	l := len(labels)
	if l == 0 {
		return k.nodata() // pod.<zone>
	}
	if k.podMode != PodsInsecure && k.podMode != PodsVerified {
		return k.nxdomain()
	}
	ns := labels[l-1]
	if n := k.ix.namespaces[ns]; n == nil || !n.exists {
		return k.nxdomain()
	}
	if l == 1 {
		return k.nodata() // <ns>.pod.<zone>
	}
	if l > 2 {
		return k.nxdomain()
	}
	ip, ok := podNameIP(labels[0])
	if !ok {
		return k.nxdomain()
	}
	if k.podMode == PodsVerified {
		found := false
		k.ix.podIPs.each(ip, func(p *pod) bool {
			found = p.namespace == ns
			return !found
		})
		if !found {
			return k.nxdomain()
		}
	}
	return k.addresses(qname, []netip.Addr{ip}, qtype)
}

// podNameIP parses a pod record's first label: 1-2-3-4 for IPv4, the IPv6 text with ':' as '-'.
func podNameIP(label string) (netip.Addr, bool) {
	var s string
	if strings.Count(label, "-") == 3 && !strings.Contains(label, "--") {
		s = strings.ReplaceAll(label, "-", ".")
	} else {
		s = strings.ReplaceAll(label, "-", ":")
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, false
	}
	return ip, true
}

// reverseIP parses a full in-addr.arpa or ip6.arpa name (lower case); ok is false for anything else,
// such as a partial name.
func reverseIP(lname string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(lname, ".in-addr.arpa."); ok {
		var labels [5]string
		if splitLabels(rest, labels[:]) != 4 {
			return netip.Addr{}, false
		}
		ip, err := netip.ParseAddr(labels[3] + "." + labels[2] + "." + labels[1] + "." + labels[0])
		if err != nil {
			return netip.Addr{}, false
		}
		return ip, true
	}
	if rest, ok := strings.CutSuffix(lname, ".ip6.arpa."); ok {
		if len(rest) != 63 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i := 0; i < 32; i++ {
			c := rest[2*i]
			if i < 31 && rest[2*i+1] != '.' {
				return netip.Addr{}, false
			}
			var v byte
			switch {
			case c >= '0' && c <= '9':
				v = c - '0'
			case c >= 'a' && c <= 'f':
				v = c - 'a' + 10
			default:
				return netip.Addr{}, false
			}
			// label i is nibble 31-i of the address
			nib := 31 - i
			if nib%2 == 0 {
				b[nib/2] |= v << 4
			} else {
				b[nib/2] |= v
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

// isReverse reports whether lname is under a reverse zone.
func isReverse(lname string) bool {
	return lname == "in-addr.arpa." || lname == "ip6.arpa." ||
		strings.HasSuffix(lname, ".in-addr.arpa.") || strings.HasSuffix(lname, ".ip6.arpa.")
}

// ptr answers a PTR question for ip: the Service whose cluster IP it is, else every endpoint with that
// address. ok is false when the IP is not the cluster's, so the question goes upstream.
func (k *kube) ptr(qname string, ip netip.Addr) (res result, ok bool) {
	k.ix.mu.RLock()
	defer k.ix.mu.RUnlock()
	k.ix.svcIPs.each(ip, func(s *service) bool {
		res.answer = append(res.answer, &dns.PTR{Hdr: hdr(qname, dns.TypePTR, k.ttl), Ptr: s.name + "." + s.namespace + ".svc." + k.zone})
		return false // one Service per cluster IP
	})
	if len(res.answer) > 0 {
		return res, true
	}
	seen := map[string]bool{}
	k.ix.epIPs.each(ip, func(s *slice) bool {
		e := k.ix.entry(s.namespace, s.service, false)
		for i := range s.endpoints {
			ep := &s.endpoints[i]
			if ep.addr != ip || !(ep.ready || (e != nil && e.svc != nil && e.svc.publishNotReady)) {
				continue
			}
			target := endpointHostname(ep) + "." + s.service + "." + s.namespace + ".svc." + k.zone
			if !seen[target] {
				seen[target] = true
				res.answer = append(res.answer, &dns.PTR{Hdr: hdr(qname, dns.TypePTR, k.ttl), Ptr: target})
			}
		}
		return true
	})
	return res, len(res.answer) > 0
}
