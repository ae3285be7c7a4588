package integration

import (
	"context"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

// TestCutOffLeaderStepsDown freezes the leader (SIGSTOP: it neither sends
// nor answers anything, as behind a partition), checks that the other two
// elect a new leader and keep taking writes, then lets the old leader back:
// it must follow the new leader, catch up, and every node must hold every
// acknowledged record. A write sent to the old leader right after it comes
// back is either refused or committed by the majority: never acknowledged
// and then lost.
func TestCutOffLeaderStepsDown(t *testing.T) {
	skipShort(t)
	const tree = "parts"
	nodes := startCluster(t, 3)
	acked := newAcks()
	writeRecords(t, nodes, tree, 100, 4, 1, acked)

	old := waitLeader(t, nodes)
	var others []*Node
	for _, n := range nodes {
		if n != old {
			others = append(others, n)
		}
	}
	old.Pause()
	cut := time.Now()
	t.Cleanup(old.Resume) // a stopped process cannot be killed cleanly otherwise
	next := waitLeader(t, others)
	t.Logf("%s cut off; %s leads after %v", old.ID, next.ID, time.Since(cut).Round(time.Millisecond))
	writeRecords(t, others, tree, 200, 4, 101, acked)

	old.Resume()
	// Write through the returning node at once: while it may still think it
	// leads, what it acknowledges must survive.
	for i := int64(301); i <= 350; i++ {
		data := value(t, i)
		deadline := time.Now().Add(electionTimeout)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			res, err := old.Client.Create(ctx, tree, api.WriteRequest{Data: data})
			cancel()
			if err == nil {
				acked.add(res, data)
				break
			}
			if !retryable(err) || time.Now().After(deadline) {
				t.Fatalf("create %d through the returning node %s: %v", i, old.ID, err)
			}
			time.Sleep(50 * time.Millisecond) // back off between attempts, not a synchronisation
		}
	}
	waitConverged(t, nodes)
	waitApplied(t, nodes, acked.maxIndex)
	checkRecords(t, nodes, tree, acked.recs)
	if len(acked.dups) > 0 {
		t.Fatalf("keys acknowledged twice: %v", acked.dups)
	}
	waitSameApplied(t, nodes, acked.maxIndex)
	checkLists(t, nodes, tree, acked.recs)
}
