package storage

import (
	"errors"
	"os"
	"syscall"
)

// mapFile maps size bytes of f read-only, for Verify to read pages
// without a system call each. The caller must run with
// debug.SetPanicOnFault(true): a file cut short while mapped faults.
func mapFile(f *os.File, size int64) ([]byte, func(), error) {
	if size <= 0 || int64(int(size)) != size {
		return nil, nil, errors.New("cannot map")
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return nil, nil, err
	}
	return b, func() { _ = syscall.Munmap(b) }, nil
}
