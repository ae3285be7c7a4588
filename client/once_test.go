package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
	"github.com/shelfdb/shelf/internal/testserver"
)

// loseAnswers is an http.RoundTripper that sends every request to the
// server, but, while drop is above 0, throws away the answer of a request
// to path (the write was applied; the client never learns it) and fails
// the request as a cut connection would.
type loseAnswers struct {
	path atomic.Pointer[string]
	drop atomic.Int32
	lost atomic.Int32
}

func (l *loseAnswers) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	p := l.path.Load()
	if err != nil || p == nil || r.URL.Path != *p || l.drop.Add(-1) < 0 {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	l.lost.Add(1)
	return nil, errors.New("connection reset by test: answer lost")
}

// TestOutboxLostAnswerAppliesOnce: a batch whose answer is lost is sent
// again and answered from the cluster's record: a create makes one
// record, an update is applied once, and an update and delete sent
// together come back without a spurious conflict.
func TestOutboxLostAnswerAppliesOnce(t *testing.T) {
	s := startServer(t)
	lose := &loseAnswers{}
	lose.path.Store(ptr("/v1/batch"))
	db := testserver.OpenWith(t, t.TempDir(), func(c *client.Config) {
		c.HTTPClient = &http.Client{Transport: lose}
	}, s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	parts := db.Tree("parts")

	lose.drop.Store(1)
	res, err := parts.Create(ctx, 0, val(t, "v1"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Pending {
		t.Fatalf("create answered %+v although its answer was lost", res)
	}
	waitFor(t, "the outbox to drain", func() bool { return db.Pending() == 0 })
	if lose.lost.Load() != 1 {
		t.Fatalf("%d answers lost, want 1", lose.lost.Load())
	}
	if cs, _ := db.Conflicts(); len(cs) != 0 {
		t.Fatalf("conflicts %+v: a resent create was taken for someone else's", cs)
	}
	if recs, err := s.Node.FSM().List("parts", api.Key{}, 0); err != nil || len(recs) != 1 {
		t.Fatalf("%d records on the server (%v), want 1", len(recs), err)
	}

	// An update whose answer is lost is applied once, not twice.
	if err := parts.Checkout(ctx, res.Key, 0); err != nil {
		t.Fatal(err)
	}
	before := s.Node.FSM().AppliedIndex()
	lose.drop.Store(1)
	if _, err := parts.Update(ctx, res.Key, 0, val(t, "v3")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the outbox to drain", func() bool { return db.Pending() == 0 })
	if lose.lost.Load() != 2 {
		t.Fatalf("%d answers lost, want 2", lose.lost.Load())
	}
	page, err := api.NewClient(s.Addr, nil).Events(ctx, before, 0, 0, "parts")
	if err != nil {
		t.Fatal(err)
	}
	updates := 0
	for _, e := range page.Events {
		if e.Type == api.EventUpdated {
			updates++
		}
	}
	if updates != 1 {
		t.Fatalf("%d update events after index %d, want 1: %+v", updates, before, page.Events)
	}
	if cs, _ := db.Conflicts(); len(cs) != 0 {
		t.Fatalf("conflicts %+v", cs)
	}

	// An update and a delete queued offline go in one batch whose answer
	// is lost: sent again, neither comes back as a conflict (the update
	// does not find its record any more, yet it was applied).
	s.Stop()
	waitFor(t, "the client to go offline", func() bool { return !db.Online() })
	if r, err := parts.Update(ctx, res.Key, 0, val(t, "v4")); err != nil || !r.Pending {
		t.Fatalf("offline update: %+v %v", r, err)
	}
	if r, err := parts.Delete(ctx, res.Key); err != nil || !r.Pending {
		t.Fatalf("offline delete: %+v %v", r, err)
	}
	lose.drop.Store(1)
	s.Restart()
	waitFor(t, "the outbox to drain", func() bool { return db.Pending() == 0 })
	if lose.lost.Load() != 3 {
		t.Fatalf("%d answers lost, want 3", lose.lost.Load())
	}
	if cs, _ := db.Conflicts(); len(cs) != 0 {
		t.Fatalf("conflicts %+v: a resent write was refused", cs)
	}
	if _, err := s.Node.FSM().Get("parts", res.Key); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("record after the delete: %v", err)
	}
}

// TestDirectWriteLostAnswer: a checkout whose answer is lost is sent again
// with the same idempotency key and succeeds (the record is borrowed once).
func TestDirectWriteLostAnswer(t *testing.T) {
	s := startServer(t)
	lose := &loseAnswers{}
	db := testserver.OpenWith(t, t.TempDir(), func(c *client.Config) {
		c.HTTPClient = &http.Client{Transport: lose}
	}, s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	parts := db.Tree("parts")
	res, err := parts.Create(ctx, 0, val(t, "v1"))
	if err != nil || res.Pending {
		t.Fatalf("create: %+v %v", res, err)
	}
	lose.path.Store(ptr("/v1/trees/parts/records/" + res.Key.String() + "/borrow"))
	lose.drop.Store(1)
	if err := parts.Checkout(ctx, res.Key, 0); err != nil {
		t.Fatalf("checkout with a lost answer: %v", err)
	}
	if lose.lost.Load() != 1 {
		t.Fatalf("%d answers lost, want 1", lose.lost.Load())
	}
	h, err := api.NewClient(s.Addr, nil).History(ctx, "parts", res.Key)
	if err != nil || len(h) != 1 || h[0].Action != api.AuditBorrowed {
		t.Fatalf("history %+v (%v): want one borrow", h, err)
	}
}

func ptr[T any](v T) *T { return &v }
