package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shelfdb/shelf/fsm"
)

// TestClientSightingsAcrossNodes runs a client replica following one node
// of a three-node cluster: every node's GET /v1/clients shows it seen,
// with its replica index, and the sightings put nothing in the log.
func TestClientSightingsAcrossNodes(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	ctx := context.Background()
	start := time.Now()
	db := openClient(t, clientConfig(t, "watcher", nodes[1].HTTP), true)
	id := db.ClientID()
	for _, n := range nodes {
		waitFor(t, 30*time.Second, "node "+n.ID+" shows the client seen", func() (bool, string) {
			cls, err := n.Client.Clients(ctx)
			if err != nil {
				return false, err.Error()
			}
			for _, c := range cls {
				if c.ID == id {
					ok := !c.LastSeen.Before(start.Add(-time.Second)) && c.ReplicaIndex > 0 && c.ReplicaIndex <= db.AppliedIndex()
					return ok, fmt.Sprintf("%+v (replica at %d)", c, db.AppliedIndex())
				}
			}
			return false, fmt.Sprintf("client %s not listed: %+v", id, cls)
		})
	}
	// The client keeps polling (one-second polls): no entry of the log is
	// a sighting.
	page, err := nodes[0].Client.Log(ctx, 0, 10000, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range page.Entries {
		cmd, err := fsm.DecodeCommand(e.Data)
		if err != nil {
			t.Fatalf("entry %d: %v", e.Index, err)
		}
		if cmd.Op == fsm.OpClientSeen {
			t.Fatalf("entry %d is a client sighting: liveness went through raft", e.Index)
		}
	}
}
