// Command connbench measures the first-packet cost of svcnet's service proxy (internal/proxy): the
// rate of new TCP connections through a ClusterIP with a small table (-small Services) and with a
// large one (-services Services of -endpoints endpoints each), against the rate of connecting to the
// pod IP directly, with real packets through real nftables.
//
// bench/conn.sh creates three identical "worlds" of throwaway network namespaces (svcnet-t-bench-
// <random>-<world>-<role>): in each, a client pod (10.244.3.9) and a backend pod (10.244.1.10-19) are
// wired with veth pairs to a node namespace that forwards between them. The worlds differ only in the
// node's nftables: "none" has no table at all, "small" runs the proxy with the small cluster, "big"
// with the large one. connbench (-role bench, started by the script) then
//
//   - starts itself in every backend namespace as the TCP server (-role server: accept, read the small
//     request, answer "ok", close), on every address of the backend: the -endpoints addresses from
//     -backend-ip on, which are the target Service's endpoints;
//   - starts itself in the small and big node namespaces as the proxy (-role proxy: proxy.Run, netlink
//     backend, table -table, against an in-memory fake API holding the cluster); in both the target
//     Service (-cluster-ip, TCP 80 -> 8080) has the same endpoints, on the backend; the proxy reports
//     its first sync and then stays idle until connbench ends;
//   - for each case starts itself in the world's client namespace (-role client): -workers goroutines
//     that, for -duration after a -warmup, each connect, send one small request, read the answer to
//     EOF and close with SO_LINGER 0 (a reset: no TIME_WAIT, so the client's ephemeral ports never
//     run out), counting completed connections;
//   - runs every case -repeat times, the order rotating from round to round, so that both tables are
//     measured side by side under the same background load, and reports the medians and ratios.
//
// Progress goes to stderr, the result table to stdout. The server, proxy and client processes die
// with connbench (parent-death signal); the proxies delete their tables when they stop.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/svcnet/svcnet/bench/internal/objects"
	"github.com/svcnet/svcnet/bench/internal/proc"
	"github.com/svcnet/svcnet/internal/proxy"
)

type options struct {
	role                        string
	prefix                      string
	services, small, endpoints  int
	repeat, workers             int
	duration, warmup, timeout   time.Duration
	table, clusterIP, backendIP string
	target, listen              string
	noTable, allowHost          bool
	port                        int
	ioTimeout                   time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.role, "role", "bench", "bench (the orchestrator), or server / proxy / client (started by it in the worlds' namespaces)")
	flag.StringVar(&o.prefix, "netns-prefix", "", "bench: the worlds' namespaces are PREFIX-{none,small,big}-{node,client,backend} (bench/conn.sh makes them)")
	flag.IntVar(&o.services, "services", 10000, "Services in the large cluster (one TCP port each, every tenth a NodePort), the target included; proxy: in its cluster")
	flag.IntVar(&o.small, "small", 10, "Services in the small cluster, the target included")
	flag.IntVar(&o.endpoints, "endpoints", 10, "endpoints per Service; the target's are -backend-ip and the addresses after it")
	flag.IntVar(&o.repeat, "repeat", 3, "rounds of every case (the median is reported)")
	flag.IntVar(&o.workers, "workers", 8, "parallel client connections")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured time per case")
	flag.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured time before each case")
	flag.DurationVar(&o.timeout, "timeout", 15*time.Minute, "limit for the whole run")
	flag.StringVar(&o.table, "table", "svcnet-bench-conn", "nftables table of the proxies (deleted when they stop)")
	flag.StringVar(&o.clusterIP, "cluster-ip", "10.100.0.10", "ClusterIP of the target Service (in 10.96.0.0/12, outside 10.96.0.0-10.96.255.255 used by the others)")
	flag.StringVar(&o.backendIP, "backend-ip", "10.244.1.10", "first address of the backend pod (the pod IP of the direct cases)")
	flag.IntVar(&o.port, "port", 8080, "the backend's TCP port (the Service's port is 80)")
	flag.BoolVar(&o.noTable, "no-table", true, "also measure the pod IP in the world with no table in the node (connection tracking off there): for information")
	flag.BoolVar(&o.allowHost, "allow-host-netns", false, "proxy: run even in the parent's network namespace (not recommended: it programs nftables there)")
	flag.StringVar(&o.target, "target", "", "client: addresses to connect to (comma-separated: each worker cycles through them)")
	flag.StringVar(&o.listen, "listen", ":8080", "server: listen address")
	flag.DurationVar(&o.ioTimeout, "io-timeout", 3*time.Second, "client: limit for one connection")
	flag.Parse()
	log.SetFlags(log.Lmicroseconds)
	log.SetPrefix("connbench " + o.role + ": ")
	var err error
	switch o.role {
	case "server":
		err = serve(o.listen)
	case "client":
		err = client(o)
	case "proxy":
		err = runProxy(o)
	case "bench":
		err = bench(o)
	default:
		err = fmt.Errorf("unknown -role %q (bench, server, proxy or client)", o.role)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// serve accepts connections, reads the request (one read), answers and closes.
func serve(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	for {
		c, err := l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 64)
			if _, err := c.Read(buf); err != nil {
				return
			}
			_, _ = c.Write([]byte("ok\n"))
		}()
	}
}

// clientResult is what the client role prints (JSON) on stdout.
type clientResult struct {
	Conns   int     `json:"conns"`
	Errors  int     `json:"errors"`
	Seconds float64 `json:"seconds"`
	P50us   int64   `json:"p50us"`
	P99us   int64   `json:"p99us"`
	MaxUs   int64   `json:"maxus"`
	Slow    int     `json:"slow"` // connections that took 1s or more (a retransmitted SYN)
	Error   string  `json:"error,omitempty"`
}

// client opens connections to the o.target addresses (cycling through them) from o.workers
// goroutines and reports those completed between the end of the warm-up and the end of the run.
func client(o options) error {
	start := time.Now()
	from, to := start.Add(o.warmup), start.Add(o.warmup+o.duration)
	type acc struct {
		lat      []time.Duration
		errs     int
		firstErr string
	}
	accs := make([]acc, o.workers)
	var wg sync.WaitGroup
	req := []byte("GET\n")
	targets := strings.Split(o.target, ",")
	for w := range o.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := &accs[w]
			d := net.Dialer{Timeout: o.ioTimeout}
			buf := make([]byte, 64)
			next := w
			for {
				t0 := time.Now()
				if !t0.Before(to) {
					return
				}
				err := func() error {
					c, err := d.Dial("tcp", targets[next%len(targets)])
					next++
					if err != nil {
						return err
					}
					tc := c.(*net.TCPConn)
					_ = tc.SetLinger(0) // close sends a reset: no TIME_WAIT on the client
					defer tc.Close()
					_ = tc.SetDeadline(t0.Add(o.ioTimeout))
					if _, err := tc.Write(req); err != nil {
						return err
					}
					n := 0
					for {
						m, err := tc.Read(buf[n:])
						n += m
						if err == io.EOF {
							break
						}
						if err != nil {
							return err
						}
						if n == len(buf) {
							return errors.New("answer too long")
						}
					}
					if string(buf[:n]) != "ok\n" {
						return fmt.Errorf("unexpected answer %q", buf[:n])
					}
					return nil
				}()
				t1 := time.Now()
				if t1.Before(from) || t1.After(to) {
					continue
				}
				if err != nil {
					a.errs++
					if a.firstErr == "" {
						a.firstErr = err.Error()
					}
					continue
				}
				a.lat = append(a.lat, t1.Sub(t0))
			}
		}()
	}
	wg.Wait()
	var r clientResult
	var lat []time.Duration
	for _, a := range accs {
		lat = append(lat, a.lat...)
		r.Errors += a.errs
		if r.Error == "" {
			r.Error = a.firstErr
		}
	}
	r.Conns = len(lat)
	r.Seconds = o.duration.Seconds()
	if len(lat) > 0 {
		slices.Sort(lat)
		r.P50us = lat[len(lat)/2].Microseconds()
		r.P99us = lat[min(len(lat)*99/100, len(lat)-1)].Microseconds()
		r.MaxUs = lat[len(lat)-1].Microseconds()
		for _, l := range lat {
			if l >= time.Second {
				r.Slow++
			}
		}
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// proxyReport is what the proxy role prints (JSON) on stdout after its first sync.
type proxyReport struct {
	Services, Endpoints     int
	ColdMs                  int64
	Chains, Rules, Elements int
}

// runProxy runs the proxy in this network namespace with a cluster of o.services Services, prints a
// proxyReport after the first sync, and stops (deleting its table) when its standard input closes
// (connbench ended) or on a signal.
func runProxy(o options) error {
	if host, err := proc.InParentNetNS(); err != nil || (host && !o.allowHost) {
		return fmt.Errorf("refusing to program nftables in the parent's network namespace (run bench/conn.sh; -allow-host-netns to insist): %v", err)
	}
	cip, err := netip.ParseAddr(o.clusterIP)
	if err != nil {
		return fmt.Errorf("-cluster-ip: %w", err)
	}
	bip, err := netip.ParseAddr(o.backendIP)
	if err != nil {
		return fmt.Errorf("-backend-ip: %w", err)
	}
	var backends []string
	for a, i := bip, 0; i < o.endpoints; a, i = a.Next(), i+1 {
		backends = append(backends, a.String())
	}
	api, err := cluster(o.services, o.endpoints, cip, backends, o.port)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { // connbench holds our standard input open while it runs
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	reports := make(chan proxy.SyncReport, 16)
	cfg := proxy.Config{
		NodeName:    "node-000",
		NodeIPs:     []netip.Addr{netip.MustParseAddr("172.31.0.11")},
		ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"),
		ServiceCIDR: netip.MustParsePrefix("10.96.0.0/12"),
		Table:       o.table,
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		SyncHook: func(r proxy.SyncReport) {
			select {
			case reports <- r:
			default:
			}
		},
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- proxy.Run(ctx, api, cfg) }()
	defer func() {
		if out, err := exec.Command("nft", "delete", "table", "inet", o.table).CombinedOutput(); err != nil {
			log.Printf("delete table %s: %v %s", o.table, err, out)
		}
	}()
	select {
	case r := <-reports:
		if r.Elements < o.services*o.endpoints {
			stop()
			<-done
			return fmt.Errorf("the first sync holds %d elements, fewer than the %d endpoints", r.Elements, o.services*o.endpoints)
		}
		if err := json.NewEncoder(os.Stdout).Encode(proxyReport{o.services, o.services * o.endpoints,
			r.Done.Sub(start).Milliseconds(), r.Chains, r.Rules, r.Elements}); err != nil {
			stop()
		}
	case err := <-done:
		return fmt.Errorf("proxy stopped: %v", err)
	}
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// cluster returns a fake API with n Services (one TCP port each, every tenth a NodePort) of
// endpoints endpoints each, spread over 100 nodes; the last is the target: ClusterIP cip, its
// endpoints the backends.
func cluster(n, endpoints int, cip netip.Addr, backends []string, port int) (*fake.Clientset, error) {
	api := fake.NewClientset()
	for i := range n {
		var svc *corev1.Service
		var sl *discoveryv1.EndpointSlice
		if i == n-1 {
			svc, sl = target(cip, backends, port)
		} else {
			svc, sl = objects.Service(i, endpoints, port)
		}
		for _, obj := range []runtime.Object{svc, sl} {
			if err := api.Tracker().Add(obj); err != nil {
				return nil, err
			}
		}
	}
	return api, nil
}

func target(cip netip.Addr, backends []string, port int) (*corev1.Service, *discoveryv1.EndpointSlice) {
	svc, sl := objects.Service(0, 0, port)
	svc.Namespace, svc.Name = "bench", "target"
	svc.Spec.Type = corev1.ServiceTypeClusterIP
	svc.Spec.Ports[0].NodePort = 0
	svc.Spec.ClusterIP, svc.Spec.ClusterIPs = cip.String(), []string{cip.String()}
	sl.Namespace, sl.Name = "bench", "target-abcde"
	sl.Labels = map[string]string{discoveryv1.LabelServiceName: "target"}
	for _, b := range backends {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{b},
			NodeName:   ptr.To("node-001"),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		})
	}
	return svc, sl
}
