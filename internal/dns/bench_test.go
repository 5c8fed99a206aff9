package dns

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func packedQuery(b testing.TB, name string, qtype uint16) []byte {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	p, err := m.Pack()
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// benchServePacket measures the packet path without sockets: parse, answer, pack. Each goroutine reuses
// one writer, as a socket's reader does.
func benchServePacket(b *testing.B, s *Server, q []byte) {
	b.ReportAllocs()
	var n atomic.Int64
	sink := func(p []byte) { n.Add(int64(len(p))) }
	b.RunParallel(func(pb *testing.PB) {
		w := new(writer)
		for pb.Next() {
			*w = writer{t: s.transport, sink: sink}
			s.transport.servePacket(context.Background(), q, w)
		}
	})
	if n.Load() == 0 {
		b.Fatal("no response")
	}
}

// BenchmarkServePacket answers each question from the packed cache ("packed") and by building the
// response ("built", the cache disabled).
func BenchmarkServePacket(b *testing.B) {
	up := startUpstream(b, zoneAnswers)
	objs := append(fixture(), bigService(10)...)
	packed := newFixtureServer(b, Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{up.addr}}, objs...)
	built := newFixtureServer(b, Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{up.addr}, PackedCacheBytes: -1}, objs...)
	for _, c := range []struct {
		name  string
		qname string
		qtype uint16
	}{
		{"ClusterIP-A", "svc1.testns.svc.cluster.local.", dns.TypeA},
		{"headless-A-10", "big.testns.svc.cluster.local.", dns.TypeA},
		{"headless-SRV", "_http._tcp.hdls1.testns.svc.cluster.local.", dns.TypeSRV},
		{"search-NXDOMAIN", "www.example.com.testns.svc.cluster.local.", dns.TypeA},
		{"PTR", "1.0.0.10.in-addr.arpa.", dns.TypePTR},
		{"external-cached-A", "www.example.", dns.TypeA},
	} {
		q := packedQuery(b, c.qname, c.qtype)
		for _, v := range []struct {
			name string
			s    *Server
		}{{"packed", packed}, {"built", built}} {
			w := &writer{t: v.s.transport, sink: func([]byte) {}}
			v.s.transport.servePacket(context.Background(), q, w) // fills the caches
			b.Run(c.name+"/"+v.name, func(b *testing.B) { benchServePacket(b, v.s, q) })
		}
	}
	// The worst case of the packed cache: the index changes before every question, so each one is
	// built and kept again.
	q := packedQuery(b, "svc1.testns.svc.cluster.local.", dns.TypeA)
	b.Run("ClusterIP-A/packed-index-churn", func(b *testing.B) {
		b.ReportAllocs()
		w := new(writer)
		for i := 0; i < b.N; i++ {
			packed.ix.gen.Add(1)
			*w = writer{t: packed.transport, sink: func([]byte) {}}
			packed.transport.servePacket(context.Background(), q, w)
		}
	})
}

// BenchmarkUDP is the whole round trip over loopback UDP, client included.
func BenchmarkUDP(b *testing.B) {
	up := startUpstream(b, zoneAnswers)
	_, addr := startServer(b, Config{Upstreams: []string{up.addr}}, fixture()...)
	for _, c := range []struct{ name, qname string }{
		{"ClusterIP-A", "svc1.testns.svc.cluster.local."},
		{"external-cached-A", "www.example."},
	} {
		q := packedQuery(b, c.qname, dns.TypeA)
		query(b, addr, c.qname, dns.TypeA)
		b.Run(c.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				conn, err := net.Dial("udp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer conn.Close()
				buf := make([]byte, 4096)
				for pb.Next() {
					conn.SetDeadline(time.Now().Add(time.Second))
					if _, err := conn.Write(q); err != nil {
						b.Error(err)
						return
					}
					if _, err := conn.Read(buf); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkIndexMemory reports the live heap the index and the informer-side slim objects take per
// service or pod: services with 10 pods each, one EndpointSlice per service (what the transform keeps;
// the informer stores' map entries are not included here; bench/dns.sh measures the whole process).
func BenchmarkIndexMemory(b *testing.B) {
	const services, pods = 10000, 10
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := newFixtureServer(b, Config{})
		tr := &transformer{strs: newInterner()}
		var keep []any
		for n := 0; n < 100; n++ {
			slim, _ := tr.transform(ns(fmt.Sprintf("ns-%02d", n)))
			keep = append(keep, slim)
			s.ix.setNamespace(fmt.Sprintf("ns-%02d", n), true)
		}
		for sv := 0; sv < services; sv++ {
			namespace := fmt.Sprintf("ns-%02d", sv%100)
			name := fmt.Sprintf("svc-%05d", sv)
			svc := tr.service(clusterIP(namespace, name, []string{fmt.Sprintf("10.%d.%d.%d", 96+sv>>16, sv>>8&255, sv&255)}, tcp("http", 80)))
			s.ix.setService(nil, svc)
			var eps []discoveryv1.Endpoint
			for p := 0; p < pods; p++ {
				ip := fmt.Sprintf("10.%d.%d.%d", 128+(sv*pods+p)>>16, (sv*pods+p)>>8&255, (sv*pods+p)&255)
				po := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: fmt.Sprintf("%s-%d", name, p), ResourceVersion: "123456"},
					Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip}}
				slim := tr.pod(po)
				keep = append(keep, slim)
				if p, ok := slim.(*pod); ok {
					s.ix.setPod(nil, p)
				}
				eps = append(eps, ep(ip, true, ""))
			}
			sl := tr.slice(epSlice(namespace, name, name+"-abcde", []discoveryv1.EndpointPort{epPort("http", corev1.ProtocolTCP, 80)}, eps...))
			s.ix.setSlice(nil, sl)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(services*(pods+1)), "B/object")
		runtime.KeepAlive(keep)
		runtime.KeepAlive(s)
	}
}
