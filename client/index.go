package client

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
	"github.com/shelfdb/shelf/storage"
	bolt "go.etcd.io/bbolt"
)

// IndexSpec describes a secondary index of one tree, kept in the local
// replica. Package typed builds these from Go functions.
type IndexSpec struct {
	Tree string
	Name string
	// Version identifies the indexing function: an index stored with
	// another version is rebuilt when the index is added.
	Version uint32
	// Terms returns a record's index terms (none: the record is not
	// indexed). It runs inside the replica's apply transaction, so it
	// should be quick; it must not call back into the DB. An error (or a
	// panic) leaves the record out of the index and is logged.
	Terms func(rec *api.Record) ([][]byte, error)
}

// Index is a secondary index of one tree in the local replica, updated in
// the same transaction as every change the replica applies, and rebuilt
// when the replica is replaced by a snapshot. Lookups see this client's
// pending writes too. An Index is safe for concurrent use.
type Index struct {
	db   *DB
	spec IndexSpec
	name []byte // bucket name under local/idx
}

// Index buckets: local/idx/<tree>\x00<name>/{meta, t, k}.
var (
	bucketIdx     = []byte("idx")
	idxTerms      = []byte("t") // escaped term ++ record key -> nothing
	idxKeys       = []byte("k") // record key -> CBOR [][]byte of its terms
	idxMetaVer    = []byte("version")
	idxMetaAt     = []byte("at") // applied index the index reflects
	errIndexSpec  = errors.New("client: invalid index")
	termSeparator = []byte{0, 1}
)

// indexes is the replica hook that maintains every added index.
type indexes struct {
	db   *DB
	mu   sync.RWMutex
	list []*Index
}

// AddIndex adds (or reopens) an index. An index stored by an earlier run
// with the same Version that is up to date with the replica is used as it
// is; otherwise it is built now from the replica's records.
func (db *DB) AddIndex(spec IndexSpec) (*Index, error) {
	if err := fsm.ValidTreeName(spec.Tree); err != nil {
		return nil, err
	}
	if spec.Name == "" || spec.Terms == nil {
		return nil, fmt.Errorf("%w: an index needs a name and a Terms function", errIndexSpec)
	}
	ix := &Index{db: db, spec: spec, name: append(storage.TreePrefix(spec.Tree), spec.Name...)}
	// Under the replica's apply lock (then the list's, as in Applied): no
	// change can slip between the build and the index joining the list.
	err := db.replica.UpdateLocal(func(tx *bolt.Tx) error {
		db.idx.mu.Lock()
		defer db.idx.mu.Unlock()
		for _, o := range db.idx.list {
			if bytes.Equal(o.name, ix.name) {
				return fmt.Errorf("%w: added twice", errIndexSpec)
			}
		}
		b := idxBucket(tx, ix.name)
		applied := storage.Uint(tx.Bucket(storage.BucketMeta), storage.MetaApplied)
		if b == nil || storage.Uint(b, idxMetaVer) != uint64(spec.Version) || storage.Uint(b, idxMetaAt) != applied {
			if err := ix.rebuild(tx, applied); err != nil {
				return err
			}
		}
		db.idx.list = append(db.idx.list, ix)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("client: index %q of tree %q: %w", spec.Name, spec.Tree, err)
	}
	return ix, nil
}

func idxBucket(tx *bolt.Tx, name []byte) *bolt.Bucket {
	local := tx.Bucket(storage.BucketLocal)
	if local == nil {
		return nil
	}
	idx := local.Bucket(bucketIdx)
	if idx == nil {
		return nil
	}
	return idx.Bucket(name)
}

// rebuild replaces the index's content with the terms of every record.
func (ix *Index) rebuild(tx *bolt.Tx, applied uint64) error {
	local, err := tx.CreateBucketIfNotExists(storage.BucketLocal)
	if err != nil {
		return err
	}
	idx, err := local.CreateBucketIfNotExists(bucketIdx)
	if err != nil {
		return err
	}
	if idx.Bucket(ix.name) != nil {
		if err := idx.DeleteBucket(ix.name); err != nil {
			return err
		}
	}
	b, err := idx.CreateBucket(ix.name)
	if err != nil {
		return err
	}
	terms, err := b.CreateBucket(idxTerms)
	if err != nil {
		return err
	}
	keys, err := b.CreateBucket(idxKeys)
	if err != nil {
		return err
	}
	if tb := tx.Bucket(storage.BucketTrees).Bucket([]byte(ix.spec.Tree)); tb != nil {
		c := tb.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			key, err := storage.ParseRecordKey(k)
			if err != nil {
				return err
			}
			if err := ix.put(tx, terms, keys, key); err != nil {
				return err
			}
		}
	}
	if err := storage.PutUint(b, idxMetaVer, uint64(ix.spec.Version)); err != nil {
		return err
	}
	return storage.PutUint(b, idxMetaAt, applied)
}

// put indexes the record at key as it is in tx (after removing its old
// terms).
func (ix *Index) put(tx *bolt.Tx, terms, keys *bolt.Bucket, key api.Key) error {
	rk := storage.RecordKey(key)
	if old := keys.Get(rk); old != nil {
		var ts [][]byte
		if err := api.Unmarshal(old, &ts); err != nil {
			return fmt.Errorf("%w: index %q: %v", storage.ErrCorrupt, ix.spec.Name, err)
		}
		for _, t := range ts {
			if err := terms.Delete(termKey(t, key)); err != nil {
				return err
			}
		}
		if err := keys.Delete(rk); err != nil {
			return err
		}
	}
	rec, found, err := fsm.RecordIn(tx, ix.spec.Tree, key)
	if err != nil || !found {
		return err
	}
	ts := ix.terms(&rec)
	if len(ts) == 0 {
		return nil
	}
	for _, t := range ts {
		if err := terms.Put(termKey(t, key), nil); err != nil {
			return err
		}
	}
	return storage.Put(keys, rk, ts)
}

// terms calls the indexing function, which is user code: an error or a
// panic leaves the record out of the index.
func (ix *Index) terms(rec *api.Record) (ts [][]byte) {
	defer func() {
		if r := recover(); r != nil {
			ix.db.log.Error("client: index function panicked; record left out of the index",
				"tree", ix.spec.Tree, "index", ix.spec.Name, "key", rec.Key, "panic", r)
			ts = nil
		}
	}()
	ts, err := ix.spec.Terms(rec)
	if err != nil {
		ix.db.log.Warn("client: record left out of the index", "tree", ix.spec.Tree, "index", ix.spec.Name, "key", rec.Key, "err", err)
		return nil
	}
	slices.SortFunc(ts, bytes.Compare)
	return slices.CompactFunc(ts, bytes.Equal)
}

// termKey is the terms bucket key: the term with 0x00 escaped as 0x00
// 0xff, a 0x00 0x01 separator, then the record key. Byte order is term
// order, then key order.
func termKey(term []byte, key api.Key) []byte {
	out := make([]byte, 0, len(term)+2+12)
	out = appendEscaped(out, term)
	out = append(out, termSeparator...)
	return append(out, storage.RecordKey(key)...)
}

func appendEscaped(out, term []byte) []byte {
	for _, c := range term {
		out = append(out, c)
		if c == 0 {
			out = append(out, 0xff)
		}
	}
	return out
}

// splitTermKey parses a terms bucket key.
func splitTermKey(k []byte) (term []byte, key api.Key, err error) {
	if len(k) < 14 || !bytes.Equal(k[len(k)-14:len(k)-12], termSeparator) {
		return nil, key, fmt.Errorf("%w: index key %x", storage.ErrCorrupt, k)
	}
	key, err = storage.ParseRecordKey(k[len(k)-12:])
	esc := k[:len(k)-14]
	term = make([]byte, 0, len(esc))
	for i := 0; i < len(esc); i++ {
		term = append(term, esc[i])
		if esc[i] == 0 {
			i++ // skip the escape byte
		}
	}
	return term, key, err
}

// Applied implements fsm.Hook: it re-indexes every record an applied
// batch created, changed or deleted.
func (h *indexes) Applied(tx *bolt.Tx, applied uint64, events []api.Event) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, ix := range h.list {
		b := idxBucket(tx, ix.name)
		if b == nil {
			return fmt.Errorf("%w: index %q of tree %q is missing", storage.ErrCorrupt, ix.spec.Name, ix.spec.Tree)
		}
		terms, keys := b.Bucket(idxTerms), b.Bucket(idxKeys)
		for _, e := range events {
			if e.Tree != ix.spec.Tree || (e.Type != api.EventCreated && e.Type != api.EventUpdated && e.Type != api.EventDeleted) {
				continue
			}
			if err := ix.put(tx, terms, keys, e.Key); err != nil {
				return err
			}
		}
		if err := storage.PutUint(b, idxMetaAt, applied); err != nil {
			return err
		}
	}
	return nil
}

// Restored implements fsm.Hook: a new replica file holds no index, so
// every index is built again.
func (h *indexes) Restored(tx *bolt.Tx) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	applied := storage.Uint(tx.Bucket(storage.BucketMeta), storage.MetaApplied)
	for _, ix := range h.list {
		if err := ix.rebuild(tx, applied); err != nil {
			return err
		}
	}
	return nil
}

// Tree returns the name of the indexed tree.
func (ix *Index) Tree() string { return ix.spec.Tree }

// Name returns the index's name.
func (ix *Index) Name() string { return ix.spec.Name }

// IndexHit is one entry of an index: a term and a record that has it.
type IndexHit struct {
	Term []byte
	Key  api.Key
}

// Lookup returns the keys of the records with the term, in key order.
func (ix *Index) Lookup(term []byte) ([]api.Key, error) {
	hits, err := ix.Scan(term, append(bytes.Clone(term), 0), 0)
	keys := make([]api.Key, 0, len(hits))
	for _, h := range hits {
		keys = append(keys, h.Key)
	}
	return keys, err
}

// Prefix returns the entries whose term starts with prefix, in term order.
func (ix *Index) Prefix(prefix []byte, limit int) ([]IndexHit, error) {
	var end []byte
	for i := len(prefix) - 1; i >= 0; i-- {
		if prefix[i] != 0xff {
			end = append(bytes.Clone(prefix[:i]), prefix[i]+1)
			break
		}
	}
	return ix.Scan(prefix, end, limit)
}

// Scan returns the entries with from <= term < to, in term order, then
// key order (to nil: no upper bound; limit 0: no limit). This client's
// pending writes are included: a pending change replaces the record's
// entries, a pending delete removes them.
func (ix *Index) Scan(from, to []byte, limit int) ([]IndexHit, error) {
	pend := ix.db.out.pendingKeys(ix.spec.Tree)
	in := func(t []byte) bool {
		return bytes.Compare(t, from) >= 0 && (to == nil || bytes.Compare(t, to) < 0)
	}
	var hits []IndexHit
	err := ix.db.replica.ViewTx(func(tx *bolt.Tx) error {
		b := idxBucket(tx, ix.name)
		if b == nil {
			return fmt.Errorf("%w: index %q of tree %q is missing", storage.ErrCorrupt, ix.spec.Name, ix.spec.Tree)
		}
		c := b.Bucket(idxTerms).Cursor()
		for k, _ := c.Seek(appendEscaped(nil, from)); k != nil; k, _ = c.Next() {
			t, key, err := splitTermKey(k)
			if err != nil {
				return err
			}
			if !in(t) {
				break
			}
			if pend[key] != nil {
				continue
			}
			hits = append(hits, IndexHit{Term: t, Key: key})
			if limit > 0 && len(pend) == 0 && len(hits) == limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("client: index %q of tree %q: %w", ix.spec.Name, ix.spec.Tree, err)
	}
	if len(pend) > 0 {
		t := ix.db.Tree(ix.spec.Tree)
		for key, e := range pend {
			if e.Op == fsm.OpDelete {
				continue
			}
			rec, err := t.overlay(e)
			if err != nil {
				continue
			}
			for _, term := range ix.terms(&rec.Record) {
				if in(term) {
					hits = append(hits, IndexHit{Term: term, Key: key})
				}
			}
		}
		slices.SortFunc(hits, func(a, b IndexHit) int {
			if c := bytes.Compare(a.Term, b.Term); c != 0 {
				return c
			}
			return bytes.Compare(storage.RecordKey(a.Key), storage.RecordKey(b.Key))
		})
		if limit > 0 && len(hits) > limit {
			hits = hits[:limit]
		}
	}
	return hits, nil
}
