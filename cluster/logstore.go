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
	"github.com/hashicorp/raft-wal/types"
	"github.com/shelfdb/shelf/storage"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The raft log stores a node can use (Config.LogStore).
const (
	// LogStoreBolt keeps the raft log and raft's stable state in raft.db,
	// a bbolt file (hashicorp/raft-boltdb/v2): two fdatasyncs per append.
	LogStoreBolt = "bolt"
	// LogStoreWAL keeps them in the directory raft-wal: append-only
	// segment files with a checksum per commit, plus wal-meta.db
	// (hashicorp/raft-wal): one fdatasync per append.
	LogStoreWAL = "wal"
	// LogStoreAuto (or an empty Config.LogStore) keeps the kind the data
	// directory holds, and gives a new data directory DefaultLogStore.
	LogStoreAuto = "auto"
)

// DefaultLogStore is the raft log store of a new data directory when
// Config.LogStore is LogStoreAuto or empty: raft-wal, since one fdatasync
// per append against raft-boltdb's two is what brings one writer to
// etcd's rate and commit-to-event under 10 ms at p99 on the fsync'd
// 3-node cluster (docs/performance.md, "Fourth session"). A data
// directory keeps the kind it was created with, so the default leaves
// existing nodes, made with raft-boltdb, on raft-boltdb.
const DefaultLogStore = LogStoreWAL

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
// names, refusing a data directory that holds the other kind. For
// LogStoreAuto it opens the kind the directory holds, or DefaultLogStore
// in a new one, and sets Config.LogStore to the kind opened.
func (n *Node) openLogStore() error {
	boltPath := filepath.Join(n.cfg.DataDir, raftDBFile)
	walPath := filepath.Join(n.cfg.DataDir, walDir)
	boltExists := exists(boltPath)
	walExists := exists(walPath)
	if n.cfg.LogStore == LogStoreAuto || n.cfg.LogStore == "" {
		kind, err := logStoreOnDisk(n.cfg.DataDir)
		if err != nil {
			return err
		}
		how := "the kind the data directory holds"
		if kind == "" {
			kind, how = DefaultLogStore, "the default for a new data directory"
		}
		n.cfg.LogStore = kind
		n.log.Info("cluster: raft log store", "kind", kind, "chosen_as", how)
	}
	switch n.cfg.LogStore {
	case LogStoreWAL:
		if boltExists {
			return fmt.Errorf("cluster: %w: %s is a raft-boltdb log but the node is configured for raft-wal (-raft-log wal); start it with -raft-log bolt (or auto)", ErrOtherLogStore, boltPath)
		}
		return n.openWAL(walPath)
	default:
		if walExists {
			return fmt.Errorf("cluster: %w: %s is a raft-wal log but the node is configured for raft-boltdb (-raft-log bolt); start it with -raft-log wal (or auto)", ErrOtherLogStore, walPath)
		}
		return n.openBolt(boltPath)
	}
}

// logStoreOnDisk returns the kind of raft log dir holds: LogStoreBolt
// (raft.db), LogStoreWAL (raft-wal/), or "" for neither. Both is an error
// wrapping ErrOtherLogStore.
func logStoreOnDisk(dir string) (string, error) {
	boltPath := filepath.Join(dir, raftDBFile)
	walPath := filepath.Join(dir, walDir)
	switch b, w := exists(boltPath), exists(walPath); {
	case b && w:
		return "", fmt.Errorf("cluster: %w: %s holds two raft logs, %s (raft-boltdb) and %s (raft-wal): move aside the one this node did not run on, or start it with -raft-log bolt or wal", ErrOtherLogStore, dir, boltPath, walPath)
	case b:
		return LogStoreBolt, nil
	case w:
		return LogStoreWAL, nil
	}
	return "", nil
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
// naming it, never a panic). The segment files it lists are read through
// first (checkWALSegments): raft-wal itself checks only the last commit of
// the tail segment, recovering a torn tail up to its last complete
// commit, and reads entries without a checksum. raft-wal has no NoSync:
// Config.NoSync does not apply to it.
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
		// The same meta store, already open, serves wal.Open.
		state, err := meta.Load(dir)
		if err != nil {
			return fmt.Errorf("%s: %w", metaPath, err)
		}
		start := time.Now()
		read, err := checkWALSegments(dir, state.Segments)
		if err != nil {
			return err
		}
		n.log.Info("cluster: raft-wal segments checked", "segments", len(state.Segments), "bytes", read, "took", time.Since(start).Round(time.Millisecond))
		w, err = wal.Open(dir, wal.WithMetaStore(meta), wal.WithLogger(newHCLogger(n.log, "raft-wal")),
			wal.WithSegmentSize(n.cfg.walSegmentSize)) // 0: wal.DefaultSegmentSize
		return err
	})
	if err != nil {
		_ = meta.Close()
		if errors.Is(err, storage.ErrCorrupt) || errors.Is(err, ErrWALDamaged) || errors.Is(err, types.ErrCorrupt) {
			return fmt.Errorf("cluster: cannot use the raft log: %w; %s", err, raftLogAdvice(n.cfg.NodeID, n.cfg.DataDir))
		}
		return fmt.Errorf("cluster: open raft-wal log %s: %w", dir, err)
	}
	n.store = w // its Close closes the meta file too (raft-wal v0.4.1 on)
	return nil
}

// logReachesApplied refuses a raft log that ends before the entries the
// state machine has applied (and the newest snapshot does not cover
// them): a node applies only entries its own log holds, fsync'ed, so its
// log lost committed entries (a segment deleted or cut short), and a node
// missing entries it acknowledged could help elect a leader without them.
func (n *Node) logReachesApplied(snaps []*raft.SnapshotMeta) error {
	applied := n.fsm.AppliedIndex()
	last, err := n.store.LastIndex()
	if err != nil {
		return fmt.Errorf("cluster: raft log: %w", err)
	}
	var base uint64
	if len(snaps) > 0 {
		base = snaps[0].Index
	}
	if applied <= max(last, base) {
		return nil
	}
	where := filepath.Join(n.cfg.DataDir, raftDBFile)
	if n.cfg.LogStore == LogStoreWAL {
		where = filepath.Join(n.cfg.DataDir, walDir)
	}
	return fmt.Errorf("cluster: cannot use the raft log: %w: %s ends at entry %d, but the state machine has applied entries up to %d (and the newest snapshot ends at %d): committed entries are gone from the log; %s",
		ErrLogBehindState, where, last, applied, base, raftLogAdvice(n.cfg.NodeID, n.cfg.DataDir))
}

// ErrLogBehindState is returned by New when the raft log ends before the
// entries the state machine file has applied.
var ErrLogBehindState = errors.New("the raft log ends before the applied state")
