package cluster

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// maxSnapshotDownloads bounds the snapshot copies made at once for
// downloads (SnapshotFile); each costs the state's size in disk space
// while it is read.
const maxSnapshotDownloads = 2

// SnapshotFile writes a snapshot stream of the state machine (the format
// fsm.Restore reads) to a temporary file in the data directory and
// returns it open for reading from its start, with the applied index it was
// taken at and its size. The file is unlinked at once: its space is freed
// when the caller closes it, or when the process exits, whatever happens.
//
// The state machine's read transaction lasts only as long as the local
// copy, not as long as a slow download: a long read transaction would
// hold up bbolt's remapping (writers stall when the file grows) and a
// snapshot restore. At most maxSnapshotDownloads copies exist at once; a
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
	defer s.Release()
	tmp, err := os.CreateTemp(n.cfg.DataDir, "snapshot-download-*.tmp")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("cluster: snapshot file: %w", err)
	}
	if err := os.Remove(tmp.Name()); err != nil {
		tmp.Close()
		return nil, 0, 0, fmt.Errorf("cluster: snapshot file: %w", err)
	}
	size, err = s.WriteTo(tmp)
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err != nil {
		tmp.Close()
		return nil, 0, 0, fmt.Errorf("cluster: snapshot file in %s: %w", n.cfg.DataDir, err)
	}
	return &snapshotDownload{f: tmp, release: func() { <-n.snapSlots }}, s.Index(), size, nil
}

// snapshotDownload is the file of SnapshotFile; Close frees its slot.
type snapshotDownload struct {
	f       *os.File
	once    sync.Once
	release func()
}

func (d *snapshotDownload) Read(p []byte) (int, error) { return d.f.Read(p) }

// Close closes the file (freeing its space) and the download's slot.
func (d *snapshotDownload) Close() error {
	err := d.f.Close()
	d.once.Do(d.release)
	return err
}
