// Command inventory is a small program written against Shelf's typed API:
// a stock of electronic parts and the boards built from them.
//
//	go run ./examples/inventory [-s ADDR] [-dir DIR] demo|watch|list|migrate
//
// It embeds a client (package client), which keeps a full replica of the
// cluster in -dir, and works on two typed trees:
//
//   - "parts" holds Part records. A part is released before a board may
//     use it; a change to a released part is a new revision (Revise).
//   - "boards" holds Board records, whose lines point at part revisions by
//     typed.Key[Part]: a board keeps the revisions it was designed with.
//
// Commands:
//
//	demo     create and release parts, build and release a board on them,
//	         revise a part, put the board in production, find parts by name
//	watch    print the changes of both trees as they happen, until Ctrl-C
//	list     print every part and board with its released, state and borrow
//	migrate  rewrite parts written with an older schema (or none, by
//	         kvctl put) at the current one; a missing package becomes "unknown"
//
// Flags also read environment variables: -s SHELF_HTTP, -dir INVENTORY_DIR,
// -name INVENTORY_NAME, -log-level SHELF_LOG_LEVEL; the command line wins.
// Two programs cannot share a replica: give each its own -dir. The exit
// status is 0 on success, 2 for a bad command line and 1 for any failure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/shelfdb/shelf/client"
	"github.com/shelfdb/shelf/typed"
)

// Part is a component in stock. Records are CBOR maps keyed by the codec tags.
type Part struct {
	Name    string `codec:"name"`
	Value   string `codec:"value"`
	Package string `codec:"package"`
	Qty     int    `codec:"qty"`
}

func (p Part) String() string { return fmt.Sprintf("%s %s %s ×%d", p.Name, p.Value, p.Package, p.Qty) }

// Board is a design: the part revisions it is built from.
type Board struct {
	Name  string      `codec:"name"`
	Parts []BoardLine `codec:"parts"`
}

// BoardLine is one line of a board's bill of materials.
type BoardLine struct {
	Part typed.Key[Part] `codec:"part"` // a released revision, e.g. 3/1
	Qty  int             `codec:"qty"`
}

func (b Board) String() string {
	s := b.Name + ":"
	for _, l := range b.Parts {
		s += fmt.Sprintf(" %d×%s", l.Qty, l.Part)
	}
	return s
}

// StateInProduction is the state number of a released board being built.
// A released record never changes, except for its state number.
const StateInProduction = 2

var stateNames = map[int64]string{0: "-", 1: "prototype", StateInProduction: "in production", 3: "obsolete"}

// app is an open client with the inventory's trees.
type app struct {
	db     *client.DB
	parts  *typed.Tree[Part]
	boards *typed.Tree[Board]
	byName typed.Index[Part] // parts by name, kept in the local replica
	out    io.Writer
}

// open opens the client, waits until its replica has caught up with the
// cluster and opens the trees (registering the schemas of Part and Board).
// With offlineOK, a cluster that does not answer leaves the replica as it is.
func open(ctx context.Context, cfg client.Config, out io.Writer, offlineOK bool) (*app, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	db, err := client.Open(ctx, cfg)
	if errors.Is(err, client.ErrOffline) {
		return nil, fmt.Errorf("%w (is a node running? go run ./cmd/kvnode -dev)", err)
	} else if err != nil {
		return nil, err
	}
	a := &app{db: db, out: out}
	wait := 15 * time.Second
	if offlineOK {
		wait = 3 * time.Second // the replica is readable without the cluster
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err = db.WaitSynced(wctx); err != nil { // caught up, and following a server
		if !offlineOK || ctx.Err() != nil {
			db.Close()
			return nil, fmt.Errorf("cannot reach the cluster at %v: %w", cfg.Servers, err)
		}
		cfg.Logger.Warn("offline: showing the local replica", "applied", db.AppliedIndex(), "err", err)
	}
	a.parts, err = typed.Open[Part](ctx, db, "parts")
	if err == nil {
		a.boards, err = typed.Open[Board](ctx, db, "boards")
	}
	if err == nil {
		a.byName, err = typed.NewIndex(a.parts, "by-name", func(p Part) []string { return []string{p.Name} })
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	cfg.Logger.Info("opened", "dir", cfg.Dir, "client", db.ClientID(), "applied", db.AppliedIndex(),
		"parts_schema", a.parts.Version(), "boards_schema", a.boards.Version())
	return a, nil
}

// Close closes the client.
func (a *app) Close() error { return a.db.Close() }

// createReleased creates a record and releases it. A new record is not
// borrowed, not even by its creator: releasing needs a check-out first.
func createReleased[T any](ctx context.Context, t *typed.Tree[T], v T) (typed.Key[T], error) {
	k, err := t.Create(ctx, v)
	if err == nil {
		err = t.Checkout(ctx, k)
	}
	if err == nil {
		err = t.Release(ctx, k) // ends the borrow
	}
	if err != nil {
		return k, fmt.Errorf("create and release %v in %s: %w", v, t.Name(), err)
	}
	return k, nil
}

// demo walks through the life of parts and a board and returns the
// board's key. Each run creates new records.
func (a *app) demo(ctx context.Context) (typed.Key[Board], error) {
	stock := []BoardLine{{Qty: 4}, {Qty: 2}, {Qty: 1}}
	for i, p := range []Part{
		{Name: "R-10k", Value: "10kΩ", Package: "0603", Qty: 5000},
		{Name: "C-100n", Value: "100nF", Package: "0603", Qty: 4000},
		{Name: "MCU", Value: "STM32G031", Package: "TSSOP-20", Qty: 120},
	} {
		k, err := createReleased(ctx, a.parts, p)
		if err != nil {
			return typed.Key[Board]{}, err
		}
		fmt.Fprintf(a.out, "part  %-5s %v (released)\n", k, p)
		stock[i].Part = k
	}
	// A board refers to released part revisions only: they never change.
	for _, l := range stock {
		if rec, err := a.parts.Record(l.Part); err != nil || !rec.Released {
			return typed.Key[Board]{}, fmt.Errorf("board line %v: part not released (%v)", l.Part, err)
		}
	}
	board, err := createReleased(ctx, a.boards, Board{Name: "blinky", Parts: stock})
	if err != nil {
		return board, err
	}
	fmt.Fprintf(a.out, "board %-5s released\n", board)

	// A released part changes by revision: Revise makes a draft of the next
	// revision, borrowed by us, to update and release. The board keeps rev 1.
	r2, err := a.parts.Revise(ctx, stock[0].Part)
	if err == nil {
		err = a.parts.Update(ctx, r2, func(p *Part) error { p.Value = "10kΩ 1%"; return nil })
	}
	if err == nil {
		err = a.parts.Release(ctx, r2)
	}
	if err != nil {
		return board, fmt.Errorf("revise part %v: %w", stock[0].Part, err)
	}
	fmt.Fprintf(a.out, "part  %-5s revised and released\n", r2)

	if err := a.boards.SetState(ctx, board, StateInProduction); err != nil {
		return board, fmt.Errorf("set the state of board %v: %w", board, err)
	}
	fmt.Fprintf(a.out, "board %-5s state %d (%s)\n", board, StateInProduction, stateNames[StateInProduction])

	keys, err := a.byName.Lookup("R-10k") // every revision of every run
	if err != nil {
		return board, err
	}
	fmt.Fprintf(a.out, "parts named R-10k: %d\n", len(keys))
	for _, k := range keys {
		if rec, err := a.parts.Record(k); err == nil {
			fmt.Fprintf(a.out, "  %-5s %v released=%v\n", k, rec.Value, rec.Released)
		}
	}
	return board, a.printBoard(board)
}

// printBoard prints a board with its lines resolved to their parts.
func (a *app) printBoard(k typed.Key[Board]) error {
	b, err := a.boards.Record(k)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.out, "\nboard %q %v: released=%v state=%d (%s)\n", b.Value.Name, k, b.Released, b.State, stateNames[b.State])
	tw := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  QTY\tPART\tREVISION\tRELEASED\tVALUE\tPACKAGE\tLATEST REVISION")
	for _, l := range b.Value.Parts {
		p, err := a.parts.Record(l.Part)
		if err != nil {
			return fmt.Errorf("board %v line %v: %w", k, l.Part, err)
		}
		latest, err := a.parts.Record(l.Part.Latest())
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "  %d\t%s\t%v\t%v\t%s\t%s\t%v\n", l.Qty, p.Value.Name, l.Part, p.Released, p.Value.Value, p.Value.Package, latest.Key)
	}
	return tw.Flush()
}

// watch prints the changes of both trees until ctx ends.
func (a *app) watch(ctx context.Context) error {
	parts, boards := a.parts.Events(ctx), a.boards.Events(ctx)
	fmt.Fprintln(a.out, "watching parts and boards (Ctrl-C to stop)")
	for parts != nil || boards != nil { // each closes when ctx ends
		select {
		case ev, ok := <-parts:
			if !ok {
				parts = nil
				continue
			}
			fmt.Fprintln(a.out, eventLine(a.parts, ev))
		case ev, ok := <-boards:
			if !ok {
				boards = nil
				continue
			}
			fmt.Fprintln(a.out, eventLine(a.boards, ev))
		}
	}
	return nil
}

// eventLine formats an event with the record as it is now: an event
// carries the key, not the value.
func eventLine[T any](t *typed.Tree[T], ev typed.Event[T]) string {
	line := fmt.Sprintf("%s %-6s %-13s", ev.Time.Local().Format("15:04:05.000"), t.Name(), ev.Type)
	switch {
	case ev.Key.IsZero(): // about the tree: schema, resynced, lagged
		return fmt.Sprintf("%s version=%d %s", line, ev.Version, ev.Reason)
	case ev.Type == typed.Deleted:
		return fmt.Sprintf("%s %-5v", line, ev.Key)
	}
	rec, err := t.Record(ev.Key)
	if err != nil {
		return fmt.Sprintf("%s %-5v (%v)", line, ev.Key, err)
	}
	line = fmt.Sprintf("%s %-5v %v", line, ev.Key, rec.Value)
	switch ev.Type {
	case typed.Borrowed: // the holder's name, unless the borrow has ended since
		by := ev.Client
		if rec.Borrow != nil && rec.Borrow.Client == ev.Client {
			by = rec.Borrow.ClientName
		}
		line += " by " + by
	case typed.StateChanged:
		line += fmt.Sprintf(" → state %d (%s)", ev.State, stateNames[ev.State])
	}
	return line
}

// list prints every part and board.
func (a *app) list() error {
	tw := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TREE\tKEY\tRECORD\tRELEASED\tSTATE\tBORROWED BY")
	shown := map[string]uint64{}
	var err error
	if shown["parts"], err = listTree(tw, a.parts); err != nil {
		return err
	}
	if shown["boards"], err = listTree(tw, a.boards); err != nil {
		return err
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	trees, err := a.db.Trees()
	for _, t := range trees { // All skips records that do not decode: say so
		if n, ok := shown[t.Name]; ok && t.Records > n {
			fmt.Fprintf(a.out, "%d records of %s do not decode and are not shown (kvctl list %s)\n", t.Records-n, t.Name, t.Name)
		}
	}
	return err
}

func listTree[T any](w io.Writer, t *typed.Tree[T]) (n uint64, err error) {
	for k := range t.All() {
		rec, err := t.Record(k) // All yields values; the metadata is in Record
		if err != nil {
			return n, err
		}
		borrow := "-"
		if rec.Borrow != nil {
			borrow = rec.Borrow.ClientName
		}
		fmt.Fprintf(w, "%s\t%v\t%v\t%v\t%d %s\t%s\n", t.Name(), k, rec.Value, rec.Released, rec.State, stateNames[rec.State], borrow)
		n++
	}
	return n, nil
}

// fillPackage is the migration step of parts written before Part had a
// package: by kvctl put (no schema, version 0) or by an older Part. Such
// parts may also hold a JSON number as qty, which must be whole.
func fillPackage(fields map[string]any) error {
	if p, _ := fields["package"].(string); p == "" {
		fields["package"] = "unknown"
	}
	if q, ok := fields["qty"].(float64); ok {
		if q != math.Trunc(q) {
			return fmt.Errorf("qty %v is not a whole number", q)
		}
		fields["qty"] = int64(q)
	}
	return nil
}

// migrate rewrites the parts of older schema versions at the current one,
// drawing a progress bar on progress.
func (a *app) migrate(ctx context.Context, progress io.Writer) (typed.MigrateReport, error) {
	steps := map[uint32]func(map[string]any) error{}
	for v := range a.parts.Version() { // the step from each older version (0 too)
		steps[v] = fillPackage
	}
	return a.parts.Migrate(ctx, typed.MigrateOptions{Steps: steps, Progress: func(done, total int) {
		const width = 30
		n := done * width / total
		fmt.Fprintf(progress, "\r[%s%s] %d/%d", strings.Repeat("#", n), strings.Repeat(".", width-n), done, total)
		if done == total {
			fmt.Fprintln(progress)
		}
	}})
}

// printReport prints what migrate did.
func (a *app) printReport(rep typed.MigrateReport) {
	fmt.Fprintf(a.out, "migrated %d of %d older parts to schema version %d\n", rep.Migrated, rep.Total, a.parts.Version())
	for _, b := range rep.Borrowed {
		fmt.Fprintf(a.out, "skipped %v: borrowed by %s since %s; run migrate again once it is returned\n",
			b.Key, b.ClientName, b.Since.Local().Format(time.DateTime))
	}
	for _, k := range rep.Released {
		fmt.Fprintf(a.out, "skipped %v: released records never change\n", k)
	}
	for _, f := range rep.Failed {
		fmt.Fprintf(a.out, "failed %v: %v\n", f.Key, f.Err)
	}
	fmt.Fprintf(a.out, "%d failed\n", len(rep.Failed))
}

// usageError is a bad command line: exit status 2.
type usageError struct{ error }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "inventory:", err)
		if errors.As(err, new(usageError)) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// run is the whole program, for main and the tests.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	host, _ := os.Hostname()
	fs := flag.NewFlagSet("inventory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	servers := fs.String("s", env("SHELF_HTTP", "127.0.0.1:7001"), "HTTP `addresses` of cluster nodes, comma-separated (env SHELF_HTTP)")
	dir := fs.String("dir", env("INVENTORY_DIR", "inventory-replica"), "`directory` of the local replica (env INVENTORY_DIR)")
	name := fs.String("name", env("INVENTORY_NAME", "inventory@"+host), "client `name`, shown as the borrower (env INVENTORY_NAME)")
	level := fs.String("log-level", env("SHELF_LOG_LEVEL", "warn"), "log `level`: debug, info, warn or error (env SHELF_LOG_LEVEL)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: inventory [flags] demo|watch|list|migrate")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return usageError{fmt.Errorf("-log-level: %w", err)}
	}
	cmd := fs.Arg(0)
	if fs.NArg() != 1 || !strings.Contains(" demo watch list migrate ", " "+cmd+" ") {
		fs.Usage()
		return usageError{fmt.Errorf("want one command of demo, watch, list, migrate; got %q", fs.Args())}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	cfg := client.Config{Dir: *dir, Servers: strings.Split(*servers, ","), Name: *name, Logger: log}
	a, err := open(ctx, cfg, stdout, cmd == "list")
	if err != nil {
		return err
	}
	defer a.Close()
	switch cmd {
	case "demo":
		_, err = a.demo(ctx)
	case "watch":
		err = a.watch(ctx)
	case "list":
		err = a.list()
	case "migrate":
		var rep typed.MigrateReport
		rep, err = a.migrate(ctx, stderr)
		a.printReport(rep)
		if err == nil && len(rep.Failed) > 0 {
			err = fmt.Errorf("%d parts failed to migrate", len(rep.Failed))
		}
	}
	return err
}
