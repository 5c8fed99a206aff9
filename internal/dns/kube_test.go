package dns

import (
	"context"
	"testing"

	"github.com/miekg/dns"
)

// stubExternal answers the upstream lookups that ExternalName chasing makes in the table tests.
func stubExternal(_ context.Context, name string, qtype uint16, _ bool) (*dns.Msg, error) {
	m := new(dns.Msg)
	switch {
	case name == "ext.interwebs.test." && qtype == dns.TypeA:
		rr, _ := dns.NewRR("ext.interwebs.test. 300 IN A 192.0.2.53")
		m.Answer = []dns.RR{rr}
	case name == "ext.interwebs.test.":
		rr, _ := dns.NewRR("interwebs.test. 60 IN SOA ns.interwebs.test. admin.interwebs.test. 1 2 3 4 60")
		m.Ns = []dns.RR{rr}
	default:
		m.Rcode = dns.RcodeNameError
	}
	return m, nil
}

// specCases cover the Kubernetes DNS specification 1.1.0 and CoreDNS's answers for it.
var specCases = []testCase{
	// 2.2: the schema version.
	{qname: "dns-version.cluster.local.", qtype: dns.TypeTXT, answer: []string{`dns-version.cluster.local. 28800 IN TXT "1.1.0"`}},
	{qname: "dns-version.cluster.local.", qtype: dns.TypeA, ns: []string{testSOA}},
	{qname: "x.dns-version.cluster.local.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError, ns: []string{testSOA}},

	// 2.3.1: A/AAAA of a ClusterIP service; case-insensitive, the answer keeps the question's case.
	{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"}},
	{qname: "SVC1.TestNS.svc.Cluster.Local.", qtype: dns.TypeA, answer: []string{"SVC1.TestNS.svc.Cluster.Local. 5 IN A 10.0.0.1"}},
	{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeAAAA, ns: []string{testSOA}},
	{qname: "svc6.testns.svc.cluster.local.", qtype: dns.TypeAAAA, answer: []string{"svc6.testns.svc.cluster.local. 5 IN AAAA 1234:abcd::1"}},
	{qname: "svc6.testns.svc.cluster.local.", qtype: dns.TypeA, ns: []string{testSOA}},
	{qname: "dual.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"dual.testns.svc.cluster.local. 5 IN A 10.0.0.3"}},
	{qname: "dual.testns.svc.cluster.local.", qtype: dns.TypeAAAA, answer: []string{"dual.testns.svc.cluster.local. 5 IN AAAA fd00::3"}},
	{qname: "kube-dns.kube-system.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10"}},
	// NODATA for the other types of an existing name.
	{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeMX, ns: []string{testSOA}},
	{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeTXT, ns: []string{testSOA}},
	{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeANY, ns: []string{testSOA}},
	{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeHINFO, ns: []string{testSOA}},
	{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeCNAME, ns: []string{testSOA}},

	// 2.3.2: SRV of a ClusterIP service, with the service's address in the additional section.
	{qname: "_http._tcp.svc1.testns.svc.cluster.local.", qtype: dns.TypeSRV,
		answer: []string{"_http._tcp.svc1.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc1.testns.svc.cluster.local."},
		extra:  []string{"svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"}},
	{qname: "_HTTP._TCP.svc1.testns.svc.cluster.local.", qtype: dns.TypeSRV,
		answer: []string{"_HTTP._TCP.svc1.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc1.testns.svc.cluster.local."},
		extra:  []string{"svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"}},
	{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeSRV,
		answer: []string{"svc1.testns.svc.cluster.local. 5 IN SRV 0 100 80 svc1.testns.svc.cluster.local."},
		extra:  []string{"svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"}},
	{qname: "_http._udp.svc1.testns.svc.cluster.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "_https._tcp.svc1.testns.svc.cluster.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	// CoreDNS answers the address of a ClusterIP service at its SRV names too.
	{qname: "_http._tcp.svc1.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"_http._tcp.svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1"}},
	// _tcp.<service> is an empty non-terminal when the service has a named TCP port.
	{qname: "_tcp.svc1.testns.svc.cluster.local.", qtype: dns.TypeSRV, ns: []string{testSOA}},
	{qname: "_udp.svc1.testns.svc.cluster.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	// A dual-stack service: CoreDNS's weight counts (port, IP) pairs.
	{qname: "dual.testns.svc.cluster.local.", qtype: dns.TypeSRV,
		answer: []string{
			"dual.testns.svc.cluster.local. 5 IN SRV 0 25 80 dual.testns.svc.cluster.local.",
			"dual.testns.svc.cluster.local. 5 IN SRV 0 25 53 dual.testns.svc.cluster.local.",
		},
		extra: []string{"dual.testns.svc.cluster.local. 5 IN A 10.0.0.3", "dual.testns.svc.cluster.local. 5 IN AAAA fd00::3"}},
	{qname: "_dns._udp.dual.testns.svc.cluster.local.", qtype: dns.TypeSRV,
		answer: []string{"_dns._udp.dual.testns.svc.cluster.local. 5 IN SRV 0 50 53 dual.testns.svc.cluster.local."},
		extra:  []string{"dual.testns.svc.cluster.local. 5 IN A 10.0.0.3", "dual.testns.svc.cluster.local. 5 IN AAAA fd00::3"}},
	// Unnamed ports have no _port._proto name, but appear in the service's own SRV set (as in CoreDNS).
	{qname: "unnamed.testns.svc.cluster.local.", qtype: dns.TypeSRV,
		answer: []string{"unnamed.testns.svc.cluster.local. 5 IN SRV 0 100 8080 unnamed.testns.svc.cluster.local."},
		extra:  []string{"unnamed.testns.svc.cluster.local. 5 IN A 10.0.0.4"}},

	// An endpoint of a ClusterIP service has a name too (CoreDNS), from its IP when it has no hostname.
	{qname: "10-244-0-5.svc1.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"10-244-0-5.svc1.testns.svc.cluster.local. 5 IN A 10.244.0.5"}},

	// 2.4.1: a headless service answers its ready endpoints; not-ready ones are left out.
	{qname: "hdls1.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
		"hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2",
		"hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.3",
		"hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4",
		"hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5",
	}},
	{qname: "hdls1.testns.svc.cluster.local.", qtype: dns.TypeAAAA, answer: []string{
		"hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::1",
		"hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::2",
	}},
	{qname: "hdls1.testns.svc.cluster.local.", qtype: dns.TypeTXT, ns: []string{testSOA}},
	// Endpoint names: the hostname, else the IP with dashes; every IP of a hostname.
	{qname: "172-0-0-2.hdls1.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"172-0-0-2.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2"}},
	{qname: "dup-name.hdls1.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
		"dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4",
		"dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5",
	}},
	{qname: "5678-abcd--2.hdls1.testns.svc.cluster.local.", qtype: dns.TypeAAAA, answer: []string{"5678-abcd--2.hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::2"}},
	{qname: "5678-abcd--2.hdls1.testns.svc.cluster.local.", qtype: dns.TypeA, ns: []string{testSOA}},
	{qname: "172-0-0-6.hdls1.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "bogus.hdls1.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	// 2.4.2: N x M SRV records; CoreDNS's weight counts (endpoint, port) pairs before duplicates go.
	{qname: "_http._tcp.hdls1.testns.svc.cluster.local.", qtype: dns.TypeSRV,
		answer: []string{
			"_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 172-0-0-2.hdls1.testns.svc.cluster.local.",
			"_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 172-0-0-3.hdls1.testns.svc.cluster.local.",
			"_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 dup-name.hdls1.testns.svc.cluster.local.",
			"_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 5678-abcd--1.hdls1.testns.svc.cluster.local.",
			"_http._tcp.hdls1.testns.svc.cluster.local. 5 IN SRV 0 16 80 5678-abcd--2.hdls1.testns.svc.cluster.local.",
		},
		extra: []string{
			"172-0-0-2.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.2",
			"172-0-0-3.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.3",
			"dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.4",
			"dup-name.hdls1.testns.svc.cluster.local. 5 IN A 172.0.0.5",
			"5678-abcd--1.hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::1",
			"5678-abcd--2.hdls1.testns.svc.cluster.local. 5 IN AAAA 5678:abcd::2",
		}},
	{qname: "web.testns.svc.cluster.local.", qtype: dns.TypeSRV,
		answer: []string{
			"web.testns.svc.cluster.local. 5 IN SRV 0 25 80 web-0.web.testns.svc.cluster.local.",
			"web.testns.svc.cluster.local. 5 IN SRV 0 25 9090 web-0.web.testns.svc.cluster.local.",
			"web.testns.svc.cluster.local. 5 IN SRV 0 25 80 web-1.web.testns.svc.cluster.local.",
			"web.testns.svc.cluster.local. 5 IN SRV 0 25 9090 web-1.web.testns.svc.cluster.local.",
		},
		extra: []string{
			"web-0.web.testns.svc.cluster.local. 5 IN A 10.244.1.10",
			"web-1.web.testns.svc.cluster.local. 5 IN A 10.244.1.11",
		}},
	{qname: "_metrics._tcp.web.testns.svc.cluster.local.", qtype: dns.TypeSRV,
		answer: []string{
			"_metrics._tcp.web.testns.svc.cluster.local. 5 IN SRV 0 50 9090 web-0.web.testns.svc.cluster.local.",
			"_metrics._tcp.web.testns.svc.cluster.local. 5 IN SRV 0 50 9090 web-1.web.testns.svc.cluster.local.",
		},
		extra: []string{
			"web-0.web.testns.svc.cluster.local. 5 IN A 10.244.1.10",
			"web-1.web.testns.svc.cluster.local. 5 IN A 10.244.1.11",
		}},
	{qname: "_nope._tcp.web.testns.svc.cluster.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	// A StatefulSet pod by name (the seeds' "web-0.web").
	{qname: "web-0.web.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"web-0.web.testns.svc.cluster.local. 5 IN A 10.244.1.10"}},
	// SRV at an endpoint's name: its ports (CoreDNS).
	{qname: "web-1.web.testns.svc.cluster.local.", qtype: dns.TypeSRV,
		answer: []string{
			"web-1.web.testns.svc.cluster.local. 5 IN SRV 0 50 80 web-1.web.testns.svc.cluster.local.",
			"web-1.web.testns.svc.cluster.local. 5 IN SRV 0 50 9090 web-1.web.testns.svc.cluster.local.",
		},
		extra: []string{"web-1.web.testns.svc.cluster.local. 5 IN A 10.244.1.11"}},
	// A headless service without ports: addresses, but no SRV records.
	{qname: "hdlsprtls.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"hdlsprtls.testns.svc.cluster.local. 5 IN A 172.0.0.20"}},
	{qname: "hdlsprtls.testns.svc.cluster.local.", qtype: dns.TypeSRV, ns: []string{testSOA}},
	{qname: "172-0-0-20.hdlsprtls.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"172-0-0-20.hdlsprtls.testns.svc.cluster.local. 5 IN A 172.0.0.20"}},
	// No ready endpoints (a not-ready one and a terminating one that still serves): NXDOMAIN, per the spec.
	{qname: "hdlsempty.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "hdlsempty.testns.svc.cluster.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "hdlsnoslice.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "_http._tcp.hdlsnoslice.testns.svc.cluster.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	// publishNotReadyAddresses: not-ready endpoints are published.
	{qname: "pnr.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"pnr.testns.svc.cluster.local. 5 IN A 172.0.0.30"}},
	{qname: "pnr-0.pnr.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"pnr-0.pnr.testns.svc.cluster.local. 5 IN A 172.0.0.30"}},

	// A pod's hostname.subdomain when a headless service named like the subdomain exists, from the pod
	// itself (it need not be an endpoint); only while the pod is ready.
	{qname: "mypod.sub.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"mypod.sub.testns.svc.cluster.local. 5 IN A 10.244.2.5"}},
	{qname: "mypod.sub.testns.svc.cluster.local.", qtype: dns.TypeAAAA, ns: []string{testSOA}},
	{qname: "sleepy.sub.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "mypod.svc1.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},

	// 2.5: ExternalName: a CNAME, chased in the zone and upstream.
	{qname: "external.testns.svc.cluster.local.", qtype: dns.TypeCNAME, answer: []string{"external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test."}},
	{qname: "external.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
		"external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test.",
		"ext.interwebs.test. 300 IN A 192.0.2.53",
	}},
	{qname: "external.testns.svc.cluster.local.", qtype: dns.TypeAAAA,
		answer: []string{"external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test."},
		ns:     []string{"interwebs.test. 60 IN SOA ns.interwebs.test. admin.interwebs.test. 1 2 3 4 60"}},
	{qname: "external-to-service.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
		"external-to-service.testns.svc.cluster.local. 5 IN CNAME svc1.testns.svc.cluster.local.",
		"svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1",
	}},
	{qname: "ext-missing.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
		answer: []string{"ext-missing.testns.svc.cluster.local. 5 IN CNAME nothere.testns.svc.cluster.local."},
		ns:     []string{testSOA}},
	{qname: "ext-ip.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "extself.testns.svc.cluster.local.", qtype: dns.TypeA, ns: []string{testSOA}},
	{qname: "_http._tcp.external.testns.svc.cluster.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, ns: []string{testSOA}},

	// Names that do not exist: NXDOMAIN with the zone's SOA.
	{qname: "svc0.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "svc0.testns.svc.cluster.local.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "svc1.nons.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "nons.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "a.b.c.d.e.f.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "foo.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "foo.cluster.local.", qtype: dns.TypeNS, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	// Search-path expansions of external names are in the zone: NXDOMAIN here, never forwarded.
	{qname: "example.com.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "example.com.svc.cluster.local.", qtype: dns.TypeAAAA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "example.com.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "www.example.com.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "a.www.example.com.default.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	// Wildcards are not answered (CoreDNS removed them in 1.9; they were deprecated by the spec).
	{qname: "*.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "svc1.*.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "*.*.svc1.testns.svc.cluster.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, ns: []string{testSOA}},

	// Empty non-terminals and the apex: NODATA.
	{qname: "testns.svc.cluster.local.", qtype: dns.TypeA, ns: []string{testSOA}},
	{qname: "empty.svc.cluster.local.", qtype: dns.TypeA, ns: []string{testSOA}},
	{qname: "svc.cluster.local.", qtype: dns.TypeA, ns: []string{testSOA}},
	{qname: "pod.cluster.local.", qtype: dns.TypeA, ns: []string{testSOA}},
	{qname: "dns.cluster.local.", qtype: dns.TypeA, ns: []string{testSOA}},
	{qname: "cluster.local.", qtype: dns.TypeA, ns: []string{testSOA}},
	{qname: "cluster.local.", qtype: dns.TypeSOA, answer: []string{testSOA}},
	{qname: "cluster.local.", qtype: dns.TypeNS,
		answer: []string{"cluster.local. 5 IN NS ns.dns.cluster.local."},
		extra:  []string{"ns.dns.cluster.local. 5 IN A 10.96.0.10"}},
	{qname: "ns.dns.cluster.local.", qtype: dns.TypeA, answer: []string{"ns.dns.cluster.local. 5 IN A 10.96.0.10"}},

	// Pod records are disabled by default.
	{qname: "1-2-3-4.testns.pod.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	{qname: "testns.pod.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},

	// 2.3.3, 2.4.3: PTR for cluster IPs and endpoint IPs, IPv4 and full-nibble IPv6.
	{qname: "1.0.0.10.in-addr.arpa.", qtype: dns.TypePTR, answer: []string{"1.0.0.10.in-addr.arpa. 5 IN PTR svc1.testns.svc.cluster.local."}},
	{qname: "10.0.96.10.in-addr.arpa.", qtype: dns.TypePTR, answer: []string{"10.0.96.10.in-addr.arpa. 5 IN PTR kube-dns.kube-system.svc.cluster.local."}},
	{qname: "2.0.0.172.in-addr.arpa.", qtype: dns.TypePTR, answer: []string{"2.0.0.172.in-addr.arpa. 5 IN PTR 172-0-0-2.hdls1.testns.svc.cluster.local."}},
	{qname: "4.0.0.172.IN-ADDR.ARPA.", qtype: dns.TypePTR, answer: []string{"4.0.0.172.IN-ADDR.ARPA. 5 IN PTR dup-name.hdls1.testns.svc.cluster.local."}},
	{qname: "10.1.244.10.in-addr.arpa.", qtype: dns.TypePTR, answer: []string{"10.1.244.10.in-addr.arpa. 5 IN PTR web-0.web.testns.svc.cluster.local."}},
	{qname: "5.0.244.10.in-addr.arpa.", qtype: dns.TypePTR, answer: []string{"5.0.244.10.in-addr.arpa. 5 IN PTR 10-244-0-5.svc1.testns.svc.cluster.local."}},
	{qname: "30.0.0.172.in-addr.arpa.", qtype: dns.TypePTR, answer: []string{"30.0.0.172.in-addr.arpa. 5 IN PTR pnr-0.pnr.testns.svc.cluster.local."}},
	{qname: "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa.", qtype: dns.TypePTR,
		answer: []string{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa. 5 IN PTR svc6.testns.svc.cluster.local."}},
	{qname: "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.8.7.6.5.ip6.arpa.", qtype: dns.TypePTR,
		answer: []string{"2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.8.7.6.5.ip6.arpa. 5 IN PTR 5678-abcd--2.hdls1.testns.svc.cluster.local."}},
	// Not the cluster's (a not-ready endpoint, an unknown IP, a partial name): forwarded upstream,
	// which in this fixture is nobody, so SERVFAIL.
	{qname: "6.0.0.172.in-addr.arpa.", qtype: dns.TypePTR, rcode: dns.RcodeServerFailure},
	{qname: "9.9.9.9.in-addr.arpa.", qtype: dns.TypePTR, rcode: dns.RcodeServerFailure},
	{qname: "0.0.10.in-addr.arpa.", qtype: dns.TypePTR, rcode: dns.RcodeServerFailure},
	{qname: "1.0.0.10.in-addr.arpa.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},

	// Other classes, zone transfers and meta types are refused.
	{qname: "example.org.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},
	{qname: "cluster.local.", qtype: dns.TypeAXFR, rcode: dns.RcodeRefused},
	{qname: "cluster.local.", qtype: dns.TypeIXFR, rcode: dns.RcodeRefused},
	{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeOPT, rcode: dns.RcodeFormatError},
}

func TestSpec(t *testing.T) {
	s := newFixtureServer(t, Config{}, fixture()...)
	s.kube.external = stubExternal
	runTable(t, s.transport.handler, specCases)
}

func TestPodRecordsInsecure(t *testing.T) {
	s := newFixtureServer(t, Config{PodRecords: PodsInsecure}, fixture()...)
	runTable(t, s.transport.handler, []testCase{
		{qname: "1-2-3-4.testns.pod.cluster.local.", qtype: dns.TypeA, answer: []string{"1-2-3-4.testns.pod.cluster.local. 5 IN A 1.2.3.4"}},
		{qname: "1-2-3-4.TESTNS.pod.cluster.local.", qtype: dns.TypeA, answer: []string{"1-2-3-4.TESTNS.pod.cluster.local. 5 IN A 1.2.3.4"}},
		{qname: "1-2-3-4.testns.pod.cluster.local.", qtype: dns.TypeAAAA, ns: []string{testSOA}},
		{qname: "fd00--1.testns.pod.cluster.local.", qtype: dns.TypeAAAA, answer: []string{"fd00--1.testns.pod.cluster.local. 5 IN AAAA fd00::1"}},
		{qname: "1-2-3.testns.pod.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
		{qname: "1-2-3-400.testns.pod.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
		{qname: "1-2-3-4.nons.pod.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
		{qname: "x.1-2-3-4.testns.pod.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
		{qname: "testns.pod.cluster.local.", qtype: dns.TypeA, ns: []string{testSOA}},
		{qname: "nons.pod.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	})
}

func TestPodRecordsVerified(t *testing.T) {
	s := newFixtureServer(t, Config{PodRecords: PodsVerified}, fixture()...)
	runTable(t, s.transport.handler, []testCase{
		{qname: "10-244-2-7.testns.pod.cluster.local.", qtype: dns.TypeA, answer: []string{"10-244-2-7.testns.pod.cluster.local. 5 IN A 10.244.2.7"}},
		{qname: "10-244-2-7.default.pod.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
		{qname: "1-2-3-4.testns.pod.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
	})
}

// Before the informers have synced, cluster names get SERVFAIL, not a wrong NXDOMAIN.
func TestNotSynced(t *testing.T) {
	s := newFixtureServer(t, Config{}, fixture()...)
	s.synced.Store(false)
	runTable(t, s.transport.handler, []testCase{
		{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},
		{qname: "svc0.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},
		{qname: "1.0.0.10.in-addr.arpa.", qtype: dns.TypePTR, rcode: dns.RcodeServerFailure},
	})
}

func TestTTL(t *testing.T) {
	s := newFixtureServer(t, Config{TTL: 30}, fixture()...)
	runTable(t, s.transport.handler, []testCase{
		{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"svc1.testns.svc.cluster.local. 30 IN A 10.0.0.1"}},
		{qname: "svc0.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns: []string{"cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1499347823 7200 1800 86400 30"}},
	})
}

func TestOtherZone(t *testing.T) {
	s := newFixtureServer(t, Config{Zone: "Corp.Example."}, fixture()...)
	runTable(t, s.transport.handler, []testCase{
		{qname: "svc1.testns.svc.corp.example.", qtype: dns.TypeA, answer: []string{"svc1.testns.svc.corp.example. 5 IN A 10.0.0.1"}},
		{qname: "dns-version.corp.example.", qtype: dns.TypeTXT, answer: []string{`dns-version.corp.example. 28800 IN TXT "1.1.0"`}},
		{qname: "1.0.0.10.in-addr.arpa.", qtype: dns.TypePTR, answer: []string{"1.0.0.10.in-addr.arpa. 5 IN PTR svc1.testns.svc.corp.example."}},
		{qname: "svc1.testns.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure}, // not ours: upstream
	})
}

func TestReverseIP(t *testing.T) {
	for name, want := range map[string]string{
		"1.0.0.10.in-addr.arpa.": "10.0.0.1",
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa.": "1234:abcd::1",
		"f.e.d.c.b.a.9.8.7.6.5.4.3.2.1.0.f.e.d.c.b.a.9.8.7.6.5.4.3.2.1.0.ip6.arpa.": "123:4567:89ab:cdef:123:4567:89ab:cdef",
	} {
		ip, ok := reverseIP(name)
		if !ok || ip.String() != want {
			t.Errorf("reverseIP(%q) = %v, %v; want %s", name, ip, ok, want)
		}
	}
	for _, name := range []string{"0.10.in-addr.arpa.", "256.0.0.10.in-addr.arpa.", "a.0.0.10.in-addr.arpa.", "1.1.0.0.10.in-addr.arpa.",
		"1.0.ip6.arpa.", "g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa.", "10.0.0.1.in-addr.arpa.x."} {
		if ip, ok := reverseIP(name); ok {
			t.Errorf("reverseIP(%q) = %v, want no address", name, ip)
		}
	}
}
