package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/shelfdb/shelf/api"
)

func (c *cli) trees(ctx context.Context, args []string) error {
	if _, err := c.parse(c.flagSet("trees"), "trees", args, 0, 0); err != nil {
		return err
	}
	ts, err := c.api().Trees(ctx)
	if err != nil {
		return err
	}
	for i := range ts {
		ts[i].Schemas = orEmpty(ts[i].Schemas)
	}
	return c.emit(orEmpty(ts), func(w io.Writer) {
		row(w, "NAME", "RECORDS", "SCHEMAS", "CREATED")
		for _, t := range ts {
			row(w, t.Name, t.Records, join(t.Schemas), c.ago(t.Created))
		}
	})
}

func (c *cli) get(ctx context.Context, args []string) error {
	const line = "get TREE ID[/REV]"
	pos, err := c.parse(c.flagSet("get"), line, args, 2, 2)
	if err != nil {
		return err
	}
	key, err := parseKey(line, pos[1])
	if err != nil {
		return err
	}
	r, err := c.api().Get(ctx, pos[0], key)
	if err != nil {
		return err
	}
	r.FillValue()
	return c.emit(r, func(w io.Writer) {
		row(w, "tree", r.Tree)
		row(w, "key", r.Key)
		row(w, "schema", r.Schema)
		row(w, "released", yesNo(r.Released))
		row(w, "state", r.State)
		row(w, "created", c.when(r.Created)+" by "+who(r.CreatedBy, ""))
		row(w, "updated", c.when(r.Updated)+" by "+who(r.UpdatedBy, ""))
		row(w, "index", r.Index)
		if b := r.Borrow; b != nil {
			s := who(b.Client, b.ClientName) + ", since " + c.when(b.Since)
			if !b.Expires.IsZero() {
				s += ", expires " + c.when(b.Expires)
			}
			row(w, "borrowed by", s)
		} else {
			row(w, "borrowed by", "-")
		}
		if r.ValueError != "" {
			fmt.Fprintf(w, "value\n(no JSON view: %s)\n", r.ValueError)
			return
		}
		v, _ := json.MarshalIndent(r.Value, "", "  ")
		fmt.Fprintf(w, "value\n%s\n", v)
	})
}

func (c *cli) list(ctx context.Context, args []string) error {
	const line = "list TREE [-limit N] [-after ID/REV] [-all]"
	fs := c.flagSet("list")
	limit := fs.Int("limit", 0, "records per page (0: the server's default)")
	afterFlag := fs.String("after", "", "start after this key")
	all := fs.Bool("all", false, "fetch every page")
	pos, err := c.parse(fs, line, args, 1, 1)
	if err != nil {
		return err
	}
	if *limit < 0 {
		return usagef(line, "-limit %d: want a positive number", *limit)
	}
	var after api.Key
	if *afterFlag != "" {
		if after, err = parseKey(line, *afterFlag); err != nil {
			return err
		}
	}
	tree := pos[0]
	var out api.RecordPage
	for {
		p, err := c.api().List(ctx, tree, after, *limit)
		if err != nil {
			return err
		}
		out.Records = append(out.Records, p.Records...)
		out.After = p.After
		if !*all || p.After == "" {
			break
		}
		next, err := api.ParseKey(p.After)
		if err != nil || next == after {
			return fmt.Errorf("list %s: server sent a bad cursor %q", tree, p.After)
		}
		after = next
	}
	out.Records = orEmpty(out.Records)
	for i := range out.Records {
		// A record without a JSON view is listed with value_error, not
		// a failed listing.
		out.Records[i].FillValue()
	}
	return c.emit(out, func(w io.Writer) {
		c.recordTable(w, out.Records)
		if out.After != "" {
			fmt.Fprintf(c.stderr, "more records: kvctl list %s -after %s\n", tree, out.After)
		}
	})
}

func (c *cli) put(ctx context.Context, args []string) error {
	const line = "put TREE JSON|-"
	pos, err := c.parse(c.flagSet("put"), line, args, 2, 2)
	if err != nil {
		return err
	}
	src := []byte(pos[1])
	if pos[1] == "-" {
		if src, err = io.ReadAll(c.stdin); err != nil {
			return fmt.Errorf("put: read stdin: %w", err)
		}
	}
	if !json.Valid(src) {
		var v any
		err := json.Unmarshal(src, &v)
		return usagef(line, "put: the value is not valid JSON: %v", err)
	}
	var v any
	if err := api.DecodeJSON(bytes.NewReader(src), &v); err != nil {
		return usagef(line, "put: the value is not valid JSON: %v", err)
	}
	data, err := api.EncodeValue(v)
	if err != nil {
		return fmt.Errorf("put: %w", err)
	}
	var res api.WriteResult
	err = c.write(ctx, func(ctx context.Context) error {
		res, err = c.api().Create(ctx, pos[0], api.WriteRequest{Data: data})
		return err
	})
	if err != nil {
		return err
	}
	return c.emit(res, func(w io.Writer) { fmt.Fprintln(w, res.Key) })
}

// short formats v as compact JSON cut to at most n runes.
func short(v any, n int) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	if utf8.RuneCount(b) <= n {
		return string(b)
	}
	r := []rune(string(b))
	return string(r[:n-3]) + "..."
}

// recordTable writes records as the table of list and search: key,
// released, state, borrower, last update and a short JSON view.
func (c *cli) recordTable(w io.Writer, records []api.Record) {
	row(w, "KEY", "RELEASED", "STATE", "BORROWER", "UPDATED", "VALUE")
	for _, r := range records {
		borrower := "-"
		if r.Borrow != nil {
			borrower = who(r.Borrow.Client, r.Borrow.ClientName)
		}
		value := short(r.Value, 60)
		if r.ValueError != "" {
			value = "(no JSON view: " + r.ValueError + ")"
		}
		row(w, r.Key, yesNo(r.Released), r.State, borrower, c.ago(r.Updated), value)
	}
}
