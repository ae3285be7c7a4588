package cluster

import (
	"testing"

	"github.com/hashicorp/raft"
)

// A follower must never take a commit index beyond the entry the leader's
// request lets it check (PrevLogEntry): the commit notice raft sees before
// an AppendEntries with entries carries the same term and log-matching
// check, no entries, and a commit index capped there.
func TestCommitNoticeCapsCommitAtCheckedEntry(t *testing.T) {
	entries := []*raft.Log{{Index: 11, Term: 3}, {Index: 12, Term: 3}}
	for _, c := range []struct {
		name       string
		commit     uint64
		wantCommit uint64
	}{
		{"commit behind the checked entry", 7, 7},
		{"commit at the checked entry", 10, 10},
		{"commit inside the new entries", 12, 10},
	} {
		req := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("n1"), Addr: []byte("127.0.0.1:7000")}, Term: 3, PrevLogEntry: 10, PrevLogTerm: 2,
			Entries: entries, LeaderCommitIndex: c.commit}
		notice, ok := commitNotice(raft.RPC{Command: req})
		if !ok {
			t.Fatalf("%s: no commit notice", c.name)
		}
		got, isAE := notice.Command.(*raft.AppendEntriesRequest)
		if !isAE {
			t.Fatalf("%s: notice is a %T", c.name, notice.Command)
		}
		if len(got.Entries) != 0 || got.Term != 3 || got.PrevLogEntry != 10 || got.PrevLogTerm != 2 || string(got.ID) != "n1" || string(got.Addr) != "127.0.0.1:7000" {
			t.Errorf("%s: notice %+v, want the request's term and log check without entries", c.name, got)
		}
		if got.LeaderCommitIndex != c.wantCommit {
			t.Errorf("%s: notice commits up to %d, want %d", c.name, got.LeaderCommitIndex, c.wantCommit)
		}
		if len(req.Entries) != 2 || req.LeaderCommitIndex != c.commit {
			t.Errorf("%s: the request itself changed: %+v", c.name, req)
		}
		// raft answers the notice without blocking, and nobody reads it.
		notice.Respond(&raft.AppendEntriesResponse{}, nil)
	}
}

// Heartbeats, requests without entries or without a commit index, the
// first request of a log, and other RPCs go to raft as they are, alone.
func TestCommitNoticeOnlyForEntriesWithCommit(t *testing.T) {
	for name, cmd := range map[string]any{
		"heartbeat":        &raft.AppendEntriesRequest{Term: 3},
		"no entries":       &raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 10, LeaderCommitIndex: 9},
		"no commit":        &raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 10, Entries: []*raft.Log{{Index: 11}}},
		"first entries":    &raft.AppendEntriesRequest{Term: 3, Entries: []*raft.Log{{Index: 1}}, LeaderCommitIndex: 1},
		"vote":             &raft.RequestVoteRequest{Term: 3},
		"install snapshot": &raft.InstallSnapshotRequest{Term: 3},
	} {
		if _, ok := commitNotice(raft.RPC{Command: cmd}); ok {
			t.Errorf("%s: got a commit notice", name)
		}
	}
}
