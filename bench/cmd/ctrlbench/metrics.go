package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/client-go/kubernetes"

	"github.com/svcnet/svcnet/bench/internal/controlplane"
	"github.com/svcnet/svcnet/bench/internal/report"
)

// writeVerbs are the apiserver_request_total verbs that change an object.
var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "APPLY": true, "DELETE": true, "DELETECOLLECTION": true}

// endpointResources are the resources whose writes the controllers' resync must not need.
var endpointResources = map[string]bool{"endpointslices": true, "endpoints": true}

// snapshot is what one read of the API server's /metrics says about the endpoint controllers. The
// controllers run in the `svcnet up` process, so their client-go work queues report there too; with
// -split they report in the controller manager's /metrics instead (see cluster.scrape).
type snapshot struct {
	at     time.Time
	writes map[string]float64 // "VERB resource" -> requests, any response code
	queues map[string]queue   // by work queue name
}

// queue is one client-go work queue's counters. adds counts items put in the queue; done counts items
// a worker finished (the work-duration histogram's count). A queue with adds == done and depth 0 holds
// nothing and works on nothing (items waiting out a retry back-off are not counted until re-added).
type queue struct {
	adds, done, depth, retries float64
	waitSum, waits             float64 // seconds items spent queued before a worker took them, and how many
	workSum                    float64 // seconds workers spent on the done items
}

// describeTimes renders the items done since base, those added, and the done items' mean wait and
// work time. Items added before base can be done after it, so done can exceed added.
func (q queue) describeTimes(base queue) string {
	waits, done := q.waits-base.waits, q.done-base.done
	if waits <= 0 || done <= 0 {
		return fmt.Sprintf("0 done (%.0f added)", q.adds-base.adds)
	}
	return fmt.Sprintf("%.0f done (%.0f added), mean wait %s, mean work %s", done, q.adds-base.adds,
		report.Dur(time.Duration((q.waitSum-base.waitSum)/waits*float64(time.Second))),
		report.Dur(time.Duration((q.workSum-base.workSum)/done*float64(time.Second))))
}

// totalWrites sums the writes.
func (s snapshot) totalWrites() float64 {
	var n float64
	for _, v := range s.writes {
		n += v
	}
	return n
}

// describeWrites renders the writes since base as "3 (PUT endpointslices 2, POST endpoints 1)".
func (s snapshot) describeWrites(base snapshot) string {
	var parts []string
	var total float64
	for _, k := range slices.Sorted(maps.Keys(s.writes)) {
		if d := s.writes[k] - base.writes[k]; d != 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", k, d))
			total += d
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return fmt.Sprintf("%.0f (%s)", total, strings.Join(parts, ", "))
}

// scrape reads /metrics with the client's bearer token.
func scrape(ctx context.Context, cs kubernetes.Interface) (snapshot, error) {
	body, at, err := controlplane.Metrics(ctx, cs)
	if err != nil {
		return snapshot{}, err
	}
	return parseMetrics(body, at)
}

// parseMetrics picks the endpoint writes and the work queues out of a /metrics page read at at.
func parseMetrics(body []byte, at time.Time) (snapshot, error) {
	families, err := controlplane.ParseMetrics(body)
	if err != nil {
		return snapshot{}, err
	}
	s := snapshot{at: at, writes: map[string]float64{}, queues: map[string]queue{}}
	if f := families["apiserver_request_total"]; f != nil {
		for _, m := range f.Metric {
			lb := controlplane.Labels(m)
			if endpointResources[lb["resource"]] && lb["subresource"] == "" && writeVerbs[lb["verb"]] {
				s.writes[lb["verb"]+" "+lb["resource"]] += m.GetCounter().GetValue()
			}
		}
	}
	perQueue := func(family string, set func(q *queue, m *dto.Metric)) {
		if f := families[family]; f != nil {
			for _, m := range f.Metric {
				name := controlplane.Labels(m)["name"]
				q := s.queues[name]
				set(&q, m)
				s.queues[name] = q
			}
		}
	}
	perQueue("workqueue_adds_total", func(q *queue, m *dto.Metric) { q.adds = m.GetCounter().GetValue() })
	perQueue("workqueue_depth", func(q *queue, m *dto.Metric) { q.depth = m.GetGauge().GetValue() })
	perQueue("workqueue_retries_total", func(q *queue, m *dto.Metric) { q.retries = m.GetCounter().GetValue() })
	perQueue("workqueue_work_duration_seconds", func(q *queue, m *dto.Metric) {
		q.done, q.workSum = float64(m.GetHistogram().GetSampleCount()), m.GetHistogram().GetSampleSum()
	})
	perQueue("workqueue_queue_duration_seconds", func(q *queue, m *dto.Metric) {
		q.waits, q.waitSum = float64(m.GetHistogram().GetSampleCount()), m.GetHistogram().GetSampleSum()
	})
	return s, nil
}

// apiserverQueue tells the API server's own work queues (serving certificates, CA bundles) from the
// controllers'.
func apiserverQueue(name string) bool { return strings.HasPrefix(name, "Dynamic") }

// addQueueRows adds one row per endpoint controller queue: items done since base, added, and their
// mean wait and work time, which tell a backlog from slow syncs.
func addQueueRows(t *report.Table, prefix string, s, base snapshot) {
	for _, name := range syncQueues {
		if q, ok := s.queues[name]; ok {
			t.Add(fmt.Sprintf("%s %q queue", prefix, name), q.describeTimes(base.queues[name]), "", true)
		}
	}
}

// queueProgress renders items done / added per endpoint controller queue.
func queueProgress(s snapshot) string {
	var parts []string
	for _, name := range syncQueues {
		if q, ok := s.queues[name]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0f of %.0f items done", name, q.done, q.adds))
		}
	}
	return strings.Join(parts, ", ")
}
