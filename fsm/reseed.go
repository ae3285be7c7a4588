package fsm

import (
	"fmt"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/storage"
	bolt "go.etcd.io/bbolt"
)

// ReplaceClusterID gives the state a new cluster id. It is for seeding a
// new cluster from a backup (cluster.Restore), on a state file no raft
// node is applying to: replicas of the old cluster then refuse the new one
// instead of mixing the two. Use OpSetCluster for a state without an id.
func (f *FSM) ReplaceClusterID(id string) error {
	if id == "" || len(id) > MaxClientID {
		return api.Errorf(api.CodeInvalid, "replace cluster id: invalid cluster id %q", id)
	}
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	f.dbMu.RLock()
	defer f.dbMu.RUnlock()
	err := f.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(storage.BucketMeta).Put(storage.MetaCluster, []byte(id))
	})
	if err != nil {
		return fmt.Errorf("fsm: replace cluster id: %w", err)
	}
	f.cluster.Store(&id)
	return nil
}

// SnapshotInfo describes the state held in a snapshot stream.
type SnapshotInfo struct {
	Index     uint64         // the applied index it was taken at
	ClusterID string         // the cluster it belongs to
	Rules     uint32         // the rules version of its state
	Size      int64          // the payload (state file) size in bytes
	Hash      string         // ContentHash of the state
	Records   map[string]int // records per tree
	Clients   int            // registered clients
	Borrows   int            // borrows held
}

// Info describes the state: what kvctl snapshot inspect prints of a
// snapshot restored into a scratch file.
func (f *FSM) Info() (SnapshotInfo, error) {
	var in SnapshotInfo
	_, hash, err := f.ContentHash()
	if err != nil {
		return in, err
	}
	in.Hash = hash
	err = f.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(storage.BucketMeta)
		in.Index = storage.Uint(meta, storage.MetaApplied)
		in.ClusterID = string(meta.Get(storage.MetaCluster))
		in.Rules = rulesOf(tx)
		in.Size = tx.Size()
		in.Clients = tx.Bucket(storage.BucketClients).Stats().KeyN
		in.Borrows = tx.Bucket(storage.BucketBorrows).Stats().KeyN
		in.Records = map[string]int{}
		return tx.Bucket(storage.BucketTrees).ForEach(func(name, v []byte) error {
			if v != nil {
				return nil
			}
			in.Records[string(name)] = tx.Bucket(storage.BucketTrees).Bucket(name).Stats().KeyN
			return nil
		})
	})
	return in, err
}
