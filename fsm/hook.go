package fsm

import (
	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/storage"
	bolt "go.etcd.io/bbolt"
)

// Hook maintains data that a client derives from the replicated state
// (its indexes) in the same bbolt file, under storage.BucketLocal, and in
// the same transactions as the changes it derives from: the derived data
// is never behind or ahead of the state. It runs with applies stopped, so
// it should be quick. An error it returns is a storage failure (the
// replica stops); it must handle bad record values itself.
type Hook interface {
	// Applied runs inside the transaction of every batch that advanced
	// the applied index (to applied), after its commands, with the events
	// of the accepted ones in order.
	Applied(tx *bolt.Tx, applied uint64, events []api.Event) error
	// Restored runs in a write transaction right after Restore replaced
	// the whole state (the local bucket is gone with the old file).
	Restored(tx *bolt.Tx) error
}

// SetHook installs h (nil removes it). Only client replicas use hooks.
func (f *FSM) SetHook(h Hook) {
	if h == nil {
		f.hook.Store(nil)
		return
	}
	f.hook.Store(&h)
}

func (f *FSM) runHook(tx *bolt.Tx, applied uint64, results []*Result) error {
	h := f.hook.Load()
	if h == nil {
		return nil
	}
	var evs []api.Event
	for _, r := range results {
		if r != nil && r.Err == nil {
			evs = append(evs, r.Events...)
		}
	}
	return (*h).Applied(tx, applied, evs)
}

// UpdateLocal runs fn in a write transaction, serialised with Apply and
// Restore, for a Hook's owner to build its derived data. fn must change
// nothing but storage.BucketLocal.
func (f *FSM) UpdateLocal(fn func(tx *bolt.Tx) error) error {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	f.dbMu.RLock()
	defer f.dbMu.RUnlock()
	return f.db.Update(fn)
}

// ViewTx runs fn in a read transaction of the current state file.
func (f *FSM) ViewTx(fn func(tx *bolt.Tx) error) error { return f.view(fn) }

// RecordIn reads a record inside a transaction (a Hook's or ViewTx's).
// found is false when the record does not exist. Data points into the
// transaction's memory map.
func RecordIn(tx *bolt.Tx, tree string, key api.Key) (rec api.Record, found bool, err error) {
	trees := tx.Bucket(storage.BucketTrees)
	if trees == nil {
		return rec, false, nil
	}
	b := trees.Bucket([]byte(tree))
	if b == nil {
		return rec, false, nil
	}
	k := storage.RecordKey(key)
	v := b.Get(k)
	if v == nil {
		return rec, false, nil
	}
	rec, err = toRecord(tx, tree, k, v)
	return rec, err == nil, err
}
