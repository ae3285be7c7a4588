package cluster

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/shelfdb/shelf/api"
)

// InternalReadIndexPath is the HTTP route followers ask the leader's read
// index on.
const InternalReadIndexPath = "/v1/internal/read-index"

// ReadIndex is the answer of InternalReadIndexPath: an index that covers
// every write acknowledged before the request reached the leader.
type ReadIndex struct {
	Index uint64 `codec:"i" json:"index"`
}

// ReadBarrier makes the next read on this node linearizable: when it
// returns nil, this node's state machine reflects every write that any
// node acknowledged before ReadBarrier was called.
//
// It is raft's read-index protocol. The leader takes its commit index,
// confirms with a quorum round (VerifyLeader) that it still leads, and
// waits until its state machine has applied that index; concurrent reads
// share one round. A follower asks the leader for that index and waits
// until it has applied as far. A node that cannot reach a leader that
// confirms itself within ctx and Config.ReadTimeout answers with a
// no_leader (or unavailable) error, never with old data.
func (n *Node) ReadBarrier(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ReadTimeout)
	defer cancel()
	var index uint64
	err := n.withLeader(ctx,
		func(ctx context.Context) error {
			var err error
			index, err = n.reads.readIndex(ctx)
			return err
		},
		func(ctx context.Context, addr string) error {
			var ans ReadIndex
			if err := n.call(ctx, http.MethodGet, addr, InternalReadIndexPath, nil, &ans); err != nil {
				return err
			}
			index = ans.Index
			return nil
		})
	if err != nil {
		return err
	}
	return n.waitCovered(ctx, index)
}

// LeaderReadIndex serves InternalReadIndexPath: the read index of this
// node if it is the leader and a quorum confirms it, no_leader otherwise.
func (n *Node) LeaderReadIndex(ctx context.Context) (ReadIndex, error) {
	if n.closed.Load() {
		return ReadIndex{}, unavailable("node %s is shutting down", n.cfg.NodeID)
	}
	if n.raft.State() != raft.Leader {
		return ReadIndex{}, noLeader("node %s is not the leader", n.cfg.NodeID)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ReadTimeout)
	defer cancel()
	index, err := n.reads.readIndex(ctx)
	return ReadIndex{Index: index}, err
}

// WaitIndex waits until this node's state machine has applied index, for
// a read that asks for at least that index (min_index). It waits within
// ctx and Config.ReadTimeout.
func (n *Node) WaitIndex(ctx context.Context, index uint64) error {
	if n.fsm.AppliedIndex() >= index {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ReadTimeout)
	defer cancel()
	if err := n.fsm.WaitApplied(ctx, index); err != nil {
		return unavailable("node %s has not reached index %d: %v", n.cfg.NodeID, index, err)
	}
	return nil
}

// waitCovered waits until the state machine reflects every entry up to
// index. Raft hands committed entries to the state machine in order and
// counts them in AppliedIndex as it hands them over; entries that never
// reach a state machine (no-ops, barriers) do not move fsm.AppliedIndex,
// so the wait is for the last entry at or below index that does.
func (n *Node) waitCovered(ctx context.Context, index uint64) error {
	if n.fsm.AppliedIndex() >= index {
		return nil
	}
	if n.raft.AppliedIndex() < index {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for n.raft.AppliedIndex() < index && n.fsm.AppliedIndex() < index {
			select {
			case <-ctx.Done():
				return unavailable("node %s has not applied index %d (applied %d): %v", n.cfg.NodeID, index, n.fsm.AppliedIndex(), ctx.Err())
			case <-n.shutdownCh:
				return unavailable("node %s is shutting down", n.cfg.NodeID)
			case <-t.C:
			}
		}
	}
	for i := index; i > n.fsm.AppliedIndex(); i-- {
		var l raft.Log
		if err := n.logs.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				// Compacted: a snapshot at or above i is in the state.
				return nil
			}
			return api.Errorf(api.CodeInternal, "raft log entry %d: %v", i, err)
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			if err := n.fsm.WaitApplied(ctx, i); err != nil {
				return unavailable("node %s has not applied index %d: %v", n.cfg.NodeID, i, err)
			}
			return nil
		}
	}
	return nil
}

// readIndexer answers the leader's read index. Reads that arrive while a
// quorum round runs wait for the next one, which serves all of them: the
// commit index it takes is then at least as new as every write
// acknowledged before any of them arrived.
type readIndexer struct {
	n *Node

	mu      sync.Mutex
	running bool
	waiting []chan readResult

	termMu    sync.Mutex
	readyTerm uint64 // the term in which this node committed its first entry as leader
}

type readResult struct {
	index uint64
	err   error
}

// readIndex returns the leader's read index, or an error if this node
// cannot confirm that it leads.
func (r *readIndexer) readIndex(ctx context.Context) (uint64, error) {
	ch := make(chan readResult, 1)
	r.mu.Lock()
	r.waiting = append(r.waiting, ch)
	if !r.running {
		r.running = true
		go r.rounds()
	}
	r.mu.Unlock()
	select {
	case res := <-ch:
		return res.index, res.err
	case <-ctx.Done():
		return 0, unavailable("node %s could not confirm its leadership in time: %v", r.n.cfg.NodeID, ctx.Err())
	}
}

// rounds runs quorum rounds while reads wait for one; it ends when none
// does. Each round is bounded by Config.ReadTimeout.
func (r *readIndexer) rounds() {
	for {
		r.mu.Lock()
		batch := r.waiting
		r.waiting = nil
		if len(batch) == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		index, err := r.round()
		for _, ch := range batch {
			ch <- readResult{index, err}
		}
	}
}

// round is one confirmation: the commit index taken before a quorum
// confirms that this node still leads in the same term.
func (r *readIndexer) round() (uint64, error) {
	n := r.n
	term := n.raft.CurrentTerm()
	if n.raft.State() != raft.Leader {
		return 0, noLeader("node %s is not the leader", n.cfg.NodeID)
	}
	if err := r.termCommitted(term); err != nil {
		return 0, err
	}
	index := n.raft.CommitIndex()
	if err := waitRaftFuture(n.raft.VerifyLeader(), n.cfg.ReadTimeout); err != nil {
		return 0, noLeader("node %s could not confirm that it leads: %v", n.cfg.NodeID, err)
	}
	if n.raft.CurrentTerm() != term {
		return 0, noLeader("leadership of node %s changed during the read", n.cfg.NodeID)
	}
	return index, nil
}

// termCommitted makes sure this leader has committed an entry of its own
// term: until then its commit index may be older than what the previous
// leader acknowledged. A barrier, once per term.
func (r *readIndexer) termCommitted(term uint64) error {
	r.termMu.Lock()
	defer r.termMu.Unlock()
	if r.readyTerm == term {
		return nil
	}
	n := r.n
	if err := waitRaftFuture(n.raft.Barrier(n.cfg.ReadTimeout), n.cfg.ReadTimeout); err != nil {
		return noLeader("node %s could not commit an entry of its term: %v", n.cfg.NodeID, err)
	}
	if n.raft.CurrentTerm() != term {
		return noLeader("leadership of node %s changed during the read", n.cfg.NodeID)
	}
	r.readyTerm = term
	return nil
}

// errTimedOut is waitRaftFuture's error when the future did not finish.
var errTimedOut = errors.New("timed out")

// waitRaftFuture waits for f at most d.
func waitRaftFuture(f raft.Future, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return errTimedOut
	}
}
