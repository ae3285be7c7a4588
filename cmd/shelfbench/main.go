// Command shelfbench measures a running Shelf cluster: write throughput
// and latency through the HTTP API and through embedded clients' outboxes,
// local typed reads against the raw bbolt floor, write-to-event latency
// at a replica that follows another node (from the leader's stamp in the
// entry, from the writer's acknowledgment and from its send), and the
// full sync of a new replica.
//
//	shelfbench creates -s A,B,C [-writers 16] [-n 4000] [-size 256]
//	shelfbench outbox  -s A,B,C [-clients 3] [-writers 64] [-n 4000] [-size 256] [-wait applied|stored]
//	shelfbench reads   -s A [-records 100000] [-readers 1] [-duration 5s] [-cache BYTES]
//	shelfbench events  -s A,B [-rate 200] [-n 2000] [-size 256]
//	shelfbench sync    -s A [-records 1000000] [-size 200] [-skip-preload]
//
// Every mode takes -pids PID,... to print VmRSS and RssAnon of the server
// processes at the end. The numbers are printed, never judged: the
// targets and the comparison with etcd are in docs/performance.md and
// bench/ (the side-by-side script).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/shelfdb/shelf/internal/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "shelfbench: %v\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "shelfbench: %v\n", err)
		os.Exit(1)
	}
}

// usageError is a bad command line: exit status 2.
type usageError struct{ err error }

// Error implements error.
func (u usageError) Error() string { return u.err.Error() }

// Unwrap returns the underlying error.
func (u usageError) Unwrap() error { return u.err }

// modes are the subcommands, with their one-line help.
var modes = []struct {
	name, help string
	run        func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}{
	{"creates", "N writers creating records through the HTTP API", runCreates},
	{"outbox", "the same creates through embedded clients' outboxes", runOutbox},
	{"reads", "local typed Get against a raw bbolt Get plus decode", runReads},
	{"events", "write-to-event latency at a client following another node", runEvents},
	{"sync", "full sync of a new replica (after a preload)", runSync},
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: shelfbench MODE [flags]   (shelfbench MODE -h for its flags)\n\nModes:\n")
	for _, m := range modes {
		fmt.Fprintf(w, "  %-8s %s\n", m.name, m.help)
	}
}

// run runs the mode named by args[0].
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return usageError{errors.New("no mode given")}
	}
	if a := args[0]; a == "-h" || a == "-help" || a == "--help" || a == "help" {
		usage(stdout)
		return nil
	}
	for _, m := range modes {
		if m.name == args[0] {
			return m.run(ctx, args[1:], stdout, stderr)
		}
	}
	usage(stderr)
	return usageError{fmt.Errorf("unknown mode %q", args[0])}
}

// common are the flags of every mode.
type common struct {
	servers []string
	pids    []int
	tree    string
	dir     string
}

// flags returns a mode's flag set with the common flags registered, and
// a func that parses args and checks the common flags.
func flags(mode, synopsis string, stderr io.Writer, minServers int, tree string) (*flag.FlagSet, *common, func(args []string) error) {
	fs := flag.NewFlagSet("shelfbench "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &common{}
	var servers, pids string
	fs.StringVar(&servers, "s", "127.0.0.1:7001", "comma-separated HTTP `addresses` of the cluster's nodes")
	fs.StringVar(&pids, "pids", "", "comma-separated server process `ids` whose VmRSS and RssAnon to print at the end")
	fs.StringVar(&c.tree, "tree", tree, "`tree` to write to and read from")
	fs.StringVar(&c.dir, "dir", "", "`directory` for embedded clients' replicas (default: a new temporary directory, removed at the end)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: shelfbench %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	parse := func(args []string) error {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usageError{err}
		}
		if fs.NArg() > 0 {
			return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
		}
		for _, s := range strings.Split(servers, ",") {
			if s = strings.TrimSpace(s); s != "" {
				c.servers = append(c.servers, s)
			}
		}
		if len(c.servers) < minServers {
			return usageError{fmt.Errorf("-s: %s needs at least %d server addresses, got %q", mode, minServers, servers)}
		}
		var err error
		if c.pids, err = loadgen.ParsePIDs(pids); err != nil {
			return usageError{fmt.Errorf("-pids: %w", err)}
		}
		return nil
	}
	return fs, c, parse
}

// clientDir returns c.dir, or a new temporary directory and a func that
// removes it.
func (c *common) clientDir() (string, func(), error) {
	if c.dir != "" {
		return c.dir, func() {}, nil
	}
	d, err := os.MkdirTemp("", "shelfbench-")
	if err != nil {
		return "", nil, err
	}
	return d, func() { os.RemoveAll(d) }, nil
}

// printMem prints the memory of the -pids processes.
func (c *common) printMem(w io.Writer) error {
	var errs []error
	for _, pid := range c.pids {
		m, err := loadgen.ProcMem(pid)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(w, "server %s\n", m)
	}
	return errors.Join(errs...)
}

func positive(name string, v int) error {
	if v <= 0 {
		return usageError{fmt.Errorf("%s must be positive, not %d", name, v)}
	}
	return nil
}

func runCreates(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c, parse := flags("creates", "creates -s A,B,C [-writers N] [-n N] [-size BYTES]", stderr, 1, "bench")
	writers := fs.Int("writers", 16, "concurrent writers, each sticking to one node, round-robin over -s")
	n := fs.Int("n", 4000, "creates in total")
	size := fs.Int("size", 256, "record value size in `bytes` (CBOR)")
	if err := parse(args); err != nil {
		return err
	}
	if err := errors.Join(positive("-writers", *writers), positive("-n", *n)); err != nil {
		return err
	}
	val, err := loadgen.Value(*size)
	if err != nil {
		return usageError{err}
	}
	s, err := loadgen.Creates(ctx, loadgen.CreatesConfig{Servers: c.servers, Tree: c.tree, Value: val, Writers: *writers, Total: *n})
	if err != nil {
		return err
	}
	loadgen.Print(stdout, fmt.Sprintf("creates writers=%d", *writers), s)
	return c.printMem(stdout)
}

func runOutbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c, parse := flags("outbox", "outbox -s A,B,C [-clients N] [-writers N] [-n N] [-size BYTES] [-wait applied|stored]", stderr, 1, "bench")
	clients := fs.Int("clients", 3, "embedded clients (client.Open, each its own replica), client i following node i%len(-s)")
	writers := fs.Int("writers", 64, "concurrent writers in total, writer w creating through client w%clients")
	n := fs.Int("n", 4000, "creates in total")
	size := fs.Int("size", 256, "record value size in `bytes` (CBOR)")
	verbose := fs.Bool("v", false, "log the embedded clients' debug messages (outbox batches not sent, retries) to stderr")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (the embedded clients' side: opening them and the load) to `file`")
	wait := fs.String("wait", string(loadgen.WaitApplied), "when a create counts: `applied` (each Create returns once the replica applied it) or stored (creates under client.NoWait return once in local.db; the clock stops when every client's Flush returned)")
	if err := parse(args); err != nil {
		return err
	}
	if err := errors.Join(positive("-clients", *clients), positive("-writers", *writers), positive("-n", *n)); err != nil {
		return err
	}
	if w := loadgen.Wait(*wait); w != loadgen.WaitApplied && w != loadgen.WaitStored {
		return usageError{fmt.Errorf("-wait %q: want applied or stored", *wait)}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	val, err := loadgen.Value(*size)
	if err != nil {
		return usageError{err}
	}
	dir, cleanup, err := c.clientDir()
	if err != nil {
		return err
	}
	defer cleanup()
	var logger *slog.Logger
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := loadgen.Outbox(ctx, loadgen.OutboxConfig{Servers: c.servers, Dir: dir, Tree: c.tree, Value: val,
		Clients: *clients, Writers: *writers, Total: *n, Wait: loadgen.Wait(*wait), Logger: logger})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-28s %s\n", fmt.Sprintf("outbox clients=%d writers=%d wait=%s", *clients, *writers, *wait), s)
	return c.printMem(stdout)
}

func runReads(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c, parse := flags("reads", "reads -s A [-records N] [-readers N] [-duration D] [-skip-preload] [-cache BYTES]", stderr, 1, "bench-reads")
	records := fs.Int("records", 100_000, "records to preload into -tree (small Part structs, ~50 B)")
	skip := fs.Bool("skip-preload", false, "read the records -tree already holds (written by an earlier reads run)")
	readers := fs.Int("readers", 1, "concurrent reader goroutines")
	d := fs.Duration("duration", 5*time.Second, "length of each measurement (typed, then raw)")
	cache := fs.Int64("cache", 0, "the client's read cache in `bytes` (client.Config.ReadCache; 0: its default, negative: off)")
	if err := parse(args); err != nil {
		return err
	}
	if err := errors.Join(positive("-readers", *readers), positive("-duration", int(*d))); err != nil {
		return err
	}
	if !*skip {
		if err := positive("-records", *records); err != nil {
			return err
		}
	}
	dir, cleanup, err := c.clientDir()
	if err != nil {
		return err
	}
	defer cleanup()
	r, err := loadgen.Reads(ctx, loadgen.ReadsConfig{Servers: c.servers, Dir: dir, Tree: c.tree, Records: *records,
		SkipPreload: *skip, Readers: *readers, Duration: *d, ReadCache: *cache})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "reads records=%d readers=%d\n", r.Records, *readers)
	fmt.Fprintf(stdout, "  typed Get               %10.0f reads/s  %7.0f ns/read\n", r.TypedPerSec, r.TypedNs)
	fmt.Fprintf(stdout, "  raw bbolt Get + decode  %10.0f reads/s  %7.0f ns/read\n", r.RawPerSec, r.RawNs)
	fmt.Fprintf(stdout, "  ratio typed/raw         %.2fx\n", r.Ratio())
	if st := r.Cache; st.Capacity > 0 {
		fmt.Fprintf(stdout, "  read cache              %.1f MiB, %d records in %.1f MiB, hits %d misses %d (%.1f%% hits)\n",
			float64(st.Capacity)/(1<<20), st.Entries, float64(st.Bytes)/(1<<20), st.Hits, st.Misses, 100*float64(st.Hits)/float64(max(1, st.Hits+st.Misses)))
	} else {
		fmt.Fprintf(stdout, "  read cache              off\n")
	}
	return c.printMem(stdout)
}

func runEvents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c, parse := flags("events", "events -s WRITE,FOLLOW [-rate R] [-n N] [-size BYTES]", stderr, 2, "bench")
	rate := fs.Float64("rate", 200, "writes per second, steady")
	n := fs.Int("n", 2000, "writes in total")
	size := fs.Int("size", 256, "record value size in `bytes` (CBOR)")
	if err := parse(args); err != nil {
		return err
	}
	if *rate <= 0 {
		return usageError{fmt.Errorf("-rate must be positive, not %v", *rate)}
	}
	if err := positive("-n", *n); err != nil {
		return err
	}
	val, err := loadgen.Value(*size)
	if err != nil {
		return usageError{err}
	}
	dir, cleanup, err := c.clientDir()
	if err != nil {
		return err
	}
	defer cleanup()
	r, err := loadgen.Events(ctx, loadgen.EventsConfig{Write: c.servers[0], Follow: c.servers[1], Dir: dir, Tree: c.tree,
		Value: val, Rate: *rate, Total: *n})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "events rate=%.0f/s (achieved %.0f/s) writes=%d through %s, client following %s; failed writes %d, events missing %d\n",
		*rate, r.Achieved, *n, c.servers[0], c.servers[1], r.Failures.Count, r.Missing)
	if r.Failures.First != nil {
		fmt.Fprintf(stdout, "  first failure: %v\n", r.Failures.First)
	}
	for _, x := range []struct {
		label string
		s     loadgen.Summary
	}{{"stamp -> event", r.FromStamp}, {"ack -> event", r.FromAck}, {"send -> event", r.FromSend}} {
		fmt.Fprintf(stdout, "  %-16s n=%d p50=%s p99=%s p999=%s max=%s ms\n", x.label, x.s.Ops,
			loadgen.Ms(x.s.P50), loadgen.Ms(x.s.P99), loadgen.Ms(x.s.P999), loadgen.Ms(x.s.Max))
	}
	return c.printMem(stdout)
}

func runSync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c, parse := flags("sync", "sync -s A[,B,C] [-records N] [-size BYTES] [-skip-preload]", stderr, 1, "bench")
	records := fs.Int("records", 1_000_000, "records to preload into -tree")
	size := fs.Int("size", 200, "preloaded record value size in `bytes` (CBOR)")
	skip := fs.Bool("skip-preload", false, "time the sync against what the cluster holds now, writing nothing")
	writers := fs.Int("writers", 16, "preload: concurrent batch writers, round-robin over -s")
	batch := fs.Int("batch", 500, "preload: creates per batch request (at most 1000)")
	if err := parse(args); err != nil {
		return err
	}
	if err := errors.Join(positive("-writers", *writers), positive("-batch", *batch)); err != nil {
		return err
	}
	if !*skip {
		if err := positive("-records", *records); err != nil {
			return err
		}
	}
	val, err := loadgen.Value(*size)
	if err != nil {
		return usageError{err}
	}
	dir, cleanup, err := c.clientDir()
	if err != nil {
		return err
	}
	defer cleanup()
	r, err := loadgen.Sync(ctx, loadgen.SyncConfig{Servers: c.servers, Dir: dir, Tree: c.tree, Value: val, Records: *records,
		SkipPreload: *skip, Writers: *writers, Batch: *batch})
	if err != nil {
		return err
	}
	if r.Preloads > 0 {
		fmt.Fprintf(stdout, "preload %d records of %d B: %.0f records/s in %s (%d writers, %d per batch)\n",
			r.Preloads, *size, float64(r.Preloads)/r.Preload.Elapsed.Seconds(), r.Preload.Elapsed.Round(time.Millisecond), *writers, *batch)
		if r.Preload.Errors > 0 {
			fmt.Fprintf(stdout, "preload: %d of %d batches failed (their records may or may not exist), first: %v\n",
				r.Preload.Errors, r.Preload.Errors+r.Preload.Ops, r.Preload.FirstErr)
		}
	}
	fmt.Fprintf(stdout, "sync: new replica open to synced in %s; tree %s holds %d records there (%.0f records/s)\n",
		r.Elapsed.Round(time.Millisecond), c.tree, r.Records, float64(r.Records)/r.Elapsed.Seconds())
	return c.printMem(stdout)
}
