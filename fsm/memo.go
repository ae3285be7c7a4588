package fsm

import (
	"cmp"
	"slices"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/storage"
	bolt "go.etcd.io/bbolt"
)

// memo holds, for one write transaction (every entry of one TryApplyBatch),
// the decoded values that consecutive commands read and write again and
// again: a session's state, a range's use and a tree's record count. An
// outbox batch of 256 creates from one client reads and writes the same
// session, range and count 256 times; the memo decodes each once and
// writes it back once, in flush, before the transaction's hook runs and
// it commits.
//
// The memo changes no rule: every read of these three goes through it, so
// a command sees exactly what it would have read from the bucket had each
// command written its value back at once. The only code that reads the
// buckets directly within an apply, retireRanges, runs after flushRanges.
// A transaction that fails is rolled back, and its memo with it.
type memo struct {
	sessions map[string]*memoSession
	ranges   []*memoRange
	counts   map[string]*memoCount
}

type memoSession struct {
	s     storage.Session
	found bool // the session exists (in the bucket, or made in this transaction)
	dirty bool
}

type memoRange struct {
	r     api.Range
	dirty bool
}

type memoCount struct {
	info  storage.TreeInfo
	dirty bool
}

// session returns the state of the session stored at key and whether it
// exists.
func (m *memo) session(b *bolt.Bucket, key []byte) (storage.Session, bool, error) {
	if e, ok := m.sessions[string(key)]; ok {
		return e.s, e.found, nil
	}
	e := &memoSession{}
	found, err := storage.Get(b, key, &e.s)
	if err != nil {
		return storage.Session{}, false, err
	}
	e.found = found
	if m.sessions == nil {
		m.sessions = make(map[string]*memoSession)
	}
	m.sessions[string(key)] = e
	return e.s, e.found, nil
}

// putSession records s as the session's state, written back by flush.
func (m *memo) putSession(key []byte, s storage.Session) {
	if m.sessions == nil {
		m.sessions = make(map[string]*memoSession)
	}
	m.sessions[string(key)] = &memoSession{s: s, found: true, dirty: true}
}

// dropSession forgets the session at key: it no longer exists. The caller
// deletes it from the bucket.
func (m *memo) dropSession(key []byte) {
	if m.sessions == nil {
		m.sessions = make(map[string]*memoSession)
	}
	m.sessions[string(key)] = &memoSession{}
}

// rangeContaining returns the range in the memo that contains id, if any.
// Ranges never overlap, so the range of the memo that contains id is the
// one the bucket holds for id.
func (m *memo) rangeContaining(id uint64) *api.Range {
	for _, e := range m.ranges {
		if e.r.Contains(id) {
			return &e.r
		}
	}
	return nil
}

// rangeAt returns the range in the memo starting at start, if any.
func (m *memo) rangeAt(start uint64) *api.Range {
	for _, e := range m.ranges {
		if e.r.Start == start {
			return &e.r
		}
	}
	return nil
}

// keepRange adds r, just read from the bucket, to the memo and returns the
// memo's copy, which the caller may change and then mark with putRange.
func (m *memo) keepRange(r api.Range) *api.Range {
	e := &memoRange{r: r}
	m.ranges = append(m.ranges, e)
	return &e.r
}

// putRange marks the memo's copy of the range starting at start as
// changed, to be written back by flush.
func (m *memo) putRange(start uint64) {
	for _, e := range m.ranges {
		if e.r.Start == start {
			e.dirty = true
			return
		}
	}
}

// count returns the memo's copy of the tree's info, read from b on first
// use; the caller changes it and it is written back by flush.
func (m *memo) count(b *bolt.Bucket, tree string) (*storage.TreeInfo, error) {
	e, ok := m.counts[tree]
	if !ok {
		e = &memoCount{}
		if _, err := storage.Get(b, []byte(tree), &e.info); err != nil {
			return nil, err
		}
		if m.counts == nil {
			m.counts = make(map[string]*memoCount)
		}
		m.counts[tree] = e
	}
	e.dirty = true
	return &e.info, nil
}

// forgetCount drops the memo's copy of a tree's info, which the caller is
// about to write to the bucket itself.
func (m *memo) forgetCount(tree string) { delete(m.counts, tree) }

// flushRanges writes the changed ranges back and empties the range memo.
func (m *memo) flushRanges(b *bolt.Bucket) error {
	for _, e := range m.ranges {
		if e.dirty {
			if err := storage.Put(b, storage.RangeKey(e.r.Start), &e.r); err != nil {
				return err
			}
		}
	}
	m.ranges = nil
	return nil
}

// flush writes every changed value back to tx's buckets, in key order,
// and empties the memo.
func (m *memo) flush(tx *bolt.Tx) error {
	if err := putChanged(tx.Bucket(storage.BucketSessions), m.sessions, func(e *memoSession) (any, bool) { return &e.s, e.dirty }); err != nil {
		return err
	}
	m.sessions = nil
	if len(m.ranges) > 0 {
		slices.SortFunc(m.ranges, func(a, b *memoRange) int { return cmp.Compare(a.r.Start, b.r.Start) })
		if err := m.flushRanges(tx.Bucket(storage.BucketRanges)); err != nil {
			return err
		}
	}
	if err := putChanged(tx.Bucket(storage.BucketTreeInfo), m.counts, func(e *memoCount) (any, bool) { return &e.info, e.dirty }); err != nil {
		return err
	}
	m.counts = nil
	return nil
}

// putChanged stores, in key order, the values of m that changed: value
// returns an entry's value and whether it changed.
func putChanged[E any](b *bolt.Bucket, m map[string]*E, value func(*E) (any, bool)) error {
	keys := make([]string, 0, len(m))
	for k, e := range m {
		if _, changed := value(e); changed {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		v, _ := value(m[k])
		if err := storage.Put(b, []byte(k), v); err != nil {
			return err
		}
	}
	return nil
}
