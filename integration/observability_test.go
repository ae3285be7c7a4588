package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/fsm"
	"github.com/shelfdb/shelf/internal/metrics/metricstest"
)

// readyz asks n's /readyz and decodes the answer.
func readyz(t *testing.T, n *Node) (int, api.Readiness) {
	t.Helper()
	status, _, body := rawRequest(t, n, http.MethodGet, "/readyz", "", nil)
	var rd api.Readiness
	if err := json.Unmarshal(body, &rd); err != nil {
		t.Fatalf("%s /readyz: status %d, body %q: %v", n.ID, status, body, err)
	}
	return status, rd
}

// scrape scrapes n's /metrics and parses it.
func scrape(t *testing.T, n *Node) metricstest.Families {
	t.Helper()
	fams, err := metricstest.Scrape(context.Background(), testHTTP, n.HTTP)
	if err != nil {
		t.Fatalf("node %s: %v", n.ID, err)
	}
	return fams
}

// TestObservability runs a three-node cluster of kvnode processes, writes
// through a follower, and checks what an operator's monitoring reads:
// /metrics of every node scraped and parsed (Shelf's series, raft's and
// memberlist's go-metrics, the Go collector), /healthz, /readyz (200 when
// caught up, 503 with the reason on a node cut off from the others, 200
// again once they are back; kvctl health says the same), /v1/version
// against kvnode -version and kvctl version, and /debug/pprof off by
// default.
func TestObservability(t *testing.T) {
	skipShort(t)
	const tree, writes = "obs", 20
	nodes := startCluster(t, 3)
	leader := waitLeader(t, nodes)
	var followers []*Node
	for _, n := range nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	via := followers[0]

	var last uint64
	for i := range int64(writes) {
		res, err := create(via, tree, value(t, i))
		if err != nil {
			t.Fatalf("create through follower %s: %v", via.ID, err)
		}
		last = res.Index
	}
	waitApplied(t, nodes, last)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	_, err := via.Client.LogAs(ctx, "obs-replica", 0, 1, 0)
	cancel()
	if err != nil {
		t.Fatalf("log poll: %v", err)
	}

	for _, n := range nodes {
		fams := scrape(t, n)
		check := func(name string, ok func(float64) bool, want string, labels ...string) {
			t.Helper()
			v, present := fams.Value(name, labels...)
			if !present || !ok(v) {
				t.Errorf("node %s: %s%q = %v (present %v), want %s", n.ID, name, labels, v, present, want)
			}
		}
		atLeast := func(name string, min float64, labels ...string) {
			t.Helper()
			check(name, func(v float64) bool { return v >= min }, fmt.Sprint(">= ", min), labels...)
		}
		equal := func(name string, want float64, labels ...string) {
			t.Helper()
			check(name, func(v float64) bool { return v == want }, fmt.Sprint(want), labels...)
		}
		atLeast("shelf_applied_index", float64(last))
		atLeast("shelf_raft_commit_index", float64(last))
		equal("shelf_tree_records", writes, "tree", tree)
		equal("shelf_leader_ok", 1)
		atLeast("go_goroutines", 1)
		atLeast("shelf_raft_fsm_applyBatch", 1) // raft's go-metrics, on every node
		if ml := fams.WithPrefix("shelf_memberlist_"); len(ml) == 0 {
			t.Errorf("node %s: no memberlist metrics (shelf_memberlist_*)", n.ID)
		}
		if n == leader {
			equal("shelf_raft_state", 1, "state", "leader")
			atLeast("shelf_apply_duration_seconds", writes)
			atLeast("shelf_raft_apply", writes)
			// A follower forwards every write through the batch route
			// (cluster/forward.go); these writes are sequential, so one
			// request each.
			atLeast("shelf_http_requests_total", writes, "route", cluster.InternalApplyBatchPath, "code", "200")
		} else {
			equal("shelf_raft_state", 1, "state", "follower")
			equal("shelf_raft_state", 0, "state", "leader")
		}
		if n == via {
			equal("shelf_forwarded_writes_total", writes, "route", "apply-batch", "result", "ok")
			equal("shelf_forwarded_write_duration_seconds", writes)
			equal("shelf_http_requests_total", writes, "method", "POST", "route", "/v1/trees/{tree}/records", "code", "201")
			equal("shelf_log_stream_clients", 1)
		}

		status, _, body := rawRequest(t, n, http.MethodGet, "/healthz", "", nil)
		if status != http.StatusOK {
			t.Errorf("node %s /healthz: %d %s", n.ID, status, body)
		}
		if status, rd := readyz(t, n); status != http.StatusOK || !rd.Ready || rd.Leader != leader.ID || rd.Lag > rd.MaxLag {
			t.Errorf("node %s /readyz: %d %+v, want 200 ready with leader %s", n.ID, status, rd, leader.ID)
		}
		if status, _, body := rawRequest(t, n, http.MethodGet, "/debug/pprof/", "", nil); status != http.StatusNotFound {
			t.Errorf("node %s /debug/pprof/ without -pprof: %d %.100s, want 404", n.ID, status, body)
		}
	}

	// Versions: the API, kvnode -version and kvctl version agree.
	ctx, cancel = context.WithTimeout(context.Background(), requestTimeout)
	v, err := via.Client.Version(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	st, err := via.Status()
	if err != nil {
		t.Fatal(err)
	}
	if v.Version == "" || v.GoVersion != runtime.Version() || v.RulesSupported != fsm.RulesVersion ||
		v.ClusterRules != fsm.RulesVersion || v.NodeID != via.ID || v.ClusterID != st.ClusterID {
		t.Errorf("/v1/version of %s = %+v", via.ID, v)
	}
	out, err := exec.Command(kvnodeBin, "-version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "kvnode "+v.Version+" (commit ") || !strings.Contains(string(out), v.GoVersion) {
		t.Errorf("kvnode -version: %q, %v; want the version the API reports (%s, %s)", out, err, v.Version, v.GoVersion)
	}
	code, stdout, stderr := kvctlOut(t, "-s", via.HTTP, "-o", "json", "version")
	var kv struct {
		Client struct {
			Version   string `json:"version"`
			GoVersion string `json:"go_version"`
		} `json:"client"`
		Server *api.VersionInfo `json:"server"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &kv) != nil || kv.Server == nil || *kv.Server != v ||
		kv.Client.Version != v.Version || kv.Client.GoVersion != v.GoVersion {
		t.Errorf("kvctl -o json version: exit %d, %s%s", code, stdout, stderr)
	}

	// Cut one follower off from the others: not ready, and says why;
	// healthy all the same.
	lone := followers[1]
	for _, n := range nodes {
		if n != lone {
			n.Pause()
		}
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			for _, n := range nodes {
				if n != lone {
					n.Resume()
				}
			}
		}
	}
	t.Cleanup(resume)
	var rd api.Readiness
	waitFor(t, electionTimeout, lone.ID+" /readyz to answer 503 when cut off", func() (bool, string) {
		var status int
		status, rd = readyz(t, lone)
		return status == http.StatusServiceUnavailable, fmt.Sprintf("%d %+v", status, rd)
	})
	if rd.Ready || rd.Reason == "" || rd.NodeID != lone.ID {
		t.Errorf("cut-off %s /readyz body: %+v, want not ready with a reason", lone.ID, rd)
	}
	t.Logf("cut-off %s: /readyz 503: %s", lone.ID, rd.Reason)
	if status, _, body := rawRequest(t, lone, http.MethodGet, "/healthz", "", nil); status != http.StatusOK {
		t.Errorf("cut-off %s /healthz: %d %s, want 200 (the process serves)", lone.ID, status, body)
	}
	if code, _, stderr := kvctlOut(t, "-s", lone.HTTP, "health", "-ready"); code != 1 || !strings.Contains(stderr, "node "+lone.ID+" is not ready: ") {
		t.Errorf("kvctl health -ready on the cut-off %s: exit %d, %q; want 1 and the reason", lone.ID, code, stderr)
	}
	if code, stdout, stderr := kvctlOut(t, "-s", lone.HTTP, "health"); code != 0 || stdout != lone.ID+": healthy\n" {
		t.Errorf("kvctl health on the cut-off %s: exit %d, %q, %q; want 0", lone.ID, code, stdout, stderr)
	}
	// Once the leader has been silent past LeaderStaleAfter, the node says
	// it has none.
	waitFor(t, electionTimeout, lone.ID+" shelf_leader_ok to drop to 0 when cut off", func() (bool, string) {
		v, ok := scrape(t, lone).Value("shelf_leader_ok")
		return ok && v == 0, fmt.Sprintf("shelf_leader_ok = %v (present %v)", v, ok)
	})

	resume()
	for _, n := range nodes {
		waitFor(t, electionTimeout, n.ID+" /readyz to answer 200 again", func() (bool, string) {
			status, rd := readyz(t, n)
			return status == http.StatusOK && rd.Ready, fmt.Sprintf("%d %+v", status, rd)
		})
	}
	if code, stdout, stderr := kvctlOut(t, "-s", lone.HTTP, "health", "-ready"); code != 0 || !strings.HasPrefix(stdout, lone.ID+": ready (leader ") {
		t.Errorf("kvctl health -ready on %s after the others came back: exit %d, %q, %q", lone.ID, code, stdout, stderr)
	}
}

// TestReadyzWithoutQuorum stops a three-node cluster and starts one node
// alone: it serves (/healthz 200) but no leader can exist, so /readyz
// answers 503 saying so; with a second node back there is a quorum, a
// leader, and both are ready; the third is ready once it has caught up.
func TestReadyzWithoutQuorum(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	res, err := create(nodes[0], "obs", value(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, nodes, res.Index)
	stopAll(t, nodes)

	alone := nodes[1]
	alone.Start()
	alone.WaitReady()
	status, rd := readyz(t, alone)
	if status != http.StatusServiceUnavailable || rd.Ready || rd.Leader != "" || rd.Reason != "no leader known" {
		t.Errorf("%s alone: /readyz %d %+v, want 503 \"no leader known\"", alone.ID, status, rd)
	}
	if status, _, body := rawRequest(t, alone, http.MethodGet, "/healthz", "", nil); status != http.StatusOK {
		t.Errorf("%s alone: /healthz %d %s, want 200", alone.ID, status, body)
	}

	nodes[2].Start()
	nodes[2].WaitReady()
	nodes[0].Start()
	nodes[0].WaitReady()
	for _, n := range nodes {
		waitFor(t, electionTimeout, n.ID+" /readyz to answer 200 after the restart", func() (bool, string) {
			status, rd := readyz(t, n)
			return status == http.StatusOK && rd.Ready && rd.AppliedIndex >= res.Index, fmt.Sprintf("%d %+v", status, rd)
		})
	}
}
