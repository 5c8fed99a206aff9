package dns

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus metrics. Query counters are cached per (type, rcode) so that
// counting a query does not hash label values.
type metrics struct {
	queries         *prometheus.CounterVec
	duration        prometheus.Histogram
	cacheHits       prometheus.Counter
	cacheMisses     prometheus.Counter
	truncated       prometheus.Counter
	forwardDuration prometheus.Histogram
	forwardErrors   prometheus.Counter
	loops           prometheus.Counter

	counters [len(metricTypes) + 1][rcodeSlots]atomic.Pointer[prometheus.Counter]
}

// metricTypes are the query types counted by name; the others count as "other".
var metricTypes = [...]uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypePTR, dns.TypeTXT, dns.TypeCNAME,
	dns.TypeNS, dns.TypeSOA, dns.TypeMX, dns.TypeANY, dns.TypeHTTPS}

const (
	rcodeSlots   = 25 // rcodes 0..23, then "dropped" (no response sent)
	rcodeDropped = 24
)

func newMetrics(reg prometheus.Registerer, objects func(kind int) float64, cacheLen func() float64) *metrics {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "svcnet_dns_queries_total",
			Help: "DNS queries answered, by query type and response code (\"dropped\": no response was sent).",
		}, []string{"type", "rcode"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "svcnet_dns_query_duration_seconds",
			Help:    "Time from reading a query to writing its response.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "svcnet_dns_cache_hits_total",
			Help: "Questions outside the cluster zone answered from the cache.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "svcnet_dns_cache_misses_total",
			Help: "Questions outside the cluster zone not in the cache.",
		}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "svcnet_dns_truncated_responses_total",
			Help: "UDP responses truncated (TC set) to fit the client's buffer.",
		}),
		forwardDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "svcnet_dns_forward_duration_seconds",
			Help:    "Duration of exchanges with upstream resolvers.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		forwardErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "svcnet_dns_forward_errors_total",
			Help: "Exchanges with upstream resolvers that failed (timeout, network error, mismatched answer).",
		}),
		loops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "svcnet_dns_forward_loops_detected_total",
			Help: "Upstream resolvers found sending our own queries back to us.",
		}),
	}
	if reg == nil {
		return m
	}
	// Counters already registered by an earlier server in this process (the agent restarting it) are
	// taken over, so they keep counting; the gauges are replaced, as they read this server's state.
	m.queries = register(reg, m.queries)
	m.duration = register(reg, m.duration)
	m.cacheHits = register(reg, m.cacheHits)
	m.cacheMisses = register(reg, m.cacheMisses)
	m.truncated = register(reg, m.truncated)
	m.forwardDuration = register(reg, m.forwardDuration)
	m.forwardErrors = register(reg, m.forwardErrors)
	m.loops = register(reg, m.loops)
	var gauges []prometheus.Collector
	if cacheLen != nil {
		gauges = append(gauges, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "svcnet_dns_cache_entries",
			Help: "Answers in the cache.",
		}, cacheLen))
	}
	if objects != nil {
		for i, kind := range []string{"service", "endpointslice", "pod", "namespace"} {
			gauges = append(gauges, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name:        "svcnet_dns_objects",
				Help:        "Objects in the DNS index.",
				ConstLabels: prometheus.Labels{"kind": kind},
			}, func() float64 { return objects(i) }))
		}
	}
	for _, g := range gauges {
		reg.Unregister(g)
		_ = reg.Register(g)
	}
	return m
}

// register registers c, or returns the collector already registered in its place.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// observe counts one query.
func (m *metrics) observe(qtype uint16, rcode int, written bool, d time.Duration) {
	ti := len(metricTypes)
	for i, t := range metricTypes {
		if t == qtype {
			ti = i
			break
		}
	}
	ri := rcodeDropped
	if written && rcode >= 0 && rcode < rcodeDropped {
		ri = rcode
	}
	p := m.counters[ti][ri].Load()
	if p == nil {
		tname := "other"
		if ti < len(metricTypes) {
			tname = dns.TypeToString[metricTypes[ti]]
		}
		rname := "dropped"
		if ri != rcodeDropped {
			rname = dns.RcodeToString[ri]
			if rname == "" {
				rname = "RCODE" + string(rune('0'+ri/10)) + string(rune('0'+ri%10))
			}
		}
		c := m.queries.WithLabelValues(tname, rname)
		m.counters[ti][ri].CompareAndSwap(nil, &c)
		p = m.counters[ti][ri].Load()
	}
	(*p).Inc()
	m.duration.Observe(d.Seconds())
}
