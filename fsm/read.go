package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/storage"
	bolt "go.etcd.io/bbolt"
)

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func toRecord(tx *bolt.Tx, tree string, k []byte, v []byte) (api.Record, error) {
	var out api.Record
	return out, fillRecord(tx, tree, k, v, &out, true)
}

// fillRecord sets *out to the record stored under k with value v (Data
// points into v): all of it with its borrow if all, else only Tree, Key,
// Schema and Data.
func fillRecord(tx *bolt.Tx, tree string, k []byte, v []byte, out *api.Record, all bool) error {
	key, err := storage.ParseRecordKey(k)
	if err != nil {
		return err
	}
	var rec storage.Record
	if !all {
		if err := storage.DecodeRecordValue(v, &rec); err != nil {
			return fmt.Errorf("record %s/%s: %w", tree, key, err)
		}
		*out = api.Record{Tree: tree, Key: key, Schema: rec.Schema, Data: rec.Data}
		return nil
	}
	if err := storage.DecodeRecord(v, &rec); err != nil {
		return fmt.Errorf("record %s/%s: %w", tree, key, err)
	}
	*out = api.Record{
		Tree: tree, Key: key, Schema: rec.Schema, Data: rec.Data, Released: rec.Released, State: rec.State,
		CreatedBy: rec.CreatedBy, Created: unixTime(rec.Created), UpdatedBy: rec.UpdatedBy,
		Updated: unixTime(rec.Updated), Index: rec.Index,
	}
	raw := tx.Bucket(storage.BucketBorrows).Get(storage.BorrowKey(tree, key))
	if raw == nil {
		return nil
	}
	var bw storage.Borrow
	if err := api.Unmarshal(raw, &bw); err != nil {
		return fmt.Errorf("%w: borrow of %s/%s: %v", storage.ErrCorrupt, tree, key, err)
	}
	b := toBorrow(tx, tree, key, bw)
	out.Borrow = &b
	return nil
}

func toBorrow(tx *bolt.Tx, tree string, key api.Key, bw storage.Borrow) api.Borrow {
	b := api.Borrow{Tree: tree, Key: key, Client: bw.Client, Since: unixTime(bw.Since), Expires: unixTime(bw.Expires)}
	var cl api.ClientInfo
	if found, _ := storage.Get(tx.Bucket(storage.BucketClients), []byte(bw.Client), &cl); found {
		b.ClientName = cl.Name
	}
	return b
}

func treeBucket(tx *bolt.Tx, tree string) (*bolt.Bucket, error) {
	// Only valid names are ever created: a bucket found needs no check of
	// its name (a read is hot), a bucket missing tells which error.
	if len(tree) > 0 && len(tree) <= MaxTreeName {
		if b := tx.Bucket(storage.BucketTrees).Bucket([]byte(tree)); b != nil {
			return b, nil
		}
	}
	if err := ValidTreeName(tree); err != nil {
		return nil, err
	}
	return nil, api.Errorf(api.CodeTreeNotFound, "tree %q does not exist", tree)
}

// Get returns a record. key.Rev 0 means the latest revision of key.ID. The
// record's Data is a copy, safe to keep.
func (f *FSM) Get(tree string, key api.Key) (api.Record, error) {
	var out api.Record
	err := f.ViewRecord(tree, key, &out, true, func() error {
		out.Data = bytes.Clone(out.Data)
		return nil
	})
	return out, err
}

// View calls fn with a record whose Data points into the database map:
// valid only until fn returns, and never to be modified. It saves a copy
// when the caller only decodes the value.
func (f *FSM) View(tree string, key api.Key, fn func(*api.Record) error) error {
	var rec api.Record
	return f.ViewRecord(tree, key, &rec, true, func() error { return fn(&rec) })
}

// ViewRecord is View for a caller that provides the record to fill: it
// sets *rec to the record, then calls fn, inside the read transaction
// (rec.Data is valid only until fn returns). A caller whose rec lives
// in a larger value it already allocated saves an allocation a read.
// With all, rec is the whole record with its borrow, as View's; without,
// only its Tree, Key, Schema and Data are set (the rest is zero, the
// borrow not looked up), for readers of the value alone.
func (f *FSM) ViewRecord(tree string, key api.Key, rec *api.Record, all bool, fn func() error) error {
	if key.ID == 0 {
		return api.Errorf(api.CodeInvalid, "invalid record id 0")
	}
	f.dbMu.RLock()
	defer f.dbMu.RUnlock()
	tx, err := f.db.Begin(false)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	b, err := treeBucket(tx, tree)
	if err != nil {
		return err
	}
	var kb [12]byte
	binary.BigEndian.PutUint64(kb[:8], key.ID)
	var k, v []byte
	if key.Rev != 0 {
		binary.BigEndian.PutUint32(kb[8:], key.Rev)
		k, v = kb[:], b.Get(kb[:])
	} else {
		// The latest revision: the last key of this id.
		binary.BigEndian.PutUint32(kb[8:], ^uint32(0))
		c := b.Cursor()
		k, v = c.Seek(kb[:])
		if k == nil || !bytes.Equal(k, kb[:]) {
			k, v = c.Prev()
		}
		if len(k) != 12 || binary.BigEndian.Uint64(k) != key.ID {
			v = nil
		}
	}
	if v == nil {
		return api.Errorf(api.CodeNotFound, "record %s/%s does not exist", tree, key)
	}
	if err := fillRecord(tx, tree, k, v, rec, all); err != nil {
		return err
	}
	return fn()
}

// List returns up to limit records of tree with key greater than after, in
// (id, rev) order. An empty after starts at the beginning.
func (f *FSM) List(tree string, after api.Key, limit int) ([]api.Record, error) {
	var out []api.Record
	err := f.Scan(tree, after, func(r *api.Record) (bool, error) {
		cp := *r
		cp.Data = bytes.Clone(r.Data)
		out = append(out, cp)
		return limit <= 0 || len(out) < limit, nil
	})
	return out, err
}

// Scan calls fn for each record of tree with key greater than after, in
// (id, rev) order, until fn returns false or an error. The record's Data is
// valid only during the call.
func (f *FSM) Scan(tree string, after api.Key, fn func(*api.Record) (bool, error)) error {
	return f.view(func(tx *bolt.Tx) error {
		b, err := treeBucket(tx, tree)
		if err != nil {
			return err
		}
		c := b.Cursor()
		start := storage.RecordKey(after)
		k, v := c.Seek(start)
		if k != nil && bytes.Equal(k, start) {
			k, v = c.Next()
		}
		for ; k != nil; k, v = c.Next() {
			rec, err := toRecord(tx, tree, k, v)
			if err != nil {
				return err
			}
			more, err := fn(&rec)
			if err != nil || !more {
				return err
			}
		}
		return nil
	})
}

// Trees lists all trees in name order.
func (f *FSM) Trees() ([]api.Tree, error) {
	var out []api.Tree
	err := f.view(func(tx *bolt.Tx) error {
		schemas := tx.Bucket(storage.BucketSchemas)
		return tx.Bucket(storage.BucketTreeInfo).ForEach(func(k, v []byte) error {
			var info storage.TreeInfo
			if err := api.Unmarshal(v, &info); err != nil {
				return fmt.Errorf("%w: tree info %q: %v", storage.ErrCorrupt, k, err)
			}
			t := api.Tree{Name: string(k), Records: info.Records, Created: unixTime(info.Created), Schemas: []uint32{}}
			prefix := storage.TreePrefix(t.Name)
			c := schemas.Cursor()
			for sk, _ := c.Seek(prefix); sk != nil && bytes.HasPrefix(sk, prefix); sk, _ = c.Next() {
				if len(sk) == len(prefix)+4 {
					t.Schemas = append(t.Schemas, uint32(sk[len(prefix)])<<24|uint32(sk[len(prefix)+1])<<16|uint32(sk[len(prefix)+2])<<8|uint32(sk[len(prefix)+3]))
				}
			}
			out = append(out, t)
			return nil
		})
	})
	return out, err
}

// Schemas lists the registered schema versions of tree, ascending.
func (f *FSM) Schemas(tree string) ([]api.Schema, error) {
	var out []api.Schema
	err := f.view(func(tx *bolt.Tx) error {
		if _, err := treeBucket(tx, tree); err != nil {
			return err
		}
		prefix := storage.TreePrefix(tree)
		c := tx.Bucket(storage.BucketSchemas).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(k) != len(prefix)+4 {
				continue
			}
			var s api.Schema
			if err := api.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("%w: schema %x: %v", storage.ErrCorrupt, k, err)
			}
			out = append(out, s)
		}
		return nil
	})
	return out, err
}

// Borrows lists the borrows of tree ("" for all trees), in tree and key
// order. Expired borrows that no command has removed yet are included with
// their expiry, so an operator sees them.
func (f *FSM) Borrows(tree string) ([]api.Borrow, error) {
	var out []api.Borrow
	err := f.view(func(tx *bolt.Tx) error {
		var prefix []byte
		if tree != "" {
			if _, err := treeBucket(tx, tree); err != nil {
				return err
			}
			prefix = storage.TreePrefix(tree)
		}
		c := tx.Bucket(storage.BucketBorrows).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				return fmt.Errorf("%w: borrow key %x", storage.ErrCorrupt, k)
			}
			key, err := storage.ParseRecordKey(k[i+1:])
			if err != nil {
				return err
			}
			var bw storage.Borrow
			if err := api.Unmarshal(v, &bw); err != nil {
				return fmt.Errorf("%w: borrow %x: %v", storage.ErrCorrupt, k, err)
			}
			out = append(out, toBorrow(tx, string(k[:i]), key, bw))
		}
		return nil
	})
	return out, err
}

// DueBorrows returns up to limit borrows whose expiry is at or before now
// (unix ns), earliest first, from the expiry index: the leader's expiry
// loop reads only these, not every borrow. Only Tree, Key and Expires are
// set.
func (f *FSM) DueBorrows(now int64, limit int) ([]api.Borrow, error) {
	var out []api.Borrow
	err := f.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(storage.BucketExpiries).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			exp, bk, ok := storage.SplitExpiryKey(k)
			if !ok {
				return fmt.Errorf("%w: expiry key %x", storage.ErrCorrupt, k)
			}
			if exp > now {
				break
			}
			i := bytes.IndexByte(bk, 0)
			if i < 0 {
				return fmt.Errorf("%w: expiry key %x", storage.ErrCorrupt, k)
			}
			key, err := storage.ParseRecordKey(bk[i+1:])
			if err != nil {
				return err
			}
			out = append(out, api.Borrow{Tree: string(bk[:i]), Key: key, Expires: unixTime(exp)})
		}
		return nil
	})
	return out, err
}

// Clients lists registered clients by name, then id.
func (f *FSM) Clients() ([]api.ClientInfo, error) {
	var out []api.ClientInfo
	err := f.view(func(tx *bolt.Tx) error {
		return tx.Bucket(storage.BucketClients).ForEach(func(k, v []byte) error {
			var c api.ClientInfo
			if err := api.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("%w: client %q: %v", storage.ErrCorrupt, k, err)
			}
			out = append(out, c)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Client returns one registered client.
func (f *FSM) Client(id string) (api.ClientInfo, error) {
	var c api.ClientInfo
	err := f.view(func(tx *bolt.Tx) error {
		found, err := storage.Get(tx.Bucket(storage.BucketClients), []byte(id), &c)
		if err == nil && !found {
			err = api.Errorf(api.CodeUnknownClient, "client %q is not registered", id)
		}
		return err
	})
	return c, err
}

// Ranges lists granted key ranges in id order, of one client or ("") all.
func (f *FSM) Ranges(client string) ([]api.Range, error) {
	var out []api.Range
	err := f.view(func(tx *bolt.Tx) error {
		return tx.Bucket(storage.BucketRanges).ForEach(func(k, v []byte) error {
			var r api.Range
			if err := api.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("%w: range %x: %v", storage.ErrCorrupt, k, err)
			}
			if client == "" || r.Client == client {
				out = append(out, r)
			}
			return nil
		})
	})
	return out, err
}

// ContentHash returns the applied index and a SHA-256 (hex) over the
// whole state: every bucket, key and value in order. Two replicas at the
// same applied index must have the same hash; tests and operators compare
// them to prove replicas converged.
func (f *FSM) ContentHash() (index uint64, sum string, err error) {
	h := sha256.New()
	var lenBuf [binary.MaxVarintLen64]byte
	write := func(b []byte) {
		h.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(b)))])
		h.Write(b)
	}
	var walk func(b *bolt.Bucket) error
	walk = func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			write(k)
			if v != nil {
				write(v)
				return nil
			}
			h.Write([]byte{0xff}) // nested bucket marker
			return walk(b.Bucket(k))
		})
	}
	err = f.view(func(tx *bolt.Tx) error {
		index = storage.Uint(tx.Bucket(storage.BucketMeta), storage.MetaApplied)
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if bytes.Equal(name, storage.BucketLocal) {
				return nil // a client's own derived data, not replicated
			}
			write(name)
			return walk(b)
		})
	})
	return index, hex.EncodeToString(h.Sum(nil)), err
}
