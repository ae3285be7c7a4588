package faults

import (
	"bytes"
	"fmt"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

// raftLog is a node's raft log store, opened read-only.
type raftLog struct {
	id          string
	store       *raftboltdb.BoltStore
	first, last uint64
}

func openRaftLog(id, dataDir string) (*raftLog, error) {
	path := filepath.Join(dataDir, "raft.db")
	s, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second}})
	if err != nil {
		return nil, fmt.Errorf("open %s's raft log %s: %w", id, path, err)
	}
	l := &raftLog{id: id, store: s}
	if l.first, err = s.FirstIndex(); err == nil {
		l.last, err = s.LastIndex()
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("%s's raft log: %w", id, err)
	}
	return l, nil
}

// checkRaftLogs compares the raft logs of stopped nodes entry by entry
// (index, term, type, data) from the highest first index to commit, the
// smallest commit index the nodes reported: committed entries must be the
// same everywhere. It reports the first divergent index of each node
// against the first node.
func checkRaftLogs(nodes []*node, commit uint64, r *report) {
	var logs []*raftLog
	defer func() {
		for _, l := range logs {
			l.store.Close()
		}
	}()
	from := uint64(1)
	to := commit
	for _, n := range nodes {
		l, err := openRaftLog(n.ID, n.Dir)
		if err != nil {
			r.fail("raft-logs", "%v", err)
			return
		}
		logs = append(logs, l)
		from = max(from, l.first)
		to = min(to, l.last)
	}
	if to < commit {
		r.note("raft logs: committed index %d, but a log ends at %d", commit, to)
	}
	ref := logs[0]
	for _, l := range logs[1:] {
		diverged := 0
		var first string
		for idx := from; idx <= to; idx++ {
			var a, b raft.Log
			errA, errB := ref.store.GetLog(idx, &a), l.store.GetLog(idx, &b)
			if errA != nil || errB != nil {
				r.fail("raft-logs", "index %d: %s: %v, %s: %v", idx, ref.id, errA, l.id, errB)
				break
			}
			if a.Index != b.Index || a.Term != b.Term || a.Type != b.Type || !bytes.Equal(a.Data, b.Data) {
				diverged++
				if first == "" {
					first = fmt.Sprintf("index %d: %s has term %d %v (%d bytes), %s has term %d %v (%d bytes)",
						idx, ref.id, a.Term, a.Type, len(a.Data), l.id, b.Term, b.Type, len(b.Data))
				}
			}
		}
		r.count("raft-logs", int(to-from+1))
		if diverged > 0 {
			r.fail("raft-logs", "%s and %s differ at %d committed indexes of [%d, %d]; first %s", ref.id, l.id, diverged, from, to, first)
		}
	}
}
