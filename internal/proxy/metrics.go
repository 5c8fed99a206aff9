package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the proxy's Prometheus metrics.
type metrics struct {
	syncDuration        *prometheus.HistogramVec
	programmingDuration prometheus.Histogram
	syncFailures        prometheus.Counter
	operations          prometheus.Counter
	chains              prometheus.Gauge
	rules               prometheus.Gauge
	elements            prometheus.Gauge
	lastSync            prometheus.Gauge
	conntrackDeleted    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "svcnet_proxy_sync_duration_seconds",
			Help:    "Time to compute and apply one sync of the nftables table, by kind (full: the whole table; partial: changed Services only).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"kind"}),
		programmingDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "svcnet_proxy_network_programming_duration_seconds",
			Help:    "Time from an EndpointSlice's last-change-trigger-time to its change being in the kernel.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		syncFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "svcnet_proxy_sync_failures_total",
			Help: "Syncs that failed (the next one is a full sync).",
		}),
		operations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "svcnet_proxy_kernel_operations_total",
			Help: "nftables operations sent to the kernel.",
		}),
		chains:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "svcnet_proxy_chains", Help: "Chains in the proxy's table."}),
		rules:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "svcnet_proxy_rules", Help: "Rules in the proxy's table."}),
		elements: prometheus.NewGauge(prometheus.GaugeOpts{Name: "svcnet_proxy_elements", Help: "Set and map elements in the proxy's table."}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{Name: "svcnet_proxy_last_sync_timestamp_seconds", Help: "Time of the last successful sync."}),
		conntrackDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "svcnet_proxy_conntrack_entries_deleted_total",
			Help: "Stale UDP conntrack entries deleted after endpoint changes.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.syncDuration, m.programmingDuration, m.syncFailures, m.operations, m.chains, m.rules, m.elements, m.lastSync, m.conntrackDeleted)
	}
	return m
}
