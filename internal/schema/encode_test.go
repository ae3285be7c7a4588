package schema

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/shelfdb/shelf/api"
)

func TestEncodeDecode(t *testing.T) {
	d := mustExtract(t, Part{})
	b, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d2, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Shape(), d2) {
		t.Errorf("decoded %+v\nwant %+v", d2, d.Shape())
	}
	if !reflect.DeepEqual(d2.Shape(), d2) {
		t.Error("the shape of a shape is not itself")
	}
	if h := Hash(b); len(h) != 64 || h != Hash(b) || h == Hash(append(b, 0)) {
		t.Errorf("hash %q", h)
	}
}

func TestDecodeInvalid(t *testing.T) {
	i64 := &Type{Kind: KindInt, Bits: 64}
	for _, c := range []struct {
		fields []Field
		want   string
	}{
		{[]Field{{Name: "", Type: *i64}}, "type r: field 0 has no name"},
		{[]Field{{Name: "a", Type: *i64}, {Name: "a", Type: *i64}}, `type r: two fields are named "a"`},
		{[]Field{{Name: "a", Type: Type{Kind: "complex"}}}, `field "a": unknown kind "complex"`},
		{[]Field{{Name: "a", Type: Type{Kind: KindInt, Bits: 12}}}, "int of 12 bits"},
		{[]Field{{Name: "a", Type: Type{Kind: KindUint}}}, "uint of 0 bits"},
		{[]Field{{Name: "a", Type: Type{Kind: KindFloat, Bits: 16}}}, "float of 16 bits"},
		{[]Field{{Name: "a", Type: Type{Kind: KindStruct, Ref: "x"}}}, `struct type "x" is not defined`},
		{[]Field{{Name: "a", Type: Type{Kind: KindSlice}}}, "slice without its element"},
		{[]Field{{Name: "a", Type: Type{Kind: KindMap, Elem: i64}}}, "map without its element or key type"},
		{[]Field{{Name: "a", Type: Type{Kind: KindSlice, Elem: &Type{Kind: KindInt}}}}, "int of 0 bits"},
		{[]Field{{Name: "a", Type: Type{Kind: KindKey}}}, "key type without a name"},
	} {
		b, err := api.Marshal(Definition{Root: "r", Types: map[string]Struct{"r": {Fields: c.fields}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Decode(%+v) = %v, want %q", c.fields, err, c.want)
		}
	}
	b, _ := api.Marshal(Definition{Root: "x"})
	for _, b := range [][]byte{nil, {0xff}, b} {
		if _, err := Decode(b); err == nil {
			t.Errorf("Decode(%x) succeeded", b)
		}
	}
}

func TestTypeString(t *testing.T) {
	s := &Type{Kind: KindString}
	for _, c := range []struct {
		t    Type
		want string
	}{
		{Type{Kind: KindInt, Bits: 64}, "int64"},
		{Type{Kind: KindUint, Bits: 16}, "uint16"},
		{Type{Kind: KindFloat, Bits: 64}, "float64"},
		{*s, "string"},
		{Type{Kind: KindBytes}, "bytes"},
		{Type{Kind: KindTime}, "time"},
		{Type{Kind: KindString, Nullable: true}, "*string"},
		{Type{Kind: KindSlice, Elem: s}, "[]string"},
		{Type{Kind: KindMap, Key: s, Elem: &Type{Kind: KindInt, Bits: 64}}, "map[string]int64"},
		{Type{Kind: KindStruct, Ref: "main.Dims"}, "struct main.Dims"},
		{Type{Kind: KindKey, Ref: "main.Part"}, "key(main.Part)"},
		{Type{Kind: KindAny}, "any"},
		{Type{Kind: KindCustom, Ref: "github.com/google/uuid.UUID"}, "custom(github.com/google/uuid.UUID)"},
		{Type{Kind: KindMap}, "map[?]?"},
	} {
		if got := (Definition{}).TypeString(c.t); got != c.want {
			t.Errorf("TypeString(%+v) = %q, want %q", c.t, got, c.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, v := range []any{Part{}, Node{}, Shadowed{}, P1{}, Tree2{}, PStock1{}} {
		d, err := Extract(reflect.TypeOf(v))
		if err != nil {
			f.Fatal(err)
		}
		b, err := d.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := d.Encode()
		if err != nil {
			t.Fatalf("valid definition does not encode: %v", err)
		}
		d2, err := Decode(enc)
		if err != nil {
			t.Fatalf("encoded definition does not decode: %v", err)
		}
		if enc2, _ := d2.Encode(); !bytes.Equal(enc, enc2) {
			t.Fatal("encoding is not canonical")
		}
		if err := Check("t", []Definition{d}, d2); err != nil && !strings.Contains(err.Error(), "too many field paths") {
			t.Fatalf("definition incompatible with itself: %v", err)
		}
	})
}
