package client

import (
	"bytes"
	"io"
)

// SnapshotReplica returns a snapshot of the replica's state (tests).
func (db *DB) SnapshotReplica() ([]byte, error) {
	s, err := db.replica.Snapshot()
	if err != nil {
		return nil, err
	}
	defer s.Release()
	var b bytes.Buffer
	if _, err := s.WriteTo(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// RestoreReplica replaces the replica's state, as a resync does (tests).
func (db *DB) RestoreReplica(r io.Reader) error { return db.replica.Restore(r) }
