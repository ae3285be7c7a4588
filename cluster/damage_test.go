package cluster_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"github.com/shelfdb/shelf/internal/testlog"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
)

// damagedConfig is testConfig with the log also captured.
func damagedConfig(t *testing.T, dir string) (cluster.Config, *testlog.Buffer) {
	cfg := testConfig(t, "s1", dir)
	lb := &testlog.Buffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return cfg, lb
}

// nodeDir runs a single node on raft-boltdb (these tests damage raft.db;
// waldamage_test.go damages raft-wal's files), writes records (big enough
// that raft.db outgrows 100 KB), takes snapshots as asked, and returns its
// data directory and the keys written, after a clean stop.
func nodeDir(t *testing.T, snapshots int) (string, []api.Key) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "s1")
	cfg := testConfig(t, "s1", dir)
	cfg.LogStore = cluster.LogStoreBolt
	cfg.Bootstrap = true
	n := mustStart(t, cfg)
	waitCluster(t, n)
	ctx := context.Background()
	var keys []api.Key
	write := func(count int) {
		for i := range count {
			wr, err := n.client().Create(ctx, "t", api.WriteRequest{Data: value(t, strings.Repeat(fmt.Sprint(i), 400))})
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, wr.Key)
		}
	}
	write(150)
	for range snapshots {
		if err := n.Snapshot(); err != nil {
			t.Fatal(err)
		}
		write(10)
	}
	n.stop(t)
	return dir, keys
}

// copyDir copies a node's data directory (files and one level of
// subdirectories, as raft's snapshot store has).
func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "copy")
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

// hwmBytes returns the bytes of a bbolt file that hold its pages in use.
func hwmBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pgid := max(binary.LittleEndian.Uint64(b[16+40:]), binary.LittleEndian.Uint64(b[4096+16+40:]))
	return b[:pgid*4096]
}

// wantRefused starts a node on dir and requires an error naming file and
// saying want.
func wantRefused(t *testing.T, dir, file string, want ...string) {
	t.Helper()
	cfg, _ := damagedConfig(t, dir)
	n, err := startNode(t, cfg)
	if err == nil {
		n.stop(t)
		t.Fatalf("node started on a damaged %s", file)
	}
	if !strings.Contains(err.Error(), filepath.Join(dir, file)) {
		t.Errorf("error does not name %s: %v", file, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q: %v", w, err)
		}
	}
	t.Logf("%s: %v", file, err)
}

func TestDamagedRaftLog(t *testing.T) {
	base, _ := nodeDir(t, 0)
	raftDB := hwmBytes(t, filepath.Join(base, "raft.db"))
	if len(raftDB) <= 100<<10 {
		t.Fatalf("raft.db holds %d bytes, want > 100 KB", len(raftDB))
	}
	fsmDB, err := os.ReadFile(filepath.Join(base, "fsm.db"))
	if err != nil {
		t.Fatal(err)
	}
	garbage := func(seed uint64) []byte {
		r := rand.New(rand.NewPCG(seed, 7))
		b := append([]byte(nil), raftDB...)
		for range 2 {
			pg := 2 + r.IntN(len(b)/4096-2)
			for i := pg * 4096; i < (pg+1)*4096; i += 8 {
				binary.LittleEndian.PutUint64(b[i:], r.Uint64())
			}
		}
		return b
	}
	cases := []struct {
		name string
		data []byte
		want []string
	}{
		{"empty", []byte{}, []string{"empty", "kvctl members remove s1"}},
		{"shorter than a page", raftDB[:300], []string{"truncated"}},
		{"100 KB", raftDB[:100<<10], []string{"truncated"}},
		{"not page aligned", raftDB[:len(raftDB)-100], []string{"not a multiple of the page size"}},
		{"json", []byte(`["127.0.0.1:7003"]`), []string{"too short"}},
		{"garbage seed 1", garbage(1), []string{"damaged or not a database", "overwritten"}},
		{"garbage seed 2", garbage(2), []string{"damaged or not a database", "overwritten"}},
		{"state machine file", fsmDB, []string{"not a raft log"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, base)
			if err := os.WriteFile(filepath.Join(dir, "raft.db"), c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			wantRefused(t, dir, "raft.db", c.want...)
		})
	}
}

func TestDamagedStateMachineIsRebuilt(t *testing.T) {
	base, keys := nodeDir(t, 1)
	fsmDB := hwmBytes(t, filepath.Join(base, "fsm.db"))
	cases := []struct {
		name string
		data func() []byte
	}{
		{"empty", func() []byte { return nil }},
		{"truncated", func() []byte { return fsmDB[:len(fsmDB)/2/4096*4096] }},
		{"not page aligned", func() []byte { return fsmDB[:len(fsmDB)-10] }},
		{"garbage on every page but the metas", func() []byte {
			r := rand.New(rand.NewPCG(3, 3))
			b := append([]byte(nil), fsmDB...)
			for i := 2 * 4096; i < len(b); i += 8 {
				binary.LittleEndian.PutUint64(b[i:], r.Uint64())
			}
			return b
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, base)
			if err := os.WriteFile(filepath.Join(dir, "fsm.db"), c.data(), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, logs := damagedConfig(t, dir)
			n := mustStart(t, cfg)
			waitCluster(t, n)
			last := keys[len(keys)-1]
			waitFor(t, 10*time.Second, "the last record", func() error { _, err := n.FSM().Get("t", last); return err })
			for _, k := range keys {
				if _, err := n.FSM().Get("t", k); err != nil {
					t.Fatalf("after the rebuild, %v: %v", k, err)
				}
			}
			aside, _ := filepath.Glob(filepath.Join(dir, "fsm.db.corrupt-*"))
			if len(aside) != 1 {
				t.Errorf("damaged fsm.db not kept aside: %v", aside)
			}
			if !strings.Contains(logs.String(), "STATE MACHINE FILE DAMAGED") || !strings.Contains(logs.String(), filepath.Join(dir, "fsm.db")) {
				t.Errorf("the rebuild is not logged:\n%s", logs)
			}
		})
	}
	t.Run("raft log in its place", func(t *testing.T) {
		dir := copyDir(t, base)
		raftDB, err := os.ReadFile(filepath.Join(dir, "raft.db"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "fsm.db"), raftDB, 0o600); err != nil {
			t.Fatal(err)
		}
		wantRefused(t, dir, "fsm.db", "not a Shelf database")
	})
}

func TestDamagedStateMachineNotRebuildable(t *testing.T) {
	// A log compacted past its only snapshot, and the snapshot damaged:
	// nothing to rebuild from.
	dir := filepath.Join(t.TempDir(), "s1")
	cfg := testConfig(t, "s1", dir)
	cfg.Bootstrap = true
	cfg.TrailingLogs = 1
	n := mustStart(t, cfg)
	waitCluster(t, n)
	for i := range 20 {
		if _, err := n.client().Create(context.Background(), "t", api.WriteRequest{Data: value(t, i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	n.stop(t)
	snaps, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "state.bin"))
	if len(snaps) != 1 {
		t.Fatalf("snapshots: %v", snaps)
	}
	damage(t, snaps[0])
	if err := os.WriteFile(filepath.Join(dir, "fsm.db"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ = damagedConfig(t, dir)
	if n, err := startNode(t, cfg); err == nil {
		n.stop(t)
		t.Fatal("node started without the entries its state needs")
	} else if !strings.Contains(err.Error(), filepath.Dir(snaps[0])) || !strings.Contains(err.Error(), "entries 1 to") {
		t.Errorf("error does not name the snapshot and the missing entries: %v", err)
	} else {
		t.Logf("%v", err)
	}
	// Started again (fsm.db is now a new, empty file): still refused,
	// rather than raft panicking on the missing entries.
	cfg, _ = damagedConfig(t, dir)
	if n, err := startNode(t, cfg); err == nil {
		n.stop(t)
		t.Fatal("second start: node started without the entries its state needs")
	} else if !strings.Contains(err.Error(), "do not fit together") {
		t.Errorf("second start: %v", err)
	}
	// The damaged fsm.db is kept aside, not deleted.
	if aside, _ := filepath.Glob(filepath.Join(dir, "fsm.db.corrupt-*")); len(aside) != 1 {
		t.Errorf("fsm.db not kept: %v", aside)
	}
}

// damage overwrites the middle of a file with other bytes, keeping its size.
func damage(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(b) / 3; i < len(b)/3+64 && i < len(b); i++ {
		b[i] ^= 0x5a
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedSnapshots(t *testing.T) {
	base, keys := nodeDir(t, 2)
	snapDirs := func(dir string) []string {
		d, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*"))
		return d
	}
	if len(snapDirs(base)) != 2 {
		t.Fatalf("snapshots: %v", snapDirs(base))
	}
	newest := func(dir string) string {
		var best string
		var bestIndex uint64
		for _, d := range snapDirs(dir) {
			var term, index, ms uint64
			if _, err := fmt.Sscanf(filepath.Base(d), "%d-%d-%d", &term, &index, &ms); err != nil {
				t.Fatalf("snapshot id %s: %v", d, err)
			}
			if index > bestIndex {
				best, bestIndex = d, index
			}
		}
		return best
	}
	cases := []struct {
		name    string
		breakIt func(dir string)
	}{
		{"state.bin fails its checksum", func(dir string) { damage(t, filepath.Join(newest(dir), "state.bin")) }},
		{"state.bin truncated", func(dir string) {
			p := filepath.Join(newest(dir), "state.bin")
			if err := os.Truncate(p, 1000); err != nil {
				t.Fatal(err)
			}
		}},
		{"meta.json garbage", func(dir string) {
			if err := os.WriteFile(filepath.Join(newest(dir), "meta.json"), []byte("{not json"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, base)
			c.breakIt(dir)
			// Without fsm.db the node must restore a snapshot.
			if err := os.Remove(filepath.Join(dir, "fsm.db")); err != nil {
				t.Fatal(err)
			}
			cfg, logs := damagedConfig(t, dir)
			n := mustStart(t, cfg)
			waitCluster(t, n)
			last := keys[len(keys)-1]
			waitFor(t, 10*time.Second, "the last record", func() error { _, err := n.FSM().Get("t", last); return err })
			for _, k := range keys {
				if _, err := n.FSM().Get("t", k); err != nil {
					t.Fatalf("%v: %v", k, err)
				}
			}
			if moved, _ := filepath.Glob(filepath.Join(dir, "snapshots.damaged", "*")); len(moved) != 1 {
				t.Errorf("damaged snapshot not moved aside: %v", moved)
			}
			if !strings.Contains(logs.String(), "SNAPSHOT DAMAGED") {
				t.Errorf("not logged:\n%s", logs)
			}
		})
	}
}

func TestDamagedPeersFileIgnored(t *testing.T) {
	base, keys := nodeDir(t, 0)
	for _, data := range []string{"", "{not json", `{"a": 1}`, `["no port", 7]`, `["no port"]`, "\x00\x01\x02"} {
		t.Run(fmt.Sprintf("%q", data), func(t *testing.T) {
			dir := copyDir(t, base)
			if err := os.WriteFile(filepath.Join(dir, "gossip-peers.json"), []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, logs := damagedConfig(t, dir)
			n := mustStart(t, cfg)
			waitCluster(t, n)
			if _, err := n.FSM().Get("t", keys[0]); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(logs.String(), "peers file") {
				t.Errorf("no warning about the peers file:\n%s", logs)
			}
		})
	}
}
