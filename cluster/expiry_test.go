package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/fsm"
)

// threeNodes starts a three-node cluster and waits until all are voters.
func threeNodes(t *testing.T, tune func(*cluster.Config)) []*testNode {
	t.Helper()
	base := t.TempDir()
	var nodes []*testNode
	for i, id := range []string{"n1", "n2", "n3"} {
		cfg := testConfig(t, id, filepath.Join(base, id))
		tune(&cfg)
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Join = []string{nodes[0].GossipAddr()}
		}
		nodes = append(nodes, mustStart(t, cfg))
		if i == 0 {
			waitCluster(t, nodes[0])
		}
	}
	waitFor(t, 15*time.Second, "three voters", func() error {
		for _, n := range nodes {
			if v := voters(n); len(v) != 3 {
				return fmt.Errorf("%s sees voters %v", n.ID(), v)
			}
		}
		return nil
	})
	return nodes
}

// Ids come from one replicated counter: ranges granted and records created
// through one leader after another never share an id.
func TestNoIDTwiceAcrossLeaderChanges(t *testing.T) {
	ctx := context.Background()
	nodes := threeNodes(t, func(*cluster.Config) {})
	seen := map[uint64]string{}
	take := func(id uint64, what string) {
		if prev, dup := seen[id]; dup {
			t.Fatalf("id %d handed out twice: %s, then %s", id, prev, what)
		}
		seen[id] = what
	}
	for round := range 6 {
		leader, followers := leaderOf(t, nodes...)
		via := followers[round%2] // forwarded to the leader
		c := fmt.Sprintf("c%d", round)
		if _, err := via.Apply(ctx, &fsm.Command{Op: fsm.OpRegisterClient, Client: c, Name: c}); err != nil {
			t.Fatal(err)
		}
		r, err := via.Apply(ctx, &fsm.Command{Op: fsm.OpGrantRange, Client: c, Size: 100})
		if err != nil || r.Error() != nil {
			t.Fatalf("grant: %v %v", err, r.Error())
		}
		for id := r.Range.Start; id < r.Range.End; id++ {
			take(id, fmt.Sprintf("range of %s under %s", c, leader.ID()))
		}
		cr, err := leader.Apply(ctx, &fsm.Command{Op: fsm.OpCreate, Tree: "parts", Data: value(t, round)})
		if err != nil || cr.Error() != nil {
			t.Fatalf("create: %v %v", err, cr.Error())
		}
		take(cr.Key.ID, "operator create under "+leader.ID())
		if err := leader.TransferLeadership(ctx, ""); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "a new leader", func() error {
			if leader.IsLeader() {
				return errors.New("still leading")
			}
			return nil
		})
	}
}

// A borrow with a ttl ends once, by an expire command of whichever node
// leads when its time runs out, at a time consistent with the rule: not
// before the expiry, and not later than the new leader's grace period
// after it. Here the leader that accepted the borrow crashes first.
func TestBorrowExpiresOnceAcrossLeaderCrash(t *testing.T) {
	ctx := context.Background()
	nodes := threeNodes(t, func(c *cluster.Config) { c.ExpiryGrace, c.ExpiryInterval = 500*time.Millisecond, 50*time.Millisecond })
	leader, _ := leaderOf(t, nodes...)
	apply := func(c *fsm.Command) *fsm.Result {
		t.Helper()
		r, err := leader.Apply(ctx, c)
		if err == nil {
			err = r.Error()
		}
		if err != nil {
			t.Fatalf("%s: %v", c.Op, err)
		}
		return r
	}
	apply(&fsm.Command{Op: fsm.OpRegisterClient, Client: "c1", Name: "workstation"})
	key := apply(&fsm.Command{Op: fsm.OpCreate, Tree: "parts", Data: value(t, "R1")}).Key
	const ttl = 2 * time.Second
	borrowed := apply(&fsm.Command{Op: fsm.OpBorrow, Tree: "parts", Client: "c1", Key: key, TTL: int64(ttl)})
	bs, err := leader.FSM().Borrows("parts")
	if err != nil || len(bs) != 1 {
		t.Fatalf("borrows %+v %v", bs, err)
	}
	expires := bs[0].Expires
	if err := leader.Crash(); err != nil {
		t.Fatal(err)
	}
	var rest []*testNode
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	newLeader, _ := leaderOf(t, rest...)
	var hist []api.AuditEntry
	waitFor(t, 20*time.Second, "the borrow to expire", func() error {
		hist, err = newLeader.FSM().History("parts", key)
		if err != nil {
			return err
		}
		if len(hist) < 2 {
			return errors.New("not expired yet")
		}
		return nil
	})
	if len(hist) != 2 || hist[0].Action != api.AuditBorrowed || hist[1].Action != api.AuditExpired || hist[1].Holder != "c1" {
		t.Fatalf("history %+v", hist)
	}
	ended := hist[1].Time
	if ended.Before(expires) {
		t.Fatalf("borrow expired at %v, before its expiry %v", ended, expires)
	}
	// The new leader was elected within a few seconds of the crash; the
	// expiry comes at most its grace (plus polling) after both.
	if late := ended.Sub(expires); late > 10*time.Second {
		t.Fatalf("borrow expired %v after its expiry", late)
	}
	// Every surviving replica holds the same single expiry, and no borrow.
	for _, n := range rest {
		if err := n.FSM().WaitApplied(ctx, hist[1].Index); err != nil {
			t.Fatal(err)
		}
		h, _ := n.FSM().History("parts", key)
		if len(h) != 2 || h[1] != hist[1] {
			t.Fatalf("%s history %+v, leader's %+v", n.ID(), h, hist)
		}
		if bs, _ := n.FSM().Borrows(""); len(bs) != 0 {
			t.Fatalf("%s still has borrows %+v", n.ID(), bs)
		}
	}
	// No second expiry comes later.
	after, err := newLeader.Apply(ctx, &fsm.Command{Op: fsm.OpCreate, Tree: "parts", Data: value(t, "later")})
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := newLeader.FSM().History("parts", key); len(h) != 2 || after.Index <= borrowed.Index {
		t.Fatalf("history after more writes %+v", h)
	}
}

// A node whose state machine meets rules newer than its code stops
// applying and says so on Failed, with fsm.ErrNeedsUpgrade: kvnode then
// exits with that reason instead of serving a state that no longer
// follows the log.
func TestNodeStopsOnNewerRules(t *testing.T) {
	cfg := testConfig(t, "n1", t.TempDir())
	cfg.Bootstrap = true
	n := mustStart(t, cfg)
	waitCluster(t, n)
	res, err := n.Apply(context.Background(), &fsm.Command{Op: fsm.OpSetRules, Rules: fsm.RulesVersion + 1})
	if err == nil && res.Error() == nil {
		t.Fatalf("set-rules %d was applied by code of rules %d", fsm.RulesVersion+1, fsm.RulesVersion)
	}
	select {
	case <-n.Failed():
	case <-time.After(10 * time.Second):
		t.Fatal("the node did not report its state machine failure")
	}
	if !errors.Is(n.FailedErr(), fsm.ErrNeedsUpgrade) {
		t.Fatalf("FailedErr %v, want ErrNeedsUpgrade", n.FailedErr())
	}
}
