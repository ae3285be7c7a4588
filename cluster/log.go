package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/raft"
	"github.com/shelfdb/shelf/api"
)

// MaxLogPageBytes bounds the command data of one Log page: a page stops
// before the entry that would take it over, but always holds at least one
// entry (so that one large entry still gets through).
const MaxLogPageBytes = 4 << 20

// LeaderHealth is how a node sees the raft leader.
type LeaderHealth struct {
	// Leader is the leader's id, "" when the node knows none.
	Leader string
	// Contact is how long ago the node last heard from the leader: 0 on
	// the leader itself and on a node that never heard from one.
	Contact time.Duration
	// OK says a leader is known and, unless this node is the leader, was
	// heard from within Config.LeaderStaleAfter. A node without it is cut
	// off from the cluster: its log may be behind and writes through it
	// fail with no_leader.
	OK bool
}

// LeaderHealth returns how this node sees the raft leader right now.
func (n *Node) LeaderHealth() LeaderHealth {
	_, id := n.raft.LeaderWithID()
	h := LeaderHealth{Leader: string(id)}
	if n.raft.State() == raft.Leader {
		h.OK = true
		return h
	}
	if last := n.raft.LastContact(); !last.IsZero() {
		h.Contact = time.Since(last)
		h.OK = h.Leader != "" && h.Contact <= n.staleAfter
	}
	return h
}

// Bounds of WaitLog: a node without a leader answers a long poll within
// leaderlessWait; leader health is looked at every pollSlice.
const (
	leaderlessWait = time.Second
	pollSlice      = 100 * time.Millisecond
)

// WaitLog waits until this node has applied entry index, until its leader
// health (LeaderHealth.OK) changes, or until ctx ends; on a node without a
// leader it waits at most a second, so that a client following it soon
// learns, and acts on, what the next Log page says. It returns nil when
// the wait ended before ctx, else ctx's error (wrapped).
func (n *Node) WaitLog(ctx context.Context, index uint64) error {
	ok := n.LeaderHealth().OK
	if !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, leaderlessWait)
		defer cancel()
	}
	for {
		sctx, cancel := context.WithTimeout(ctx, pollSlice)
		err := n.fsm.WaitApplied(sctx, index)
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return err
		case !errors.Is(err, context.DeadlineExceeded):
			return err
		case n.LeaderHealth().OK != ok:
			return nil
		}
	}
}

// Log returns the command entries of the replicated log after index from,
// in order, at most limit of them and at most MaxLogPageBytes of data
// (see there): what a client replica applies to
// follow the cluster. Only entries this node has applied are served, so
// a replica that applies the page and sets its index to Next stands where
// this node's state machine stands (same index, same content hash). Next
// is the last index scanned; non-command entries (configuration changes)
// are skipped but advance Next. Raft's own no-op and barrier entries never
// reach a state machine, so a log that ends with them is served up to the
// last applied entry, as the node's own state is.
//
// The page also carries this node's LeaderHealth (see api.LogPage).
//
// If raft no longer keeps entry from+1 (the log was compacted after a
// snapshot), the error is api.ErrCompacted: the replica must take a
// snapshot first.
func (n *Node) Log(from uint64, limit int) (api.LogPage, error) {
	if limit <= 0 {
		limit = 1000
	}
	lh := n.LeaderHealth()
	page := api.LogPage{ClusterID: n.fsm.ClusterID(), Entries: []api.LogEntry{}, Next: from,
		Leader: lh.Leader, LeaderContactMS: lh.Contact.Milliseconds(), NoLeader: !lh.OK}
	applied := n.fsm.AppliedIndex()
	hi := applied
	if from >= hi {
		return page, nil
	}
	first, err := n.store.FirstIndex()
	if err != nil {
		return page, api.Errorf(api.CodeInternal, "raft log: %v", err)
	}
	if first == 0 || from+1 < first {
		if from < applied {
			return page, api.Errorf(api.CodeCompacted, "log entry %d is compacted (oldest kept: %d); fetch a snapshot", from+1, first)
		}
		// Nothing this node applied is missing; the rest is not here yet.
		if first == 0 {
			return page, nil
		}
	}
	bytes := 0
	for i := from + 1; i <= hi; i++ {
		var l raft.Log
		if err := n.logs.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				if i <= applied {
					return page, api.Errorf(api.CodeCompacted, "log entry %d is compacted; fetch a snapshot", i)
				}
				break
			}
			return page, api.Errorf(api.CodeInternal, "raft log entry %d: %v", i, err)
		}
		if l.Type == raft.LogCommand {
			if i > applied {
				break // committed but not applied here yet
			}
			if len(page.Entries) > 0 && bytes+len(l.Data) > MaxLogPageBytes {
				break
			}
			bytes += len(l.Data)
			page.Entries = append(page.Entries, api.LogEntry{Index: l.Index, Data: l.Data})
		}
		page.Next = i
		if len(page.Entries) >= limit {
			break
		}
	}
	return page, nil
}
