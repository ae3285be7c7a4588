package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

// buildKvnode builds the kvnode binary into dir, with extra go build
// flags (such as -ldflags).
func buildKvnode(t *testing.T, dir string, extra ...string) string {
	t.Helper()
	bin := filepath.Join(dir, "kvnode")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	args := append(append([]string{"build", "-o", bin}, extra...), ".")
	if out, err := exec.Command(goBin, args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// noTrace fails the test if out looks like a Go crash.
func noTrace(t *testing.T, out string) {
	t.Helper()
	for _, s := range []string{"goroutine ", "panic:", "SIGBUS", "SIGSEGV", "fatal error"} {
		if strings.Contains(out, s) {
			t.Errorf("output has %q:\n%s", s, out)
		}
	}
}

// TestBinaryDamagedDataDir starts the kvnode binary on data directories
// with damaged files: a file that cannot be repaired ends the process with
// status 1 and one clear line naming it, a damaged fsm.db is rebuilt, and
// no case shows a Go crash.
func TestBinaryDamagedDataDir(t *testing.T) {
	tmp := t.TempDir()
	bin := buildKvnode(t, tmp)

	// A data directory with a raft log well past 100 KB, in raft.db
	// (raftlog_test.go damages raft-wal's files).
	base := filepath.Join(tmp, "base")
	args := []string{"-id", "n1", "-data", base, "-http", "127.0.0.1:0", "-raft", "127.0.0.1:0", "-gossip", "127.0.0.1:0", "-log-level", "warn", "-raft-log", "bolt"}
	n := startRun(t, append(args, "-bootstrap")...)
	c := api.NewClient(n.addr(t), nil)
	waitLeader(t, c)
	ctx := context.Background()
	var keys []api.Key
	for i := range 200 {
		wr, err := c.Create(ctx, "parts", api.WriteRequest{Data: cborText(strings.Repeat(fmt.Sprint(i%10), 600))})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, wr.Key)
	}
	if err := n.stop(t); err != nil {
		t.Fatal(err)
	}
	raftDB := inUse(t, filepath.Join(base, "raft.db"))
	if len(raftDB) < 200<<10 {
		t.Fatalf("raft.db uses %d bytes, want > 200 KB", len(raftDB))
	}
	fsmDB := inUse(t, filepath.Join(base, "fsm.db"))

	refused := []struct {
		name, file string
		data       []byte
		want       []string
	}{
		{"raft.db cut to 100 KB", "raft.db", raftDB[:100<<10], []string{"cannot use the raft log", "truncated", "kvctl members remove n1"}},
		{"raft.db not page aligned", "raft.db", raftDB[:len(raftDB)-1000], []string{"not a multiple of the page size"}},
		{"raft.db of 10 bytes", "raft.db", raftDB[:10], []string{"too short"}},
		{"fsm.db in raft.db's place", "raft.db", fsmDB, []string{"is not a raft log"}},
		{"raft.db in fsm.db's place", "fsm.db", raftDB, []string{"not a Shelf database", "right directory"}},
	}
	for i, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(tmp, fmt.Sprintf("refused%d", i))
			copyTree(t, base, dir)
			path := filepath.Join(dir, c.file)
			if err := os.WriteFile(path, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "-id", "n1", "-data", dir, "-http", "127.0.0.1:0", "-raft", "127.0.0.1:0", "-gossip", "127.0.0.1:0", "-log-level", "warn")
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want status 1\n%s", err, out)
			}
			noTrace(t, string(out))
			last := lastLine(string(out))
			if !strings.HasPrefix(last, "kvnode: ") || !strings.Contains(last, path) {
				t.Errorf("last line does not name %s:\n%s", path, out)
			}
			for _, w := range c.want {
				if !strings.Contains(last, w) {
					t.Errorf("message does not say %q:\n%s", w, last)
				}
			}
			t.Logf("%s", last)
		})
	}

	t.Run("fsm.db with random pages is rebuilt", func(t *testing.T) {
		dir := filepath.Join(tmp, "rebuilt")
		copyTree(t, base, dir)
		r := rand.New(rand.NewPCG(5, 5))
		b := append([]byte(nil), fsmDB...)
		for range 3 {
			pg := 2 + r.IntN(len(b)/4096-2)
			for i := pg * 4096; i < (pg+1)*4096; i += 8 {
				binary.LittleEndian.PutUint64(b[i:], r.Uint64())
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "fsm.db"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd, addr, stderr := startBinary(t, "", bin, "-id", "n1", "-data", dir, "-http", "127.0.0.1:0", "-raft", "127.0.0.1:0", "-gossip", "127.0.0.1:0", "-log-level", "warn")
		c := api.NewClient(addr, nil)
		waitLeader(t, c)
		last := keys[len(keys)-1]
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := c.Get(ctx, "parts", last); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("last record after the rebuild: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "STATE MACHINE FILE DAMAGED") {
			t.Errorf("the rebuild is not logged:\n%s", stderr.String())
		}
		noTrace(t, stderr.String())
		if aside, _ := filepath.Glob(filepath.Join(dir, "fsm.db.corrupt-*")); len(aside) != 1 {
			t.Errorf("damaged fsm.db not kept aside: %v", aside)
		}
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// cborText is v as a CBOR text string (a record value).
func cborText(v string) []byte {
	b, err := api.EncodeValue(v)
	if err != nil {
		panic(err)
	}
	return b
}

// inUse returns the bytes of a bbolt file up to its high-water mark (bbolt
// grows files ahead of use).
func inUse(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pgid := max(binary.LittleEndian.Uint64(b[16+40:]), binary.LittleEndian.Uint64(b[4096+16+40:]))
	return b[:pgid*4096]
}

// copyTree copies a data directory (files and subdirectories).
func copyTree(t *testing.T, from, to string) {
	t.Helper()
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
}
