package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"k8s.io/component-base/metrics/legacyregistry"
	// Registers client-go's work queue metrics (depth, adds, queue and work durations) in the
	// legacy registry, as kube-controller-manager does.
	_ "k8s.io/component-base/metrics/prometheus/workqueue"
)

// listenMetrics opens addr for the controller manager's /metrics and /healthz, as
// kube-controller-manager's --secure-port and kube-proxy's --metrics-bind-address do, but in plain
// HTTP: what it shows (queue depths, latencies, request counts) is meant for a loopback scraper.
// Listening happens before the controllers start, so a taken or malformed address fails the
// command at once instead of being logged and forgotten.
func listenMetrics(addr string) (net.Listener, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("--metrics-bind-address %q: %w (want host:port, e.g. 127.0.0.1:10257)", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-bind-address: %w (pick a free port, or \"\" for no metrics endpoint)", err)
	}
	return ln, nil
}

// serveMetrics serves /metrics and /healthz on ln until ctx ends.
func serveMetrics(ctx context.Context, ln net.Listener) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", legacyregistry.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	slog.Info("metrics served", "addr", "http://"+ln.Addr().String()+"/metrics")
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		slog.Warn("metrics server stopped", "err", err)
	}
}
