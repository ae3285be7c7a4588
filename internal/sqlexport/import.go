package sqlexport

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/schema"
)

// Refusal is one row import did not apply, and why.
type Refusal struct {
	Tree   string  `json:"tree"`
	Key    api.Key `json:"key"` // the key in the file
	Reason string  `json:"reason"`
}

// ImportSummary counts what an import did.
type ImportSummary struct {
	Created   int       `json:"created"`
	Updated   int       `json:"updated"`
	Unchanged int       `json:"unchanged"`
	Refused   []Refusal `json:"refused"`
	// IDs maps ids of the file to the ids the cluster gave the records
	// import created (ids are assigned by the cluster, never chosen).
	IDs map[uint64]uint64 `json:"ids,omitempty"`
}

// borrowTTL bounds the borrows import takes, should it die holding one.
const borrowTTL = 5 * time.Minute

// sqliteMagic starts every SQLite database file.
var sqliteMagic = []byte("SQLite format 3\x00")

// srcSchema is one row of shelf_schemas.
type srcSchema struct {
	version uint32
	hash    string
	cbor    []byte
	def     schema.Definition
}

// srcTable is one tree table of the file, read and checked in full.
type srcTable struct {
	tree    string
	schemas []srcSchema
	latest  *schema.Definition
	cols    []column
	rows    []srcRow
	hasKeys bool
	// missing lists the fields whose column the table lacks: import
	// keeps an existing record's value of them.
	missing []string
}

type srcRow struct {
	key      api.Key
	schema   uint32
	released bool
	state    int64
	value    any // map[string]any for a schema'd tree
}

// Import reads a file written by Export and applies it to the cluster:
// a row whose record (same tree, id and revision) exists is compared and,
// when it differs, updated under a borrow taken by a client registered
// as cfg.ClientName and returned on every path; a released record is
// never changed (a differing row is refused). A row whose record does not
// exist is created: the cluster assigns its id, and keys that other rows
// hold to the file's id are rewritten to the new one (trees without key
// fields are imported first). Revision r > 1 is made by revising revision
// r-1, which must be released. Released and state are applied as in the
// file; created, updated, borrowed-by and the raft index are the import's.
//
// The whole file is read and checked before anything is written: a file
// that is not SQLite, an unknown column or a cell of the wrong type is an
// error and nothing is imported. Refusals by the cluster (borrowed by
// another client, released, incompatible value) are reported and the
// import goes on.
func Import(ctx context.Context, cfg Config) (ImportSummary, error) {
	sum := ImportSummary{Refused: []Refusal{}, IDs: map[uint64]uint64{}}
	tables, err := readFile(ctx, cfg.Path)
	if err != nil {
		return sum, fmt.Errorf("import %s: %w", cfg.Path, err)
	}
	name := cfg.ClientName
	if name == "" {
		name = "kvctl-import"
	}
	cl, err := cfg.API.RegisterClient(ctx, name)
	if err != nil {
		return sum, fmt.Errorf("import: register client %q: %w", name, err)
	}
	total := 0
	for _, t := range tables {
		total += len(t.rows)
	}
	im := &importer{cfg: cfg, client: cl.ID, sum: &sum, created: map[uint64]bool{},
		bar: newProgress(cfg.Progress, "import", total)}
	defer im.bar.done()
	for _, t := range tables {
		versions, err := im.schemas(ctx, t)
		if err != nil {
			return sum, fmt.Errorf("import: tree %q: %w", t.tree, err)
		}
		for _, r := range t.rows {
			if err := im.row(ctx, t, versions, r); err != nil {
				return sum, fmt.Errorf("import: %s/%s: %w", t.tree, r.key, err)
			}
			im.bar.add(1)
		}
	}
	return sum, nil
}

// readFile reads and checks every table of the file.
func readFile(ctx context.Context, path string) ([]*srcTable, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	head := make([]byte, len(sqliteMagic))
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil || !bytes.Equal(head, sqliteMagic) {
		return nil, ErrNotSQLite
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var names []string
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotSQLite, err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	if !slices.Contains(names, SchemasTable) {
		return nil, fmt.Errorf("%w: no %s table", ErrNotExport, SchemasTable)
	}
	schemas := map[string][]srcSchema{}
	rows, err = db.QueryContext(ctx, `SELECT tree, version, hash, cbor FROM `+SchemasTable+` ORDER BY tree, version`)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotExport, SchemasTable, err)
	}
	for rows.Next() {
		var tree string
		var s srcSchema
		if err := rows.Scan(&tree, &s.version, &s.hash, &s.cbor); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%w: %s: %v", ErrBadValue, SchemasTable, err)
		}
		if s.def, err = schema.Decode(s.cbor); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%s: tree %q version %d: %w", SchemasTable, tree, s.version, err)
		}
		schemas[tree] = append(schemas[tree], s)
	}
	rows.Close()
	var out []*srcTable
	for _, n := range names {
		if n == SchemasTable {
			continue
		}
		t := &srcTable{tree: n, schemas: schemas[n]}
		if len(t.schemas) > 0 {
			t.latest = &t.schemas[len(t.schemas)-1].def
		}
		if t.cols, err = columnsOf(n, t.latest); err != nil {
			return nil, err
		}
		for _, c := range t.cols {
			t.hasKeys = t.hasKeys || hasKey(t.latest, c.Type, 0)
		}
		if err := readTable(ctx, db, t); err != nil {
			return nil, fmt.Errorf("table %q: %w", n, err)
		}
		out = append(out, t)
	}
	// Trees holding keys go last, so that the records their keys name
	// exist (with their new ids) when they are written.
	slices.SortStableFunc(out, func(a, b *srcTable) int {
		switch {
		case a.hasKeys == b.hasKeys:
			return 0
		case a.hasKeys:
			return 1
		}
		return -1
	})
	return out, nil
}

// hasKey reports whether values of t hold keys.
func hasKey(d *schema.Definition, t schema.Type, depth int) bool {
	if d == nil || depth > 32 {
		return false
	}
	switch t.Kind {
	case schema.KindKey:
		return true
	case schema.KindSlice, schema.KindMap:
		return t.Elem != nil && hasKey(d, *t.Elem, depth+1)
	case schema.KindStruct:
		for _, f := range d.Types[t.Ref].Fields {
			if hasKey(d, f.Type, depth+1) {
				return true
			}
		}
	}
	return false
}

func readTable(ctx context.Context, db *sql.DB, t *srcTable) error {
	have := map[string]bool{}
	rows, err := db.QueryContext(ctx, "SELECT name FROM pragma_table_info(?)", t.tree)
	if err != nil {
		return err
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		have[n] = true
	}
	rows.Close()
	known := map[string]bool{}
	for _, m := range metaColumns {
		if !have[m] {
			return fmt.Errorf("%w: no column %q", ErrNotExport, m)
		}
		known[m] = true
	}
	var cols []column
	for _, c := range t.cols {
		known[c.Name] = true
		if have[c.Name] {
			cols = append(cols, c)
		} else if c.Field != "" && !slices.Contains(t.missing, c.Field) {
			t.missing = append(t.missing, c.Field)
		}
	}
	for n := range have {
		if !known[n] {
			return fmt.Errorf("%w %q: the tree's schema has no such field", ErrUnknownColumn, n)
		}
	}
	sel := slices.Clone(metaColumns)
	for _, c := range cols {
		sel = append(sel, quote(c.Name))
	}
	rows, err = db.QueryContext(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+quote(t.tree)+" ORDER BY id, rev")
	if err != nil {
		return err
	}
	defer rows.Close()
	cells := make([]any, len(sel))
	ptrs := make([]any, len(sel))
	for i := range cells {
		ptrs[i] = &cells[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		r, err := parseRow(t, cols, cells)
		if err != nil {
			return err
		}
		t.rows = append(t.rows, r)
	}
	return rows.Err()
}

func parseRow(t *srcTable, cols []column, cells []any) (srcRow, error) {
	var r srcRow
	meta := make([]int64, len(metaColumns))
	for i, m := range metaColumns {
		n, ok := cells[i].(int64)
		if !ok || n < 0 && m != "state" {
			return r, fmt.Errorf("row %d: column %q: %w: %v (want a non-negative integer)", len(t.rows)+1, m, ErrBadValue, cells[i])
		}
		meta[i] = n
	}
	if meta[0] == 0 || meta[1] == 0 || meta[1] > math.MaxUint32 || meta[2] > math.MaxUint32 || meta[3] > 1 {
		return r, fmt.Errorf("row %d: %w: id %d, rev %d, schema_version %d, released %d", len(t.rows)+1, ErrBadValue, meta[0], meta[1], meta[2], meta[3])
	}
	r = srcRow{key: api.Key{ID: uint64(meta[0]), Rev: uint32(meta[1])}, schema: uint32(meta[2]), released: meta[3] == 1, state: meta[4]}
	if t.latest == nil {
		if len(cols) == 1 && cells[len(metaColumns)] != nil {
			v, err := parseJSON(cells[len(metaColumns)])
			if err != nil {
				return r, fmt.Errorf("row %s: column %q: %w", r.key, valueColumn, err)
			}
			r.value = v
		}
		return r, nil
	}
	m := map[string]any{}
	for i, c := range cols {
		cell := cells[len(metaColumns)+i]
		if cell == nil { // absent, or null: a reader sees the zero value either way
			continue
		}
		v, err := parseCell(c, cell)
		if err != nil {
			return r, fmt.Errorf("row %s: column %q: %w", r.key, c.Name, err)
		}
		if c.Type.Kind == schema.KindKey {
			k, _ := m[c.Field].(map[string]any)
			if k == nil {
				k = map[string]any{"id": uint64(0), "rev": uint64(0)}
			}
			if c.Rev {
				k["rev"] = v
			} else {
				k["id"] = v
			}
			m[c.Field] = k
			continue
		}
		m[c.Field] = v
	}
	r.value = m
	return r, nil
}

// parseCell converts a cell to the value of column c's field.
func parseCell(c column, cell any) (any, error) {
	bad := func(want string) error {
		return fmt.Errorf("%w: %s %v (want %s)", ErrBadValue, sqlKind(cell), short(cell), want)
	}
	if c.Type.Kind == schema.KindKey {
		n, ok := cell.(int64)
		if !ok || n < 0 {
			if c.Rev {
				return nil, bad("a revision number")
			}
			return nil, bad("a record id")
		}
		return uint64(n), nil
	}
	switch c.Type.Kind {
	case schema.KindBool:
		if n, ok := cell.(int64); ok && (n == 0 || n == 1) {
			return n == 1, nil
		}
		return nil, bad("0 or 1")
	case schema.KindInt:
		if n, ok := cell.(int64); ok {
			return n, nil
		}
		return nil, bad("an integer")
	case schema.KindUint:
		switch t := cell.(type) {
		case int64:
			if t >= 0 {
				return uint64(t), nil
			}
		case string:
			if n, err := strconv.ParseUint(t, 10, 64); err == nil {
				return n, nil
			}
		}
		return nil, bad("an unsigned integer")
	case schema.KindFloat:
		switch t := cell.(type) {
		case float64:
			return t, nil
		case int64:
			return float64(t), nil
		}
		return nil, bad("a number")
	case schema.KindString:
		if s, ok := cell.(string); ok {
			return s, nil
		}
		return nil, bad("text")
	case schema.KindBytes:
		switch t := cell.(type) {
		case []byte:
			return t, nil
		case string:
			return []byte(t), nil
		}
		return nil, bad("a blob")
	case schema.KindTime:
		if s, ok := cell.(string); ok {
			if tm, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return tm, nil
			}
		}
		return nil, bad("an RFC 3339 time")
	}
	return parseJSON(cell)
}

// parseJSON parses a JSON text cell (numbers become integers where whole).
func parseJSON(cell any) (any, error) {
	var src []byte
	switch t := cell.(type) {
	case string:
		src = []byte(t)
	case []byte:
		src = t
	default:
		return nil, fmt.Errorf("%w: %s %v (want JSON text)", ErrBadValue, sqlKind(cell), short(cell))
	}
	var v any
	if err := api.DecodeJSON(bytes.NewReader(src), &v); err != nil {
		return nil, fmt.Errorf("%w: not JSON: %v", ErrBadValue, err)
	}
	return v, nil
}

func sqlKind(cell any) string {
	switch cell.(type) {
	case int64:
		return "integer"
	case float64:
		return "real"
	case string:
		return "text"
	case []byte:
		return "blob"
	}
	return fmt.Sprintf("%T", cell)
}

func short(cell any) string {
	s := fmt.Sprintf("%q", fmt.Sprint(cell))
	if len(s) > 40 {
		s = s[:37] + `..."`
	}
	return s
}

// importer applies rows to the cluster.
type importer struct {
	cfg     Config
	client  string
	sum     *ImportSummary
	created map[uint64]bool // ids the cluster gave records created by this import
	bar     *progress
}

// schemas registers the file's schema versions of t that the cluster
// lacks (by hash) and maps the file's versions to the cluster's.
func (im *importer) schemas(ctx context.Context, t *srcTable) (map[uint32]uint32, error) {
	have, err := im.cfg.API.Schemas(ctx, t.tree)
	if err != nil && !errors.Is(err, api.ErrTreeNotFound) && !errors.Is(err, api.ErrNotFound) {
		return nil, fmt.Errorf("schemas: %w", err)
	}
	out := map[uint32]uint32{0: 0}
	for _, s := range t.schemas {
		i := slices.IndexFunc(have, func(h api.Schema) bool { return h.Hash == s.hash })
		if i >= 0 {
			out[s.version] = have[i].Version
			continue
		}
		res, err := im.cfg.API.RegisterSchema(ctx, t.tree, s.cbor)
		if err != nil {
			return nil, fmt.Errorf("register schema version %d: %w", s.version, err)
		}
		out[s.version] = res.Version
	}
	return out, nil
}

func (im *importer) refuse(tree string, k api.Key, err error) {
	im.sum.Refused = append(im.sum.Refused, Refusal{Tree: tree, Key: k, Reason: err.Error()})
	im.cfg.logger().Warn("import: refused", "tree", tree, "key", k.String(), "reason", err.Error())
}

// row applies one row. Refusals are recorded; the error is for failures
// that stop the import (the cluster unreachable, a broken answer).
func (im *importer) row(ctx context.Context, t *srcTable, versions map[uint32]uint32, r srcRow) error {
	ver, ok := versions[r.schema]
	if !ok {
		im.refuse(t.tree, r.key, fmt.Errorf("schema version %d is not in %s", r.schema, SchemasTable))
		return nil
	}
	val := r.value
	if t.latest != nil {
		val = restore(t.latest, schema.Type{Kind: schema.KindStruct, Ref: t.latest.Root}, val, im.sum.IDs, 0)
	}
	data, err := api.EncodeValue(val)
	if err != nil {
		im.refuse(t.tree, r.key, fmt.Errorf("incompatible value: %w", err))
		return nil
	}
	c := im.cfg.API
	id, mapped := im.sum.IDs[r.key.ID]
	if !mapped {
		id = r.key.ID
	}
	target := apiKey(id, r.key.Rev)
	var cur *currentRecord
	if mapped || !im.created[id] {
		rec, err := c.Get(ctx, t.tree, target)
		switch {
		case err == nil:
			cur = &currentRecord{rec}
		case isNotFound(err):
		default:
			return err
		}
	}
	if cur == nil {
		return im.create(ctx, t, r, ver, data)
	}
	if len(t.missing) > 0 {
		if data, err = keepMissing(t.missing, cur.rec.Data, val); err != nil {
			im.refuse(t.tree, r.key, fmt.Errorf("incompatible value: %w", err))
			return nil
		}
	}
	same := cur.rec.Schema == ver && sameValue(cur.rec.Data, data)
	if cur.rec.Released {
		if !r.released {
			im.refuse(t.tree, r.key, fmt.Errorf("record %s is released, the row is a draft: a release cannot be undone", target))
			return nil
		}
		if !same {
			im.refuse(t.tree, r.key, fmt.Errorf("record %s is released and differs from the row: not changed", target))
			return nil
		}
		if cur.rec.State != r.state {
			if _, err := c.SetState(ctx, t.tree, target, im.client, r.state); err != nil {
				im.refuse(t.tree, r.key, err)
				return nil
			}
			im.sum.Updated++
			return nil
		}
		im.sum.Unchanged++
		return nil
	}
	if same && !r.released && cur.rec.State == r.state {
		im.sum.Unchanged++
		return nil
	}
	if !same || r.released {
		err := im.borrowed(ctx, t.tree, target, r.released, func() error {
			if same {
				return nil
			}
			_, err := c.Update(ctx, t.tree, target, apiWrite(im.client, ver, data))
			return err
		})
		if err != nil {
			im.refuse(t.tree, r.key, err)
			return nil
		}
	}
	if cur.rec.State != r.state {
		if _, err := c.SetState(ctx, t.tree, target, im.client, r.state); err != nil {
			im.refuse(t.tree, r.key, err)
			return nil
		}
	}
	im.sum.Updated++
	return nil
}

type currentRecord struct{ rec api.Record }

// keepMissing encodes val with the fields named in missing taken from the
// record's current bytes.
func keepMissing(missing []string, current []byte, val any) ([]byte, error) {
	m, ok := val.(map[string]any)
	if !ok {
		return api.EncodeValue(val)
	}
	cur, err := api.DecodeGeneric(current)
	if err != nil {
		return nil, err
	}
	if cm, ok := cur.(map[string]any); ok {
		for _, f := range missing {
			if v, ok := cm[f]; ok {
				m[f] = v
			}
		}
	}
	return api.EncodeValue(m)
}

// create makes the record of a row that the cluster does not have.
func (im *importer) create(ctx context.Context, t *srcTable, r srcRow, ver uint32, data []byte) error {
	c := im.cfg.API
	var key api.Key
	if r.key.Rev == 1 {
		res, err := c.Create(ctx, t.tree, apiWrite(im.client, ver, data))
		if err != nil {
			im.refuse(t.tree, r.key, err)
			return nil
		}
		key = res.Key
		if r.released {
			if err := im.borrowed(ctx, t.tree, key, true, func() error { return nil }); err != nil {
				im.refuse(t.tree, r.key, err)
			}
		}
	} else {
		prevID, ok := im.sum.IDs[r.key.ID]
		if !ok {
			prevID = r.key.ID
		}
		res, err := c.Revise(ctx, t.tree, apiKey(prevID, r.key.Rev-1), im.client)
		if err != nil {
			im.refuse(t.tree, r.key, fmt.Errorf("revise %d/%d to make revision %d: %w", prevID, r.key.Rev-1, r.key.Rev, err))
			return nil
		}
		key = res.Key
		// Revise leaves the new revision borrowed by us.
		err = im.held(ctx, t.tree, key, r.released, func() error {
			if key.Rev != r.key.Rev {
				return fmt.Errorf("revise made revision %d, the row is revision %d", key.Rev, r.key.Rev)
			}
			_, err := c.Update(ctx, t.tree, key, apiWrite(im.client, ver, data))
			return err
		})
		if err != nil {
			im.refuse(t.tree, r.key, err)
			return nil
		}
	}
	if key.ID != r.key.ID {
		im.sum.IDs[r.key.ID] = key.ID
	}
	im.created[key.ID] = true
	im.sum.Created++
	if r.state != 0 {
		if _, err := c.SetState(ctx, t.tree, key, im.client, r.state); err != nil {
			im.refuse(t.tree, r.key, fmt.Errorf("set state %d: %w", r.state, err))
		}
	}
	return nil
}

// borrowed borrows key, runs fn, and releases the record (release) or
// returns the borrow: the borrow ends on every path.
func (im *importer) borrowed(ctx context.Context, tree string, key api.Key, release bool, fn func() error) error {
	if _, err := im.cfg.API.Borrow(ctx, tree, key, im.client, borrowTTL); err != nil {
		return err
	}
	return im.held(ctx, tree, key, release, fn)
}

// held runs fn on a record we hold, then releases it or returns it.
func (im *importer) held(ctx context.Context, tree string, key api.Key, release bool, fn func() error) error {
	if err := fn(); err != nil {
		if _, rerr := im.cfg.API.Return(context.WithoutCancel(ctx), tree, key, im.client); rerr != nil {
			return fmt.Errorf("%w (and returning the borrow failed: %v)", err, rerr)
		}
		return err
	}
	if release {
		if _, err := im.cfg.API.Release(ctx, tree, key, im.client); err != nil {
			im.cfg.API.Return(context.WithoutCancel(ctx), tree, key, im.client) //nolint:errcheck // the release error says more
			return err
		}
		return nil
	}
	_, err := im.cfg.API.Return(ctx, tree, key, im.client)
	return err
}

// restore walks v, of type t, as parsed from JSON, back to what the
// record's writer stored: keys that import gave new ids get them, maps
// with integer keys get integer keys again, times and byte strings
// (JSON text and base64) become time and bytes. A value it cannot
// convert is left as it is (the cluster or the reader then judges it).
func restore(d *schema.Definition, t schema.Type, v any, ids map[uint64]uint64, depth int) any {
	if v == nil || depth > api.MaxDepth {
		return v
	}
	switch t.Kind {
	case schema.KindKey:
		if m, ok := v.(map[string]any); ok {
			if id, ok := asUint(m["id"]); ok {
				if n, ok := ids[id]; ok {
					m["id"] = n
				}
			}
		}
	case schema.KindTime:
		if s, ok := v.(string); ok {
			if tm, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return tm
			}
		}
	case schema.KindBytes:
		if s, ok := v.(string); ok {
			if b, err := base64.StdEncoding.DecodeString(s); err == nil {
				return b
			}
		}
	case schema.KindStruct:
		if m, ok := v.(map[string]any); ok {
			for _, f := range d.Types[t.Ref].Fields {
				if e, ok := m[f.Name]; ok {
					m[f.Name] = restore(d, f.Type, e, ids, depth+1)
				}
			}
		}
	case schema.KindSlice:
		if s, ok := v.([]any); ok && t.Elem != nil {
			for i := range s {
				s[i] = restore(d, *t.Elem, s[i], ids, depth+1)
			}
		}
	case schema.KindMap:
		m, ok := v.(map[string]any)
		if !ok || t.Elem == nil {
			return v
		}
		for k, e := range m {
			m[k] = restore(d, *t.Elem, e, ids, depth+1)
		}
		if t.Key == nil || (t.Key.Kind != schema.KindInt && t.Key.Kind != schema.KindUint) {
			return m
		}
		out := make(map[any]any, len(m))
		for k, e := range m {
			if t.Key.Kind == schema.KindInt {
				n, err := strconv.ParseInt(k, 10, 64)
				if err != nil {
					return m
				}
				out[n] = e
			} else {
				n, err := strconv.ParseUint(k, 10, 64)
				if err != nil {
					return m
				}
				out[n] = e
			}
		}
		return out
	}
	return v
}

func asUint(v any) (uint64, bool) {
	switch t := v.(type) {
	case uint64:
		return t, true
	case int64:
		return uint64(t), t >= 0
	case float64:
		return uint64(t), t >= 0 && t == math.Trunc(t)
	}
	return 0, false
}

// sameValue reports whether two records' CBOR bytes hold the same value.
func sameValue(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	ja, ea := canonical(a)
	jb, eb := canonical(b)
	return ea == nil && eb == nil && ja == jb
}

func canonical(data []byte) (string, error) {
	if len(data) == 0 {
		return "null", nil
	}
	v, err := api.DecodeGeneric(data)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(dropNulls(jsonableCopy(v)))
	return string(b), err
}

// dropNulls removes the null entries of maps: a field stored as null and
// one left out read the same (export writes both as NULL).
func dropNulls(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if e == nil {
				delete(t, k)
			} else {
				t[k] = dropNulls(e)
			}
		}
	case []any:
		for i, e := range t {
			t[i] = dropNulls(e)
		}
	}
	return v
}

func isNotFound(err error) bool {
	return errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrTreeNotFound)
}

func apiKey(id uint64, rev uint32) api.Key { return api.Key{ID: id, Rev: rev} }

func apiWrite(client string, ver uint32, data []byte) api.WriteRequest {
	return api.WriteRequest{Client: client, Schema: ver, Data: data}
}
