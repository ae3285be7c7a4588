package httpapi_test

import (
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/fsm"
	"github.com/shelfdb/shelf/internal/httpapi"
	"github.com/shelfdb/shelf/internal/metrics"
)

// TestOpsRoutes: /healthz, /readyz and /v1/version of a bootstrapped
// single node that leads; /metrics only with metrics; /debug/pprof/ only
// with Pprof.
func TestOpsRoutes(t *testing.T) {
	e := newEnvWith(t, func(c *cluster.Config, h *httpapi.Config) {})

	var health map[string]string
	e.json("GET", "/healthz", "", http.StatusOK, &health)
	if health["status"] != "ok" || health["node_id"] != "h1" {
		t.Errorf("/healthz = %v", health)
	}

	var rd api.Readiness
	e.json("GET", "/readyz", "", http.StatusOK, &rd)
	if !rd.Ready || rd.Reason != "" || rd.NodeID != "h1" || rd.Leader != "h1" || rd.Lag != 0 ||
		rd.LeaderCommitIndex == 0 || rd.AppliedIndex < rd.LeaderCommitIndex || rd.MaxLag != cluster.DefaultReadyMaxLag {
		t.Errorf("/readyz = %+v", rd)
	}

	var v api.VersionInfo
	e.json("GET", "/v1/version", "", http.StatusOK, &v)
	if v.Version == "" || v.GoVersion != runtime.Version() || v.RulesSupported != fsm.RulesVersion ||
		v.ClusterRules != fsm.RulesVersion || v.NodeID != "h1" || v.ClusterID != e.node.ClusterID() {
		t.Errorf("/v1/version = %+v", v)
	}
	got, err := e.cl.Version(t.Context())
	if err != nil || got != v {
		t.Errorf("Client.Version = %+v, %v; want %+v", got, err, v)
	}

	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/cmdline"} {
		status, _, body := e.do("GET", path, "", "", nil)
		var ae api.Error
		if status != http.StatusNotFound || json.Unmarshal(body, &ae) != nil || ae.Code != api.CodeNotFound {
			t.Errorf("GET %s without metrics and pprof: %d %s, want 404 not_found", path, status, body)
		}
	}
}

// TestOpsRoutesWithMetricsAndPprof: /metrics serves the text format and
// counts requests by route; -pprof mounts the profiles.
func TestOpsRoutesWithMetricsAndPprof(t *testing.T) {
	m := metrics.New()
	e := newEnvWith(t, func(c *cluster.Config, h *httpapi.Config) {
		c.Observer, h.Metrics, h.Pprof = m, m, true
	})
	if err := m.WatchNode(e.node); err != nil {
		t.Fatal(err)
	}
	e.json("GET", "/v1/status", "", http.StatusOK, nil)
	e.do("GET", "/v1/nosuch", "", "", nil)

	status, h, body := e.do("GET", "/metrics", "", "", nil)
	if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", status, h.Get("Content-Type"))
	}
	for _, want := range []string{
		`shelf_http_requests_total{code="200",method="GET",route="/v1/status"} 1`,
		`shelf_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`shelf_raft_state{state="leader"} 1`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	status, _, body = e.do("GET", "/debug/pprof/cmdline", "", "", nil)
	if status != http.StatusOK || len(body) == 0 {
		t.Errorf("GET /debug/pprof/cmdline with Pprof: %d %q", status, body)
	}
	status, _, body = e.do("GET", "/debug/pprof/goroutine?debug=1", "", "", nil)
	if status != http.StatusOK || !strings.Contains(string(body), "goroutine profile:") {
		t.Errorf("GET /debug/pprof/goroutine with Pprof: %d %.80q", status, body)
	}
}
