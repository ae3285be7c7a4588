package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/fsm"
)

// The synopses of the snapshot commands and of recover.
const (
	snapshotSaveLine    = "snapshot save FILE [-q]"
	snapshotInspectLine = "snapshot inspect FILE"
	snapshotRestoreLine = "snapshot restore FILE --data DIR --id ID [--raft ADDR] [--raft-log bolt|wal] [--keep-cluster-id]"
	snapshotLine        = snapshotSaveLine + " | " + snapshotInspectLine + " | " + snapshotRestoreLine
	recoverLine         = "recover --data DIR --id ID [--raft ADDR]"
	// defaultRaftAddr is kvnode's default -raft.
	defaultRaftAddr = "127.0.0.1:7002"
	// progressEvery is how often save reports progress on a terminal.
	progressEvery = 500 * time.Millisecond
)

func (c *cli) snapshot(ctx context.Context, args []string) error {
	fs := c.flagSet("snapshot")
	quiet := fs.Bool("q", false, "save: no progress on stderr")
	data := fs.String("data", "", "restore: the new node's data directory (absent or empty)")
	id := fs.String("id", "", "restore: the new node's id (its kvnode -id)")
	raftAddr := fs.String("raft", defaultRaftAddr, "restore: the new node's raft address (its kvnode -raft)")
	raftLog := fs.String("raft-log", cluster.DefaultLogStore, "restore: the new node's raft log store, as its kvnode -raft-log: bolt or wal")
	keep := fs.Bool("keep-cluster-id", false, "restore: keep the backup's cluster id (default: a new one)")
	pos, err := c.parse(fs, snapshotLine, args, 2, 2)
	if err != nil {
		return err
	}
	if sub := pos[0]; sub != "restore" {
		for _, f := range []string{"data", "id", "raft", "raft-log", "keep-cluster-id"} {
			if flagSet(fs, f) {
				return usagef(snapshotLine, "snapshot %s: --%s goes with snapshot restore", sub, f)
			}
		}
	}
	if pos[0] != "save" && *quiet {
		return usagef(snapshotLine, "snapshot %s: -q goes with snapshot save", pos[0])
	}
	switch pos[0] {
	case "save":
		return c.snapshotSave(ctx, pos[1], *quiet)
	case "inspect":
		return c.snapshotInspect(pos[1])
	case "restore":
		if *data == "" || *id == "" {
			return usagef(snapshotLine, "snapshot restore: --data and --id are required")
		}
		return c.snapshotRestore(pos[1], cluster.RestoreConfig{DataDir: *data, NodeID: *id, RaftAddr: *raftAddr, LogStore: *raftLog, KeepClusterID: *keep})
	}
	return usagef(snapshotLine, "snapshot: unknown subcommand %q", pos[0])
}

// snapshotFlags are the command flags of each snapshot subcommand (for its
// help and completion).
var snapshotFlags = map[string][]string{
	"save":    {"q"},
	"inspect": {},
	"restore": {"data", "id", "raft", "raft-log", "keep-cluster-id"},
}

// flagSet reports whether flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// snapshotSave downloads a snapshot to file (atomically, through a
// temporary file), showing progress on a terminal, and checks the
// saved file's size and checksum before giving it its name.
func (c *cli) snapshotSave(ctx context.Context, file string, quiet bool) error {
	if file == "-" {
		_, err := c.api().Snapshot(ctx, c.stdout)
		return err
	}
	var p *progress
	if !quiet && isTerminal(c.stderr) {
		p = newProgress(c.stderr, time.Now)
		defer p.stop()
	}
	start := time.Now()
	var index uint64
	n, err := saveFile(file, func(w io.Writer) (int64, error) {
		if p != nil {
			w = io.MultiWriter(w, p)
		}
		return c.api().Snapshot(ctx, w)
	}, func(f *os.File) error {
		var err error
		index, _, err = fsm.VerifySnapshot(f)
		return err
	})
	if p != nil {
		p.stop()
	}
	if err != nil {
		return fmt.Errorf("snapshot save %s: %w", file, err)
	}
	secs := time.Since(start).Seconds()
	return c.emit(map[string]any{"file": file, "bytes": n, "index": index, "seconds": secs}, func(w io.Writer) {
		fmt.Fprintf(w, "saved snapshot at index %d to %s (%d bytes in %.1fs, checksum verified)\n", index, file, n, secs)
	})
}

// saveFile writes file through a temporary file in the same directory, so
// an interrupted transfer never leaves a truncated snapshot under its name;
// check runs on the complete temporary file (at its start) before the
// rename.
func saveFile(file string, write func(io.Writer) (int64, error), check func(*os.File) error) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp*")
	if err != nil {
		return 0, err
	}
	n, err := write(f)
	if err == nil {
		err = f.Sync()
	}
	if err == nil && check != nil {
		if _, err = f.Seek(0, io.SeekStart); err == nil {
			err = check(f)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), file)
	}
	if err != nil {
		os.Remove(f.Name())
		return 0, err
	}
	return n, nil
}

// snapshotInspect checks a snapshot file and describes the state in it
// (it restores it into a scratch file in the temporary directory).
func (c *cli) snapshotInspect(file string) error {
	in, err := os.Open(file)
	if err != nil {
		return err
	}
	defer in.Close()
	dir, err := os.MkdirTemp("", "kvctl-inspect-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	f, err := fsm.Open(fsm.Config{Path: filepath.Join(dir, "fsm.db"), NoSync: true, Logger: discardLogger()})
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Restore(in); err != nil {
		return fmt.Errorf("snapshot inspect %s: %w", file, err)
	}
	info, err := f.Info()
	if err != nil {
		return fmt.Errorf("snapshot inspect %s: %w", file, err)
	}
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out := map[string]any{"file": file, "bytes": st.Size(), "index": info.Index, "cluster_id": info.ClusterID,
		"rules": info.Rules, "state_bytes": info.Size, "content_hash": info.Hash, "records": info.Records,
		"clients": info.Clients, "borrows": info.Borrows, "checksum_ok": true}
	return c.emit(out, func(w io.Writer) {
		row(w, "file", file)
		row(w, "bytes", st.Size())
		row(w, "checksum", "ok")
		row(w, "index", info.Index)
		row(w, "cluster", dash(info.ClusterID))
		row(w, "rules", info.Rules)
		row(w, "content hash", info.Hash)
		row(w, "clients", info.Clients)
		row(w, "borrows", info.Borrows)
		trees := make([]string, 0, len(info.Records))
		for t := range info.Records {
			trees = append(trees, t)
		}
		sort.Strings(trees)
		for _, t := range trees {
			row(w, "tree "+t, fmt.Sprintf("%d records", info.Records[t]))
		}
	})
}

// snapshotRestore seeds a new data directory from a snapshot file.
func (c *cli) snapshotRestore(file string, cfg cluster.RestoreConfig) error {
	in, err := os.Open(file)
	if err != nil {
		return err
	}
	defer in.Close()
	cfg.Logger = discardLogger()
	res, err := cluster.Restore(cfg, in)
	if err != nil {
		return fmt.Errorf("snapshot restore %s: %w", file, err)
	}
	out := map[string]any{"file": file, "data": cfg.DataDir, "index": res.Index, "cluster_id": res.ClusterID,
		"from_cluster_id": res.FromClusterID, "id": cfg.NodeID, "raft": cfg.RaftAddr}
	return c.emit(out, func(w io.Writer) {
		fmt.Fprintf(w, "restored %s (index %d) into %s: cluster %s", file, res.Index, cfg.DataDir, res.ClusterID)
		if res.ClusterID != res.FromClusterID {
			fmt.Fprintf(w, " (new id; the backup's was %s)", res.FromClusterID)
		}
		fmt.Fprintf(w, "\nstart it with: kvnode -id %s -data %s -raft %s [-http ADDR -gossip ADDR ...]; other nodes join it with fresh data directories\n",
			cfg.NodeID, cfg.DataDir, cfg.RaftAddr)
	})
}

// recover rewrites a stopped survivor's raft state so that it is the only
// voter (quorum loss).
func (c *cli) recover(_ context.Context, args []string) error {
	fs := c.flagSet("recover")
	data := fs.String("data", "", "the surviving node's data directory (its kvnode stopped)")
	id := fs.String("id", "", "the surviving node's id (its kvnode -id)")
	raftAddr := fs.String("raft", defaultRaftAddr, "the surviving node's raft address (its kvnode -raft)")
	if _, err := c.parse(fs, recoverLine, args, 0, 0); err != nil {
		return err
	}
	if *data == "" || *id == "" {
		return usagef(recoverLine, "recover: --data and --id are required")
	}
	res, err := cluster.Recover(cluster.RecoverConfig{DataDir: *data, NodeID: *id, RaftAddr: *raftAddr, Logger: discardLogger()})
	if err != nil {
		return err
	}
	out := map[string]any{"data": *data, "id": *id, "raft": *raftAddr, "index": res.Index, "term": res.Term,
		"cluster_id": res.ClusterID, "dropped": res.Dropped}
	return c.emit(out, func(w io.Writer) {
		fmt.Fprintf(w, "%s is now the only voter of cluster %s (index %d, term %d); dropped voters: %v\n", *id, res.ClusterID, res.Index, res.Term, res.Dropped)
		fmt.Fprintf(w, "start it with its usual flags; new nodes join it with fresh data directories; never restart the dropped nodes with their old data\n")
	})
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress counts bytes written through it and prints the count and rate
// every progressEvery until stop.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	now   func() time.Time
	start time.Time
	n     int64
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

func newProgress(w io.Writer, now func() time.Time) *progress {
	p := &progress{w: w, now: now, start: now(), done: make(chan struct{})}
	p.wg.Add(1)
	go p.loop()
	return p
}

// Write counts b.
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	p.n += int64(len(b))
	p.mu.Unlock()
	return len(b), nil
}

func (p *progress) loop() {
	defer p.wg.Done()
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			p.print("\n")
			return
		case <-t.C:
			p.print("")
		}
	}
}

func (p *progress) print(end string) {
	p.mu.Lock()
	n := p.n
	p.mu.Unlock()
	secs := p.now().Sub(p.start).Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(n) / secs
	}
	fmt.Fprintf(p.w, "\rsaving snapshot: %s (%s/s)   %s", bytesText(float64(n)), bytesText(rate), end)
}

// stop ends the progress line; safe to call twice.
func (p *progress) stop() {
	p.once.Do(func() {
		close(p.done)
		p.wg.Wait()
	})
}

// bytesText formats a byte count with a binary unit.
func bytesText(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}

// discardLogger is the logger of the offline commands: they report through
// their output and errors.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
