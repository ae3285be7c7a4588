package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/testserver"
)

// TestSQLiteExportImport exports records with nested structs, slices,
// integer-keyed maps, a time and a recursive pointer, reads the file with
// SQL, and imports it into an empty cluster: the records decode to the
// same Go values.
func TestSQLiteExportImport(t *testing.T) {
	src := testserver.Start(t)
	db := testserver.Open(t, t.TempDir(), src.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	parts := db.Tree("parts")
	v, err := parts.RegisterSchema(ctx, definition[Part](t))
	if err != nil {
		t.Fatal(err)
	}
	want := []Part{
		{Name: "R1", Dims: Dims{W: 1.5, H: 2}, Lots: []Lot{{Code: "L1", Qty: 5}},
			Stock: map[int]Bin{7: {Count: 3}, -2: {Count: 1}}, Made: now},
		{Name: "R2", Alt: &Part{Name: "R2b", Made: now.Add(time.Hour)}, Made: now.Add(time.Microsecond)},
	}
	for _, p := range want {
		data, err := api.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parts.Create(ctx, v, data); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "shelf.sqlite")
	out, errs, code := kvAt(ctx, t, src.Addr, "", "export", "--sqlite", file, "parts")
	if code != 0 {
		t.Fatalf("export: %d %s", code, errs)
	}
	wantLines(t, out, "TREE ", "parts ")
	if !strings.Contains(out, "2\n") {
		t.Fatalf("export output:\n%s", out)
	}

	sdb, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	var dims, stock, made string
	if err := sdb.QueryRowContext(ctx, `SELECT dims, stock, made FROM parts WHERE name = 'R1'`).Scan(&dims, &stock, &made); err != nil {
		t.Fatal(err)
	}
	if dims != `{"h":2,"w":1.5}` || stock != `{"-2":{"count":1},"7":{"count":3}}` || made != "2026-11-24T12:00:00Z" {
		t.Fatalf("R1 row: dims %s stock %s made %s", dims, stock, made)
	}
	var w float64
	if err := sdb.QueryRowContext(ctx, `SELECT json_extract(dims, '$.w') FROM parts WHERE name = 'R1'`).Scan(&w); err != nil || w != 1.5 {
		t.Fatalf("json_extract: %v %v", w, err)
	}

	dst := testserver.Start(t)
	out, errs, code = kvAt(ctx, t, dst.Addr, "", "import", "--sqlite", file)
	if code != 0 || out != "created 2, updated 0, unchanged 0, refused 0\n" {
		t.Fatalf("import: %d\n%s%s", code, out, errs)
	}
	page, err := api.NewClient("http://"+dst.Addr, nil).List(ctx, "parts", api.Key{}, 0)
	if err != nil || len(page.Records) != 2 {
		t.Fatalf("imported: %+v %v", page, err)
	}
	// Compared with the source cluster's records as a reader decodes them
	// (the codec rounds times to the microsecond).
	srcPage, err := api.NewClient("http://"+src.Addr, nil).List(ctx, "parts", api.Key{}, 0)
	if err != nil || len(srcPage.Records) != 2 {
		t.Fatalf("source: %+v %v", srcPage, err)
	}
	for i, r := range page.Records {
		var got, was Part
		if err := api.Unmarshal(r.Data, &got); err != nil {
			t.Fatalf("record %s: %v", r.Key, err)
		}
		if err := api.Unmarshal(srcPage.Records[i].Data, &was); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normTimes(got), normTimes(was)) || got.Name != want[i].Name || (got.Alt != nil) != (want[i].Alt != nil) {
			t.Fatalf("record %s:\n got %+v\nwant %+v", r.Key, got, was)
		}
		if r.Schema != srcPage.Records[i].Schema || r.Released || r.Borrow != nil {
			t.Fatalf("record %s: %+v", r.Key, r)
		}
	}
}

// normTimes puts a part's times in UTC, for DeepEqual.
func normTimes(p Part) Part {
	p.Made = p.Made.UTC()
	if p.Alt != nil {
		a := normTimes(*p.Alt)
		p.Alt = &a
	}
	return p
}

func TestSQLiteBadInput(t *testing.T) {
	dir := t.TempDir()
	notSQL := filepath.Join(dir, "x.csv")
	if err := os.WriteFile(notSQL, []byte("a,b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errs, code := kv(t, nil, "", "import", "--sqlite", notSQL)
	if code == 0 || !strings.Contains(errs, "not a SQLite database") {
		t.Fatalf("import of a CSV file: %d %s", code, errs)
	}
	_, errs, code = kv(t, nil, "", "export", "parts")
	if code != exitUsage || !strings.Contains(errs, "--sqlite FILE is required") {
		t.Fatalf("export without --sqlite: %d %s", code, errs)
	}
	_, errs, code = kv(t, nil, "", "import", "--sqlite", notSQL, "extra")
	if code != exitUsage {
		t.Fatalf("import with an argument: %d %s", code, errs)
	}
}
