package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TestDeposedLeaderCannotReuseNewTerm replays, deterministically, the
// schedule that made replicas diverge for good (hashicorp/raft issue 695):
//
//  1. Leader L1 (term T) is cut off: its heartbeats are lost on the way
//     out (it believes they arrived, so its lease holds and it stays
//     leader), everything else it sends fails, and the others send it
//     nothing but heartbeats. The others elect L2 in term T+1, which
//     commits entries at indexes L1 also has free.
//  2. L2's heartbeats reach L1. With raft's heartbeat fast path they are
//     handled on the transport goroutine and raise L1's term to T+1 while
//     L1's leader loop sits idle.
//  3. A write arrives at L1. Its leader loop wakes, stamps the write with
//     the term it now reads — T+1 — and stores it at an index L2 used.
//  4. The cut heals. L2 replicates; log matching sees the same index and
//     term on both sides and keeps L1's entry: different entries at the
//     same index and term, and L1 applies its own as committed.
//
// With the node's transport (raftTransport) heartbeats go through raft's
// main loop, so L1 steps down before it can take the write, or writes it
// under term T where it is overwritten: every log ends identical.
func TestDeposedLeaderCannotReuseNewTerm(t *testing.T) {
	nodes := startRaftTrio(t)
	l1 := waitRaftLeader(t, nodes, nil)
	for i := range 3 {
		if err := l1.r.Apply(fmt.Appendf(nil, "before-%d", i), 5*time.Second).Error(); err != nil {
			t.Fatalf("apply through %s: %v", l1.id, err)
		}
	}
	waitRaft(t, "every node applied the first writes", func() bool {
		for _, n := range nodes {
			if n.fsm.count() < 3 {
				return false
			}
		}
		return true
	})
	oldTerm := l1.r.CurrentTerm()

	// 1. Cut L1 off; the others elect a new leader and commit writes.
	l1.cutOut.Store(true)
	for _, n := range nodes {
		if n != l1 {
			n.onlyHeartbeatsTo.Store(string(l1.id))
		}
	}
	l2 := waitRaftLeader(t, nodes, l1)
	for i := range 3 {
		if err := l2.r.Apply(fmt.Appendf(nil, "new-leader-%d", i), 5*time.Second).Error(); err != nil {
			t.Fatalf("apply through new leader %s: %v", l2.id, err)
		}
	}

	// 2. L2's heartbeats reach L1 and its term moves on.
	waitRaft(t, "the old leader heard of the new term", func() bool { return l1.r.CurrentTerm() > oldTerm })

	// 3. Writes reach the old leader right after. Whatever it answers,
	// none may be acknowledged: it no longer leads.
	var futures []raft.ApplyFuture
	for i := range 5 {
		futures = append(futures, l1.r.Apply(fmt.Appendf(nil, "old-leader-%d", i), 2*time.Second))
	}
	for i, f := range futures {
		if err := f.Error(); err == nil {
			t.Errorf("write %d through the deposed leader %s was acknowledged", i, l1.id)
		}
	}

	// 4. Heal, let L2 replicate to everyone, and compare the logs.
	l1.cutOut.Store(false)
	for _, n := range nodes {
		n.onlyHeartbeatsTo.Store("")
	}
	if err := l2.r.Apply([]byte("after-heal"), 5*time.Second).Error(); err != nil {
		t.Fatalf("apply after heal: %v", err)
	}
	commit := l2.r.CommitIndex()
	waitRaft(t, "every node applied the new leader's log", func() bool {
		for _, n := range nodes {
			if n.r.AppliedIndex() < commit {
				return false
			}
		}
		return true
	})
	for idx := uint64(1); idx <= commit; idx++ {
		var want raft.Log
		if err := l2.logs.GetLog(idx, &want); err != nil {
			t.Fatalf("%s: log %d: %v", l2.id, idx, err)
		}
		for _, n := range nodes {
			var got raft.Log
			if err := n.logs.GetLog(idx, &got); err != nil {
				t.Fatalf("%s: log %d: %v", n.id, idx, err)
			}
			if got.Term != want.Term || got.Type != want.Type || !bytes.Equal(got.Data, want.Data) {
				t.Errorf("logs diverge at index %d: %s has term %d %s %q, %s has term %d %s %q",
					idx, n.id, got.Term, got.Type, got.Data, l2.id, want.Term, want.Type, want.Data)
			}
		}
	}
	// Raft counts an entry applied when it hands it to the state machine:
	// give each state machine a moment to take it, then compare.
	want := l2.fsm.all()
	for _, n := range nodes {
		deadline := time.Now().Add(10 * time.Second)
		for n.fsm.count() < len(want) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if got := n.fsm.all(); !equalStrings(got, want) {
			t.Errorf("state of %s differs from the leader's:\n got %q\nwant %q", n.id, got, want)
		}
	}
}

// raftTestNode is one raft instance of the trio, on real TCP with the
// node's transport under a fault-injecting wrapper.
type raftTestNode struct {
	id   raft.ServerID
	r    *raft.Raft
	logs *raft.InmemStore
	fsm  *listFSM
	// cutOut drops everything this node sends: its heartbeats are
	// answered as if they arrived (so it keeps its lease), other RPCs fail.
	cutOut atomic.Bool
	// onlyHeartbeatsTo names a peer to which this node sends nothing but
	// heartbeats; other RPCs to it fail.
	onlyHeartbeatsTo atomic.Value
}

func startRaftTrio(t *testing.T) []*raftTestNode {
	t.Helper()
	var (
		nodes  []*raftTestNode
		trans  []*raft.NetworkTransport
		serial []*serialTransport
		conf   raft.Configuration
	)
	for i := range 3 {
		nt, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 3, 5*time.Second, hclog.NewNullLogger())
		if err != nil {
			t.Fatalf("transport: %v", err)
		}
		trans = append(trans, nt)
		n := &raftTestNode{id: raft.ServerID(fmt.Sprintf("n%d", i)), logs: raft.NewInmemStore(), fsm: &listFSM{}}
		n.onlyHeartbeatsTo.Store("")
		nodes = append(nodes, n)
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: n.id, Address: nt.LocalAddr()})
	}
	for i, n := range nodes {
		rc := raft.DefaultConfig()
		rc.LocalID = n.id
		rc.Logger = hclog.NewNullLogger()
		rc.HeartbeatTimeout = 500 * time.Millisecond
		rc.ElectionTimeout = 500 * time.Millisecond
		rc.LeaderLeaseTimeout = 500 * time.Millisecond
		rc.CommitTimeout = 20 * time.Millisecond
		st := raftTransport(trans[i])
		serial = append(serial, st)
		tr := &faultTransport{Transport: st, node: n}
		snaps := raft.NewInmemSnapshotStore()
		if err := raft.BootstrapCluster(rc, n.logs, n.logs, snaps, tr, conf); err != nil {
			t.Fatalf("bootstrap %s: %v", n.id, err)
		}
		r, err := raft.NewRaft(rc, n.fsm, n.logs, n.logs, snaps, tr)
		if err != nil {
			t.Fatalf("raft %s: %v", n.id, err)
		}
		n.r = r
	}
	t.Cleanup(func() {
		for i, n := range nodes {
			n.cutOut.Store(false)
			n.onlyHeartbeatsTo.Store("")
			done := make(chan error, 1)
			go func() { done <- n.r.Shutdown().Error() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("shutdown %s: %v", n.id, err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("shutdown of %s did not finish in 10s", n.id)
			}
			_ = serial[i].Close() // closes trans[i] too
		}
	})
	return nodes
}

// waitRaftLeader waits until a node other than not leads, and returns it.
func waitRaftLeader(t *testing.T, nodes []*raftTestNode, not *raftTestNode) *raftTestNode {
	t.Helper()
	var leader *raftTestNode
	waitRaft(t, "a leader", func() bool {
		for _, n := range nodes {
			if n != not && n.r.State() == raft.Leader {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

func waitRaft(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// faultTransport wraps a node's transport and drops what the node's
// flags say, as a partition would.
type faultTransport struct {
	raft.Transport
	node *raftTestNode
}

var errCut = errors.New("test partition: message dropped")

func isHeartbeat(a *raft.AppendEntriesRequest) bool {
	return a.PrevLogEntry == 0 && a.PrevLogTerm == 0 && len(a.Entries) == 0 && a.LeaderCommitIndex == 0
}

// blocked reports whether an RPC to id is dropped; heartbeat tells
// whether it is one.
func (f *faultTransport) blocked(id raft.ServerID, heartbeat bool) bool {
	if f.node.cutOut.Load() {
		return true
	}
	return !heartbeat && f.node.onlyHeartbeatsTo.Load().(string) == string(id)
}

func (f *faultTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	hb := isHeartbeat(args)
	if f.node.cutOut.Load() && hb {
		*resp = raft.AppendEntriesResponse{Term: args.Term, Success: true}
		return nil
	}
	if f.blocked(id, hb) {
		return errCut
	}
	return f.Transport.AppendEntries(id, target, args, resp)
}

// AppendEntriesPipeline is refused so that every AppendEntries goes
// through AppendEntries above.
func (f *faultTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

func (f *faultTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	if f.blocked(id, false) {
		return errCut
	}
	return f.Transport.RequestVote(id, target, args, resp)
}

func (f *faultTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	if f.blocked(id, false) {
		return errCut
	}
	return f.Transport.(raft.WithPreVote).RequestPreVote(id, target, args, resp)
}

func (f *faultTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	if f.blocked(id, false) {
		return errCut
	}
	return f.Transport.InstallSnapshot(id, target, args, resp, data)
}

func (f *faultTransport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	if f.blocked(id, false) {
		return errCut
	}
	return f.Transport.TimeoutNow(id, target, args, resp)
}

// listFSM records the applied commands in order.
type listFSM struct {
	mu   sync.Mutex
	cmds []string
}

func (l *listFSM) Apply(log *raft.Log) any {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cmds = append(l.cmds, string(log.Data))
	return nil
}

func (l *listFSM) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.cmds)
}

func (l *listFSM) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.cmds...)
}

func (l *listFSM) Snapshot() (raft.FSMSnapshot, error) {
	return nil, errors.New("listFSM: no snapshots in this test")
}

func (l *listFSM) Restore(io.ReadCloser) error {
	return errors.New("listFSM: no snapshots in this test")
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
