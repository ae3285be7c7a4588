package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
	"github.com/shelfdb/shelf/internal/schema"
	"github.com/shelfdb/shelf/internal/testserver"
)

type viewDims struct {
	W float64 `codec:"w"`
	H float64 `codec:"h"`
}

type viewBin struct {
	Count uint16 `codec:"count"`
}

// viewPart is version 1 of the record type; viewPartV2 adds a field.
type viewPart struct {
	Name  string          `codec:"name"`
	Qty   int32           `codec:"qty"`
	Dims  viewDims        `codec:"dims"`
	Stock map[int]viewBin `codec:"stock"`
	Tags  []string        `codec:"tags"`
	Blob  []byte          `codec:"blob"`
}

type viewPartV2 struct {
	viewPart
	Color string `json:"color"`
}

// registerType registers T's schema for tree and returns its version.
func registerType[T any](t *testing.T, ctx context.Context, tree *client.Tree) (uint32, []byte) {
	t.Helper()
	def, err := schema.Extract(reflect.TypeFor[T]())
	if err != nil {
		t.Fatal(err)
	}
	enc, err := api.Marshal(def) // with its Go names, as older code registered definitions
	if err != nil {
		t.Fatal(err)
	}
	v, err := tree.RegisterSchema(ctx, enc)
	if err != nil {
		t.Fatalf("register %T: %v", *new(T), err)
	}
	return v, enc
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := api.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFieldsOfTypedRecords(t *testing.T) {
	s := testserver.Start(t)
	db := testserver.Open(t, t.TempDir(), s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	parts := db.Tree("parts")
	v1, def1 := registerType[viewPart](t, ctx, parts)
	v2, def2 := registerType[viewPartV2](t, ctx, parts)
	if v1 != 1 || v2 != 2 {
		t.Fatalf("versions %d %d", v1, v2)
	}

	p := viewPart{Name: "R1", Qty: -3, Dims: viewDims{W: 1.5, H: 2}, Stock: map[int]viewBin{7: {Count: 4}, -1: {}},
		Tags: []string{"smd"}, Blob: []byte{1, 2}}
	res, err := parts.Create(ctx, v1, marshal(t, p))
	if err != nil {
		t.Fatal(err)
	}
	fields, sch, err := parts.Fields(res.Key)
	if err != nil {
		t.Fatalf("fields: %v", err)
	}
	want := map[string]any{
		"name": "R1", "qty": int64(-3),
		"dims":  map[string]any{"w": 1.5, "h": 2.0},
		"stock": map[string]any{"7": map[string]any{"count": uint64(4)}, "-1": map[string]any{"count": uint64(0)}},
		"tags":  []any{"smd"}, "blob": []byte{1, 2},
	}
	if !reflect.DeepEqual(fields, want) {
		t.Fatalf("fields\n%#v\nwant\n%#v", fields, want)
	}
	if sch.Tree != "parts" || sch.Version != 1 || sch.Hash != schema.Hash(def1) || string(sch.Definition) != string(def1) || sch.Registered.IsZero() {
		t.Fatalf("schema %+v", sch)
	}
	// The schema travels as JSON with its definition decoded.
	b, err := json.Marshal(sch)
	if err != nil {
		t.Fatal(err)
	}
	var js struct {
		Version    uint32
		Definition struct {
			Root  string
			Types map[string]struct{ Fields []struct{ Name, Go string } }
		}
	}
	if err := json.Unmarshal(b, &js); err != nil {
		t.Fatal(err)
	}
	root := js.Definition.Types[js.Definition.Root]
	if js.Version != 1 || !strings.HasSuffix(js.Definition.Root, ".viewPart") || len(root.Fields) != 6 ||
		root.Fields[0].Name != "name" || root.Fields[0].Go != "Name" {
		t.Fatalf("schema JSON %s", b)
	}
	if b, err := json.Marshal(fields); err != nil || !strings.Contains(string(b), `"stock":{"-1":{"count":0},"7":{"count":4}}`) {
		t.Fatalf("fields JSON %s %v", b, err)
	}

	// Revision 2, written with version 2: each revision has its schema,
	// and revision 0 asks for the latest.
	if err := parts.Checkout(ctx, res.Key, 0); err != nil {
		t.Fatal(err)
	}
	if err := parts.Release(ctx, res.Key); err != nil {
		t.Fatal(err)
	}
	k2, err := parts.Revise(ctx, res.Key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parts.Update(ctx, k2, v2, marshal(t, viewPartV2{viewPart: viewPart{Name: "R1"}, Color: "red"})); err != nil {
		t.Fatal(err)
	}
	fields, sch, err = parts.Fields(api.Key{ID: res.Key.ID})
	if err != nil || fields["color"] != "red" || fields["name"] != "R1" || sch.Version != 2 || sch.Hash != schema.Hash(def2) {
		t.Fatalf("latest: %v %v %+v", fields, err, sch)
	}
	if fields, sch, err = parts.Fields(res.Key); err != nil || fields["color"] != nil || sch.Version != 1 {
		t.Fatalf("revision 1: %v %v %+v", fields, err, sch)
	}
}

func TestFieldsWithoutSchemaAndErrors(t *testing.T) {
	s := testserver.Start(t)
	db := testserver.Open(t, t.TempDir(), s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tools := db.Tree("tools")
	res, err := tools.Create(ctx, 0, marshal(t, map[string]any{"name": "T1", "n": 2}))
	if err != nil {
		t.Fatal(err)
	}
	fields, sch, err := tools.Fields(res.Key)
	if err != nil || !reflect.DeepEqual(fields, map[string]any{"name": "T1", "n": uint64(2)}) {
		t.Fatalf("schemaless record: %#v %v", fields, err)
	}
	if !reflect.DeepEqual(sch, api.Schema{}) {
		t.Fatalf("schemaless record has schema %+v", sch)
	}

	if _, _, err := tools.Fields(api.Key{ID: 999}); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("missing record: %v", err)
	}
	if _, _, err := db.Tree("nope").Fields(api.Key{ID: 1, Rev: 1}); !errors.Is(err, api.ErrTreeNotFound) {
		t.Fatalf("missing tree: %v", err)
	}

	// Not a map: a string value.
	res, err = tools.Create(ctx, 0, marshal(t, "just a string"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = tools.Fields(res.Key)
	if want := "record tools/" + res.Key.String() + ": value is a string, not a map of fields"; err == nil || err.Error() != want {
		t.Fatalf("string value: %v, want %q", err, want)
	}

	// Well-formed CBOR that does not decode to plain values (a map keyed
	// by an array) is refused before it is queued: what the cluster
	// stores can always be read.
	if _, err := tools.Create(ctx, 0, []byte{0xa1, 0x81, 0x01, 0x01}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("map keyed by an array: %v, want %v", err, api.ErrInvalid)
	}
}

// TestReadsAreTheirOwn checks what a reader keeps from local reads, which
// reuse their record internally: Get's result stays as it was whatever is
// read after it, a View inside another View leaves the outer record
// alone, ViewValue gives the value with its key and schema, and readers
// in several goroutines each get their own record (run with -race).
func TestReadsAreTheirOwn(t *testing.T) {
	s := testserver.Start(t)
	db := testserver.Open(t, t.TempDir(), s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	parts := db.Tree("parts")
	v1, _ := registerType[viewPart](t, ctx, parts)
	var keys []api.Key
	for _, name := range []string{"R1", "C2"} {
		res, err := parts.Create(ctx, v1, marshal(t, viewPart{Name: name, Qty: int32(len(keys) + 1)}))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, res.Key)
	}
	if err := parts.Checkout(ctx, keys[0], 0); err != nil {
		t.Fatal(err)
	}
	name := func(data []byte) string {
		var p viewPart
		if err := api.Unmarshal(data, &p); err != nil {
			t.Error(err) // also called from the readers' goroutines
		}
		return p.Name
	}

	first, err := parts.Get(keys[0])
	if err != nil || first.Borrow == nil || first.CreatedBy != db.ClientID() || name(first.Data) != "R1" {
		t.Fatalf("get: %+v %v", first, err)
	}
	kept := first
	kept.Data = slices.Clone(first.Data)
	kept.Borrow = new(api.Borrow)
	*kept.Borrow = *first.Borrow
	for range 3 {
		if err := parts.View(keys[1], func(r *client.Record) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := parts.Get(keys[1]); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(first, kept) {
		t.Fatalf("a Get's record changed under later reads: %+v, was %+v", first, kept)
	}

	err = parts.View(keys[0], func(outer *client.Record) error {
		before := *outer
		if err := parts.View(keys[1], func(inner *client.Record) error {
			if inner == outer || inner.Key != keys[1] || name(inner.Data) != "C2" {
				t.Errorf("inner view: %+v", inner)
			}
			return nil
		}); err != nil {
			return err
		}
		if !reflect.DeepEqual(*outer, before) || name(outer.Data) != "R1" {
			t.Errorf("outer record changed by the inner view: %+v, was %+v", *outer, before)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	for _, k := range []api.Key{keys[0], {ID: keys[0].ID}} {
		err = parts.ViewValue(k, func(r *client.Record) error {
			if r.Tree != "parts" || r.Key != keys[0] || r.Schema != v1 || name(r.Data) != "R1" || r.Pending {
				t.Errorf("ViewValue %s: %+v", k, r)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				k, want := keys[(g+i)%2], []string{"R1", "C2"}[(g+i)%2]
				read := parts.View
				if i%3 == 0 {
					read = parts.ViewValue
				}
				err := read(k, func(r *client.Record) error {
					if got := name(r.Data); r.Key != k || got != want {
						return fmt.Errorf("read %s: got %s %q", k, r.Key, got)
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
