package integration

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shelfdb/shelf/client"
)

// flushAfterFailover bounds how long after a new leader is elected the
// outbox of a client may take to deliver what it queued: resending after
// a failed attempt (backoff from 200 ms) through its server, which by then
// forwards to the new leader. Before the fixes this test came with, a
// follower's forward to the paused leader waited for its whole apply
// timeout (10 s) and the client then tried the paused leader itself (60 s).
const flushAfterFailover = 5 * time.Second

// A client writing through a follower (NoWait) while the leader is
// frozen (SIGSTOP, as behind a partition) delivers its queued writes soon
// after the other two nodes elect a new leader: a follower gives up a
// forward to a leader it no longer follows, and the client sends again to
// its own server rather than to the frozen one.
func TestFlushSoonAfterLeaderPause(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts kvnode processes")
	}
	nodes := startCluster(t, 3)
	leader := waitLeader(t, nodes)
	var others []*Node
	for _, n := range nodes {
		if n != leader {
			others = append(others, n)
		}
	}
	cfg := clientConfig(t, "w", others[0].HTTP, others[1].HTTP, leader.HTTP)
	cfg.RangeSize = 5000 // ids for every write made while the leader is frozen
	db := openClient(t, cfg, true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stop atomic.Bool
	var made atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := int64(0); !stop.Load(); i++ {
				if _, err := db.Tree("parts").Create(client.NoWait(ctx), 0, value(t, int64(g)<<32|i)); err != nil {
					t.Errorf("create: %v", err)
					return
				}
				made.Add(1)
			}
		})
	}
	waitFor(t, 20*time.Second, "300 writes", func() (bool, string) { return made.Load() >= 300, "" })
	leader.Pause()
	t.Cleanup(leader.Resume)
	paused, atPause := time.Now(), made.Load()
	// Writes go on with the leader frozen: some are in flight to it
	// through the followers, the others queue.
	waitFor(t, 20*time.Second, "200 writes with the leader frozen", func() (bool, string) {
		return made.Load() >= atPause+200, ""
	})
	stop.Store(true)
	wg.Wait()
	flushed := make(chan error, 1)
	go func() { flushed <- db.Flush(ctx) }()
	newLeader := waitLeader(t, others)
	elected := time.Since(paused)
	select {
	case err := <-flushed:
		if err != nil {
			t.Fatalf("flush: %v", err)
		}
	case <-time.After(flushAfterFailover):
		t.Fatalf("%d writes still not applied %v after %s was elected (%v after the pause)",
			db.Pending(), flushAfterFailover, newLeader.ID, elected)
	}
	if n := db.Pending(); n != 0 {
		t.Fatalf("%d writes pending after Flush", n)
	}
	t.Logf("%d writes; %s elected %v after the pause; flushed %v after the pause", made.Load(), newLeader.ID, elected.Round(time.Millisecond), time.Since(paused).Round(time.Millisecond))
}
