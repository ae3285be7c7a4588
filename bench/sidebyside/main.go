// Command sidebyside measures Shelf's write path against etcd on the same
// machine in one run: it starts three etcd members (Debian's etcd, fsync
// on) and three kvnodes (built from this repository, fsync on) on
// loopback, runs the same load on both, alternating, repeated, and prints
// a markdown table of the medians with the ratios.
//
// The load: W writers (each sticking to one server, round-robin over the
// three), N writes of S-byte values in total; a write is an etcd Put of a
// new key, or a Shelf create through the HTTP API. Optionally the same N
// creates through embedded clients' outboxes, against etcd at the same W.
//
//	go run ./sidebyside -kvnode /path/to/kvnode [-etcd /usr/bin/etcd] [-writers 1,16,64] [-reps 3] [-strace]
//
// With -serve it starts only the three kvnodes, prints the -s and -pids
// flags for cmd/shelfbench, and serves until Ctrl-C.
//
// bench/run.sh installs etcd and strace if missing, builds kvnode and runs
// this. Only the six servers run beside this program; the load generator
// is this process. Every server is stopped and the temporary directory
// removed on every exit path, Ctrl-C included.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shelfdb/shelf/internal/loadgen"
)

// options are the command line.
type options struct {
	etcd, kvnode  string
	writers       []int
	n, size, reps int
	outboxWriters int
	outboxClients int
	strace        bool
	keep          bool
	warmup        int
	serve         bool
	kvnodeArgs    []string // extra kvnode flags, e.g. -raft-log wal
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintf(os.Stderr, "sidebyside: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("sidebyside", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var writers string
	fs.StringVar(&o.etcd, "etcd", "/usr/bin/etcd", "etcd server `binary` (Debian's etcd-server)")
	fs.StringVar(&o.kvnode, "kvnode", "", "kvnode `binary` built from this repository (required)")
	fs.StringVar(&writers, "writers", "1,16,64", "comma-separated writer `counts` to compare")
	fs.IntVar(&o.n, "n", 4000, "writes per load (`count`)")
	fs.IntVar(&o.size, "size", 256, "value size in `bytes`")
	fs.IntVar(&o.reps, "reps", 3, "repetitions of every load on each system; the table shows medians")
	fs.IntVar(&o.outboxWriters, "outbox-writers", 64, "writers of the embedded-client outbox load (0: skip it)")
	fs.IntVar(&o.outboxClients, "outbox-clients", 3, "embedded clients of the outbox load, one per node round-robin")
	fs.IntVar(&o.warmup, "warmup", 200, "writes (16 writers) on each system before measuring, not counted")
	fs.BoolVar(&o.strace, "strace", false, "count fdatasync+fsync per write on each server during one extra 1-writer load (needs strace)")
	fs.BoolVar(&o.serve, "serve", false, "start only the 3 kvnodes, print their -s and -pids for cmd/shelfbench, and serve until Ctrl-C (etcd is not needed)")
	fs.Func("kvnode-args", "extra `flags` for every kvnode, space-separated (e.g. \"-raft-log wal\")", func(v string) error {
		o.kvnodeArgs = strings.Fields(v)
		return nil
	})
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (data and server logs) after the run")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: sidebyside -kvnode PATH [flags]\n\nRuns the same write load on 3 etcd members and 3 kvnodes on loopback, alternating, and prints the medians.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, f := range strings.Split(writers, ",") {
		w, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || w <= 0 {
			return nil, fmt.Errorf("-writers %q: want positive counts separated by commas", writers)
		}
		o.writers = append(o.writers, w)
	}
	switch {
	case o.kvnode == "":
		return nil, errors.New("-kvnode is required (bench/run.sh builds it)")
	case o.n <= 0 || o.reps <= 0 || o.outboxWriters < 0 || o.outboxClients <= 0 || o.warmup < 0:
		return nil, errors.New("-n, -reps and -outbox-clients must be positive, -outbox-writers and -warmup not negative")
	case o.size < 4:
		return nil, errors.New("-size must be at least 4 bytes")
	}
	bins := []string{o.kvnode}
	if !o.serve {
		bins = append(bins, o.etcd)
	}
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			return nil, fmt.Errorf("server binary: %w", err)
		}
	}
	if o.strace {
		if _, err := exec.LookPath("strace"); err != nil {
			return nil, fmt.Errorf("-strace: %w", err)
		}
	}
	return &o, nil
}

// run starts both clusters, measures, prints, and stops everything.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	dir, err := mkTemp()
	if err != nil {
		return err
	}
	if o.keep {
		defer fmt.Fprintf(stderr, "sidebyside: kept %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	p := ports{}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "sidebyside: "+format+"\n", a...) }

	if o.serve {
		return serve(ctx, o, dir, p, stdout, logf)
	}
	logf("starting 3 etcd members (%s) and 3 kvnodes (%s) under %s", o.etcd, o.kvnode, dir)
	etcd, err := startEtcd(ctx, o.etcd, filepath.Join(dir, "etcd"), p)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer etcd.stop()
	shelf, err := startShelf(ctx, o.kvnode, filepath.Join(dir, "shelf"), p, o.kvnodeArgs)
	if err != nil {
		return fmt.Errorf("shelf: %w", err)
	}
	defer shelf.stop()

	val := make([]byte, o.size)
	for i := range val {
		val[i] = byte('a' + i%26)
	}
	shelfVal, err := loadgen.Value(o.size)
	if err != nil {
		return err
	}
	sys := []*system{
		{name: "etcd", c: etcd, load: func(ctx context.Context, w, n int) (loadgen.Summary, error) { return etcdLoad(ctx, etcd, w, n, val) }},
		{name: "shelf", c: shelf, load: func(ctx context.Context, w, n int) (loadgen.Summary, error) {
			return shelfLoad(ctx, shelf, w, n, shelfVal)
		}},
	}
	for _, s := range sys {
		if o.warmup > 0 {
			if _, err := s.load(ctx, 16, o.warmup); err != nil {
				return fmt.Errorf("%s warmup: %w", s.name, err)
			}
		}
	}

	var fsyncs []fsyncCount
	if o.strace {
		for _, s := range sys {
			fc, err := straceLoad(ctx, s, o.n, dir)
			if err != nil {
				return fmt.Errorf("strace %s: %w", s.name, err)
			}
			fsyncs = append(fsyncs, fc)
		}
	}

	results := map[string]map[int][]loadgen.Summary{"etcd": {}, "shelf": {}, "outbox": {}, "outbox-stored": {}}
	cpu := map[string]map[int][]cpuUse{"etcd": {}, "shelf": {}, "outbox": {}, "outbox-stored": {}}
	for rep := range o.reps {
		for _, w := range o.writers {
			order := sys
			if rep%2 == 1 { // alternate who goes first
				order = []*system{sys[1], sys[0]}
			}
			for _, s := range order {
				m := newCPUMeter(s.c.pids())
				sum, err := s.load(ctx, w, o.n)
				if err != nil {
					return fmt.Errorf("%s, %d writers: %w", s.name, w, err)
				}
				use := m.done()
				logf("rep %d  %-6s writers=%-3d %s  cpu/write servers=%.0fµs loadgen=%.0fµs", rep+1, s.name, w, sum,
					float64(use.servers.Microseconds())/float64(o.n), float64(use.loadgen.Microseconds())/float64(o.n))
				results[s.name][w] = append(results[s.name][w], sum)
				cpu[s.name][w] = append(cpu[s.name][w], use)
				if err := s.c.dead(); err != nil {
					return err
				}
			}
		}
		if o.outboxWriters > 0 {
			if _, measured := results["etcd"][o.outboxWriters]; !measured || len(results["etcd"][o.outboxWriters]) <= rep {
				m := newCPUMeter(etcd.pids())
				sum, err := sys[0].load(ctx, o.outboxWriters, o.n)
				if err != nil {
					return fmt.Errorf("etcd, %d writers: %w", o.outboxWriters, err)
				}
				logf("rep %d  %-6s writers=%-3d %s", rep+1, "etcd", o.outboxWriters, sum)
				results["etcd"][o.outboxWriters] = append(results["etcd"][o.outboxWriters], sum)
				cpu["etcd"][o.outboxWriters] = append(cpu["etcd"][o.outboxWriters], m.done())
			}
			waits := []loadgen.Wait{loadgen.WaitApplied, loadgen.WaitStored}
			if rep%2 == 1 { // alternate which goes first
				waits = []loadgen.Wait{loadgen.WaitStored, loadgen.WaitApplied}
			}
			for _, wait := range waits {
				m := newCPUMeter(shelf.pids())
				res, err := outboxLoad(ctx, shelf, o.outboxClients, o.outboxWriters, o.n, shelfVal, filepath.Join(dir, "clients"), wait)
				if err != nil {
					return fmt.Errorf("shelf outbox (wait %s), %d writers: %w", wait, o.outboxWriters, err)
				}
				name := "outbox"
				if wait == loadgen.WaitStored {
					name = "outbox-stored"
				}
				logf("rep %d  %-6s writers=%-3d %s", rep+1, name, o.outboxWriters, res)
				results[name][o.outboxWriters] = append(results[name][o.outboxWriters], res.Summary)
				cpu[name][o.outboxWriters] = append(cpu[name][o.outboxWriters], m.done())
			}
		}
	}

	printTable(stdout, o, results, cpu)
	if len(fsyncs) > 0 {
		fmt.Fprintf(stdout, "\nfdatasync+fsync per write, one writer, %d writes (strace -f -c on each server):\n\n", o.n)
		for _, fc := range fsyncs {
			fmt.Fprintf(stdout, "- %s: %s\n", fc.system, fc)
		}
	}
	fmt.Fprintf(stdout, "\nServer memory at the end:\n\n")
	for _, s := range sys {
		for i, pid := range s.c.pids() {
			m, err := loadgen.ProcMem(pid)
			if err != nil {
				fmt.Fprintf(stdout, "- %s %s: %v\n", s.name, s.c.servers[i].name, err)
				continue
			}
			fmt.Fprintf(stdout, "- %s %s: %s\n", s.name, s.c.servers[i].name, m)
		}
	}
	return nil
}

// serve runs the three kvnodes alone until ctx ends, for cmd/shelfbench.
func serve(ctx context.Context, o *options, dir string, p ports, stdout io.Writer, logf func(string, ...any)) error {
	logf("starting 3 kvnodes (%s) under %s", o.kvnode, dir)
	shelf, err := startShelf(ctx, o.kvnode, filepath.Join(dir, "shelf"), p, o.kvnodeArgs)
	if err != nil {
		return fmt.Errorf("shelf: %w", err)
	}
	defer shelf.stop()
	var pids []string
	for _, pid := range shelf.pids() {
		pids = append(pids, strconv.Itoa(pid))
	}
	fmt.Fprintf(stdout, "-s %s -pids %s\n", strings.Join(shelf.endpoints, ","), strings.Join(pids, ","))
	logf("serving; Ctrl-C stops the nodes and removes their data")
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := shelf.dead(); err != nil {
				return err
			}
		}
	}
}

// system is one of the two clusters with its write load.
type system struct {
	name string
	c    *cluster
	load func(ctx context.Context, writers, n int) (loadgen.Summary, error)
}

// median summarizes repetitions: the medians of rate, p50 and p99.
func median(sums []loadgen.Summary) (rate float64, p50, p99 time.Duration, errs int) {
	var r, a, b []float64
	for _, s := range sums {
		r = append(r, s.OpsPerSec())
		a = append(a, float64(s.P50))
		b = append(b, float64(s.P99))
		errs += s.Errors
	}
	return loadgen.Median(r), time.Duration(loadgen.Median(a)), time.Duration(loadgen.Median(b)), errs
}

// printTable prints the markdown table of the medians.
//
// The CPU columns are microseconds of CPU time (user + system) per write,
// medians over the repetitions: "servers" the three server processes
// together, "load" this process (the load generator, and in the outbox
// rows the embedded clients with their replicas).
func printTable(w io.Writer, o *options, res map[string]map[int][]loadgen.Summary, cpu map[string]map[int][]cpuUse) {
	fmt.Fprintf(w, "\n%d writes of %d B per load, writers round-robin over 3 nodes, fsync on, %d reps, medians (%s)\n\n",
		o.n, o.size, o.reps, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintln(w, "| load | writers | etcd puts/s | etcd p50/p99 ms | Shelf writes/s | Shelf p50/p99 ms | ratio | errors etcd/Shelf | CPU µs/write servers etcd/Shelf | CPU µs/write load etcd/Shelf |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	row := func(load string, writers int, name string) {
		er, e50, e99, eerr := median(res["etcd"][writers])
		sr, s50, s99, serr := median(res[name][writers])
		ratio := 0.0
		if er > 0 {
			ratio = sr / er
		}
		es, el := perWrite(cpu["etcd"][writers], o.n)
		ss, sl := perWrite(cpu[name][writers], o.n)
		fmt.Fprintf(w, "| %s | %d | %.0f | %s/%s | %.0f | %s/%s | %.2fx | %d/%d | %.0f/%.0f | %.0f/%.0f |\n",
			load, writers, er, loadgen.Ms(e50), loadgen.Ms(e99), sr, loadgen.Ms(s50), loadgen.Ms(s99), ratio, eerr, serr, es, ss, el, sl)
	}
	for _, wr := range o.writers {
		row("HTTP create", wr, "shelf")
	}
	if o.outboxWriters > 0 {
		row(fmt.Sprintf("outbox create (%d clients), wait applied", o.outboxClients), o.outboxWriters, "outbox")
		row(fmt.Sprintf("outbox create (%d clients), NoWait + Flush", o.outboxClients), o.outboxWriters, "outbox-stored")
	}
}
