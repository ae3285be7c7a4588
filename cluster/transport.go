package cluster

import (
	"sync"

	"github.com/hashicorp/raft"
)

// serialTransport is the raft transport of a node: hashicorp/raft's
// NetworkTransport with the heartbeat fast path turned off, and with the
// commit index of an AppendEntries delivered ahead of its entries.
//
// NetworkTransport hands heartbeats to a handler that raft installs with
// SetHeartbeatHandler; raft's handler (processHeartbeat) runs appendEntries
// on the transport's goroutine although that function must run on raft's
// main loop only. A heartbeat from a new leader can then raise the term of
// a deposed leader whose loop is idle or between reading the term and
// storing a batch: when that loop next takes queued writes, it stamps them
// with the new term at indexes the new leader also used, log matching
// accepts both, and the replicas diverge for good (hashicorp/raft issue
// 695; the fix upstream, PR 701, is not released in v1.7.3 or v1.8.0).
//
// Declining the handler sends every AppendEntries, heartbeats included,
// through Consumer to raft's main loop, which serialises it with the
// leader's own appends. A heartbeat then waits behind disk writes of the
// main loop; that costs nothing a follower needs, since the loop is where
// the heartbeat's effect (the term, the leader, last contact) must land.
//
// Commit notices: a follower learns that entries committed only from the
// LeaderCommitIndex of the leader's next AppendEntries, and raft applies
// it only after storing that request's new entries (a disk write). Under
// steady writes every AppendEntries carries entries, so each commit
// reached the follower's state machine (and the clients following it)
// one follower fsync late. Consumer therefore hands raft, before each
// AppendEntries with entries, the same request without its entries and
// with its commit index capped at PrevLogEntry: an AppendEntries the
// leader itself could have sent (same term, same log-matching check), so
// raft's own rules decide whether to take it, and raft commits at most up
// to an entry it has just checked against the leader's log. Its answer
// goes nowhere; the real request follows and is answered as before.
//
// Embedding keeps NetworkTransport's other methods, so raft still sees the
// optional interfaces it supports (pre-vote, close).
type serialTransport struct {
	*raft.NetworkTransport

	start sync.Once
	out   chan raft.RPC
	stop  chan struct{}
	close sync.Once
	wg    sync.WaitGroup
}

var (
	_ raft.Transport   = (*serialTransport)(nil)
	_ raft.WithPreVote = (*serialTransport)(nil)
	_ raft.WithClose   = (*serialTransport)(nil)
)

// raftTransport returns the transport raft gets for nt. Its Close closes
// nt too.
func raftTransport(nt *raft.NetworkTransport) *serialTransport {
	return &serialTransport{NetworkTransport: nt, out: make(chan raft.RPC), stop: make(chan struct{})}
}

// SetHeartbeatHandler declines raft's heartbeat fast path: heartbeats
// reach raft's main loop through Consumer like every other RPC.
func (*serialTransport) SetHeartbeatHandler(func(raft.RPC)) {}

// Consumer implements raft.Transport: the RPCs of the network transport,
// in order, each AppendEntries with entries preceded by its commit notice
// (see serialTransport). The goroutine that forwards them starts with the
// first call and stops with Close.
func (t *serialTransport) Consumer() <-chan raft.RPC {
	t.start.Do(func() {
		t.wg.Add(1)
		go t.forward(t.NetworkTransport.Consumer())
	})
	return t.out
}

// forward passes the RPCs of in to t.out until Close.
func (t *serialTransport) forward(in <-chan raft.RPC) {
	defer t.wg.Done()
	for {
		var rpc raft.RPC
		select {
		case rpc = <-in:
		case <-t.stop:
			return
		}
		if notice, ok := commitNotice(rpc); ok {
			select {
			case t.out <- notice:
			case <-t.stop:
				return
			}
		}
		select {
		case t.out <- rpc:
		case <-t.stop:
			return
		}
	}
}

// commitNotice returns the entry-less copy of an AppendEntries with
// entries that raft should see first (see serialTransport), or false when
// rpc is anything else or carries no commit index to deliver early.
func commitNotice(rpc raft.RPC) (raft.RPC, bool) {
	req, ok := rpc.Command.(*raft.AppendEntriesRequest)
	if !ok || len(req.Entries) == 0 || req.PrevLogEntry == 0 || req.LeaderCommitIndex == 0 {
		return raft.RPC{}, false
	}
	// A copy keeps every field of the request (term, leader, log check)
	// but the entries and the commit index.
	notice := *req
	notice.Entries = nil
	notice.LeaderCommitIndex = min(req.LeaderCommitIndex, req.PrevLogEntry)
	// raft answers into RespChan without waiting: a buffer of one holds
	// the answer nobody reads.
	return raft.RPC{Command: &notice, RespChan: make(chan raft.RPCResponse, 1)}, true
}

// Close implements raft.WithClose: it stops the forwarding goroutine and
// closes the network transport. Raft calls it on shutdown, the node again
// when it stops; the second call does nothing.
func (t *serialTransport) Close() error {
	var err error
	t.close.Do(func() {
		close(t.stop)
		t.wg.Wait()
		err = t.NetworkTransport.Close()
	})
	return err
}
