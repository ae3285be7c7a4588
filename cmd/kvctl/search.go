package main

import (
	"context"
	"fmt"
	"io"

	"github.com/shelfdb/shelf/api"
)

const searchLine = "search TREE FIELD OP VALUE [-sort PATH] [-desc] [-limit N] [-offset N] [-scan N] [-revisions]"

// search searches a tree's records by a field's value
// (GET /v1/trees/{tree}/search).
func (c *cli) search(ctx context.Context, args []string) error {
	fs := c.flagSet("search")
	sort := fs.String("sort", "", "sort the matches by this dot path (id: by key; default key order)")
	desc := fs.Bool("desc", false, "sort in descending order")
	limit := fs.Int("limit", 0, "matches to show (0: the server's default, 50; at most 1000)")
	offset := fs.Int("offset", 0, "matches to skip first")
	scan := fs.Int("scan", 0, "records to examine at most (0: the server's default, 100000; at most 1000000)")
	revisions := fs.Bool("revisions", false, "search every stored revision, not only the latest of each id")
	pos, err := c.parse(fs, searchLine, args, 4, 4)
	if err != nil {
		return err
	}
	switch {
	case *limit < 0:
		return usagef(searchLine, "-limit %d: want a positive number", *limit)
	case *offset < 0:
		return usagef(searchLine, "-offset %d: want 0 or a positive number", *offset)
	case *scan < 0:
		return usagef(searchLine, "-scan %d: want a positive number", *scan)
	}
	tree := pos[0]
	q := api.SearchQuery{Field: pos[1], Op: pos[2], Value: pos[3], Sort: *sort, Desc: *desc,
		Limit: *limit, Offset: *offset, Scan: *scan, Revisions: *revisions}
	res, err := c.api().Search(ctx, tree, q)
	if err != nil {
		return err
	}
	for i := range res.Records {
		res.Records[i].FillValue()
	}
	return c.emit(res, func(w io.Writer) {
		c.recordTable(w, res.Records)
		fmt.Fprintf(c.stderr, "%d shown of %d matches; %d records examined\n", len(res.Records), res.Total, res.Scanned)
		if res.Truncated {
			fmt.Fprintf(c.stderr, "the scan stopped before the end of the tree: raise -scan (at most %d) or narrow the search\n", api.MaxSearchScan)
		}
	})
}
