package cluster_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

func TestNodeEvents(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "e1")
	cfg := testConfig(t, "e1", dir)
	cfg.Bootstrap = true
	cfg.EventBuffer = 4
	n := mustStart(t, cfg)
	waitCluster(t, n)

	cl, err := n.client().RegisterClient(ctx, "ws")
	if err != nil {
		t.Fatal(err)
	}
	w1, err := n.client().Create(ctx, "parts", api.WriteRequest{Client: cl.ID, Data: value(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := n.Events(ctx, 0, 0, 0)
	if err != nil || len(p.Events) != 2 || p.Events[0].Type != api.EventClient || p.Events[1].Type != api.EventCreated ||
		p.Events[1].Index != w1.Index || p.Events[1].Key != w1.Key || p.Events[1].Client != cl.ID || p.Next < w1.Index {
		t.Fatalf("events from 0: %+v %v", p, err)
	}
	if p, err := n.Events(ctx, api.EventsFromNow, 0, 0); err != nil || len(p.Events) != 0 || p.Next != n.FSM().AppliedIndex() {
		t.Fatalf("events from now: %+v %v (applied %d)", p, err, n.FSM().AppliedIndex())
	}

	// A long poll returns with the next change.
	type result struct {
		p   api.EventPage
		err error
	}
	done := make(chan result, 1)
	from := n.FSM().AppliedIndex()
	go func() {
		p, err := n.Events(ctx, from, 0, 30*time.Second)
		done <- result{p, err}
	}()
	if _, err := n.client().Borrow(ctx, "parts", w1.Key, cl.ID, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || len(r.p.Events) != 1 || r.p.Events[0].Type != api.EventBorrowed || r.p.Next != r.p.Events[0].Index {
			t.Fatalf("long poll: %+v %v", r.p, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("long poll did not return with the borrow")
	}
	// A waiting call ends with its context, answering what it has.
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		p, err := n.Events(cctx, n.FSM().AppliedIndex(), 0, time.Minute)
		done <- result{p, err}
	}()
	cancel()
	select {
	case r := <-done:
		if !errors.Is(r.err, context.Canceled) || len(r.p.Events) != 0 {
			t.Fatalf("cancelled long poll: %+v %v", r.p, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("cancelled long poll did not return")
	}

	// The buffer keeps the last 4 events: older ones are compacted.
	for i := range 4 {
		if _, err := n.client().Create(ctx, "parts", api.WriteRequest{Data: value(t, i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.Events(ctx, 0, 0, 0); !errors.Is(err, api.ErrCompacted) {
		t.Fatalf("events from 0 after overflow: %v, want ErrCompacted", err)
	}
	applied := n.FSM().AppliedIndex()
	if p, err := n.Events(ctx, applied-4, 0, 0); err != nil || len(p.Events) != 4 || p.Next != applied {
		t.Fatalf("last 4 events: %+v %v", p, err)
	}

	// After a restart, the node knows no event up to the index it starts
	// at; from there on it waits for new ones.
	n.stop(t)
	cfg = testConfig(t, "e1", dir)
	cfg.EventBuffer = 4
	n = mustStart(t, cfg)
	waitCluster(t, n)
	start := n.FSM().AppliedIndex()
	if start < applied {
		t.Fatalf("restarted at %d, before %d", start, applied)
	}
	if _, err := n.Events(ctx, applied-1, 0, 0); !errors.Is(err, api.ErrCompacted) {
		t.Fatalf("events before the restart: %v, want ErrCompacted", err)
	}
	go func() {
		p, err := n.Events(ctx, start, 0, 30*time.Second)
		done <- result{p, err}
	}()
	w2, err := n.client().Create(ctx, "parts", api.WriteRequest{Data: value(t, "after restart")})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || len(r.p.Events) != 1 || r.p.Events[0].Key != w2.Key || r.p.Events[0].Type != api.EventCreated {
			t.Fatalf("events after restart: %+v %v", r.p, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("long poll after restart did not return")
	}
}
