package cluster

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"
	"github.com/shelfdb/shelf/fsm"
)

// leaderLoop does the leader's chores on leadership gain, on gossip
// changes and every ReconcileInterval: set the cluster id if the state
// machine has none, and add live gossip members missing from the raft
// configuration as voters.
func (n *Node) leaderLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-n.shutdownCh:
			return
		case leader := <-n.raft.LeaderCh():
			if leader {
				term := n.raft.CurrentTerm()
				n.log.Info("cluster: this node is the leader", "term", term)
				// Commit an entry of the new term now, so that the first
				// linearizable read does not wait for it.
				if err := n.reads.termCommitted(term); err != nil {
					n.log.Debug("cluster: first commit of the term", "err", err)
				}
			} else {
				n.log.Info("cluster: this node lost leadership")
			}
		case <-t.C:
		case <-n.nudgeCh:
		}
		if n.raft.State() != raft.Leader {
			continue
		}
		n.ensureClusterID()
		n.ensureRules()
		n.reconcile()
	}
}

// ensureClusterID gives the cluster its id when the state machine has
// none: after a barrier, so that every earlier entry is applied first.
func (n *Node) ensureClusterID() {
	if n.fsm.ClusterID() != "" {
		return
	}
	if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
		n.log.Debug("cluster: barrier before setting the cluster id failed", "err", err)
		return
	}
	if n.fsm.ClusterID() != "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
	defer cancel()
	id := uuid.NewString()
	res, err := n.applyLocal(ctx, &fsm.Command{Op: fsm.OpSetCluster, Cluster: id, Rules: n.rulesKnown()})
	switch {
	case err != nil:
		n.log.Warn("cluster: setting the cluster id failed", "err", err)
	case res.Err != nil:
		n.log.Warn("cluster: the state machine refused the cluster id", "err", res.Err)
	default:
		n.log.Info("cluster: new cluster id", "cluster", n.fsm.ClusterID())
	}
}

// ensureRules moves the cluster to this code's rules version
// (fsm.RulesVersion) once every voter's code knows it (its gossip
// metadata says so): a replica never meets rules it does not know,
// except a client or server that runs older code than the cluster, which
// then stops with fsm.ErrNeedsUpgrade rather than diverge.
func (n *Node) ensureRules() {
	if n.fsm.ClusterID() == "" || n.fsm.Rules() >= n.rulesKnown() {
		return
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return
	}
	peers := n.gossip.snapshot()
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == n.cfg.NodeID {
			continue
		}
		if p, ok := peers[string(s.ID)]; !ok || p.meta.Rules < n.rulesKnown() {
			n.log.Debug("cluster: not raising the rules version yet: a voter runs older code or is not in gossip", "voter", s.ID)
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
	defer cancel()
	res, err := n.applyLocal(ctx, &fsm.Command{Op: fsm.OpSetRules, Rules: n.rulesKnown()})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		n.log.Warn("cluster: raising the rules version failed", "err", err)
		return
	}
	n.log.Info("cluster: state machine rules raised", "rules", n.rulesKnown())
}

// reconcile adds every live gossip member of this cluster (or of no
// cluster yet) that is missing from the raft configuration as a voter.
// Failed members are never removed here: that is the operator's call.
func (n *Node) reconcile() {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		n.log.Debug("cluster: reconcile: get configuration", "err", err)
		return
	}
	servers := map[raft.ServerID]raft.Server{}
	for _, s := range f.Configuration().Servers {
		servers[s.ID] = s
	}
	ours := n.fsm.ClusterID()
	for name, p := range n.gossip.snapshot() {
		if p.health != HealthAlive || p.meta.ID == "" || p.meta.Raft == "" || p.meta.ID != name {
			continue
		}
		if ours != "" && p.meta.Cluster != "" && p.meta.Cluster != ours {
			continue
		}
		id := raft.ServerID(p.meta.ID)
		if s, ok := servers[id]; ok && s.Address == raft.ServerAddress(p.meta.Raft) {
			continue
		}
		if p.meta.Removed || n.removedRun(p) {
			continue
		}
		if n.raft.State() != raft.Leader {
			return
		}
		if err := n.verifyPeer(p.meta.Raft); err != nil {
			if n.refusals.shouldLog(p.meta.ID) {
				n.log.Warn("cluster: not adding a gossip member whose raft address does not present a node certificate of the cluster CA (-tls-ca)", "peer", p.meta.ID, "raft", p.meta.Raft, "err", err)
			}
			continue
		}
		n.log.Info("cluster: adding voter", "peer", p.meta.ID, "raft", p.meta.Raft)
		if err := n.waitConfigChange(n.raft.AddVoter(id, raft.ServerAddress(p.meta.Raft), 0, n.cfg.ApplyTimeout)); err != nil {
			n.log.Warn("cluster: adding voter failed", "peer", p.meta.ID, "err", err)
			return
		}
	}
}

// removedRun reports whether peer p is a server an operator removed that
// still runs as it did then (same start token): such a server is not
// added back. One that restarted since is readmitted: the removal is
// forgotten, in the replicated state, and reconcile may add it.
func (n *Node) removedRun(p peer) bool {
	start, removed, err := n.fsm.Removed(p.meta.ID)
	if err != nil {
		n.log.Warn("cluster: reading removed members", "err", err)
		return true
	}
	if !removed {
		return false
	}
	if start == p.meta.Start {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
	defer cancel()
	res, err := n.applyLocal(ctx, &fsm.Command{Op: fsm.OpReadmitMember, Member: p.meta.ID})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		n.log.Warn("cluster: readmitting a restarted member failed", "peer", p.meta.ID, "err", err)
		return true
	}
	n.log.Info("cluster: a removed member restarted; readmitting it", "peer", p.meta.ID)
	return false
}

// checkSelfRemoved notices when this node, once a member, is no longer in
// the raft configuration (an operator removed it) and says so in its
// gossip metadata, so that no leader adds it back until it restarts.
func (n *Node) checkSelfRemoved(wasMember *bool) {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	member := false
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == n.cfg.NodeID {
			member = true
			break
		}
	}
	switch {
	case member:
		*wasMember = true
		if n.removedSelf.Swap(false) {
			n.log.Info("cluster: this node is a member again")
			n.refreshMeta()
		}
	case *wasMember && !n.removedSelf.Load():
		n.removedSelf.Store(true)
		n.log.Warn("cluster: this node was removed from the raft configuration; restart it to rejoin")
		n.refreshMeta()
	}
}

// rulesKnown is the newest state machine rules this node's code knows:
// fsm.RulesVersion (tests may claim an older one, Config.rules).
func (n *Node) rulesKnown() uint32 {
	if n.cfg.rules != 0 {
		return n.cfg.rules
	}
	return fsm.RulesVersion
}
