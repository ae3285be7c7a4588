package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/hashicorp/raft"
)

// recoverBatch is how many log entries Recover applies per transaction.
const recoverBatch = 256

// RecoverConfig names the data directory of a surviving node that Recover
// turns into a single-node cluster.
type RecoverConfig struct {
	// DataDir is the survivor's data directory; its kvnode must be stopped.
	DataDir string
	// NodeID and RaftAddr are the id and advertised raft address the node
	// runs with (kvnode -id and -raft).
	NodeID   string
	RaftAddr string
	// Logger receives progress; nil means slog.Default().
	Logger *slog.Logger
}

// RecoverResult describes a recovered data directory.
type RecoverResult struct {
	Index     uint64   // the last log index, now the raft snapshot's index
	Term      uint64   // its term
	ClusterID string   // the cluster id, unchanged
	Dropped   []string // the voters of the old configuration other than this node
}

// Recover brings a cluster that lost its quorum back from one survivor:
// it rewrites the survivor's raft state so that it is the only voter.
// It is what hashicorp/raft's RecoverCluster (and a raft peers.json) does,
// done with this package's stores: every entry of the survivor's log is
// taken as committed and applied to the state machine (configuration
// entries too, so its applied index reaches the last entry), a raft
// snapshot of that state is written at the last index with a configuration
// of this node alone, and the log is compacted so that no older
// configuration entry overrides it. The cluster id is kept: clients go on.
//
// Run it with the node stopped, once. Start the node again with its usual
// flags; it elects itself, and new nodes join it with fresh data
// directories. The lost nodes must not come back with their old data.
func Recover(cfg RecoverConfig) (res RecoverResult, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DataDir == "" || cfg.NodeID == "" {
		return res, errors.New("cluster: recover: the data directory and the node id are required")
	}
	if err := checkHostPort("raft", cfg.RaftAddr, true); err != nil {
		return res, fmt.Errorf("cluster: recover: %w", err)
	}
	// The log store is of the kind the directory holds.
	kind, err := logStoreOnDisk(cfg.DataDir)
	if err != nil {
		return res, fmt.Errorf("cluster: recover: %w", err)
	}
	if kind == "" {
		return res, fmt.Errorf("cluster: recover: %s has no raft log (%s or %s): is it the survivor's data directory?", cfg.DataDir, raftDBFile, walDir)
	}
	n := &Node{cfg: Config{DataDir: cfg.DataDir, NodeID: cfg.NodeID, Logger: cfg.Logger, LogStore: kind,
		SnapshotRetain: DefaultSnapshotRetain, MaxAppendEntries: DefaultMaxAppendEntries}, log: cfg.Logger}
	hasState, err := n.openRecoverStores()
	defer n.closeStores()
	if err != nil {
		return res, fmt.Errorf("cluster: recover: %w", err)
	}
	if !hasState {
		return res, fmt.Errorf("cluster: recover: %s has no raft state: nothing to recover", cfg.DataDir)
	}

	snaps, err := n.snaps.List()
	if err != nil {
		return res, fmt.Errorf("cluster: recover: list snapshots: %w", err)
	}
	var conf raft.Configuration
	var snapIndex uint64
	if len(snaps) > 0 {
		res.Index, res.Term, conf = snaps[0].Index, snaps[0].Term, snaps[0].Configuration
		snapIndex = res.Index
	}
	first, err := n.store.FirstIndex()
	if err != nil {
		return res, fmt.Errorf("cluster: recover: raft log: %w", err)
	}
	last, err := n.store.LastIndex()
	if err != nil {
		return res, fmt.Errorf("cluster: recover: raft log: %w", err)
	}
	var failed error
	rf := &raftFSM{f: n.fsm, failed: func(err error) { failed = err }}
	var batch []*raft.Log
	flush := func() error {
		if len(batch) > 0 {
			rf.ApplyBatch(batch)
			batch = batch[:0]
		}
		return failed
	}
	for idx := first; last > 0 && idx <= last; idx++ {
		l := new(raft.Log)
		if err := n.store.GetLog(idx, l); err != nil {
			return res, fmt.Errorf("cluster: recover: raft log entry %d: %w", idx, err)
		}
		if l.Type == raft.LogConfiguration && l.Index > snapIndex {
			conf = raft.DecodeConfiguration(l.Data)
		}
		if l.Index > res.Index {
			res.Index, res.Term = l.Index, l.Term
		}
		if l.Index > n.fsm.AppliedIndex() {
			batch = append(batch, l)
			if len(batch) == recoverBatch {
				if err := flush(); err != nil {
					return res, fmt.Errorf("cluster: recover: apply the log: %w", err)
				}
			}
		}
	}
	if err := flush(); err != nil {
		return res, fmt.Errorf("cluster: recover: apply the log: %w", err)
	}
	if got := n.fsm.AppliedIndex(); got != res.Index {
		return res, fmt.Errorf("cluster: recover: the state machine is at index %d but the raft state ends at %d", got, res.Index)
	}
	for _, s := range conf.Servers {
		if string(s.ID) != cfg.NodeID {
			res.Dropped = append(res.Dropped, string(s.ID))
		}
	}
	slices.Sort(res.Dropped)
	res.ClusterID = n.fsm.ClusterID()
	self := raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter, ID: raft.ServerID(cfg.NodeID), Address: raft.ServerAddress(cfg.RaftAddr),
	}}}
	if err := writeRaftSnapshot(cfg.DataDir, n.store, n.fsm, res.Index, res.Term, self, cfg.Logger); err != nil {
		return res, fmt.Errorf("cluster: recover: %w", err)
	}
	if last > 0 {
		if err := n.store.DeleteRange(first, last); err != nil {
			return res, fmt.Errorf("cluster: recover: compact the raft log: %w", err)
		}
	}
	cfg.Logger.Warn("cluster: RECOVERED: this node is now the only voter of its cluster; new nodes join it with fresh data directories",
		"dir", cfg.DataDir, "node", cfg.NodeID, "index", res.Index, "term", res.Term, "cluster", res.ClusterID, "dropped", res.Dropped)
	return res, nil
}

// openRecoverStores opens the stores as a node start does (with the same
// checks of damaged files) and reports whether raft has state.
func (n *Node) openRecoverStores() (bool, error) {
	if err := n.openStores(); err != nil {
		return false, err
	}
	return raft.HasExistingState(n.store, n.store, n.snaps)
}

// closeStores closes what openStores opened.
func (n *Node) closeStores() {
	if n.store != nil {
		_ = n.store.Close()
	}
	if n.fsm != nil {
		_ = n.fsm.Close()
	}
}
