package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
)

// A command the state machine would refuse whatever its state never
// becomes a log entry: not through a follower (checked there, and again
// on the leader), not in a batch, not sent to the leader's own route.
func TestRefusedCommandsAreNotLogged(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	cfg1 := testConfig(t, "n1", filepath.Join(base, "n1"))
	cfg1.Bootstrap = true
	n1 := mustStart(t, cfg1)
	waitCluster(t, n1)
	cfg2 := testConfig(t, "n2", filepath.Join(base, "n2"))
	cfg2.Join = []string{n1.GossipAddr()}
	n2 := mustStart(t, cfg2)
	waitFor(t, 15*time.Second, "two voters", func() error {
		for _, n := range []*testNode{n1, n2} {
			if v := voters(n); len(v) != 2 {
				return fmt.Errorf("%s sees voters %v", n.ID(), v)
			}
		}
		return nil
	})
	leader, followers := leaderOf(t, n1, n2)
	f := followers[0]
	good := value(t, map[string]any{"name": "R1"})
	first, err := f.Apply(ctx, &fsm.Command{Op: fsm.OpCreate, Tree: "parts", Data: good})
	if err != nil || first.Err != nil {
		t.Fatalf("good create: %v %v", err, first.Error())
	}
	before := first.Index

	huge := value(t, map[string]any{"blob": bytes.Repeat([]byte{7}, 4<<20)})
	deep := append(append([]byte{0xa1, 0x61, 'a'}, bytes.Repeat([]byte{0x81}, 100_000)...), 0)
	bad := []*fsm.Command{
		{Op: fsm.OpCreate, Tree: "parts", Data: huge},
		{Op: fsm.OpCreate, Tree: "parts", Data: deep},
		{Op: fsm.OpDelete, Tree: "parts", Key: api.Key{ID: 1, Rev: 1}, Data: huge},
		{Op: fsm.OpRegisterClient, Client: "c1"}, // no name
	}
	for _, c := range bad {
		res, err := f.Apply(ctx, c)
		if err != nil || res.Err == nil || res.Index != 0 {
			t.Errorf("%s through the follower: %+v, %v: want a rejection without index", c.Op, res, err)
		}
		// What a follower that does not check would forward.
		res, err = leader.ApplyLeader(ctx, c)
		if err != nil || res.Err == nil || res.Index != 0 {
			t.Errorf("%s on the leader's route: %+v, %v: want a rejection without index", c.Op, res, err)
		}
	}
	res, err := f.ApplyMany(ctx, []*fsm.Command{bad[0], {Op: fsm.OpCreate, Tree: "parts", Data: good}, bad[1]})
	if err != nil || len(res) != 3 || res[0].Err.Code != api.CodeTooLarge || res[1].Err != nil || res[2].Err.Code != api.CodeInvalid {
		t.Fatalf("batch through the follower: %+v %v", res, err)
	}
	goodIndex := res[1].Index
	res, err = leader.ApplyLeaderMany(ctx, bad)
	if err != nil || len(res) != len(bad) {
		t.Fatalf("batch on the leader's route: %+v %v", res, err)
	}
	for i, r := range res {
		if r.Err == nil || r.Index != 0 {
			t.Errorf("leader batch item %d: %+v", i, r)
		}
	}
	// Only the one good create of the batch is a command entry since
	// (raft's own entries, from a new election on a loaded machine, may
	// be there too). Both nodes hold the same.
	for _, n := range []*testNode{leader, f} {
		if err := n.FSM().WaitApplied(ctx, goodIndex); err != nil {
			t.Fatal(err)
		}
		page, err := n.Log(before, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Entries) != 1 || page.Entries[0].Index != goodIndex {
			for _, e := range page.Entries {
				c, _ := fsm.DecodeCommand(e.Data)
				t.Logf("%s: entry %d: %s of %d bytes", n.ID(), e.Index, c.Op, len(e.Data))
			}
			t.Errorf("%s: %d command entries after index %d, want 1 (the good create at %d)", n.ID(), len(page.Entries), before, goodIndex)
		}
	}
}
