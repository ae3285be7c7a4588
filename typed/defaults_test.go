package typed

import (
	"reflect"
	"testing"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
)

type (
	dfLeaf struct {
		Unit string `codec:"unit"`
		N    int    `codec:"n"`
	}
	dfMid struct {
		Leaf  dfLeaf `codec:"leaf"`
		Color string `codec:"color"`
	}
	dfOver struct {
		Leaf dfLeaf `codec:"leaf"`
	}
	// DfBase is embedded through a pointer (exported: codec skips an
	// embedded pointer to an unexported type).
	DfBase struct {
		Since string  `codec:"since"`
		Lot   *dfLeaf `codec:"lot"`
	}
	dfRec struct {
		*DfBase
		Note  string                `codec:"note"`
		Mid   dfMid                 `codec:"mid"`
		Ptr   *dfMid                `codec:"ptr"`
		Slice []dfLeaf              `codec:"slice"`
		Map   map[string]*dfLeaf    `codec:"map"`
		MapV  map[int]dfMid         `codec:"mapv"`
		Arr   [2]dfLeaf             `codec:"arr"`
		Over  dfOver                `codec:"over"`
		Deep  []map[string][]dfLeaf `codec:"deep"`
		Nil   *dfMid                `codec:"nil"`
		Gone  *dfMid                `codec:"gone"`
	}
)

func (l *dfLeaf) SetDefaults() { l.Unit = "mm" }
func (m *dfMid) SetDefaults()  { m.Color = "black" }
func (o *dfOver) SetDefaults() { o.Leaf.Unit = "in" } // overrides dfLeaf's: outer runs after inner
func (r *dfRec) SetDefaults()  { r.Note = "root" }

// Structs inside a record get their SetDefaults for the fields the record
// lacks, wherever they are: in place, behind pointers, in slices and maps.
func TestNestedDefaults(t *testing.T) {
	data, err := api.Marshal(map[string]any{
		"mid":   map[string]any{"leaf": map[string]any{"n": 1}},
		"ptr":   map[string]any{"leaf": map[string]any{"n": 2}},
		"slice": []any{map[string]any{"n": 3}, map[string]any{"unit": "cm"}},
		"map":   map[string]any{"a": map[string]any{"n": 4}, "b": nil},
		"mapv":  map[int]any{7: map[string]any{}},
		"arr":   []any{map[string]any{"n": 5}},
		"over":  map[string]any{"leaf": map[string]any{}},
		"deep":  []any{map[string]any{"k": []any{map[string]any{"n": 6}}}},
		"nil":   nil,
		"since": "2020",
		"lot":   map[string]any{"n": 8},
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := &Tree[dfRec]{typ: "dfRec", plan: defaultsFor(reflect.TypeFor[dfRec]())}
	var got dfRec
	if err := tr.decode(&client.Record{Record: api.Record{Data: data}}, &got); err != nil {
		t.Fatal(err)
	}
	leaf := func(n int) dfLeaf { return dfLeaf{Unit: "mm", N: n} }
	want := dfRec{
		DfBase: &DfBase{Since: "2020", Lot: &dfLeaf{Unit: "mm", N: 8}},
		Note:   "root",
		Mid:    dfMid{Leaf: leaf(1), Color: "black"},
		Ptr:    &dfMid{Leaf: leaf(2), Color: "black"},
		Slice:  []dfLeaf{leaf(3), {Unit: "cm"}},
		Map:    map[string]*dfLeaf{"a": {Unit: "mm", N: 4}, "b": nil},
		MapV:   map[int]dfMid{7: {Leaf: leaf(0), Color: "black"}},
		Arr:    [2]dfLeaf{leaf(5), leaf(0)},
		Over:   dfOver{Leaf: dfLeaf{Unit: "in"}},
		Deep:   []map[string][]dfLeaf{{"k": {leaf(6)}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded\n %+v\nwant\n %+v", got, want)
	}
	// A record lacking the nested structs altogether: those held in place
	// get their defaults, nothing is created.
	got = dfRec{}
	if err := tr.decode(&client.Record{Record: api.Record{Data: []byte{0xa0}}}, &got); err != nil {
		t.Fatal(err)
	}
	want = dfRec{Note: "root", Mid: dfMid{Leaf: leaf(0), Color: "black"}, Arr: [2]dfLeaf{leaf(0), leaf(0)}, Over: dfOver{Leaf: dfLeaf{Unit: "in"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded an empty record as\n %+v\nwant\n %+v", got, want)
	}
	// A value already decoded into is reset first.
	if err := tr.decode(&client.Record{Record: api.Record{Data: []byte{0xa0}}}, &got); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("decoded again: %+v %v", got, err)
	}
}
