package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/metrics"
	"github.com/shelfdb/shelf/internal/testserver"
)

// BenchmarkGather measures one scrape's collection (registry Gather, no
// HTTP) on a node holding 10,000 records in 10 trees and 2,000 borrows, half
// of them expiring within the minute: what each Prometheus scrape costs
// the node.
func BenchmarkGather(b *testing.B) {
	s := testserver.Start(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cl := api.NewClient(s.Addr, nil)
	v, err := api.EncodeValue(map[string]any{"name": "R1", "qty": int64(3)})
	if err != nil {
		b.Fatal(err)
	}
	type rec struct {
		tree string
		key  api.Key
	}
	var recs []rec
	for tree := range 10 {
		name := "t" + string(rune('a'+tree))
		for range 10 {
			req := api.BatchRequest{}
			for range 100 {
				req.Ops = append(req.Ops, api.BatchOp{Op: "create", Tree: name, Data: v})
			}
			res, err := cl.Batch(ctx, req)
			if err != nil {
				b.Fatal(err)
			}
			for _, it := range res.Results {
				if it.Err != nil {
					b.Fatal(it.Err)
				}
				recs = append(recs, rec{name, it.Key})
			}
		}
	}
	ws, err := cl.RegisterClient(ctx, "ws-1")
	if err != nil {
		b.Fatal(err)
	}
	for i, r := range recs[:2000] {
		ttl := time.Duration(0)
		if i%2 == 0 {
			ttl = 30 * time.Second
		}
		if _, err := cl.Borrow(ctx, r.tree, r.key, ws.ID, ttl); err != nil {
			b.Fatal(err)
		}
	}
	reg := s.Metrics.Registry()
	b.ResetTimer()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkObserveHTTP measures counting one answered request, as the
// HTTP API does for every request.
func BenchmarkObserveHTTP(b *testing.B) {
	m := metrics.New()
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveHTTP("POST", "/v1/trees/{tree}/records", 201, time.Millisecond)
	}
}
