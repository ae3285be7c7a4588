package storage

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt's on-disk meta page, as far as checkFile needs it: a 16-byte page
// header, then magic, version, page size, flags, root (pgid, sequence),
// freelist pgid, high-water pgid, txid and an FNV-64a checksum of the 56
// bytes before it.
const (
	boltMagic      = 0xED0CDAED
	pageHeaderSize = 16
	metaSumOffset  = 56
)

// checkFile refuses a file that bbolt would map and then fault on: one
// whose valid meta page says it holds more pages than the file has (a
// truncated copy), or one with no valid meta page at all. bbolt itself
// does not check this and dies with SIGBUS on the first touch of a missing
// page, which no recover() can catch.
func checkFile(path string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("storage: open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("storage: stat %s: %w", path, err)
	}
	size := st.Size()
	if size == 0 {
		return nil // new file: bbolt initialises it
	}
	var best *boltMeta
	m0, err0 := readMeta(f, 0)
	if err0 == nil {
		best = m0
	}
	if m0 != nil || err0 != nil {
		ps := int64(4096)
		if m0 != nil {
			ps = int64(m0.pageSize)
		}
		if m1, err1 := readMeta(f, ps); err1 == nil && (best == nil || m1.txid > best.txid) {
			best = m1
		}
	}
	if best == nil {
		return fmt.Errorf("%w: %s: no valid bbolt meta page (%v)", ErrCorrupt, path, err0)
	}
	if need := int64(best.pgid) * int64(best.pageSize); size < need {
		return fmt.Errorf("%w: %s: file has %d bytes, its meta page says %d (truncated)", ErrCorrupt, path, size, need)
	}
	return nil
}

type boltMeta struct {
	pageSize uint32
	pgid     uint64
	txid     uint64
}

func readMeta(f *os.File, off int64) (*boltMeta, error) {
	var b [pageHeaderSize + metaSumOffset + 8]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("meta page at %d: file too short", off)
		}
		return nil, err
	}
	m := b[pageHeaderSize:]
	if binary.LittleEndian.Uint32(m[0:]) != boltMagic {
		return nil, fmt.Errorf("meta page at %d: bad magic", off)
	}
	h := fnv.New64a()
	h.Write(m[:metaSumOffset])
	if h.Sum64() != binary.LittleEndian.Uint64(m[metaSumOffset:]) {
		return nil, fmt.Errorf("meta page at %d: bad checksum", off)
	}
	ps := binary.LittleEndian.Uint32(m[8:])
	if ps < 512 || ps > 1<<20 {
		return nil, fmt.Errorf("meta page at %d: page size %d", off, ps)
	}
	return &boltMeta{pageSize: ps, pgid: binary.LittleEndian.Uint64(m[40:]), txid: binary.LittleEndian.Uint64(m[48:])}, nil
}
