package typed

import (
	"bytes"
	"errors"
	"slices"
)

// A raw CBOR (RFC 8949) reader and writer, just enough to merge records
// without decoding them: items stay slices of the input bytes. Every read
// is bounds-checked, nesting is limited to cborMaxDepth, and nothing is
// allocated in proportion to a length field the input cannot back.

const (
	cborMaxDepth = 256 // nested arrays, maps and tags
	cborNull     = 0xf6
	cborBreak    = 0xff
)

var (
	errCBORShort  = errors.New("cbor: unexpected end of input")
	errCBORSyntax = errors.New("cbor: malformed item")
	errCBORDepth  = errors.New("cbor: nesting too deep")
)

// cborHead reads the head of the item at b[off]: its major type, its
// argument (value, length, tag number, simple value or float bits), whether
// it opens an indefinite-length string, array or map (for major type 7: it
// is the break code), and the offset just after the head.
func cborHead(b []byte, off int) (major byte, arg uint64, indef bool, next int, err error) {
	if off < 0 || off >= len(b) {
		return 0, 0, false, 0, errCBORShort
	}
	major, ai := b[off]>>5, b[off]&31
	off++
	switch {
	case ai < 24:
		return major, uint64(ai), false, off, nil
	case ai < 28: // 1, 2, 4 or 8 bytes follow: also floats 16, 32, 64
		n := 1 << (ai - 24)
		if len(b)-off < n {
			return 0, 0, false, 0, errCBORShort
		}
		for _, c := range b[off : off+n] {
			arg = arg<<8 | uint64(c)
		}
		if major == 7 && ai == 24 && arg < 32 { // simple values < 32 take no extra byte
			return 0, 0, false, 0, errCBORSyntax
		}
		return major, arg, false, off + n, nil
	case ai == 31 && major != 0 && major != 1 && major != 6:
		return major, 0, true, off, nil
	}
	return 0, 0, false, 0, errCBORSyntax // reserved additional information
}

// cborSkip checks that a well-formed item starts at b[off] and returns the
// offset just past it.
func cborSkip(b []byte, off, depth int) (int, error) {
	if depth > cborMaxDepth {
		return 0, errCBORDepth
	}
	major, arg, indef, off, err := cborHead(b, off)
	if err != nil {
		return 0, err
	}
	switch major {
	case 2, 3: // byte and text strings; indefinite: definite chunks of the same type
		for indef {
			if off < len(b) && b[off] == cborBreak {
				return off + 1, nil
			}
			m, n, ind, next, err := cborHead(b, off)
			if err != nil {
				return 0, err
			}
			if m != major || ind {
				return 0, errCBORSyntax
			}
			if n > uint64(len(b)-next) {
				return 0, errCBORShort
			}
			off = next + int(n)
		}
		if arg > uint64(len(b)-off) {
			return 0, errCBORShort
		}
		return off + int(arg), nil
	case 4, 5: // arrays and maps
		per := uint64(major - 3) // items per entry
		if !indef && arg > uint64(len(b)-off)/per {
			return 0, errCBORShort
		}
		for i := uint64(0); indef || i < arg*per; i++ {
			if indef && off < len(b) && b[off] == cborBreak {
				if i%per != 0 {
					return 0, errCBORSyntax // a key without a value
				}
				return off + 1, nil
			}
			if off, err = cborSkip(b, off, depth+1); err != nil {
				return 0, err
			}
		}
	case 6: // a tag: the tagged item follows
		return cborSkip(b, off, depth+1)
	case 7:
		if indef {
			return 0, errCBORSyntax // a break outside an indefinite-length item
		}
	}
	return off, nil
}

// cborValid reports whether b is exactly one well-formed item.
func cborValid(b []byte) error {
	end, err := cborSkip(b, 0, 0)
	if err == nil && end != len(b) {
		err = errors.New("cbor: trailing bytes after the item")
	}
	return err
}

// cborItems splits b, one whole item, into its items if it is of the given
// major type, 4 (array) or 5 (map: keys and values alternate). ok is false
// if b is of another type. The items are capped slices of b.
func cborItems(b []byte, major byte) (items [][]byte, ok bool, err error) {
	m, arg, indef, off, err := cborHead(b, 0)
	if err != nil || m != major {
		return nil, false, err
	}
	per := uint64(major - 3)
	if !indef {
		if arg > uint64(len(b)-off)/per {
			return nil, false, errCBORShort
		}
		items = make([][]byte, 0, arg*per)
	}
	for i := uint64(0); indef || i < arg*per; i++ {
		if indef && off < len(b) && b[off] == cborBreak {
			if i%per != 0 {
				return nil, false, errCBORSyntax
			}
			off++
			break
		}
		end, err := cborSkip(b, off, 1)
		if err != nil {
			return nil, false, err
		}
		items, off = append(items, b[off:end:end]), end
	}
	if off != len(b) {
		return nil, false, errCBORSyntax
	}
	return items, true, nil
}

// cborString returns the content of the text or byte string b (chunks
// joined if it has an indefinite length), under any tags; ok is false if b
// is no string.
func cborString(b []byte) (content []byte, ok bool) {
	major, arg, indef, off, err := cborHead(b, 0)
	for err == nil && major == 6 {
		major, arg, indef, off, err = cborHead(b, off)
	}
	if err != nil || major != 2 && major != 3 {
		return nil, false
	}
	if !indef {
		if arg > uint64(len(b)-off) {
			return nil, false
		}
		return b[off : off+int(arg)], true
	}
	content = []byte{}
	for off < len(b) && b[off] != cborBreak {
		m, n, ind, next, err := cborHead(b, off)
		if err != nil || m != major || ind || n > uint64(len(b)-next) {
			return nil, false
		}
		content, off = append(content, b[next:next+int(n)]...), next+int(n)
	}
	return content, off < len(b)
}

// cborAppendHead appends the shortest head of the given major type and
// argument (a definite length for strings, arrays and maps).
func cborAppendHead(dst []byte, major byte, arg uint64) []byte {
	major <<= 5
	switch {
	case arg < 24:
		return append(dst, major|byte(arg))
	case arg <= 0xff:
		return append(dst, major|24, byte(arg))
	case arg <= 0xffff:
		return append(dst, major|25, byte(arg>>8), byte(arg))
	case arg <= 0xffffffff:
		return append(dst, major|26, byte(arg>>24), byte(arg>>16), byte(arg>>8), byte(arg))
	}
	return append(dst, major|27, byte(arg>>56), byte(arg>>48), byte(arg>>40), byte(arg>>32),
		byte(arg>>24), byte(arg>>16), byte(arg>>8), byte(arg))
}

// cborArrayOf encodes items as a definite-length array.
func cborArrayOf(items [][]byte) []byte {
	size := 9
	for _, it := range items {
		size += len(it)
	}
	out := cborAppendHead(make([]byte, 0, size), 4, uint64(len(items)))
	for _, it := range items {
		out = append(out, it...)
	}
	return out
}

// cborMapOf encodes kv (keys and values alternating) as a definite-length
// map with its entries sorted by encoded key bytes (stable for equal keys).
func cborMapOf(kv [][]byte) []byte {
	size, order := 9, make([]int, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		size, order = size+len(kv[i])+len(kv[i+1]), append(order, i)
	}
	slices.SortStableFunc(order, func(a, b int) int { return bytes.Compare(kv[a], kv[b]) })
	out := cborAppendHead(make([]byte, 0, size), 5, uint64(len(order)))
	for _, i := range order {
		out = append(append(out, kv[i]...), kv[i+1]...)
	}
	return out
}
