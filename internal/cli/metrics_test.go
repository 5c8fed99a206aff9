package cli

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"k8s.io/client-go/util/workqueue"
)

func TestListenMetricsRejectsBadAddresses(t *testing.T) {
	for _, addr := range []string{"10257", "127.0.0.1", "127.0.0.1:notaport", "256.0.0.1:10257"} {
		if ln, err := listenMetrics(addr); err == nil {
			ln.Close()
			t.Errorf("listenMetrics(%q) = nil error, want one", addr)
		} else if !strings.Contains(err.Error(), "--metrics-bind-address") {
			t.Errorf("listenMetrics(%q) = %v, want the flag named", addr, err)
		}
	}
}

func TestServeMetricsShowsWorkQueues(t *testing.T) {
	ln, err := listenMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { serveMetrics(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()

	q := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "metricstest"})
	defer q.ShutDown()
	q.Add("x")

	base := "http://" + ln.Addr().String()
	if body := get(t, base+"/healthz"); body != "ok" {
		t.Errorf("/healthz = %q, want ok", body)
	}
	if body := get(t, base+"/metrics"); !strings.Contains(body, `workqueue_adds_total{name="metricstest"} 1`) {
		t.Errorf("/metrics has no adds for the test queue:\n%s", body)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}
