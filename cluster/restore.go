package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"
	"github.com/shelfdb/shelf/fsm"
)

// ErrDataDirNotEmpty is returned by Restore for a data directory that
// already holds files: a restore seeds a new node and never overwrites one.
var ErrDataDirNotEmpty = errors.New("cluster: data directory is not empty")

// restoredTerm is the raft term of the snapshot a restore writes; the
// restored node's first election starts the term after it.
const restoredTerm = 1

// RestoreConfig says where and as what node Restore seeds a new cluster.
type RestoreConfig struct {
	// DataDir is the new node's data directory: absent or empty.
	DataDir string
	// NodeID and RaftAddr are the id and advertised raft address the node
	// will run with (kvnode -id and -raft): they are the only voter of the
	// restored cluster's raft configuration.
	NodeID   string
	RaftAddr string
	// LogStore is the raft log store the node will run with (kvnode
	// -raft-log): LogStoreBolt or LogStoreWAL; DefaultLogStore when empty
	// or LogStoreAuto.
	LogStore string
	// KeepClusterID keeps the backup's cluster id. By default the restored
	// cluster gets a new id, so that replicas and nodes of the old cluster
	// are refused instead of mixing two histories.
	KeepClusterID bool
	// Logger receives progress; nil means slog.Default().
	Logger *slog.Logger
}

// RestoreResult describes a restored data directory.
type RestoreResult struct {
	Index         uint64 // the applied index of the backup, now the raft snapshot's index
	ClusterID     string // the restored cluster's id
	FromClusterID string // the backup's cluster id
}

// Restore seeds cfg.DataDir for a new single-node cluster from the
// snapshot stream r (what kvctl snapshot save wrote). The stream's size and
// SHA-256 are checked before anything is kept: on any error the directory
// is left as it was found (removed if Restore created it).
//
// The directory gets the state machine (fsm.db) at the backup's applied
// index I, and a raft snapshot at index I, term 1, whose configuration
// lists only cfg.NodeID at cfg.RaftAddr, with an empty raft log: raft
// starts from the snapshot as if the log up to I had been compacted, so
// the log indexes, the snapshot and the state machine's applied index
// agree, the node elects itself without -bootstrap, and nodes that join
// receive the restored state through raft's InstallSnapshot.
func Restore(cfg RestoreConfig, r io.Reader) (res RestoreResult, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DataDir == "" || cfg.NodeID == "" {
		return res, errors.New("cluster: restore: the data directory and the node id are required")
	}
	if len(cfg.NodeID) > fsm.MaxMemberID {
		return res, fmt.Errorf("cluster: restore: node id %q is longer than %d bytes", cfg.NodeID, fsm.MaxMemberID)
	}
	if err := checkHostPort("raft", cfg.RaftAddr, true); err != nil {
		return res, fmt.Errorf("cluster: restore: %w", err)
	}
	switch cfg.LogStore {
	case "", LogStoreAuto: // a new data directory
		cfg.LogStore = DefaultLogStore
	case LogStoreBolt, LogStoreWAL:
	default:
		return res, fmt.Errorf("cluster: restore: unknown log store %q: want %q, %q or %q", cfg.LogStore, LogStoreBolt, LogStoreWAL, LogStoreAuto)
	}
	created, err := prepareEmptyDir(cfg.DataDir)
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			cleanDir(cfg.DataDir, created)
		}
	}()

	f, err := fsm.Open(fsm.Config{Path: filepath.Join(cfg.DataDir, fsmDBFile), Logger: cfg.Logger})
	if err != nil {
		return res, fmt.Errorf("cluster: restore: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("cluster: restore: %w", cerr)
		}
	}()
	if err := f.Restore(bufio.NewReaderSize(r, 1<<20)); err != nil {
		return res, fmt.Errorf("cluster: restore: %w", err)
	}
	res.Index, res.FromClusterID, res.ClusterID = f.AppliedIndex(), f.ClusterID(), f.ClusterID()
	if res.Index == 0 {
		return res, fmt.Errorf("cluster: restore: %w: the snapshot holds an empty state (applied index 0)", fsm.ErrBadSnapshot)
	}
	if !cfg.KeepClusterID || res.FromClusterID == "" {
		res.ClusterID = uuid.NewString()
		if err := f.ReplaceClusterID(res.ClusterID); err != nil {
			return res, fmt.Errorf("cluster: restore: %w", err)
		}
	}
	conf := raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter, ID: raft.ServerID(cfg.NodeID), Address: raft.ServerAddress(cfg.RaftAddr),
	}}}
	if err := writeRaftState(cfg, f, res.Index, restoredTerm, conf); err != nil {
		return res, fmt.Errorf("cluster: restore: %w", err)
	}
	cfg.Logger.Info("cluster: restored a backup into a new data directory", "dir", cfg.DataDir, "index", res.Index,
		"cluster", res.ClusterID, "from_cluster", res.FromClusterID, "node", cfg.NodeID, "raft", cfg.RaftAddr)
	return res, nil
}

// prepareEmptyDir makes dir if it does not exist, and refuses one that
// holds anything. It reports whether it created dir.
func prepareEmptyDir(dir string) (created bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, fmt.Errorf("cluster: restore: %w", err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("cluster: restore: %w", err)
	case len(entries) > 0:
		return false, fmt.Errorf("%w: %s holds %s; restore seeds a new node: give an empty or new directory", ErrDataDirNotEmpty, dir, entries[0].Name())
	}
	return false, nil
}

// cleanDir undoes a failed restore: removes dir if it was created, or its
// contents (it was empty before).
func cleanDir(dir string, created bool) {
	if created {
		_ = os.RemoveAll(dir)
		return
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// writeRaftState opens the raft log store of the kind cfg.LogStore names
// in cfg.DataDir and writes the raft state with writeRaftSnapshot.
func writeRaftState(cfg RestoreConfig, f *fsm.FSM, index, term uint64, conf raft.Configuration) error {
	n := &Node{cfg: Config{DataDir: cfg.DataDir, NodeID: cfg.NodeID, LogStore: cfg.LogStore, Logger: cfg.Logger}, log: cfg.Logger}
	if err := n.openLogStore(); err != nil {
		return err
	}
	err := writeRaftSnapshot(cfg.DataDir, n.store, f, index, term, conf, cfg.Logger)
	if cerr := n.store.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close the raft log: %w", cerr)
	}
	return err
}

// writeRaftSnapshot writes a raft snapshot of f (whose applied index must
// be index) with configuration conf into dir's snapshot store, and makes
// sure the stable store's current term is at least term.
func writeRaftSnapshot(dir string, store raft.StableStore, f *fsm.FSM, index, term uint64, conf raft.Configuration, log *slog.Logger) error {
	if got := f.AppliedIndex(); got != index {
		return fmt.Errorf("state machine at index %d, raft snapshot at %d", got, index)
	}
	cur, err := store.GetUint64([]byte("CurrentTerm"))
	// As raft itself reads it: raft-boltdb answers "not found" for a key
	// never set, raft-wal zero.
	if err != nil && err.Error() != "not found" {
		return fmt.Errorf("raft log: read term: %w", err)
	}
	if cur < term {
		if err := store.SetUint64([]byte("CurrentTerm"), term); err != nil {
			return fmt.Errorf("raft log: set term: %w", err)
		}
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 1, newHCLogger(log, "raft-snapshots"))
	if err != nil {
		return fmt.Errorf("snapshot store: %w", err)
	}
	s, err := f.Snapshot()
	if err != nil {
		return err
	}
	defer s.Release()
	// The transport only encodes the legacy peer list of the snapshot's
	// meta: the in-memory one encodes an address as the TCP one does.
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	sink, err := snaps.Create(raft.SnapshotVersionMax, index, term, conf, index, trans)
	if err != nil {
		return fmt.Errorf("create raft snapshot: %w", err)
	}
	if err := (&raftSnapshot{s: s}).Persist(sink); err != nil {
		return fmt.Errorf("write raft snapshot: %w", err)
	}
	return nil
}
