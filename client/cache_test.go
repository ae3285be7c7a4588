package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
	"github.com/shelfdb/shelf/internal/testserver"
)

// nameOf returns the "name" field of a record's value.
func nameOf(t testing.TB, r client.Record) string {
	t.Helper()
	v, err := api.DecodeValue(r.Data)
	if err != nil {
		t.Errorf("record %s: %v", r.Key, err)
	}
	m, _ := v.(map[string]any)
	n, _ := m["name"].(string)
	return n
}

// readTwice reads key with Get (the whole record) and ViewValue (the
// value alone) twice each, so that the second of each is answered by the
// cache, and checks all four agree; it returns the record.
func readTwice(t *testing.T, tree *client.Tree, key api.Key) (client.Record, error) {
	t.Helper()
	var first client.Record
	for i := range 2 {
		r, err := tree.Get(key)
		if err != nil {
			return r, err
		}
		var name string
		if err := tree.ViewValue(key, func(v *client.Record) error { name = nameOf(t, *v); return nil }); err != nil {
			t.Fatalf("ViewValue %s after Get found it: %v", key, err)
		}
		if name != nameOf(t, r) {
			t.Fatalf("ViewValue %s reads %q, Get %q", key, name, nameOf(t, r))
		}
		if i == 0 {
			first = r
		} else if r.Key != first.Key || !bytes.Equal(r.Data, first.Data) || r.Released != first.Released ||
			r.State != first.State || (r.Borrow == nil) != (first.Borrow == nil) {
			t.Fatalf("second read of %s differs: %+v, first %+v", key, r, first)
		}
	}
	return first, nil
}

// TestReadCacheSeesEveryChange reads each record before and after every
// kind of change the replica applies (update, checkout, return, release,
// state, revise, delete, and a change made by another client) and checks
// no read answers the state before the change, while reads do hit.
func TestReadCacheSeesEveryChange(t *testing.T) {
	s := testserver.Start(t)
	db := testserver.Open(t, t.TempDir(), s.Addr)
	other := testserver.Open(t, t.TempDir(), s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	parts := db.Tree("parts")
	res, err := parts.Create(ctx, 0, val(t, map[string]any{"name": "v1"}))
	if err != nil {
		t.Fatal(err)
	}
	k, latest := res.Key, api.Key{ID: res.Key.ID}
	expect := func(what, name string, borrowed, released bool, state int64) {
		t.Helper()
		for _, key := range []api.Key{k, latest} {
			r, err := readTwice(t, parts, key)
			if err != nil {
				t.Fatalf("%s: read %s: %v", what, key, err)
			}
			if nameOf(t, r) != name || (r.Borrow != nil) != borrowed || r.Released != released || r.State != state {
				t.Fatalf("%s: read %s = %q borrowed %v released %v state %d; want %q %v %v %d",
					what, key, nameOf(t, r), r.Borrow != nil, r.Released, r.State, name, borrowed, released, state)
			}
		}
	}
	expect("create", "v1", false, false, 0)
	if err := parts.Checkout(ctx, k, 0); err != nil {
		t.Fatal(err)
	}
	expect("checkout", "v1", true, false, 0)
	if _, err := parts.Update(ctx, k, 0, val(t, map[string]any{"name": "v2"})); err != nil {
		t.Fatal(err)
	}
	expect("update", "v2", true, false, 0)
	if err := parts.Return(ctx, k); err != nil {
		t.Fatal(err)
	}
	expect("return", "v2", false, false, 0)

	// A change by another client reaches this replica through the log.
	op := other.Tree("parts")
	if err := other.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if err := op.Checkout(ctx, k, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := op.Update(ctx, k, 0, val(t, map[string]any{"name": "v3"})); err != nil {
		t.Fatal(err)
	}
	if err := db.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	expect("update by another client", "v3", true, false, 0)
	if err := op.Release(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := db.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	expect("release", "v3", false, true, 0)
	if err := parts.SetState(ctx, k, 7); err != nil {
		t.Fatal(err)
	}
	expect("state", "v3", false, true, 7)

	next, err := parts.Revise(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	r, err := readTwice(t, parts, latest)
	if err != nil || r.Key != next || r.Released {
		t.Fatalf("latest after revise: %+v %v, want the draft %s", r, err, next)
	}
	if _, err := parts.Update(ctx, next, 0, val(t, map[string]any{"name": "v4"})); err != nil {
		t.Fatal(err)
	}
	if r, err := readTwice(t, parts, latest); err != nil || r.Key != next || nameOf(t, r) != "v4" {
		t.Fatalf("latest after the draft's update: %+v %v", r, err)
	}
	if _, err := parts.Delete(ctx, next); err != nil {
		t.Fatal(err)
	}
	if _, err := parts.Get(next); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("get of the deleted draft: %v", err)
	}
	// The latest revision is the released one again.
	expect("delete of the draft", "v3", false, true, 7)
	if st := db.ReadCacheStats(); st.Hits == 0 || st.Entries == 0 || st.Bytes > st.Capacity || st.Capacity != client.DefaultReadCache {
		t.Fatalf("cache stats %+v: want hits, entries, bytes within the default capacity", st)
	}
}

// TestReadCacheRacesApplies races readers on two clients with a writer
// updating a few records: every read answers a value at least as new as
// the last one the reading replica had applied when the read began.
func TestReadCacheRacesApplies(t *testing.T) {
	s := testserver.Start(t)
	w := testserver.Open(t, t.TempDir(), s.Addr)
	r := testserver.Open(t, t.TempDir(), s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const nkeys = 4
	const rounds = 40
	var keys [nkeys]api.Key
	for i := range keys {
		res, err := w.Tree("parts").Create(ctx, 0, val(t, map[string]any{"name": "0"}))
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = res.Key
		if err := w.Tree("parts").Checkout(ctx, res.Key, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}

	type write struct {
		index uint64
		n     int
	}
	type read struct {
		applied uint64 // the reading replica's applied index before the read
		n       int
	}
	var writes [nkeys][]write // in the order made, so by index
	var mu sync.Mutex
	reads := map[*client.DB]*[nkeys][]read{w: {}, r: {}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var once sync.Once
	finish := func() { once.Do(func() { close(stop) }); wg.Wait() }
	defer finish() // before the clients close, however the test ends
	for _, db := range []*client.DB{w, r} {
		for g := range 2 {
			wg.Go(func() {
				tree := db.Tree("parts")
				var mine [nkeys][]read
				defer func() {
					mu.Lock()
					for i := range mine {
						reads[db][i] = append(reads[db][i], mine[i]...)
					}
					mu.Unlock()
				}()
				for j := 0; ; j++ {
					select {
					case <-stop:
						return
					default:
					}
					i := j % nkeys
					key := keys[i]
					if j%3 == 0 {
						key = api.Key{ID: key.ID} // the latest revision
					}
					applied := db.AppliedIndex()
					var name string
					var err error
					switch (j + g) % 3 {
					case 0:
						var rec client.Record
						rec, err = tree.Get(key)
						name = nameOf(t, rec)
					case 1:
						err = tree.ViewValue(key, func(rec *client.Record) error { name = nameOf(t, *rec); return nil })
					default:
						err = tree.View(key, func(rec *client.Record) error { name = nameOf(t, *rec); return nil })
					}
					if err != nil {
						t.Errorf("read %s: %v", key, err)
						return
					}
					var n int
					fmt.Sscan(name, &n)
					mine[i] = append(mine[i], read{applied, n})
				}
			})
		}
	}
	for n := 1; n <= rounds; n++ {
		for i, k := range keys {
			res, err := w.Tree("parts").Update(ctx, k, 0, val(t, map[string]any{"name": fmt.Sprint(n)}))
			if err != nil {
				t.Fatal(err)
			}
			writes[i] = append(writes[i], write{res.Index, n})
		}
	}
	if err := r.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	finish()
	for db, rs := range reads {
		total := 0
		for i := range keys {
			ws := writes[i]
			for _, rd := range rs[i] {
				// The newest write the replica had applied when the read began.
				at := sort.Search(len(ws), func(j int) bool { return ws[j].index > rd.applied })
				want := 0
				if at > 0 {
					want = ws[at-1].n
				}
				if rd.n < want {
					t.Fatalf("client %s read %d of record %s with index %d applied, which holds %d", db.Name(), rd.n, keys[i], rd.applied, want)
				}
			}
			total += len(rs[i])
		}
		if st := db.ReadCacheStats(); st.Hits == 0 || total == 0 {
			t.Fatalf("client %s: %d reads, cache %+v: the readers did not run against the cache", db.Name(), total, st)
		}
	}
}

// TestReadCacheClearedByRestore restores an older snapshot into the
// replica (as a resync does): reads answer the restored state, not what
// was cached before.
func TestReadCacheClearedByRestore(t *testing.T) {
	s := testserver.Start(t)
	db := testserver.Open(t, t.TempDir(), s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	parts := db.Tree("parts")
	res, err := parts.Create(ctx, 0, val(t, map[string]any{"name": "old"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := parts.Checkout(ctx, res.Key, 0); err != nil {
		t.Fatal(err)
	}
	snap, err := db.SnapshotReplica()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parts.Update(ctx, res.Key, 0, val(t, map[string]any{"name": "new"})); err != nil {
		t.Fatal(err)
	}
	if r, err := readTwice(t, parts, res.Key); err != nil || nameOf(t, r) != "new" {
		t.Fatalf("read before the restore: %+v %v", r, err)
	}
	// Offline, so that the replica stays at the snapshot's state.
	s.Stop()
	testserver.WaitFor(t, "the client to notice it is offline", func() bool { return !db.Online() })
	if err := db.RestoreReplica(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if r, err := readTwice(t, parts, res.Key); err != nil || nameOf(t, r) != "old" {
		t.Fatalf("read after restoring the older state: %q %v, want old", nameOf(t, r), err)
	}
}

// TestReadCacheBound reads more records than the cache holds: its memory
// stays within Config.ReadCache and every read is right.
func TestReadCacheBound(t *testing.T) {
	s := testserver.Start(t)
	const capacity = 64 << 10
	db := testserver.OpenWith(t, t.TempDir(), func(c *client.Config) { c.ReadCache = capacity; c.RangeSize = 1000 }, s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	parts := db.Tree("parts")
	const n = 300 // of about 1 KiB each: several times the capacity
	pad := strings.Repeat("x", 1000)
	keys := make([]api.Key, n)
	for i := range keys {
		res, err := parts.Create(client.NoWait(ctx), 0, val(t, map[string]any{"name": fmt.Sprint(i), "pad": pad}))
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = res.Key
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		for i, k := range keys {
			r, err := parts.Get(k)
			if err != nil || nameOf(t, r) != fmt.Sprint(i) {
				t.Fatalf("round %d: get %s: %v %v", round, k, nameOf(t, r), err)
			}
			if st := db.ReadCacheStats(); st.Bytes > capacity {
				t.Fatalf("cache holds %d bytes, capacity %d", st.Bytes, capacity)
			}
		}
	}
	st := db.ReadCacheStats()
	if st.Capacity != capacity || st.Entries == 0 || st.Entries >= n || st.Misses == 0 {
		t.Fatalf("cache %+v: want some of the %d records cached, within capacity", st, n)
	}
}

// TestReadCacheOff turns the cache off: reads are answered by the replica.
func TestReadCacheOff(t *testing.T) {
	s := testserver.Start(t)
	db := testserver.OpenWith(t, t.TempDir(), func(c *client.Config) { c.ReadCache = -1 }, s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	parts := db.Tree("parts")
	res, err := parts.Create(ctx, 0, val(t, map[string]any{"name": "a"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := parts.Checkout(ctx, res.Key, 0); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if name != "a" {
			if _, err := parts.Update(ctx, res.Key, 0, val(t, map[string]any{"name": name})); err != nil {
				t.Fatal(err)
			}
		}
		if r, err := readTwice(t, parts, res.Key); err != nil || nameOf(t, r) != name {
			t.Fatalf("read: %q %v, want %q", nameOf(t, r), err, name)
		}
	}
	if st := db.ReadCacheStats(); st != (client.ReadCacheStats{}) {
		t.Fatalf("cache off, stats %+v", st)
	}
}

// TestReadCacheReturnsOwnCopies changes what reads returned: the next
// read is unchanged. After Close, reads fail rather than answer from the
// cache.
func TestReadCacheReturnsOwnCopies(t *testing.T) {
	s := testserver.Start(t)
	db := testserver.Open(t, t.TempDir(), s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	parts := db.Tree("parts")
	res, err := parts.Create(ctx, 0, val(t, map[string]any{"name": "same"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := parts.Checkout(ctx, res.Key, 0); err != nil {
		t.Fatal(err)
	}
	want, err := parts.Get(res.Key)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r, err := parts.Get(res.Key)
		if err != nil || !bytes.Equal(r.Data, want.Data) || r.Borrow == nil || r.Borrow.Client != db.ClientID() {
			t.Fatalf("get: %+v %v, want %+v", r, err, want)
		}
		clear(r.Data)
		r.Borrow.Client = "someone else"
	}
	if st := db.ReadCacheStats(); st.Hits < 2 {
		t.Fatalf("cache %+v: the reads did not hit", st)
	}
	db.Close()
	if r, err := parts.Get(res.Key); err == nil {
		t.Fatalf("get after Close: %+v, want an error", r)
	}
}
