package httpapi_test

import (
	"context"
	"errors"
	"testing"

	"github.com/shelfdb/shelf/api"
)

func TestBatch(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	me, err := e.cl.RegisterClient(ctx, "batcher")
	if err != nil {
		t.Fatal(err)
	}
	rg, err := e.cl.GrantRange(ctx, me.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	v := func(x any) []byte { b, _ := api.EncodeValue(x); return b }
	res, err := e.cl.Batch(ctx, api.BatchRequest{Client: me.ID, Ops: []api.BatchOp{
		{Op: "create", Tree: "parts", Key: api.Key{ID: rg.Start}, Data: v("a")},
		{Op: "create", Tree: "parts", Key: api.Key{ID: rg.Start}, Data: v("again")}, // rejected: exists
		{Op: "create", Tree: "parts", Key: api.Key{ID: rg.End}, Data: v("b")},       // rejected: not in range
		{Op: "update", Tree: "parts", Key: api.Key{ID: rg.Start, Rev: 1}, Data: v("c")},
		{Op: "create", Tree: "parts", Key: api.Key{ID: rg.Start + 1}, Data: v("d")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != 5 {
		t.Fatalf("results %+v", res.Results)
	}
	want := []error{nil, api.ErrExists, api.ErrNotInRange, api.ErrNotBorrowed, nil}
	var last uint64
	for i, it := range res.Results {
		if w := want[i]; (w == nil) != (it.Err == nil) || (w != nil && !errors.Is(it.Err, w)) {
			t.Errorf("op %d: %+v, want %v", i, it, w)
		}
		// One log entry for the batch: every op at its index, the
		// rejected ones too.
		if it.Index == 0 || (last != 0 && it.Index != last) {
			t.Errorf("op %d applied at %d, want the batch's one entry (%d)", i, it.Index, last)
		}
		last = it.Index
	}
	// Answered means applied on this node: read your own writes.
	if _, err := e.node.FSM().Get("parts", api.Key{ID: rg.Start + 1, Rev: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.Batch(ctx, api.BatchRequest{Client: me.ID, Ops: []api.BatchOp{{Op: "rename", Tree: "parts"}}}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("unknown op: %v", err)
	}
	if _, err := e.cl.Batch(ctx, api.BatchRequest{Client: me.ID}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("empty batch: %v", err)
	}
	e.apiErr("POST", "/v1/batch", `{"ops":[]}`, 400, api.CodeInvalid) // JSON: CBOR only
}
