// Package healthcheck serves the health checks load balancers probe on a node, as kube-proxy does:
// one HTTP server per healthCheckNodePort (LoadBalancer Services with externalTrafficPolicy
// Local), answering 200 when the node has a ready endpoint of the Service and 503 otherwise, with
// the local endpoint count as JSON; and the proxy's own /healthz and /livez.
package healthcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// ListenFunc opens a TCP listener (net.Listen by default; tests open it in a network namespace).
type ListenFunc func(network, addr string) (net.Listener, error)

// Services serves the healthCheckNodePorts.
type Services struct {
	addrs   []netip.Addr // listen on each; none: on all addresses
	listen  ListenFunc
	healthy func() bool

	mu       sync.Mutex
	services map[types.NamespacedName]*service
	counts   map[types.NamespacedName]int
}

type service struct {
	name    types.NamespacedName
	port    uint16
	servers []*http.Server
}

// NewServices returns a health check server for the given node addresses (empty: all), with
// proxyHealthy reporting whether the proxy itself is healthy (a Service is healthy only then).
func NewServices(addrs []netip.Addr, listen ListenFunc, proxyHealthy func() bool) *Services {
	if listen == nil {
		listen = net.Listen
	}
	if proxyHealthy == nil {
		proxyHealthy = func() bool { return true }
	}
	return &Services{addrs: addrs, listen: listen, healthy: proxyHealthy,
		services: map[types.NamespacedName]*service{}, counts: map[types.NamespacedName]int{}}
}

// SyncServices sets the Services to serve and their ports: servers for new ones are started,
// those of removed ones (or with a changed port) stopped. A port that cannot be opened is reported
// and retried at the next call.
func (s *Services) SyncServices(ports map[types.NamespacedName]uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, svc := range s.services {
		if p, ok := ports[name]; !ok || p != svc.port {
			svc.close()
			delete(s.services, name)
		}
	}
	var errs []error
	for name, port := range ports {
		if _, ok := s.services[name]; ok || port == 0 {
			continue
		}
		svc := &service{name: name, port: port}
		addrs := s.addrs
		if len(addrs) == 0 {
			addrs = []netip.Addr{{}}
		}
		for _, a := range addrs {
			hostPort := ":" + strconv.Itoa(int(port))
			if a.IsValid() {
				hostPort = netip.AddrPortFrom(a, port).String()
			}
			l, err := s.listen("tcp", hostPort)
			if err != nil {
				errs = append(errs, fmt.Errorf("health check of %s on %s: %w", name, hostPort, err))
				continue
			}
			srv := &http.Server{Handler: s.handler(name), ReadHeaderTimeout: 5 * time.Second}
			svc.servers = append(svc.servers, srv)
			go func() {
				if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
					slog.Warn("health check server stopped", "service", name.String(), "address", hostPort, "err", err)
				}
			}()
		}
		if len(svc.servers) > 0 {
			s.services[name] = svc
		}
	}
	return errors.Join(errs...)
}

// SyncEndpoints sets the number of ready local endpoints per Service.
func (s *Services) SyncEndpoints(counts map[types.NamespacedName]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = counts
}

// Close stops every server.
func (s *Services) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, svc := range s.services {
		svc.close()
		delete(s.services, name)
	}
}

func (svc *service) close() {
	for _, srv := range svc.servers {
		_ = srv.Close()
	}
}

// Response is the body of a health check answer (kube-proxy's format).
type Response struct {
	Service struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"service"`
	LocalEndpoints      int  `json:"localEndpoints"`
	ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
}

func (s *Services) handler(name types.NamespacedName) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		count := s.counts[name]
		s.mu.Unlock()
		var r Response
		r.Service.Namespace, r.Service.Name = name.Namespace, name.Name
		r.LocalEndpoints = count
		r.ServiceProxyHealthy = s.healthy()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Load-Balancing-Endpoint-Weight", strconv.Itoa(count))
		if count > 0 && r.ServiceProxyHealthy {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(r)
	})
}

// Proxy tracks the proxy's own health: healthy once the first sync is done, and as long as no
// change has been waiting longer than the timeout.
type Proxy struct {
	timeout time.Duration
	now     func() time.Time

	mu          sync.Mutex
	lastUpdated time.Time
	queuedSince time.Time // oldest change not yet applied; zero when none
}

// NewProxy returns a health tracker with the given timeout.
func NewProxy(timeout time.Duration) *Proxy {
	return &Proxy{timeout: timeout, now: time.Now}
}

// Queued records that a change is waiting for a sync.
func (p *Proxy) Queued() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.queuedSince.IsZero() {
		p.queuedSince = p.now()
	}
}

// Updated records a successful sync that applied everything queued before start.
func (p *Proxy) Updated(start time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastUpdated = p.now()
	if !p.queuedSince.IsZero() && !p.queuedSince.After(start) {
		p.queuedSince = time.Time{}
	}
}

// Healthy reports the proxy's health.
func (p *Proxy) Healthy() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lastUpdated.IsZero() {
		return false
	}
	return p.queuedSince.IsZero() || p.now().Sub(p.queuedSince) < p.timeout
}

// ServeHTTP answers /healthz and /livez: 200 when healthy, 503 otherwise, with the last update
// time as JSON.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	last := p.lastUpdated
	p.mu.Unlock()
	healthy := p.Healthy()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if healthy {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"lastUpdated": last.Format(time.RFC3339Nano), "currentTime": p.now().Format(time.RFC3339Nano)})
}

// Serve runs the /healthz and /livez server on addr until ctx ends.
func (p *Proxy) Serve(ctx context.Context, addr string, listen ListenFunc) error {
	if listen == nil {
		listen = net.Listen
	}
	l, err := listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("proxy healthz on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/healthz", p)
	mux.Handle("/livez", p)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
