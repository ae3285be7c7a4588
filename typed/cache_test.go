package typed_test

import (
	"testing"

	"github.com/shelfdb/shelf/internal/testserver"
	"github.com/shelfdb/shelf/typed"
)

// cachedPart has the kinds of values a decode could share with the
// bytes it decodes: a byte string, a slice, a map, a pointer.
type cachedPart struct {
	Name  string           `codec:"name"`
	Blob  []byte           `codec:"blob"`
	Tags  []string         `codec:"tags"`
	Stock map[string]int64 `codec:"stock"`
	Dims  *DimsV1          `codec:"dims"`
}

// TestGetThroughTheReadCache reads typed records that the client's read
// cache answers: each Get decodes a value of the caller's own (changing
// it changes no later read), and an update is read at once.
func TestGetThroughTheReadCache(t *testing.T) {
	s := testserver.Start(t)
	db := testserver.Open(t, t.TempDir(), s.Addr)
	ctx := ctxT(t)
	parts, err := typed.Open[cachedPart](ctx, db, "parts")
	if err != nil {
		t.Fatal(err)
	}
	want := cachedPart{Name: "R1", Blob: []byte{1, 2, 3}, Tags: []string{"a", "b"}, Stock: map[string]int64{"A1": 5}, Dims: &DimsV1{Width: 1, Height: 2}}
	k, err := parts.Create(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	check := func(want cachedPart) {
		t.Helper()
		for range 3 {
			p, err := parts.Get(k)
			if err != nil || p.Name != want.Name || string(p.Blob) != string(want.Blob) || len(p.Tags) != len(want.Tags) ||
				p.Tags[0] != want.Tags[0] || p.Stock["A1"] != want.Stock["A1"] || p.Dims == nil || *p.Dims != *want.Dims {
				t.Fatalf("get: %+v %v, want %+v", p, err, want)
			}
			// The caller owns what Get returned.
			p.Blob[0], p.Tags[0], p.Stock["A1"], p.Dims.Width = 9, "changed", 99, 42
			r, err := parts.Record(k)
			if err != nil || r.Value.Blob[0] != want.Blob[0] || r.Value.Tags[0] != want.Tags[0] {
				t.Fatalf("record after changing a returned value: %+v %v", r.Value, err)
			}
			r.Value.Blob[0] = 7
		}
	}
	check(want)
	if err := parts.Checkout(ctx, k); err != nil {
		t.Fatal(err)
	}
	next := cachedPart{Name: "R2", Blob: []byte{4}, Tags: []string{"c"}, Stock: map[string]int64{"A1": 6}, Dims: &DimsV1{Width: 3}}
	if err := parts.Update(ctx, k, func(p *cachedPart) error { *p = next; return nil }); err != nil {
		t.Fatal(err)
	}
	check(next)
	if st := db.ReadCacheStats(); st.Hits == 0 {
		t.Fatalf("cache %+v: the reads did not hit", st)
	}
}
