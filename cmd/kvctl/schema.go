package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/schema"
)

// schemaVersion is one registered schema version as kvctl schema prints
// it: the definition flattened into field paths.
type schemaVersion struct {
	Tree       string        `json:"tree"`
	Version    uint32        `json:"version"`
	Registered time.Time     `json:"registered"`
	Hash       string        `json:"hash"`
	Root       string        `json:"root"`
	Fields     []schemaField `json:"fields"`
}

// schemaField is one field path of a definition.
type schemaField struct {
	Path string `json:"path"` // stored keys: "dims.w", "lots[].code", "stock{}.count"
	Go   string `json:"go"`   // Go field names along the path: "Dims.W"
	Type string `json:"type"` // as schema TypeString: "int64", "[]struct main.Lot"
	// Recursive is set on a field whose type leads back to a struct that
	// encloses it: its fields are listed once, higher up, not again here.
	Recursive bool `json:"recursive,omitempty"`
}

func (c *cli) schemas(ctx context.Context, args []string) error {
	const line = "schema TREE [VERSION]"
	pos, err := c.parse(c.flagSet("schema"), line, args, 1, 2)
	if err != nil {
		return err
	}
	tree := pos[0]
	var want uint32
	if len(pos) == 2 {
		v, err := strconv.ParseUint(pos[1], 10, 32)
		if err != nil || v == 0 {
			return usagef(line, "schema: invalid version %q: want a positive integer", pos[1])
		}
		want = uint32(v)
	}
	ss, err := c.api().Schemas(ctx, tree)
	if err != nil {
		return err
	}
	if want != 0 {
		i := slices.IndexFunc(ss, func(s api.Schema) bool { return s.Version == want })
		if i < 0 {
			return api.Errorf(api.CodeUnknownSchema, "tree %q has no schema version %d (registered: %s)", tree, want, versions(ss))
		}
		ss = ss[i : i+1]
	}
	out := make([]schemaVersion, 0, len(ss))
	for _, s := range ss {
		def, err := schema.Decode(s.Definition)
		if err != nil {
			return fmt.Errorf("schema version %d of tree %q does not decode: %w", s.Version, tree, err)
		}
		out = append(out, schemaVersion{Tree: tree, Version: s.Version, Registered: s.Registered,
			Hash: s.Hash, Root: def.Root, Fields: flatten(def)})
	}
	return c.emit(out, func(w io.Writer) {
		if len(out) == 0 {
			fmt.Fprintf(w, "tree %s has no registered schema: its records are schemaless\n", tree)
		}
		for i, v := range out {
			if i > 0 {
				fmt.Fprintln(w)
			}
			// No tabs: the header is outside the field table's columns.
			fmt.Fprintf(w, "%s version %d  registered %s  root %s  hash %s\n",
				v.Tree, v.Version, c.when(v.Registered), v.Root, shortHash(v.Hash))
			row(w, "PATH", "GO", "TYPE")
			for _, f := range v.Fields {
				typ := f.Type
				if f.Recursive {
					typ += " (recursive)"
				}
				row(w, f.Path, f.Go, typ)
			}
		}
	})
}

// flatten lists d's fields as paths (see schema.Definition.Fields).
func flatten(d schema.Definition) []schemaField {
	fields, _ := d.Fields() // a definition the server accepted was within the limit
	out := make([]schemaField, len(fields))
	for i, f := range fields {
		out[i] = schemaField{Path: f.Path, Go: f.GoPath, Type: d.TypeString(f.Type), Recursive: f.Recursive}
	}
	return out
}

// versions lists the versions of ss for a message.
func versions(ss []api.Schema) string {
	if len(ss) == 0 {
		return "none"
	}
	vs := make([]uint32, len(ss))
	for i, s := range ss {
		vs[i] = s.Version
	}
	return join(vs)
}

// shortHash cuts a definition hash for tables (JSON has it whole).
func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return dash(h)
}
