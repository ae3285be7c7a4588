package fsm

import (
	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/storage"
	bolt "go.etcd.io/bbolt"
)

// MaxMemberID bounds a server's node id (cluster.Config checks the same).
const MaxMemberID = 64

// removeMember records that an operator removed server Member, which ran
// with start token Start. Replicated, so that every future leader knows
// not to add it back while that process runs.
func (t *txn) removeMember() (*Result, error) {
	id := t.c.Member
	if id == "" || len(id) > MaxMemberID {
		return reject(api.Errorf(api.CodeInvalid, "remove-member: invalid node id %q", id))
	}
	if len(t.c.Start) > 64 {
		return reject(api.Errorf(api.CodeInvalid, "remove-member: start token over 64 bytes"))
	}
	return &Result{}, t.tx.Bucket(storage.BucketRemoved).Put([]byte(id), []byte(t.c.Start))
}

// readmitMember forgets the removal of server Member: it restarted and may
// be a member again.
func (t *txn) readmitMember() (*Result, error) {
	id := t.c.Member
	if id == "" || len(id) > MaxMemberID {
		return reject(api.Errorf(api.CodeInvalid, "readmit-member: invalid node id %q", id))
	}
	return &Result{}, t.tx.Bucket(storage.BucketRemoved).Delete([]byte(id))
}

// Removed reports whether an operator removed server id and it has not
// been readmitted since, with the start token it ran with when removed.
func (f *FSM) Removed(id string) (start string, removed bool, err error) {
	err = f.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(storage.BucketRemoved).Get([]byte(id))
		if v != nil {
			start, removed = string(v), true
		}
		return nil
	})
	return start, removed, err
}
