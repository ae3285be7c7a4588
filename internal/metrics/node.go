package metrics

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/fsm"
)

// BorrowsSoon is the horizon of shelf_borrows_expiring_soon.
const BorrowsSoon = time.Minute

// raftStates are the values of shelf_raft_state's state label.
var raftStates = []string{"leader", "follower", "candidate", "shutdown"}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

// nodeCollector reads a node's figures when scraped: their source of
// truth is raft and the state machine, so nothing is kept here.
type nodeCollector struct {
	node *cluster.Node
	now  func() time.Time

	state, term, commit, raftApplied, applied, lastLog *prometheus.Desc
	leaderOK, leaderContact                            *prometheus.Desc
	snapAge, snapIndex                                 *prometheus.Desc
	borrows, borrowsSoon, records                      *prometheus.Desc
	rules, rulesSupported, nodeInfo                    *prometheus.Desc
}

// WatchNode registers the gauges read from node at each scrape. Call it
// once per Metrics.
func (m *Metrics) WatchNode(node *cluster.Node) error {
	c := &nodeCollector{
		node:           node,
		now:            m.now,
		state:          desc("raft_state", "1 for the raft state this node is in (leader, follower, candidate, shutdown), 0 for the others.", "state"),
		term:           desc("raft_term", "Raft's current term."),
		commit:         desc("raft_commit_index", "Highest log index this node knows to be committed."),
		raftApplied:    desc("raft_applied_index", "Last log index raft handed to the state machine (no-op entries included)."),
		applied:        desc("applied_index", "Last log index the state machine applied (fsm.db; command and configuration entries)."),
		lastLog:        desc("raft_last_log_index", "Last index in this node's raft log."),
		leaderOK:       desc("leader_ok", "1 when this node knows a leader and heard from it recently (or leads), 0 when it is cut off."),
		leaderContact:  desc("leader_contact_seconds", "Follower: seconds since it last heard from the leader (0 on the leader)."),
		snapAge:        desc("snapshot_age_seconds", "Seconds since this node's newest raft snapshot was taken (absent before the first snapshot)."),
		snapIndex:      desc("snapshot_last_index", "Log index of this node's newest raft snapshot (absent before the first snapshot)."),
		borrows:        desc("borrows_held", "Borrows held (expired ones not yet removed included)."),
		borrowsSoon:    desc("borrows_expiring_soon", "Borrows whose expiry is within the next minute or already passed."),
		records:        desc("tree_records", "Records in each tree.", "tree"),
		rules:          desc("cluster_rules_version", "State machine rules version the cluster runs, as this node applied it."),
		rulesSupported: desc("supported_rules_version", "Newest state machine rules version this binary applies."),
		nodeInfo:       desc("node_info", "Always 1; the labels name this node and its cluster.", "node_id", "cluster_id"),
	}
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("metrics: watch node: %w", err)
	}
	return nil
}

// Describe implements prometheus.Collector.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.term, c.commit, c.raftApplied, c.applied, c.lastLog,
		c.leaderOK, c.leaderContact, c.snapAge, c.snapIndex, c.borrows, c.borrowsSoon, c.records,
		c.rules, c.rulesSupported, c.nodeInfo} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	now := c.now()
	s := c.node.Stats()
	for _, st := range raftStates {
		gauge(c.state, boolValue(strings.EqualFold(s.State, st)), st)
	}
	gauge(c.term, float64(s.Term))
	gauge(c.commit, float64(s.CommitIndex))
	gauge(c.raftApplied, float64(s.RaftAppliedIndex))
	gauge(c.applied, float64(s.AppliedIndex))
	gauge(c.lastLog, float64(s.LastLogIndex))
	gauge(c.leaderOK, boolValue(s.LeaderOK))
	gauge(c.leaderContact, s.LeaderContact.Seconds())
	if s.HasSnapshot {
		gauge(c.snapIndex, float64(s.SnapshotIndex))
		if !s.SnapshotTime.IsZero() {
			gauge(c.snapAge, max(now.Sub(s.SnapshotTime).Seconds(), 0))
		}
	}
	gauge(c.rules, float64(s.RulesVersion))
	gauge(c.rulesSupported, float64(fsm.RulesVersion))
	gauge(c.nodeInfo, 1, c.node.ID(), s.ClusterID)

	fs, err := c.node.FSM().Stats(now.Add(BorrowsSoon).UnixNano())
	if err != nil {
		err = fmt.Errorf("state machine counts: %w", err)
		ch <- prometheus.NewInvalidMetric(c.borrows, err)
		return
	}
	gauge(c.borrows, float64(fs.Borrows))
	gauge(c.borrowsSoon, float64(fs.ExpiringBy))
	for tree, n := range fs.Records {
		gauge(c.records, float64(n), tree)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
