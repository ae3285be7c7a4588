package metrics_test

import (
	"context"
	"github.com/shelfdb/shelf/fsm"
	"testing"
	"time"

	gometrics "github.com/hashicorp/go-metrics/compat"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/metrics"
	"github.com/shelfdb/shelf/internal/metrics/metricstest"
	"github.com/shelfdb/shelf/internal/testserver"
)

// TestScrapeNode scrapes /metrics of a node (raft's go-metrics sink
// included) after writes, borrows, a log poll and a snapshot, parses it,
// and checks the series an operator watches.
func TestScrapeNode(t *testing.T) {
	s := testserver.Start(t)
	if err := metrics.InstallRaftSink(s.Metrics.Registry()); err != nil {
		t.Fatal(err)
	}
	if err := metrics.InstallRaftSink(s.Metrics.Registry()); err != nil {
		t.Fatalf("second InstallRaftSink with the same registry: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := api.NewClient(s.Addr, nil)

	const writes = 5
	var keys []api.Key
	var last uint64
	for i := range writes {
		v, err := api.EncodeValue(map[string]any{"n": int64(i)})
		if err != nil {
			t.Fatal(err)
		}
		res, err := cl.Create(ctx, "parts", api.WriteRequest{Data: v})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		keys, last = append(keys, res.Key), res.Index
	}
	ws, err := cl.RegisterClient(ctx, "ws-1")
	if err != nil {
		t.Fatal(err)
	}
	// One borrow expires within the minute, one in an hour, one never.
	for i, ttl := range []time.Duration{30 * time.Second, time.Hour, 0} {
		res, err := cl.Borrow(ctx, "parts", keys[i], ws.ID, ttl)
		if err != nil {
			t.Fatalf("borrow: %v", err)
		}
		last = res.Index
	}
	if _, err := cl.LogAs(ctx, ws.ID, 0, 1, 0); err != nil {
		t.Fatalf("log poll: %v", err)
	}

	fams, err := metricstest.Scrape(ctx, nil, s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	atLeast := func(name string, min float64, labels ...string) {
		t.Helper()
		v, ok := fams.Value(name, labels...)
		if !ok || v < min {
			t.Errorf("%s%q = %v (present %v), want >= %v", name, labels, v, ok, min)
		}
	}
	exactly := func(name string, want float64, labels ...string) {
		t.Helper()
		if v, ok := fams.Value(name, labels...); !ok || v != want {
			t.Errorf("%s%q = %v (present %v), want %v", name, labels, v, ok, want)
		}
	}
	atLeast("shelf_applied_index", float64(last))
	atLeast("shelf_raft_commit_index", float64(last))
	atLeast("shelf_raft_applied_index", float64(last))
	atLeast("shelf_raft_last_log_index", float64(last))
	atLeast("shelf_raft_term", 1)
	exactly("shelf_raft_state", 1, "state", "leader")
	exactly("shelf_raft_state", 0, "state", "follower")
	exactly("shelf_leader_ok", 1)
	atLeast("shelf_apply_duration_seconds", writes+4) // creates, client, borrows
	atLeast("shelf_applied_commands_total", writes+4)
	exactly("shelf_tree_records", writes, "tree", "parts")
	exactly("shelf_borrows_held", 3)
	exactly("shelf_borrows_expiring_soon", 1)
	exactly("shelf_http_requests_total", writes, "method", "POST", "route", "/v1/trees/{tree}/records", "code", "201")
	exactly("shelf_log_stream_clients", 1)
	exactly("shelf_log_stream_polls_in_flight", 0)
	exactly("shelf_cluster_rules_version", float64(fsm.RulesVersion))
	exactly("shelf_node_info", 1, "node_id", "s1", "cluster_id", s.Node.ClusterID())
	exactly("shelf_build_info", 1)
	atLeast("go_goroutines", 1)
	atLeast("process_resident_memory_bytes", 1)
	// Raft's own metrics, through the go-metrics sink.
	atLeast("shelf_raft_apply", writes)
	if typ, ok := fams.Type("shelf_raft_commitTime"); !ok || typ.String() != "SUMMARY" {
		t.Errorf("shelf_raft_commitTime: type %v, present %v; want a summary", typ, ok)
	}
	if _, ok := fams.Value("shelf_snapshot_age_seconds"); ok {
		t.Errorf("shelf_snapshot_age_seconds present before any snapshot")
	}

	if err := s.Node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if fams, err = metricstest.Scrape(ctx, nil, s.Addr); err != nil {
		t.Fatal(err)
	}
	atLeast("shelf_snapshot_last_index", float64(last))
	if age, ok := fams.Value("shelf_snapshot_age_seconds"); !ok || age < 0 || age > 60 {
		t.Errorf("shelf_snapshot_age_seconds = %v (present %v) right after a snapshot, want within [0, 60]", age, ok)
	}
	atLeast("shelf_http_requests_total", 1, "method", "GET", "route", "/metrics", "code", "200")
}

// TestRaftSinkFollowsLatestRegistry: go-metrics' global is one per
// process; installing it for another registry moves it there.
func TestRaftSinkFollowsLatestRegistry(t *testing.T) {
	count := func(reg *prometheus.Registry) float64 {
		t.Helper()
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == "shelf_obs_test" {
				return f.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return 0
	}
	a, b := prometheus.NewRegistry(), prometheus.NewRegistry()
	if err := metrics.InstallRaftSink(a); err != nil {
		t.Fatal(err)
	}
	gometrics.IncrCounter([]string{"obs", "test"}, 1)
	if err := metrics.InstallRaftSink(b); err != nil {
		t.Fatal(err)
	}
	gometrics.IncrCounter([]string{"obs", "test"}, 2)
	if ca, cb := count(a), count(b); ca != 1 || cb != 2 {
		t.Errorf("counts a=%v b=%v, want 1 and 2 (the sink moved to b)", ca, cb)
	}
}
