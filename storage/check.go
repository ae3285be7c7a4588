package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/bits"
	"os"
	"runtime/debug"
	"time"
)

// bbolt's on-disk format (go.etcd.io/bbolt v1.5.0, file format version 2),
// as far as Verify needs it. Every page starts with a 16-byte header: id
// (8 bytes), flags (2), count (2), overflow (4). A meta page holds, after
// the header: magic, version, page size, flags (4 bytes each), the root
// bucket (root pgid, sequence), the freelist pgid, the high-water pgid,
// the txid and an FNV-64a checksum of the 56 bytes before it. Branch and
// leaf elements are 16 bytes each, their pos is relative to the element.
// A bucket's value is its root pgid and sequence, followed for an inline
// bucket (root 0) by a leaf page.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaSize       = 64
	metaSumOffset  = 56
	elemSize       = 16
	bucketHdrSize  = 16

	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	metaPageFlag     = 0x04
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01

	noFreelist = ^uint64(0)
	maxDepth   = 64 // deeper trees do not exist below 2^64 keys
)

// Verify checks the bbolt file at path before anything maps it: bbolt
// trusts the file and, on a damaged one, panics ("invalid freelist page")
// or dies with SIGBUS/SIGSEGV on a page the file does not have, which no
// recover() can catch in bbolt's own goroutines. Verify reads the file
// itself (through a read-only map of its own on Linux, with faults turned
// into errors; with ReadAt elsewhere) and checks:
//
//   - the size: not empty, a multiple of the page size, at least 4 pages;
//   - both meta pages (magic, version, checksum); at least one must be
//     valid, and the one bbolt will use must describe a file no larger
//     than the one on disk, with its root and freelist pages inside it;
//   - the freelist page: its type, and every free page id inside the file;
//   - every page reachable from the root bucket, nested and inline buckets
//     included: page ids inside the file, page type, page id matching its
//     position, elements and keys inside the page, keys in order within a
//     page and between a branch and its children, no page referenced twice
//     or both free and in use.
//
// A missing file is not an error (bbolt creates it). Every other failure
// wraps ErrCorrupt and names the file and what is wrong. The cost is one
// read of every page in use (see docs for measurements); pages that are
// free are not read.
func Verify(path string) error {
	_, err := inspect(path, defaultLockTimeout, false)
	return err
}

// defaultLockTimeout is how long Verify and Inspect wait for the file lock.
const defaultLockTimeout = 2 * time.Second

// FileInfo describes a bbolt file that Inspect verified.
type FileInfo struct {
	// Exists is false for a missing file (the other fields are zero).
	Exists bool
	// Size is the file size in bytes.
	Size int64
	// PageSize is bbolt's page size.
	PageSize int
	// Buckets are the names of the top-level buckets, in key order.
	Buckets []string
}

// Inspect verifies the bbolt file at path like Verify and describes it, so
// that a caller can also tell whether the file is the kind it expects.
// Like Verify, it holds the file's lock while it reads (bbolt's exclusive
// lock, waiting up to 2s): a file another process has open for writing
// gets ErrLocked, not a verdict on pages that may be half written.
func Inspect(path string) (*FileInfo, error) {
	return inspect(path, defaultLockTimeout, false)
}

// inspect verifies the file at path; shallow checks only the size, the
// meta pages, the freelist and the root page, not the tree under the root
// (FileInfo.Buckets stays empty then).
func inspect(path string, lockTimeout time.Duration, shallow bool) (info *FileInfo, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &FileInfo{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("storage: stat %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, corrupt(path, "not a regular file")
	}
	if err := lockFile(f, lockTimeout); err != nil {
		if errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, fmt.Errorf("storage: lock %s: %w", path, err)
	}
	// The size again, now that no writer can be growing the file.
	if st, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("storage: stat %s: %w", path, err)
	}
	v := &verifier{f: f, size: st.Size(), shallow: shallow}
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		// The checks index only what they bounds-checked, and the map is
		// no larger than the file: a panic here is a bug in them or a
		// file cut short while it was read; it must not take the process
		// down either way.
		if r := recover(); r != nil {
			info, err = nil, corrupt(path, fmt.Sprintf("checking the file failed: %v", r))
		}
	}()
	if m, unmap, err := mapFile(f, v.size); err == nil {
		v.mapped = m
		defer unmap()
	}
	if err := v.run(); err != nil {
		return nil, corrupt(path, err.Error())
	}
	return &FileInfo{Exists: true, Size: v.size, PageSize: int(v.ps), Buckets: v.buckets}, nil
}

// CorruptError is the error for a file that is damaged or not a bbolt
// database at all; it wraps ErrCorrupt.
type CorruptError struct {
	// Path is the file.
	Path string
	// Problem says what is wrong with it.
	Problem string
}

// Error implements error.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("storage: %s is damaged or not a database: %s", e.Path, e.Problem)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

func corrupt(path, problem string) error { return &CorruptError{Path: path, Problem: problem} }

type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64
	txid     uint64
}

type verifier struct {
	f      *os.File
	mapped []byte // the file, if it could be mapped; else read with ReadAt
	size   int64
	ps     int64 // page size
	hwm    uint64
	used   bitset
	free   bitset

	buckets []string // top-level bucket names
	shallow bool     // stop at the root page's header
}

type bitset []uint64

func (b bitset) get(i uint64) bool { return b[i/64]&(1<<(i%64)) != 0 }
func (b bitset) set(i uint64)      { b[i/64] |= 1 << (i % 64) }

func (v *verifier) run() error {
	if v.size == 0 {
		return errors.New("the file is empty (0 bytes)")
	}
	m, err := v.meta()
	if err != nil {
		return err
	}
	ps := int64(m.pageSize)
	v.ps = ps
	if v.size%ps != 0 {
		return fmt.Errorf("size %d bytes is not a multiple of the page size %d (truncated or extended)", v.size, ps)
	}
	if v.size < 4*ps {
		return fmt.Errorf("size %d bytes is less than 4 pages of %d bytes (truncated)", v.size, ps)
	}
	if m.pgid < 4 {
		return fmt.Errorf("meta page: high-water mark %d pages, a database has at least 4", m.pgid)
	}
	if m.pgid > uint64(v.size/ps) {
		return fmt.Errorf("the file has %d bytes (%d pages), its meta page says %d pages (truncated)", v.size, v.size/ps, m.pgid)
	}
	v.hwm = m.pgid
	if m.root < 2 || m.root >= m.pgid {
		return fmt.Errorf("meta page: root page %d outside the file's pages 2..%d", m.root, m.pgid-1)
	}
	v.used = make(bitset, (m.pgid+63)/64)
	v.free = make(bitset, (m.pgid+63)/64)
	if m.freelist != noFreelist {
		if err := v.freelist(m.freelist); err != nil {
			return err
		}
	}
	if v.shallow {
		_, _, _, err := v.read(m.root, "root")
		return err
	}
	return v.page(m.root, nil, nil, nil, 0, &v.buckets)
}

// meta returns the meta page bbolt will use: the valid one with the
// higher txid.
func (v *verifier) meta() (*boltMeta, error) {
	m0, err0 := v.readMeta(0)
	var m1 *boltMeta
	var err1 error
	if m0 != nil {
		m1, err1 = v.readMeta(int64(m0.pageSize))
	} else {
		// Page 0 is damaged, so the page size is unknown: look for page 1
		// where each page size would put it, as bbolt does.
		err1 = errors.New("not found")
		for ps := int64(1024); ps <= 1<<16 && ps < v.size; ps <<= 1 {
			if m, err := v.readMeta(ps); err == nil && int64(m.pageSize) == ps {
				m1, err1 = m, nil
				break
			}
		}
	}
	switch {
	case m0 == nil && m1 == nil:
		if err0 != nil && errors.Is(err0, errShort) {
			return nil, fmt.Errorf("the file has only %d bytes, too short for a database (truncated)", v.size)
		}
		return nil, fmt.Errorf("not a bbolt database, or both meta pages are damaged (page 0: %v; page 1: %v)", err0, err1)
	case m0 == nil:
		return m1, nil
	case m1 == nil:
		return m0, nil
	case m0.pageSize != m1.pageSize:
		return nil, fmt.Errorf("meta pages disagree on the page size (%d, %d)", m0.pageSize, m1.pageSize)
	case m1.txid > m0.txid:
		return m1, nil
	default:
		return m0, nil
	}
}

var errShort = errors.New("file too short")

func (v *verifier) readMeta(off int64) (*boltMeta, error) {
	var b [pageHeaderSize + metaSize]byte
	if _, err := v.f.ReadAt(b[:], off); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, errShort
		}
		return nil, err
	}
	if flags := binary.LittleEndian.Uint16(b[8:]); flags != metaPageFlag {
		return nil, fmt.Errorf("not a meta page (flags %#x)", flags)
	}
	m := b[pageHeaderSize:]
	if binary.LittleEndian.Uint32(m[0:]) != boltMagic {
		return nil, errors.New("bad magic")
	}
	if ver := binary.LittleEndian.Uint32(m[4:]); ver != boltVersion {
		return nil, fmt.Errorf("format version %d, want %d", ver, boltVersion)
	}
	h := fnv.New64a()
	h.Write(m[:metaSumOffset])
	if h.Sum64() != binary.LittleEndian.Uint64(m[metaSumOffset:]) {
		return nil, errors.New("bad checksum")
	}
	ps := binary.LittleEndian.Uint32(m[8:])
	if ps < 1024 || ps > 1<<16 || bits.OnesCount32(ps) != 1 {
		return nil, fmt.Errorf("page size %d", ps)
	}
	return &boltMeta{
		pageSize: ps,
		root:     binary.LittleEndian.Uint64(m[16:]),
		freelist: binary.LittleEndian.Uint64(m[32:]),
		pgid:     binary.LittleEndian.Uint64(m[40:]),
		txid:     binary.LittleEndian.Uint64(m[48:]),
	}, nil
}

// read reads page id and its overflow pages after checking its header.
func (v *verifier) read(id uint64, what string) (flags, count uint16, data []byte, err error) {
	if id < 2 || id >= v.hwm {
		return 0, 0, nil, fmt.Errorf("%s page %d outside the file's pages 2..%d", what, id, v.hwm-1)
	}
	data, err = v.bytes(int64(id)*v.ps, v.ps)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("%s page %d: %w", what, id, err)
	}
	if got := binary.LittleEndian.Uint64(data[0:]); got != id {
		return 0, 0, nil, fmt.Errorf("%s page %d: its header says page %d (overwritten)", what, id, got)
	}
	flags = binary.LittleEndian.Uint16(data[8:])
	count = binary.LittleEndian.Uint16(data[10:])
	overflow := uint64(binary.LittleEndian.Uint32(data[12:]))
	if id+overflow >= v.hwm {
		return 0, 0, nil, fmt.Errorf("%s page %d: %d overflow pages run past the file's %d pages", what, id, overflow, v.hwm)
	}
	if overflow > 0 {
		if data, err = v.bytes(int64(id)*v.ps, int64(overflow+1)*v.ps); err != nil {
			return 0, 0, nil, fmt.Errorf("%s page %d: %w", what, id, err)
		}
	}
	for i := id; i <= id+overflow; i++ {
		if v.used.get(i) {
			return 0, 0, nil, fmt.Errorf("page %d is referenced twice", i)
		}
		if v.free.get(i) {
			return 0, 0, nil, fmt.Errorf("page %d is in use and in the freelist", i)
		}
		v.used.set(i)
	}
	return flags, count, data, nil
}

// bytes returns n bytes of the file at off, which the caller checked lie
// inside it.
func (v *verifier) bytes(off, n int64) ([]byte, error) {
	if v.mapped != nil {
		return v.mapped[off : off+n], nil
	}
	b := make([]byte, n)
	if _, err := v.f.ReadAt(b, off); err != nil {
		return nil, err
	}
	return b, nil
}

func (v *verifier) freelist(id uint64) error {
	flags, count, data, err := v.read(id, "freelist")
	if err != nil {
		return err
	}
	if flags != freelistPageFlag {
		return fmt.Errorf("freelist page %d is not a freelist page (flags %#x)", id, flags)
	}
	body := data[pageHeaderSize:]
	idx, n := uint64(0), uint64(count)
	if count == 0xFFFF {
		idx, n = 1, binary.LittleEndian.Uint64(body)
	}
	if n > uint64(len(body))/8-idx {
		return fmt.Errorf("freelist page %d: %d ids do not fit in its %d bytes", id, n, len(body))
	}
	for i := range n {
		p := binary.LittleEndian.Uint64(body[(idx+i)*8:])
		switch {
		case p < 2 || p >= v.hwm:
			return fmt.Errorf("freelist page %d: free page %d outside the file's pages 2..%d", id, p, v.hwm-1)
		case v.used.get(p):
			return fmt.Errorf("freelist page %d: free page %d is the freelist itself", id, p)
		case v.free.get(p):
			return fmt.Errorf("freelist page %d: page %d is free twice", id, p)
		}
		v.free.set(p)
	}
	return nil
}

// page checks the branch or leaf page id and everything below it; every
// key must be in [lo, hi) (nil: unbounded). data is the inline page of an
// inline bucket, nil otherwise. The names of the buckets in this tree
// (not below) are appended to names unless it is nil.
func (v *verifier) page(id uint64, data []byte, lo, hi []byte, depth int, names *[]string) error {
	if depth > maxDepth {
		return fmt.Errorf("page %d: tree deeper than %d levels (a cycle)", id, maxDepth)
	}
	var flags, count uint16
	if data == nil {
		var err error
		if flags, count, data, err = v.read(id, "b-tree"); err != nil {
			return err
		}
	} else {
		if len(data) < pageHeaderSize {
			return fmt.Errorf("inline bucket of %d bytes", len(data))
		}
		flags = binary.LittleEndian.Uint16(data[8:])
		count = binary.LittleEndian.Uint16(data[10:])
		if flags != leafPageFlag {
			return fmt.Errorf("inline bucket in page %d is not a leaf (flags %#x)", id, flags)
		}
	}
	if flags != branchPageFlag && flags != leafPageFlag {
		return fmt.Errorf("page %d: not a b-tree page (flags %#x)", id, flags)
	}
	if pageHeaderSize+int(count)*elemSize > len(data) {
		return fmt.Errorf("page %d: %d elements do not fit in %d bytes", id, count, len(data))
	}
	if flags == branchPageFlag && count == 0 {
		return fmt.Errorf("page %d: branch page without elements", id)
	}
	var prev []byte
	for i := range int(count) {
		off := pageHeaderSize + i*elemSize
		e := data[off : off+elemSize]
		var ksize, vsize uint64
		var pos uint64
		if flags == branchPageFlag {
			pos = uint64(binary.LittleEndian.Uint32(e[0:]))
			ksize = uint64(binary.LittleEndian.Uint32(e[4:]))
		} else {
			pos = uint64(binary.LittleEndian.Uint32(e[4:]))
			ksize = uint64(binary.LittleEndian.Uint32(e[8:]))
			vsize = uint64(binary.LittleEndian.Uint32(e[12:]))
		}
		start := uint64(off) + pos
		if start+ksize+vsize > uint64(len(data)) {
			return fmt.Errorf("page %d: element %d lies outside the page", id, i)
		}
		key := data[start : start+ksize]
		if i > 0 && bytes.Compare(prev, key) >= 0 {
			return fmt.Errorf("page %d: keys out of order at element %d", id, i)
		}
		if lo != nil && bytes.Compare(key, lo) < 0 {
			return fmt.Errorf("page %d: element %d sorts before its parent's key", id, i)
		}
		if hi != nil && bytes.Compare(key, hi) >= 0 {
			return fmt.Errorf("page %d: element %d sorts after its parent's next key", id, i)
		}
		prev = key
		if flags == branchPageFlag {
			next := hi
			if i+1 < int(count) {
				ne := data[off+elemSize : off+2*elemSize]
				np := uint64(off+elemSize) + uint64(binary.LittleEndian.Uint32(ne[0:]))
				nk := uint64(binary.LittleEndian.Uint32(ne[4:]))
				if np+nk > uint64(len(data)) {
					return fmt.Errorf("page %d: element %d lies outside the page", id, i+1)
				}
				next = data[np : np+nk]
			}
			child := binary.LittleEndian.Uint64(e[8:])
			if err := v.page(child, nil, key, next, depth+1, names); err != nil {
				return err
			}
			continue
		}
		if binary.LittleEndian.Uint32(e[0:])&bucketLeafFlag == 0 {
			continue
		}
		if names != nil {
			*names = append(*names, string(key))
		}
		val := data[start+ksize : start+ksize+vsize]
		if len(val) < bucketHdrSize {
			return fmt.Errorf("page %d: bucket %q: value of %d bytes", id, key, len(val))
		}
		if root := binary.LittleEndian.Uint64(val); root != 0 {
			if err := v.page(root, nil, nil, nil, depth+1, nil); err != nil {
				return fmt.Errorf("bucket %q: %w", key, err)
			}
		} else if err := v.page(id, val[bucketHdrSize:], nil, nil, depth+1, nil); err != nil {
			return fmt.Errorf("bucket %q: %w", key, err)
		}
	}
	return nil
}
