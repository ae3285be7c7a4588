package api

import (
	"fmt"
	"reflect"
	"sync"

	"github.com/ugorji/go/codec"
)

// Media types of the API.
const (
	ContentCBOR = "application/cbor"
	ContentJSON = "application/json"
)

// CBOR is the codec handle for everything Shelf encodes as CBOR: commands,
// stored records, API bodies. It is safe for concurrent use once built.
var CBOR = newCBOR()

func newCBOR() *codec.CborHandle {
	h := &codec.CborHandle{}
	h.Canonical = true // deterministic bytes: maps with sorted keys
	h.MapType = reflect.TypeOf(map[string]any(nil))
	h.TimeRFC3339 = true // times decode rounded to the microsecond (deterministically)
	return h
}

// encoders reuses CBOR encoders, as decoders does: building one costs
// more than encoding a small command (every write is encoded on the node
// that takes it and again on the leader). Each keeps the buffer it last
// encoded into, so that an encoding grows no slice step by step.
var encoders = sync.Pool{New: func() any { return &pooledEncoder{enc: codec.NewEncoderBytes(nil, CBOR)} }}

// pooledEncoder is an encoder with its scratch buffer.
type pooledEncoder struct {
	enc *codec.Encoder
	buf []byte
}

// maxScratch bounds the scratch buffer an encoder keeps between uses.
const maxScratch = 64 << 10

// Marshal encodes v as CBOR. The bytes are the caller's: each call
// returns a new slice of exactly the encoding's length.
func Marshal(v any) ([]byte, error) {
	pe := encoders.Get().(*pooledEncoder)
	b := pe.buf[:0]
	pe.enc.ResetBytes(&b)
	if err := pe.enc.Encode(v); err != nil {
		return nil, fmt.Errorf("cbor encode %T: %w", v, err) // not reused after an error
	}
	out := make([]byte, len(b))
	copy(out, b)
	if cap(b) <= maxScratch {
		pe.buf = b
	}
	pe.enc.ResetBytes(nil)
	encoders.Put(pe)
	return out, nil
}

// decoders reuses CBOR decoders: building one is most of the cost of
// decoding a small record.
var decoders = sync.Pool{New: func() any { return codec.NewDecoderBytes(nil, CBOR) }}

// Unmarshal decodes CBOR data into v. Trailing bytes are an error.
func Unmarshal(data []byte, v any) (err error) {
	dec := decoders.Get().(*codec.Decoder)
	defer func() {
		// ugorji reports most malformed input as errors, but guard against
		// a panic on hostile input all the same: bad bytes must never take
		// down a node. A decoder that panicked is not reused.
		if r := recover(); r != nil {
			err = fmt.Errorf("cbor decode %T: %v", v, r)
			return
		}
		dec.ResetBytes(nil)
		decoders.Put(dec)
	}()
	dec.ResetBytes(data)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("cbor decode %T: %w", v, err)
	}
	if n := dec.NumBytesRead(); n != len(data) {
		return fmt.Errorf("cbor decode %T: %d trailing bytes", v, len(data)-n)
	}
	return nil
}

// genericCBOR decodes into plain values: maps as map[any]any, so that
// maps with integer keys decode too.
var genericCBOR = func() *codec.CborHandle {
	h := newCBOR()
	h.MapType = reflect.TypeOf(map[any]any(nil))
	return h
}()

// DecodeGeneric decodes CBOR data into plain Go values without losing
// anything re-encoding would need: maps whose keys are all strings become
// map[string]any, other maps map[any]any (integer keys stay integers);
// arrays []any, byte strings []byte, positive integers uint64, negative
// ones int64, times time.Time. Trailing bytes are an error.
func DecodeGeneric(data []byte) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cbor decode: %v", r)
		}
	}()
	dec := codec.NewDecoderBytes(data, genericCBOR)
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("cbor decode: %w", err)
	}
	if n := dec.NumBytesRead(); n != len(data) {
		return nil, fmt.Errorf("cbor decode: %d trailing bytes", len(data)-n)
	}
	return stringMaps(v), nil
}

func stringMaps(v any) any {
	switch t := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			ks, ok := k.(string)
			if !ok {
				for k, e := range t {
					t[k] = stringMaps(e)
				}
				return t
			}
			m[ks] = e
		}
		for k, e := range m {
			m[k] = stringMaps(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = stringMaps(e)
		}
		return t
	default:
		return v
	}
}

// DecodeValue decodes a record's CBOR bytes into plain Go values that
// encoding/json can write: maps become map[string]any (non-string keys are
// formatted), byte strings stay []byte (base64 in JSON), positive integers
// are uint64 and negative ones int64.
func DecodeValue(data []byte) (any, error) {
	if len(data) == 0 {
		return nil, nil
	}
	v, err := DecodeGeneric(data)
	if err != nil {
		return nil, err
	}
	return jsonable(v), nil
}

func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = jsonable(e)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = jsonable(e)
		}
		return t
	default:
		return v
	}
}

// EncodeValue encodes a plain Go value (as decoded from JSON) to a record's
// CBOR bytes. Whole-number float64s become integers. A value nested deeper
// than MaxDepth is an error (ErrTooDeep).
func EncodeValue(v any) ([]byte, error) {
	n, err := normalize(v, 0)
	if err != nil {
		return nil, err
	}
	return Marshal(n)
}

func normalize(v any, depth int) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		if depth >= MaxDepth {
			return nil, encodeDepthErr()
		}
		m := make(map[string]any, len(t))
		for k, e := range t {
			x, err := normalize(e, depth+1)
			if err != nil {
				return nil, err
			}
			m[k] = x
		}
		return m, nil
	case []any:
		if depth >= MaxDepth {
			return nil, encodeDepthErr()
		}
		s := make([]any, len(t))
		for i, e := range t {
			x, err := normalize(e, depth+1)
			if err != nil {
				return nil, err
			}
			s[i] = x
		}
		return s, nil
	case float64:
		if t == float64(int64(t)) && t >= -1<<53 && t <= 1<<53 {
			return int64(t), nil
		}
		return t, nil
	default:
		return v, nil
	}
}
