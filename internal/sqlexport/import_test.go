package sqlexport

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/schema"
)

type part struct {
	Name string `codec:"name"`
	Qty  int    `codec:"qty"`
}

// exportFile writes a file as Export lays it out for a tree "parts" of
// part, with extra DDL and rows run after.
func exportFile(t *testing.T, stmts ...string) string {
	t.Helper()
	def, err := schema.Extract(reflect.TypeFor[part]())
	if err != nil {
		t.Fatal(err)
	}
	enc, err := def.Shape().Encode()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "x.sqlite")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range []string{
		`CREATE TABLE shelf_schemas (tree TEXT, version INTEGER, hash TEXT, definition TEXT, cbor BLOB)`,
		`CREATE TABLE parts (id INTEGER, rev INTEGER, schema_version INTEGER, released INTEGER, state INTEGER, name TEXT, qty INTEGER)`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`INSERT INTO shelf_schemas VALUES ('parts', 1, ?, '{}', ?)`, schema.Hash(enc), enc); err != nil {
		t.Fatal(err)
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return path
}

// importBad imports a file that must fail before reaching the cluster
// (the client points at nothing).
func importBad(t *testing.T, path string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Import(ctx, Config{API: api.NewClient("http://127.0.0.1:1", nil), Path: path})
	if err == nil {
		t.Fatal("import succeeded")
	}
	t.Log(err)
	return err
}

func TestImportBadInput(t *testing.T) {
	t.Run("not SQLite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "notes.txt")
		if err := os.WriteFile(path, []byte("id,name\n1,R-10k\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := importBad(t, path); !errors.Is(err, ErrNotSQLite) || !strings.Contains(err.Error(), path) {
			t.Fatalf("error: %v", err)
		}
	})
	t.Run("empty file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "empty")
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := importBad(t, path); !errors.Is(err, ErrNotSQLite) {
			t.Fatalf("error: %v", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		if err := importBad(t, filepath.Join(t.TempDir(), "nope")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("error: %v", err)
		}
	})
	t.Run("SQLite but no export", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "other.sqlite")
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`CREATE TABLE t (x)`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if err := importBad(t, path); !errors.Is(err, ErrNotExport) || !strings.Contains(err.Error(), "shelf_schemas") {
			t.Fatalf("error: %v", err)
		}
	})
	t.Run("unknown column", func(t *testing.T) {
		path := exportFile(t, `ALTER TABLE parts ADD COLUMN colour TEXT`)
		err := importBad(t, path)
		if !errors.Is(err, ErrUnknownColumn) || !strings.Contains(err.Error(), `"colour"`) || !strings.Contains(err.Error(), `"parts"`) {
			t.Fatalf("error: %v", err)
		}
	})
	t.Run("wrong type", func(t *testing.T) {
		path := exportFile(t, `INSERT INTO parts VALUES (1, 1, 1, 0, 0, 'R-10k', 5), (2, 1, 1, 0, 0, 'C-100n', 'lots')`)
		err := importBad(t, path)
		if !errors.Is(err, ErrBadValue) || !strings.Contains(err.Error(), `column "qty"`) ||
			!strings.Contains(err.Error(), "row 2/1") || !strings.Contains(err.Error(), "want an integer") {
			t.Fatalf("error: %v", err)
		}
	})
	t.Run("bad key column", func(t *testing.T) {
		path := exportFile(t, `INSERT INTO parts VALUES ('x', 1, 1, 0, 0, 'R-10k', 5)`)
		if err := importBad(t, path); !errors.Is(err, ErrBadValue) || !strings.Contains(err.Error(), `column "id"`) {
			t.Fatalf("error: %v", err)
		}
	})
	t.Run("bad JSON", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "schemaless.sqlite")
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{
			`CREATE TABLE shelf_schemas (tree TEXT, version INTEGER, hash TEXT, definition TEXT, cbor BLOB)`,
			`CREATE TABLE notes (id INTEGER, rev INTEGER, schema_version INTEGER, released INTEGER, state INTEGER, value TEXT)`,
			`INSERT INTO notes VALUES (1, 1, 0, 0, 0, '{"a": ')`,
		} {
			if _, err := db.Exec(s); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
		if err := importBad(t, path); !errors.Is(err, ErrBadValue) || !strings.Contains(err.Error(), "not JSON") {
			t.Fatalf("error: %v", err)
		}
	})
}

func TestColumnsClash(t *testing.T) {
	type rec struct {
		ID string `codec:"id"`
	}
	def, err := schema.Extract(reflect.TypeFor[rec]())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := columnsOf("t", &def); !errors.Is(err, ErrColumnClash) {
		t.Fatalf("error: %v", err)
	}
}
