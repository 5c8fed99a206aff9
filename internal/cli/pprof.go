package cli

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

// startPprof serves Go's profiling endpoints (/debug/pprof/...) when $SVCNET_PPROF names an address,
// for finding where a server command spends its CPU and memory, e.g.
//
//	SVCNET_PPROF=127.0.0.1:6060 svcnet up
//	go tool pprof -seconds 30 http://127.0.0.1:6060/debug/pprof/profile
//
// It is opt-in and separate from the API server's port because the endpoints are unauthenticated;
// addresses other than loopback are refused for the same reason.
func startPprof() {
	addr := os.Getenv("SVCNET_PPROF")
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
		slog.Warn("SVCNET_PPROF must be a loopback host:port; profiling not started", "addr", addr)
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		slog.Warn("profiling listener failed", "addr", addr, "err", err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	slog.Info("profiling enabled", "addr", ln.Addr().String())
	go func() { _ = http.Serve(ln, mux) }()
}
