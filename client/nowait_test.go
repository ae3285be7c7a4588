package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
	"github.com/shelfdb/shelf/internal/testlog"
	"github.com/shelfdb/shelf/internal/testserver"
)

// createNoWait makes n creates under client.NoWait from 16 goroutines and
// returns their keys (index i: value "i"); each must come back pending,
// with its key and no index.
func createNoWait(t *testing.T, ctx context.Context, db *client.DB, n int) []api.Key {
	t.Helper()
	keys := make([]api.Key, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := g; i < n; i += 16 {
				res, err := db.Tree("parts").Create(client.NoWait(ctx), 0, val(t, fmt.Sprint(i)))
				if err == nil && (!res.Pending || res.Key.ID == 0 || res.Index != 0) {
					err = fmt.Errorf("result %+v, want pending with a key and no index", res)
				}
				keys[i], errs[i] = res.Key, err
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	return keys
}

// Writes under NoWait return once stored, pending, and are readable at
// once; Flush returns once every one is applied by the cluster and by the
// replica, and each is reported by an EventConfirmed.
func TestNoWaitReturnsStoredAndFlushWaitsUntilApplied(t *testing.T) {
	s := startServer(t)
	db := open(t, t.TempDir(), s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	evs := db.Events(ctx, "parts")
	const n = 600
	keys := createNoWait(t, ctx, db, n)
	for i, k := range keys {
		rec, err := db.Tree("parts").Get(k)
		if err != nil || !bytes.Equal(rec.Data, val(t, fmt.Sprint(i))) {
			t.Fatalf("read of create %d (%v) right after it returned: %+v %v", i, k, rec, err)
		}
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if p := db.Pending(); p != 0 {
		t.Fatalf("%d writes pending after Flush", p)
	}
	for i, k := range keys {
		rec, err := db.Tree("parts").Get(k)
		if err != nil || rec.Pending || rec.Index == 0 || !bytes.Equal(rec.Data, val(t, fmt.Sprint(i))) {
			t.Fatalf("create %d (%v) after Flush: %+v %v, want applied", i, k, rec, err)
		}
		if _, err := s.Node.FSM().Get("parts", k); err != nil {
			t.Fatalf("create %d (%v) on the server: %v", i, k, err)
		}
	}
	confirmed := map[uint64]bool{}
	for len(confirmed) < n {
		select {
		case e := <-evs:
			if e.Type == client.EventConfirmed {
				if confirmed[e.Outbox] {
					t.Fatalf("outbox entry %d confirmed twice", e.Outbox)
				}
				confirmed[e.Outbox] = true
			}
		case <-ctx.Done():
			t.Fatalf("%d of %d creates confirmed by events", len(confirmed), n)
		}
	}
	if err := db.Flush(ctx); err != nil { // nothing queued: at once
		t.Fatalf("flush of an empty outbox: %v", err)
	}
}

// Offline, Flush waits for the cluster as long as its context allows and
// says how many writes are left; once the cluster is back, it returns
// when they are applied.
func TestFlushOfflineThenOnline(t *testing.T) {
	s := startServer(t)
	db := open(t, t.TempDir(), s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := db.Tree("parts").Create(ctx, 0, val(t, "first")); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	waitFor(t, "the client to go offline", func() bool { return !db.Online() })
	const n = 40
	keys := createNoWait(t, ctx, db, n)
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	err := db.Flush(short)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("flush offline: %v, want the context's deadline", err)
	}
	if p := db.Pending(); p != n {
		t.Fatalf("%d writes pending after a flush that ran out of time, want %d", p, n)
	}
	s.Restart()
	if err := db.Flush(ctx); err != nil {
		t.Fatalf("flush once the cluster is back: %v", err)
	}
	for i, k := range keys {
		rec, err := s.Node.FSM().Get("parts", k)
		if err != nil || !bytes.Equal(rec.Data, val(t, fmt.Sprint(i))) {
			t.Fatalf("create %d (%v) on the server: %+v %v", i, k, rec, err)
		}
	}
}

// A write the cluster rejects while Flush waits becomes a Conflict, and
// Flush says so (ErrConflicts) once every write left the outbox; the
// others are applied.
func TestFlushReportsAConflict(t *testing.T) {
	s := startServer(t)
	a := open(t, t.TempDir(), s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	parts := a.Tree("parts")
	res, err := parts.Create(ctx, 0, val(t, "v1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := parts.Checkout(ctx, res.Key, 0); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	waitFor(t, "offline", func() bool { return !a.Online() })
	if _, err := parts.Update(client.NoWait(ctx), res.Key, 0, val(t, "edited offline")); err != nil {
		t.Fatal(err)
	}
	created, err := parts.Create(client.NoWait(ctx), 0, val(t, "created offline"))
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	s.Restart()
	if _, err := api.NewClient(s.Addr, nil).ForceReturn(ctx, "parts", res.Key, "taken back"); err != nil {
		t.Fatal(err)
	}
	a2, err := client.Open(ctx, client.Config{Dir: a.Dir(), PollWait: time.Second, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	if err := a2.Flush(ctx); !errors.Is(err, client.ErrConflicts) {
		t.Fatalf("flush: %v, want ErrConflicts", err)
	}
	cs, err := a2.Conflicts()
	if err != nil || len(cs) != 1 || cs[0].Key != res.Key || !errors.Is(cs[0].Err, client.ErrNotBorrowed) {
		t.Fatalf("conflicts %+v %v, want the update", cs, err)
	}
	if rec, err := s.Node.FSM().Get("parts", created.Key); err != nil || !bytes.Equal(rec.Data, val(t, "created offline")) {
		t.Fatalf("the create flushed with the conflict: %+v %v", rec, err)
	}
	if err := a2.Flush(ctx); err != nil {
		t.Fatalf("second flush, nothing queued: %v", err)
	}
}

// Updates of one record queued under NoWait among many creates reach the
// cluster in order and once each, though batches go several at a time
// and the answer of one is lost.
func TestNoWaitKeepsARecordsWritesInOrderWithBatchesInFlight(t *testing.T) {
	s := startServer(t)
	lose := &loseAnswers{}
	db := testserver.OpenWith(t, t.TempDir(), func(c *client.Config) {
		c.HTTPClient = &http.Client{Transport: lose}
	}, s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	parts := db.Tree("parts")
	rec, err := parts.Create(ctx, 0, val(t, "u0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := parts.Checkout(ctx, rec.Key, 0); err != nil {
		t.Fatal(err)
	}
	before := s.Node.FSM().AppliedIndex()
	evs := db.Events(ctx, "parts")
	lose.path.Store(ptr("/v1/batch"))
	lose.drop.Store(1)
	const creates, updates = 800, 20
	var wg sync.WaitGroup
	for g := range 8 { // creates from 8 goroutines, updates from this one
		wg.Go(func() {
			for i := g; i < creates; i += 8 {
				if _, err := parts.Create(client.NoWait(ctx), 0, val(t, fmt.Sprint(i))); err != nil {
					t.Errorf("create %d: %v", i, err)
					return
				}
			}
		})
	}
	for u := 1; u <= updates; u++ {
		for range 10 { // between two updates: creates of this goroutine too
			if _, err := parts.Create(client.NoWait(ctx), 0, val(t, "between")); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := parts.Update(client.NoWait(ctx), rec.Key, 0, val(t, fmt.Sprintf("u%d", u))); err != nil {
			t.Fatalf("update %d: %v", u, err)
		}
	}
	wg.Wait()
	if err := db.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if lose.lost.Load() != 1 {
		t.Fatalf("%d answers lost, want 1", lose.lost.Load())
	}
	got, err := s.Node.FSM().Get("parts", rec.Key)
	if err != nil || !bytes.Equal(got.Data, val(t, fmt.Sprintf("u%d", updates))) {
		t.Fatalf("record after the updates: %+v %v, want the last update", got, err)
	}
	// Once each, on the server.
	updated, created := 0, 0
	for from := before; from < s.Node.FSM().AppliedIndex(); {
		page, err := api.NewClient(s.Addr, nil).Events(ctx, from, 1000, 0, "parts")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			switch {
			case e.Type == api.EventUpdated && e.Key == rec.Key:
				updated++
			case e.Type == api.EventCreated:
				created++
			}
		}
		from = page.Next
	}
	if updated != updates || created != creates+10*updates {
		t.Fatalf("%d updates and %d creates applied, want %d and %d", updated, created, updates, creates+10*updates)
	}
	// In order: the updates' outbox entries were applied at log indexes
	// that never decrease (a repeat is answered with its first apply's index).
	var idx []uint64
	for len(idx) < updates {
		select {
		case e := <-evs:
			if e.Type == client.EventConfirmed && e.Key == rec.Key {
				idx = append(idx, e.Index) // events come in outbox sequence order
			}
		case <-ctx.Done():
			t.Fatalf("%d of %d updates confirmed by events", len(idx), updates)
		}
	}
	for i := 1; i < len(idx); i++ {
		if idx[i] < idx[i-1] { // equal: one batch, applied in its order
			t.Fatalf("the updates were applied at indexes %v: out of order", idx)
		}
	}
	if cs, _ := db.Conflicts(); len(cs) != 0 {
		t.Fatalf("conflicts %+v", cs)
	}
}

// A client closed as a crash would, with batches in flight and confirmed
// entries not yet removed from local.db, sends everything again after the
// reopen: every create is applied exactly once.
func TestCrashWithBatchesInFlightAppliesEachWriteOnce(t *testing.T) {
	s := startServer(t)
	dir := t.TempDir()
	db := testserver.OpenWith(t, dir, func(c *client.Config) { c.RangeSize, c.Reserve = 4000, 3500 }, s.Addr)
	db.KeepConfirmed()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := db.Tree("parts").Create(ctx, 0, val(t, "first")); err != nil {
		t.Fatal(err)
	}
	// Queued offline, so that the outbox is deep when the cluster is back.
	s.Stop()
	waitFor(t, "the client to go offline", func() bool { return !db.Online() })
	const n = 3000
	keys := createNoWait(t, ctx, db, n)
	s.Restart()
	waitFor(t, "the first batches to be settled", func() bool { return db.Pending() < n-300 })
	pending := db.Pending()
	gone, err := db.CloseAsCrashed()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("at the crash: %d of %d creates in the outbox, %d confirmed ones not yet removed from local.db", pending, n, gone)
	db, err = client.Open(ctx, client.Config{Dir: dir, PollWait: time.Second, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Flush(ctx); err != nil {
		t.Fatalf("flush after the reopen: %v", err)
	}
	if cs, err := db.Conflicts(); err != nil || len(cs) != 0 {
		t.Fatalf("conflicts %+v %v", cs, err)
	}
	recs, err := s.Node.FSM().List("parts", api.Key{}, 0)
	if err != nil || len(recs) != n+1 {
		t.Fatalf("%d records on the server (%v), want %d", len(recs), err, n+1)
	}
	for i, k := range keys {
		rec, err := s.Node.FSM().Get("parts", k)
		if err != nil || rec.Key.Rev != 1 || !bytes.Equal(rec.Data, val(t, fmt.Sprint(i))) {
			t.Fatalf("create %d (%v) on the server: %+v %v", i, k, rec, err)
		}
	}
}
