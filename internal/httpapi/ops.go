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
	h.handle("GET /healthz", h.healthz)
	h.handle("GET /readyz", h.readyz)
	h.handle("GET /v1/version", h.version)
	if h.ops.metrics != nil {
		h.mux.Handle("GET /metrics", h.ops.metrics.Handler(h.log))
	}
	if h.ops.pprof {
		// Off unless kvnode runs with -pprof: profiles show internals and
		// cost CPU. Once the API has tokens, these routes are for admins
		// only.
		h.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		h.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		h.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		h.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		h.mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		h.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
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
		sw := &statusWriter{ResponseWriter: w}
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

// statusWriter records the status code of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader implements http.ResponseWriter.
func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush implements http.Flusher when the underlying writer does.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		if s.status == 0 {
			s.status = http.StatusOK
		}
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// code is the answer's status: 200 if the handler wrote nothing.
func (s *statusWriter) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}
