package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/lease"
	"github.com/shelfdb/shelf/storage"
	bolt "go.etcd.io/bbolt"
)

// MaxAuditEntries is how many borrow changes the history of one record
// keeps; older ones are dropped as new ones come (the same on every
// replica, since it is decided by the entries alone).
const MaxAuditEntries = 256

// addAudit appends an entry to a record's borrow history, at the command's
// index and time.
func (t *txn) addAudit(tree string, key api.Key, a storage.Audit) error {
	a.Time = t.c.Time
	t.auditSeq++
	if err := storage.Put(t.audit, storage.AuditKey(tree, key, t.index, t.auditSeq), &a); err != nil {
		return err
	}
	prefix := storage.BorrowKey(tree, key)
	c := t.audit.Cursor()
	n := 0
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+10; k, _ = c.Next() {
		n++
	}
	for k, _ := c.Seek(prefix); n > MaxAuditEntries && k != nil; k, _ = c.Seek(prefix) {
		if err := t.audit.Delete(k); err != nil {
			return err
		}
		n--
	}
	return nil
}

// endBorrow removes a record's borrow, if any, and records why.
func (t *txn) endBorrow(tree string, key api.Key, a storage.Audit) error {
	bk := storage.BorrowKey(tree, key)
	if t.borrows.Get(bk) == nil {
		return nil
	}
	if err := t.addAudit(tree, key, a); err != nil {
		return err
	}
	if err := t.unindexExpiry(bk); err != nil {
		return err
	}
	return t.borrows.Delete(bk)
}

// putBorrow stores a record's borrow, keeping the expiry index in step.
func (t *txn) putBorrow(tree string, key api.Key, bw *storage.Borrow) error {
	bk := storage.BorrowKey(tree, key)
	if err := t.unindexExpiry(bk); err != nil {
		return err
	}
	if bw.Expires != 0 {
		if err := t.tx.Bucket(storage.BucketExpiries).Put(storage.ExpiryKey(bw.Expires, bk), nil); err != nil {
			return err
		}
	}
	return storage.Put(t.borrows, bk, bw)
}

// unindexExpiry drops the expiry index entry of the borrow stored at bk,
// if it has one.
func (t *txn) unindexExpiry(bk []byte) error {
	var old storage.Borrow
	found, err := storage.Get(t.borrows, bk, &old)
	if err != nil || !found || old.Expires == 0 {
		return err
	}
	return t.tx.Bucket(storage.BucketExpiries).Delete(storage.ExpiryKey(old.Expires, bk))
}

// expired ends a borrow whose time ran out: event, history, removal.
func (t *txn) expired(tree string, key api.Key, bw *storage.Borrow) error {
	t.emit(api.EventReturned, key, func(e *api.Event) { e.Tree, e.Holder, e.Expired, e.Client = tree, bw.Client, true, "" })
	return t.endBorrow(tree, key, storage.Audit{Action: string(api.AuditExpired), Holder: bw.Client, Expires: bw.Expires})
}

// expire ends the command's record's borrow if its expiry has passed at
// the command's time. The leader sends it when its clock passes a
// borrow's expiry; a borrow renewed or returned meanwhile is left alone
// (accepted, nothing changes).
func (t *txn) expire() (*Result, error) {
	c := t.c
	_, _, bw, rej, err := t.record()
	if rej != nil || err != nil {
		return &Result{Err: rej}, err
	}
	if bw == nil || bw.Expires == 0 || lease.Held(bw, c.Time) {
		return &Result{Key: c.Key}, nil
	}
	return &Result{Key: c.Key}, t.expired(c.Tree, c.Key, bw)
}

// takeOver moves a record's borrow to c.Client in one step, whoever held
// it: the operator's fix for a holder who is gone.
func (t *txn) takeOver() (*Result, error) {
	c := t.c
	_, rec, bw, rej, err := t.record()
	if rej != nil || err != nil {
		return &Result{Err: rej}, err
	}
	if rej := t.released(rec); rej != nil {
		return reject(rej)
	}
	if rej := t.knownClient(c.Client); rej != nil {
		return reject(rej)
	}
	holder := ""
	if bw != nil && !lease.Held(bw, c.Time) {
		if err := t.expired(c.Tree, c.Key, bw); err != nil {
			return nil, err
		}
	} else if bw != nil {
		holder = bw.Client
		t.emit(api.EventReturned, c.Key, func(e *api.Event) { e.Holder, e.Forced, e.Reason, e.Client = bw.Client, true, c.Reason, "" })
	}
	nb := storage.Borrow{Client: c.Client, Since: c.Time}
	if c.TTL > 0 {
		nb.Expires = c.Time + c.TTL
	}
	t.emit(api.EventBorrowed, c.Key)
	if err := t.addAudit(c.Tree, c.Key, storage.Audit{Action: string(api.AuditTaken), Client: c.Client, Holder: holder, Reason: c.Reason, Expires: nb.Expires}); err != nil {
		return nil, err
	}
	return &Result{Key: c.Key}, t.putBorrow(c.Tree, c.Key, &nb)
}

// removeClient unregisters c.Client: its borrows are returned (each in the
// record's history), its ranges retired, and any later command naming it
// is refused as from an unknown client.
func (t *txn) removeClient() (*Result, error) {
	c := t.c
	if rej := t.knownClient(c.Client); rej != nil {
		return reject(rej)
	}
	type held struct {
		tree string
		key  api.Key
		bw   storage.Borrow
	}
	var borrows []held
	err := t.borrows.ForEach(func(k, v []byte) error {
		var bw storage.Borrow
		if err := api.Unmarshal(v, &bw); err != nil {
			return fmt.Errorf("%w: borrow %x: %v", storage.ErrCorrupt, k, err)
		}
		if bw.Client != c.Client {
			return nil
		}
		i := bytes.IndexByte(k, 0)
		key, err := storage.ParseRecordKey(k[i+1:])
		if i < 0 || err != nil {
			return fmt.Errorf("%w: borrow key %x", storage.ErrCorrupt, k)
		}
		borrows = append(borrows, held{string(k[:i]), key, bw})
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, b := range borrows {
		if !lease.Held(&b.bw, c.Time) {
			if err := t.expired(b.tree, b.key, &b.bw); err != nil {
				return nil, err
			}
			continue
		}
		t.emit(api.EventReturned, b.key, func(e *api.Event) {
			e.Tree, e.Holder, e.Forced, e.Reason, e.Client = b.tree, c.Client, true, c.Reason, ""
		})
		if err := t.endBorrow(b.tree, b.key, storage.Audit{Action: string(api.AuditClientRemoved), Holder: c.Client, Reason: c.Reason}); err != nil {
			return nil, err
		}
	}
	if err := t.memo.flushRanges(t.ranges); err != nil {
		return nil, err
	}
	if err := retireRanges(t.ranges, c.Client); err != nil {
		return nil, err
	}
	if err := t.dropClientSessions(c.Client); err != nil {
		return nil, err
	}
	t.emit(api.EventClientGone, api.Key{}, func(e *api.Event) { e.Tree, e.Reason = "", c.Reason })
	return &Result{}, t.clients.Delete([]byte(c.Client))
}

func retireRanges(ranges *bolt.Bucket, client string) error {
	type kv struct {
		k []byte
		r api.Range
	}
	var retire []kv
	err := ranges.ForEach(func(k, v []byte) error {
		var r api.Range
		if err := api.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("%w: range %x: %v", storage.ErrCorrupt, k, err)
		}
		if r.Client == client && !r.Retired {
			r.Retired = true
			retire = append(retire, kv{bytes.Clone(k), r})
		}
		return nil
	})
	for _, e := range retire {
		if err == nil {
			err = storage.Put(ranges, e.k, &e.r)
		}
	}
	return err
}

// History returns a record's borrow history, oldest first (at most
// MaxAuditEntries). A record deleted since keeps its history.
func (f *FSM) History(tree string, key api.Key) ([]api.AuditEntry, error) {
	if err := ValidTreeName(tree); err != nil {
		return nil, err
	}
	var out []api.AuditEntry
	err := f.view(func(tx *bolt.Tx) error {
		prefix := storage.BorrowKey(tree, key)
		c := tx.Bucket(storage.BucketAudit).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(k) != len(prefix)+10 {
				continue
			}
			var a storage.Audit
			if err := api.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("%w: audit %x: %v", storage.ErrCorrupt, k, err)
			}
			out = append(out, api.AuditEntry{Tree: tree, Key: key, Index: binary.BigEndian.Uint64(k[len(prefix):]), Time: unixTime(a.Time),
				Action: api.AuditAction(a.Action), Client: a.Client, Holder: a.Holder, Reason: a.Reason, Expires: unixTime(a.Expires)})
		}
		return nil
	})
	return out, err
}
