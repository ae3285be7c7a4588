package faults

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	bolt "go.etcd.io/bbolt"
)

// raftLogReader is what checkRaftLogs reads of a log store.
type raftLogReader interface {
	raft.LogStore
	Close() error
}

// raftLog is a node's raft log store, opened without changing the node's
// files.
type raftLog struct {
	id          string
	store       raftLogReader
	first, last uint64
}

// openRaftLog opens the raft log in dataDir: raft.db read-only with
// raft-boltdb, or, when the directory holds raft-wal/ instead, a copy of
// raft-wal/ (raft-wal has no read-only mode: opening it recovers the tail
// segment and deletes unused segment files, which must not touch the
// node's own files). The caller closes it.
func openRaftLog(id, dataDir string) (*raftLog, error) {
	var (
		s    raftLogReader
		path string
		err  error
	)
	if walPath := filepath.Join(dataDir, "raft-wal"); exists(walPath) {
		path = walPath
		s, err = openWALCopy(walPath)
	} else {
		path = filepath.Join(dataDir, "raft.db")
		s, err = raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second}})
	}
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

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// walCopy is a raft-wal log opened on a copy of a node's raft-wal
// directory; Close removes the copy.
type walCopy struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
	dir  string
}

// openWALCopy copies the files of dir into a temporary directory and opens
// the copy with raft-wal.
func openWALCopy(dir string) (*walCopy, error) {
	tmp, err := os.MkdirTemp("", "shelf-faults-wal-")
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	for _, e := range entries {
		if err != nil {
			break
		}
		if e.Type().IsRegular() {
			err = copyFile(filepath.Join(dir, e.Name()), filepath.Join(tmp, e.Name()))
		}
	}
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("copy %s: %w", dir, err)
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(tmp, wal.WithMetaStore(meta))
	if err != nil {
		meta.Close()
		os.RemoveAll(tmp)
		return nil, err
	}
	return &walCopy{WAL: w, meta: meta, dir: tmp}, nil
}

// Close closes the log and its meta file and removes the copy.
func (c *walCopy) Close() error {
	return errors.Join(c.WAL.Close(), c.meta.Close(), os.RemoveAll(c.dir))
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
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
