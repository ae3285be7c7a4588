package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/testserver"
)

// A borrow belongs to the client's identity: a restarted client still
// holds it (Borrowed), and learns from the events of its catch-up what
// happened to its borrows while it was closed.
func TestRestartedClientLearnsItsBorrows(t *testing.T) {
	s := testserver.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	a := testserver.Open(t, dir, s.Addr)
	parts := a.Tree("parts")
	var keys []api.Key
	for i := range 2 {
		res, err := parts.Create(ctx, 0, val(t, i))
		if err != nil {
			t.Fatal(err)
		}
		if err := parts.Checkout(ctx, res.Key, 0); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, res.Key)
	}
	id := a.ClientID()
	a.Close()

	// Restarted: both borrows are still this client's.
	a = testserver.Open(t, dir, s.Addr)
	if bs, err := a.Borrowed(); err != nil || len(bs) != 2 || bs[0].Client != id {
		t.Fatalf("borrowed after a restart: %+v %v", bs, err)
	}
	if _, err := a.Tree("parts").Update(ctx, keys[0], 0, val(t, "edited after restart")); err != nil {
		t.Fatal(err)
	}
	a.Close()

	// While it is closed an operator takes one borrow back.
	op := api.NewClient(s.Addr, nil)
	if _, err := op.ForceReturn(ctx, "parts", keys[1], "needed at the bench"); err != nil {
		t.Fatal(err)
	}
	a = testserver.Open(t, dir, s.Addr)
	if bs, err := a.Borrowed(); err != nil || len(bs) != 1 || bs[0].Key != keys[0] {
		t.Fatalf("borrowed after a force-return while closed: %+v %v", bs, err)
	}
	for e := range a.EventsSince(ctx, 0, "parts") {
		if e.Type == api.EventReturned && e.Key == keys[1] {
			if e.Holder != id || !e.Forced || e.Reason != "needed at the bench" {
				t.Fatalf("returned event %+v", e)
			}
			return
		}
	}
	t.Fatal("no event told the restarted client that its borrow was force-returned")
}
