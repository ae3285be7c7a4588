package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
	"github.com/shelfdb/shelf/internal/testlog"
	"github.com/shelfdb/shelf/internal/testserver"
	"github.com/shelfdb/shelf/typed"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openApp opens the program's app as run does, with its replica in a new
// temporary directory.
func openApp(t *testing.T, ctx context.Context, addr string, out io.Writer) *app {
	t.Helper()
	a, err := open(ctx, client.Config{Dir: t.TempDir(), Servers: []string{addr}, Name: "inventory-test", Logger: testlog.New(t)}, out, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func env(kv ...string) func(string) string {
	return func(name string) string {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == name {
				return kv[i+1]
			}
		}
		return ""
	}
}

func TestDemoTwice(t *testing.T) {
	s := testserver.Start(t)
	ctx := testCtx(t)
	var out bytes.Buffer
	a := openApp(t, ctx, s.Addr, &out)
	var boards []typed.Key[Board]
	for range 2 {
		bk, err := a.demo(ctx)
		if err != nil {
			t.Fatalf("demo: %v\n%s", err, out.String())
		}
		boards = append(boards, bk)
	}
	if boards[0] == boards[1] {
		t.Fatalf("both runs made board %v", boards[0])
	}
	for _, bk := range boards {
		b, err := a.boards.Record(bk)
		if err != nil {
			t.Fatal(err)
		}
		if !b.Released || b.State != StateInProduction || len(b.Value.Parts) != 3 {
			t.Fatalf("board %v: %+v", bk, b)
		}
		for _, l := range b.Value.Parts {
			p, err := a.parts.Record(l.Part)
			if err != nil {
				t.Fatalf("board %v line %v: %v", bk, l.Part, err)
			}
			if !p.Released || l.Part.Rev != 1 || p.Key != l.Part {
				t.Errorf("board %v line %v: part %+v, want released revision 1", bk, l.Part, p)
			}
		}
		// The resistor was revised after the board was released: revision 2
		// is released with the new value, and the board still has revision 1.
		r := b.Value.Parts[0].Part
		latest, err := a.parts.Record(r.Latest())
		if err != nil || latest.Key.Rev != 2 || !latest.Released || latest.Value.Value != "10kΩ 1%" {
			t.Errorf("latest revision of %v: %+v %v", r, latest, err)
		}
		if rev1, _ := a.parts.Get(r); rev1.Value != "10kΩ" {
			t.Errorf("revision 1 changed: %+v", rev1)
		}
	}

	// The index finds both revisions of both runs' resistors, and only them.
	keys, err := a.byName.Lookup("R-10k")
	if err != nil {
		t.Fatal(err)
	}
	var want []typed.Key[Part]
	for _, bk := range boards {
		b, _ := a.boards.Get(bk)
		r := b.Parts[0].Part
		want = append(want, r, typed.Key[Part]{ID: r.ID, Rev: 2})
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("Lookup(R-10k) = %v, want %v", keys, want)
	}
	if keys, _ := a.byName.Lookup("MCU"); len(keys) != 2 {
		t.Fatalf("Lookup(MCU) = %v, want the two runs' parts", keys)
	}
	if got := out.String(); !strings.Contains(got, `board "blinky"`) || !strings.Contains(got, "in production") {
		t.Fatalf("demo output:\n%s", got)
	}
}

// The command line, as main runs it: demo twice, then list.
func TestCommandLine(t *testing.T) {
	s := testserver.Start(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	getenv := env("SHELF_HTTP", s.Addr) // the server from the environment
	var out, errs testlog.Buffer
	for _, cmd := range []string{"demo", "demo", "list", "migrate"} {
		if err := run(ctx, []string{"-dir", dir, cmd}, getenv, &out, &errs); err != nil {
			t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", cmd, err, out.String(), errs.String())
		}
	}
	got := out.String()
	if n := strings.Count(got, "state=2 (in production)"); n != 2 {
		t.Errorf("%d boards in production, want 2:\n%s", n, got)
	}
	if !strings.Contains(got, "blinky: 4×") || !strings.Contains(got, "10kΩ 1%") || strings.Contains(got, "do not decode") {
		t.Errorf("list output:\n%s", got)
	}
	if !strings.Contains(got, "migrated 0 of 0 older parts") || !strings.Contains(got, "0 failed") {
		t.Errorf("migrate output:\n%s", got)
	}

	for _, args := range [][]string{nil, {"frobnicate"}, {"demo", "list"}, {"-log-level", "loud", "list"}, {"-nosuchflag"}} {
		err := run(ctx, append([]string{"-dir", dir}, args...), getenv, io.Discard, io.Discard)
		if !errors.As(err, new(usageError)) {
			t.Errorf("run %q: %v, want a usage error", args, err)
		}
	}
}

// watch prints the events of another client's demo as they happen.
func TestWatch(t *testing.T) {
	s := testserver.Start(t)
	ctx := testCtx(t)
	wctx, stop := context.WithCancel(ctx)
	var out, errs testlog.Buffer
	done := make(chan error, 1)
	go func() { done <- run(wctx, []string{"-s", s.Addr, "-dir", t.TempDir(), "watch"}, env(), &out, &errs) }()
	testserver.WaitFor(t, "watch to start", func() bool { return strings.Contains(out.String(), "watching") })

	if err := run(ctx, []string{"-s", s.Addr, "-dir", t.TempDir(), "-name", "bench-3", "demo"}, env(), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, "the board's state change", func() bool { return strings.Contains(out.String(), "in production") })
	stop()
	if err := <-done; err != nil {
		t.Fatalf("watch: %v\n%s", err, errs.String())
	}
	got := out.String()
	for _, want := range []string{"parts  created", "R-10k 10kΩ 0603 ×5000", "borrowed", " by ", "released", "boards created", "blinky: 4×"} {
		if !strings.Contains(got, want) {
			t.Errorf("watch output lacks %q:\n%s", want, got)
		}
	}
}

// migrate rewrites the parts kvctl put without a schema, and reports the
// ones another client holds and the released ones.
func TestMigrate(t *testing.T) {
	s := testserver.Start(t)
	ctx := testCtx(t)
	a := openApp(t, ctx, s.Addr, io.Discard)
	other := testserver.Open(t, t.TempDir(), s.Addr)

	// Parts as kvctl put makes them: no schema, no package.
	raw := a.db.Tree("parts")
	var keys []api.Key
	for _, qty := range []any{10, 10, 10, 10, 2.5} {
		data, err := api.Marshal(map[string]any{"name": "R", "qty": qty})
		if err != nil {
			t.Fatal(err)
		}
		res, err := raw.Create(ctx, 0, data)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, res.Key)
	}
	if err := other.Tree("parts").Checkout(ctx, keys[1], 0); err != nil {
		t.Fatal(err)
	}
	if err := raw.Checkout(ctx, keys[2], 0); err != nil {
		t.Fatal(err)
	}
	if err := raw.Release(ctx, keys[2]); err != nil {
		t.Fatal(err)
	}
	if _, err := a.demo(ctx); err != nil { // parts at the current version: not migrated
		t.Fatal(err)
	}
	if err := a.db.WaitSynced(ctx); err != nil { // a's replica has seen the other's borrow
		t.Fatal(err)
	}

	var bar bytes.Buffer
	rep, err := a.migrate(ctx, &bar)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total != 5 || rep.Migrated != 2 || len(rep.Failed) != 1 || rep.Failed[0].Key != keys[4] ||
		!strings.Contains(rep.Failed[0].Err.Error(), "qty 2.5 is not a whole number") {
		t.Fatalf("report: %+v", rep)
	}
	if len(rep.Borrowed) != 1 || rep.Borrowed[0].Key != keys[1] || rep.Borrowed[0].ClientName != other.Name() {
		t.Fatalf("borrowed: %+v", rep.Borrowed)
	}
	if !slices.Equal(rep.Released, keys[2:3]) {
		t.Fatalf("released: %v", rep.Released)
	}
	if !strings.HasSuffix(bar.String(), "] 5/5\n") || !strings.Contains(bar.String(), "\r[") {
		t.Fatalf("progress bar: %q", bar.String())
	}
	for _, k := range []api.Key{keys[0], keys[3]} {
		p, err := a.parts.Record(typed.KeyOf[Part](k))
		if err != nil || p.Value.Package != "unknown" || p.Value.Qty != 10 || p.Schema != a.parts.Version() || p.Borrow != nil {
			t.Fatalf("migrated part %v: %+v %v", k, p, err)
		}
	}

	// Once returned, the borrowed part migrates on the next run.
	if err := other.Tree("parts").Return(ctx, keys[1]); err != nil {
		t.Fatal(err)
	}
	if err := a.db.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	a.out = &out
	if rep, err = a.migrate(ctx, io.Discard); err != nil || rep.Migrated != 1 || len(rep.Failed) != 1 {
		t.Fatalf("second migrate: %+v %v", rep, err)
	}
	a.printReport(rep)
	if got := out.String(); !strings.Contains(got, "migrated 1 of 3") || !strings.Contains(got, "1 failed") {
		t.Fatalf("report:\n%s", got)
	}

	// list shows the migrated parts, and that one part does not decode.
	out.Reset()
	if err := a.list(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); strings.Count(got, "R  unknown ×10") != 3 || !strings.Contains(got, "1 records of parts do not decode") {
		t.Fatalf("list:\n%s", got)
	}
}
