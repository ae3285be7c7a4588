package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/fsm"
)

// ApplyMany through a follower: the batch becomes one log entry per
// fsm.MaxBatchCommands commands, each command with its own result at its
// entry's index (a refused one without an entry, a rejected one without
// effect), and every node's events say the same, in order.
func TestApplyManyIsOneEntryPerBatch(t *testing.T) {
	ctx := context.Background()
	nodes := threeNodes(t, func(*cluster.Config) {})
	_, followers := leaderOf(t, nodes...)
	f := followers[0]
	first, err := f.Apply(ctx, create(t, "first"))
	if err != nil || first.Err != nil {
		t.Fatalf("first create: %+v %v", first, err)
	}
	const n = fsm.MaxBatchCommands + 44
	cmds := make([]*fsm.Command, n)
	for i := range cmds {
		cmds[i] = create(t, fmt.Sprintf("c%d", i))
	}
	cmds[3] = &fsm.Command{Op: fsm.OpCreate, Tree: "no/such tree", Data: value(t, "x")}                          // refused before the log
	cmds[7] = &fsm.Command{Op: fsm.OpUpdate, Tree: "parts", Key: first.Key, Client: "nobody", Data: value(t, 1)} // rejected by the state
	res, err := f.ApplyMany(ctx, cmds)
	if err != nil || len(res) != n {
		t.Fatalf("ApplyMany: %d results, %v", len(res), err)
	}
	if res[3].Err == nil || res[3].Index != 0 || res[7].Err == nil || res[7].Index == 0 {
		t.Fatalf("refused %+v, rejected %+v", res[3], res[7])
	}
	// The first entry takes the first MaxBatchCommands commands that went
	// to the log; the rest are the next entry.
	var entry1, entry2 uint64
	sent := 0
	for i, r := range res {
		if i == 3 {
			continue
		}
		want := &entry1
		if sent >= fsm.MaxBatchCommands {
			want = &entry2
		}
		if *want == 0 {
			*want = r.Index
		}
		if r.Index != *want {
			t.Fatalf("command %d at index %d, want %d", i, r.Index, *want)
		}
		sent++
		if i != 7 && r.Err != nil {
			t.Fatalf("command %d: %v", i, r.Err)
		}
	}
	if entry1 <= first.Index || entry2 <= entry1 {
		t.Fatalf("entries %d and %d after %d", entry1, entry2, first.Index)
	}
	for _, node := range nodes {
		if err := node.FSM().WaitApplied(ctx, entry2); err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Err != nil {
				continue
			}
			rec, err := node.FSM().Get("parts", r.Key)
			var v string
			if err != nil || api.Unmarshal(rec.Data, &v) != nil || v != fmt.Sprintf("c%d", i) || rec.Index != r.Index {
				t.Fatalf("%s: command %d: record %v %+v %v", node.ID(), i, r.Key, rec, err)
			}
		}
		// The log holds two batch entries of the commands sent.
		page, err := node.Log(first.Index, 100)
		if err != nil {
			t.Fatal(err)
		}
		var batches []int
		for _, e := range page.Entries {
			c, err := fsm.DecodeCommand(e.Data)
			if err != nil {
				t.Fatal(err)
			}
			if c.Op == fsm.OpBatch {
				batches = append(batches, len(c.Batch))
			}
		}
		if fmt.Sprint(batches) != fmt.Sprint([]int{fsm.MaxBatchCommands, n - 1 - fsm.MaxBatchCommands}) {
			t.Errorf("%s: batch entries of %v commands", node.ID(), batches)
		}
		// Events: one created event per create, in the order of the
		// commands, at their entry's index. (The node buffers an entry's
		// events just after the state machine applied it: poll until the
		// buffer reaches entry2.)
		var want []api.Key
		for _, r := range res {
			if r.Err == nil {
				want = append(want, r.Key)
			}
		}
		waitFor(t, 10*time.Second, node.ID()+"'s events of the batch entries", func() error {
			page2, err := node.Events(ctx, first.Index, 10*n, 0)
			if err != nil {
				return err
			}
			if page2.Next < entry2 {
				return fmt.Errorf("events up to %d buffered", page2.Next)
			}
			var keys []api.Key
			for _, e := range page2.Events {
				if e.Type == api.EventCreated && e.Index <= entry2 {
					keys = append(keys, e.Key)
				}
			}
			if fmt.Sprint(keys) != fmt.Sprint(want) {
				t.Fatalf("%s: created events %v, want %v", node.ID(), keys, want)
			}
			return nil
		})
	}
}

// The rules gate on the leader: in a cluster whose code knows rules 3
// only (so the cluster runs 3), ApplyMany proposes one entry per command,
// as before batch entries existed, and nothing in the log is a batch.
func TestNoBatchEntriesBeforeRules4(t *testing.T) {
	ctx := context.Background()
	old := fsm.BatchRules - 1
	nodes := threeNodes(t, func(c *cluster.Config) { *c = cluster.WithRules(*c, old) })
	_, followers := leaderOf(t, nodes...)
	f := followers[0]
	if got := f.FSM().Rules(); got != old {
		t.Fatalf("cluster runs rules %d, want %d", got, old)
	}
	before := f.FSM().AppliedIndex()
	cmds := []*fsm.Command{create(t, "a"), create(t, "b"), create(t, "c")}
	res, err := f.ApplyMany(ctx, cmds)
	if err != nil || len(res) != len(cmds) {
		t.Fatalf("ApplyMany: %+v %v", res, err)
	}
	for i, r := range res {
		if r.Err != nil || (i > 0 && r.Index <= res[i-1].Index) {
			t.Fatalf("command %d: %+v, want its own entry after %d", i, r, res[max(i-1, 0)].Index)
		}
	}
	if err := f.FSM().WaitApplied(ctx, res[2].Index); err != nil {
		t.Fatal(err)
	}
	page, err := f.Log(before, 100)
	if err != nil {
		t.Fatal(err)
	}
	creates := 0
	for _, e := range page.Entries {
		c, err := fsm.DecodeCommand(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		switch c.Op {
		case fsm.OpBatch:
			t.Fatalf("entry %d is a batch under rules %d", e.Index, old)
		case fsm.OpCreate:
			creates++
		}
	}
	if creates != len(cmds) || f.FSM().Rules() != old {
		t.Fatalf("%d create entries, rules %d; want %d entries under rules %d", creates, f.FSM().Rules(), len(cmds), old)
	}
}
