package client

import (
	"bytes"
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/shelfdb/shelf/api"
	bolt "go.etcd.io/bbolt"
)

// DefaultReadCache is the default Config.ReadCache: 32 MiB.
const DefaultReadCache = 32 << 20

// ReadCacheStats describes the read cache (DB.ReadCacheStats).
type ReadCacheStats struct {
	// Hits and Misses count the replica reads the cache answered and
	// those it did not (since Open). Reads of pending writes, and reads
	// while the cache is off, count as neither.
	Hits, Misses uint64
	// Entries is the number of records cached, Bytes the memory they are
	// accounted for (their bytes plus a fixed overhead each), never more
	// than Capacity (Config.ReadCache; 0 when off).
	Entries  int
	Bytes    int64
	Capacity int64
}

// readCache keeps private copies of recently read replica records, so a
// read that hits skips the bbolt read transaction (the bucket opens, the
// B+tree descent, the decode of the stored metadata). Every read still
// hands the caller its own copy or decodes into a fresh value: the cache
// never shares memory with what a caller owns (a hit gives View's fn the
// cached Data under View's contract: not to be kept or modified).
//
// It is sharded by record id; each shard has its own RWMutex (hits take
// the read lock) and a CLOCK eviction list, and holds at most its share of
// the capacity.
//
// # Staleness
//
// The cache must never answer an older state than the replica's. Every
// change of replica.db goes through the replica hook (replicaHook):
//
//   - Applied runs inside the apply's write transaction, before it
//     commits. It sets applying, bumps gen and drops every record the
//     batch's events name (for a record event: that revision and the
//     "latest revision" entry of its id; for a change of a client's name:
//     every entry holding a borrow, which shows the name; for an event
//     type it does not know: everything). It registers tx.OnCommit, which
//     bumps gen again and clears applying once the commit is visible
//     (before the FSM publishes the new applied index, so before any
//     WaitApplied returns).
//   - Restored (a snapshot replaced the whole state, also the rebuild of
//     a broken replica) does the same, dropping everything.
//
// A read that misses takes gen (begin) before it opens its bbolt
// transaction and stores what it read (put) only if, under the shard
// lock, applying is clear and gen is unchanged. So:
//
//   - a read that began before an apply's first gen bump and stores before
//     the apply drops its records: the drop (under the same shard lock,
//     later) removes it;
//   - one that stores after that bump sees gen changed: refused;
//   - one that began during the apply (it may read the state before the
//     commit) sees applying set, or, after the commit, gen bumped again:
//     refused;
//   - one that began after OnCommit's bump opened its transaction after
//     the commit: it read the new state.
//
// Between the drop and the commit no entry of a changed record exists,
// so a hit never answers an older state than a read of bbolt would, and
// once the applied index moves past a change no read answers the state
// before it. applying is a flag, not a count: applies and restores are
// serialised by the FSM. A batch that fails (its transaction rolls back,
// OnCommit never runs) leaves applying set, which only refuses stores,
// until abort (DB.apply's error path), the next commit or a restore.
type readCache struct {
	capacity int64
	gen      atomic.Uint64
	applying atomic.Bool
	closed   atomic.Bool
	shards   [cacheShards]cacheShard
}

const cacheShards = 32

type cacheShard struct {
	mu      sync.RWMutex
	entries map[cacheKey]*cacheEntry
	ring    []*cacheEntry // CLOCK order; removed entries stay until the hand or a compaction drops them
	hand    int
	bytes   int64
	limit   int64
	hits    atomic.Uint64
	misses  atomic.Uint64
	_       [64]byte // keep shards' hot words off each other's cache lines
}

// cacheKey names a cached read: rev 0 is "the latest revision of id".
type cacheKey struct {
	tree string
	id   uint64
	rev  uint32
}

type cacheEntry struct {
	key    cacheKey
	rkey   api.Key // the record's key (key.rev 0 resolved)
	schema uint32
	ref    atomic.Bool
	gone   bool   // dropped from entries (guarded by the shard lock)
	data   []byte // the cache's own copy of the value, never changed
	// meta is the whole record but its Data (Borrow a copy of its own,
	// never changed) when the entry answers View too; nil when it
	// answers ViewValue alone.
	meta *api.Record
	size int64
}

// entryOverhead is what an entry costs besides its value and its
// metadata: the entry, its map slot (key and pointer, at the map's load
// factor) and its ring slot. Checked against the heap: 100,000 entries of
// 50-byte values account 24.8 MB and grow the heap by 24.9 MB.
const entryOverhead = int64(unsafe.Sizeof(cacheEntry{})) + int64(unsafe.Sizeof(cacheKey{})) + 8 + 8 + 32

// metaOverhead is what the metadata of an entry answering View costs
// besides its strings.
const metaOverhead = int64(unsafe.Sizeof(api.Record{}))

// fill sets *rec to the entry's record (all: every field, else the value
// alone), sharing its Data, with a Borrow of the caller's own.
func (e *cacheEntry) fill(tree string, rec *api.Record, all bool) {
	if !all || e.meta == nil {
		*rec = api.Record{Tree: tree, Key: e.rkey, Schema: e.schema, Data: e.data}
		return
	}
	*rec = *e.meta
	rec.Data = e.data
	if e.meta.Borrow != nil {
		b := *e.meta.Borrow // the caller may keep this one (Get, typed.Record)
		rec.Borrow = &b
	}
}

func newReadCache(capacity int64) *readCache {
	if capacity <= 0 {
		return nil
	}
	c := &readCache{capacity: capacity}
	for i := range c.shards {
		c.shards[i].entries = map[cacheKey]*cacheEntry{}
		c.shards[i].limit = capacity / cacheShards
	}
	// The remainder goes to the first shards: the limits add up to capacity.
	for i := range int(capacity % cacheShards) {
		c.shards[i].limit++
	}
	return c
}

func (c *readCache) shard(id uint64) *cacheShard {
	return &c.shards[bits.RotateLeft64(id*0x9e3779b97f4a7c15, 5)%cacheShards]
}

// get returns the cached record of tree/key, if there is one that answers
// a read of everything (all) or of the value alone. The entry's record
// must not be modified.
func (c *readCache) get(tree string, key api.Key, all bool) *cacheEntry {
	if c == nil || c.closed.Load() {
		return nil
	}
	s := c.shard(key.ID)
	s.mu.RLock()
	e := s.entries[cacheKey{tree, key.ID, key.Rev}]
	s.mu.RUnlock()
	if e == nil || (all && e.meta == nil) {
		s.misses.Add(1)
		return nil
	}
	if !e.ref.Load() {
		e.ref.Store(true)
	}
	s.hits.Add(1)
	return e
}

// begin returns the generation a read that missed must give put.
func (c *readCache) begin() uint64 {
	if c == nil {
		return 0
	}
	return c.gen.Load()
}

// put stores a copy of rec, read as tree/key (all: the whole record) by a
// read that called begin (gen) before it opened its transaction, unless
// the replica changed since (see readCache).
func (c *readCache) put(tree string, key api.Key, rec *api.Record, all bool, gen uint64) {
	if c == nil {
		return
	}
	// Accounted as allocated: the copy's capacity is its size class.
	data := bytes.Clone(rec.Data)
	size := entryOverhead + int64(cap(data))
	if all {
		size += metaOverhead + int64(len(rec.CreatedBy)+len(rec.UpdatedBy))
		if rec.Borrow != nil {
			size += int64(unsafe.Sizeof(api.Borrow{}) + uintptr(len(rec.Borrow.Client)+len(rec.Borrow.ClientName)))
		}
	}
	k := cacheKey{tree, key.ID, key.Rev}
	s := c.shard(key.ID)
	if size > s.limit {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.applying.Load() || c.gen.Load() != gen || c.closed.Load() {
		return
	}
	if old := s.entries[k]; old != nil {
		if old.meta != nil || !all {
			return // as good already
		}
		s.drop(old)
	}
	for s.bytes+size > s.limit && s.evict() {
	}
	e := &cacheEntry{key: k, rkey: rec.Key, schema: rec.Schema, data: data, size: size}
	if all {
		m := *rec
		m.Tree, m.Data = tree, nil
		if rec.Borrow != nil {
			b := *rec.Borrow
			m.Borrow = &b
		}
		e.meta = &m
	}
	s.entries[k] = e
	s.ring = append(s.ring, e)
	s.bytes += size
}

// drop removes e from the shard's map (its ring slot goes later).
func (s *cacheShard) drop(e *cacheEntry) {
	delete(s.entries, e.key)
	e.gone = true
	s.bytes -= e.size
	if len(s.ring) > 2*len(s.entries)+16 {
		live := s.ring[:0]
		for _, r := range s.ring {
			if !r.gone {
				live = append(live, r)
			}
		}
		clear(s.ring[len(live):])
		s.ring = live
		s.hand = 0
	}
}

// evict drops one entry by CLOCK (a referenced entry gets a second
// chance); false when the shard is empty.
func (s *cacheShard) evict() bool {
	for len(s.ring) > 0 {
		if s.hand >= len(s.ring) {
			s.hand = 0
		}
		e := s.ring[s.hand]
		last := len(s.ring) - 1
		if e.gone {
			s.ring[s.hand], s.ring[last] = s.ring[last], nil
			s.ring = s.ring[:last]
			continue
		}
		if e.ref.Load() {
			e.ref.Store(false)
			s.hand++
			continue
		}
		s.ring[s.hand], s.ring[last] = s.ring[last], nil
		s.ring = s.ring[:last]
		delete(s.entries, e.key)
		e.gone = true
		s.bytes -= e.size
		return true
	}
	return false
}

// invalidate drops what the replica's events name, with the replica in
// the transaction tx that makes them (see readCache): applying is set and
// gen bumped now, and again once tx commits.
func (c *readCache) invalidate(tx *bolt.Tx, events []api.Event, all bool) {
	if c == nil {
		return
	}
	c.applying.Store(true)
	c.gen.Add(1)
	tx.OnCommit(c.committed)
	if all {
		c.clear(nil)
		return
	}
	borrowsDropped := false
	for _, e := range events {
		switch e.Type {
		case api.EventCreated, api.EventUpdated, api.EventDeleted, api.EventBorrowed, api.EventReturned,
			api.EventReleased, api.EventStateChanged:
			if e.Key.ID != 0 && e.Tree != "" {
				c.forget(e.Tree, e.Key)
				continue
			}
			c.clear(nil) // a record event that names no record: nothing is safe
			return
		case api.EventSchema, api.EventRange:
			// Neither changes a stored record or its borrow.
		case api.EventClient, api.EventClientGone:
			// A borrow shows its holder's name.
			if !borrowsDropped {
				c.clear(func(e *cacheEntry) bool { return e.meta != nil && e.meta.Borrow != nil })
				borrowsDropped = true
			}
		default:
			c.clear(nil) // a change this code does not know: nothing is safe
			return
		}
	}
}

// forget drops the entries of tree/key: the revision, and the latest
// revision of its id (which key may be, or have stopped being).
func (c *readCache) forget(tree string, key api.Key) {
	s := c.shard(key.ID)
	s.mu.Lock()
	for _, rev := range [2]uint32{key.Rev, 0} {
		if e := s.entries[cacheKey{tree, key.ID, rev}]; e != nil {
			s.drop(e)
		}
	}
	s.mu.Unlock()
}

// clear drops every entry (if is nil) or those if accepts.
func (c *readCache) clear(accept func(*cacheEntry) bool) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		if accept == nil {
			for _, e := range s.ring {
				e.gone = true
			}
			clear(s.entries)
			s.ring, s.hand, s.bytes = nil, 0, 0
		} else {
			for _, e := range s.entries {
				if accept(e) {
					s.drop(e)
				}
			}
		}
		s.mu.Unlock()
	}
}

// committed ends an apply or restore that committed: reads that began
// before now may have read the state before it, so gen moves on before
// applying clears.
func (c *readCache) committed() {
	c.gen.Add(1)
	c.applying.Store(false)
}

// abort ends an apply that failed (its transaction rolled back, nothing
// changed).
func (c *readCache) abort() {
	if c == nil {
		return
	}
	c.gen.Add(1)
	c.applying.Store(false)
}

// reset empties the cache after a restore that failed, which may have
// replaced the state without running the hook.
func (c *readCache) reset() {
	if c == nil {
		return
	}
	c.gen.Add(1)
	c.clear(nil)
	c.gen.Add(1)
	c.applying.Store(false)
}

// close empties the cache for good (DB.Close): reads go to the replica,
// which answers that it is closed.
func (c *readCache) close() {
	if c == nil {
		return
	}
	c.closed.Store(true)
	c.gen.Add(1)
	c.clear(nil)
}

func (c *readCache) stats() ReadCacheStats {
	if c == nil {
		return ReadCacheStats{}
	}
	st := ReadCacheStats{Capacity: c.capacity}
	for i := range c.shards {
		s := &c.shards[i]
		st.Hits += s.hits.Load()
		st.Misses += s.misses.Load()
		s.mu.RLock()
		st.Entries += len(s.entries)
		st.Bytes += s.bytes
		s.mu.RUnlock()
	}
	return st
}

// ReadCacheStats returns the read cache's counters and size (all zero
// when Config.ReadCache turns it off).
func (db *DB) ReadCacheStats() ReadCacheStats { return db.cache.stats() }

// replicaHook is the replica's fsm.Hook: the read cache's invalidation,
// then the indexes.
type replicaHook struct {
	cache *readCache
	idx   *indexes
}

// Applied implements fsm.Hook.
func (h replicaHook) Applied(tx *bolt.Tx, applied uint64, events []api.Event) error {
	h.cache.invalidate(tx, events, false)
	return h.idx.Applied(tx, applied, events)
}

// Restored implements fsm.Hook.
func (h replicaHook) Restored(tx *bolt.Tx) error {
	h.cache.invalidate(tx, nil, true)
	return h.idx.Restored(tx)
}
