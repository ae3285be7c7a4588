package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/shelfdb/shelf/internal/sqlexport"
)

const (
	exportLine = "export --sqlite FILE [TREE...] [-q]"
	importLine = "import --sqlite FILE [-q] [--client NAME]"
)

// export writes trees to a new SQLite file (package sqlexport).
func (c *cli) export(ctx context.Context, args []string) error {
	fs := c.flagSet("export")
	file := fs.String("sqlite", "", "the SQLite file to write (must not exist)")
	quiet := fs.Bool("q", false, "no progress on stderr")
	trees, err := c.parse(fs, exportLine, args, 0, 1<<20)
	if err != nil {
		return err
	}
	if *file == "" {
		return usagef(exportLine, "export: --sqlite FILE is required")
	}
	sum, err := sqlexport.Export(ctx, sqlexport.Config{API: c.api(), Path: *file, Trees: trees,
		Progress: c.progressTo(*quiet), Logger: c.sqlLogger()})
	if err != nil {
		return err
	}
	return c.emit(sum, func(w io.Writer) {
		row(w, "TREE", "RECORDS")
		for _, t := range sum.Trees {
			row(w, t.Tree, t.Records)
		}
		if sum.FromIndex != sum.ToIndex {
			fmt.Fprintf(c.stderr, "note: the cluster changed during the export (applied index %d to %d): records were read as each page saw them\n", sum.FromIndex, sum.ToIndex)
		}
	})
}

// imports applies a SQLite file written by export to the cluster.
func (c *cli) imports(ctx context.Context, args []string) error {
	fs := c.flagSet("import")
	file := fs.String("sqlite", "", "the SQLite file to read (written by kvctl export --sqlite)")
	quiet := fs.Bool("q", false, "no progress on stderr")
	name := fs.String("client", "kvctl-import", "name of the client registered to borrow the records import changes")
	if _, err := c.parse(fs, importLine, args, 0, 0); err != nil {
		return err
	}
	if *file == "" {
		return usagef(importLine, "import: --sqlite FILE is required")
	}
	sum, err := sqlexport.Import(ctx, sqlexport.Config{API: c.api(), Path: *file, ClientName: *name,
		Progress: c.progressTo(*quiet), Logger: c.sqlLogger()})
	if err != nil {
		return err
	}
	return c.emit(sum, func(w io.Writer) {
		for _, r := range sum.Refused {
			fmt.Fprintf(w, "refused %s/%s: %s\n", r.Tree, r.Key, r.Reason)
		}
		fmt.Fprintf(w, "created %d, updated %d, unchanged %d, refused %d\n", sum.Created, sum.Updated, sum.Unchanged, len(sum.Refused))
	})
}

// progressTo returns stderr for a progress bar when it is a terminal and
// not quiet, else nil.
func (c *cli) progressTo(quiet bool) io.Writer {
	if quiet || !isTerminal(c.stderr) {
		return nil
	}
	return c.stderr
}

// sqlLogger drops sqlexport's log lines: refusals are in the summary.
func (c *cli) sqlLogger() *slog.Logger {
	return slog.New(slog.DiscardHandler)
}
