package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
)

// TestRunRaftLogAuto: without -raft-log a new data directory gets the
// default store and an existing one keeps its kind, so changing the
// default never moves an existing node; an explicit other kind is refused.
func TestRunRaftLogAuto(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []string{cluster.LogStoreBolt, cluster.LogStoreWAL} {
		t.Run(kind, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "n1")
			args := []string{"-id", "n1", "-data", dir, "-http", "127.0.0.1:0", "-raft", "127.0.0.1:0", "-gossip", "127.0.0.1:0", "-log-level", "warn"}
			n := startRun(t, append(args, "-bootstrap", "-raft-log", kind)...)
			c := api.NewClient(n.addr(t), nil)
			waitLeader(t, c)
			wr, err := c.Create(ctx, "parts", api.WriteRequest{Data: []byte{0x01}})
			if err != nil {
				t.Fatal(err)
			}
			if err := n.stop(t); err != nil {
				t.Fatalf("run: %v\n%s", err, n.stderr.String())
			}

			// No -raft-log: the kind on disk.
			n = startRun(t, args...)
			c = api.NewClient(n.addr(t), nil)
			waitLeader(t, c)
			if _, err := c.Get(ctx, "parts", wr.Key); err != nil {
				t.Errorf("restarted without -raft-log: %v", err)
			}
			if err := n.stop(t); err != nil {
				t.Fatalf("run: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "raft.db")); (err == nil) != (kind == cluster.LogStoreBolt) {
				t.Errorf("raft.db after restarts of a %s node: %v", kind, err)
			}

			other := cluster.LogStoreWAL
			if kind == cluster.LogStoreWAL {
				other = cluster.LogStoreBolt
			}
			err = run(ctx, append(args, "-raft-log", other), noEnv, io.Discard, io.Discard)
			if !errors.Is(err, cluster.ErrOtherLogStore) {
				t.Errorf("-raft-log %s on a %s data directory: %v, want ErrOtherLogStore", other, kind, err)
			}
		})
	}
	t.Run("new data directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "n1")
		n := startRun(t, "-id", "n1", "-data", dir, "-http", "127.0.0.1:0", "-raft", "127.0.0.1:0", "-gossip", "127.0.0.1:0", "-log-level", "warn", "-bootstrap")
		waitLeader(t, api.NewClient(n.addr(t), nil))
		if err := n.stop(t); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{cluster.LogStoreBolt: "raft.db", cluster.LogStoreWAL: "raft-wal"}[cluster.DefaultLogStore]
		if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
			t.Errorf("new data directory without -raft-log: no %s (the default, %s): %v", want, cluster.DefaultLogStore, err)
		}
	})
}

// TestBinaryDamagedWAL starts the kvnode binary (without -raft-log: the
// kind on disk) on raft-wal data directories with damaged files: status
// 1, one clear line naming the file, no Go crash.
func TestBinaryDamagedWAL(t *testing.T) {
	tmp := t.TempDir()
	bin := buildKvnode(t, tmp)
	base := filepath.Join(tmp, "base")
	args := []string{"-id", "n1", "-data", base, "-http", "127.0.0.1:0", "-raft", "127.0.0.1:0", "-gossip", "127.0.0.1:0", "-log-level", "warn"}
	n := startRun(t, append(args, "-bootstrap", "-raft-log", "wal")...)
	c := api.NewClient(n.addr(t), nil)
	waitLeader(t, c)
	for i := range 100 {
		if _, err := c.Create(context.Background(), "parts", api.WriteRequest{Data: cborText(strings.Repeat(fmt.Sprint(i%10), 600))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.stop(t); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(base, "raft-wal", "*.wal"))
	if len(segs) != 1 {
		t.Fatalf("segments: %v", segs)
	}
	seg, _ := filepath.Rel(base, segs[0])
	meta := filepath.Join("raft-wal", "wal-meta.db")
	cases := []struct {
		name, file string
		change     func(b []byte) []byte
		want       string
	}{
		{"segment: an early entry changed", seg, func(b []byte) []byte { b[100] ^= 0xff; return b }, "fails its checksum"},
		{"segment: truncated", seg, func(b []byte) []byte { return b[:20000] }, "truncated"},
		{"wal-meta.db of 10 bytes", meta, func(b []byte) []byte { return b[:10] }, "too short"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(tmp, fmt.Sprintf("refused%d", i))
			copyTree(t, base, dir)
			path := filepath.Join(dir, c.file)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, c.change(b), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "-id", "n1", "-data", dir, "-http", "127.0.0.1:0", "-raft", "127.0.0.1:0", "-gossip", "127.0.0.1:0", "-log-level", "warn").CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want status 1\n%s", err, out)
			}
			noTrace(t, string(out))
			last := lastLine(string(out))
			if !strings.HasPrefix(last, "kvnode: ") || !strings.Contains(last, path) || !strings.Contains(last, c.want) || !strings.Contains(last, "kvctl members remove n1") {
				t.Errorf("last line does not name %s and say %q:\n%s", path, c.want, out)
			}
			t.Logf("%s", last)
		})
	}
}
