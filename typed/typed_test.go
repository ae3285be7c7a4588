package typed_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/internal/testserver"
	"github.com/shelfdb/shelf/typed"
)

// Version 1 of a part, as an older build of an application has it.
type DimsV1 struct {
	Width  float64 `codec:"w"`
	Height float64 `codec:"h"`
}
type LotV1 struct {
	Code string `codec:"code"`
	Qty  int32  `codec:"qty"`
}
type BinV1 struct {
	Count int32 `codec:"count"`
}
type PartV1 struct {
	Name  string           `codec:"name"`
	Qty   int32            `codec:"qty"`
	Dims  DimsV1           `codec:"dims"`
	Lots  []LotV1          `codec:"lots"`
	Stock map[string]BinV1 `codec:"stock"`
}

// Version 2: new fields at every level, Qty widened, a Go field renamed
// under the same key, fields in another order.
type DimsV2 struct {
	Depth  float64 `codec:"d"`
	Width  float64 `codec:"w"`
	Height float64 `codec:"h"`
}
type LotV2 struct {
	Code   string    `codec:"code"`
	Amount int64     `codec:"qty"`
	Note   string    `codec:"note"`
	Made   time.Time `codec:"made"`
}
type BinV2 struct {
	Shelf string `codec:"shelf"`
	Count int64  `codec:"count"`
}
type PartV2 struct {
	Color string              `codec:"color"`
	Name  string              `codec:"name"`
	Qty   int64               `codec:"qty"`
	Dims  *DimsV2             `codec:"dims"`
	Lots  []LotV2             `codec:"lots"`
	Stock map[string]BinV2    `codec:"stock"`
	Tags  []string            `codec:"tags"`
	Alt   []typed.Key[PartV2] `codec:"alt"`
}

// SetDefaults gives records written before Color existed a color.
func (p *PartV2) SetDefaults() { p.Color = "black" }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustOpen[T any](t *testing.T, db *client.DB, tree string) *typed.Tree[T] {
	t.Helper()
	tr, err := typed.Open[T](ctxT(t), db, tree)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestOldCodeKeepsNewFields(t *testing.T) {
	s := testserver.Start(t)
	ctx := ctxT(t)
	oldDB := testserver.Open(t, t.TempDir(), s.Addr)
	newDB := testserver.Open(t, t.TempDir(), s.Addr)
	old := mustOpen[PartV1](t, oldDB, "parts")
	cur := mustOpen[PartV2](t, newDB, "parts")
	if old.Version() != 1 || cur.Version() != 2 {
		t.Fatalf("versions: old %d, new %d; want 1, 2", old.Version(), cur.Version())
	}
	// Old code opening again (another run) gets its version back.
	if again := mustOpen[PartV1](t, newDB, "parts"); again.Version() != 1 {
		t.Fatalf("v1 registered again as version %d", again.Version())
	}

	made := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	orig := PartV2{Color: "red", Name: "R1", Qty: 1 << 20, Dims: &DimsV2{Depth: 3, Width: 1, Height: 2},
		Lots:  []LotV2{{Code: "A", Amount: 1, Note: "first", Made: made}, {Code: "B", Amount: 2, Note: "second", Made: made.Add(time.Hour)}},
		Stock: map[string]BinV2{"main": {Shelf: "S1", Count: 5}, "back": {Shelf: "S9", Count: 7}},
		Tags:  []string{"smd", "0603"}, Alt: []typed.Key[PartV2]{{ID: 7, Rev: 1}}}
	key, err := cur.Create(ctx, orig)
	if err != nil {
		t.Fatal(err)
	}
	if err := oldDB.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}

	// Old code reads the new record: the fields it knows.
	okey := typed.KeyOf[PartV1](key.Untyped())
	p1, err := old.Get(okey)
	if err != nil {
		t.Fatal(err)
	}
	if p1.Name != "R1" || p1.Qty != 1<<20 || p1.Dims.Width != 1 || len(p1.Lots) != 2 || p1.Stock["back"].Count != 7 {
		t.Fatalf("v1 view of a v2 record: %+v", p1)
	}
	// ...and edits it: a nested field, a lot (moved to the front), a bin.
	if err := old.Checkout(ctx, okey); err != nil {
		t.Fatal(err)
	}
	err = old.Update(ctx, okey, func(p *PartV1) error {
		p.Name = "R1-b"
		p.Dims.Height = 20
		p.Lots[1].Qty = 22
		p.Lots[0], p.Lots[1] = p.Lots[1], p.Lots[0]
		b := p.Stock["main"]
		b.Count = 50
		p.Stock["main"] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Return(ctx, okey); err != nil {
		t.Fatal(err)
	}
	if err := newDB.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	rec, err := cur.Record(key)
	if err != nil {
		t.Fatal(err)
	}
	want := orig
	want.Name = "R1-b"
	want.Dims = &DimsV2{Depth: 3, Width: 1, Height: 20}
	want.Lots = []LotV2{{Code: "B", Amount: 22, Note: "second", Made: made.Add(time.Hour)}, orig.Lots[0]}
	want.Stock = map[string]BinV2{"main": {Shelf: "S1", Count: 50}, "back": {Shelf: "S9", Count: 7}}
	if !reflect.DeepEqual(rec.Value, want) {
		t.Fatalf("after an update by v1 code, v2 reads\n%+v\nwant\n%+v", rec.Value, want)
	}
	if rec.Schema != 1 {
		t.Fatalf("record written by v1 code carries schema version %d", rec.Schema)
	}

	// New code reads a record old code wrote: new fields zero or defaulted.
	k1, err := old.Create(ctx, PartV1{Name: "C1", Qty: 3, Lots: []LotV1{{Code: "X", Qty: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := newDB.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	p2, err := cur.Get(typed.KeyOf[PartV2](k1.Untyped()))
	if err != nil {
		t.Fatal(err)
	}
	if p2.Name != "C1" || p2.Qty != 3 || p2.Color != "black" || p2.Tags != nil || len(p2.Lots) != 1 || p2.Lots[0].Amount != 1 || p2.Lots[0].Note != "" {
		t.Fatalf("v2 view of a v1 record: %+v", p2)
	}
}

type PartNarrow struct {
	Name string `codec:"name"`
	Qty  int16  `codec:"qty"`
}
type PartRetyped struct {
	Name string `codec:"name"`
	Qty  string `codec:"qty"`
}
type ColorV1 struct {
	Name  string `codec:"name"`
	Color string `codec:"color"`
}
type ColorV2 struct {
	Name string `codec:"name"`
}
type ColorV3 struct {
	Name  string `codec:"name"`
	Color int    `codec:"color"`
}

func TestIncompatibleChangesAreRefused(t *testing.T) {
	s := testserver.Start(t)
	db := testserver.Open(t, t.TempDir(), s.Addr)
	ctx := ctxT(t)
	mustOpen[PartV1](t, db, "parts")
	mustOpen[PartV2](t, db, "parts")
	for _, tc := range []struct {
		open func() error
		want []string
	}{
		{func() error { _, err := typed.Open[PartRetyped](ctx, db, "parts"); return err }, []string{`"parts"`, `"qty"`, "int64", "string"}},
		{func() error { _, err := typed.Open[PartNarrow](ctx, db, "parts"); return err }, []string{`"parts"`, `"qty"`, "int64", "int16"}},
	} {
		err := tc.open()
		if !errors.Is(err, api.ErrIncompatible) {
			t.Fatalf("incompatible change: %v", err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not name %s", err, w)
			}
		}
	}
	mustOpen[ColorV1](t, db, "colors")
	mustOpen[ColorV2](t, db, "colors") // dropping a field is fine
	_, err := typed.Open[ColorV3](ctx, db, "colors")
	if !errors.Is(err, api.ErrIncompatible) || !strings.Contains(err.Error(), `"color"`) || !strings.Contains(err.Error(), "dropped") {
		t.Fatalf("reusing a dropped key: %v", err)
	}
	// The refused versions were not registered.
	ss, err := db.Tree("parts").Schemas()
	if err != nil || len(ss) != 2 {
		t.Fatalf("parts schemas after refusals: %d %v", len(ss), err)
	}
}

func TestLifecycle(t *testing.T) {
	s := testserver.Start(t)
	ctx := ctxT(t)
	a := testserver.Open(t, t.TempDir(), s.Addr)
	b := testserver.Open(t, t.TempDir(), s.Addr)
	pa := mustOpen[PartV2](t, a, "parts")
	pb := mustOpen[PartV2](t, b, "parts")
	if err := b.WaitSynced(ctx); err != nil { // a's schema registration is no news then
		t.Fatal(err)
	}
	evs := pb.Events(ctx)

	key, err := pa.Create(ctx, PartV2{Name: "R1", Qty: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := pa.Update(ctx, key, func(p *PartV2) error { p.Qty++; return nil }); !errors.Is(err, client.ErrNotBorrowed) {
		t.Fatalf("update without borrow: %v", err)
	}
	if err := pa.Checkout(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := pb.Checkout(ctx, key); !errors.Is(err, client.ErrBorrowed) {
		t.Fatalf("second checkout: %v", err)
	}
	boom := errors.New("boom")
	if err := pa.Update(ctx, key, func(p *PartV2) error { p.Qty = 99; return boom }); !errors.Is(err, boom) {
		t.Fatalf("update whose fn fails: %v", err)
	}
	if err := pa.Update(ctx, key, func(p *PartV2) error { p.Qty++; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := pa.Release(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := pa.Checkout(ctx, key); !errors.Is(err, client.ErrReleased) {
		t.Fatalf("checkout of a released record: %v", err)
	}
	if err := pa.SetState(ctx, key, 3); err != nil {
		t.Fatal(err)
	}
	next, err := pa.Revise(ctx, key)
	if err != nil || next.ID != key.ID || next.Rev != key.Rev+1 {
		t.Fatalf("revise: %v %v", next, err)
	}
	if err := pa.Update(ctx, next, func(p *PartV2) error { p.Name = "R1 rev 2"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := pa.Delete(ctx, next); err != nil {
		t.Fatal(err)
	}
	r, err := pa.Record(key)
	if err != nil || r.Value.Qty != 2 || !r.Released || r.State != 3 || r.Schema != pa.Version() {
		t.Fatalf("released record: %+v %v", r, err)
	}
	if _, err := pa.Get(next); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("deleted draft: %v", err)
	}
	var all []typed.Key[PartV2]
	for k, p := range pa.All() {
		if p.Name != "R1" {
			t.Errorf("All: %v %+v", k, p)
		}
		all = append(all, k)
	}
	if !slices.Equal(all, []typed.Key[PartV2]{key}) {
		t.Fatalf("All: %v", all)
	}

	want := []typed.Event[PartV2]{}
	for _, typ := range []api.EventType{typed.Created, typed.Borrowed, typed.Updated, typed.Released, typed.Returned,
		typed.StateChanged, typed.Created, typed.Borrowed, typed.Updated, typed.Deleted} {
		want = append(want, typed.Event[PartV2]{Event: client.Event{Event: api.Event{Type: typ}}})
	}
	for i, w := range want {
		select {
		case e := <-evs:
			if e.Type != w.Type || (e.Key != key && e.Key != next) {
				t.Fatalf("event %d: %s of %v, want %s", i, e.Type, e.Key, w.Type)
			}
		case <-ctx.Done():
			t.Fatalf("event %d (%s) did not arrive", i, w.Type)
		}
	}
}

// An offline client creates from its granted range; the create reads as
// pending and reaches the cluster when it is back.
func TestOfflineCreate(t *testing.T) {
	s := testserver.Start(t)
	ctx := ctxT(t)
	a := testserver.Open(t, t.TempDir(), s.Addr)
	parts := mustOpen[PartV2](t, a, "parts")
	testserver.WaitFor(t, "ids in reserve", func() bool { n, err := a.IDsAvailable(); return err == nil && n > 0 })
	s.Stop()
	testserver.WaitFor(t, "client offline", func() bool { return !a.Online() })
	// The schema is known locally: opening works offline.
	again, err := typed.Open[PartV2](ctx, a, "parts")
	if err != nil || again.Version() != parts.Version() {
		t.Fatalf("offline open: %v", err)
	}
	if _, err := typed.Open[ColorV1](ctx, a, "colors"); !errors.Is(err, client.ErrOffline) {
		t.Fatalf("offline open of a new schema: %v", err)
	}
	key, err := parts.Create(ctx, PartV2{Name: "offline"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := parts.Record(key); err != nil || !r.Pending || r.Value.Name != "offline" {
		t.Fatalf("pending create: %+v %v", r, err)
	}
	// Get and View (the value-only read) see it too, by its key and as
	// the latest revision of its id.
	for _, k := range []typed.Key[PartV2]{key, {ID: key.ID}} {
		if v, err := parts.Get(k); err != nil || v.Name != "offline" {
			t.Fatalf("Get %v of the pending create: %+v %v", k, v, err)
		}
		var name string
		if err := parts.View(k, func(v *PartV2) error { name = v.Name; return nil }); err != nil || name != "offline" {
			t.Fatalf("View %v of the pending create: %q %v", k, name, err)
		}
	}
	s.Restart()
	testserver.WaitFor(t, "create to reach the cluster", func() bool {
		r, err := parts.Record(key)
		return err == nil && !r.Pending
	})
}

// Compile-time safety: a Key[Part] is not a Key[Board].
func TestKeyOfAnotherTreeDoesNotCompile(t *testing.T) {
	goBin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Fatal("no go command to compile with")
		}
	}
	cmd := exec.Command(goBin, "vet", "./testdata/keymismatch")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("a program passing a Key[Part] as a Key[Board] compiled:\n%s", out)
	}
	want := "cannot use pk (variable of struct type typed.Key[Part]) as typed.Key[Board] value"
	if !strings.Contains(string(out), want) {
		t.Fatalf("compiling the mismatch failed otherwise than expected, want %q:\n%s", want, out)
	}
}

type Item struct {
	Name string `codec:"name"`
	Qty  int    `codec:"qty"`
}

// Indexes stay equal to a scan of the records while other clients write
// concurrently, and after the replica is replaced by a snapshot.
func TestIndexesUnderConcurrentWritesAndResync(t *testing.T) {
	s := testserver.StartWith(t, func(c *cluster.Config) {
		c.TrailingLogs = 2
		c.SnapshotThreshold = 1 << 20 // snapshots only when the test asks
	})
	ctx := ctxT(t)
	var offline atomic.Bool
	reader := testserver.OpenWith(t, t.TempDir(), func(c *client.Config) {
		c.HTTPClient = &http.Client{Transport: cutter{&offline}}
	}, s.Addr)
	items := mustOpen[Item](t, reader, "items")
	byName, err := typed.NewIndex(items, "by-name", func(it Item) []string { return []string{it.Name} })
	if err != nil {
		t.Fatal(err)
	}
	byQty, err := typed.NewOrderedIndex(items, "by-qty", func(it Item) []int { return []int{it.Qty} })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := typed.NewIndex(items, "by-name", func(it Item) []string { return nil }); err == nil {
		t.Fatal("the same index added twice")
	}

	writers := make([]*typed.Tree[Item], 3)
	for i := range writers {
		writers[i] = mustOpen[Item](t, testserver.Open(t, t.TempDir(), s.Addr), "items")
	}
	round := func(r int) {
		var wg sync.WaitGroup
		for w, tr := range writers {
			wg.Go(func() {
				for i := range 20 {
					k, err := tr.Create(ctx, Item{Name: fmt.Sprintf("n%d", (r+w+i)%7), Qty: i - 10})
					if err != nil {
						t.Error(err)
						return
					}
					if i%3 != 0 {
						continue
					}
					err = tr.Checkout(ctx, k)
					if err == nil {
						err = tr.Update(ctx, k, func(it *Item) error { it.Name += "x"; it.Qty *= 2; return nil })
					}
					if err == nil && i%2 == 0 {
						err = tr.Delete(ctx, k)
					} else if err == nil {
						err = tr.Return(ctx, k)
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	check := func(when string) {
		t.Helper()
		if err := reader.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
		names, qtys := map[string][]typed.Key[Item]{}, map[int][]typed.Key[Item]{}
		n := 0
		for k, it := range items.All() {
			names[it.Name] = append(names[it.Name], k)
			qtys[it.Qty] = append(qtys[it.Qty], k)
			n++
		}
		for name, want := range names {
			if got, err := byName.Lookup(name); err != nil || !slices.Equal(got, want) {
				t.Fatalf("%s: by-name %q: %v %v, want %v", when, name, got, err, want)
			}
		}
		for q, want := range qtys {
			if got, err := byQty.Lookup(q); err != nil || !slices.Equal(got, want) {
				t.Fatalf("%s: by-qty %d: %v %v, want %v", when, q, got, err, want)
			}
		}
		all, err := byQty.Range(-1000, 1000)
		if err != nil || len(all) != n {
			t.Fatalf("%s: by-qty range holds %d keys (%v), the tree %d records", when, len(all), err, n)
		}
		var last int
		for i, k := range all {
			it, _ := items.Get(k)
			if i > 0 && it.Qty < last {
				t.Fatalf("%s: by-qty range out of order at %v", when, k)
			}
			last = it.Qty
		}
		if got, _ := byName.Prefix("n"); len(got) != n {
			t.Fatalf("%s: by-name prefix n: %d keys, want %d", when, len(got), n)
		}
	}
	// Lookups from other goroutines while the replica applies the writes
	// (the race detector watches this in CI).
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := byName.Prefix("n"); err != nil {
					t.Error(err)
					return
				}
				if _, err := byQty.From(0, 10); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	round(0)
	close(stop)
	readers.Wait()
	check("after concurrent writes")

	offline.Store(true)
	testserver.WaitFor(t, "reader offline", func() bool { return !reader.Online() })
	round(1)
	if err := s.Node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	resynced := reader.Events(ctx)
	offline.Store(false)
	gotResync := false
	for e := range resynced {
		if e.Type == client.EventResynced {
			gotResync = true
			break
		}
	}
	if !gotResync {
		t.Fatal("the reader did not resync from a snapshot")
	}
	check("after a resync from a snapshot")
}

// cutter fails every request while off is set: the client goes offline
// while the server goes on.
type cutter struct{ off *atomic.Bool }

func (c cutter) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.off.Load() {
		return nil, errors.New("cut off by the test")
	}
	return http.DefaultTransport.RoundTrip(r)
}

// An index stored by an earlier run is reused only while it is up to date
// and of the same version: changes applied while it was not open, or a
// new indexing function, rebuild it.
func TestIndexAcrossRestarts(t *testing.T) {
	s := testserver.Start(t)
	ctx := ctxT(t)
	w := mustOpen[Item](t, testserver.Open(t, t.TempDir(), s.Addr), "items")
	dir := t.TempDir()
	openIndex := func(version uint32, fn func(Item) []string) (*client.DB, typed.Index[Item]) {
		db, err := client.Open(ctx, client.Config{Dir: dir, Servers: []string{s.Addr}, Name: "reader", PollWait: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
		items := mustOpen[Item](t, db, "items")
		ix, err := typed.NewIndex(items, "by-name", fn, typed.IndexVersion(version))
		if err != nil {
			t.Fatal(err)
		}
		return db, ix
	}
	lookup := func(ix typed.Index[Item], term string) []typed.Key[Item] {
		t.Helper()
		keys, err := ix.Lookup(term)
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	byName := func(it Item) []string { return []string{it.Name} }
	k1, err := w.Create(ctx, Item{Name: "bolt"})
	if err != nil {
		t.Fatal(err)
	}
	db, ix := openIndex(1, byName)
	if got := lookup(ix, "bolt"); !slices.Equal(got, []typed.Key[Item]{k1}) {
		t.Fatalf("first run: %v", got)
	}
	db.Close()
	k2, err := w.Create(ctx, Item{Name: "bolt"}) // while the reader is closed
	if err != nil {
		t.Fatal(err)
	}
	db, ix = openIndex(1, byName)
	if got := lookup(ix, "bolt"); !slices.Equal(got, []typed.Key[Item]{k1, k2}) {
		t.Fatalf("after changes applied while the index was closed: %v", got)
	}
	db.Close()
	db, ix = openIndex(2, func(it Item) []string { return []string{strings.ToUpper(it.Name)} })
	defer db.Close()
	if got := lookup(ix, "BOLT"); !slices.Equal(got, []typed.Key[Item]{k1, k2}) {
		t.Fatalf("after a new index version: %v", got)
	}
	if got := lookup(ix, "bolt"); len(got) != 0 {
		t.Fatalf("old terms survive a new index version: %v", got)
	}
}
