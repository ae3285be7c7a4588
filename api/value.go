package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/ugorji/go/codec"
)

// MaxDepth is the deepest nesting of maps, arrays and tags a record value
// may have: a map of scalars is 1 deep, a map holding a list of maps 3.
// Every decoder on the way accepts more (ugorji's codec 1024,
// encoding/json 10000, the typed API's raw CBOR reader 256), so whatever
// is stored can be read, listed, updated and merged. Writes deeper than
// this are refused before they reach the log (see CheckValue).
const MaxDepth = 64

// Errors of value checks, for errors.Is. The error returned says more
// (where, how deep, which number).
var (
	// ErrTooDeep: a value nests maps, arrays or tags deeper than MaxDepth.
	ErrTooDeep = errors.New("value nested too deep")
	// ErrNotMap: a record value is not a map of fields.
	ErrNotMap = errors.New("a record value must be a map of fields")
	// ErrNumberRange: a JSON number has no exact CBOR integer or float64.
	ErrNumberRange = errors.New("number out of range")
	// ErrMalformed: the bytes are not one well-formed CBOR item.
	ErrMalformed = errors.New("malformed CBOR")
)

// CheckValue checks a record's CBOR bytes: exactly one well-formed CBOR
// item, a map (the record's fields) at the top, nested at most MaxDepth
// deep (see CheckCBOR). The errors wrap ErrMalformed, ErrNotMap
// or ErrTooDeep.
func CheckValue(data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: empty value", ErrMalformed)
	}
	if major := data[0] >> 5; major != 5 {
		return fmt.Errorf("%w, not %s", ErrNotMap, cborKind(data[0]))
	}
	return CheckCBOR(data)
}

// CheckCBOR checks that data is exactly one well-formed CBOR item nested
// at most MaxDepth deep (maps, arrays and tags count) that the codec
// decodes: what passes can always be read back. The bytes are walked
// first, without decoding (so the decoder never sees a depth or a length
// the input cannot back), then decoded, unless the walk found only what
// the decoder always takes (see cborWalker.judge): a value of plain
// fields, the common case, is checked without a decode.
func CheckCBOR(data []byte) error {
	w := cborWalker{b: data}
	end, err := w.walk(0, 0)
	if err != nil {
		return err
	}
	if end != len(data) {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(data)-end)
	}
	if !w.judge {
		return nil
	}
	// What a tag may hold, duplicate map keys of different types: the
	// decoder is the judge.
	if err := decodes(data); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// genericDecoders reuses decoders of plain values for CheckCBOR.
var genericDecoders = sync.Pool{New: func() any { return codec.NewDecoderBytes(nil, genericCBOR) }}

// decodes reports whether DecodeGeneric would decode data (it decodes
// the same way, without building its answer).
func decodes(data []byte) (err error) {
	dec := genericDecoders.Get().(*codec.Decoder)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cbor decode: %v", r)
			return // a decoder that panicked is not reused
		}
		dec.ResetBytes(nil)
		genericDecoders.Put(dec)
	}()
	dec.ResetBytes(data)
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("cbor decode: %w", err)
	}
	if n := dec.NumBytesRead(); n != len(data) {
		return fmt.Errorf("cbor decode: %d trailing bytes", len(data)-n)
	}
	return nil
}

// cborKind names the kind of the item whose first byte is b.
func cborKind(b byte) string {
	switch b >> 5 {
	case 0, 1:
		return "an integer"
	case 2:
		return "a byte string"
	case 3:
		return "a text string"
	case 4:
		return "an array"
	case 5:
		return "a map"
	case 6:
		return "a tagged item"
	}
	switch b {
	case 0xf4, 0xf5:
		return "a boolean"
	case 0xf6:
		return "null"
	case 0xf7:
		return "undefined"
	case 0xf9, 0xfa, 0xfb:
		return "a float"
	}
	return "a simple value"
}

var (
	errCBORShort = fmt.Errorf("%w: unexpected end of input", ErrMalformed)
	errCBORItem  = fmt.Errorf("%w: malformed item", ErrMalformed)
)

// cborHead reads the head of the item at b[off]: its major type, its
// argument, whether it opens an indefinite-length item, and the offset
// just after the head.
func cborHead(b []byte, off int) (major byte, arg uint64, indef bool, next int, err error) {
	if off >= len(b) {
		return 0, 0, false, 0, errCBORShort
	}
	major, ai := b[off]>>5, b[off]&31
	off++
	switch {
	case ai < 24:
		return major, uint64(ai), false, off, nil
	case ai < 28:
		n := 1 << (ai - 24)
		if len(b)-off < n {
			return 0, 0, false, 0, errCBORShort
		}
		for _, c := range b[off : off+n] {
			arg = arg<<8 | uint64(c)
		}
		if major == 7 && ai == 24 && arg < 32 {
			return 0, 0, false, 0, errCBORItem
		}
		return major, arg, false, off + n, nil
	case ai == 31 && major != 0 && major != 1 && major != 6:
		return major, 0, true, off, nil
	}
	return 0, 0, false, 0, errCBORItem
}

// cborWalker checks the structure of CBOR items.
type cborWalker struct {
	b []byte
	// judge is set when the walk met an item whose decoding the walk does
	// not settle, so that the decoder must judge the whole value: a tag
	// (what it may hold), a map key other than a definite-length text
	// string (keys that collide once decoded, tagged keys), an
	// indefinite-length string, a negative integer beyond int64. Without
	// them (integers, floats, simple values, definite strings, arrays and
	// maps keyed by text) the decoder takes every item the walk accepts
	// (FuzzCheckCBOR holds the two to that).
	judge bool
}

// maxKeysCompared is the largest map whose text keys the walk compares
// for duplicates; the decoder judges larger maps.
const maxKeysCompared = 32

// duplicateKey reports whether two of keys (spans of b) hold the same
// bytes.
func duplicateKey(b []byte, keys [][2]int) bool {
	for i := 1; i < len(keys); i++ {
		ki := b[keys[i][0]:keys[i][1]]
		for _, k := range keys[:i] {
			if string(b[k[0]:k[1]]) == string(ki) {
				return true
			}
		}
	}
	return false
}

// item walks an element of an array or map; a map key must be a scalar
// (decoders keep keys in hash maps: a list or map cannot be one).
func (w *cborWalker) item(off, depth int, key bool) (int, error) {
	if key && off < len(w.b) {
		c := w.b[off]
		if m := c >> 5; m == 4 || m == 5 {
			return 0, fmt.Errorf("%w: a map key is %s", ErrMalformed, cborKind(c))
		}
		if c>>5 != 3 || c&31 == 31 {
			w.judge = true
		}
	}
	return w.walk(off, depth)
}

// walk checks the item at b[off], itself inside depth containers, and
// returns the offset just past it.
func (w *cborWalker) walk(off, depth int) (int, error) {
	b := w.b
	start := off
	major, arg, indef, off, err := cborHead(b, off)
	if err != nil {
		return 0, err
	}
	switch major {
	case 0, 1:
		if major == 1 && arg > math.MaxInt64 {
			w.judge = true
		}
		return off, nil
	case 2, 3: // strings: definite, or definite chunks of the same type
		if !indef {
			if arg > uint64(len(b)-off) {
				return 0, errCBORShort
			}
			return off + int(arg), nil
		}
		w.judge = true
		for {
			if off >= len(b) {
				return 0, errCBORShort
			}
			if b[off] == 0xff {
				return off + 1, nil
			}
			m, n, ind, next, err := cborHead(b, off)
			if err != nil {
				return 0, err
			}
			if m != major || ind || n > uint64(len(b)-next) {
				return 0, errCBORItem
			}
			off = next + int(n)
		}
	case 4, 5, 6:
		if depth+1 > MaxDepth {
			return 0, fmt.Errorf("%w: more than %d levels of maps, arrays and tags", ErrTooDeep, MaxDepth)
		}
		if major == 6 {
			w.judge = true
			return w.walk(off, depth+1)
		}
		per := uint64(1)
		if major == 5 {
			per = 2
		}
		if indef {
			if major == 5 {
				w.judge = true // keys not checked for duplicates below
			}
			for {
				if off >= len(b) {
					return 0, errCBORShort
				}
				if b[off] == 0xff {
					return off + 1, nil
				}
				for i := range per {
					if off, err = w.item(off, depth+1, major == 5 && i == 0); err != nil {
						return 0, err
					}
				}
			}
		}
		// Every item takes at least one byte: a count the input cannot
		// back is short, whatever its size.
		if arg > uint64(len(b)-off) || arg*per > uint64(len(b)-off) {
			return 0, errCBORShort
		}
		if major == 5 && arg > maxKeysCompared {
			w.judge = true
		}
		var keys [maxKeysCompared][2]int // text keys' contents: b[k[0]:k[1]]
		for i := uint64(0); i < arg*per; i++ {
			key := major == 5 && i%2 == 0
			at := off
			if off, err = w.item(off, depth+1, key); err != nil {
				return 0, err
			}
			if key && arg <= maxKeysCompared && !w.judge {
				// A definite text string (item set judge otherwise):
				// its contents end at off.
				_, n, _, _, _ := cborHead(b, at)
				keys[i/2] = [2]int{off - int(n), off}
			}
		}
		if major == 5 && !w.judge && duplicateKey(b, keys[:arg]) {
			// The decoder may refuse a repeated key whose values
			// differ in type: it is the judge, as before the walk.
			w.judge = true
		}
		return off, nil
	default: // 7: false, true, null, undefined and floats
		if ai := b[start] & 31; indef || ai < 20 || ai == 24 {
			return 0, fmt.Errorf("%w: simple value %d", ErrMalformed, arg)
		}
		return off, nil
	}
}

// DecodeJSON decodes one JSON document from r into plain Go values ready
// for EncodeValue: objects map[string]any, arrays []any, integers int64
// (or uint64 above the int64 range) exactly, other numbers float64. It
// refuses, with an error naming the path ("a.b[2]"), integers outside
// [-2^63, 2^64-1] (ErrNumberRange: they would lose digits), numbers
// beyond float64, and nesting deeper than MaxDepth (ErrTooDeep). Data
// after the document is an error.
func DecodeJSON(r io.Reader, v *any) error {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("json: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("json: data after the JSON value")
	}
	out, err := fromJSON(raw, "", 0)
	if err != nil {
		return err
	}
	*v = out
	return nil
}

// fromJSON converts what encoding/json decoded (with UseNumber) at path,
// inside depth containers.
func fromJSON(v any, path string, depth int) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		if depth+1 > MaxDepth {
			return nil, fmt.Errorf("%s: %w: more than %d levels of objects and arrays", pathName(path), ErrTooDeep, MaxDepth)
		}
		for k, e := range t {
			x, err := fromJSON(e, joinPath(path, k), depth+1)
			if err != nil {
				return nil, err
			}
			t[k] = x
		}
		return t, nil
	case []any:
		if depth+1 > MaxDepth {
			return nil, fmt.Errorf("%s: %w: more than %d levels of objects and arrays", pathName(path), ErrTooDeep, MaxDepth)
		}
		for i, e := range t {
			x, err := fromJSON(e, path+"["+strconv.Itoa(i)+"]", depth+1)
			if err != nil {
				return nil, err
			}
			t[i] = x
		}
		return t, nil
	case json.Number:
		return jsonNumber(t, path)
	default:
		return v, nil
	}
}

// jsonNumber converts a JSON number exactly: an integer to int64 or
// uint64, anything else to float64.
func jsonNumber(n json.Number, path string) (any, error) {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, nil
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return u, nil
		}
		return nil, fmt.Errorf("%s: %w: integer %s is outside [-2^63, 2^64-1] and would lose digits (send it as a string)", pathName(path), ErrNumberRange, short(s))
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%s: %w: %s is beyond float64", pathName(path), ErrNumberRange, short(s))
	}
	return f, nil
}

func short(s string) string {
	if len(s) > 40 {
		return s[:20] + "..." + s[len(s)-10:]
	}
	return s
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func pathName(path string) string {
	if path == "" {
		return "the value"
	}
	return strconv.Quote(path)
}

// encodeDepthErr is the error of EncodeValue for a value nested too deep.
func encodeDepthErr() error {
	return fmt.Errorf("%w: more than %d levels of maps and lists", ErrTooDeep, MaxDepth)
}

// jsonValueError says why a record's value has no JSON view, or "".
func jsonValueError(v any, decodeErr error) string {
	if decodeErr != nil {
		return decodeErr.Error()
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		return err.Error()
	}
	return ""
}

// FillValue sets r.Value, the JSON view of r.Data. When the stored bytes
// have no JSON view, Value stays nil and ValueError says why: one such
// record does not spoil a listing of its tree.
func (r *Record) FillValue() {
	v, err := DecodeValue(r.Data)
	if msg := jsonValueError(v, err); msg != "" {
		r.Value, r.ValueError = nil, msg
		return
	}
	r.Value, r.ValueError = v, ""
}
