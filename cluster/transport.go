package cluster

import "github.com/hashicorp/raft"

// serialTransport is the raft transport of a node: hashicorp/raft's
// NetworkTransport with the heartbeat fast path turned off.
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
// Embedding keeps NetworkTransport's other methods, so raft still sees the
// optional interfaces it supports (pre-vote, close).
type serialTransport struct {
	*raft.NetworkTransport
}

var (
	_ raft.Transport   = serialTransport{}
	_ raft.WithPreVote = serialTransport{}
	_ raft.WithClose   = serialTransport{}
)

// raftTransport returns the transport raft gets for nt.
func raftTransport(nt *raft.NetworkTransport) raft.Transport {
	return serialTransport{nt}
}

// SetHeartbeatHandler declines raft's heartbeat fast path: heartbeats
// reach raft's main loop through Consumer like every other RPC.
func (serialTransport) SetHeartbeatHandler(func(raft.RPC)) {}
