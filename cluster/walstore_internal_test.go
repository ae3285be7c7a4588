package cluster

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/hashicorp/raft"
)

// openTestWAL opens the raft-wal log of a node in dataDir as New does.
func openTestWAL(t *testing.T, dataDir string) *Node {
	t.Helper()
	n := &Node{cfg: Config{DataDir: dataDir, NodeID: "s1", LogStore: LogStoreWAL}, log: slog.New(slog.DiscardHandler)}
	if err := n.openLogStore(); err != nil {
		t.Fatal(err)
	}
	return n
}

func walEntries(term uint64, from, to uint64) []*raft.Log {
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("t%d-%d", term, i))})
	}
	return logs
}

// TestWALSuffixDeletionSurvivesRestart does what a follower does when a
// new leader's log conflicts with its newest entries (raft: "clearing log
// suffix"), then restarts. raft-wal v0.4.0 marked the truncated segment
// sealed without writing its index block, so after a restart every entry
// of it was unreadable ("sealed segment has no index block") and raft
// panicked in NewRaft (hashicorp/raft-wal issue 31, fixed in v0.4.1 by
// PR 33). The fault suite found it with -faults.raftlog=wal.
func TestWALSuffixDeletionSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	n := openTestWAL(t, dir)
	if err := n.store.StoreLogs(walEntries(1, 1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := n.store.DeleteRange(8, 10); err != nil {
		t.Fatal(err)
	}
	if err := n.store.StoreLogs(walEntries(2, 8, 9)); err != nil {
		t.Fatal(err)
	}
	if err := n.store.Close(); err != nil {
		t.Fatal(err)
	}
	n = openTestWAL(t, dir)
	defer n.store.Close()
	if last, err := n.store.LastIndex(); err != nil || last != 9 {
		t.Fatalf("last index %d, %v; want 9", last, err)
	}
	for i := uint64(1); i <= 9; i++ {
		var l raft.Log
		if err := n.store.GetLog(i, &l); err != nil {
			t.Fatalf("entry %d after the restart: %v", i, err)
		}
		want := fmt.Sprintf("t%d-%d", map[bool]uint64{true: 1, false: 2}[i < 8], i)
		if string(l.Data) != want {
			t.Errorf("entry %d: %q, want %q", i, l.Data, want)
		}
	}
}
