package agnhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"

	"github.com/spf13/cobra"
)

// serveHostnameConfig holds serve-hostname's flags.
type serveHostnameConfig struct {
	tcp   bool
	udp   bool
	http  bool
	close bool
	port  int
}

func newServeHostnameCommand(e *env, code *int) *cobra.Command {
	cfg := serveHostnameConfig{}
	cmd := &cobra.Command{
		Use:   "serve-hostname",
		Short: "Serves the hostname",
		Long:  `Serves the hostname through HTTP / TCP / UDP on the given port.`,
		Args:  cobra.MaximumNArgs(0),
		Run: func(cmd *cobra.Command, _ []string) {
			*code = runServeHostname(cmd.Context(), e, cfg)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&cfg.tcp, "tcp", false, "Serve raw over TCP.")
	f.BoolVar(&cfg.udp, "udp", false, "Serve raw over UDP.")
	f.BoolVar(&cfg.http, "http", true, "Serve HTTP.")
	f.BoolVar(&cfg.close, "close", false, "Close connection per each HTTP request.")
	f.IntVar(&cfg.port, "port", 9376, "Port number.")
	return cmd
}

// runServeHostname serves the hostname until ctx ends. The real agnhost then sleeps 60s waiting to be
// killed; here Main returns 0 at once and leaves the grace period to the caller.
func runServeHostname(ctx context.Context, e *env, cfg serveHostnameConfig) int {
	log := e.log.With("cmd", "serve-hostname")
	if cfg.http && (cfg.tcp || cfg.udp) {
		fmt.Fprintln(e.stderr, "Error: Can't server TCP/UDP mode and HTTP mode at the same time (use --http=false with --tcp or --udp)")
		return 1
	}
	hostname, err := os.Hostname()
	if err != nil {
		fmt.Fprintf(e.stderr, "Error from os.Hostname(): %s\n", err)
		return 1
	}
	addr := e.listenAddr(cfg.port)
	bound := map[string]net.Addr{}
	// Deferred calls run last-in first-out: close every socket, then wait for the servers.
	var wg sync.WaitGroup
	defer wg.Wait()
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	fail := func(what string, err error) int {
		fmt.Fprintf(e.stderr, "Error from %s: %s\n", what, err)
		return 1
	}

	if cfg.tcp {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fail("net.Listen()", err)
		}
		closers = append(closers, func() { ln.Close() })
		bound["tcp"] = ln.Addr()
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveHostnameTCP(log, ln, hostname)
		}()
	}
	if cfg.udp {
		conn, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fail("ListenUDP()", err)
		}
		closers = append(closers, func() { conn.Close() })
		bound["udp"] = conn.LocalAddr()
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveHostnameUDP(log, conn, hostname)
		}()
	}
	serveErr := make(chan error, 1)
	if cfg.http {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fail("http.ListenAndServe()", err)
		}
		bound["http"] = ln.Addr()
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				log.Info("httpRequest", "client", r.RemoteAddr)
				if cfg.close {
					w.Header().Add("Connection", "close")
				}
				fmt.Fprint(w, hostname)
			}),
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError),
		}
		closers = append(closers, func() { srv.Close() })
		go func() { serveErr <- srv.Serve(ln) }()
	}
	log.Info("serving", "port", cfg.port, "tcp", cfg.tcp, "udp", cfg.udp, "http", cfg.http)
	e.ready(bound)

	select {
	case <-ctx.Done():
		log.Info("shuttingDown")
		return 0
	case err := <-serveErr:
		return fail("http.Serve()", err)
	}
}

func serveHostnameTCP(log *slog.Logger, ln net.Listener, hostname string) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Error("acceptFailed", "err", err)
			}
			return
		}
		log.Info("tcpRequest", "client", conn.RemoteAddr().String())
		conn.Write([]byte(hostname))
		conn.Close()
	}
}

func serveHostnameUDP(log *slog.Logger, conn net.PacketConn, hostname string) {
	var buf [16]byte
	for {
		_, client, err := conn.ReadFrom(buf[:])
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Error("udpReadFailed", "err", err)
			}
			return
		}
		log.Info("udpRequest", "client", client.String())
		if _, err := conn.WriteTo([]byte(hostname), client); err != nil {
			log.Error("udpWriteFailed", "client", client.String(), "err", err)
		}
	}
}
