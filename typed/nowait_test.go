package typed_test

import (
	"testing"

	"github.com/shelfdb/shelf/client"
	"github.com/shelfdb/shelf/internal/testserver"
	"github.com/shelfdb/shelf/typed"
)

// client.NoWait flows through typed's writes: Create and Update return
// once the write is in local.db, readable at once, and db.Flush waits
// until the cluster and the replica applied them.
func TestNoWaitThroughTyped(t *testing.T) {
	s := testserver.Start(t)
	db := testserver.Open(t, t.TempDir(), s.Addr)
	ctx := ctxT(t)
	parts, err := typed.Open[PartV1](ctx, db, "parts")
	if err != nil {
		t.Fatal(err)
	}
	key, err := parts.Create(ctx, PartV1{Name: "bolt", Qty: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := parts.Checkout(ctx, key); err != nil {
		t.Fatal(err)
	}
	var keys []typed.Key[PartV1]
	for i := range 50 {
		k, err := parts.Create(client.NoWait(ctx), PartV1{Name: "nut", Qty: int32(i)})
		if err != nil || k.Untyped().ID == 0 {
			t.Fatalf("create %d under NoWait: %v %v", i, k, err)
		}
		keys = append(keys, k)
	}
	if err := parts.Update(client.NoWait(ctx), key, func(p *PartV1) error { p.Qty = 99; return nil }); err != nil {
		t.Fatal(err)
	}
	if p, err := parts.Get(key); err != nil || p.Qty != 99 {
		t.Fatalf("read right after the update: %+v %v", p, err)
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	r, err := parts.Record(key)
	if err != nil || r.Pending || r.Value.Qty != 99 {
		t.Fatalf("updated record after Flush: %+v %v, want applied", r, err)
	}
	for i, k := range keys {
		r, err := parts.Record(k)
		if err != nil || r.Pending || r.Value.Qty != int32(i) {
			t.Fatalf("create %d after Flush: %+v %v, want applied", i, r, err)
		}
	}
}
