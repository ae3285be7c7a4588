package integration

import (
	"strings"
	"testing"
	"time"
)

// TestRaftWALCluster runs a 3-node cluster on the raft-wal log store
// (kvnode -raft-log wal): writes through every node, kill -9 of the
// leader while writes go on, restart with its data, and every acknowledged
// write on every node afterwards. A node of that cluster restarted with
// -raft-log bolt refuses to start and names the kind of log its data
// directory holds; restarted without the flag (-raft-log auto, the
// default) it runs on the raft-wal log it has.
func TestRaftWALCluster(t *testing.T) {
	skipShort(t)
	const tree = "parts"
	nodes := startClusterWith(t, 3, "-raft-log", "wal")
	acked := newAcks()
	writeRecords(t, nodes, tree, 100, 4, 1, acked)

	leader := waitLeader(t, nodes)
	leader.Kill()
	var rest []*Node
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	waitLeader(t, rest)
	writeRecords(t, rest, tree, 50, 2, 1001, acked)
	leader.Start("-raft-log", "wal", "-join", gossipAddrs(rest...))
	leader.WaitReady()
	waitConverged(t, nodes)
	writeRecords(t, nodes, tree, 50, 2, 2001, acked)
	waitApplied(t, nodes, acked.maxIndex)
	checkRecords(t, nodes, tree, acked.recs)
	if n := checkLists(t, nodes, tree, acked.recs); n != len(acked.recs) {
		t.Errorf("nodes list %d records, %d were written", n, len(acked.recs))
	}

	// The same data directory with the other store named: refused.
	other := nodes[2]
	if err := other.Stop(); err != nil {
		t.Fatalf("stop %s: %v", other.ID, err)
	}
	other.Start("-raft-log", "bolt", "-join", gossipAddrs(nodes[:2]...))
	err, exited := other.WaitExit(30 * time.Second)
	if !exited {
		t.Fatalf("%s started with -raft-log bolt on a raft-wal data directory", other.ID)
	}
	if err == nil || !strings.Contains(other.RunLog(), "raft-wal log but the node is configured for raft-boltdb") {
		t.Fatalf("%s exited with %v; want a refusal naming the raft-wal log; log:\n%s", other.ID, err, other.RunLog())
	}
	// Without the flag (auto): the kind on disk.
	other.Start("-join", gossipAddrs(nodes[:2]...))
	other.WaitReady()
	if !strings.Contains(other.RunLog(), "kind=wal") {
		t.Errorf("%s without -raft-log: log does not say it runs on raft-wal; log:\n%s", other.ID, other.RunLog())
	}
	waitApplied(t, nodes, acked.maxIndex)
	checkRecords(t, nodes[2:], tree, acked.recs)
}
