package fsm

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing the n bytes of f at off
// to disk, without waiting: the fsync after a large sequential write
// (a snapshot being received) then has only the tail left to wait for,
// the rest having gone out while the network delivered the next bytes.
// Only a hint: errors are for the fsync to report.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
