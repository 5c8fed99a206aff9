// Command nodebench measures svcnet's nodes and pods against the targets of the nodes-and-pods issue:
//
//  1. cold start of a multi-node cluster: exec of `svcnet up --nodes 3` with a fresh data dir and a
//     new cluster name to its `ready` line (printed once every node is Ready), over several starts;
//  2. pod creation to Ready: agnhost netexec pods without nodeName (the scheduler binds them), created
//     one after another, each timed from just before Create to the informer event showing Ready=True;
//     then the same number created all at once;
//  3. pod deletion to gone: the one-by-one pods deleted one after another (graceful: SIGTERM), each
//     timed from just before Delete to the informer's delete event;
//  4. 100 pods on one node (nodeSelector kubernetes.io/hostname: node-1): time until all are Running
//     and Ready, then the resident memory of that node's `svcnet agent` process, and of its pods.
//
// It needs root (nodes are network namespaces). It starts every cluster itself with a unique --name
// (nb<random>) in a temporary data dir, on a free 127.0.0.1 port, talks only to that API address
// (never to cluster addresses from the host's namespace), and on every path (failure, Ctrl-C,
// SIGTERM, timeout) stops the `svcnet up` it started by its PID and runs `svcnet down` on its data
// dir, then checks that no namespace of the cluster is left. Progress goes to stderr, the result
// table to stdout. Linux only.
//
//	go build -o /tmp/svcnet ./cmd/svcnet && go run ./bench/cmd/nodebench -svcnet /tmp/svcnet
//
// bench/nodes.sh does both; bench/README.md explains each figure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"time"

	"github.com/svcnet/svcnet/bench/internal/controlplane"
	"github.com/svcnet/svcnet/bench/internal/proc"
	"github.com/svcnet/svcnet/bench/internal/report"
)

type options struct {
	binary       string
	nodes        int
	runs         int
	pods         int
	burst        bool
	onNode       int
	settle       time.Duration
	podTimeout   time.Duration
	startTimeout time.Duration
	timeout      time.Duration
	logs         string
}

func main() {
	var o options
	flag.StringVar(&o.binary, "svcnet", "", "path of the svcnet binary (required; go build -o /tmp/svcnet ./cmd/svcnet)")
	flag.IntVar(&o.nodes, "nodes", 3, "nodes of every cluster started (--nodes)")
	flag.IntVar(&o.runs, "runs", 5, "cold starts to time (0 skips the phase)")
	flag.IntVar(&o.pods, "pods", 50, "pods created one after another, then deleted one after another (0 skips both)")
	flag.BoolVar(&o.burst, "burst", true, "also create -pods pods all at once and time them to all Ready")
	flag.IntVar(&o.onNode, "on-node", 100, "pods put on node-1 for the memory figure (0 skips the phase)")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "after the on-node pods are Ready, wait this long and read the agent's memory again")
	flag.DurationVar(&o.podTimeout, "pod-timeout", 2*time.Minute, "limit for one pod to become Ready or to be gone (and for a batch)")
	flag.DurationVar(&o.startTimeout, "start-timeout", 2*time.Minute, "limit for `svcnet up` to print its ready line")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "limit for the whole run")
	flag.StringVar(&o.logs, "logs", "", "copy the svcnet up and agent logs of every cluster into this directory before it is removed")
	flag.Parse()
	log.SetFlags(log.Lmicroseconds)
	log.SetPrefix("nodebench: ")
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "nodebench:", err)
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "nodebench: needs root: svcnet's nodes and pods are network namespaces, which only root can make. Run it as root, e.g. `sudo bench/nodes.sh`.")
		os.Exit(2)
	}
	// The signals stay caught until run has returned, so a second Ctrl-C does not cut the clean-up short.
	report.Main("nodebench", o.timeout, "interrupted by a signal: the clusters it started have been stopped and taken down",
		func(ctx context.Context, t *report.Table) error { return run(ctx, o, t) })
}

func (o options) validate() error {
	var errs []error
	if o.binary == "" {
		errs = append(errs, errors.New("-svcnet PATH is required: build it with `go build -o /tmp/svcnet ./cmd/svcnet`"))
	}
	if o.nodes < 1 || o.nodes > 89 {
		errs = append(errs, errors.New("-nodes must be 1-89"))
	}
	if o.runs < 0 || o.pods < 0 || o.onNode < 0 {
		errs = append(errs, errors.New("-runs, -pods and -on-node must be 0 or more"))
	}
	// Every node has a /24 of pod addresses; the one-by-one pods are gone before the burst starts,
	// and the burst's before the on-node pods.
	if o.onNode > 250 || o.pods > 250*o.nodes {
		errs = append(errs, errors.New("each node has a /24 of pod addresses: at most 250 pods on node-1 and 250 per node for -pods"))
	}
	if o.podTimeout <= 0 || o.startTimeout <= 0 || o.settle < 0 {
		errs = append(errs, errors.New("-pod-timeout and -start-timeout must be positive, -settle 0 or more"))
	}
	return errors.Join(errs...)
}

// run does the phases in order. Every cluster it starts is stopped and taken down before it returns,
// also on failure; a phase that fails is reported and the later phases still run where they can.
func run(ctx context.Context, o options, t *report.Table) error {
	bin, err := controlplane.Binary(o.binary)
	if err != nil {
		return err
	}
	root, err := os.MkdirTemp("", "svcnet-nodebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	if o.logs != "" {
		if err := os.MkdirAll(o.logs, 0o755); err != nil {
			return err
		}
	}
	load := proc.LoadAvg("unknown")
	log.Printf("%d cores, load average %s; data dirs under %s", runtime.NumCPU(), load, root)
	t.Add("machine: cores, load average (1/5/15 min) at the start", fmt.Sprintf("%d, %s", runtime.NumCPU(), load), "", true)

	var errs []error
	if o.runs > 0 {
		if err := coldStarts(ctx, o, bin, root, t); err != nil {
			errs = append(errs, fmt.Errorf("cold starts: %w", err))
		}
	}
	if ctx.Err() == nil && (o.pods > 0 || o.onNode > 0) {
		if err := podPhases(ctx, o, bin, root, t); err != nil {
			errs = append(errs, err)
		}
	}
	t.Add("machine: load average (1/5/15 min) at the end", proc.LoadAvg("unknown"), "", true)
	return errors.Join(errs...)
}
