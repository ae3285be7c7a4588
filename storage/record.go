package storage

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/shelfdb/shelf/api"
)

// DecodeRecord decodes a stored record. The common form, a canonical CBOR
// map of the fields Record knows, is read directly, and Data then points
// into raw (no copy: valid as long as raw is). Anything else (other
// encodings of the same values, unknown fields, damage) goes through the
// general decoder, so the result is the same as api.Unmarshal's apart from
// Data sharing raw's memory. A record that does not decode is ErrCorrupt.
func DecodeRecord(raw []byte, r *Record) error {
	if decodeRecordFast(raw, r, false) {
		return nil
	}
	return decodeRecordSlow(raw, r)
}

// DecodeRecordValue is DecodeRecord for a reader of the value alone: it
// checks the whole record as DecodeRecord does, but sets only Schema and
// Data (the rest may be left zero), which spares it the client id
// strings.
func DecodeRecordValue(raw []byte, r *Record) error {
	if decodeRecordFast(raw, r, true) {
		return nil
	}
	return decodeRecordSlow(raw, r)
}

// decodeRecordSlow is DecodeRecord's general path, apart so that r does
// not escape to the heap on the fast one.
func decodeRecordSlow(raw []byte, r *Record) error {
	var rec Record
	if err := api.Unmarshal(raw, &rec); err != nil {
		*r = Record{}
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	*r = rec
	return nil
}

// cborReader reads the CBOR items a stored record is made of. Any
// malformed or unexpected item sets bad; the caller then falls back.
type cborReader struct {
	b   []byte
	bad bool
}

// head reads an item head with a definite argument: major type and
// argument.
func (c *cborReader) head() (major byte, arg uint64) {
	if len(c.b) == 0 {
		c.bad = true
		return 0, 0
	}
	ib := c.b[0]
	major, info := ib>>5, ib&0x1f
	n := 0
	switch {
	case info < 24:
		c.b = c.b[1:]
		return major, uint64(info)
	case info == 24:
		n = 1
	case info == 25:
		n = 2
	case info == 26:
		n = 4
	case info == 27:
		n = 8
	default: // indefinite lengths, reserved: the general decoder's job
		c.bad = true
		return 0, 0
	}
	if len(c.b) < 1+n {
		c.bad = true
		return 0, 0
	}
	for _, x := range c.b[1 : 1+n] {
		arg = arg<<8 | uint64(x)
	}
	c.b = c.b[1+n:]
	return major, arg
}

// bytesOf reads a definite byte or text string of major type want.
func (c *cborReader) bytesOf(want byte) []byte {
	major, n := c.head()
	if c.bad || major != want || n > uint64(len(c.b)) {
		c.bad = true
		return nil
	}
	s := c.b[:n:n]
	c.b = c.b[n:]
	return s
}

func (c *cborReader) uint() uint64 {
	major, n := c.head()
	if major != 0 {
		c.bad = true
	}
	return n
}

func (c *cborReader) int() int64 {
	major, n := c.head()
	switch {
	case c.bad || n > math.MaxInt64:
		c.bad = true
		return 0
	case major == 0:
		return int64(n)
	case major == 1:
		return -1 - int64(n)
	}
	c.bad = true
	return 0
}

// str reads a text string or null; with skip it only checks it and
// returns "".
func (c *cborReader) str(skip bool) string {
	if len(c.b) > 0 && c.b[0] == 0xf6 { // null
		c.b = c.b[1:]
		return ""
	}
	b := c.bytesOf(3)
	if skip {
		return ""
	}
	return intern(b)
}

// The strings of stored records are client ids, few and repeated in
// every record: reads share one copy of each instead of allocating it a
// record. The table is replaced, never changed (reads take no lock), and
// stops growing at maxInterned.
var (
	interned    atomic.Pointer[map[string]string]
	internMu    sync.Mutex
	maxInterned = 4096
)

func intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if m := interned.Load(); m != nil {
		if s, ok := (*m)[string(b)]; ok {
			return s
		}
	}
	s := string(b)
	internMu.Lock()
	defer internMu.Unlock()
	old := interned.Load()
	if old != nil && len(*old) >= maxInterned {
		return s
	}
	m := make(map[string]string, 1)
	if old != nil {
		if t, ok := (*old)[s]; ok {
			return t
		}
		m = make(map[string]string, len(*old)+1)
		for k, v := range *old {
			m[k] = v
		}
	}
	m[s] = s
	interned.Store(&m)
	return s
}

// decodeRecordFast reads raw as a definite CBOR map of Record's fields
// with canonical integer, string and byte-string items. It reports false,
// leaving *r in any state, on anything else. With valueOnly, the client
// id strings are checked but not set.
func decodeRecordFast(raw []byte, r *Record, valueOnly bool) bool {
	c := cborReader{b: raw}
	major, n := c.head()
	if c.bad || major != 5 || n > uint64(len(raw)) {
		return false
	}
	*r = Record{}
	for range n {
		k := c.bytesOf(3)
		if c.bad {
			return false
		}
		switch string(k) {
		case "s":
			v := c.uint()
			if v > math.MaxUint32 {
				return false
			}
			r.Schema = uint32(v)
		case "d":
			if len(c.b) > 0 && c.b[0] == 0xf6 { // null: no data
				c.b, r.Data = c.b[1:], nil
				continue
			}
			r.Data = c.bytesOf(2)
		case "r":
			if len(c.b) == 0 || (c.b[0] != 0xf4 && c.b[0] != 0xf5) {
				return false
			}
			r.Released, c.b = c.b[0] == 0xf5, c.b[1:]
		case "st":
			r.State = c.int()
		case "cb":
			r.CreatedBy = c.str(valueOnly)
		case "c":
			r.Created = c.int()
		case "ub":
			r.UpdatedBy = c.str(valueOnly)
		case "u":
			r.Updated = c.int()
		case "i":
			r.Index = c.uint()
		default:
			return false
		}
		if c.bad {
			return false
		}
	}
	return len(c.b) == 0
}
