package client

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/shelfdb/shelf/api"
	bolt "go.etcd.io/bbolt"
)

func cacheTestDB(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func cached(c *readCache, key api.Key) string {
	if e := c.get("t", key, false); e != nil {
		return string(e.data)
	}
	return ""
}

// TestReadCacheRefusesReadsOlderThanAnApply plays the interleavings of a
// read that missed (begin, read, put) with an apply (its hook inside the
// transaction, then the commit): a put whose read may have seen the state
// before the apply is refused, whenever it began.
func TestReadCacheRefusesReadsOlderThanAnApply(t *testing.T) {
	db := cacheTestDB(t)
	c := newReadCache(1 << 20)
	k := api.Key{ID: 1, Rev: 1}
	old := &api.Record{Tree: "t", Key: k, Data: []byte("old")}
	changed := []api.Event{{Type: api.EventUpdated, Tree: "t", Key: k}}

	c.put("t", k, old, false, c.begin())
	if got := cached(c, k); got != "old" {
		t.Fatalf("cached %q before any apply", got)
	}

	before := c.begin() // a read that began before the apply
	var during uint64
	err := db.Update(func(tx *bolt.Tx) error {
		c.invalidate(tx, changed, false)
		if got := cached(c, k); got != "" {
			t.Errorf("the changed record is still cached inside the apply: %q", got)
		}
		c.put("t", k, old, false, before)
		during = c.begin() // a read that began inside the apply (it sees the old state)
		c.put("t", k, old, false, during)
		if got := cached(c, k); got != "" {
			t.Errorf("a read of the old state was stored during the apply: %q", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c.put("t", k, old, false, before)
	c.put("t", k, old, false, during)
	if got := cached(c, k); got != "" {
		t.Fatalf("a read that began before the commit was stored after it: %q", got)
	}
	c.put("t", k, &api.Record{Tree: "t", Key: k, Data: []byte("new")}, false, c.begin())
	if got := cached(c, k); got != "new" {
		t.Fatalf("a read after the commit was not stored: %q", got)
	}

	// An apply that rolls back refuses stores until it is aborted.
	_ = db.Update(func(tx *bolt.Tx) error {
		c.invalidate(tx, changed, false)
		return errors.New("storage failure")
	})
	c.put("t", k, old, false, c.begin())
	if got := cached(c, k); got != "" {
		t.Fatalf("stored while the failed apply is not aborted: %q", got)
	}
	c.abort()
	c.put("t", k, old, false, c.begin())
	if got := cached(c, k); got != "old" {
		t.Fatalf("not stored after abort: %q", got)
	}

	// A restore that failed may have replaced the file without the hook:
	// reset drops everything and refuses reads that began before it.
	before = c.begin()
	c.reset()
	c.put("t", k, old, false, before)
	if st := c.stats(); st.Entries != 0 {
		t.Fatalf("after reset: %+v", st)
	}
}

// TestReadCacheInvalidation checks what each change drops: a record
// event its revision and the latest-revision entry of its id; a client's
// rename the entries with a borrow; a restore or an unknown event all.
func TestReadCacheInvalidation(t *testing.T) {
	db := cacheTestDB(t)
	c := newReadCache(1 << 20)
	rec := func(id uint64, rev uint32, borrowed bool) {
		r := &api.Record{Tree: "t", Key: api.Key{ID: id, Rev: rev}, Data: []byte(fmt.Sprint(id, rev))}
		if borrowed {
			r.Borrow = &api.Borrow{Client: "c1"}
		}
		c.put("t", api.Key{ID: id, Rev: rev}, r, true, c.begin())
		c.put("t", api.Key{ID: id}, r, true, c.begin())
	}
	apply := func(evs ...api.Event) {
		if err := db.Update(func(tx *bolt.Tx) error { c.invalidate(tx, evs, false); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	rec(1, 1, false)
	rec(2, 1, true)
	rec(3, 2, false)
	apply(api.Event{Type: api.EventSchema, Tree: "t"}, api.Event{Type: api.EventRange, Key: api.Key{ID: 1000}})
	if st := c.stats(); st.Entries != 6 {
		t.Fatalf("a schema or range event dropped entries: %+v", st)
	}
	apply(api.Event{Type: api.EventCreated, Tree: "t", Key: api.Key{ID: 3, Rev: 3}}) // a revise
	if c.get("t", api.Key{ID: 3}, false) != nil || c.get("t", api.Key{ID: 3, Rev: 2}, false) == nil {
		t.Fatal("a new revision must drop the latest-revision entry, and only that")
	}
	apply(api.Event{Type: api.EventClient})
	if c.get("t", api.Key{ID: 2, Rev: 1}, true) != nil || c.get("t", api.Key{ID: 1, Rev: 1}, true) == nil {
		t.Fatal("a client's rename must drop the borrowed records, and only those")
	}
	apply(api.Event{Type: "something new", Tree: "t"})
	if st := c.stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Fatalf("an unknown event must drop everything: %+v", st)
	}
	rec(1, 1, false)
	apply(api.Event{Type: api.EventUpdated, Key: api.Key{ID: 5, Rev: 1}}) // names no tree
	if st := c.stats(); st.Entries != 0 {
		t.Fatalf("a record event without its tree must drop everything: %+v", st)
	}
	rec(1, 1, false)
	if err := db.Update(func(tx *bolt.Tx) error { c.invalidate(tx, nil, true); return nil }); err != nil {
		t.Fatal(err)
	}
	if st := c.stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Fatalf("a restore must drop everything: %+v", st)
	}
	// A value-only read does not replace a whole record; a whole one
	// replaces a value-only one.
	k := api.Key{ID: 9, Rev: 1}
	c.put("t", k, &api.Record{Key: k, Data: []byte("v")}, false, c.begin())
	if c.get("t", k, true) != nil || c.get("t", k, false) == nil {
		t.Fatal("a value-only entry must answer value reads only")
	}
	c.put("t", k, &api.Record{Key: k, Data: []byte("v"), State: 3}, true, c.begin())
	if e := c.get("t", k, true); e == nil || e.meta == nil || e.meta.State != 3 {
		t.Fatal("a whole record must replace a value-only entry")
	}
	c.close()
	if c.get("t", k, false) != nil {
		t.Fatal("a closed cache answered")
	}
	c.put("t", k, &api.Record{Key: k, Data: []byte("v")}, false, c.begin())
	if st := c.stats(); st.Entries != 0 {
		t.Fatalf("a closed cache stored: %+v", st)
	}
}

// TestReadCacheEvictsWithinCapacity fills the cache far past its
// capacity: the accounted bytes never pass it, recently hit entries
// survive a sweep, and the eviction list does not grow without bound.
func TestReadCacheEvictsWithinCapacity(t *testing.T) {
	const capacity = 32 * 1024
	c := newReadCache(capacity)
	data := make([]byte, 100)
	hot := api.Key{ID: 7, Rev: 1}
	for i := range 20000 {
		k := api.Key{ID: uint64(i + 1), Rev: 1}
		c.put("t", k, &api.Record{Key: k, Data: data}, false, c.begin())
		c.get("t", hot, false) // keeps its reference bit set
		if st := c.stats(); st.Bytes > capacity {
			t.Fatalf("after %d puts the cache accounts %d bytes, capacity %d", i+1, st.Bytes, capacity)
		}
	}
	if c.get("t", hot, false) == nil {
		t.Fatal("an entry hit between every put was evicted")
	}
	st := c.stats()
	if st.Entries == 0 || st.Bytes < capacity/2 {
		t.Fatalf("cache %+v: too little kept", st)
	}
	for i := range c.shards {
		if s := &c.shards[i]; len(s.ring) > 2*len(s.entries)+16 {
			t.Fatalf("shard %d: ring of %d for %d entries", i, len(s.ring), len(s.entries))
		}
	}
	// An entry larger than a shard's share is not stored.
	big := api.Key{ID: 1 << 40, Rev: 1}
	c.put("t", big, &api.Record{Key: big, Data: make([]byte, capacity)}, false, c.begin())
	if c.get("t", big, false) != nil {
		t.Fatal("an entry over a shard's share was stored")
	}
	// Invalidations without puts do not grow the ring either.
	for i := range 5000 {
		k := api.Key{ID: uint64(i + 1), Rev: 1}
		c.put("t", k, &api.Record{Key: k, Data: data}, false, c.begin())
		c.forget("t", k)
	}
	for i := range c.shards {
		if s := &c.shards[i]; len(s.ring) > 2*len(s.entries)+16 {
			t.Fatalf("shard %d: ring of %d for %d entries", i, len(s.ring), len(s.entries))
		}
	}
	if newReadCache(0) != nil || newReadCache(-1) != nil {
		t.Fatal("a capacity of 0 or less must turn the cache off")
	}
}
