package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/svcnet/svcnet/bench/internal/controlplane"
	"github.com/svcnet/svcnet/bench/internal/report"
)

// snapshot is what one read of the API server's /metrics says about the requests a pod's life
// makes. The scheduler runs in the `svcnet up` process, so its work queue reports there too.
type snapshot struct {
	requests map[string]hist // "VERB resource[/subresource]" -> apiserver_request_duration_seconds
	etcd     map[string]hist // "operation resource" -> etcd_request_duration_seconds
	sched    hist            // the scheduler queue's work duration (a bind per pod)
	schedW   hist            // the scheduler queue's wait before a worker took the item
}

// hist is a histogram's count and sum (seconds).
type hist struct{ n, sum float64 }

func (h hist) minus(b hist) hist { return hist{h.n - b.n, h.sum - b.sum} }

func (h hist) mean() string {
	if h.n <= 0 {
		return "-"
	}
	return report.Dur(time.Duration(h.sum / h.n * float64(time.Second)))
}

// scrape reads /metrics with the client's bearer token.
func scrape(ctx context.Context, cs kubernetes.Interface) (snapshot, error) {
	body, _, err := controlplane.Metrics(ctx, cs)
	if err != nil {
		return snapshot{}, err
	}
	families, err := controlplane.ParseMetrics(body)
	if err != nil {
		return snapshot{}, err
	}
	s := snapshot{requests: map[string]hist{}, etcd: map[string]hist{}}
	each := func(family string, f func(lb map[string]string, h hist)) {
		if fam := families[family]; fam != nil {
			for _, m := range fam.Metric {
				f(controlplane.Labels(m), hist{float64(m.GetHistogram().GetSampleCount()), m.GetHistogram().GetSampleSum()})
			}
		}
	}
	each("apiserver_request_duration_seconds", func(lb map[string]string, h hist) {
		if lb["resource"] != "pods" && lb["resource"] != "events" || lb["verb"] == "WATCH" {
			return
		}
		k := lb["verb"] + " " + lb["resource"]
		if lb["subresource"] != "" {
			k += "/" + lb["subresource"]
		}
		s.requests[k] = add(s.requests[k], h)
	})
	each("etcd_request_duration_seconds", func(lb map[string]string, h hist) {
		if lb["resource"] == "pods" || lb["resource"] == "events" {
			k := lb["operation"] + " " + lb["resource"]
			s.etcd[k] = add(s.etcd[k], h)
		}
	})
	each("workqueue_work_duration_seconds", func(lb map[string]string, h hist) {
		if lb["name"] == "scheduler" {
			s.sched = h
		}
	})
	each("workqueue_queue_duration_seconds", func(lb map[string]string, h hist) {
		if lb["name"] == "scheduler" {
			s.schedW = h
		}
	})
	return s, nil
}

func add(a, b hist) hist { return hist{a.n + b.n, a.sum + b.sum} }

// describe renders "KEY mean (count), ..." for the keys with requests since base.
func describe(now, base map[string]hist) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(now)) {
		if d := now[k].minus(base[k]); d.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %s (%.0f)", k, d.mean(), d.n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// addServerRows adds what the API server's metrics say about the interval since base: mean latency
// of the pod and event requests it served, of its etcd requests for them, and the scheduler queue's
// mean wait and work (one bind per pod). It adds nothing when /metrics cannot be read.
func (b *bench) addServerRows(ctx context.Context, base snapshot, baseErr error) {
	if baseErr != nil {
		return
	}
	now, err := scrape(ctx, b.cs)
	if err != nil {
		return
	}
	b.t.Add("  API server meanwhile: mean latency (requests) of", describe(now.requests, base.requests), "", true)
	b.t.Add("  its etcd requests: mean latency (requests) of", describe(now.etcd, base.etcd), "", true)
	w, d := now.schedW.minus(base.schedW), now.sched.minus(base.sched)
	b.t.Add("  scheduler queue: mean wait / mean work (items done)", fmt.Sprintf("%s / %s (%.0f)", w.mean(), d.mean(), d.n), "", true)
}
