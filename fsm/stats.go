package fsm

import (
	"fmt"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/storage"
	bolt "go.etcd.io/bbolt"
)

// Stats are counts of the state that are cheap to read: no record is
// read, so a metrics scrape may ask for them.
type Stats struct {
	// Borrows is the number of borrows held (expired ones that no command
	// has removed yet included). It is counted from the borrows bucket's
	// pages, without decoding a borrow.
	Borrows int
	// ExpiringBy is the number of borrows whose expiry is at or before
	// the time given to Stats (overdue ones included), read from the
	// expiry index up to that time.
	ExpiringBy int
	// Records is the record count of each tree, from the per-tree counter
	// the state keeps (one entry per tree).
	Records map[string]uint64
}

// Stats returns the state's counts, with ExpiringBy counting borrows that
// expire at or before by (unix ns).
func (f *FSM) Stats(by int64) (Stats, error) {
	s := Stats{Records: map[string]uint64{}}
	err := f.view(func(tx *bolt.Tx) error {
		s.Borrows = tx.Bucket(storage.BucketBorrows).Stats().KeyN
		if ex := tx.Bucket(storage.BucketExpiries); ex != nil {
			c := ex.Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				exp, _, ok := storage.SplitExpiryKey(k)
				if !ok {
					return fmt.Errorf("%w: expiry key %x", storage.ErrCorrupt, k)
				}
				if exp > by {
					break
				}
				s.ExpiringBy++
			}
		}
		return tx.Bucket(storage.BucketTreeInfo).ForEach(func(k, v []byte) error {
			var info storage.TreeInfo
			if err := api.Unmarshal(v, &info); err != nil {
				return fmt.Errorf("%w: tree info %q: %v", storage.ErrCorrupt, k, err)
			}
			s.Records[string(k)] = info.Records
			return nil
		})
	})
	return s, err
}
