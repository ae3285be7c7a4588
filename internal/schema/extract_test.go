package schema

import (
	"errors"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/uuid"
	"github.com/shelfdb/shelf/api"
	"github.com/ugorji/go/codec"
)

const pkg = "github.com/shelfdb/shelf/internal/schema."

type Dims struct {
	Width  float64 `codec:"width"`
	Height float32 `json:"height"`
	Depth  int16   `codec:",omitempty" json:"depth"` // a codec tag without a name: the Go name, not the json one
	Note   string  `codec:"-"`
	Hook   func()  `json:"-"`
	hidden int
}

type Base struct {
	ID string `codec:"id"`
}

type Audit struct {
	By  string `codec:"by"`
	Tie int    `codec:"tie"`
}

type meta struct {
	Owner string `codec:"owner"`
}

type Extra struct {
	Tag string `codec:"tag"`
}

type Flat struct {
	Level uint `codec:"level"`
}

type Label string

type tiny uint8

type Box[T any] struct {
	Value T   `codec:"value"`
	Items []T `codec:"items"`
}

type Node struct {
	Name     string `codec:"name"`
	Children []Node `codec:"children"`
	Parent   *Node  `codec:"parent"`
}

// Money encodes itself; only *Money is a codec.Selfer.
type Money struct{ cents int64 }

func (m Money) CodecEncodeSelf(e *codec.Encoder)  { e.MustEncode(m.cents) }
func (m *Money) CodecDecodeSelf(d *codec.Decoder) { d.MustDecode(&m.cents) }

// OnlyMarshal has no UnmarshalBinary: codec encodes it as a struct.
type OnlyMarshal struct {
	A int `codec:"a"`
}

func (OnlyMarshal) MarshalBinary() ([]byte, error) { return []byte("x"), nil }

type PartKey struct{ ID uint64 }

func (*PartKey) SchemaKeyRef() string { return "main.Part" }

type Part struct {
	Base
	*Audit
	meta
	Extra `codec:"extra"`
	Label
	Flat   `codec:",omitempty"`
	Shadow int    `codec:"shadow"`
	Name   string // no tag: the Go name
	Qty    int    `json:"qty"`
	Price  uint8  `codec:"price,omitempty"`
	Ptr    **int64
	Dims   Dims                       `codec:"dims"`
	DimsP  *Dims                      `codec:"dims_p"`
	Parts  []Dims                     `codec:"parts"`
	Stock  map[string]Dims            `codec:"stock"`
	Counts map[string]map[string]int8 `codec:"counts"`
	Blob   []byte                     `codec:"blob"`
	Hash   [4]byte                    `codec:"hash"`
	Small  []tiny                     `codec:"small"`
	When   time.Time                  `codec:"when"`
	WhenP  *time.Time                 `codec:"when_p"`
	UUID   uuid.UUID                  `codec:"uuid"`
	Money  Money                      `codec:"money"`
	Only   OnlyMarshal                `codec:"only"`
	Key    PartKey                    `codec:"key"`
	Any    any                        `codec:"any"`
	Anon   struct {
		X int `codec:"x"`
	} `codec:"anon"`
	Box  Box[Dims] `codec:"box"`
	Tree *Node     `codec:"tree"`
	skip chan int
}

// A and B embed each other: codec inlines a type at most twice, so A.B.A
// is skipped (and A.B.A.X would lose to A.X).
type A struct {
	*B
	X int `codec:"x"`
}

type B struct {
	*A
	Y int `codec:"y"`
}

func TestExtractPart(t *testing.T) {
	d, err := Extract(reflect.TypeFor[Part]())
	if err != nil {
		t.Fatal(err)
	}
	if d.Root != pkg+"Part" {
		t.Errorf("root %q", d.Root)
	}
	var got []string
	for _, f := range d.Types[d.Root].Fields {
		got = append(got, f.Name+" "+f.GoName+" "+d.TypeString(f.Type))
	}
	want := []string{
		"id ID string",
		"by By string",
		"tie Tie int64",
		"owner Owner string",
		"extra Extra struct " + pkg + "Extra",
		"Label Label string",
		"level Level uint64",
		"shadow Shadow int64",
		"Name Name string",
		"qty Qty int64",
		"price Price uint8",
		"Ptr Ptr *int64",
		"dims Dims struct " + pkg + "Dims",
		"dims_p DimsP *struct " + pkg + "Dims",
		"parts Parts []struct " + pkg + "Dims",
		"stock Stock map[string]struct " + pkg + "Dims",
		"counts Counts map[string]map[string]int8",
		"blob Blob bytes",
		"hash Hash bytes",
		"small Small []uint8",
		"when When time",
		"when_p WhenP *time",
		"uuid UUID custom(github.com/google/uuid.UUID)",
		"money Money custom(" + pkg + "Money)",
		"only Only struct " + pkg + "OnlyMarshal",
		"key Key key(main.Part)",
		"any Any any",
		"anon Anon struct struct { X int \"codec:\\\"x\\\"\" }",
		"box Box struct " + pkg + "Box[" + pkg + "Dims]",
		"tree Tree *struct " + pkg + "Node",
	}
	if !slices.Equal(got, want) {
		t.Errorf("fields:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var dims []string
	for _, f := range d.Types[pkg+"Dims"].Fields {
		dims = append(dims, f.Name+" "+d.TypeString(f.Type))
	}
	if want := []string{"width float64", "height float32", "Depth int16"}; !slices.Equal(dims, want) {
		t.Errorf("Dims fields %q, want %q", dims, want)
	}
	b1, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := Extract(reflect.TypeFor[Part]())
	if b2, _ := d2.Encode(); string(b1) != string(b2) {
		t.Error("Extract is not deterministic")
	}
}

// TestExtractMatchesCodec encodes populated values with api.Marshal and
// checks that every map holds exactly the keys of the extracted fields.
func TestExtractMatchesCodec(t *testing.T) {
	for _, typ := range []reflect.Type{
		reflect.TypeFor[Part](), reflect.TypeFor[Dims](), reflect.TypeFor[Node](),
		reflect.TypeFor[Box[Node]](), reflect.TypeFor[Shadowed](),
	} {
		t.Run(typ.Name(), func(t *testing.T) {
			d, err := Extract(typ)
			if err != nil {
				t.Fatal(err)
			}
			v := reflect.New(typ).Elem()
			fill(v, 0)
			b, err := api.Marshal(v.Interface())
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := api.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			checkKeys(t, d, Type{Kind: KindStruct, Ref: d.Root}, m, "", seen)
			for name := range d.Types {
				if !seen[name] {
					t.Errorf("no value of %s was checked", name)
				}
			}
		})
	}
}

// fill sets every settable part of v to a non-zero value, down to depth 4.
func fill(v reflect.Value, depth int) {
	if depth > 4 {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), depth+1)
	case reflect.Struct:
		if v.Type() == timeType {
			v.Set(reflect.ValueOf(time.Unix(1e9, 0)))
			return
		}
		for i := range v.NumField() {
			if v.Field(i).CanSet() || v.Type().Field(i).Anonymous && v.Field(i).Kind() == reflect.Struct {
				fill(v.Field(i), depth)
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), depth+1)
		v.Set(s)
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i), depth+1)
		}
	case reflect.Map:
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, depth+1)
		fill(e, depth+1)
		v.Set(reflect.MakeMap(v.Type()))
		v.SetMapIndex(k, e)
	case reflect.Interface:
		v.Set(reflect.ValueOf("any"))
	case reflect.String:
		v.SetString("s")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	}
}

func checkKeys(t *testing.T, d Definition, typ Type, v any, path string, seen map[string]bool) {
	t.Helper()
	if v == nil {
		return
	}
	switch typ.Kind {
	case KindStruct:
		m, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s: %T, want a map", path, v)
			return
		}
		seen[typ.Ref] = true
		var keys, names []string
		for k := range m {
			keys = append(keys, k)
		}
		fields := d.Types[typ.Ref].Fields
		for _, f := range fields {
			names = append(names, f.Name)
		}
		sort.Strings(keys)
		sort.Strings(names)
		if !slices.Equal(keys, names) {
			t.Errorf("%s (%s): encoded keys %q, extracted %q", path, typ.Ref, keys, names)
		}
		for _, f := range fields {
			checkKeys(t, d, f.Type, m[f.Name], joinPath(path, f.Name), seen)
		}
	case KindBytes:
		if _, ok := v.([]byte); !ok {
			t.Errorf("%s: %T, want bytes", path, v)
		}
	case KindSlice:
		s, ok := v.([]any)
		if !ok {
			t.Errorf("%s: %T, want a slice", path, v)
		}
		for _, e := range s {
			checkKeys(t, d, *typ.Elem, e, path+"[]", seen)
		}
	case KindMap:
		m, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s: %T, want a map", path, v)
		}
		for _, e := range m {
			checkKeys(t, d, *typ.Elem, e, path+"{}", seen)
		}
	}
}

type (
	BadDims struct {
		Hook func() `codec:"hook"`
	}
	BadFunc struct {
		Dims BadDims `codec:"dims"`
	}
	BadChan struct {
		C []chan int `codec:"c"`
	}
	BadComplex struct{ Z complex128 }
	BadPointer struct{ P unsafe.Pointer }
	BadKey     struct {
		M map[float64]string `codec:"m"`
	}
	BadPtrKey struct{ M map[*string]string }
	ToArray   struct {
		_struct bool `codec:",toarray"`
		X       int
	}
	IntKeys struct {
		_struct bool `codec:",int"`
		X       int  `codec:"1"`
	}
	Missing struct{ X int }
	Embeds  struct{ time.Time }
	Panics  struct{ K panicKey }
)

// Unexported fields, which codec skips.
var _ = []any{Dims{hidden: 1}, Part{skip: nil}, ToArray{_struct: true}, IntKeys{_struct: true}}

func (Missing) CodecMissingFields() map[string]any              { return nil }
func (*Missing) CodecMissingField(field []byte, value any) bool { return false }

type panicKey struct{ p *string }

func (k panicKey) SchemaKeyRef() string { return *k.p }

func TestExtractErrors(t *testing.T) {
	for _, c := range []struct {
		typ  reflect.Type
		want string
	}{
		{nil, "schema: <nil> is not a struct type"},
		{reflect.TypeFor[int](), "schema: int is not a struct type"},
		{reflect.TypeFor[*Dims](), "schema: *schema.Dims is not a struct type"},
		{reflect.TypeFor[time.Time](), "schema: time.Time is stored as time, not as a map of fields"},
		{reflect.TypeFor[uuid.UUID](), "is not a struct type"},
		{reflect.TypeFor[Embeds](), "schema: schema.Embeds is stored as custom(" + pkg + "Embeds), not as a map of fields"},
		{reflect.TypeFor[BadFunc](), `schema of schema.BadFunc: field "dims.hook" (Dims.Hook): type func() cannot be stored`},
		{reflect.TypeFor[BadChan](), `field "c[]" (C[]): type chan int cannot be stored`},
		{reflect.TypeFor[BadComplex](), `field "Z" (Z): type complex128 cannot be stored`},
		{reflect.TypeFor[BadPointer](), `field "P" (P): type unsafe.Pointer cannot be stored`},
		{reflect.TypeFor[BadKey](), `field "m" (M): map key type float64 cannot be stored`},
		{reflect.TypeFor[BadPtrKey](), `field "M" (M): map key type *string cannot be stored`},
		{reflect.TypeFor[ToArray](), "type " + pkg + "ToArray is encoded as an array"},
		{reflect.TypeFor[IntKeys](), "type " + pkg + "IntKeys is encoded with int keys"},
		{reflect.TypeFor[Missing](), "type " + pkg + "Missing adds keys of its own"},
		{reflect.TypeFor[Panics](), `field "K" (K): schema.panicKey.SchemaKeyRef panicked`},
	} {
		_, err := Extract(c.typ)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Extract(%v) = %v, want %q", c.typ, err, c.want)
		}
	}
}

func TestExtractRecursive(t *testing.T) {
	d, err := Extract(reflect.TypeFor[Node]())
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Types) != 1 || d.TypeString(d.Types[d.Root].Fields[1].Type) != "[]struct "+pkg+"Node" {
		t.Errorf("got %+v", d)
	}
}

// R3 embeds T3 three times (via X3.Y3, via W3, and directly): codec inlines
// it only twice, so the direct T3.K would never be stored.
type (
	T3 struct {
		K string `codec:"k"`
	}
	Y3 struct{ T3 }
	X3 struct{ Y3 }
	W3 struct{ T3 }
	R3 struct {
		X3
		W3
		T3
	}
)

// Two fields under one key: codec stores only one of them.
type (
	SameKey struct {
		Qty   int    `codec:"qty"`
		Other string `codec:"qty"`
	}
	SameKeyJSON struct {
		Name  string // the Go name...
		Label string `json:"Name"` // ...and a json tag
	}
	Inner struct {
		ID   string `codec:"id"`
		Note string `codec:"note"`
	}
	Outer struct { // the shallower ID wins in codec, Inner.ID is never stored
		Inner
		ID int `codec:"id"`
	}
	Level1 struct{ Inner }
	Level2 struct {
		Code string `codec:"note"`
	}
	Tied struct { // Inner.Note and Level2.Code at the same depth: the first wins
		Level1
		Deep struct {
			Tied2 Tied2 `codec:"t"`
		} `codec:"deep"`
	}
	Tied2 struct {
		Inner
		Level2
	}
	// Shadowed embeds a struct under a tag: not inlined, no collision.
	Shadowed struct {
		Inner `codec:"inner"`
		ID    int `codec:"id"`
	}
)

func TestExtractDuplicateKeys(t *testing.T) {
	for _, c := range []struct {
		typ  reflect.Type
		want string
	}{
		{reflect.TypeFor[SameKey](), `type ` + pkg + `SameKey: fields Qty and Other both have the key "qty", and codec would store only Qty`},
		{reflect.TypeFor[SameKeyJSON](), `type ` + pkg + `SameKeyJSON: fields Name and Label both have the key "Name", and codec would store only Name`},
		{reflect.TypeFor[Outer](), `type ` + pkg + `Outer: fields Inner.ID and ID both have the key "id", and codec would store only ID`},
		{reflect.TypeFor[Tied](), `field "deep.t" (Deep.Tied2): type ` + pkg + `Tied2: fields Inner.Note and Level2.Code both have the key "note", and codec would store only Inner.Note`},
	} {
		_, err := Extract(c.typ)
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrDuplicateKey) {
			t.Errorf("Extract(%v) = %v, want %q wrapping ErrDuplicateKey", c.typ, err, c.want)
		}
	}
	for _, c := range []struct {
		typ  reflect.Type
		want string
	}{
		{reflect.TypeFor[R3](), "type " + pkg + "R3 embeds schema.T3 a third time (at T3): codec inlines a struct type at most twice"},
		{reflect.TypeFor[A](), "type " + pkg + "A embeds *schema.A a third time (at B.A.B.A)"},
	} {
		if _, err := Extract(c.typ); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Extract(%v) = %v, want %q", c.typ, err, c.want)
		}
	}
	// What codec does with them: one of the values is lost.
	b, _ := api.Marshal(SameKey{Qty: 7, Other: "lost"})
	var m map[string]any
	if err := api.Unmarshal(b, &m); err != nil || len(m) != 1 || m["qty"] != uint64(7) {
		t.Errorf("codec encoded SameKey as %v (%v)", m, err)
	}
	b, _ = api.Marshal(Outer{Inner: Inner{ID: "lost", Note: "n"}, ID: 3})
	m = nil
	if err := api.Unmarshal(b, &m); err != nil || len(m) != 2 || m["id"] != uint64(3) {
		t.Errorf("codec encoded Outer as %v (%v)", m, err)
	}
}
