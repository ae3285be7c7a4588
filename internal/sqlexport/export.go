package sqlexport

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/schema"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// Config configures an export or an import.
type Config struct {
	// API reaches the cluster (any node; reads are served by it).
	API *api.Client
	// Path is the SQLite file. Export refuses to overwrite one.
	Path string
	// Trees limits an export to these trees (empty: every tree).
	Trees []string
	// Progress, when set, gets a progress line rewritten in place ("\r").
	Progress io.Writer
	// ClientName names the client an import registers to borrow records.
	ClientName string
	// PageSize is the number of records per list request (0: 500).
	PageSize int
	// Logger gets refusals and notes (nil: slog.Default()).
	Logger *slog.Logger
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

func (c *Config) pageSize() int {
	if c.PageSize <= 0 {
		return 500
	}
	return c.PageSize
}

// TreeCount is the number of records exported from one tree.
type TreeCount struct {
	Tree    string `json:"tree"`
	Records int    `json:"records"`
}

// ExportSummary says what an export wrote.
type ExportSummary struct {
	Path  string      `json:"path"`
	Trees []TreeCount `json:"trees"`
	// FromIndex and ToIndex are the node's applied index before the first
	// and after the last page: equal when nothing changed meanwhile, so
	// the file is one consistent state.
	FromIndex uint64 `json:"from_index"`
	ToIndex   uint64 `json:"to_index"`
}

// Export writes cfg.Trees (or every tree) to a new SQLite file at cfg.Path.
//
// Records are read page by page through the list API, in key order. Pages
// are separate reads: a record changed while the export runs is written
// as its page saw it. The summary's FromIndex and ToIndex tell whether the
// cluster changed during the export (then they differ).
func Export(ctx context.Context, cfg Config) (ExportSummary, error) {
	sum := ExportSummary{Path: cfg.Path, Trees: []TreeCount{}}
	if _, err := os.Stat(cfg.Path); err == nil {
		return sum, fmt.Errorf("export: %s already exists: remove it or choose another file", cfg.Path)
	}
	all, err := cfg.API.Trees(ctx)
	if err != nil {
		return sum, fmt.Errorf("export: list trees: %w", err)
	}
	names := make([]string, 0, len(all))
	total := 0
	counts := map[string]uint64{}
	for _, t := range all {
		names = append(names, t.Name)
		counts[t.Name] = t.Records
	}
	if len(cfg.Trees) > 0 {
		for _, n := range cfg.Trees {
			if !slices.Contains(names, n) {
				return sum, fmt.Errorf("export: %w: tree %q (trees: %s)", api.ErrTreeNotFound, n, strings.Join(names, ", "))
			}
		}
		names = names[:0]
		for _, n := range cfg.Trees {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	for _, n := range names {
		total += int(counts[n])
	}
	st, err := cfg.API.Status(ctx)
	if err != nil {
		return sum, fmt.Errorf("export: status: %w", err)
	}
	sum.FromIndex = st.AppliedIndex

	db, err := sql.Open("sqlite", cfg.Path)
	if err != nil {
		return sum, fmt.Errorf("export: open %s: %w", cfg.Path, err)
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return sum, fmt.Errorf("export: %s: %w", cfg.Path, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit: a no-op
	if _, err := tx.ExecContext(ctx, `CREATE TABLE `+SchemasTable+` (tree TEXT NOT NULL, version INTEGER NOT NULL,
		hash TEXT NOT NULL, definition TEXT NOT NULL, cbor BLOB NOT NULL, PRIMARY KEY (tree, version))`); err != nil {
		return sum, fmt.Errorf("export: create %s: %w", SchemasTable, err)
	}
	bar := newProgress(cfg.Progress, "export", total)
	for _, tree := range names {
		if strings.EqualFold(tree, SchemasTable) {
			return sum, fmt.Errorf("export: tree %q: %w with the schemas table", tree, ErrColumnClash)
		}
		n, err := exportTree(ctx, cfg, tx, tree, bar)
		if err != nil {
			return sum, fmt.Errorf("export: tree %q: %w", tree, err)
		}
		sum.Trees = append(sum.Trees, TreeCount{Tree: tree, Records: n})
	}
	bar.done()
	if err := tx.Commit(); err != nil {
		return sum, fmt.Errorf("export: commit %s: %w", cfg.Path, err)
	}
	if st, err = cfg.API.Status(ctx); err != nil {
		return sum, fmt.Errorf("export: status: %w", err)
	}
	sum.ToIndex = st.AppliedIndex
	return sum, nil
}

func exportTree(ctx context.Context, cfg Config, tx *sql.Tx, tree string, bar *progress) (int, error) {
	ss, err := cfg.API.Schemas(ctx, tree)
	if err != nil {
		return 0, fmt.Errorf("schemas: %w", err)
	}
	var latest *schema.Definition
	for _, s := range ss {
		def, err := schema.Decode(s.Definition)
		if err != nil {
			return 0, fmt.Errorf("schema version %d does not decode: %w", s.Version, err)
		}
		js, err := json.Marshal(def)
		if err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+SchemasTable+` VALUES (?, ?, ?, ?, ?)`,
			tree, s.Version, s.Hash, string(js), s.Definition); err != nil {
			return 0, err
		}
		latest = &def
	}
	cols, err := columnsOf(tree, latest)
	if err != nil {
		return 0, err
	}
	defs := []string{"id INTEGER NOT NULL", "rev INTEGER NOT NULL", "schema_version INTEGER NOT NULL",
		"released INTEGER NOT NULL", "state INTEGER NOT NULL"}
	for _, c := range cols {
		defs = append(defs, quote(c.Name)+" "+c.sqlType())
	}
	defs = append(defs, "PRIMARY KEY (id, rev)")
	if _, err := tx.ExecContext(ctx, "CREATE TABLE "+quote(tree)+" ("+strings.Join(defs, ", ")+")"); err != nil {
		return 0, fmt.Errorf("create table: %w", err)
	}
	ins, err := tx.PrepareContext(ctx, "INSERT INTO "+quote(tree)+" VALUES ("+
		strings.TrimSuffix(strings.Repeat("?, ", len(metaColumns)+len(cols)), ", ")+")")
	if err != nil {
		return 0, err
	}
	defer ins.Close()
	n := 0
	var after api.Key
	for {
		p, err := cfg.API.List(ctx, tree, after, cfg.pageSize())
		if err != nil {
			return n, fmt.Errorf("list after %s: %w", after, err)
		}
		for _, r := range p.Records {
			args, err := rowOf(r, cols)
			if err != nil {
				return n, fmt.Errorf("record %s: %w", r.Key, err)
			}
			if _, err := ins.ExecContext(ctx, args...); err != nil {
				return n, fmt.Errorf("record %s: %w", r.Key, err)
			}
			n++
			bar.add(1)
		}
		if p.After == "" {
			return n, nil
		}
		next, err := api.ParseKey(p.After)
		if err != nil || next == after {
			return n, fmt.Errorf("server sent a bad cursor %q", p.After)
		}
		after = next
	}
}

// rowOf returns the cells of r's row.
func rowOf(r api.Record, cols []column) ([]any, error) {
	args := []any{int64(r.Key.ID), int64(r.Key.Rev), int64(r.Schema), boolInt(r.Released), r.State}
	var m map[string]any
	var whole any
	if len(r.Data) > 0 {
		v, err := api.DecodeGeneric(r.Data)
		if err != nil {
			return nil, err
		}
		whole = v
		m, _ = v.(map[string]any)
	}
	for _, c := range cols {
		if c.Field == "" { // schemaless
			cell, err := jsonCell(whole)
			if err != nil {
				return nil, err
			}
			args = append(args, cell)
			continue
		}
		v, ok := m[c.Field]
		if !ok || v == nil {
			args = append(args, nil)
			continue
		}
		cell, err := cellOf(c, v)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", c.Field, err)
		}
		args = append(args, cell)
	}
	return args, nil
}

// cellOf converts a decoded CBOR value to the cell of column c.
func cellOf(c column, v any) (any, error) {
	if c.Type.Kind == schema.KindKey {
		k, ok := v.(map[string]any)
		if !ok {
			return jsonCell(v) // not a key as typed writes it: keep it whole
		}
		if c.Rev {
			return intCell(k["rev"]), nil
		}
		return intCell(k["id"]), nil
	}
	switch c.Type.Kind {
	case schema.KindBool:
		if b, ok := v.(bool); ok {
			return boolInt(b), nil
		}
	case schema.KindInt, schema.KindUint:
		switch v.(type) {
		case uint64, int64:
			return intCell(v), nil
		}
	case schema.KindFloat:
		switch t := v.(type) {
		case float64:
			return t, nil
		case float32:
			return float64(t), nil
		case uint64, int64:
			return intCell(v), nil
		}
	case schema.KindString:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case schema.KindBytes:
		if b, ok := v.([]byte); ok {
			return b, nil
		}
	case schema.KindTime:
		if t, ok := v.(time.Time); ok {
			return t.UTC().Format(time.RFC3339Nano), nil
		}
	}
	// Structured kinds, and a value not of its field's kind (written
	// schemaless, say): JSON text, which import parses back.
	return jsonCell(v)
}

func intCell(v any) any {
	switch t := v.(type) {
	case int64:
		return t
	case uint64:
		if t > math.MaxInt64 {
			return fmt.Sprint(t)
		}
		return int64(t)
	}
	return nil
}

func jsonCell(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(jsonableCopy(v))
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// jsonableCopy makes a decoded CBOR value fit encoding/json (maps with
// non-string keys get their keys formatted).
func jsonableCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = jsonableCopy(e)
		}
		return m
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = jsonableCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, e := range t {
			s[i] = jsonableCopy(e)
		}
		return s
	}
	return v
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
