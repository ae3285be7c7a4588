package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/shelfdb/shelf/api"
)

// keyed sends a JSON request with an Idempotency-Key and returns status,
// the replayed header and the body.
func (e *env) keyed(method, path, key, body string) (int, string, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader([]byte(body)))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.IdempotencyHeader, key)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(api.ReplayedHeader), b
}

func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	count := func() int {
		recs, err := e.node.FSM().List("parts", api.Key{}, 0)
		if err != nil && !errors.Is(err, api.ErrTreeNotFound) {
			t.Fatal(err)
		}
		return len(recs)
	}

	// The same create twice with one key: one record, the same answer.
	s1, rep1, b1 := e.keyed("POST", "/v1/trees/parts/records", "create-1", `{"value":{"n":1}}`)
	s2, rep2, b2 := e.keyed("POST", "/v1/trees/parts/records", "create-1", `{"value":{"n":1}}`)
	if s1 != 201 || s2 != 201 || rep1 != "" || rep2 != "true" {
		t.Fatalf("statuses %d %d, replayed %q %q: %s %s", s1, s2, rep1, rep2, b1, b2)
	}
	var w1, w2 api.WriteResult
	json.Unmarshal(b1, &w1)
	json.Unmarshal(b2, &w2)
	if w1.Key != w2.Key || w1.Index != w2.Index || w1.Repeat || !w2.Repeat {
		t.Fatalf("answers %+v and %+v: want the same key and index, the second a repeat", w1, w2)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d records, want 1", n)
	}

	// The same key with another request is refused, and applies nothing.
	s3, _, b3 := e.keyed("POST", "/v1/trees/parts/records", "create-1", `{"value":{"n":2}}`)
	var ae api.Error
	json.Unmarshal(b3, &ae)
	if s3 != http.StatusUnprocessableEntity || ae.Code != api.CodeKeyReused {
		t.Fatalf("reused key: %d %s", s3, b3)
	}
	if s, _, b := e.keyed("POST", "/v1/trees/other/records", "create-1", `{"value":{"n":1}}`); s != http.StatusUnprocessableEntity {
		t.Fatalf("reused key on another path: %d %s", s, b)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d records after a refused key, want 1", n)
	}
	if s, _, b := e.keyed("POST", "/v1/trees/parts/records", "bad key", `{"value":1}`); s != 400 {
		t.Fatalf("key with a space: %d %s", s, b)
	}

	// api.Client: the key travels with the context; register-client and
	// a range grant repeated give the same client and range.
	kctx := api.WithIdempotencyKey(ctx, api.NewIdempotencyKey())
	c1, err1 := e.cl.RegisterClient(kctx, "once")
	c2, err2 := e.cl.RegisterClient(kctx, "once")
	if err1 != nil || err2 != nil || c1.ID != c2.ID {
		t.Fatalf("register twice with one key: %v %v, ids %q %q", err1, err2, c1.ID, c2.ID)
	}
	if cls, _ := e.cl.Clients(ctx); len(cls) != 1 {
		t.Fatalf("%d clients, want 1", len(cls))
	}
	gctx := api.WithIdempotencyKey(ctx, api.NewIdempotencyKey())
	g1, _ := e.cl.GrantRange(gctx, c1.ID, 10)
	g2, err := e.cl.GrantRange(gctx, c1.ID, 10)
	if err != nil || g1.Start != g2.Start {
		t.Fatalf("grant twice with one key: %v, starts %d %d", err, g1.Start, g2.Start)
	}
	// A rejection is answered again as it was, even once its cause is gone.
	bctx := api.WithIdempotencyKey(ctx, api.NewIdempotencyKey())
	if _, err := e.cl.Borrow(bctx, "parts", w1.Key, "nobody", 0); !errors.Is(err, api.ErrUnknownClient) {
		t.Fatalf("borrow by an unknown client: %v", err)
	}
	if _, err := e.cl.Borrow(bctx, "parts", w1.Key, "nobody", 0); !errors.Is(err, api.ErrUnknownClient) {
		t.Fatalf("repeated borrow: %v", err)
	}

	// A batch under a key: every op applied once.
	v := func(x any) []byte { b, _ := api.EncodeValue(x); return b }
	bk := api.WithIdempotencyKey(ctx, api.NewIdempotencyKey())
	req := api.BatchRequest{Client: c1.ID, Ops: []api.BatchOp{
		{Op: "create", Tree: "parts", Key: api.Key{ID: g1.Start}, Data: v("a")},
		{Op: "create", Tree: "parts", Data: v("b")},
	}}
	r1, err1 := e.cl.Batch(bk, req)
	r2, err2 := e.cl.Batch(bk, req)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	for i := range r1.Results {
		if r1.Results[i].Err != nil || r2.Results[i].Err != nil || r1.Results[i].Key != r2.Results[i].Key || !r2.Results[i].Repeat {
			t.Fatalf("op %d: %+v then %+v", i, r1.Results[i], r2.Results[i])
		}
	}
	if n := count(); n != 3 {
		t.Fatalf("%d records, want 3", n)
	}
	// Session sequence numbers without a key: same thing, per client.
	sreq := api.BatchRequest{Client: c1.ID, Ops: []api.BatchOp{{Op: "create", Tree: "parts", Key: api.Key{ID: g1.Start + 1}, Data: v("c"), Seq: 7}}}
	s1r, _ := e.cl.Batch(ctx, sreq)
	s2r, _ := e.cl.Batch(ctx, sreq)
	if s1r.Results[0].Err != nil || s2r.Results[0].Err != nil || !s2r.Results[0].Repeat || s2r.Results[0].Index != s1r.Results[0].Index {
		t.Fatalf("seq 7 twice: %+v then %+v", s1r.Results[0], s2r.Results[0])
	}
	if n := count(); n != 4 {
		t.Fatalf("%d records, want 4", n)
	}
	if _, err := e.cl.Batch(bk, sreq); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("seq and key together: %v", err)
	}
	if _, err := e.cl.Batch(ctx, api.BatchRequest{Ops: sreq.Ops}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("seq without client: %v", err)
	}
}
