package main

import (
	"database/sql"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/sqlexport"
	"github.com/shelfdb/shelf/internal/testlog"
	"github.com/shelfdb/shelf/internal/testserver"
	"github.com/shelfdb/shelf/typed"
)

// TestSQLiteRoundTrip exports the inventory's trees to SQLite, reads the
// file with plain SQL, imports it into an empty cluster and compares the
// trees record by record; then imports an edited file back into the
// first cluster: changed drafts are updated, a changed released record
// and a draft borrowed by another client are refused.
func TestSQLiteRoundTrip(t *testing.T) {
	src := testserver.Start(t)
	ctx := testCtx(t)
	a := openApp(t, ctx, src.Addr, io.Discard)
	if _, err := a.demo(ctx); err != nil {
		t.Fatal(err)
	}
	draft, err := a.parts.Create(ctx, Part{Name: "LED", Value: "red", Package: "0805", Qty: 300})
	if err != nil {
		t.Fatal(err)
	}
	held, err := a.parts.Create(ctx, Part{Name: "XTAL", Value: "8MHz", Package: "HC49", Qty: 20})
	if err != nil {
		t.Fatal(err)
	}
	srcAPI := api.NewClient("http://"+src.Addr, nil)
	log := testlog.New(t)

	file := filepath.Join(t.TempDir(), "inventory.sqlite")
	var bar strings.Builder
	sum, err := sqlexport.Export(ctx, sqlexport.Config{API: srcAPI, Path: file, Progress: &bar, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	// parts: 3 released, a second revision of one, 2 drafts; boards: 1.
	if want := []sqlexport.TreeCount{{Tree: "boards", Records: 1}, {Tree: "parts", Records: 6}}; !slices.Equal(sum.Trees, want) {
		t.Fatalf("export summary: %+v, want %+v", sum.Trees, want)
	}
	if !strings.HasSuffix(bar.String(), "] 7/7\n") {
		t.Fatalf("progress bar: %q", bar.String())
	}
	if _, err := sqlexport.Export(ctx, sqlexport.Config{API: srcAPI, Path: file}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("export over an existing file: %v", err)
	}

	// Plain SQL: the board's lines joined to the part revisions they name.
	db, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `
		SELECT b.name, b.released, b.state, p.name, p.rev, p.value, json_extract(l.value, '$.qty')
		FROM boards b, json_each(b.parts) l
		JOIN parts p ON p.id = json_extract(l.value, '$.part.id') AND p.rev = json_extract(l.value, '$.part.rev')
		ORDER BY p.name`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var board, part, value string
		var released, state, rev, qty int64
		if err := rows.Scan(&board, &released, &state, &part, &rev, &value, &qty); err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.Join([]string{board, itoa(released), itoa(state), part, itoa(rev), value, itoa(qty)}, " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"blinky 1 2 C-100n 1 100nF 2", "blinky 1 2 MCU 1 STM32G031 1", "blinky 1 2 R-10k 1 10kΩ 4"}
	if !slices.Equal(got, want) {
		t.Fatalf("board lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var revised string
	var released, version int64
	if err := db.QueryRowContext(ctx, `SELECT value, released, schema_version FROM parts WHERE name = 'R-10k' AND rev = 2`).Scan(&revised, &released, &version); err != nil {
		t.Fatal(err)
	}
	if revised != "10kΩ 1%" || released != 1 || version != int64(a.parts.Version()) {
		t.Fatalf("revision 2 of R-10k: %q released %d schema %d", revised, released, version)
	}
	var nSchemas int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM shelf_schemas WHERE tree IN ('parts', 'boards')`).Scan(&nSchemas); err != nil || nSchemas != 2 {
		t.Fatalf("shelf_schemas: %d rows, %v", nSchemas, err)
	}

	// Import into an empty cluster: the same trees.
	dst := testserver.Start(t)
	dstAPI := api.NewClient("http://"+dst.Addr, nil)
	isum, err := sqlexport.Import(ctx, sqlexport.Config{API: dstAPI, Path: file, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if isum.Created != 7 || isum.Updated != 0 || isum.Unchanged != 0 || len(isum.Refused) != 0 {
		t.Fatalf("import summary: %+v", isum)
	}
	newID := func(id uint64) uint64 {
		if n, ok := isum.IDs[id]; ok {
			return n
		}
		return id
	}
	for _, tree := range []string{"parts", "boards"} {
		from, to := listAll(t, srcAPI, tree), listAll(t, dstAPI, tree)
		if len(from) != len(to) {
			t.Fatalf("%s: %d records exported, %d imported", tree, len(from), len(to))
		}
		byKey := map[api.Key]api.Record{}
		for _, r := range to {
			byKey[r.Key] = r
		}
		for _, r := range from {
			k := api.Key{ID: newID(r.Key.ID), Rev: r.Key.Rev}
			n, ok := byKey[k]
			if !ok {
				t.Fatalf("%s/%s: not imported (as %s)", tree, r.Key, k)
			}
			if n.Released != r.Released || n.State != r.State || n.Schema != r.Schema || n.Borrow != nil {
				t.Fatalf("%s/%s: imported as %+v, was %+v", tree, r.Key, n, r)
			}
			switch tree {
			case "parts":
				var p, q Part
				decode(t, r.Data, &p)
				decode(t, n.Data, &q)
				if p != q {
					t.Fatalf("part %s: %+v, imported %+v", r.Key, p, q)
				}
			case "boards":
				var b, c Board
				decode(t, r.Data, &b)
				decode(t, n.Data, &c)
				for i := range b.Parts {
					b.Parts[i].Part = typed.Key[Part]{ID: newID(b.Parts[i].Part.ID), Rev: b.Parts[i].Part.Rev}
				}
				if b.Name != c.Name || !slices.Equal(b.Parts, c.Parts) {
					t.Fatalf("board %s: %+v, imported %+v", r.Key, b, c)
				}
			}
		}
	}

	// Back into the first cluster, edited: the draft changes, a released
	// part differs, a draft borrowed by another client differs, and the
	// package column is gone.
	other := openApp(t, ctx, src.Addr, io.Discard)
	if err := other.parts.Checkout(ctx, held); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE parts SET qty = 250 WHERE id = ` + utoa(draft.ID),
		`UPDATE parts SET qty = 1 WHERE id = ` + utoa(held.ID),
		`UPDATE parts SET qty = 7 WHERE name = 'MCU'`,
		// A column left out: import keeps what the records hold.
		`ALTER TABLE parts DROP COLUMN package`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	isum, err = sqlexport.Import(ctx, sqlexport.Config{API: srcAPI, Path: file, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if isum.Created != 0 || isum.Updated != 1 || isum.Unchanged != 4 || len(isum.Refused) != 2 {
		t.Fatalf("second import: %+v", isum)
	}
	for _, r := range isum.Refused {
		if !(r.Key.ID == held.ID && strings.Contains(r.Reason, "borrowed")) && !strings.Contains(r.Reason, "released") {
			t.Fatalf("refusal: %+v", r)
		}
	}
	rec, err := srcAPI.Get(ctx, "parts", draft.Untyped())
	if err != nil {
		t.Fatal(err)
	}
	var p Part
	decode(t, rec.Data, &p)
	if p.Qty != 250 || p.Package != "0805" || rec.Borrow != nil || rec.Released {
		t.Fatalf("updated draft: %+v %+v", p, rec)
	}
}

func listAll(t *testing.T, c *api.Client, tree string) []api.Record {
	t.Helper()
	var out []api.Record
	var after api.Key
	for {
		p, err := c.List(testCtx(t), tree, after, 2) // small pages: the cursor is used
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Records...)
		if p.After == "" {
			return out
		}
		if after, err = api.ParseKey(p.After); err != nil {
			t.Fatal(err)
		}
	}
}

func decode(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := api.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int64) string  { return strconv.FormatInt(n, 10) }
func utoa(n uint64) string { return strconv.FormatUint(n, 10) }
