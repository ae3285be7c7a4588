package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/fsm"
	"github.com/shelfdb/shelf/internal/httpapi"
	"github.com/shelfdb/shelf/internal/testlog"
)

// testNode is a node with its HTTP API served on a loopback port.
type testNode struct {
	*cluster.Node
	dir  string
	srv  *http.Server
	once sync.Once
}

func (tn *testNode) stop(t testing.TB) {
	tn.once.Do(func() {
		_ = tn.srv.Close()
		if err := tn.Shutdown(); err != nil {
			t.Errorf("shutdown %s: %v", tn.ID(), err)
		}
	})
}

func (tn *testNode) client() *api.Client { return api.NewClient(tn.HTTPAddr(), nil) }

func fastGossip(c *memberlist.Config) {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.SuspicionMult = 2
	c.GossipInterval = 50 * time.Millisecond
	c.PushPullInterval = 2 * time.Second
	c.TCPTimeout = time.Second
	c.DeadNodeReclaimTime = time.Millisecond // restarted nodes get new ports
}

func testConfig(t testing.TB, id, dir string) cluster.Config {
	return cluster.Config{
		NodeID:     id,
		DataDir:    dir,
		RaftAddr:   "127.0.0.1:0",
		GossipAddr: "127.0.0.1:0",
		Logger:     testlog.New(t).With("node", id),
		// Fast enough for short tests, slow enough that a 2-core machine
		// running the race detector does not depose healthy leaders.
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		ReconcileInterval:  100 * time.Millisecond,
		JoinTimeout:        10 * time.Second,
		NoSync:             true,
		TuneGossip:         fastGossip,
	}
}

// startNode starts a node with cfg (HTTPAddr is set here) and serves its
// API; it is stopped when the test ends.
func startNode(t testing.TB, cfg cluster.Config) (*testNode, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPAddr = ln.Addr().String()
	n, err := cluster.New(cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	tn := &testNode{Node: n, dir: cfg.DataDir}
	tn.srv = &http.Server{Handler: httpapi.New(httpapi.Config{Node: n, Logger: cfg.Logger})}
	go func() { _ = tn.srv.Serve(ln) }()
	t.Cleanup(func() { tn.stop(t) })
	return tn, nil
}

func mustStart(t testing.TB, cfg cluster.Config) *testNode {
	t.Helper()
	tn, err := startNode(t, cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.NodeID, err)
	}
	return tn
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCluster waits until n leads or follows a leader and has a cluster id.
func waitCluster(t testing.TB, n *testNode) string {
	t.Helper()
	waitFor(t, 10*time.Second, n.ID()+" to know its cluster", func() error {
		st := n.Status()
		if st.Leader == "" || st.ClusterID == "" {
			return fmt.Errorf("leader %q, cluster %q", st.Leader, st.ClusterID)
		}
		return nil
	})
	return n.ClusterID()
}

func voters(n *testNode) (ids []string) {
	for _, m := range n.Members() {
		if m.Suffrage == "Voter" {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

func leaderOf(t testing.TB, nodes ...*testNode) (leader *testNode, followers []*testNode) {
	t.Helper()
	waitFor(t, 10*time.Second, "a leader", func() error {
		leader, followers = nil, nil
		for _, n := range nodes {
			if n.IsLeader() {
				leader = n
			} else {
				followers = append(followers, n)
			}
		}
		if leader == nil {
			return errors.New("no leader")
		}
		for _, f := range followers {
			if f.Status().Leader != leader.ID() {
				return fmt.Errorf("%s follows %q", f.ID(), f.Status().Leader)
			}
		}
		return nil
	})
	return leader, followers
}

func value(t testing.TB, v any) []byte {
	t.Helper()
	b, err := api.EncodeValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestThreeNodes(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	cfg1 := testConfig(t, "n1", filepath.Join(base, "n1"))
	cfg1.Bootstrap = true
	n1 := mustStart(t, cfg1)
	cid := waitCluster(t, n1)

	// Join in any order: n3 lists n2 too, which may not be up yet.
	cfg2 := testConfig(t, "n2", filepath.Join(base, "n2"))
	cfg2.Join = []string{n1.GossipAddr()}
	n2 := mustStart(t, cfg2)
	cfg3 := testConfig(t, "n3", filepath.Join(base, "n3"))
	cfg3.Join = []string{n2.GossipAddr(), n1.GossipAddr()}
	n3 := mustStart(t, cfg3)
	nodes := []*testNode{n1, n2, n3}

	waitFor(t, 15*time.Second, "three voters", func() error {
		for _, n := range nodes {
			if v := voters(n); len(v) != 3 {
				return fmt.Errorf("%s sees voters %v", n.ID(), v)
			}
			if n.ClusterID() != cid {
				return fmt.Errorf("%s has cluster id %q, want %q", n.ID(), n.ClusterID(), cid)
			}
		}
		return nil
	})
	for _, m := range n2.Members() {
		if m.Health != cluster.HealthAlive || m.HTTPAddr == "" || m.GossipAddr == "" {
			t.Errorf("member %+v: want alive with addresses", m)
		}
	}

	// A write through a follower is forwarded; the follower answers once
	// the leader applied it, and a read through the same follower (the
	// default linearizable read) sees it.
	_, followers := leaderOf(t, nodes...)
	f := followers[0]
	wr, err := f.client().Create(ctx, "parts", api.WriteRequest{Data: value(t, map[string]any{"name": "R1", "qty": 3})})
	if err != nil {
		t.Fatalf("create through follower %s: %v", f.ID(), err)
	}
	if rec, err := f.client().Get(ctx, "parts", wr.Key); err != nil {
		t.Fatalf("follower does not read its own write: %v", err)
	} else if rec.Index != wr.Index {
		t.Errorf("record index %d, write index %d", rec.Index, wr.Index)
	}
	for _, n := range nodes {
		if err := n.FSM().WaitApplied(ctx, wr.Index); err != nil {
			t.Fatal(err)
		}
		if _, err := n.FSM().Get("parts", wr.Key); err != nil {
			t.Errorf("%s: %v", n.ID(), err)
		}
	}

	// Node.Apply on a follower: a state machine rejection is the result's
	// Err, not an error.
	res, err := f.Apply(ctx, &fsm.Command{Op: fsm.OpUpdate, Tree: "parts", Key: wr.Key, Client: "nobody", Data: value(t, 1)})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if res.Err == nil {
		t.Errorf("update without borrow accepted")
	}

	// A batch through a follower: forwarded whole, applied in order as
	// one log entry, one result per command at the entry's index; the
	// follower has it once it applied the index.
	batch := []*fsm.Command{
		{Op: fsm.OpCreate, Tree: "parts", Data: value(t, "b1")},
		{Op: fsm.OpUpdate, Tree: "parts", Key: wr.Key, Client: "nobody", Data: value(t, 2)},
		{Op: fsm.OpCreate, Tree: "parts", Data: value(t, "b2")},
	}
	results, err := f.ApplyMany(ctx, batch)
	if err != nil || len(results) != 3 {
		t.Fatalf("apply many: %v %v", results, err)
	}
	if results[0].Err != nil || results[1].Err == nil || results[2].Err != nil || results[2].Index != results[0].Index || results[1].Index != results[0].Index || results[2].Key.ID <= results[0].Key.ID {
		t.Fatalf("batch results %+v %+v %+v", results[0], results[1], results[2])
	}
	if err := f.FSM().WaitApplied(ctx, results[2].Index); err != nil {
		t.Fatal(err)
	}
	if _, err := f.FSM().Get("parts", results[2].Key); err != nil {
		t.Fatalf("follower does not read the batch: %v", err)
	}

	// The log stream of a follower has the create, in order.
	page, err := f.Log(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if page.ClusterID != cid || page.Next < wr.Index {
		t.Errorf("log page: cluster %q next %d, want %q and >= %d", page.ClusterID, page.Next, cid, wr.Index)
	}
	found := false
	for i, e := range page.Entries {
		if i > 0 && e.Index <= page.Entries[i-1].Index {
			t.Errorf("log entries out of order: %d after %d", e.Index, page.Entries[i-1].Index)
		}
		if e.Index == wr.Index {
			c, err := fsm.DecodeCommand(e.Data)
			if err != nil || c.Op != fsm.OpCreate {
				t.Errorf("entry %d: %v %v", e.Index, c, err)
			}
			found = true
		}
	}
	if !found {
		t.Errorf("create at %d not in the log page %+v", wr.Index, page)
	}

	// Leadership transfer asked of a follower is forwarded.
	if err := f.TransferLeadership(ctx, f.ID()); err != nil {
		t.Fatalf("transfer leadership to %s: %v", f.ID(), err)
	}
	waitFor(t, 10*time.Second, f.ID()+" to lead", func() error {
		if !f.IsLeader() {
			return errors.New("not yet")
		}
		return nil
	})

	// The leader crashes: another is elected and writes go on.
	leader, followers := leaderOf(t, nodes...)
	if err := leader.Crash(); err != nil {
		t.Fatal(err)
	}
	leader.once.Do(func() { _ = leader.srv.Close() })
	newLeader, rest := leaderOf(t, followers...)
	wr2, err := rest[0].client().Create(ctx, "parts", api.WriteRequest{Data: value(t, "after failover")})
	if err != nil {
		t.Fatalf("create after failover: %v", err)
	}
	for _, n := range followers {
		if err := n.FSM().WaitApplied(ctx, wr2.Index); err != nil {
			t.Fatal(err)
		}
	}
	// The crashed node stays a voter; gossip reports it dead.
	waitMember := func(on *testNode, id, suffrage string, health ...string) {
		t.Helper()
		waitFor(t, 10*time.Second, fmt.Sprintf("%s to see %s as %q/%q", on.ID(), id, suffrage, health), func() error {
			for _, m := range on.Members() {
				if m.ID == id {
					if m.Suffrage != suffrage || !slices.Contains(health, m.Health) {
						return fmt.Errorf("member %+v", m)
					}
					return nil
				}
			}
			return errors.New("not listed")
		})
	}
	waitMember(rest[0], leader.ID(), "Voter", cluster.HealthDead)

	// The operator removes it, through a follower.
	if err := rest[0].RemoveMember(ctx, leader.ID()); err != nil {
		t.Fatalf("remove member: %v", err)
	}
	waitFor(t, 5*time.Second, "two voters", func() error {
		if v := voters(newLeader); len(v) != 2 {
			return fmt.Errorf("voters %v", v)
		}
		return nil
	})
	if err := rest[0].RemoveMember(ctx, "nosuch"); !errors.Is(err, api.ErrUnknownMember) {
		t.Errorf("remove unknown member: %v, want ErrUnknownMember", err)
	}

	// Restarted with its data and no Join, it finds its peers from the
	// gossip addresses it saved, is added back and catches up.
	cfg := testConfig(t, leader.ID(), leader.dir)
	back := mustStart(t, cfg)
	nodes = []*testNode{back, newLeader, rest[0]}
	waitFor(t, 15*time.Second, "three voters again", func() error {
		for _, n := range nodes {
			if v := voters(n); len(v) != 3 {
				return fmt.Errorf("%s sees voters %v", n.ID(), v)
			}
		}
		return nil
	})
	if err := back.FSM().WaitApplied(ctx, wr2.Index); err != nil {
		t.Fatal(err)
	}
	if _, err := back.FSM().Get("parts", wr2.Key); err != nil {
		t.Errorf("restarted node: %v", err)
	}

	// A graceful stop of the leader hands leadership over; gossip reports
	// that it left (or, if the notice was lost, that it is dead).
	leader, followers = leaderOf(t, nodes...)
	leader.stop(t)
	_, rest = leaderOf(t, followers...)
	if _, err := rest[0].client().Create(ctx, "parts", api.WriteRequest{Data: value(t, "after stop")}); err != nil {
		t.Fatalf("create after graceful stop: %v", err)
	}
	// The leave notice is best effort (a UDP/TCP message racing the
	// shutdown): when it is lost the peer is reported dead, never alive.
	waitMember(rest[0], leader.ID(), "Voter", cluster.HealthLeft, cluster.HealthDead)
}

func TestWrongCluster(t *testing.T) {
	base := t.TempDir()
	cfgA := testConfig(t, "a1", filepath.Join(base, "a1"))
	cfgA.Bootstrap = true
	a1 := mustStart(t, cfgA)
	idA := waitCluster(t, a1)

	cfgB := testConfig(t, "b1", filepath.Join(base, "b1"))
	cfgB.Bootstrap = true
	b1 := mustStart(t, cfgB)
	idB := waitCluster(t, b1)
	b1.stop(t)

	// b1's data belongs to cluster B: joining A must fail.
	cfgB2 := testConfig(t, "b1", filepath.Join(base, "b1"))
	cfgB2.Join = []string{a1.GossipAddr()}
	_, err := startNode(t, cfgB2)
	if !errors.Is(err, api.ErrWrongCluster) {
		t.Fatalf("join with another cluster's data: err %v, want ErrWrongCluster", err)
	}
	if !strings.Contains(err.Error(), idA) || !strings.Contains(err.Error(), idB) {
		t.Errorf("error %q should name both cluster ids %s and %s", err, idA, idB)
	}
	for _, m := range a1.Members() {
		if m.ID == "b1" {
			t.Errorf("cluster A lists b1: %+v", m)
		}
	}

	// A fresh node joins A fine.
	cfgA2 := testConfig(t, "a2", filepath.Join(base, "a2"))
	cfgA2.Join = []string{a1.GossipAddr()}
	a2 := mustStart(t, cfgA2)
	waitFor(t, 10*time.Second, "a2 to be a voter of A", func() error {
		if a2.ClusterID() != idA || len(voters(a1)) != 2 {
			return fmt.Errorf("a2 cluster %q, voters %v", a2.ClusterID(), voters(a1))
		}
		return nil
	})
}

func TestRestartRestoresSnapshot(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "s1")
	cfg := testConfig(t, "s1", dir)
	cfg.Bootstrap = true
	n := mustStart(t, cfg)
	waitCluster(t, n)
	var keys []api.Key
	for i := range 5 {
		wr, err := n.client().Create(ctx, "t", api.WriteRequest{Data: value(t, i)})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, wr.Key)
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	wr, err := n.client().Create(ctx, "t", api.WriteRequest{Data: value(t, "after snapshot")})
	if err != nil {
		t.Fatal(err)
	}
	keys = append(keys, wr.Key)
	n.stop(t)

	// Lose the state machine file: the node restores the snapshot and
	// raft replays the rest of the log.
	if err := os.Remove(filepath.Join(dir, "fsm.db")); err != nil {
		t.Fatal(err)
	}
	cfg = testConfig(t, "s1", dir)
	n = mustStart(t, cfg)
	if err := n.FSM().WaitApplied(ctx, wr.Index); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if _, err := n.FSM().Get("t", k); err != nil {
			t.Errorf("after restart, %v: %v", k, err)
		}
	}
	if n.ClusterID() == "" {
		t.Error("cluster id lost")
	}
	// Restarting with Bootstrap and existing state just starts.
	n.stop(t)
	cfg = testConfig(t, "s1", dir)
	cfg.Bootstrap = true
	n = mustStart(t, cfg)
	waitCluster(t, n)
	if _, err := n.client().Create(ctx, "t", api.WriteRequest{Data: value(t, "again")}); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		cfg  cluster.Config
		want string
	}{
		{"no id", cluster.Config{DataDir: dir, RaftAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0"}, "node id"},
		{"no dir", cluster.Config{NodeID: "x", RaftAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0"}, "data dir"},
		{"unspecified raft", cluster.Config{NodeID: "x", DataDir: dir, RaftAddr: "0.0.0.0:7002", GossipAddr: "127.0.0.1:0"}, "raft address"},
		{"bad gossip", cluster.Config{NodeID: "x", DataDir: dir, RaftAddr: "127.0.0.1:0", GossipAddr: "nope"}, "gossip address"},
		{"neither bootstrap nor join", cluster.Config{NodeID: "x", DataDir: dir, RaftAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", Logger: testlog.New(t)}, "Bootstrap"},
		{"unknown log store", cluster.Config{NodeID: "x", DataDir: dir, RaftAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", LogStore: "leveldb"}, "unknown LogStore"},
		{"too many entries per append", cluster.Config{NodeID: "x", DataDir: dir, RaftAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", MaxAppendEntries: 4096}, "MaxAppendEntries"},
	}
	for _, c := range cases {
		_, err := cluster.New(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one mentioning %q", c.name, err, c.want)
		}
	}
}

// TestLaggingFollowerGetsSnapshot stops a follower, writes while it is
// away and compacts the leader's log, so that the follower can only catch
// up by raft's InstallSnapshot: its running state machine must be replaced
// by the leader's (fsm.Restore) and then follow the log again.
func TestLaggingFollowerGetsSnapshot(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	compact := func(c cluster.Config) cluster.Config {
		// raft-boltdb: raft-wal drops only whole segments (64 MiB), so
		// with it a follower this far behind catches up from the log.
		c.LogStore = cluster.LogStoreBolt
		c.TrailingLogs = 2
		c.SnapshotThreshold = 1 << 20 // snapshots only when the test asks
		return c
	}
	cfg1 := compact(testConfig(t, "n1", filepath.Join(base, "n1")))
	cfg1.Bootstrap = true
	n1 := mustStart(t, cfg1)
	waitCluster(t, n1)
	cfg2 := compact(testConfig(t, "n2", filepath.Join(base, "n2")))
	cfg2.Join = []string{n1.GossipAddr()}
	n2 := mustStart(t, cfg2)
	cfg3 := compact(testConfig(t, "n3", filepath.Join(base, "n3")))
	cfg3.Join = []string{n1.GossipAddr()}
	n3 := mustStart(t, cfg3)
	nodes := []*testNode{n1, n2, n3}
	waitFor(t, 15*time.Second, "three voters", func() error {
		for _, n := range nodes {
			if v := voters(n); len(v) != 3 {
				return fmt.Errorf("%s sees voters %v", n.ID(), v)
			}
		}
		return nil
	})
	leader, followers := leaderOf(t, nodes...)
	away := followers[0]
	before, err := leader.client().Create(ctx, "parts", api.WriteRequest{Data: value(t, "before")})
	if err != nil {
		t.Fatal(err)
	}
	if err := away.FSM().WaitApplied(ctx, before.Index); err != nil {
		t.Fatal(err)
	}
	awayCfg := compact(testConfig(t, away.ID(), away.dir))
	awayCfg.Join = []string{leader.GossipAddr()}
	if err := away.Crash(); err != nil {
		t.Fatal(err)
	}

	var keys []api.Key
	var last api.WriteResult
	for i := range 50 {
		if last, err = leader.client().Create(ctx, "parts", api.WriteRequest{Data: value(t, i)}); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, last.Key)
	}
	if err := leader.Snapshot(); err != nil {
		t.Fatal(err)
	}
	page, err := leader.Log(before.Index, 10)
	if err == nil || !errors.Is(err, api.ErrCompacted) {
		t.Fatalf("leader log after compaction: %+v, %v; want ErrCompacted", page, err)
	}

	back := mustStart(t, awayCfg)
	waitCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := back.FSM().WaitApplied(waitCtx, last.Index); err != nil {
		t.Fatalf("%s did not catch up: %v", back.ID(), err)
	}
	for _, k := range append(keys, before.Key) {
		if _, err := back.FSM().Get("parts", k); err != nil {
			t.Errorf("%s after snapshot install: %v: %v", back.ID(), k, err)
		}
	}
	// And it follows the log again afterwards.
	after, err := leader.client().Create(ctx, "parts", api.WriteRequest{Data: value(t, "after")})
	if err != nil {
		t.Fatal(err)
	}
	if err := back.FSM().WaitApplied(waitCtx, after.Index); err != nil {
		t.Fatal(err)
	}
	if _, err := back.FSM().Get("parts", after.Key); err != nil {
		t.Fatal(err)
	}
	// The events the snapshot skipped are not known there: a caller who
	// followed from before must start again.
	if p, err := back.Events(ctx, before.Index, 0, 0); !errors.Is(err, api.ErrCompacted) {
		t.Fatalf("%s events across the snapshot install: %+v, %v; want ErrCompacted", back.ID(), p, err)
	}
	// (WaitApplied above returns when the state machine has the entry, a
	// moment before its events reach the buffer: wait for them.)
	if p, err := back.Events(ctx, after.Index-1, 0, 5*time.Second); err != nil || len(p.Events) != 1 || p.Events[0].Key != after.Key {
		t.Fatalf("%s events after the snapshot install: %+v, %v", back.ID(), p, err)
	}
}

// A server removed by an operator while it runs stays out under every
// later leader (the removal is in the replicated state, not in the memory
// of the leader that removed it), and comes back once it restarts.
func TestRemovedMemberStaysOutAcrossLeaders(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	cfg1 := testConfig(t, "n1", filepath.Join(base, "n1"))
	cfg1.Bootstrap = true
	n1 := mustStart(t, cfg1)
	waitCluster(t, n1)
	var nodes = []*testNode{n1}
	for _, id := range []string{"n2", "n3"} {
		cfg := testConfig(t, id, filepath.Join(base, id))
		cfg.Join = []string{n1.GossipAddr()}
		nodes = append(nodes, mustStart(t, cfg))
	}
	waitFor(t, 15*time.Second, "three voters", func() error {
		for _, n := range nodes {
			if v := voters(n); len(v) != 3 {
				return fmt.Errorf("%s sees voters %v", n.ID(), v)
			}
		}
		return nil
	})
	leader, followers := leaderOf(t, nodes...)
	gone, other := followers[0], followers[1]
	if err := leader.RemoveMember(ctx, gone.ID()); err != nil {
		t.Fatalf("remove %s: %v", gone.ID(), err)
	}
	// Leadership moves at once, before the removed node can say in gossip
	// that it was removed; the new leader must still know.
	if err := leader.TransferLeadership(ctx, other.ID()); err != nil {
		t.Fatalf("transfer to %s: %v", other.ID(), err)
	}
	waitFor(t, 10*time.Second, other.ID()+" to lead", func() error {
		if !other.IsLeader() {
			return errors.New("not leading")
		}
		return nil
	})
	// Ten reconcile rounds of the new leader (ReconcileInterval 100ms).
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if v := voters(other); slices.Contains(v, gone.ID()) {
			t.Fatalf("the new leader added the removed %s back: voters %v", gone.ID(), v)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Restarted, it is a member again.
	gone.stop(t)
	cfg := testConfig(t, gone.ID(), gone.dir)
	cfg.Join = []string{other.GossipAddr()}
	back := mustStart(t, cfg)
	waitFor(t, 20*time.Second, gone.ID()+" back as a voter", func() error {
		if v := voters(other); !slices.Contains(v, back.ID()) {
			return fmt.Errorf("voters %v", v)
		}
		return nil
	})
}

// TestLogStoreKindIsKept starts a single node on each log store, stops it,
// and starts it again with the other kind: it must refuse with
// ErrOtherLogStore rather than start a second, empty log beside the real
// one; with its own kind it starts again and keeps its data.
func TestLogStoreKindIsKept(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []string{cluster.LogStoreBolt, cluster.LogStoreWAL} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, "n1", dir)
			cfg.Bootstrap, cfg.LogStore = true, kind
			n := mustStart(t, cfg)
			waitCluster(t, n)
			wr, err := n.client().Create(ctx, "parts", api.WriteRequest{Data: value(t, "kept")})
			if err != nil {
				t.Fatal(err)
			}
			n.stop(t)

			other := cfg
			other.LogStore = cluster.LogStoreWAL
			if kind == cluster.LogStoreWAL {
				other.LogStore = cluster.LogStoreBolt
			}
			if _, err := startNode(t, other); !errors.Is(err, cluster.ErrOtherLogStore) {
				t.Fatalf("started with LogStore %q on a %q data dir: err %v, want ErrOtherLogStore", other.LogStore, kind, err)
			}
			back := mustStart(t, cfg)
			waitCluster(t, back)
			if rec, err := back.client().Get(ctx, "parts", wr.Key); err != nil || rec.Index != wr.Index {
				t.Fatalf("after restart: %+v %v", rec, err)
			}
		})
	}
}
