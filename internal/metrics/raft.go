package metrics

import (
	"fmt"
	"sync"

	gometrics "github.com/hashicorp/go-metrics/compat"
	gmprom "github.com/hashicorp/go-metrics/compat/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// RaftMetricsPrefix is the service name go-metrics puts before the keys
// of raft, raft-boltdb and memberlist: raft's "raft.commitTime" is
// exported as shelf_raft_commitTime. Their timers are summaries in
// milliseconds.
const RaftMetricsPrefix = Namespace

var (
	raftSinkMu  sync.Mutex
	raftSinkReg prometheus.Registerer // the registry the global sink feeds
)

// InstallRaftSink makes the metrics that hashicorp/raft, raft-boltdb and
// memberlist emit (through go-metrics' process-wide global) appear in
// reg, via go-metrics' Prometheus sink. The global is one per process:
// kvnode calls this once for its node. A later call with another registry
// moves the global to it (the last one wins; the earlier registry keeps
// the values it had), so of several nodes in one process (tests) only the
// last one's registry shows raft's metrics. A second call with the same
// registry does nothing.
//
// The go-metrics package is the one raft was built against
// (github.com/hashicorp/go-metrics/compat: armon/go-metrics by default,
// hashicorp/go-metrics with the hashicorpmetrics build tag). Metrics never
// expire from the sink: a gauge keeps its last value (a former leader's
// leader-only gauges included) until the process restarts.
func InstallRaftSink(reg prometheus.Registerer) error {
	raftSinkMu.Lock()
	defer raftSinkMu.Unlock()
	if raftSinkReg == reg {
		return nil
	}
	opts := gmprom.DefaultPrometheusOpts
	opts.Registerer = reg
	opts.Expiration = 0 // never: a counter that vanishes breaks rate()
	opts.Name = "shelf_gometrics_sink"
	sink, err := gmprom.NewPrometheusSinkFrom(opts)
	if err != nil {
		return fmt.Errorf("metrics: go-metrics prometheus sink: %w", err)
	}
	conf := gometrics.DefaultConfig(RaftMetricsPrefix)
	conf.EnableHostname = false       // no hostname inside metric names
	conf.EnableHostnameLabel = false  // Prometheus adds the instance label
	conf.EnableRuntimeMetrics = false // the Go collector has them; go-metrics would poll forever in a goroutine
	conf.EnableServiceLabel = false
	if _, err := gometrics.NewGlobal(conf, sink); err != nil {
		reg.Unregister(sink)
		return fmt.Errorf("metrics: go-metrics global: %w", err)
	}
	raftSinkReg = reg
	return nil
}
