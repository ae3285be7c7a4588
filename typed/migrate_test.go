package typed_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/shelfdb/shelf/internal/testserver"
	"github.com/shelfdb/shelf/typed"
)

type TitledV1 struct {
	Title string `codec:"title"`
	Qty   int    `codec:"qty"`
}

type NamedV2 struct {
	Name string `codec:"name"`
	Qty  int    `codec:"qty"`
}

// Migrate rewrites old records through a step, skips what others hold and
// what is released, reports both, and picks up what is left when run again.
func TestMigrate(t *testing.T) {
	s := testserver.Start(t)
	ctx := ctxT(t)
	oldDB := testserver.Open(t, t.TempDir(), s.Addr)
	other := testserver.Open(t, t.TempDir(), s.Addr)
	newDB := testserver.Open(t, t.TempDir(), s.Addr)
	v1 := mustOpen[TitledV1](t, oldDB, "parts")
	var keys []typed.Key[TitledV1]
	for _, title := range []string{"a", "b", "c", "d", "e"} {
		k, err := v1.Create(ctx, TitledV1{Title: title, Qty: len(keys)})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if err := v1.Checkout(ctx, keys[3]); err != nil {
		t.Fatal(err)
	}
	if err := v1.Release(ctx, keys[3]); err != nil {
		t.Fatal(err)
	}
	held := mustOpen[TitledV1](t, other, "parts")
	if err := other.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if err := held.Checkout(ctx, keys[4]); err != nil {
		t.Fatal(err)
	}

	v2 := mustOpen[NamedV2](t, newDB, "parts")
	if err := newDB.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	steps := map[uint32]func(map[string]any) error{
		1: func(f map[string]any) error {
			if f["title"] == "c" {
				f["qty"] = "many" // does not fit NamedV2: reported, not written
			}
			f["name"] = f["title"]
			delete(f, "title")
			return nil
		},
	}
	var progress []int
	rep, err := v2.Migrate(ctx, typed.MigrateOptions{Steps: steps, Progress: func(done, total int) {
		if total != 5 {
			t.Errorf("progress total %d", total)
		}
		progress = append(progress, done)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total != 5 || rep.Migrated != 2 || len(rep.Released) != 1 || len(rep.Borrowed) != 1 || len(rep.Failed) != 1 || len(progress) != 5 {
		t.Fatalf("report %+v, progress %v", rep, progress)
	}
	if rep.Borrowed[0].Client != other.ClientID() || rep.Released[0] != keys[3].Untyped() || rep.Failed[0].Key != keys[2].Untyped() ||
		!strings.Contains(rep.Failed[0].Err.Error(), "does not fit") {
		t.Fatalf("report %+v", rep)
	}
	if r, err := v1.Record(keys[2]); err != nil || r.Schema != 1 || r.Borrow != nil {
		t.Fatalf("a record that failed to migrate: %+v %v", r, err)
	}
	for i, want := range []string{"a", "b"} {
		r, err := v2.Record(typed.KeyOf[NamedV2](keys[i].Untyped()))
		if err != nil || r.Value.Name != want || r.Value.Qty != i || r.Schema != v2.Version() || r.Borrow != nil {
			t.Fatalf("migrated record %d: %+v %v", i, r, err)
		}
	}

	// Run again once the borrow is returned: only what is left is handled.
	if err := held.Return(ctx, keys[4]); err != nil {
		t.Fatal(err)
	}
	if err := newDB.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	steps[1] = func(f map[string]any) error { f["name"] = f["title"]; delete(f, "title"); return nil }
	rep, err = v2.Migrate(ctx, typed.MigrateOptions{Steps: steps})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total != 3 || rep.Migrated != 2 || len(rep.Released) != 1 || len(rep.Borrowed) != 0 || len(rep.Failed) != 0 {
		t.Fatalf("second run: %+v", rep)
	}
	if p, err := v2.Get(typed.KeyOf[NamedV2](keys[4].Untyped())); err != nil || p.Name != "e" {
		t.Fatalf("migrated after return: %+v %v", p, err)
	}
}

// A migration cancelled inside a step returns the record it borrowed, and
// a second run finishes the job, leaving nothing borrowed.
func TestMigrateCancelledInStepReturnsBorrow(t *testing.T) {
	s := testserver.Start(t)
	ctx := ctxT(t)
	db := testserver.Open(t, t.TempDir(), s.Addr)
	v1 := mustOpen[TitledV1](t, db, "parts")
	for _, title := range []string{"a", "b", "c"} {
		if _, err := v1.Create(ctx, TitledV1{Title: title}); err != nil {
			t.Fatal(err)
		}
	}
	v2 := mustOpen[NamedV2](t, db, "parts")
	rename := func(f map[string]any) error { f["name"] = f["title"]; delete(f, "title"); return nil }
	// Each record's step runs twice: checked before the borrow, then run
	// again under it. Cancel during the second record's run under borrow.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	calls := 0
	steps := map[uint32]func(map[string]any) error{1: func(f map[string]any) error {
		if calls++; calls == 4 {
			cancel()
		}
		return rename(f)
	}}
	if _, err := v2.Migrate(runCtx, typed.MigrateOptions{Steps: steps}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled migration: %v", err)
	}
	if bs, err := db.Borrowed(); err != nil || len(bs) != 0 {
		t.Fatalf("left borrowed after a cancelled migration: %+v (%v)", bs, err)
	}
	rep, err := v2.Migrate(ctx, typed.MigrateOptions{Steps: map[uint32]func(map[string]any) error{1: rename}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total == 0 || rep.Migrated != rep.Total || len(rep.Failed) != 0 {
		t.Fatalf("resumed migration: %+v", rep)
	}
	for k, v := range v2.All() {
		if r, err := v2.Record(k); err != nil || r.Schema != v2.Version() || v.Name == "" {
			t.Fatalf("after the resumed migration: %+v (%v)", r, err)
		}
	}
	if bs, err := db.Borrowed(); err != nil || len(bs) != 0 {
		t.Fatalf("left borrowed after the resumed migration: %+v (%v)", bs, err)
	}
}
