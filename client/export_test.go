package client

import (
	"bytes"
	"io"
	"time"
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

// KeepConfirmed makes confirmed outbox entries wait for the next write's
// commit to leave local.db, however long the outbox stays empty (tests).
func (db *DB) KeepConfirmed() {
	db.out.gmu.Lock()
	defer db.out.gmu.Unlock()
	db.out.idleFlush = time.Hour
}

// CloseAsCrashed closes the client leaving local.db as a crash would: the
// removal of confirmed entries that waits for the next commit never
// happens. It returns how many such entries stay in the file (tests).
func (db *DB) CloseAsCrashed() (int, error) {
	db.cancel()
	db.wg.Wait()
	db.out.gmu.Lock()
	n := len(db.out.gone)
	db.out.gone = nil
	db.out.gmu.Unlock()
	return n, db.Close()
}
