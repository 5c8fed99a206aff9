// Command ctrlbench measures svcnet's endpoint controllers (EndpointSlice, and Endpoints when it runs)
// against the targets of the endpoints issue:
//
//  1. setup cost: N Services (selector app=svc-N, one port) and N x P pods on a few Nodes with zone
//     labels, each pod created through the API and then given a Ready status with its IP through the
//     status subresource, until every pod shows as a ready endpoint in the EndpointSlices;
//  2. readiness latency: from a pod's status write (Ready -> NotReady -> Ready on random pods) to an
//     informer on EndpointSlices seeing the endpoint change;
//  3. resync after restart: SIGTERM `svcnet up`, start it again on the same data dir, and measure from
//     its ready line to the controllers having finished their initial sync, with the number of writes
//     they made to endpointslices and endpoints (read from the API server's /metrics);
//  4. resident memory of `svcnet up` with all of it stored.
//
// It starts `svcnet up --nodes 0` itself on a free loopback port in a temporary data dir, sends traffic
// only to 127.0.0.1, and always stops the processes it started (by their PID) and removes the dir.
//
// With -split it runs `svcnet etcd`, `svcnet apiserver` and `svcnet controller-manager` as three
// processes instead, and the restart is the controller manager's alone, against an API server whose
// watch cache stays warm: a kube-controller-manager restart. The controllers' work queues are then read
// from the controller manager's --metrics-bind-address, the writes still from the API server.
// Progress goes to stderr, the result table to stdout. Linux only (memory and CPU come from /proc).
//
//	go build -o /tmp/svcnet ./cmd/svcnet && go run ./bench/cmd/ctrlbench -svcnet /tmp/svcnet -services 1000
//
// bench/controllers.sh does both; bench/README.md explains each figure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/svcnet/svcnet/bench/internal/controlplane"
	"github.com/svcnet/svcnet/bench/internal/report"
)

type options struct {
	binary         string
	split          bool
	services       int
	podsPerService int
	nodes          int
	namespaces     int
	writers        int
	protobuf       bool
	servicesFirst  bool
	flips          int
	flipPeriod     time.Duration
	restart        bool
	quiet          time.Duration
	poll           time.Duration
	resyncTimeout  time.Duration
	settleTimeout  time.Duration
	timeout        time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.binary, "svcnet", "", "path of the svcnet binary (required; go build -o /tmp/svcnet ./cmd/svcnet)")
	flag.BoolVar(&o.split, "split", false, "run etcd, the API server and the controller manager as three processes, and restart only the controller manager")
	flag.IntVar(&o.services, "services", 10000, "Services, each selecting its own pods (app=svc-N)")
	flag.IntVar(&o.podsPerService, "pods-per-service", 10, "pods per Service")
	flag.IntVar(&o.nodes, "nodes", 10, "Node objects the pods are spread over (zones zone-a, zone-b, zone-c)")
	flag.IntVar(&o.namespaces, "namespaces", 1, "namespaces the Services (and their pods) are spread over: ctrlbench, or ctrlbench-0..N-1")
	flag.IntVar(&o.writers, "writers", 32, "concurrent setup clients, each with its own connection")
	flag.BoolVar(&o.protobuf, "protobuf", true, "clients speak protobuf, as Kubernetes components do (false: JSON)")
	flag.BoolVar(&o.servicesFirst, "services-first", false, "create the Services before the pods (default: pods and their statuses first, then Services)")
	flag.IntVar(&o.flips, "flips", 500, "readiness flips (Ready -> NotReady -> Ready) on distinct random pods (0 skips the phase)")
	flag.DurationVar(&o.flipPeriod, "flip-period", 20*time.Second, "the flips are started evenly over this period")
	flag.BoolVar(&o.restart, "restart", true, "measure the resync after a restart of svcnet up (with -split: of the controller manager)")
	flag.DurationVar(&o.quiet, "quiet", 2*time.Second, "after a restart, the controllers count as synced once their queues are drained and nothing changed for this long")
	flag.DurationVar(&o.poll, "poll", 200*time.Millisecond, "how often /metrics is read during the resync")
	flag.DurationVar(&o.settleTimeout, "settle-timeout", 45*time.Minute, "limit for the controllers to show every pod after the setup writes")
	flag.DurationVar(&o.resyncTimeout, "resync-timeout", 30*time.Minute, "limit for the controllers' resync after the restart")
	flag.DurationVar(&o.timeout, "timeout", 2*time.Hour, "limit for the whole run")
	flag.Parse()
	log.SetFlags(log.Lmicroseconds)
	log.SetPrefix("ctrlbench: ")
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "ctrlbench:", err)
		os.Exit(2)
	}
	report.Main("ctrlbench", o.timeout, "", func(ctx context.Context, t *report.Table) error { return run(ctx, o, t) })
}

func (o options) validate() error {
	var errs []error
	if o.binary == "" {
		errs = append(errs, errors.New("-svcnet PATH is required: build it with `go build -o /tmp/svcnet ./cmd/svcnet`"))
	}
	if o.services < 1 || o.services > 99999 || o.podsPerService < 1 {
		errs = append(errs, errors.New("-services must be 1-99999 and -pods-per-service 1 or more"))
	}
	if o.nodes < 1 || o.nodes > 100 {
		errs = append(errs, errors.New("-nodes must be 1-100"))
	} else if (o.services*o.podsPerService+o.nodes-1)/o.nodes > 65000 {
		errs = append(errs, errors.New("at most 65,000 pods per node (each node's pods get IPs from one /16): raise -nodes"))
	}
	if o.namespaces < 1 {
		errs = append(errs, errors.New("-namespaces must be 1 or more"))
	}
	if o.writers < 1 {
		errs = append(errs, errors.New("-writers must be 1 or more"))
	}
	if o.flips < 0 || o.flips > o.services*o.podsPerService {
		errs = append(errs, errors.New("-flips must be between 0 and the number of pods"))
	}
	if o.flips > 0 && o.flipPeriod <= 0 {
		errs = append(errs, errors.New("-flip-period must be positive"))
	}
	if o.quiet <= 0 || o.poll <= 0 {
		errs = append(errs, errors.New("-quiet and -poll must be positive"))
	}
	return errors.Join(errs...)
}

// run does the phases in order; every server it starts is stopped and every dir removed before it
// returns, also on failure.
func run(ctx context.Context, o options, t *report.Table) error {
	bin, err := controlplane.Binary(o.binary)
	if err != nil {
		return err
	}
	root, err := os.MkdirTemp("", "svcnet-ctrlbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	c := &cluster{}
	defer c.stop() // whatever was started, and the restarted process after the restart phase
	cfg, err := c.start(ctx, bin, root, o.split)
	if err != nil {
		return err
	}
	if o.protobuf {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
	}

	obs, err := newObserver(ctx, cfg, o)
	if err != nil {
		return err
	}
	defer obs.stop()
	if err := setup(ctx, o, cfg, c, obs, t); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	var incomplete error // a phase that missed changes; the others still run
	if o.flips > 0 {
		if err := flips(ctx, o, cfg, c, obs, t); errors.Is(err, errIncomplete) {
			incomplete = fmt.Errorf("readiness flips: %w", err)
		} else if err != nil {
			return fmt.Errorf("readiness flips: %w", err)
		}
	}
	if err := c.memory("after setup and flips", t); err != nil {
		return err
	}
	if o.restart {
		withEndpoints := obs.endpointsControllerRuns()
		obs.stop() // the benchmark's own watches would add load to the restarted server
		if err := resync(ctx, o, cfg, c, withEndpoints, t); err != nil {
			return errors.Join(incomplete, fmt.Errorf("resync after restart: %w", err))
		}
		if err := c.memory("after the restart's resync", t); err != nil {
			return err
		}
	}
	return incomplete
}
