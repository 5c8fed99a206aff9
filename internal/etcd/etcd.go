// Package etcd runs the embedded single-member etcd that stores a local svcnet cluster.
package etcd

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Config of the embedded etcd.
type Config struct {
	DataDir string
	// ClientURL is where clients connect, e.g. http://127.0.0.1:2379. Port 0 picks a free port.
	ClientURL string
	// Quiet silences etcd's own logging below warnings.
	Quiet bool
}

// Server is a running embedded etcd.
type Server struct {
	e *embed.Etcd
	// ClientURL is the URL clients use, with the real port.
	ClientURL string
}

// Start launches etcd and waits until it serves.
func Start(ctx context.Context, c Config) (*Server, error) {
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd data dir: %w", err)
	}
	cu, err := url.Parse(c.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("etcd client URL %q: %w", c.ClientURL, err)
	}
	if cu.Port() == "0" {
		port, err := freePort(cu.Hostname())
		if err != nil {
			return nil, err
		}
		cu.Host = net.JoinHostPort(cu.Hostname(), fmt.Sprint(port))
	}
	peerPort, err := freePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	peer, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", peerPort))

	cfg := embed.NewConfig()
	cfg.Name = "svcnet"
	cfg.Dir = filepath.Join(c.DataDir)
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = fmt.Sprintf("svcnet=%s", peer.String())
	cfg.LogLevel = "warn"
	if c.Quiet {
		cfg.LogLevel = "error"
	}
	cfg.Logger = "zap"
	cfg.LogOutputs = []string{"stderr"}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	if !c.Quiet {
		cfg.ZapLoggerBuilder = nil
	}
	// Kubernetes keeps etcd's history bounded by compaction from the API server; a large backend quota
	// keeps 10k-object clusters far from the alarm.
	cfg.QuotaBackendBytes = 8 << 30
	cfg.AutoCompactionMode = "revision"
	cfg.AutoCompactionRetention = "0"

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start etcd in %s: %w", c.DataDir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd failed: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("etcd did not become ready within 60s (data dir %s)", c.DataDir)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	return &Server{e: e, ClientURL: cu.String()}, nil
}

// Err reports a fatal etcd error.
func (s *Server) Err() <-chan error { return s.e.Err() }

// Close stops etcd, flushing everything to disk.
func (s *Server) Close() { s.e.Close() }

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
