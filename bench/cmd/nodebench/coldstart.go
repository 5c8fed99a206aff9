package main

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svcnet/svcnet/bench/internal/report"
)

// coldStarts times o.runs starts of `svcnet up --nodes N`, each with a new name and data dir, from
// just before exec to its ready line; each cluster is stopped (SIGTERM) and taken down (`svcnet
// down`) before the next starts.
func coldStarts(ctx context.Context, o options, bin, root string, t *report.Table) error {
	var ready, own, stops, downs []time.Duration
	var each []string
	killed := 0
	for i := range o.runs {
		err := func() error {
			c, err := startCluster(bin, root, o.nodes)
			if err != nil {
				return err
			}
			defer c.down(o.logs) // a no-op once down below has run
			r, err := c.waitReady(ctx, o.startTimeout)
			if err != nil {
				return fmt.Errorf("run %d (cluster %s): %w", i+1, c.name, err)
			}
			lat := r.At.Sub(c.up.Started)
			ready = append(ready, lat)
			each = append(each, report.Dur(lat))
			if m := readyInRE.FindStringSubmatch(r.Line); m != nil {
				if d, err := time.ParseDuration(m[1]); err == nil {
					own = append(own, d)
				}
			}
			log.Printf("cold start %d/%d: cluster %s ready after %s: %q", i+1, o.runs, c.name, report.Dur(lat), r.Line)
			if err := checkNodesReady(ctx, c, o.nodes); err != nil {
				return fmt.Errorf("run %d (cluster %s): %w", i+1, c.name, err)
			}
			took, graceful := c.stop(30 * time.Second)
			stops = append(stops, took)
			if !graceful {
				killed++
			}
			t0 := time.Now()
			err = c.down(o.logs)
			downs = append(downs, time.Since(t0))
			return err
		}()
		if err != nil {
			return err
		}
	}
	s := report.SortedCopy(ready)
	med, worst := report.Percentile(s, 0.5), report.Percentile(s, 1)
	t.Add(fmt.Sprintf("svcnet up --nodes %d: exec -> ready line, all nodes Ready (median / max of %d)", o.nodes, len(ready)),
		report.Dur(med)+" / "+report.Dur(worst), "< 5s (max)", worst < 5*time.Second)
	t.Add("  each run, in order", strings.Join(each, " "), "", true)
	if len(own) > 0 {
		t.Add("  svcnet's own count in its ready line (median / max)", report.MedianMax(own), "", true)
	}
	stopText := report.MedianMax(stops)
	if killed > 0 {
		stopText += fmt.Sprintf(" (%d needed SIGKILL after 30s)", killed)
	}
	t.Add("  stop: SIGTERM -> svcnet up exited (median / max)", stopText, "", true)
	t.Add("  svcnet down afterwards (median / max)", report.MedianMax(downs), "", true)
	return nil
}

// checkNodesReady confirms through the API what the ready line claims: n nodes, all Ready.
func checkNodesReady(ctx context.Context, c *cluster, n int) error {
	cfg, err := c.restConfig()
	if err != nil {
		return err
	}
	cs, err := newClient(cfg)
	if err != nil {
		return err
	}
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes after the ready line: %w", err)
	}
	ready := 0
	for _, nd := range list.Items {
		for _, cond := range nd.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	if ready != n || len(list.Items) != n {
		return fmt.Errorf("after the ready line the API shows %d nodes, %d Ready; want %d", len(list.Items), ready, n)
	}
	return nil
}
