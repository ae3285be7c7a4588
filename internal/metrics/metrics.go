// Package metrics exports a Shelf node's metrics in the Prometheus format
// (GET /metrics, docs/operations.md "Monitoring").
//
// Each node has its own registry (New), so that several nodes in one
// process (tests) do not collide. It holds:
//
//   - counters and histograms the node's code feeds as it works: apply
//     latency on the leader, writes forwarded to the leader, HTTP requests
//     by route and status, log-stream polls (Metrics implements
//     cluster.Observer; internal/httpapi calls ObserveHTTP and
//     LogStreamStart);
//   - gauges read from the node when scraped (WatchNode): raft state, term,
//     commit, applied and last log index, leader contact, snapshot age,
//     borrows held and expiring, records per tree, rules version;
//   - the Go runtime and process collectors, and shelf_build_info.
//
// Raft's and memberlist's own metrics (hashicorp/go-metrics) go through
// one process-wide sink: InstallRaftSink, called once by kvnode.
package metrics

import (
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/internal/version"
)

// Namespace prefixes the names of Shelf's own metrics.
const Namespace = "shelf"

// LogClientWindow is how recently a client must have polled the log
// stream to count in shelf_log_stream_clients.
const LogClientWindow = time.Minute

// maxLogClients bounds the client ids remembered for
// shelf_log_stream_clients between scrapes.
const maxLogClients = 100_000

// latencyBuckets are the histogram buckets of request and apply latency,
// in seconds: 0.5ms to 10s.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics is one node's metrics. Its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	apply        prometheus.Histogram
	applyCmds    prometheus.Counter
	fwdTotal     *prometheus.CounterVec
	fwdCounters  map[string]prometheus.Counter // route/result → its counter, resolved once
	fwdDuration  prometheus.Histogram
	httpTotal    *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	logPolls     prometheus.Gauge
	httpSeries   sync.Map // httpKey → *httpSeries, resolved once

	logMu      sync.Mutex
	logClients map[string]time.Time // client id → last poll

	now func() time.Time
}

var _ cluster.Observer = (*Metrics)(nil)

// New returns a node's metrics in a new registry, with the Go runtime and
// process collectors and shelf_build_info registered.
func New() *Metrics {
	m := &Metrics{
		reg:        prometheus.NewRegistry(),
		logClients: map[string]time.Time{},
		now:        time.Now,
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "apply_duration_seconds",
			Help:    "Leader: time from raft.Apply of a batch of commands until all of them are committed and applied to the state machine.",
			Buckets: latencyBuckets,
		}),
		applyCmds: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "applied_commands_total",
			Help: "Leader: commands in the batches measured by shelf_apply_duration_seconds.",
		}),
		fwdTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "forwarded_writes_total",
			Help: "Follower: write requests forwarded to the leader, by route (apply, apply-batch) and result (ok, error).",
		}, []string{"route", "result"}),
		fwdDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "forwarded_write_duration_seconds",
			Help:    "Follower: time the leader took to answer a forwarded write.",
			Buckets: latencyBuckets,
		}),
		httpTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "http_requests_total",
			Help: "HTTP API requests answered, by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "http_request_duration_seconds",
			Help:    "HTTP API request duration by method and route pattern (log and event long polls included).",
			Buckets: latencyBuckets,
		}, []string{"method", "route"}),
		logPolls: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "log_stream_polls_in_flight",
			Help: "GET /v1/log requests being served now (each following client replica holds about one long poll).",
		}),
	}
	info := version.Get()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info",
		Help:        "Always 1; the labels name the running build.",
		ConstLabels: prometheus.Labels{"version": info.Version, "commit": info.Commit, "goversion": info.GoVersion},
	})
	build.Set(1)
	logClients := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "log_stream_clients",
		Help: "Distinct client ids that polled GET /v1/log on this node within the last minute.",
	}, func() float64 { return float64(m.recentLogClients()) })
	m.fwdCounters = map[string]prometheus.Counter{}
	for _, route := range []string{"apply", "apply-batch"} {
		for _, result := range []string{"ok", "error"} {
			m.fwdCounters[route+"/"+result] = m.fwdTotal.WithLabelValues(route, result)
		}
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.apply, m.applyCmds, m.fwdTotal, m.fwdDuration, m.httpTotal, m.httpDuration, m.logPolls,
		build, logClients,
	)
	return m
}

// Registry returns the node's registry, to register more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text (or protobuf, if
// asked) format. A collector that fails is logged and left out of the
// answer; the rest is served.
func (m *Metrics) Handler(log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          m.reg, // promhttp_metric_handler_errors_total
		EnableOpenMetrics: false,
	})
}

// ObserveApply implements cluster.Observer.
func (m *Metrics) ObserveApply(count int, d time.Duration) {
	m.apply.Observe(d.Seconds())
	m.applyCmds.Add(float64(count))
}

// ObserveForward implements cluster.Observer.
func (m *Metrics) ObserveForward(path string, d time.Duration, err error) {
	route := "apply"
	if path == cluster.InternalApplyBatchPath {
		route = "apply-batch"
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.fwdCounters[route+"/"+result].Inc()
	m.fwdDuration.Observe(d.Seconds())
}

// ObserveHTTP counts one answered HTTP request. route is the mux pattern
// without its method ("/v1/trees/{tree}/records"), "unmatched" for a
// request no route took.
func (m *Metrics) ObserveHTTP(method, route string, code int, d time.Duration) {
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodHead, http.MethodPatch, http.MethodOptions:
	default:
		method = "other"
	}
	k := httpKey{method, route, code}
	o, ok := m.httpSeries.Load(k)
	if !ok {
		// First of its labels: resolve the series once (a label lookup
		// hashes every label value; this map hashes the key once).
		o, _ = m.httpSeries.LoadOrStore(k, &httpSeries{
			total:    m.httpTotal.WithLabelValues(method, route, strconv.Itoa(code)),
			duration: m.httpDuration.WithLabelValues(method, route),
		})
	}
	s := o.(*httpSeries)
	s.total.Inc()
	s.duration.Observe(d.Seconds())
}

// httpKey names the series of one kind of answered request. Methods are
// a fixed set, routes the registered patterns, codes HTTP's: few keys.
type httpKey struct {
	method, route string
	code          int
}

// httpSeries is the series an httpKey counts in.
type httpSeries struct {
	total    prometheus.Counter
	duration prometheus.Observer
}

// LogStreamStart counts a GET /v1/log request in flight, from client
// (its client= parameter, "" if none), until the returned done is called.
func (m *Metrics) LogStreamStart(client string) (done func()) {
	m.logPolls.Inc()
	if client != "" {
		now := m.now()
		m.logMu.Lock()
		if len(m.logClients) >= maxLogClients {
			m.pruneLocked(now)
		}
		if len(m.logClients) < maxLogClients {
			m.logClients[client] = now
		}
		m.logMu.Unlock()
	}
	return m.logPolls.Dec
}

// recentLogClients counts the clients that polled within LogClientWindow
// and forgets the others.
func (m *Metrics) recentLogClients() int {
	m.logMu.Lock()
	defer m.logMu.Unlock()
	m.pruneLocked(m.now())
	return len(m.logClients)
}

func (m *Metrics) pruneLocked(now time.Time) {
	for id, t := range m.logClients {
		if now.Sub(t) > LogClientWindow {
			delete(m.logClients, id)
		}
	}
}
