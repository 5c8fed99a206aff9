package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probeResult is one run of a probe.
type probeResult struct {
	ok      bool
	message string
}

// prober runs probes from the node, as the kubelet does: HTTP and TCP probes go to the pod's
// address over the node's network, exec probes run in the container's namespaces.
type prober struct {
	http *http.Client
	// execIn runs argv in the container's namespaces and returns its output and exit error.
	execIn func(ctx context.Context, argv []string) ([]byte, error)
}

func newProber(execIn func(ctx context.Context, argv []string) ([]byte, error)) *prober {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the kubelet does not verify probe certificates either
		DisableKeepAlives: true,
	}
	return &prober{
		http:   &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		execIn: execIn,
	}
}

func resolveProbePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("port %q is not a port of container %s", p.StrVal, c.Name)
}

func (pr *prober) run(ctx context.Context, p *corev1.Probe, c *corev1.Container, podIP netip.Addr) probeResult {
	timeout := time.Duration(p.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.HTTPGet != nil:
		g := p.HTTPGet
		port, err := resolveProbePort(g.Port, c)
		if err != nil {
			return probeResult{message: err.Error()}
		}
		host := g.Host
		if host == "" {
			host = podIP.String()
		}
		scheme := strings.ToLower(string(g.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		path := g.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		u := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), path)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return probeResult{message: err.Error()}
		}
		req.Header.Set("User-Agent", "kube-probe/1.35")
		req.Header.Set("Accept", "*/*")
		for _, h := range g.HTTPHeaders {
			if strings.EqualFold(h.Name, "Host") {
				req.Host = h.Value
			} else {
				req.Header.Set(h.Name, h.Value)
			}
		}
		resp, err := pr.http.Do(req)
		if err != nil {
			return probeResult{message: err.Error()}
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
		resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 400 {
			return probeResult{ok: true}
		}
		return probeResult{message: fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)}
	case p.TCPSocket != nil:
		port, err := resolveProbePort(p.TCPSocket.Port, c)
		if err != nil {
			return probeResult{message: err.Error()}
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = podIP.String()
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return probeResult{message: fmt.Sprintf("dial tcp %s: %v", net.JoinHostPort(host, strconv.Itoa(port)), err)}
		}
		conn.Close()
		return probeResult{ok: true}
	case p.Exec != nil:
		out, err := pr.execIn(ctx, p.Exec.Command)
		if err == nil {
			return probeResult{ok: true}
		}
		var ee *exec.ExitError
		if ctx.Err() != nil {
			return probeResult{message: fmt.Sprintf("command %q timed out", p.Exec.Command)}
		}
		if errorsAs(err, &ee) {
			return probeResult{message: strings.TrimSpace(string(out))}
		}
		return probeResult{message: err.Error()}
	case p.GRPC != nil:
		return probeResult{message: "gRPC probes are not supported by svcnet"}
	}
	return probeResult{message: "probe has no handler"}
}

// probeState applies successThreshold and failureThreshold to a stream of results.
type probeState struct {
	successes, failures int32
	result              bool
	known               bool
}

// observe returns whether the probe's verdict changed.
func (s *probeState) observe(p *corev1.Probe, ok bool) bool {
	success, failure := p.SuccessThreshold, p.FailureThreshold
	if success <= 0 {
		success = 1
	}
	if failure <= 0 {
		failure = 3
	}
	if ok {
		s.failures = 0
		s.successes++
		if (!s.result || !s.known) && s.successes >= success {
			s.result, s.known = true, true
			return true
		}
		return false
	}
	s.successes = 0
	s.failures++
	if (s.result || !s.known) && s.failures >= failure {
		s.result, s.known = false, true
		return true
	}
	return false
}

func errorsAs(err error, target **exec.ExitError) bool { return errors.As(err, target) }
