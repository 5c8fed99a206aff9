// Command apibench measures svcnet's control plane against the targets of the control-plane issue:
//
//  1. cold start of `svcnet up`: exec with a fresh data dir to the first authenticated
//     GET /api/v1/namespaces/default (and to the `ready` line);
//  2. N Services (ClusterIP, every k-th NodePort) created by concurrent client-go writers, then a
//     check that every ClusterIP and NodePort is distinct;
//  3. resident memory of the server with those Services stored;
//  4. watch fan-out: latency from each write to its delivery at every one of W watchers.
//
// It starts `svcnet up --nodes 0` itself on a free loopback port in a temporary data dir, sends traffic
// only to 127.0.0.1, and always stops the processes it started (by their PIDs) and removes the dir.
// Progress goes to stderr, the result table to stdout. Linux only (memory is read from /proc/PID/status).
//
// With -split, phases 2 to 4 run against `svcnet etcd` and `svcnet apiserver` as two processes, with no
// controller manager: the API server's own figures, without the endpoint controllers' two writes per
// Service create. Memory is then reported per process and as their sum. Cold start stays `svcnet up`.
//
//	go build -o /tmp/svcnet ./cmd/svcnet && go run ./bench/cmd/apibench -svcnet /tmp/svcnet
//
// bench/apiserver.sh does both; bench/README.md explains each figure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/svcnet/svcnet/bench/internal/controlplane"
	"github.com/svcnet/svcnet/bench/internal/report"
)

type options struct {
	binary        string
	coldRuns      int
	services      int
	nodePortEvery int
	writers       int
	watchers      int
	watchClients  int
	events        int
	rate          float64
	protobuf      bool
	split         bool
	timeout       time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.binary, "svcnet", "", "path of the svcnet binary (required; go build -o /tmp/svcnet ./cmd/svcnet)")
	flag.IntVar(&o.coldRuns, "cold-runs", 5, "cold starts to time (0 skips the phase)")
	flag.IntVar(&o.services, "services", 10000, "Services to create (0 skips the create and memory phases)")
	flag.IntVar(&o.nodePortEvery, "nodeport-every", 10, "every k-th Service is type NodePort (0: none)")
	flag.IntVar(&o.writers, "writers", 16, "concurrent create clients, each with its own connection")
	flag.IntVar(&o.watchers, "watchers", 100, "concurrent watch streams (0 skips the watch phase)")
	flag.IntVar(&o.watchClients, "watch-clients", 10, "client-go clients (connections) the watch streams are spread over")
	flag.IntVar(&o.events, "events", 200, "writes (half creates, half updates) observed by every watcher")
	flag.Float64Var(&o.rate, "rate", 50, "writes per second in the watch phase")
	flag.BoolVar(&o.protobuf, "protobuf", false, "clients speak protobuf, as Kubernetes components do, instead of client-go's default JSON")
	flag.BoolVar(&o.split, "split", false, "run the load server (creates, memory, watch fan-out) as two processes, svcnet etcd and svcnet apiserver, with no controllers; cold start stays svcnet up")
	flag.DurationVar(&o.timeout, "timeout", 15*time.Minute, "limit for the whole run")
	flag.Parse()
	log.SetFlags(log.Lmicroseconds)
	log.SetPrefix("apibench: ")
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "apibench:", err)
		os.Exit(2)
	}
	report.Main("apibench", o.timeout, "", func(ctx context.Context, t *report.Table) error { return run(ctx, o, t) })
}

func (o options) validate() error {
	var errs []error
	if o.binary == "" {
		errs = append(errs, errors.New("-svcnet PATH is required: build it with `go build -o /tmp/svcnet ./cmd/svcnet`"))
	}
	if o.coldRuns < 0 || o.services < 0 || o.watchers < 0 || o.events < 0 || o.nodePortEvery < 0 {
		errs = append(errs, errors.New("counts must be 0 or more"))
	}
	if o.services > 0 && o.writers < 1 {
		errs = append(errs, errors.New("-writers must be 1 or more"))
	}
	if o.watchers > 0 && (o.watchClients < 1 || o.events < 1 || o.rate <= 0) {
		errs = append(errs, errors.New("-watch-clients, -events and -rate must be positive"))
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
	root, err := os.MkdirTemp("", "svcnet-apibench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)

	if o.coldRuns > 0 {
		if err := coldStart(ctx, bin, root, o.coldRuns, t); err != nil {
			return fmt.Errorf("cold start: %w", err)
		}
	}
	if o.services == 0 && o.watchers == 0 {
		return nil
	}
	var l loadServer
	defer l.stop()
	cfg, err := l.start(ctx, bin, filepath.Join(root, "load"), o.split)
	if err != nil {
		return err
	}
	if o.protobuf {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
	}
	if o.services > 0 {
		if err := creates(ctx, o, cfg, &l, t); err != nil {
			return fmt.Errorf("creates: %w", err)
		}
		if o.split {
			err = l.memorySplit(o.services, t)
		} else {
			err = memory(l.up.Pid(), o.services, t)
		}
		if err != nil {
			return fmt.Errorf("memory: %w", err)
		}
	}
	if o.watchers > 0 {
		if err := watchFanout(ctx, o, cfg, t); err != nil {
			return fmt.Errorf("watch fan-out: %w", err)
		}
	}
	return nil
}
