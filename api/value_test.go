package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

// nested returns n nested one-element arrays around 0, inside a map
// {"a": ...} when inMap: n+1 levels in all.
func nested(n int, inMap bool) []byte {
	var b []byte
	if inMap {
		b = append(b, 0xa1, 0x61, 'a')
	}
	b = append(b, bytes.Repeat([]byte{0x81}, n)...)
	return append(b, 0x00)
}

func TestCheckValueDepth(t *testing.T) {
	if err := CheckValue(nested(MaxDepth-1, true)); err != nil {
		t.Fatalf("%d levels refused: %v", MaxDepth, err)
	}
	for _, n := range []int{MaxDepth, 100_000} {
		if err := CheckValue(nested(n, true)); !errors.Is(err, ErrTooDeep) {
			t.Errorf("%d levels: %v, want %v", n+1, err, ErrTooDeep)
		}
	}
	// Tags count as levels; indefinite-length arrays too.
	tags := append(append([]byte{0xa1, 0x61, 'a'}, bytes.Repeat([]byte{0xc1}, MaxDepth)...), 0)
	if err := CheckValue(tags); !errors.Is(err, ErrTooDeep) {
		t.Errorf("nested tags: %v", err)
	}
	indef := append(append([]byte{0xa1, 0x61, 'a'}, bytes.Repeat([]byte{0x9f}, MaxDepth)...), 0)
	indef = append(indef, bytes.Repeat([]byte{0xff}, MaxDepth)...)
	if err := CheckValue(indef); !errors.Is(err, ErrTooDeep) {
		t.Errorf("nested indefinite arrays: %v", err)
	}
	// What CheckValue accepts, the codec decodes.
	if _, err := DecodeValue(nested(MaxDepth-1, true)); err != nil {
		t.Errorf("decode of the deepest value accepted: %v", err)
	}
}

func TestCheckValueShape(t *testing.T) {
	ok, _ := EncodeValue(map[string]any{"name": "R1", "qty": 3, "tags": []any{"a", map[string]any{"b": 1.5}}})
	if err := CheckValue(ok); err != nil {
		t.Fatalf("plain record refused: %v", err)
	}
	for name, tc := range map[string]struct {
		b    []byte
		want error
	}{
		"null":            {[]byte{0xf6}, ErrNotMap},
		"integer":         {[]byte{0x05}, ErrNotMap},
		"string":          {[]byte{0x61, 'x'}, ErrNotMap},
		"array":           {[]byte{0x80}, ErrNotMap},
		"empty":           {nil, ErrMalformed},
		"truncated map":   {[]byte{0xa2, 0x61, 'a', 0x01}, ErrMalformed},
		"trailing":        {[]byte{0xa0, 0x00}, ErrMalformed},
		"huge count":      {[]byte{0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ErrMalformed},
		"huge string":     {[]byte{0xa1, 0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ErrMalformed},
		"lone break":      {[]byte{0xa1, 0x61, 'a', 0xff}, ErrMalformed},
		"reserved":        {[]byte{0xa1, 0x61, 'a', 0x1c}, ErrMalformed},
		"mixed chunks":    {[]byte{0xa1, 0x61, 'a', 0x7f, 0x41, 'x', 0xff}, ErrMalformed},
		"unclosed indef":  {[]byte{0xbf, 0x61, 'a', 0x01}, ErrMalformed},
		"two-byte simple": {[]byte{0xa1, 0x61, 'a', 0xf8, 0x10}, ErrMalformed},
	} {
		if err := CheckValue(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s (% x): %v, want %v", name, tc.b, err, tc.want)
		}
	}
}

func TestDecodeJSONNumbers(t *testing.T) {
	for in, want := range map[string]any{
		"18446744073709551615": uint64(math.MaxUint64),
		"9223372036854775808":  uint64(1 << 63),
		"9223372036854775807":  int64(math.MaxInt64),
		"-9223372036854775808": int64(math.MinInt64),
		"1.5":                  1.5,
		"1e300":                1e300,
		"-0.25":                -0.25,
	} {
		var v any
		if err := DecodeJSON(strings.NewReader(`{"n":`+in+`}`), &v); err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		// Exact through CBOR and back.
		b, err := EncodeValue(v)
		if err != nil {
			t.Fatalf("%s: encode: %v", in, err)
		}
		back, err := DecodeValue(b)
		if err != nil {
			t.Fatalf("%s: decode: %v", in, err)
		}
		got := back.(map[string]any)["n"]
		if g, w := asFloatOrInt(got), asFloatOrInt(want); g != w {
			t.Errorf("%s: stored as %v (%T), want %v", in, got, got, want)
		}
		js, _ := json.Marshal(back)
		if !strings.Contains(string(js), strings.TrimPrefix(in, "+")) && !strings.Contains(in, "e") {
			t.Errorf("%s: JSON view %s", in, js)
		}
	}
	for _, in := range []string{
		`{"a":{"b":[1,18446744073709551616]}}`,
		`{"a":{"b":[1,-9223372036854775809]}}`,
		`{"a":{"b":[1,1e400]}}`,
	} {
		var v any
		err := DecodeJSON(strings.NewReader(in), &v)
		if !errors.Is(err, ErrNumberRange) || !strings.Contains(err.Error(), `"a.b[1]"`) {
			t.Errorf("%s: %v, want %v naming a.b[1]", in, err, ErrNumberRange)
		}
	}
}

func asFloatOrInt(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestDecodeJSONDepthAndTrailing(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	var v any
	if err := DecodeJSON(strings.NewReader(deep(MaxDepth)), &v); err != nil {
		t.Fatalf("%d levels: %v", MaxDepth, err)
	}
	if err := DecodeJSON(strings.NewReader(deep(MaxDepth+1)), &v); !errors.Is(err, ErrTooDeep) {
		t.Errorf("%d levels: %v, want %v", MaxDepth+1, err, ErrTooDeep)
	}
	if err := DecodeJSON(strings.NewReader(deep(100_000)), &v); err == nil {
		t.Error("100000 levels accepted")
	}
	if err := DecodeJSON(strings.NewReader(`{} {}`), &v); err == nil {
		t.Error("data after the value accepted")
	}
	var d any = map[string]any{}
	for range MaxDepth {
		d = map[string]any{"a": d}
	}
	if _, err := EncodeValue(d); !errors.Is(err, ErrTooDeep) {
		t.Errorf("EncodeValue of %d levels: %v", MaxDepth+1, err)
	}
}

// A record whose bytes have no JSON view gets a ValueError, not a failure.
func TestFillValue(t *testing.T) {
	nan, _ := Marshal(map[string]any{"x": math.NaN()})
	for name, data := range map[string][]byte{"NaN": nan, "malformed": {0xa1}, "deep": nested(2000, true)} {
		r := Record{Data: data}
		r.FillValue()
		if r.ValueError == "" || r.Value != nil {
			t.Errorf("%s: value %v, error %q", name, r.Value, r.ValueError)
		}
		if _, err := json.Marshal(r); err != nil {
			t.Errorf("%s: the record has no JSON form: %v", name, err)
		}
	}
	ok, _ := EncodeValue(map[string]any{"n": 1})
	r := Record{Data: ok}
	r.FillValue()
	if r.ValueError != "" || r.Value.(map[string]any)["n"] != uint64(1) {
		t.Errorf("plain record: %#v %q", r.Value, r.ValueError)
	}
}

// FuzzDecodeJSON: any input gives a value or an error, never a panic; a
// value encodes to CBOR that CheckCBOR accepts and DecodeValue reads.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[1,2.5,"x",null,true]`, `18446744073709551616`, `{"a":{"b":[[[]]]}}`, `1e999`, `-0`, `"\u0000"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v any
		if err := DecodeJSON(strings.NewReader(s), &v); err != nil {
			return
		}
		b, err := EncodeValue(v)
		if err != nil {
			t.Fatalf("%q decoded but does not encode: %v", s, err)
		}
		if err := CheckCBOR(b); err != nil {
			t.Fatalf("%q encodes to CBOR that CheckCBOR refuses: %v", s, err)
		}
		if _, err := DecodeValue(b); err != nil {
			t.Fatalf("%q encodes to CBOR that DecodeValue refuses: %v", s, err)
		}
	})
}

// FuzzCheckCBOR: CheckCBOR never panics, and what it accepts the codec
// decodes (so a stored value can always be read), also when the walk
// alone decides (values without tags, with text keys only).
func FuzzCheckCBOR(f *testing.F) {
	ok, _ := EncodeValue(map[string]any{"name": "R1", "n": []any{1, 2.5, "x", nil, true}})
	for _, b := range [][]byte{ok, nested(10, true), {0xbf, 0x61, 'a', 0x9f, 0xff, 0xff}, {0xa1, 0x61, 'a', 0xc1, 0x00},
		{0xa2, 0x61, 'a', 0x01, 0x61, 'a', 0x02},                                // duplicate text keys
		{0xa2, 0x61, 'a', 0x01, 0x41, 'a', 0x02},                                // text and bytes keys alike
		{0xa1, 0x61, 'a', 0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // -2^64
		{0xa1, 0x61, 'a', 0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // min int64
		{0xa1, 0x61, 'a', 0x7f, 0x61, 'x', 0xff},                                // indefinite text
		{0xa1, 0x61, 0xff, 0x62, 0xc3, 0x28},                                    // invalid UTF-8 key and value
		{0xa1, 0x61, 'a', 0xf9, 0x7e, 0x00},                                     // half-float NaN
		{0xa1, 0xf9, 0x7e, 0x00, 0x01},                                          // NaN key
		{0xa1, 0x61, 'a', 0xc0, 0x61, 'x'},                                      // bad time
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := CheckCBOR(b); err != nil {
			return
		}
		if _, err := DecodeGeneric(b); err != nil {
			t.Fatalf("CheckCBOR accepts % x, the codec does not: %v", b, err)
		}
	})
}

// BenchmarkCheckValue measures the check of a record value, which every
// write passes on the node that takes it, on the leader, and on every
// replica that applies it.
func BenchmarkCheckValue(b *testing.B) {
	v, err := EncodeValue(map[string]any{"name": "R1-2026-12", "qty": 3, "price": 12.5, "active": true,
		"tags": []any{"a", "b", "c"}, "dims": map[string]any{"w": 10, "h": 20, "unit": "cm"}, "note": strings.Repeat("x", 120)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckValue(v); err != nil {
			b.Fatal(err)
		}
	}
}
