package client_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
	"github.com/shelfdb/shelf/internal/testserver"
)

// TestViewDuringResync reads a record with a pending edit while the
// replica is replaced by a snapshot again and again, as a resync does:
// reads never deadlock against the restore (a View used to take the
// replica's read lock twice, and a restore waiting for the write lock in
// between blocked both for good).
func TestViewDuringResync(t *testing.T) {
	s := testserver.Start(t)
	db := testserver.Open(t, t.TempDir(), s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	parts := db.Tree("parts")
	res, err := parts.Create(ctx, 0, marshal(t, map[string]any{"n": 1}))
	if err != nil {
		t.Fatal(err)
	}
	if err := parts.Checkout(ctx, res.Key, 0); err != nil {
		t.Fatal(err)
	}
	snap, err := db.SnapshotReplica()
	if err != nil {
		t.Fatal(err)
	}
	s.Stop()
	testserver.WaitFor(t, "the client to notice it is offline", func() bool { return !db.Online() })
	if _, err := parts.Update(ctx, res.Key, 0, marshal(t, map[string]any{"n": 2})); err != nil {
		t.Fatalf("offline update: %v", err)
	}

	done := make(chan struct{})
	var wg sync.WaitGroup
	stop := time.Now().Add(2 * time.Second)
	wg.Go(func() {
		for time.Now().Before(stop) {
			err := parts.View(api.Key{ID: res.Key.ID}, func(r *client.Record) error {
				if !r.Pending {
					t.Errorf("record %s: not pending", r.Key)
				}
				return nil
			})
			if err != nil {
				t.Errorf("view: %v", err)
				return
			}
		}
	})
	wg.Go(func() {
		for time.Now().Before(stop) {
			if err := db.RestoreReplica(bytes.NewReader(snap)); err != nil {
				t.Errorf("restore: %v", err)
				return
			}
		}
	})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("View and a snapshot restore deadlocked")
	}
}
