package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/cluster"
)

// TestOtherRaftLogCluster runs a 3-node cluster on the raft log store
// that is not the default (the rest of the suite runs on the default,
// cluster.DefaultLogStore): writes through every node, kill -9 of the
// leader while writes go on, restart with its data, and every
// acknowledged write on every node afterwards. A node of that cluster
// restarted with the default store named refuses to start and names the
// kind of log its data directory holds; restarted without the flag
// (-raft-log auto, the default) it runs on the log it has.
func TestOtherRaftLogCluster(t *testing.T) {
	skipShort(t)
	kind, def := cluster.LogStoreBolt, cluster.LogStoreWAL
	if cluster.DefaultLogStore == cluster.LogStoreBolt {
		kind, def = def, kind
	}
	onDisk := map[string]string{cluster.LogStoreBolt: "raft-boltdb log", cluster.LogStoreWAL: "raft-wal log"}[kind]
	configured := map[string]string{cluster.LogStoreBolt: "configured for raft-boltdb", cluster.LogStoreWAL: "configured for raft-wal"}[def]
	const tree = "parts"
	nodes := startClusterWith(t, 3, "-raft-log", kind)
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
	leader.Start("-raft-log", kind, "-join", gossipAddrs(rest...))
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
	other.Start("-raft-log", def, "-join", gossipAddrs(nodes[:2]...))
	err, exited := other.WaitExit(30 * time.Second)
	if !exited {
		t.Fatalf("%s started with -raft-log %s on a %s data directory", other.ID, def, kind)
	}
	if want := onDisk + " but the node is " + configured; err == nil || !strings.Contains(other.RunLog(), want) {
		t.Fatalf("%s exited with %v; want a refusal saying %q; log:\n%s", other.ID, err, want, other.RunLog())
	}
	// Without the flag (auto): the kind on disk.
	other.Start("-join", gossipAddrs(nodes[:2]...))
	other.WaitReady()
	if !strings.Contains(other.RunLog(), "kind="+kind) {
		t.Errorf("%s without -raft-log: log does not say it runs on %s; log:\n%s", other.ID, kind, other.RunLog())
	}
	waitApplied(t, nodes, acked.maxIndex)
	checkRecords(t, nodes[2:], tree, acked.recs)
}
