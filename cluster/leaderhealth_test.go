package cluster_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

// A node cut off from the leader (here: removed from the configuration; it
// keeps running) says so on its log stream and in its status, and a long
// poll on it does not hold its client for the full wait: it returns when
// the node loses its leader, and within a second while it has none.
func TestLogStreamSaysNoLeader(t *testing.T) {
	base := t.TempDir()
	cfg1 := testConfig(t, "n1", filepath.Join(base, "n1"))
	cfg1.Bootstrap = true
	n1 := mustStart(t, cfg1)
	waitCluster(t, n1)
	var nodes []*testNode
	nodes = append(nodes, n1)
	for _, id := range []string{"n2", "n3"} {
		cfg := testConfig(t, id, filepath.Join(base, id))
		cfg.Join = []string{n1.GossipAddr()}
		nodes = append(nodes, mustStart(t, cfg))
	}
	waitFor(t, 15*time.Second, "three voters", func() error {
		if v := voters(n1); len(v) != 3 {
			return fmt.Errorf("voters %v", v)
		}
		return nil
	})
	leader, followers := leaderOf(t, nodes...)
	f := followers[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	page, err := f.client().Log(ctx, f.FSM().AppliedIndex(), 0, 0)
	if err != nil || page.NoLeader || page.Leader != leader.ID() {
		t.Fatalf("follower's page %+v %v: want leader %s", page, err, leader.ID())
	}
	// The leader's status names itself (whichever node leads by now: a
	// loaded machine may move leadership).
	waitFor(t, 10*time.Second, "a leader's status to name itself", func() error {
		for _, n := range nodes {
			st, err := n.client().Status(ctx)
			if err != nil || st.State != "Leader" {
				continue
			}
			if st.NoLeader || st.Leader != n.ID() || st.LeaderContactMS != 0 {
				return fmt.Errorf("leader %s's status: leader %q, no_leader %v, contact %dms", n.ID(), st.Leader, st.NoLeader, st.LeaderContactMS)
			}
			return nil
		}
		return fmt.Errorf("no node's status says it leads")
	})

	// A long poll on f, waiting up to 20s for an entry that never comes to
	// it, while an operator removes f from the cluster.
	type answer struct {
		page api.LogPage
		err  error
		took time.Duration
	}
	polled := make(chan answer, 1)
	go func() {
		start := time.Now()
		p, err := f.client().Log(ctx, f.FSM().AppliedIndex(), 0, 20*time.Second)
		polled <- answer{p, err, time.Since(start)}
	}()
	if err := leader.client().RemoveMember(ctx, f.ID()); err != nil {
		t.Fatalf("remove %s: %v", f.ID(), err)
	}
	removed := time.Now()
	var a answer
	select {
	case a = <-polled:
	case <-ctx.Done():
		t.Fatal("long poll on the removed node did not return")
	}
	// Either the poll got the configuration entry that removes f (at once),
	// or it waited and then returned when f lost its leader.
	if a.err != nil || a.took > 15*time.Second {
		t.Fatalf("long poll on the removed node: %+v %v after %v", a.page, a.err, a.took)
	}
	waitFor(t, 10*time.Second, f.ID()+" to report no leader", func() error {
		if st := f.Status(); !st.NoLeader {
			return fmt.Errorf("status: leader %q, contact %dms", st.Leader, st.LeaderContactMS)
		}
		return nil
	})
	t.Logf("%s reports no leader %v after its removal; the long poll returned after %v (no_leader %v)", f.ID(), time.Since(removed).Round(time.Millisecond), a.took.Round(time.Millisecond), a.page.NoLeader)

	// Cut off: a long poll answers within about a second, saying so.
	start := time.Now()
	page, err = f.client().Log(ctx, f.FSM().AppliedIndex(), 0, 20*time.Second)
	if took := time.Since(start); err != nil || !page.NoLeader || took > 5*time.Second {
		t.Fatalf("long poll on a node without a leader: %+v %v after %v; want no_leader within about a second", page, err, took)
	}
	if h := f.LeaderHealth(); h.OK {
		t.Fatalf("LeaderHealth of the removed node: %+v", h)
	}
	// The others still have their leader.
	g := followers[1]
	if page, err := g.client().Log(ctx, 0, 1, 0); err != nil || page.NoLeader || page.Leader != leader.ID() {
		t.Fatalf("other follower's page: leader %q, no_leader %v, %v", page.Leader, page.NoLeader, err)
	}

	// A long poll on g, a healthy follower, returns when g loses its
	// leader (crashed: the one voter left cannot elect another).
	go func() {
		start := time.Now()
		p, err := g.client().Log(ctx, g.FSM().AppliedIndex(), 0, 20*time.Second)
		polled <- answer{p, err, time.Since(start)}
	}()
	waitFor(t, 10*time.Second, "the long poll to reach "+g.ID(), func() error {
		if g.FSM().AppliedIndex() == 0 {
			return fmt.Errorf("nothing applied")
		}
		return nil
	})
	leader.once.Do(func() { // a crash: a graceful stop would hand leadership to g
		_ = leader.srv.Close()
		if err := leader.Crash(); err != nil {
			t.Errorf("crash %s: %v", leader.ID(), err)
		}
	})
	select {
	case a = <-polled:
	case <-ctx.Done():
		t.Fatal("long poll on the follower that lost its leader did not return")
	}
	if a.err != nil || !a.page.NoLeader || a.took > 10*time.Second {
		t.Fatalf("long poll on a follower that lost its leader: %+v %v after %v; want no_leader early", a.page, a.err, a.took)
	}
	t.Logf("long poll on %s returned %v after it started, when its leader stopped", g.ID(), a.took.Round(time.Millisecond))
}
