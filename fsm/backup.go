package fsm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"

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

// VerifySnapshot reads a whole snapshot stream and checks its header, its
// size and its SHA-256, without keeping anything; it returns the applied
// index and payload size of the header. Bytes after the checksum are an
// error (a file that is not one snapshot).
func VerifySnapshot(r io.Reader) (index, size uint64, err error) {
	br := bufio.NewReaderSize(r, 1<<16)
	if index, size, err = ReadSnapshotHeader(br); err != nil {
		return 0, 0, err
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(br, int64(size)))
	if err != nil {
		return 0, 0, fmt.Errorf("%w: payload: %v", ErrBadSnapshot, err)
	}
	if uint64(n) != size {
		return 0, 0, fmt.Errorf("%w: payload truncated at %d of %d bytes", ErrBadSnapshot, n, size)
	}
	var sum [sha256.Size]byte
	if _, err := io.ReadFull(br, sum[:]); err != nil {
		return 0, 0, fmt.Errorf("%w: checksum missing: %v", ErrBadSnapshot, err)
	}
	if !bytes.Equal(sum[:], h.Sum(nil)) {
		return 0, 0, fmt.Errorf("%w: checksum mismatch", ErrBadSnapshot)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return 0, 0, fmt.Errorf("%w: data after the checksum", ErrBadSnapshot)
	}
	return index, size, nil
}
