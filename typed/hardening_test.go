package typed_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/schema"
	"github.com/shelfdb/shelf/internal/testserver"
	"github.com/shelfdb/shelf/typed"
)

// Two Go fields under one key: codec would store only the first.
type TwoUnderOne struct {
	Qty   int    `codec:"qty"`
	Other string `codec:"qty"`
}

type embeddedID struct {
	ID string `codec:"id"`
}

// The embedded ID is shadowed by the shallower one and never stored.
type ShadowsEmbedded struct {
	embeddedID
	ID int `codec:"id"`
}

func TestOpenRefusesTwoFieldsUnderOneKey(t *testing.T) {
	s := testserver.Start(t)
	db := testserver.Open(t, t.TempDir(), s.Addr)
	_, err := typed.Open[TwoUnderOne](ctxT(t), db, "dups")
	if !errors.Is(err, typed.ErrDuplicateKey) {
		t.Fatalf("Open = %v, want ErrDuplicateKey", err)
	}
	for _, want := range []string{"typed_test.TwoUnderOne", "Qty", "Other", `"qty"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	_, err = typed.Open[ShadowsEmbedded](ctxT(t), db, "dups")
	if !errors.Is(err, typed.ErrDuplicateKey) || !strings.Contains(err.Error(), "embeddedID.ID and ID") {
		t.Fatalf("Open = %v, want ErrDuplicateKey naming embeddedID.ID and ID", err)
	}
	if ss, err := db.Tree("dups").Schemas(); len(ss) != 0 {
		t.Errorf("schemas registered: %v (%v)", ss, err)
	}
}

// LotV1 and PartV1 in other Go clothes: fields and types renamed, same
// keys and stored types.
type Batch struct {
	ID    string `codec:"code"`
	Count int32  `codec:"qty"`
}
type Size struct {
	X float64 `codec:"w"`
	Y float64 `codec:"h"`
}
type Bin struct {
	N int32 `codec:"count"`
}
type Component struct {
	Title   string         `codec:"name"`
	Amount  int32          `codec:"qty"`
	Size    Size           `codec:"dims"`
	Batches []Batch        `codec:"lots"`
	Bins    map[string]Bin `codec:"stock"`
}

// The same stored shape is the same version: whatever the Go names, and
// also when the version was registered by older code, whose definitions
// held the Go names.
func TestSameShapeSameVersion(t *testing.T) {
	s := testserver.Start(t)
	ctx := ctxT(t)
	db := testserver.Open(t, t.TempDir(), s.Addr)
	other := testserver.Open(t, t.TempDir(), s.Addr)
	v1 := mustOpen[PartV1](t, db, "parts")
	if v := mustOpen[Component](t, other, "parts").Version(); v != v1.Version() {
		t.Errorf("renamed Go fields and types: version %d, want %d", v, v1.Version())
	}

	// A definition as older code registered it: Go names and package paths.
	def, err := schema.Extract(reflect.TypeFor[PartV1]())
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := api.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(legacy), "typed_test.PartV1") {
		t.Fatal("not a definition with Go names")
	}
	v, err := db.Tree("legacy").RegisterSchema(ctx, legacy)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustOpen[Component](t, other, "legacy").Version(); got != v {
		t.Errorf("a shape registered by older code: version %d, want %d", got, v)
	}
	if got := mustOpen[PartV1](t, db, "legacy").Version(); got != v {
		t.Errorf("the type itself, registered by older code: version %d, want %d", got, v)
	}
	ss, err := other.Tree("legacy").Schemas()
	if err != nil || len(ss) != 1 {
		t.Errorf("%d schemas of legacy (%v), want one", len(ss), err)
	}
}
