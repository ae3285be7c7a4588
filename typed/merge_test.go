package typed

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/schema"
)

// Version 1 of a record type, as old code knows it, and version 2, as
// newer code wrote it: more fields at the top, in nested structs, in the
// elements of slices and maps.
type (
	addrV1 struct {
		Street string `codec:"street"`
		City   string `codec:"city"`
	}
	itemV1 struct {
		SKU string `codec:"sku"`
		Qty int    `codec:"qty"`
	}
	recV1 struct {
		ID    uint64            `codec:"id"`
		Name  string            `codec:"name"`
		Addr  addrV1            `codec:"addr"`
		Ship  *addrV1           `codec:"ship"`
		Items []itemV1          `codec:"items"`
		ByKey map[string]itemV1 `codec:"by_key"`
		Grid  [][]itemV1        `codec:"grid"`
		At    time.Time         `codec:"at"`
	}

	geoV2 struct {
		Lat float64 `codec:"lat"`
		Lon float32 `codec:"lon"`
	}
	addrV2 struct {
		Street string `codec:"street"`
		City   string `codec:"city"`
		Zip    string `codec:"zip"`
		Geo    *geoV2 `codec:"geo"`
	}
	itemV2 struct {
		SKU  string   `codec:"sku"`
		Qty  int      `codec:"qty"`
		Note string   `codec:"note"`
		Tags []string `codec:"tags"`
	}
	recV2 struct {
		ID     uint64            `codec:"id"`
		Name   string            `codec:"name"`
		Age    int               `codec:"age"`
		Labels map[string]string `codec:"labels"`
		Addr   addrV2            `codec:"addr"`
		Ship   *addrV2           `codec:"ship"`
		Items  []itemV2          `codec:"items"`
		ByKey  map[string]itemV2 `codec:"by_key"`
		Grid   [][]itemV2        `codec:"grid"`
		At     time.Time         `codec:"at"`
	}
)

func defField(name string, t schema.Type) schema.Field { return schema.Field{Name: name, Type: t} }
func defKind(k schema.Kind) schema.Type                { return schema.Type{Kind: k} }
func defRef(name string) schema.Type                   { return schema.Type{Kind: schema.KindStruct, Ref: name} }
func defSlice(e schema.Type) schema.Type               { return schema.Type{Kind: schema.KindSlice, Elem: &e} }
func defMap(k, e schema.Type) schema.Type {
	return schema.Type{Kind: schema.KindMap, Key: &k, Elem: &e}
}

// defV1 describes recV1, as the old code's Definition would.
var defV1 = func() *schema.Definition {
	ship := defRef("addr")
	ship.Nullable = true
	return &schema.Definition{Root: "rec", Types: map[string]schema.Struct{
		"rec": {Fields: []schema.Field{
			defField("id", defKind(schema.KindUint)), defField("name", defKind(schema.KindString)),
			defField("addr", defRef("addr")), defField("ship", ship), defField("items", defSlice(defRef("item"))),
			defField("by_key", defMap(defKind(schema.KindString), defRef("item"))),
			defField("grid", defSlice(defSlice(defRef("item")))), defField("at", defKind(schema.KindTime)),
		}},
		"addr": {Fields: []schema.Field{defField("street", defKind(schema.KindString)), defField("city", defKind(schema.KindString))}},
		"item": {Fields: []schema.Field{defField("sku", defKind(schema.KindString)), defField("qty", defKind(schema.KindInt))}},
	}}
}()

func sampleV2() recV2 {
	return recV2{
		ID: 7, Name: "ann", Age: 41, Labels: map[string]string{"tier": "gold"},
		Addr:  addrV2{Street: "1 Main", City: "Oslo", Zip: "0150", Geo: &geoV2{59.91, 10.75}},
		Ship:  &addrV2{Street: "2 Dock", City: "Bergen", Zip: "5003"},
		Items: []itemV2{{"a", 1, "fragile", []string{"x"}}, {"b", 2, "gift", nil}, {"c", 3, "late", []string{"y", "z"}}},
		ByKey: map[string]itemV2{"k1": {"a", 1, "n1", nil}, "k2": {"b", 2, "n2", nil}},
		Grid:  [][]itemV2{{{"g1", 1, "r0c0", nil}, {"g2", 2, "r0c1", nil}}, {{"g3", 3, "r1c0", nil}}},
		At:    time.Date(2024, 5, 6, 7, 8, 9, 123000, time.UTC),
	}
}

func mustEncode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := api.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustDecode(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := api.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// TestMergeKeepsUnknown stores a v2 record, lets v1 code read, edit and
// write it back through merge, and checks that the v2 record read back is
// the original with v1's edits.
func TestMergeKeepsUnknown(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*recV1)
		want func(*recV2)
	}{
		{"top level", func(r *recV1) { r.Name = "bob" }, func(r *recV2) { r.Name = "bob" }},
		{"nested struct", func(r *recV1) { r.Addr.Street = "3 Elm" }, func(r *recV2) { r.Addr.Street = "3 Elm" }},
		{"pointer to struct", func(r *recV1) { r.Ship.City = "Molde" }, func(r *recV2) { r.Ship.City = "Molde" }},
		{"pointer set to nil", func(r *recV1) { r.Ship = nil }, func(r *recV2) { r.Ship = nil }},
		{"slice element edited", func(r *recV1) { r.Items[1].Qty = 20 }, func(r *recV2) { r.Items[1].Qty = 20 }},
		{"slice reordered", func(r *recV1) { slices.Reverse(r.Items) }, func(r *recV2) { slices.Reverse(r.Items) }},
		{"slice element deleted", func(r *recV1) { r.Items = r.Items[1:] }, func(r *recV2) { r.Items = r.Items[1:] }},
		{"slice element inserted", func(r *recV1) { r.Items = slices.Insert(r.Items, 0, itemV1{"new", 9}) },
			func(r *recV2) { r.Items = slices.Insert(r.Items, 0, itemV2{SKU: "new", Qty: 9}) }},
		{"slice reordered and edited", func(r *recV1) {
			r.Items[0], r.Items[2] = r.Items[2], r.Items[0]
			r.Items[1].SKU = "B"
		}, func(r *recV2) {
			r.Items[0], r.Items[2] = r.Items[2], r.Items[0]
			r.Items[1].SKU = "B"
		}},
		{"map of structs", func(r *recV1) {
			r.ByKey["k1"] = itemV1{"a", 5}
			delete(r.ByKey, "k2")
			r.ByKey["k3"] = itemV1{"c", 3}
		}, func(r *recV2) {
			r.ByKey["k1"] = itemV2{"a", 5, "n1", nil}
			delete(r.ByKey, "k2")
			r.ByKey["k3"] = itemV2{SKU: "c", Qty: 3}
		}},
		{"slice of slices", func(r *recV1) {
			r.Grid[1][0].Qty = 30
			r.Grid[0][0], r.Grid[0][1] = r.Grid[0][1], r.Grid[0][0]
		}, func(r *recV2) {
			r.Grid[1][0].Qty = 30
			r.Grid[0][0], r.Grid[0][1] = r.Grid[0][1], r.Grid[0][0]
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := mustEncode(t, sampleV2())
			var r1 recV1
			mustDecode(t, old, &r1)
			tc.edit(&r1)
			out, err := merge(defV1, old, mustEncode(t, r1))
			if err != nil {
				t.Fatal(err)
			}
			var got, want recV2
			mustDecode(t, out, &got)
			mustDecode(t, old, &want)
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("merged:\n got %+v\nwant %+v", got, want)
			}
			if again, err := merge(defV1, out, mustEncode(t, r1)); err != nil || !bytes.Equal(again, out) {
				t.Errorf("merging the result again: %x, %v; want the same bytes", again, err)
			}
			var v any
			mustDecode(t, out, &v)
		})
	}
}

func TestMergeNoCarry(t *testing.T) {
	var r1 recV1
	mustDecode(t, mustEncode(t, sampleV2()), &r1)
	old := mustEncode(t, r1) // written by v1: nothing unknown
	r1.Items[0].Qty, r1.ByKey["k1"] = 8, itemV1{"q", 1}
	r1.Grid = append(r1.Grid, []itemV1{{"n", 1}})
	for _, o := range [][]byte{old, nil, {0xf6}, {0x01}, {0xa0}} {
		nw := mustEncode(t, r1)
		out, err := merge(defV1, o, nw)
		if err != nil || len(out) != len(nw) || &out[0] != &nw[0] {
			t.Errorf("old %x: merge returned %x, %v; want new itself", o, out, err)
		}
	}
}

func TestMergeKeys(t *testing.T) {
	def := &schema.Definition{Root: "r", Types: map[string]schema.Struct{"r": {Fields: []schema.Field{
		defField("name", defKind(schema.KindString)), defField("sub", defRef("s")), defField("m", defMap(defKind(schema.KindInt), defRef("s")))}},
		"s": {Fields: []schema.Field{defField("a", defKind(schema.KindInt))}}}}
	h := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct{ name, old, new, want string }{
		// A known key spelled as an indefinite-length string is not carried
		// (no duplicate "name"); unknown string keys are, sorted; others
		// are dropped, as the decoder misreads them.
		{"indefinite key", "a4 7f 62 6e61 62 6d65 ff 61 78 01 f5 62 7a7a 02 c1 61 61 f4",
			"a1 64 6e616d65 61 79", "a3 62 7a7a 02 64 6e616d65 61 79 c1 61 61 f4"},
		// The decoder takes a byte string key for a field name: not carried.
		{"byte string key", "a2 44 6e616d65 01 62 7a7a 02", "a1 64 6e616d65 61 79", "a2 62 7a7a 02 64 6e616d65 61 79"},
		// The nested struct is merged although spelled indefinitely in old.
		{"nested indefinite", "bf 63 737562 bf 61 61 01 61 62 02 ff ff", "a1 63 737562 a1 61 61 05",
			"a1 63 737562 a2 61 61 05 61 62 02"},
		// Map values pair by key bytes; tags and floats are carried as is.
		{"map keys", "a1 61 6d a2 01 a2 61 61 01 61 62 f9 3c00 02 a2 61 61 02 61 62 c1 1a 5f5e1000",
			"a1 61 6d a2 02 a1 61 61 09 03 a1 61 61 03",
			"a1 61 6d a2 02 a2 61 61 09 61 62 c1 1a 5f5e1000 03 a1 61 61 03"},
		{"new wins over a non-map", "a1 63 737562 01", "a1 63 737562 a1 61 61 05", "a1 63 737562 a1 61 61 05"},
		{"null wins", "a1 63 737562 a1 61 62 01", "a1 63 737562 f6", "a1 63 737562 f6"},
	} {
		out, err := merge(def, h(tc.old), h(tc.new))
		if err != nil || !bytes.Equal(out, h(tc.want)) {
			t.Errorf("%s: merge = %x, %v; want %x", tc.name, out, err, h(tc.want))
		}
	}
	if _, err := merge(&schema.Definition{Root: "x"}, h("a1 61 61 01"), h("a0")); err == nil {
		t.Error("merge with a root missing from Types: no error")
	}
}

func TestCBORWellFormed(t *testing.T) {
	for _, s := range []string{
		"00", "17", "1818", "19ffff", "1a00010000", "1b0000000100000000", "20", "3863", "3bffffffffffffffff",
		"40", "4401020304", "60", "6449455446", "5f42010243030405ff", "7f657374726561646d696e67ff", "5fff",
		"80", "83010203", "9f018202039f0405ffff", "9fff", "a0", "a201020304", "bf6346756ef563416d7421ff",
		"c11a514b67b0", "d82076687474703a2f2f7777772e6578616d706c652e636f6d", "c1c1c100",
		"f4", "f5", "f6", "f7", "f0", "f820", "f8ff", "f93c00", "f97e00", "fa47c35000", "fb3ff199999999999a",
	} {
		b, _ := hex.DecodeString(s)
		if err := cborValid(b); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	deep := func(head byte, n int) string {
		return strings.Repeat(hex.EncodeToString([]byte{head}), n) + "00"
	}
	for _, s := range []string{
		"", "18", "19ff", "1b00000000", "1c", "1d", "1e", "1f", "3f", "df00", "ff", "f818", "f900", "fb0000",
		"41", "61", "5b0000000100000000", "7bffffffffffffffff00", "5f", "5f41", "5f6161ff", "5f5f4100ffff", "5f01ff",
		"81", "82 00", "9b7fffffffffffffff00", "9f", "9f01", "a1", "a100", "bf00ff", "bf", "bf0000",
		"0000", "80ff", "c1", deep(0x81, cborMaxDepth+1), deep(0xc1, cborMaxDepth+1), deep(0x9f, 300),
	} {
		b, _ := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err := cborValid(b); err == nil {
			t.Errorf("%.40s: well-formed, want an error", s)
		}
		if _, err := merge(defV1, b, []byte{0xa0}); err == nil && len(b) > 0 { // empty: no stored record
			t.Errorf("%.40s as old: merge succeeded", s)
		}
		if _, err := merge(defV1, []byte{0xa0}, b); err == nil {
			t.Errorf("%.40s as new: merge succeeded", s)
		}
	}
	if b, _ := hex.DecodeString(deep(0x81, cborMaxDepth)); cborValid(b) != nil {
		t.Errorf("%d nested arrays: %v", cborMaxDepth, cborValid(b))
	}
	if b, _ := hex.DecodeString(deep(0xc1, cborMaxDepth+1)); !errors.Is(cborValid(b), errCBORDepth) {
		t.Errorf("%d nested tags: %v, want %v", cborMaxDepth+1, cborValid(b), errCBORDepth)
	}
	for _, n := range []uint64{0, 23, 24, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, 1<<64 - 1} {
		b := cborAppendHead(nil, 0, n)
		if m, arg, indef, next, err := cborHead(b, 0); m != 0 || arg != n || indef || next != len(b) || err != nil {
			t.Errorf("head of %d: %x", n, b)
		}
		if want := mustEncode(t, n); !bytes.Equal(b, want) {
			t.Errorf("head of %d: %x, want %x", n, b, want)
		}
	}
}

// FuzzMerge feeds merge arbitrary stored and new records: it must not
// panic, its output must be one well-formed item, and what the old code
// reads back from it must be what it wrote.
func FuzzMerge(f *testing.F) {
	s := sampleV2()
	var r1 recV1
	mustDecode(f, mustEncode(f, s), &r1)
	f.Add(mustEncode(f, s), mustEncode(f, r1))
	s.Items, s.Ship = append(s.Items, itemV2{SKU: "d", Note: "more"}), nil
	r1.Items = r1.Items[1:]
	f.Add(mustEncode(f, s), mustEncode(f, r1))
	f.Add(mustEncode(f, r1), mustEncode(f, r1))
	f.Add(mustEncode(f, map[string]any{"items": []any{map[string]any{"sku": "a", "x": 1}}, "y": 2.5}),
		mustEncode(f, map[string]any{"items": []any{map[string]any{"sku": "a"}}}))
	f.Add([]byte{0xbf, 0x61, 0x78, 0x9f, 0xff, 0xff}, []byte{0xa0})
	f.Add(mustEncode(f, keyedRecV2{Lots: [][]keyedLotV2{{{"A", 1, "n"}, {"B", 2, "m"}}}}),
		mustEncode(f, keyedRecV1{Lots: [][]keyedLotV1{{{"B", 2}, {"C", 1}}}}))
	keyed, err := schema.Extract(reflect.TypeFor[keyedRecV1]())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, old, nw []byte) {
		if out, err := merge(&keyed, old, nw); err == nil && cborValid(out) != nil {
			t.Fatalf("merge by element key(%x, %x) = %x: %v", old, nw, out, cborValid(out))
		}
		out, err := merge(defV1, old, nw)
		if err != nil {
			return
		}
		if err := cborValid(out); err != nil {
			t.Fatalf("merge(%x, %x) = %x: %v", old, nw, out, err)
		}
		var want, got recV1
		if api.Unmarshal(nw, &want) == nil && api.Unmarshal(out, &got) == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("merge(%x, %x) = %x: reads back as\n%+v\nwant %+v", old, nw, out, got, want)
		}
	})
}

// BenchmarkMerge merges a typical record as v1 code writes it back over
// one stored by v1 (nothing to carry) and by v2 (unknown fields to carry).
func BenchmarkMerge(b *testing.B) {
	s := sampleV2()
	var r1 recV1
	mustDecode(b, mustEncode(b, s), &r1)
	nw := mustEncode(b, r1)
	for _, bc := range []struct {
		name string
		old  []byte
	}{{"known", mustEncode(b, r1)}, {"unknown", mustEncode(b, s)}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := merge(defV1, bc.old, nw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Lots whose Go type names their key: the writer's (old) code knows code
// and qty; newer code added note.
type (
	keyedLotV1 struct {
		Code string `codec:"code" shelf:"key"`
		Qty  int    `codec:"qty"`
	}
	keyedRecV1 struct {
		Lots [][]keyedLotV1 `codec:"lots"`
	}
	keyedLotV2 struct {
		Code string `codec:"code"`
		Qty  int    `codec:"qty"`
		Note string `codec:"note"`
	}
	keyedRecV2 struct {
		Lots [][]keyedLotV2 `codec:"lots"`
	}
)

// With a key, elements pair by it: an element replaced in place does not
// inherit the unknown fields of the one it replaced, moved and edited
// elements keep theirs.
func TestMergeSliceByElementKey(t *testing.T) {
	def, err := schema.Extract(reflect.TypeFor[keyedRecV1]())
	if err != nil {
		t.Fatal(err)
	}
	stored := keyedRecV2{Lots: [][]keyedLotV2{{{"A", 1, "a-note"}, {"B", 2, "b-note"}, {"A", 3, "second A"}}}}
	for _, tc := range []struct {
		name  string
		write []keyedLotV1
		want  []keyedLotV2
	}{
		{"replaced in place", []keyedLotV1{{"C", 1}, {"B", 2}, {"A", 3}},
			[]keyedLotV2{{"C", 1, ""}, {"B", 2, "b-note"}, {"A", 3, "a-note"}}},
		{"moved and edited", []keyedLotV1{{"B", 20}, {"A", 10}},
			[]keyedLotV2{{"B", 20, "b-note"}, {"A", 10, "a-note"}}},
		{"duplicate keys in order", []keyedLotV1{{"A", 30}, {"A", 10}, {"A", 0}},
			[]keyedLotV2{{"A", 30, "a-note"}, {"A", 10, "second A"}, {"A", 0, ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := merge(&def, mustEncode(t, stored), mustEncode(t, keyedRecV1{Lots: [][]keyedLotV1{tc.write}}))
			if err != nil {
				t.Fatal(err)
			}
			var got keyedRecV2
			mustDecode(t, out, &got)
			if want := (keyedRecV2{Lots: [][]keyedLotV2{tc.want}}); !reflect.DeepEqual(got, want) {
				t.Errorf("merged %+v\nwant %+v", got, want)
			}
		})
	}
	// A stored element without its key gets paired with nothing.
	old := mustEncode(t, map[string]any{"lots": [][]map[string]any{{{"qty": 1, "note": "keyless"}}}})
	out, err := merge(&def, old, mustEncode(t, keyedRecV1{Lots: [][]keyedLotV1{{{"", 1}}}}))
	if err != nil || strings.Contains(string(out), "keyless") {
		t.Errorf("an element without its key was paired: %x %v", out, err)
	}
	if _, err := schema.Extract(reflect.TypeFor[struct {
		X int `shelf:"id"`
	}]()); err == nil || !strings.Contains(err.Error(), `unknown shelf tag "id"`) {
		t.Errorf("an unknown shelf tag: %v", err)
	}
}
