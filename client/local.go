package client

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/storage"
	bolt "go.etcd.io/bbolt"
)

// The client's own file, local.db, beside the replica: what belongs to
// this client and not to the cluster's state, so that the replica can be
// replaced wholesale (snapshot, corruption) without losing any of it.
var (
	bucketMeta      = []byte("meta")      // identity, pinned cluster, learnt servers, id cursors
	bucketOutbox    = []byte("outbox")    // seq (8 bytes BE) -> outboxEntry
	bucketConflicts = []byte("conflicts") // seq (8 bytes BE) -> Conflict

	keyFormat  = []byte("format")
	keyClient  = []byte("client")
	keyCluster = []byte("cluster")
	keyServers = []byte("servers")
	keyCursor  = []byte("cursor:") // + range start (8 bytes BE) -> next unused id
)

const localFormat = "shelf-local/1"

// local is the client's own state file.
type local struct {
	db *bolt.DB
}

// openLocal opens local.db, after checking it: unlike the replica, a
// damaged local.db is never moved aside or rebuilt, since its outbox holds
// writes the cluster has not seen; Open refuses with an error naming it.
func openLocal(path string) (*local, error) {
	info, err := storage.Inspect(path)
	if err == nil {
		for _, b := range info.Buckets {
			if b != string(bucketMeta) && b != string(bucketOutbox) && b != string(bucketConflicts) {
				err = fmt.Errorf("%w: %s holds buckets %q", storage.ErrForeign, path, info.Buckets)
				break
			}
		}
	}
	if err == nil {
		var db *bolt.DB
		if db, err = storage.OpenBolt(path, &bolt.Options{Timeout: 2 * time.Second}); err == nil {
			return initLocal(path, db)
		}
	}
	switch {
	case errors.Is(err, storage.ErrLocked):
		return nil, fmt.Errorf("client: %s is in use by another process", path)
	case errors.Is(err, storage.ErrCorrupt), errors.Is(err, storage.ErrForeign):
		return nil, fmt.Errorf("client: cannot use this client's own file (%w); it holds the client's identity and its outbox "+
			"(writes not yet sent to the cluster), so it is never moved aside or rebuilt: restore it from a backup, or, "+
			"giving up the unsent writes, move it aside and open again to register as a new client", err)
	default:
		return nil, fmt.Errorf("client: open %s: %w", path, err)
	}
}

func initLocal(path string, db *bolt.DB) (*local, error) {
	err := storage.Guard(path, func() error {
		return db.Update(func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			if meta != nil && !bytes.Equal(meta.Get(keyFormat), []byte(localFormat)) {
				return fmt.Errorf("client: %s is not a Shelf client file (format %q)", path, meta.Get(keyFormat))
			}
			for _, b := range [][]byte{bucketMeta, bucketOutbox, bucketConflicts} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return tx.Bucket(bucketMeta).Put(keyFormat, []byte(localFormat))
		})
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &local{db: db}, nil
}

func (l *local) close() error { return l.db.Close() }

func (l *local) get(key []byte) string {
	var v string
	_ = l.db.View(func(tx *bolt.Tx) error {
		v = string(tx.Bucket(bucketMeta).Get(key))
		return nil
	})
	return v
}

func (l *local) put(key []byte, v string) error {
	return l.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(key, []byte(v)) })
}

func (l *local) servers() []string {
	var out []string
	if s := l.get(keyServers); s != "" {
		_ = api.Unmarshal([]byte(s), &out)
	}
	return out
}

func (l *local) setServers(s []string) error {
	b, err := api.Marshal(s)
	if err != nil {
		return err
	}
	return l.put(keyServers, string(b))
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// commitOutbox stores entries under the next sequence numbers, in order
// (with the id cursor of the range each create's id came from), and
// removes the outbox entries gone (settled, confirmed by the cluster), in
// one transaction: one commit and one fsync for a whole group of
// concurrent writes. An error means none of it was stored.
func (l *local) commitOutbox(entries []*outboxEntry, gone []uint64) error {
	return l.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		for _, seq := range gone {
			if err := b.Delete(seqKey(seq)); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		for _, e := range entries {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			e.Seq = seq
			if e.rangeStart != 0 {
				// Concurrent creates may store out of id order: keep the highest.
				key := append(bytes.Clone(keyCursor), seqKey(e.rangeStart)...)
				if cur := meta.Get(key); len(cur) != 8 || binary.BigEndian.Uint64(cur) <= e.Key.ID {
					if err := meta.Put(key, seqKey(e.Key.ID+1)); err != nil {
						return err
					}
				}
			}
			if err := putCBOR(b, seqKey(seq), e); err != nil {
				return err
			}
		}
		return nil
	})
}

func (l *local) outbox() ([]*outboxEntry, error) {
	var out []*outboxEntry
	err := l.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			var e outboxEntry
			if err := api.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("client: outbox entry %x unreadable: %w", k, err)
			}
			out = append(out, &e)
			return nil
		})
	})
	return out, err
}

// settle removes outbox entries and keeps those with a non-nil conflict
// as conflicts, in one transaction: an entry is never in both or neither.
func (l *local) settle(seqs []uint64, conflicts []*Conflict) error {
	return l.db.Update(func(tx *bolt.Tx) error {
		out, cb := tx.Bucket(bucketOutbox), tx.Bucket(bucketConflicts)
		for i, seq := range seqs {
			if err := out.Delete(seqKey(seq)); err != nil {
				return err
			}
			if conflicts[i] != nil {
				if err := putCBOR(cb, seqKey(seq), conflicts[i]); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (l *local) conflicts() ([]Conflict, error) {
	var out []Conflict
	err := l.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketConflicts).ForEach(func(k, v []byte) error {
			var c Conflict
			if err := api.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("client: conflict %x unreadable: %w", k, err)
			}
			out = append(out, c)
			return nil
		})
	})
	return out, err
}

func (l *local) dropConflict(seq uint64) error {
	return l.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketConflicts)
		if b.Get(seqKey(seq)) == nil {
			return fmt.Errorf("client: no conflict %d", seq)
		}
		return b.Delete(seqKey(seq))
	})
}

// cursor returns the next unused id of the range starting at start, as
// this client counts it (ids handed to creates not yet confirmed count).
func (l *local) cursor(start uint64) uint64 {
	var v uint64
	_ = l.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta).Get(append(bytes.Clone(keyCursor), seqKey(start)...)); len(b) == 8 {
			v = binary.BigEndian.Uint64(b)
		}
		return nil
	})
	return v
}

func putCBOR(b *bolt.Bucket, k []byte, v any) error {
	raw, err := api.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, raw)
}
