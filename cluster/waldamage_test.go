package cluster_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
)

// walSegmentSize gives a few sealed segments from nodeDir's records.
const walSegmentSize = 32 << 10

// walNodeDir is nodeDir on raft-wal (-raft-log wal) with small segments:
// a single node writes 150 records of ~400 bytes and stops cleanly.
func walNodeDir(t *testing.T) (string, []api.Key) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "s1")
	cfg := cluster.WithWALSegmentSize(testConfig(t, "s1", dir), walSegmentSize)
	cfg.Bootstrap, cfg.LogStore = true, cluster.LogStoreWAL
	n := mustStart(t, cfg)
	waitCluster(t, n)
	var keys []api.Key
	for i := range 150 {
		wr, err := n.client().Create(context.Background(), "t", api.WriteRequest{Data: value(t, strings.Repeat(fmt.Sprint(i), 400))})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, wr.Key)
	}
	n.stop(t)
	return dir, keys
}

// walSegments returns the segment files of dir's raft-wal log in index
// order: the last one is the tail (raft-wal names them by base index).
func walSegments(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "raft-wal", "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(segs)
	if len(segs) < 3 {
		t.Fatalf("want at least 2 sealed segments and a tail, have %v", segs)
	}
	return segs
}

// walDataEnd returns the end of what was written to a segment file: its
// frames are 8-byte aligned and the rest of the preallocated file is
// zeros. The last 8 bytes before it are the last commit frame.
func walDataEnd(t *testing.T, b []byte) int {
	t.Helper()
	end := len(bytes.TrimRight(b, "\x00"))
	end = (end + 7) / 8 * 8
	if end <= 32 || b[end-8] != 3 {
		t.Fatalf("segment data ends at %d, not after a commit frame", end)
	}
	return end
}

func rewrite(t *testing.T, path string, change func(b []byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, change(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedWALSegments: every kind of damage to a segment file is an
// error naming the file, before raft-wal or raft read it (raft-wal itself
// reads entries without a checksum, drops committed entries after damage
// in the tail segment, and recreates a missing tail as empty).
func TestDamagedWALSegments(t *testing.T) {
	base, _ := walNodeDir(t)
	segs := walSegments(t, base)
	rel := func(p string) string { r, _ := filepath.Rel(base, p); return r }
	sealed, tail := rel(segs[0]), rel(segs[len(segs)-1])
	cases := []struct {
		name   string
		file   string
		break_ func(path string)
		want   []string
	}{
		{"sealed: bytes of an entry changed", sealed, func(p string) {
			rewrite(t, p, func(b []byte) []byte {
				for i := 4000; i < 4016; i++ {
					b[i] ^= 0x5a
				}
				return b
			})
		}, []string{"fails its checksum", "kvctl members remove s1"}},
		{"sealed: truncated", sealed, func(p string) {
			rewrite(t, p, func(b []byte) []byte { return b[:len(b)/3] })
		}, []string{"ends early"}},
		{"sealed: empty", sealed, func(p string) {
			rewrite(t, p, func([]byte) []byte { return nil })
		}, []string{"too short for its header"}},
		{"sealed: missing", sealed, func(p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}, []string{"the file is missing", "entries 1 to"}},
		{"sealed: header of another segment", sealed, func(p string) {
			other, err := os.ReadFile(segs[1])
			if err != nil {
				t.Fatal(err)
			}
			rewrite(t, p, func(b []byte) []byte { copy(b, other[:32]); return b })
		}, []string{"its header says"}},
		{"tail: truncated", tail, func(p string) {
			rewrite(t, p, func(b []byte) []byte { return b[:walDataEnd(t, b)/2] })
		}, []string{"truncated"}},
		{"tail: empty", tail, func(p string) {
			rewrite(t, p, func([]byte) []byte { return nil })
		}, []string{"the file is empty"}},
		{"tail: missing", tail, func(p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}, []string{"the file is missing", "the newest entries"}},
		{"tail: bytes of an early entry changed", tail, func(p string) {
			rewrite(t, p, func(b []byte) []byte { b[48] ^= 0xff; return b })
		}, []string{"fails its checksum and is not the last one"}},
		{"tail: garbage frame in the middle", tail, func(p string) {
			rewrite(t, p, func(b []byte) []byte {
				// A frame header of an unknown type where the second
				// half of the committed data starts: raft-wal would take
				// it for a torn write and drop everything after it.
				end := walDataEnd(t, b)
				off := 32
				for off < end/2 {
					off += 8 + int(binary.LittleEndian.Uint32(b[off+4:]))*boolInt(b[off] != 3)
					off = (off + 7) / 8 * 8
				}
				copy(b[off:], []byte{9, 9, 9, 9, 9, 9, 9, 9})
				return b
			})
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, base)
			c.break_(filepath.Join(dir, c.file))
			if c.want == nil {
				// Caught by our check or, failing that, by the state
				// machine being ahead of the log: refused either way.
				cfg, _ := damagedConfig(t, dir)
				if n, err := startNode(t, cfg); err == nil {
					n.stop(t)
					t.Fatal("node started on a log that lost committed entries")
				} else {
					t.Logf("%v", err)
				}
				return
			}
			wantRefused(t, dir, c.file, c.want...)
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestDamagedWALMeta: wal-meta.db is a bbolt file and gets the checks of
// raft.db before bbolt opens it.
func TestDamagedWALMeta(t *testing.T) {
	base, _ := walNodeDir(t)
	meta := filepath.Join("raft-wal", "wal-meta.db")
	good := hwmBytes(t, filepath.Join(base, meta))
	fsmDB := hwmBytes(t, filepath.Join(base, "fsm.db"))
	r := rand.New(rand.NewPCG(11, 7))
	garbled := append([]byte(nil), good...)
	for i := 2 * 4096; i < len(garbled); i += 8 {
		binary.LittleEndian.PutUint64(garbled[i:], r.Uint64())
	}
	cases := []struct {
		name string
		data []byte
		want []string
	}{
		{"empty", nil, []string{"empty", "kvctl members remove s1"}},
		{"truncated", good[:len(good)-100], []string{"not a multiple of the page size"}},
		{"garbage after the meta pages", garbled, []string{"damaged or not a database"}},
		{"a state machine file", fsmDB, []string{"not raft-wal's meta file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, base)
			if err := os.WriteFile(filepath.Join(dir, meta), c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			wantRefused(t, dir, meta, c.want...)
		})
	}
}

// TestWALTornTail: what a crash leaves at the end of the tail segment is
// recovered as raft-wal intends (up to its last complete commit), and the
// node starts with every committed entry and writes again.
func TestWALTornTail(t *testing.T) {
	base, keys := walNodeDir(t)
	tailOf := func(dir string) string { s := walSegments(t, dir); return s[len(s)-1] }
	everyKey := func(t *testing.T, n *testNode, keys []api.Key) {
		t.Helper()
		waitFor(t, 10*time.Second, "the last record", func() error { _, err := n.FSM().Get("t", keys[len(keys)-1]); return err })
		for _, k := range keys {
			if _, err := n.FSM().Get("t", k); err != nil {
				t.Fatalf("%v: %v", k, err)
			}
		}
	}
	// writesAgain writes one more record, restarts and finds all.
	writesAgain := func(t *testing.T, n *testNode, dir string, keys []api.Key) {
		t.Helper()
		wr, err := n.client().Create(context.Background(), "t", api.WriteRequest{Data: value(t, "after")})
		if err != nil {
			t.Fatal(err)
		}
		n.stop(t)
		cfg, _ := damagedConfig(t, dir)
		n = mustStart(t, cfg)
		waitCluster(t, n)
		everyKey(t, n, append(keys, wr.Key))
	}
	t.Run("a batch written in part, no commit", func(t *testing.T) {
		dir := copyDir(t, base)
		rewrite(t, tailOf(dir), func(b []byte) []byte {
			end := walDataEnd(t, b)
			frame := []byte{1, 0, 0, 0, 200, 0, 0, 0} // an entry of 200 bytes...
			copy(b[end:], frame)
			copy(b[end+8:], bytes.Repeat([]byte{0xab}, 90)) // ...of which 90 arrived
			return b
		})
		cfg, _ := damagedConfig(t, dir)
		n := mustStart(t, cfg)
		waitCluster(t, n)
		everyKey(t, n, keys)
		writesAgain(t, n, dir, keys)
	})
	t.Run("a whole batch whose commit fails its checksum", func(t *testing.T) {
		dir := copyDir(t, base)
		rewrite(t, tailOf(dir), func(b []byte) []byte {
			end := walDataEnd(t, b)
			copy(b[end:], []byte{1, 0, 0, 0, 8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 3, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde})
			return b
		})
		cfg, _ := damagedConfig(t, dir)
		n := mustStart(t, cfg)
		waitCluster(t, n)
		everyKey(t, n, keys)
		writesAgain(t, n, dir, keys)
	})
	// The last commit frame torn: raft-wal drops the last batch, which a
	// power loss can do only to a batch that was never fsync'ed, so never
	// acknowledged. After a power loss fsm.db is not trusted either (other
	// boot id) and is rebuilt: every record but the last one is there.
	t.Run("the last commit torn, after a power loss", func(t *testing.T) {
		dir := copyDir(t, base)
		rewrite(t, tailOf(dir), func(b []byte) []byte {
			end := walDataEnd(t, b)
			clear(b[end-8 : end])
			return b
		})
		// fsm.db as a crash leaves it: its marker says open.
		marker := filepath.Join(dir, "fsm.db.marker")
		rewrite(t, marker, func(b []byte) []byte {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			m["state"], m["pid"] = "open", 1
			delete(m, "stamp")
			out, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			return out
		})
		cfg, logs := damagedConfig(t, dir)
		n := mustStart(t, cluster.WithBootID(cfg, "after-the-power-loss"))
		waitCluster(t, n)
		everyKey(t, n, keys[:len(keys)-1])
		if !strings.Contains(logs.String(), "NOT TRUSTED AFTER A CRASH OF THE MACHINE") {
			t.Errorf("fsm.db not rebuilt:\n%s", logs)
		}
	})
	// The same file without a power loss (same boot: fsm.db is trusted)
	// cannot come from a crash: the state machine applied the entry the
	// log lost. Refused, never started without it.
	t.Run("the last commit torn, fsm.db ahead of the log", func(t *testing.T) {
		dir := copyDir(t, base)
		rewrite(t, tailOf(dir), func(b []byte) []byte {
			end := walDataEnd(t, b)
			clear(b[end-8 : end])
			return b
		})
		cfg, _ := damagedConfig(t, dir)
		n, err := startNode(t, cfg)
		if err == nil {
			n.stop(t)
			t.Fatal("node started on a log behind its state machine")
		}
		if !errors.Is(err, cluster.ErrLogBehindState) || !strings.Contains(err.Error(), filepath.Join(dir, "raft-wal")) {
			t.Errorf("error: %v", err)
		}
		t.Logf("%v", err)
	})
}

// TestStaleRaftDBRefused: an older copy of raft.db put back (a restore of
// one file from a backup) lacks entries fsm.db has applied: refused, the
// same check as for a raft-wal tail that lost committed entries.
func TestStaleRaftDBRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s1")
	cfg := testConfig(t, "s1", dir)
	cfg.Bootstrap, cfg.LogStore = true, cluster.LogStoreBolt
	write := func(n *testNode) {
		for i := range 10 {
			if _, err := n.client().Create(context.Background(), "t", api.WriteRequest{Data: value(t, i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	n := mustStart(t, cfg)
	waitCluster(t, n)
	write(n)
	n.stop(t)
	old, err := os.ReadFile(filepath.Join(dir, "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	n = mustStart(t, cfg)
	waitCluster(t, n)
	write(n)
	n.stop(t)
	if err := os.WriteFile(filepath.Join(dir, "raft.db"), old, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ = damagedConfig(t, dir)
	if n, err := startNode(t, cfg); err == nil {
		n.stop(t)
		t.Fatal("node started on a raft.db older than its fsm.db")
	} else if !errors.Is(err, cluster.ErrLogBehindState) || !strings.Contains(err.Error(), filepath.Join(dir, "raft.db")) {
		t.Errorf("error: %v", err)
	} else {
		t.Logf("%v", err)
	}
}
