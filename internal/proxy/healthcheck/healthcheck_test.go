package healthcheck

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestProxyHealth(t *testing.T) {
	now := time.Unix(1000, 0)
	p := NewProxy(time.Minute)
	p.now = func() time.Time { return now }
	if p.Healthy() {
		t.Error("healthy before the first sync")
	}
	p.Updated(now)
	if !p.Healthy() {
		t.Error("unhealthy after a sync")
	}
	p.Queued()
	now = now.Add(30 * time.Second)
	if !p.Healthy() {
		t.Error("a change queued for 30s made the proxy unhealthy")
	}
	now = now.Add(time.Minute)
	if p.Healthy() {
		t.Error("a change queued for 90s left the proxy healthy")
	}
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("healthz %d", rec.Code)
	}
	p.Updated(now)
	rec = httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("healthz after the sync %d", rec.Code)
	}
}

func TestServiceHandler(t *testing.T) {
	healthy := true
	s := NewServices(nil, nil, func() bool { return healthy })
	nn := types.NamespacedName{Namespace: "ns", Name: "lb"}
	h := s.handler(nn)
	get := func() (int, Response, http.Header) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		var r Response
		_ = json.NewDecoder(rec.Body).Decode(&r)
		return rec.Code, r, rec.Header()
	}
	if code, r, _ := get(); code != 503 || r.LocalEndpoints != 0 || r.Service.Name != "lb" {
		t.Errorf("no endpoints: %d %+v", code, r)
	}
	s.SyncEndpoints(map[types.NamespacedName]int{nn: 2})
	if code, r, hdr := get(); code != 200 || r.LocalEndpoints != 2 || !r.ServiceProxyHealthy || hdr.Get("X-Load-Balancing-Endpoint-Weight") != "2" {
		t.Errorf("two endpoints: %d %+v %v", code, r, hdr)
	}
	healthy = false
	if code, r, _ := get(); code != 503 || r.ServiceProxyHealthy {
		t.Errorf("unhealthy proxy: %d %+v", code, r)
	}
}
