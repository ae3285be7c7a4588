// Package cluster runs a Shelf server node: hashicorp/raft replicating the
// state machine of package fsm, memberlist gossip for discovery and
// health, bootstrap and join, the leader's membership reconciliation,
// forwarding of writes from followers to the leader, snapshots, and the
// log stream that client replicas follow.
//
// Raft decides who votes, gossip tells who is alive. A node started with
// Join gossips with the given peers; the leader adds every live member of
// the same cluster that is missing from the raft configuration as a voter.
// A member that gossip reports failed stays a voter (its health shows in
// Status) until an operator removes it.
//
// The state machine file (fsm.db) is persistent and records its applied
// index in the same transaction as each change, so raft is told not to
// restore a snapshot on start (NoSnapshotRestoreOnStart); the node
// restores the newest snapshot itself only when fsm.db is behind it.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
	"github.com/shelfdb/shelf/internal/wake"
	"github.com/shelfdb/shelf/storage"
)

// raftShutdownTimeout bounds the wait for raft to stop in Shutdown.
const raftShutdownTimeout = 30 * time.Second

// File names inside Config.DataDir.
const (
	raftDBFile = "raft.db"
	fsmDBFile  = "fsm.db"
	// peersFile caches the gossip addresses of the known peers. It is not
	// raft's peers.json (a recovery file for a lost quorum; see Recover),
	// the name this file had before: oldPeersFile is read once if
	// peersFile is missing, then removed.
	peersFile    = "gossip-peers.json"
	oldPeersFile = "peers.json"
)

// Node is one running Shelf server: its state machine, raft and gossip.
// All methods are safe for concurrent use.
type Node struct {
	cfg Config
	log *slog.Logger

	fsm     *fsm.FSM
	events  *eventBuffer  // the latest events of fsm, for Events
	reads   *readIndexer  // the leader's read index (linearizable reads)
	fwd     *forwarder    // a follower's writes to the leader, coalesced
	leaders wake.Signal   // wakes forwards in flight when the leader changes
	store   logStore      // raft.db (raft-boltdb) or raft-wal/, per Config.LogStore
	logs    raft.LogStore // store behind a cache of the newest entries: raft's and the log stream's reads
	snaps   *raft.FileSnapshotStore
	trans   *raft.NetworkTransport
	rtrans  *serialTransport // trans as raft sees it
	raft    *raft.Raft
	ml      *memberlist.Memberlist
	gossip  *gossip

	raftAddr   string        // advertised raft address
	staleAfter time.Duration // Config.LeaderStaleAfter or its default
	gossipAddr string        // advertised gossip address

	lastCluster atomic.Pointer[string] // cluster id last seen by fsmChanged
	removedSelf atomic.Bool            // this node was removed from the raft configuration

	nudgeCh    chan struct{} // gossip changed: reconcile membership
	metaCh     chan struct{} // cluster id changed: refresh gossip metadata
	peersCh    chan struct{} // gossip changed: save the known peers
	shutdownCh chan struct{}
	closed     atomic.Bool
	wg         sync.WaitGroup
	stopOnce   sync.Once
	stopErr    error

	snapSlots chan struct{} // a token per snapshot download being served
	failedCh  chan struct{} // closed when the state machine failed (Failed)
	failOnce  sync.Once
	failErr   error
	start     string       // random token of this run, gossiped (nodeMeta.Start)
	refusals  peerRefusals // gossip members refused by verifyPeer, for the log
}

// New opens the node's data directory, starts raft and gossip, and joins
// the cluster. It fails if the node has no raft state and neither
// Bootstrap nor Join is set, if no Join address answers within
// JoinTimeout (for a node without raft state), and with an error wrapping
// api.ErrWrongCluster if this node's data belongs to another cluster than
// the peers it joins.
func New(cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: data dir: %w", err)
	}
	n := &Node{
		cfg:        cfg,
		log:        cfg.Logger,
		nudgeCh:    make(chan struct{}, 1),
		metaCh:     make(chan struct{}, 1),
		peersCh:    make(chan struct{}, 1),
		shutdownCh: make(chan struct{}),
		start:      uuid.NewString(),
		snapSlots:  make(chan struct{}, maxSnapshotDownloads),
		failedCh:   make(chan struct{}),
	}
	n.gossip = newGossip(n)
	n.reads = &readIndexer{n: n}
	n.fwd = newForwarder(n)
	ok := false
	defer func() {
		if !ok {
			_ = n.Shutdown()
		}
	}()

	if err := n.openStores(); err != nil {
		return nil, err
	}
	// Events before the state the node starts with are not known.
	n.events = newEventBuffer(cfg.EventBuffer, n.fsm.AppliedIndex())
	hasState, err := n.startRaft()
	if err != nil {
		return nil, err
	}
	if err := n.startGossip(); err != nil {
		return nil, err
	}

	n.wg.Add(4)
	go n.watchLeader()
	go n.leaderLoop()
	go n.expiryLoop()
	go n.housekeeping()

	saved := n.loadPeers()
	switch {
	case len(cfg.Join) > 0:
		targets := append(slices.Clone(cfg.Join), saved...)
		if err := n.join(targets); err != nil {
			if !hasState || errors.Is(err, api.ErrWrongCluster) {
				return nil, err
			}
			n.log.Warn("cluster: could not join gossip yet; retrying in the background", "err", err)
			n.wg.Add(1)
			go n.backgroundJoin(targets)
		}
	case len(saved) > 0:
		n.wg.Add(1)
		go n.backgroundJoin(saved)
	}
	ok = true
	n.log.Info("cluster: node started", "id", cfg.NodeID, "raft", n.raftAddr, "gossip", n.gossipAddr,
		"http", cfg.HTTPAddr, "cluster", n.fsm.ClusterID(), "applied", n.fsm.AppliedIndex())
	return n, nil
}

// openStores opens the raft log, the snapshot store and the state
// machine, and restores the newest snapshot if the state machine is behind
// it (fsm.db lost or older than the snapshots). Every file is checked
// before it is used (see docs/damaged-files.md):
//
//   - raft.db damaged or not a raft log: an error naming it; it holds the
//     node's vote and log and cannot be rebuilt here.
//   - fsm.db damaged: moved aside to fsm.db.corrupt-TIME and rebuilt from
//     the snapshots and the raft log, logged at error level. fsm.db that
//     is not a Shelf state file of this version: an error.
//   - fsm.db not closed cleanly, and the machine restarted since (its
//     commits are not fsync'ed, so pages may be torn or lost; see
//     fsm.ErrUntrusted): moved aside to fsm.db.unclean-TIME and rebuilt
//     likewise. Not closed cleanly within the same boot (a killed
//     process): used as it is, raft replays the entries after it.
//   - the raft log does not reach back to the newest usable snapshot (raft
//     would panic replaying it): an error.
//   - a snapshot with an unreadable meta.json, a state.bin of the wrong
//     size, or one that fails its checksum when restored: moved aside to
//     snapshots.damaged/ and an older one used, as long as the raft log
//     reaches back to it; otherwise an error.
func (n *Node) openStores() error {
	if err := n.openLogStore(); err != nil {
		return err
	}
	// The leader reads every entry back to replicate it, and the log
	// stream reads the newest entries for clients: keep the newest
	// MaxAppendEntries entries in memory (at most that many record values)
	// instead of reading and decoding them from the store again.
	logs, err := raft.NewLogCache(n.cfg.MaxAppendEntries, n.store)
	if err != nil {
		return fmt.Errorf("cluster: raft log cache: %w", err)
	}
	n.logs = logs
	n.snaps, err = raft.NewFileSnapshotStoreWithLogger(n.cfg.DataDir, n.cfg.SnapshotRetain, newHCLogger(n.log, "raft-snapshots"))
	if err != nil {
		return fmt.Errorf("cluster: open snapshot store: %w", err)
	}
	snaps, err := n.usableSnapshots()
	if err != nil {
		return err
	}
	// Raft replays the log from the entry after the newest snapshot it
	// lists, and panics on an entry its log lacks.
	if err := n.rebuildable(snaps); err != nil {
		return fmt.Errorf("cluster: the raft log and the snapshots in %s do not fit together: %v; %s",
			n.cfg.DataDir, err, raftLogAdvice(n.cfg.NodeID, n.cfg.DataDir))
	}

	fsmPath := filepath.Join(n.cfg.DataDir, fsmDBFile)
	// fsm.db commits are not fsync'ed: the raft log is the durable record
	// and rebuilds the state after a crash of the machine (ErrUntrusted).
	fcfg := fsm.Config{Path: fsmPath, Logger: n.log, NoSync: true, BootID: n.cfg.bootID}
	n.fsm, err = fsm.Open(fcfg)
	if errors.Is(err, storage.ErrCorrupt) || errors.Is(err, fsm.ErrUntrusted) {
		// The log reaches back to the newest snapshot (checked above), so
		// the snapshot and the log rebuild the state.
		kind, what := "corrupt", "STATE MACHINE FILE DAMAGED"
		if errors.Is(err, fsm.ErrUntrusted) {
			kind, what = "unclean", "STATE MACHINE FILE NOT TRUSTED AFTER A CRASH OF THE MACHINE"
		}
		aside := fmt.Sprintf("%s.%s-%s", fsmPath, kind, time.Now().UTC().Format("20060102T150405.000Z"))
		if rerr := os.Rename(fsmPath, aside); rerr != nil {
			return fmt.Errorf("cluster: cannot use the state machine file (%w) and cannot move it aside: %v", err, rerr)
		}
		n.log.Error("cluster: "+what+": moved aside, rebuilding it from the snapshots and the raft log",
			"file", fsmPath, "moved_to", aside, "err", err)
		n.fsm, err = fsm.Open(fcfg)
	}
	if err != nil {
		if errors.Is(err, storage.ErrForeign) {
			return fmt.Errorf("cluster: %w; is -data the right directory?", err)
		}
		return fmt.Errorf("cluster: open state machine: %w", err)
	}
	if err := n.logReachesApplied(snaps); err != nil {
		return err
	}
	cid := n.fsm.ClusterID()
	n.lastCluster.Store(&cid)
	if err := n.restoreIfBehind(snaps); err != nil {
		return err
	}
	cid = n.fsm.ClusterID()
	n.lastCluster.Store(&cid)
	return nil
}

// raftLogAdvice says what to do about a raft log that cannot be used.
func raftLogAdvice(id, dir string) string {
	return fmt.Sprintf("this node's raft state cannot be rebuilt from its own files: if the other members are healthy, "+
		"remove it (kvctl members remove %s), move %s aside and start it again with -join; "+
		"on a single-node cluster, restore the data directory from a backup", id, dir)
}

// checkRaftLog verifies raft.db before raft-boltdb maps it, and that it
// holds only raft-boltdb's buckets.
func (n *Node) checkRaftLog(path string) error {
	info, err := storage.Inspect(path)
	if errors.Is(err, storage.ErrLocked) {
		return fmt.Errorf("cluster: %s is locked: is another kvnode using %s?", path, n.cfg.DataDir)
	}
	if err != nil {
		return fmt.Errorf("cluster: cannot use the raft log: %w; %s", err, raftLogAdvice(n.cfg.NodeID, n.cfg.DataDir))
	}
	for _, b := range info.Buckets {
		if b != "logs" && b != "conf" {
			return fmt.Errorf("cluster: %s is not a raft log (it holds buckets %q; a state machine file?); is -data the right directory?", path, info.Buckets)
		}
	}
	return nil
}

// usableSnapshots lists the snapshots, newest first, after moving aside
// (to snapshots.damaged/) every snapshot directory whose meta.json raft
// cannot read or whose state.bin is missing or of another size than
// meta.json says. Their checksums are checked when one is restored.
func (n *Node) usableSnapshots() ([]*raft.SnapshotMeta, error) {
	snaps, err := n.snaps.List()
	if err != nil {
		return nil, fmt.Errorf("cluster: list snapshots: %w", err)
	}
	dir := filepath.Join(n.cfg.DataDir, "snapshots")
	listed := map[string]bool{}
	var good []*raft.SnapshotMeta
	for _, s := range snaps {
		listed[s.ID] = true
		st, err := os.Stat(filepath.Join(dir, s.ID, "state.bin"))
		if err == nil && st.Size() == s.Size {
			good = append(good, s)
			continue
		}
		why := "state.bin is missing"
		if err == nil {
			why = fmt.Sprintf("state.bin has %d bytes, meta.json says %d", st.Size(), s.Size)
		}
		if err := n.moveSnapshotAside(s.ID, why); err != nil {
			return nil, err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cluster: list snapshots: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() && !listed[e.Name()] && !strings.HasSuffix(e.Name(), ".tmp") {
			if err := n.moveSnapshotAside(e.Name(), "meta.json is missing or unreadable"); err != nil {
				return nil, err
			}
		}
	}
	return good, nil
}

// moveSnapshotAside moves a damaged snapshot out of raft's sight.
func (n *Node) moveSnapshotAside(id, why string) error {
	from := filepath.Join(n.cfg.DataDir, "snapshots", id)
	aside := filepath.Join(n.cfg.DataDir, "snapshots.damaged")
	to := filepath.Join(aside, id+"-"+time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.MkdirAll(aside, 0o700); err != nil {
		return fmt.Errorf("cluster: snapshot %s is damaged (%s) and cannot be moved aside: %w", from, why, err)
	}
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("cluster: snapshot %s is damaged (%s) and cannot be moved aside: %w", from, why, err)
	}
	n.log.Error("cluster: SNAPSHOT DAMAGED: moved aside; an older snapshot and the raft log will be used",
		"snapshot", from, "problem", why, "moved_to", to)
	return nil
}

// rebuildable tells whether the state machine can be rebuilt from the
// newest of snaps and the raft log: raft replays the log from the entry
// after the newest snapshot, so the log must reach back to it.
func (n *Node) rebuildable(snaps []*raft.SnapshotMeta) error {
	first, err := n.store.FirstIndex()
	if err != nil {
		return fmt.Errorf("raft log: %w", err)
	}
	last, err := n.store.LastIndex()
	if err != nil {
		return fmt.Errorf("raft log: %w", err)
	}
	var base uint64
	if len(snaps) > 0 {
		base = snaps[0].Index
	}
	if last > base && first > base+1 {
		return fmt.Errorf("the raft log starts at entry %d but the newest usable snapshot ends at %d: entries %d to %d are gone", first, base, base+1, first-1)
	}
	return nil
}

// restoreIfBehind restores the newest snapshot when the state machine is
// behind it. A snapshot that fails its checksum is moved aside and the
// next older one tried, as long as the log reaches back to it.
func (n *Node) restoreIfBehind(snaps []*raft.SnapshotMeta) error {
	for len(snaps) > 0 && snaps[0].Index > n.fsm.AppliedIndex() {
		meta := snaps[0]
		n.log.Info("cluster: state machine is behind the newest snapshot; restoring it",
			"applied", n.fsm.AppliedIndex(), "snapshot", meta.ID, "snapshot_index", meta.Index)
		err := n.restoreSnapshot(meta.ID)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fsm.ErrBadSnapshot) && !errors.Is(err, errSnapshotCRC) {
			return err
		}
		if merr := n.moveSnapshotAside(meta.ID, err.Error()); merr != nil {
			return merr
		}
		snaps = snaps[1:]
		if rerr := n.rebuildable(snaps); rerr != nil {
			return fmt.Errorf("cluster: snapshot %s is damaged (%v; moved to snapshots.damaged) and no older one will do: %v; %s",
				filepath.Join(n.cfg.DataDir, "snapshots", meta.ID), err, rerr, raftLogAdvice(n.cfg.NodeID, n.cfg.DataDir))
		}
	}
	return nil
}

// errSnapshotCRC marks a snapshot whose state.bin fails raft's checksum.
var errSnapshotCRC = errors.New("state.bin fails its checksum")

func (n *Node) restoreSnapshot(id string) error {
	_, rc, err := n.snaps.Open(id)
	if err != nil {
		if strings.Contains(err.Error(), "CRC") {
			return fmt.Errorf("cluster: snapshot %s: %w", id, errSnapshotCRC)
		}
		return fmt.Errorf("cluster: open snapshot %s: %w", id, err)
	}
	defer rc.Close()
	if err := n.fsm.Restore(rc); err != nil {
		return fmt.Errorf("cluster: restore snapshot %s: %w", id, err)
	}
	return nil
}

// startRaft creates the transport and raft, bootstrapping a new cluster
// when asked to and there is no state yet. It reports whether raft had
// state before.
func (n *Node) startRaft() (bool, error) {
	hcl := newHCLogger(n.log, "raft")
	advertise, err := net.ResolveTCPAddr("tcp", n.cfg.RaftAddr)
	if err != nil {
		return false, fmt.Errorf("cluster: raft address %q: %w", n.cfg.RaftAddr, err)
	}
	var adv net.Addr = advertise
	if advertise.Port == 0 {
		adv = nil // the listener's address, once it has a port
	}
	tc := &raft.NetworkTransportConfig{
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hcl,
		// No pipelined replication: with it, raft.Shutdown has been seen to
		// wait forever for a replication goroutine blocked in pipelineSend
		// (its pipeline's decoder gone, nothing takes the in-flight
		// future). One AppendEntries at a time per follower, each carrying
		// up to MaxAppendEntries entries.
		MaxRPCsInFlight: 1,
	}
	if n.cfg.PeerTLS != nil {
		var stream *tlsStream
		stream, err = newTLSStream(n.cfg.RaftAddr, adv, n.cfg.PeerTLS.Server, n.cfg.PeerTLS.Client, n.log)
		if err == nil {
			tc.Stream = stream
			n.trans = raft.NewNetworkTransportWithConfig(tc)
		}
	} else {
		n.trans, err = raft.NewTCPTransportWithConfig(n.cfg.RaftAddr, adv, tc)
	}
	if err != nil {
		return false, fmt.Errorf("cluster: raft transport on %s: %w", n.cfg.RaftAddr, err)
	}
	n.raftAddr = string(n.trans.LocalAddr())
	n.rtrans = raftTransport(n.trans)

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.NodeID)
	rc.Logger = hcl
	rc.NoSnapshotRestoreOnStart = true
	rc.ShutdownOnRemove = false
	// Group commit: writes that arrive while the leader stores a batch
	// wait in a buffered channel and go to the log together, up to
	// MaxAppendEntries per disk write and per AppendEntries.
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = n.cfg.MaxAppendEntries
	override(&rc.HeartbeatTimeout, n.cfg.HeartbeatTimeout)
	override(&rc.ElectionTimeout, n.cfg.ElectionTimeout)
	override(&rc.LeaderLeaseTimeout, n.cfg.LeaderLeaseTimeout)
	override(&rc.CommitTimeout, n.cfg.CommitTimeout)
	override(&rc.SnapshotThreshold, n.cfg.SnapshotThreshold)
	override(&rc.SnapshotInterval, n.cfg.SnapshotInterval)
	override(&rc.TrailingLogs, n.cfg.TrailingLogs)
	n.staleAfter = n.cfg.LeaderStaleAfter
	if n.staleAfter <= 0 {
		n.staleAfter = DefaultStaleFactor * rc.HeartbeatTimeout
	}
	if err := raft.ValidateConfig(rc); err != nil {
		return false, fmt.Errorf("cluster: raft config: %w", err)
	}

	hasState, err := raft.HasExistingState(n.store, n.store, n.snaps)
	if err != nil {
		return false, fmt.Errorf("cluster: read raft state: %w", err)
	}
	if !hasState {
		switch {
		case n.cfg.Bootstrap:
			if n.fsm.AppliedIndex() > 0 {
				return false, fmt.Errorf("cluster: %s has state machine data (applied index %d, cluster %q) but no raft state; refusing to bootstrap a new cluster over it (remove %s to start afresh)",
					n.cfg.DataDir, n.fsm.AppliedIndex(), n.fsm.ClusterID(), filepath.Join(n.cfg.DataDir, fsmDBFile))
			}
			conf := raft.Configuration{Servers: []raft.Server{{
				Suffrage: raft.Voter,
				ID:       rc.LocalID,
				Address:  n.trans.LocalAddr(),
			}}}
			if err := raft.BootstrapCluster(rc, n.store, n.store, n.snaps, n.rtrans, conf); err != nil {
				return false, fmt.Errorf("cluster: bootstrap: %w", err)
			}
			n.log.Info("cluster: bootstrapped a new cluster", "id", n.cfg.NodeID)
		case len(n.cfg.Join) == 0:
			return false, fmt.Errorf("cluster: %s has no raft state: start the first node with Bootstrap, the others with Join", n.cfg.DataDir)
		}
	}

	n.raft, err = raft.NewRaft(rc, &raftFSM{f: n.fsm, events: n.events, changed: n.fsmChanged, failed: n.fail}, n.logs, n.store, n.snaps, n.rtrans)
	if err != nil {
		return false, fmt.Errorf("cluster: start raft: %w", err)
	}
	return hasState, nil
}

// startGossip creates the memberlist.
func (n *Node) startGossip() error {
	host, portStr, _ := net.SplitHostPort(n.cfg.GossipAddr)
	port, _ := strconv.Atoi(portStr)
	bind := host
	if bind == "" {
		bind = "0.0.0.0"
	} else if net.ParseIP(bind) == nil {
		ips, err := net.LookupIP(bind)
		if err != nil || len(ips) == 0 {
			return fmt.Errorf("cluster: gossip address %q: cannot resolve %s: %v", n.cfg.GossipAddr, host, err)
		}
		bind = ips[0].String()
		for _, ip := range ips {
			if ip.To4() != nil {
				bind = ip.String()
				break
			}
		}
	}
	probe := n.localMeta()
	probe.Cluster, probe.Removed, probe.Start = strings.Repeat("x", 64), true, uuid.NewString()
	if b, _ := json.Marshal(probe); len(b) > memberlist.MetaMaxSize {
		return fmt.Errorf("cluster: node id and addresses are too long for gossip metadata (%d bytes, limit %d)", len(b), memberlist.MetaMaxSize)
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = n.cfg.NodeID
	mc.BindAddr = bind
	mc.BindPort = port
	mc.AdvertisePort = port
	mc.Delegate = n.gossip
	mc.Events = n.gossip
	mc.Alive = n.gossip
	mc.Merge = n.gossip
	mc.Logger = newStdLogger(n.log)
	// A node that died may come back on another address (a new port or
	// IP); memberlist refuses the name until this much time has passed.
	mc.DeadNodeReclaimTime = 30 * time.Second
	if len(n.cfg.GossipKey) > 0 {
		mc.SecretKey = n.cfg.GossipKey
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	if n.cfg.TuneGossip != nil {
		n.cfg.TuneGossip(mc)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("cluster: gossip on %s: %w", n.cfg.GossipAddr, err)
	}
	n.ml = ml
	n.gossipAddr = ml.LocalNode().Address()
	return nil
}

// join tries to join the gossip of targets until one answers, a
// wrong-cluster conflict shows, or JoinTimeout passes.
func (n *Node) join(targets []string) error {
	targets = n.withoutSelf(targets)
	if len(targets) == 0 {
		return nil
	}
	n.gossip.setJoining(true)
	defer n.gossip.setJoining(false)
	deadline := time.Now().Add(n.cfg.JoinTimeout)
	backoff := 100 * time.Millisecond
	for {
		count, err := n.ml.Join(targets)
		if c := n.gossip.takeJoinConflict(); c != nil {
			return c
		}
		if count > 0 {
			n.log.Info("cluster: joined gossip", "via", targets, "answered", count)
			return nil
		}
		if time.Now().Add(backoff).After(deadline) {
			return fmt.Errorf("cluster: could not join any of %v within %s: %v", targets, n.cfg.JoinTimeout, err)
		}
		n.log.Debug("cluster: join failed, retrying", "targets", targets, "err", err, "in", backoff)
		select {
		case <-n.shutdownCh:
			return errors.New("cluster: shut down while joining")
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// backgroundJoin keeps trying to join targets until one answers or some
// peer joins this node.
func (n *Node) backgroundJoin(targets []string) {
	defer n.wg.Done()
	targets = n.withoutSelf(targets)
	n.gossip.setJoining(true)
	defer n.gossip.setJoining(false)
	backoff := 500 * time.Millisecond
	for len(targets) > 0 && n.ml.NumMembers() <= 1 {
		count, err := n.ml.Join(targets)
		if c := n.gossip.takeJoinConflict(); c != nil {
			n.log.Error("cluster: gossip peers belong to another cluster", "err", c)
			return
		}
		if count > 0 {
			n.log.Info("cluster: joined gossip", "via", targets)
			return
		}
		n.log.Debug("cluster: background join failed", "targets", targets, "err", err)
		select {
		case <-n.shutdownCh:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (n *Node) withoutSelf(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		if a == "" || a == n.gossipAddr || a == n.cfg.GossipAddr || slices.Contains(out, a) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// localMeta is this node's gossip metadata.
func (n *Node) localMeta() nodeMeta {
	return nodeMeta{ID: n.cfg.NodeID, Raft: n.raftAddr, HTTP: n.cfg.HTTPAddr, Cluster: n.fsm.ClusterID(), Removed: n.removedSelf.Load(), Start: n.start, Rules: n.rulesKnown()}
}

// fsmChanged runs after every applied batch: a new cluster id must reach
// the gossip metadata.
func (n *Node) fsmChanged() {
	cid := n.fsm.ClusterID()
	if last := n.lastCluster.Load(); last != nil && *last == cid {
		return
	}
	n.lastCluster.Store(&cid)
	signal(n.metaCh)
}

// nudge asks the leader loop to reconcile membership and the
// housekeeping loop to save the known peers.
func (n *Node) nudge() {
	signal(n.nudgeCh)
	signal(n.peersCh)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// housekeeping refreshes the gossip metadata, saves the known peers and
// watches whether this node is still in the raft configuration.
func (n *Node) housekeeping() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.ReconcileInterval)
	defer t.Stop()
	wasMember := false
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-n.metaCh:
			n.log.Info("cluster: cluster id known", "cluster", n.fsm.ClusterID())
			n.refreshMeta()
		case <-n.peersCh:
			n.savePeers()
		case <-t.C:
			n.checkSelfRemoved(&wasMember)
		}
	}
}

// refreshMeta gossips this node's current metadata.
func (n *Node) refreshMeta() {
	if err := n.ml.UpdateNode(5 * time.Second); err != nil {
		n.log.Warn("cluster: refreshing gossip metadata failed", "err", err)
	}
}

// loadPeers reads the gossip addresses saved by an earlier run. The file
// is a cache: an unreadable or damaged one is ignored with a warning (and
// rewritten once gossip finds peers), as are entries that are not
// host:port addresses.
func (n *Node) loadPeers() []string {
	path := filepath.Join(n.cfg.DataDir, peersFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		old := filepath.Join(n.cfg.DataDir, oldPeersFile)
		if b, err = os.ReadFile(old); err == nil {
			n.log.Info("cluster: read the gossip peers from their old file name; saving them as "+peersFile, "file", old)
			n.migratePeers(old, b)
		}
	}
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			n.log.Warn("cluster: ignoring unreadable peers file (a cache of gossip addresses)", "file", path, "err", err)
		}
		return nil
	}
	var addrs []string
	if err := json.Unmarshal(b, &addrs); err != nil {
		n.log.Warn("cluster: ignoring damaged peers file (a cache of gossip addresses; rewritten when gossip finds peers)", "file", path, "err", err)
		return nil
	}
	good := addrs[:0]
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			n.log.Warn("cluster: ignoring a bad address in the peers file", "file", path, "addr", a)
			continue
		}
		good = append(good, a)
	}
	return n.withoutSelf(good)
}

// migratePeers writes b, read from the peers file's old name old, under
// the new name and removes the old file, so that it is not taken for a raft
// recovery file.
func (n *Node) migratePeers(old string, b []byte) {
	path := filepath.Join(n.cfg.DataDir, peersFile)
	if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
		n.log.Warn("cluster: saving peers failed", "err", err)
		return
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		n.log.Warn("cluster: saving peers failed", "err", err)
		return
	}
	if err := os.Remove(old); err != nil {
		n.log.Warn("cluster: removing the old peers file failed", "file", old, "err", err)
	}
}

// savePeers writes the gossip addresses of the known peers, so that a
// restarted node finds its cluster again without Join.
func (n *Node) savePeers() {
	addrs := n.gossip.gossipAddrs()
	if len(addrs) == 0 {
		return
	}
	b, _ := json.Marshal(addrs)
	path := filepath.Join(n.cfg.DataDir, peersFile)
	if old, err := os.ReadFile(path); err == nil && string(old) == string(b) {
		return
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		n.log.Warn("cluster: saving peers failed", "err", err)
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		n.log.Warn("cluster: saving peers failed", "err", err)
	}
}

// Shutdown leaves gossip, hands leadership over if this node leads a
// multi-node cluster, stops raft and closes the stores. It is safe to
// call more than once.
func (n *Node) Shutdown() error { return n.shutdown(true) }

// shutdown stops the node; graceful false skips the leadership transfer
// and the gossip leave, as in a crash (tests).
func (n *Node) shutdown(graceful bool) error {
	n.stopOnce.Do(func() {
		n.closed.Store(true)
		close(n.shutdownCh)
		n.fwd.stop() // forwarded writes in flight: answered, or cancelled after a moment
		var errs []error
		if graceful && n.raft != nil && n.raft.State() == raft.Leader && n.otherVoters() > 0 {
			f := n.raft.LeadershipTransfer()
			done := make(chan error, 1)
			go func() { done <- f.Error() }()
			select {
			case err := <-done:
				if err != nil {
					n.log.Debug("cluster: leadership transfer on shutdown failed", "err", err)
				}
			case <-time.After(5 * time.Second):
			}
		}
		if n.ml != nil {
			if graceful {
				n.gossip.announceLeave(n.ml, time.Second)
				if err := n.ml.Leave(time.Second); err != nil {
					n.log.Debug("cluster: gossip leave", "err", err)
				}
			}
			if err := n.ml.Shutdown(); err != nil {
				errs = append(errs, fmt.Errorf("gossip shutdown: %w", err))
			}
		}
		if n.raft != nil {
			err := waitRaftFuture(n.raft.Shutdown(), raftShutdownTimeout)
			if errors.Is(err, errTimedOut) {
				// Raft may still use the stores: leave them to the process's
				// exit rather than close them under it.
				n.stopErr = fmt.Errorf("cluster: shutdown: raft did not stop within %s; the raft log and state machine files are left open", raftShutdownTimeout)
				n.log.Error("cluster: raft did not stop in time", "timeout", raftShutdownTimeout)
				return
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
			}
		}
		n.wg.Wait()
		if n.rtrans != nil {
			if err := n.rtrans.Close(); err != nil {
				errs = append(errs, fmt.Errorf("raft transport: %w", err))
			}
		}
		if n.store != nil {
			if err := n.store.Close(); err != nil {
				errs = append(errs, fmt.Errorf("raft log: %w", err))
			}
		}
		if n.fsm != nil {
			if err := n.fsm.Close(); err != nil {
				errs = append(errs, fmt.Errorf("state machine: %w", err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			n.stopErr = fmt.Errorf("cluster: shutdown: %w", err)
		}
	})
	return n.stopErr
}

// otherVoters counts the voters in the raft configuration besides this
// node.
func (n *Node) otherVoters() int {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	c := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter && string(s.ID) != n.cfg.NodeID {
			c++
		}
	}
	return c
}

// fail records that the state machine cannot apply the log (a storage
// failure, or fsm.ErrNeedsUpgrade) and closes Failed: the node's owner
// must stop it. Writes and linearizable reads through the node fail from
// now on, since its state no longer follows the log.
func (n *Node) fail(err error) {
	n.failOnce.Do(func() {
		n.failErr = err
		n.log.Error("cluster: the state machine stopped applying the log; this node must stop", "err", err)
		close(n.failedCh)
	})
}

// Failed is closed when the node's state machine could not apply the log
// (FailedErr says why): the node no longer follows the cluster, and its
// owner should shut it down and report the error (kvnode exits).
func (n *Node) Failed() <-chan struct{} { return n.failedCh }

// FailedErr returns why Failed closed, or nil.
func (n *Node) FailedErr() error {
	select {
	case <-n.failedCh:
		return n.failErr
	default:
		return nil
	}
}

// ID returns the node id.
func (n *Node) ID() string { return n.cfg.NodeID }

// RaftAddr returns the raft address the node advertises.
func (n *Node) RaftAddr() string { return n.raftAddr }

// GossipAddr returns the gossip address the node advertises; other nodes
// join through it.
func (n *Node) GossipAddr() string { return n.gossipAddr }

// HTTPAddr returns the HTTP address the node advertises.
func (n *Node) HTTPAddr() string { return n.cfg.HTTPAddr }

// FSM returns the node's state machine, for reads.
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// ClusterID returns the cluster id, "" until the first leader set it.
func (n *Node) ClusterID() string { return n.fsm.ClusterID() }

// IsLeader reports whether this node is the raft leader right now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Snapshot makes raft take a snapshot now, which also compacts the log
// down to Config.TrailingLogs entries.
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("cluster: snapshot: %w", err)
	}
	return nil
}

// WaitLeader blocks until the cluster has a leader that this node knows,
// or ctx ends.
func (n *Node) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if _, id := n.raft.LeaderWithID(); id != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return noLeader("no leader elected: %v", ctx.Err())
		case <-n.shutdownCh:
			return unavailable("node is shutting down")
		case <-t.C:
		}
	}
}

// override sets *dst to v unless v is the zero value (a Config field left
// unset keeps raft's default).
func override[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}
