package client_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
	"github.com/shelfdb/shelf/internal/testlog"
)

// createConcurrently makes n creates in parts at once and returns their
// keys (index i: value i).
func createConcurrently(t *testing.T, ctx context.Context, db *client.DB, n int, wantPending bool) []api.Key {
	t.Helper()
	keys := make([]api.Key, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := db.Tree("parts").Create(ctx, 0, val(t, fmt.Sprint(i)))
			if err == nil && res.Pending != wantPending {
				err = fmt.Errorf("pending %v, want %v", res.Pending, wantPending)
			}
			keys[i], errs[i] = res.Key, err
		})
	}
	wg.Wait()
	seen := map[api.Key]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		if seen[keys[i]] {
			t.Fatalf("create %d got key %v twice", i, keys[i])
		}
		seen[keys[i]] = true
	}
	return keys
}

// Creates made at once offline all return once they are on disk: the
// client closed right after and opened again holds every one of them,
// and sends them when the cluster is back.
func TestConcurrentOfflineCreatesAreAllKept(t *testing.T) {
	s := startServer(t)
	dir := t.TempDir()
	a := open(t, dir, s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := a.Tree("parts").Create(ctx, 0, val(t, "first")); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	waitFor(t, "client to notice it is offline", func() bool { return !a.Online() })
	const n = 64
	keys := createConcurrently(t, ctx, a, n, true)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	a, err := client.Open(ctx, client.Config{Dir: dir, PollWait: time.Second, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Pending() != n {
		t.Fatalf("outbox after reopen: %d entries, want %d", a.Pending(), n)
	}
	s.Restart()
	waitFor(t, "outbox to flush", func() bool { return a.Pending() == 0 })
	other := open(t, t.TempDir(), s.Addr)
	for i, k := range keys {
		rec, err := other.Tree("parts").Get(k)
		if err != nil || !bytes.Equal(rec.Data, val(t, fmt.Sprint(i))) {
			t.Fatalf("create %d (%v) at another client: %+v %v", i, k, rec, err)
		}
	}
}

// Confirmed creates whose removal from the outbox file had not been
// committed when the process stopped come back at the next open, are
// sent again and answered as repeats: each record exists once, with its
// value, and none becomes a conflict.
func TestConfirmedCreatesSentAgainAfterACrashApplyOnce(t *testing.T) {
	s := startServer(t)
	dir := t.TempDir()
	a := open(t, dir, s.Addr)
	a.KeepConfirmed()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// One create online (the client gets its key range), then the 64
	// offline: every one is in local.db before the first is confirmed, so
	// no commit of a later write removes a confirmed one.
	if _, err := a.Tree("parts").Create(ctx, 0, val(t, "first")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first create to be confirmed", func() bool { return a.Pending() == 0 })
	s.Stop()
	const n = 64
	keys := createConcurrently(t, ctx, a, n, true)
	s.Restart()
	waitFor(t, "the creates to be confirmed", func() bool { return a.Pending() == 0 })
	left, err := a.CloseAsCrashed()
	if err != nil {
		t.Fatal(err)
	}
	if left != n {
		t.Fatalf("%d confirmed entries left in local.db at the crash, want %d", left, n)
	}

	a, err = client.Open(ctx, client.Config{Dir: dir, PollWait: time.Second, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Pending() != n {
		t.Fatalf("outbox after reopen: %d entries, want %d", a.Pending(), n)
	}
	waitFor(t, "outbox to flush", func() bool { return a.Pending() == 0 })
	if cs, err := a.Conflicts(); err != nil || len(cs) != 0 {
		t.Fatalf("conflicts: %+v %v", cs, err)
	}
	other := open(t, t.TempDir(), s.Addr)
	recs, err := other.Tree("parts").List(api.Key{}, 1000)
	if err != nil || len(recs) != n+1 {
		t.Fatalf("another client lists %d records (%v), want %d", len(recs), err, n+1)
	}
	for i, k := range keys {
		rec, err := other.Tree("parts").Get(k)
		if err != nil || rec.Key.Rev != 1 || !bytes.Equal(rec.Data, val(t, fmt.Sprint(i))) {
			t.Fatalf("create %d (%v) at another client: %+v %v", i, k, rec, err)
		}
	}
}
