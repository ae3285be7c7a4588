package httpapi

import (
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
	"github.com/shelfdb/shelf/internal/metrics"
	"github.com/shelfdb/shelf/internal/version"
)

// ops is the configuration of the operations routes: /healthz, /readyz,
// /metrics, /debug/pprof and /v1/version.
type ops struct {
	metrics *metrics.Metrics
	pprof   bool
	maxLag  uint64
}

// opsRoutes registers the operations routes (docs/http-api.md).
func (h *handler) opsRoutes() {
	h.handle("GET /healthz", accessOpen, h.healthz)
	h.handle("GET /readyz", accessOpen, h.readyz)
	h.handle("GET /v1/version", accessReader, h.version)
	if h.ops.metrics != nil {
		h.handleHTTP("GET /metrics", accessReader, h.ops.metrics.Handler(h.log))
	}
	if h.ops.pprof {
		// Off unless kvnode runs with -pprof: profiles show internals and
		// cost CPU. With auth on, for admins only.
		h.handleHTTP("GET /debug/pprof/", accessAdmin, http.HandlerFunc(pprof.Index))
		h.handleHTTP("GET /debug/pprof/cmdline", accessAdmin, http.HandlerFunc(pprof.Cmdline))
		h.handleHTTP("GET /debug/pprof/profile", accessAdmin, http.HandlerFunc(pprof.Profile))
		h.handleHTTP("GET /debug/pprof/symbol", accessAdmin, http.HandlerFunc(pprof.Symbol))
		h.handleHTTP("POST /debug/pprof/symbol", accessAdmin, http.HandlerFunc(pprof.Symbol))
		h.handleHTTP("GET /debug/pprof/trace", accessAdmin, http.HandlerFunc(pprof.Trace))
	}
}

// healthz answers 200 while the process serves and its state machine
// follows the log; 503 once the state machine stopped (kvnode then exits).
func (h *handler) healthz(w http.ResponseWriter, r *http.Request) error {
	if err := h.node.FailedErr(); err != nil {
		return api.Errorf(api.CodeUnavailable, "the state machine stopped: %v", err)
	}
	h.write(w, r, http.StatusOK, api.Health{Status: "ok", NodeID: h.node.ID()})
	return nil
}

// readyz answers 200 when the node is a member of a cluster, knows a
// leader and has applied the leader's commit index (within a small lag),
// 503 otherwise; the body (api.Readiness) says why.
func (h *handler) readyz(w http.ResponseWriter, r *http.Request) error {
	rd := h.node.Readiness(r.Context(), h.ops.maxLag)
	status := http.StatusOK
	if !rd.Ready {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	h.write(w, r, status, rd)
	return nil
}

// version answers the build and rules versions of this node.
func (h *handler) version(w http.ResponseWriter, r *http.Request) error {
	v := version.Get()
	h.write(w, r, http.StatusOK, api.VersionInfo{
		Version:        v.Version,
		Commit:         v.Commit,
		Modified:       v.Modified,
		CommitTime:     v.CommitTime,
		GoVersion:      v.GoVersion,
		RulesSupported: fsm.RulesVersion,
		ClusterRules:   h.node.FSM().Rules(),
		NodeID:         h.node.ID(),
		ClusterID:      h.node.ClusterID(),
	})
	return nil
}

// instrumented returns h counting every request in the metrics (by route
// pattern and status) and the log-stream polls in flight; h itself when
// there are no metrics.
func (h *handler) instrumented() http.Handler {
	m := h.ops.metrics
	if m == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if r.Method == http.MethodGet && r.URL.Path == "/v1/log" {
			defer m.LogStreamStart(r.URL.Query().Get("client"))()
		}
		sw := &answerWriter{ResponseWriter: w}
		defer func() {
			// The mux sets r.Pattern on the request it routes.
			route := "unmatched"
			if _, path, ok := strings.Cut(r.Pattern, " "); ok {
				route = path
			} else if r.Pattern != "" {
				route = r.Pattern
			}
			m.ObserveHTTP(r.Method, route, sw.code(), time.Since(start))
		}()
		h.ServeHTTP(sw, r)
	})
}
