package cluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/shelfdb/shelf/fsm"
)

// maxSnapshotDownloads bounds the snapshot copies made at once for
// downloads (SnapshotFile); each costs the state's size in disk space
// while it is read.
const maxSnapshotDownloads = 2

// errDownloadClosed stops the copy of a download closed before it ended.
var errDownloadClosed = errors.New("cluster: snapshot download closed")

// SnapshotFile writes a snapshot stream of the state machine (the format
// fsm.Restore reads) to a temporary file in the data directory and
// returns a reader of that file from its start, with the applied index
// it was taken at and the stream's size. The file is unlinked at once:
// its space is freed when the caller closes the reader, or when the
// process exits, whatever happens.
//
// The copy runs in the background and the reader follows it: the first
// bytes go out while the rest is still being copied. The state machine's
// read transaction lasts only as long as the local copy, not as long as
// a slow download: a long read transaction would hold up bbolt's
// remapping (writers stall when the file grows) and a snapshot restore.
// A copy that fails makes the reader fail (the download is cut, never
// complete). At most maxSnapshotDownloads copies exist at once; a
// further call answers unavailable.
func (n *Node) SnapshotFile() (rc io.ReadCloser, index uint64, size int64, err error) {
	select {
	case n.snapSlots <- struct{}{}:
	default:
		return nil, 0, 0, unavailable("node %s is serving %d snapshot downloads already; retry later", n.cfg.NodeID, maxSnapshotDownloads)
	}
	defer func() {
		if err != nil {
			<-n.snapSlots
		}
	}()
	s, err := n.fsm.Snapshot()
	if err != nil {
		return nil, 0, 0, err
	}
	tmp, err := os.CreateTemp(n.cfg.DataDir, "snapshot-download-*.tmp")
	if err == nil {
		if err = os.Remove(tmp.Name()); err != nil {
			tmp.Close()
		}
	}
	if err != nil {
		s.Release()
		return nil, 0, 0, fmt.Errorf("cluster: snapshot file: %w", err)
	}
	d := &snapshotDownload{f: tmp, size: s.Size(), done: make(chan struct{}), release: func() { <-n.snapSlots }}
	d.cond = sync.NewCond(&d.mu)
	go d.copy(s, n.cfg.DataDir)
	return d, s.Index(), d.size, nil
}

// snapshotDownload is the reader of SnapshotFile. Its copy goroutine
// writes the file; Read follows it; Close stops the copy if it still runs,
// waits for it, and frees the file and the download's slot.
type snapshotDownload struct {
	f       *os.File
	size    int64
	done    chan struct{} // closed when the copy goroutine has returned
	release func()
	once    sync.Once

	mu      sync.Mutex
	cond    *sync.Cond
	written int64 // bytes of the file written so far
	err     error // the copy's failure
	closed  bool
	off     int64 // Read's position
}

// copy writes the snapshot to the file, then releases it.
func (d *snapshotDownload) copy(s *fsm.Snapshot, dir string) {
	defer close(d.done)
	defer s.Release()
	_, err := s.WriteTo(d)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil && d.written != d.size {
		err = fmt.Errorf("snapshot of %d bytes, %d expected", d.written, d.size)
	}
	if err != nil && d.err == nil {
		d.err = fmt.Errorf("cluster: snapshot file in %s: %w", dir, err)
	}
	d.cond.Broadcast()
}

// Write appends to the file (the copy goroutine only).
func (d *snapshotDownload) Write(p []byte) (int, error) {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return 0, errDownloadClosed
	}
	n, err := d.f.WriteAt(p, d.written)
	d.mu.Lock()
	d.written += int64(n)
	d.cond.Broadcast()
	d.mu.Unlock()
	return n, err
}

// Read reads the file as far as the copy has written it, waiting for
// more while the copy runs.
func (d *snapshotDownload) Read(p []byte) (int, error) {
	d.mu.Lock()
	for d.off >= d.written && d.err == nil && !d.closed && d.off < d.size {
		d.cond.Wait()
	}
	avail, err := d.written-d.off, d.err
	closed := d.closed
	d.mu.Unlock()
	switch {
	case closed:
		return 0, os.ErrClosed
	case avail > 0:
		n, rerr := d.f.ReadAt(p[:min(int64(len(p)), avail)], d.off)
		d.off += int64(n)
		if rerr == io.EOF {
			rerr = nil
		}
		return n, rerr
	case err != nil:
		return 0, err
	default:
		return 0, io.EOF
	}
}

// Close stops the copy, waits for it, closes the file (freeing its
// space) and frees the download's slot.
func (d *snapshotDownload) Close() error {
	d.mu.Lock()
	d.closed = true
	d.cond.Broadcast()
	d.mu.Unlock()
	<-d.done
	err := d.f.Close()
	d.once.Do(d.release)
	return err
}
