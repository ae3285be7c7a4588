package fsm

import (
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/storage"
	bolt "go.etcd.io/bbolt"
)

// The expiry index lists exactly the borrows that expire, by expiry: a
// renewal moves a borrow, a return, expire or take-over without ttl drops
// it, and DueBorrows answers the due ones only.
func TestExpiryIndex(t *testing.T) {
	h, ra, _ := setup(t)
	k1, k2, k3 := api.Key{ID: ra.Start, Rev: 1}, api.Key{ID: ra.Start + 1, Rev: 1}, api.Key{ID: ra.Start + 2, Rev: 1}
	for i, k := range []api.Key{k1, k2, k3} {
		h.ok(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: k, Data: value(t, i)})
	}
	ttl := int64(time.Minute)
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: k1, TTL: ttl})
	e1 := h.now + ttl
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: k2, TTL: 2 * ttl})
	e2 := h.now + 2*ttl
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: k3}) // never expires

	due := func(now int64) []api.Key {
		t.Helper()
		bs, err := h.f.DueBorrows(now, 100)
		if err != nil {
			t.Fatal(err)
		}
		var keys []api.Key
		for _, b := range bs {
			keys = append(keys, b.Key)
		}
		return keys
	}
	if got := due(e1 - 1); len(got) != 0 {
		t.Fatalf("due before any expiry: %v", got)
	}
	if got := due(e1); len(got) != 1 || got[0] != k1 {
		t.Fatalf("due at the first expiry: %v, want [%v]", got, k1)
	}
	if got := due(e2); len(got) != 2 || got[0] != k1 || got[1] != k2 {
		t.Fatalf("due at the second expiry: %v, want [%v %v]", got, k1, k2)
	}
	// Renewing k1 for longer moves it after k2.
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: k1, TTL: 10 * ttl})
	if got := due(e2); len(got) != 1 || got[0] != k2 {
		t.Fatalf("due after renewing %v: %v, want [%v]", k1, got, k2)
	}
	h.ok(Command{Op: OpReturn, Tree: "parts", Client: "a", Key: k2})
	h.ok(Command{Op: OpTakeOver, Tree: "parts", Client: "b", Key: k1}) // no ttl: never expires
	if got := due(1 << 62); len(got) != 0 {
		t.Fatalf("due after return and take-over: %v", got)
	}
	h.ok(Command{Op: OpTakeOver, Tree: "parts", Client: "a", Key: k3, TTL: ttl})
	e3 := h.now + ttl
	h.ok(Command{Op: OpExpire, Tree: "parts", Key: k3, Time: e3})
	if got := due(1 << 62); len(got) != 0 {
		t.Fatalf("due after expire: %v", got)
	}
}

// A state file written before the expiry index existed gets it built when
// it is opened.
func TestExpiryIndexBuiltOnOpen(t *testing.T) {
	h, ra, _ := setup(t)
	k := api.Key{ID: ra.Start, Rev: 1}
	h.ok(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: k, Data: value(t, 1)})
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: k, TTL: int64(time.Minute)})
	exp := h.now + int64(time.Minute)
	path := h.f.Path()
	if err := h.f.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(storage.BucketExpiries) }); err != nil {
		t.Fatal(err)
	}
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bs, err := f.DueBorrows(exp, 10)
	if err != nil || len(bs) != 1 || bs[0].Key != k {
		t.Fatalf("due after reopening an old file: %v, %v", bs, err)
	}
}
