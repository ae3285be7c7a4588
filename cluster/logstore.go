package cluster

import (
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
	"github.com/shelfdb/shelf/storage"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The raft log stores a node can use (Config.LogStore).
const (
	// LogStoreBolt keeps the raft log and raft's stable state in raft.db,
	// a bbolt file (hashicorp/raft-boltdb/v2). The default.
	LogStoreBolt = "bolt"
	// LogStoreWAL keeps them in the directory raft-wal: append-only
	// segment files with a checksum per entry plus wal-meta.db
	// (hashicorp/raft-wal).
	LogStoreWAL = "wal"
)

// walDir is the directory of the raft-wal log inside Config.DataDir.
const walDir = "raft-wal"

// ErrOtherLogStore is returned by New when the data directory holds a raft
// log of the other kind than Config.LogStore asks for: a node never starts
// a second, empty log beside its real one.
var ErrOtherLogStore = errors.New("the data directory holds a raft log of another kind")

// logStore is what raft needs of the log: the entries and the stable
// state (term, vote) in one store.
type logStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// openLogStore checks and opens the raft log of the kind Config.LogStore
// names, refusing a data directory that holds the other kind.
func (n *Node) openLogStore() error {
	boltPath := filepath.Join(n.cfg.DataDir, raftDBFile)
	walPath := filepath.Join(n.cfg.DataDir, walDir)
	boltExists := exists(boltPath)
	walExists := exists(walPath)
	switch n.cfg.LogStore {
	case LogStoreWAL:
		if boltExists {
			return fmt.Errorf("cluster: %w: %s is a raft-boltdb log but the node is configured for raft-wal (-raft-log wal); start it with -raft-log bolt", ErrOtherLogStore, boltPath)
		}
		return n.openWAL(walPath)
	default:
		if walExists {
			return fmt.Errorf("cluster: %w: %s is a raft-wal log but the node is configured for raft-boltdb (-raft-log bolt, the default); start it with -raft-log wal", ErrOtherLogStore, walPath)
		}
		return n.openBolt(boltPath)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// openBolt checks raft.db (checkRaftLog) and opens it with raft-boltdb.
func (n *Node) openBolt(raftPath string) error {
	if err := n.checkRaftLog(raftPath); err != nil {
		return err
	}
	var store *raftboltdb.BoltStore
	err := storage.Guard(raftPath, func() error {
		var err error
		store, err = raftboltdb.New(raftboltdb.Options{
			Path:        raftPath,
			NoSync:      n.cfg.NoSync,
			BoltOptions: &bolt.Options{Timeout: 2 * time.Second},
		})
		return err
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return fmt.Errorf("cluster: %s is locked: is another kvnode using %s?", raftPath, n.cfg.DataDir)
		}
		if errors.Is(err, storage.ErrCorrupt) {
			return fmt.Errorf("cluster: cannot use the raft log: %w; %s", err, raftLogAdvice(n.cfg.NodeID, n.cfg.DataDir))
		}
		return fmt.Errorf("cluster: open raft log %s: %w", raftPath, err)
	}
	n.store = store
	return nil
}

// openWAL opens the raft-wal log in dir. Its meta file, wal-meta.db, is a
// bolt file: it gets the same checks as raft.db (a damaged one is an error
// naming it, never a panic). The segment files are raft-wal's to check:
// every entry carries a CRC32 that is verified when the entry is read, and
// on open raft-wal recovers the tail segment up to its last complete
// entry. raft-wal has no NoSync: Config.NoSync does not apply to it.
func (n *Node) openWAL(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cluster: raft-wal directory: %w", err)
	}
	metaPath := filepath.Join(dir, metadb.FileName)
	info, err := storage.Inspect(metaPath)
	switch {
	case errors.Is(err, storage.ErrLocked):
		return fmt.Errorf("cluster: %s is locked: is another kvnode using %s?", metaPath, n.cfg.DataDir)
	case err != nil:
		return fmt.Errorf("cluster: cannot use the raft log: %w; %s", err, raftLogAdvice(n.cfg.NodeID, n.cfg.DataDir))
	}
	for _, b := range info.Buckets {
		if b != metadb.MetaBucket && b != metadb.StableBucket {
			return fmt.Errorf("cluster: %s is not raft-wal's meta file (it holds buckets %q)", metaPath, info.Buckets)
		}
	}
	meta := &metadb.BoltMetaDB{}
	var w *wal.WAL
	err = storage.Guard(metaPath, func() error {
		var err error
		w, err = wal.Open(dir, wal.WithMetaStore(meta), wal.WithLogger(newHCLogger(n.log, "raft-wal")))
		return err
	})
	if err != nil {
		_ = meta.Close()
		if errors.Is(err, storage.ErrCorrupt) {
			return fmt.Errorf("cluster: cannot use the raft log: %w; %s", err, raftLogAdvice(n.cfg.NodeID, n.cfg.DataDir))
		}
		return fmt.Errorf("cluster: open raft-wal log %s: %w", dir, err)
	}
	n.store = &walStore{WAL: w, meta: meta}
	return nil
}

// walStore is a raft-wal log whose Close also closes its meta file:
// raft-wal v0.4.0's WAL.Close leaves wal-meta.db open (and locked), so a
// node restarted in the same process could not open it again.
type walStore struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

// Close closes the log, then its meta file.
func (s *walStore) Close() error {
	return errors.Join(s.WAL.Close(), s.meta.Close())
}
