package typed

import (
	"context"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/testserver"
)

type titled struct {
	Title string `codec:"title"`
}

type named struct {
	Name string `codec:"name"`
}

// A run that died between a record's write and its return left the
// record migrated and borrowed: the next run returns it, but not a borrow
// the application holds.
func TestMigrateReturnsLeftoverBorrows(t *testing.T) {
	s := testserver.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := testserver.Open(t, t.TempDir(), s.Addr)
	v1, err := Open[titled](ctx, db, "parts")
	if err != nil {
		t.Fatal(err)
	}
	var keys []Key[titled]
	for _, title := range []string{"left", "mine", "old"} {
		k, err := v1.Create(ctx, titled{Title: title})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	v2, err := Open[named](ctx, db, "parts")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := api.Marshal(named{Name: "x"})
	// keys[0]: what an interrupted run leaves; keys[1]: the application's.
	for i, ttl := range []time.Duration{migrateBorrow, 0} {
		if err := v2.t.Checkout(ctx, keys[i].Untyped(), ttl); err != nil {
			t.Fatal(err)
		}
		if _, err := v2.t.Update(ctx, keys[i].Untyped(), v2.Version(), data); err != nil {
			t.Fatal(err)
		}
	}
	// keys[2]: still old, borrowed by an interrupted run before its write.
	if err := v2.t.Checkout(ctx, keys[2].Untyped(), migrateBorrow); err != nil {
		t.Fatal(err)
	}
	rep, err := v2.Migrate(ctx, MigrateOptions{Steps: map[uint32]func(map[string]any) error{1: func(f map[string]any) error {
		f["name"] = f["title"]
		delete(f, "title")
		return nil
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total != 1 || rep.Migrated != 1 || len(rep.Returned) != 1 || rep.Returned[0] != keys[0].Untyped() {
		t.Fatalf("report %+v", rep)
	}
	bs, err := db.Borrowed()
	if err != nil || len(bs) != 1 || bs[0].Key != keys[1].Untyped() {
		t.Fatalf("borrowed after the run: %+v (%v), want only %s", bs, err, keys[1])
	}
	if r, err := v2.Record(KeyOf[named](keys[2].Untyped())); err != nil || r.Value.Name != "old" || r.Schema != v2.Version() {
		t.Fatalf("record borrowed before its write: %+v (%v)", r, err)
	}
}
