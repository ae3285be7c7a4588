package fsm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/shelfdb/shelf/storage"
	bolt "go.etcd.io/bbolt"
)

// The snapshot stream: a 24-byte header (magic, the applied index and the
// payload size, both 8 bytes big-endian), a consistent copy of the bbolt
// file (the payload), and the SHA-256 of the payload. Restore checks size
// and hash before the copy replaces anything, so a truncated or damaged
// download is refused instead of opened.
var snapshotMagic = [8]byte{'S', 'H', 'E', 'L', 'F', 'S', 'N', '2'}

const snapshotHeaderSize = 24

// ErrBadSnapshot is returned by Restore for a stream that is not a Shelf
// snapshot or is damaged.
var ErrBadSnapshot = errors.New("fsm: not a valid Shelf snapshot")

// Snapshot is a point-in-time view of the state, taken without stopping
// Apply. Release it when done.
type Snapshot struct {
	tx    *bolt.Tx
	index uint64
}

// Snapshot opens a consistent view of the current state.
func (f *FSM) Snapshot() (*Snapshot, error) {
	f.dbMu.RLock()
	defer f.dbMu.RUnlock()
	tx, err := f.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("fsm: snapshot: %w", err)
	}
	return &Snapshot{tx: tx, index: storage.Uint(tx.Bucket(storage.BucketMeta), storage.MetaApplied)}, nil
}

// Index returns the applied index the snapshot was taken at.
func (s *Snapshot) Index() uint64 { return s.index }

// Size returns the length of the snapshot stream WriteTo writes.
func (s *Snapshot) Size() int64 { return snapshotHeaderSize + s.tx.Size() + sha256.Size }

// WriteTo writes the snapshot stream to w.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	var hdr [snapshotHeaderSize]byte
	copy(hdr[:8], snapshotMagic[:])
	binary.BigEndian.PutUint64(hdr[8:], s.index)
	binary.BigEndian.PutUint64(hdr[16:], uint64(s.tx.Size()))
	n, err := w.Write(hdr[:])
	if err != nil {
		return int64(n), err
	}
	h := sha256.New()
	m, err := s.tx.WriteTo(io.MultiWriter(w, h))
	if err != nil {
		return int64(n) + m, err
	}
	k, err := w.Write(h.Sum(nil))
	return int64(n) + m + int64(k), err
}

// Release ends the snapshot's read transaction. Safe to call twice.
func (s *Snapshot) Release() {
	if s.tx != nil {
		_ = s.tx.Rollback()
		s.tx = nil
	}
}

// ReadSnapshotHeader reads the header of a snapshot stream and returns the
// applied index it was taken at and the payload size.
func ReadSnapshotHeader(r io.Reader) (index, size uint64, err error) {
	var hdr [snapshotHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, 0, fmt.Errorf("%w: header: %v", ErrBadSnapshot, err)
	}
	if [8]byte(hdr[:8]) != snapshotMagic {
		return 0, 0, fmt.Errorf("%w: bad magic %q", ErrBadSnapshot, hdr[:8])
	}
	return binary.BigEndian.Uint64(hdr[8:]), binary.BigEndian.Uint64(hdr[16:]), nil
}

// Restore replaces the whole state with the snapshot read from r. The
// stream is written to a temporary file and checked before it replaces the
// current file, so a damaged stream leaves the current state in place.
func (f *FSM) Restore(r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<16)
	index, size, err := ReadSnapshotHeader(br)
	if err != nil {
		return err
	}
	start := time.Now()
	tmp := f.cfg.Path + ".restore"
	if err := writeFile(tmp, br, size); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("fsm: restore: %w", err)
	}
	downloaded := time.Now()
	// Check the copy before it replaces anything.
	db, err := storage.Open(tmp, storage.Options{})
	if err == nil {
		err = db.View(func(tx *bolt.Tx) error {
			if err := storage.Check(tx); err != nil {
				return err
			}
			if got := storage.Uint(tx.Bucket(storage.BucketMeta), storage.MetaApplied); got != index {
				return fmt.Errorf("applied index %d, header says %d", got, index)
			}
			return checkRules(rulesOf(tx), nil)
		})
		db.Close()
	}
	if err != nil {
		os.Remove(tmp)
		if errors.Is(err, ErrNeedsUpgrade) {
			return fmt.Errorf("fsm: restore: %w", err)
		}
		return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}

	checked := time.Now()
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	f.dbMu.Lock()
	defer f.dbMu.Unlock()
	if err := f.db.Close(); err != nil {
		return fmt.Errorf("fsm: restore: close current state: %w", err)
	}
	if err := os.Rename(tmp, f.cfg.Path); err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	// Checked above, and nobody else writes it: not read through again.
	if f.db, err = storage.Open(f.cfg.Path, storage.Options{NoSync: f.cfg.NoSync, Verified: true}); err != nil {
		return fmt.Errorf("fsm: restore: reopen: %w", err)
	}
	if err := f.loadMeta(); err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	if h := f.hook.Load(); h != nil {
		if err := f.db.Update((*h).Restored); err != nil {
			return fmt.Errorf("fsm: restore: rebuild local data: %w", err)
		}
	}
	f.log.Info("fsm: restored snapshot", "index", index, "cluster", f.ClusterID(), "bytes", size,
		"receive", downloaded.Sub(start).Round(time.Millisecond), "check", checked.Sub(downloaded).Round(time.Millisecond),
		"swap", time.Since(checked).Round(time.Millisecond))
	f.setApplied(f.applied.Load())
	return nil
}

// writebackChunk is how much a snapshot being received is written before
// its writeback to disk starts (see startWriteback).
const writebackChunk = 8 << 20

// writeback writes to f and starts the writeback of every full
// writebackChunk written.
type writeback struct {
	f       *os.File
	written int64 // bytes written
	started int64 // bytes whose writeback has started
}

func (w *writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.written += int64(n)
	if w.written-w.started >= writebackChunk {
		startWriteback(w.f, w.started, w.written-w.started)
		w.started = w.written
	}
	return n, err
}

// writeFile copies the size-byte payload of r to path and checks it
// against the SHA-256 that follows it.
func writeFile(path string, r io.Reader, size uint64) error {
	out, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(&writeback{f: out}, h), io.LimitReader(r, int64(size)), make([]byte, 1<<20))
	if err == nil && uint64(n) != size {
		err = fmt.Errorf("%w: payload truncated at %d of %d bytes", ErrBadSnapshot, n, size)
	}
	var sum [sha256.Size]byte
	if err == nil {
		if _, rerr := io.ReadFull(r, sum[:]); rerr != nil {
			err = fmt.Errorf("%w: checksum missing: %v", ErrBadSnapshot, rerr)
		} else if !bytes.Equal(sum[:], h.Sum(nil)) {
			err = fmt.Errorf("%w: checksum mismatch", ErrBadSnapshot)
		}
	}
	if err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
