package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/testserver"
)

// A server that lost its quorum still answers log polls; the client
// following it must not pass for online: it reports offline with
// ErrNoLeader, and a write goes to the outbox at once instead of waiting
// for a leader that is not there.
func TestOfflineWhenServerLosesQuorum(t *testing.T) {
	nodes := testserver.StartCluster(t, 3)
	db := open(t, t.TempDir(), nodes[0].Addr)
	if !db.Online() {
		t.Fatalf("not online after WaitSynced: %v", db.Err())
	}
	nodes[1].Stop()
	nodes[2].Stop()
	cut := time.Now()
	waitFor(t, "the client to go offline", func() bool { return !db.Online() })
	t.Logf("offline %v after the quorum was lost", time.Since(cut).Round(time.Millisecond))
	if err := db.Err(); !errors.Is(err, api.ErrNoLeader) && !errors.Is(err, api.ErrUnreachable) {
		t.Fatalf("Err() = %v, want no leader (or the stopped servers unreachable)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	res, err := db.Tree("parts").Create(ctx, 0, val(t, "offline"))
	if err != nil || !res.Pending {
		t.Fatalf("create without a leader: %+v %v; want pending in the outbox", res, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("create without a leader took %v; want it queued at once", d)
	}
	// It stays offline, never flickering online, while the one server that
	// answers has no leader (watched for a while: a property over time).
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if db.Online() {
			t.Fatalf("online again while no server has a leader")
		}
	}
}

// A server cut off from the cluster (here: removed from the raft
// configuration by an operator; it keeps running and answering) stops
// getting new entries. The client following it must move to a server
// with a leader within a few seconds, see writes made through the
// others, and drain its outbox there.
func TestMovesOffServerWithoutLeader(t *testing.T) {
	nodes := testserver.StartCluster(t, 3)
	cut, rest := nodes[0], nodes[1:]
	db := testserver.OpenWith(t, t.TempDir(), nil, cut.Addr, rest[0].Addr, rest[1].Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	other := api.NewClient(rest[0].Addr, nil)
	if err := other.RemoveMember(ctx, cut.Node.ID()); err != nil {
		t.Fatalf("remove %s: %v", cut.Node.ID(), err)
	}
	start := time.Now()
	testserver.WaitFor(t, "the removed node to report no leader", func() bool { return cut.Node.Status().NoLeader })
	t.Logf("%s reports no leader %v after its removal", cut.Node.ID(), time.Since(start).Round(time.Millisecond))

	// A write of the client right away (it may still follow the cut-off
	// node), and one through another node.
	mine, err := db.Tree("parts").Create(ctx, 0, val(t, "mine"))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	theirs, err := other.Create(ctx, "parts", api.WriteRequest{Data: val(t, "theirs")})
	if err != nil {
		t.Fatalf("create through %s: %v", rest[0].Node.ID(), err)
	}
	testserver.WaitFor(t, "the client to follow a node with a leader and drain its outbox", func() bool {
		_, err := db.Tree("parts").Get(theirs.Key)
		return err == nil && db.Online() && db.Pending() == 0
	})
	moved := time.Since(start)
	t.Logf("client follows the cluster again and drained its outbox %v after the removal", moved.Round(time.Millisecond))
	if moved > 10*time.Second {
		t.Errorf("the client took %v to leave a node without a leader; want a few seconds", moved)
	}
	rec, err := other.Get(ctx, "parts", mine.Key)
	if err != nil || rec.CreatedBy != db.ClientID() {
		t.Fatalf("the client's write on the cluster: %+v %v", rec, err)
	}
	if st := cut.Node.Status(); st.AppliedIndex >= theirs.Index {
		t.Fatalf("the removed node applied index %d: it was not cut off", st.AppliedIndex)
	}
}
