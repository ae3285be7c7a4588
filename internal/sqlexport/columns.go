// Package sqlexport writes a cluster's trees to a SQLite file and reads
// them back (kvctl export --sqlite, kvctl import --sqlite). It uses
// modernc.org/sqlite, a SQLite without cgo.
//
// Each tree becomes one table named after the tree. Its columns are id,
// rev, schema_version, released and state, then one column per field of
// the tree's latest schema version, in declaration order:
//
//	bool                   INTEGER 0 or 1
//	int, uint              INTEGER (a uint above 2^63-1: TEXT, its decimal)
//	float                  REAL
//	string                 TEXT
//	bytes                  BLOB
//	time                   TEXT, RFC 3339 with nanoseconds, UTC
//	key of another tree    INTEGER: the id; a second column FIELD_rev
//	                       holds the revision (0: the latest)
//	struct, slice, map,    TEXT: the value as JSON (keys nested in it
//	any, custom            stay {"id":N,"rev":R})
//
// A tree without a registered schema gets a single value column (JSON).
// The table shelf_schemas holds every registered version of every
// exported tree: tree, version, hash, the definition as JSON and as the
// CBOR bytes the registry stores (import registers those).
package sqlexport

import (
	"errors"
	"fmt"
	"strings"

	"github.com/shelfdb/shelf/internal/schema"
)

// Sentinel errors callers test with errors.Is.
var (
	// ErrNotSQLite: the file is not a SQLite database.
	ErrNotSQLite = errors.New("not a SQLite database")
	// ErrNotExport: the database lacks what an export writes (shelf_schemas).
	ErrNotExport = errors.New("not a kvctl SQLite export")
	// ErrUnknownColumn: a table has a column that is no field of the tree's schema.
	ErrUnknownColumn = errors.New("unknown column")
	// ErrBadValue: a cell does not hold a value of its column's kind.
	ErrBadValue = errors.New("value of the wrong type")
	// ErrColumnClash: a schema field's column name is taken by another column.
	ErrColumnClash = errors.New("column name clash")
)

// The columns every tree table has, before the fields.
var metaColumns = []string{"id", "rev", "schema_version", "released", "state"}

// valueColumn is the one field column of a schemaless tree.
const valueColumn = "value"

// SchemasTable is the table of registered schema versions.
const SchemasTable = "shelf_schemas"

// column is one field column of a tree table.
type column struct {
	Name  string      // column name: the field's stored name
	Field string      // the field's stored name ("" for the schemaless value column)
	Type  schema.Type // the field's type
	Rev   bool        // the FIELD_rev column of a key field
}

// sqlType is the column's declared SQLite type.
func (c column) sqlType() string {
	if c.Rev {
		return "INTEGER"
	}
	switch c.Type.Kind {
	case schema.KindBool, schema.KindInt, schema.KindUint, schema.KindKey:
		return "INTEGER"
	case schema.KindFloat:
		return "REAL"
	case schema.KindBytes:
		return "BLOB"
	default:
		return "TEXT"
	}
}

// columnsOf returns the field columns of a tree whose latest definition
// is d (nil: schemaless).
func columnsOf(tree string, d *schema.Definition) ([]column, error) {
	if d == nil {
		return []column{{Name: valueColumn, Type: schema.Type{Kind: schema.KindAny}}}, nil
	}
	st, ok := d.Types[d.Root]
	if !ok {
		return nil, fmt.Errorf("tree %q: schema root %q is not defined", tree, d.Root)
	}
	taken := map[string]bool{}
	for _, m := range metaColumns {
		taken[m] = true
	}
	var cols []column
	add := func(c column) error {
		if taken[strings.ToLower(c.Name)] {
			return fmt.Errorf("tree %q: field %q: %w with column %q", tree, c.Field, ErrColumnClash, c.Name)
		}
		taken[strings.ToLower(c.Name)] = true
		cols = append(cols, c)
		return nil
	}
	for _, f := range st.Fields {
		if err := add(column{Name: f.Name, Field: f.Name, Type: f.Type}); err != nil {
			return nil, err
		}
		if f.Type.Kind == schema.KindKey {
			if err := add(column{Name: f.Name + "_rev", Field: f.Name, Type: f.Type, Rev: true}); err != nil {
				return nil, err
			}
		}
	}
	return cols, nil
}

// quote quotes an SQL identifier.
func quote(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
