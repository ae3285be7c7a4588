package cluster

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/shelfdb/shelf/api"
)

// Observer receives measurements of a node's work, for metrics
// (Config.Observer; internal/metrics implements it). Its methods are
// called on the write path: they must be quick and must not block.
type Observer interface {
	// ObserveApply is called on the leader once a batch of count commands
	// it appended to the raft log is committed and applied (or failed), d
	// after the first raft.Apply.
	ObserveApply(count int, d time.Duration)
	// ObserveForward is called on a follower for every request forwarding
	// writes to the leader (path InternalApplyBatchPath: an ApplyMany
	// batch, or single writes coalesced), with the time the leader took
	// to answer and the error.
	ObserveForward(path string, d time.Duration, err error)
}

// observeApply reports a batch applied on the leader; use as
// defer n.observeApply(time.Now(), len(cmds)).
func (n *Node) observeApply(start time.Time, count int) {
	if o := n.cfg.Observer; o != nil {
		o.ObserveApply(count, time.Since(start))
	}
}

// Stats are a node's raft and state machine figures, cheap to read (no
// disk access but the snapshot listing): what the metrics endpoint shows.
type Stats struct {
	// State is raft's state: Leader, Follower, Candidate or Shutdown.
	State string
	// Term is raft's current term.
	Term uint64
	// CommitIndex is the highest log index this node knows committed.
	CommitIndex uint64
	// RaftAppliedIndex is the last index raft handed to the state machine
	// (no-op entries included); AppliedIndex the state machine's own,
	// which only command and configuration entries move.
	RaftAppliedIndex uint64
	AppliedIndex     uint64
	// LastLogIndex is the last index in the raft log.
	LastLogIndex uint64
	// Leader is the leader's id, "" for none; LeaderOK as in LeaderHealth;
	// LeaderContact how long ago a follower last heard from the leader.
	Leader        string
	LeaderOK      bool
	LeaderContact time.Duration
	// Snapshot is the newest raft snapshot on disk: its index and when it
	// was taken; HasSnapshot is false when there is none.
	HasSnapshot   bool
	SnapshotIndex uint64
	SnapshotTime  time.Time
	// RulesVersion is the state machine rules the cluster runs, as this
	// node has applied them.
	RulesVersion uint32
	// ClusterID is the cluster's id, "" until known.
	ClusterID string
}

// Stats returns the node's figures now.
func (n *Node) Stats() Stats {
	lh := n.LeaderHealth()
	s := Stats{
		State:            n.raft.State().String(),
		Term:             n.raft.CurrentTerm(),
		CommitIndex:      n.raft.CommitIndex(),
		RaftAppliedIndex: n.raft.AppliedIndex(),
		AppliedIndex:     n.fsm.AppliedIndex(),
		LastLogIndex:     n.raft.LastIndex(),
		Leader:           lh.Leader,
		LeaderOK:         lh.OK,
		LeaderContact:    lh.Contact,
		RulesVersion:     n.fsm.Rules(),
		ClusterID:        n.fsm.ClusterID(),
	}
	if snaps, err := n.snaps.List(); err == nil && len(snaps) > 0 {
		s.HasSnapshot, s.SnapshotIndex = true, snaps[0].Index
		s.SnapshotTime = snapshotTime(snaps[0].ID)
	}
	return s
}

// snapshotTime reads the time raft's file snapshot store writes into a
// snapshot's id (TERM-INDEX-UNIXMILLIS); zero if the id has another form.
func snapshotTime(id string) time.Time {
	i := strings.LastIndexByte(id, '-')
	if i < 0 {
		return time.Time{}
	}
	ms, err := strconv.ParseInt(id[i+1:], 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// DefaultReadyMaxLag is how many log entries a node may be behind the
// leader's commit index and still count as ready (Readiness).
const DefaultReadyMaxLag = 1000

// readinessTimeout bounds how long Readiness waits for the raft
// configuration and for the leader's commit index.
const readinessTimeout = 2 * time.Second

// Readiness tells whether this node is ready to serve: it is a member of
// the raft configuration of a cluster with an id, it knows a leader that
// it heard from recently (LeaderHealth.OK), and it has applied the
// leader's commit index, up to maxLag entries (DefaultReadyMaxLag when
// 0). A follower learns the leader's commit index by asking the leader
// (InternalReadIndexPath), within a couple of seconds.
func (n *Node) Readiness(ctx context.Context, maxLag uint64) api.Readiness {
	if maxLag == 0 {
		maxLag = DefaultReadyMaxLag
	}
	ctx, cancel := context.WithTimeout(ctx, readinessTimeout)
	defer cancel()
	r := api.Readiness{NodeID: n.cfg.NodeID, MaxLag: maxLag,
		AppliedIndex: max(n.raft.AppliedIndex(), n.fsm.AppliedIndex())}
	notReady := func(format string, args ...any) api.Readiness {
		r.Reason = fmt.Sprintf(format, args...)
		return r
	}
	if n.closed.Load() {
		return notReady("node is shutting down")
	}
	if err := n.FailedErr(); err != nil {
		return notReady("the state machine stopped: %v", err)
	}
	if n.removedSelf.Load() {
		return notReady("this node was removed from the raft configuration; restart it to rejoin")
	}
	f := n.raft.GetConfiguration()
	if err := waitFuture(ctx, f); err != nil {
		return notReady("cannot read the raft configuration: %v", err)
	}
	member := false
	for _, s := range f.Configuration().Servers {
		member = member || string(s.ID) == n.cfg.NodeID
	}
	if !member {
		return notReady("not a member of the raft configuration (yet): waiting for the leader to add it")
	}
	lh := n.LeaderHealth()
	r.Leader = lh.Leader
	switch {
	case lh.Leader == "":
		return notReady("no leader known")
	case !lh.OK:
		return notReady("leader %s not heard from for %s", lh.Leader, lh.Contact.Round(time.Millisecond))
	}
	if n.fsm.ClusterID() == "" {
		return notReady("cluster id not known yet")
	}
	if n.raft.State() == raft.Leader {
		r.LeaderCommitIndex = n.raft.CommitIndex()
	} else {
		addr, err := n.leaderHTTP()
		if err != nil {
			return notReady("%v", err)
		}
		var ans ReadIndex
		if err := n.call(ctx, http.MethodGet, addr, InternalReadIndexPath, nil, &ans); err != nil {
			if ctx.Err() != nil {
				return notReady("leader %s did not tell its commit index within %s", lh.Leader, readinessTimeout)
			}
			return notReady("cannot learn the commit index of leader %s: %v", lh.Leader, err)
		}
		r.LeaderCommitIndex = ans.Index
	}
	if r.LeaderCommitIndex > r.AppliedIndex {
		r.Lag = r.LeaderCommitIndex - r.AppliedIndex
	}
	if r.Lag > maxLag {
		return notReady("catching up: applied index %d, leader's commit index %d (%d behind, ready within %d)",
			r.AppliedIndex, r.LeaderCommitIndex, r.Lag, maxLag)
	}
	r.Ready = true
	return r
}
