package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/fsm"
	"github.com/shelfdb/shelf/internal/testlog"
)

// snapshotBytes is the snapshot stream of an empty state.
func snapshotBytes(t *testing.T) []byte {
	t.Helper()
	return stateSnapshot(t, false)
}

// stateSnapshot is the snapshot stream of a state with a cluster id (at
// index 1) when withCluster, or of an empty state.
func stateSnapshot(t *testing.T, withCluster bool) []byte {
	t.Helper()
	f, err := fsm.Open(fsm.Config{Path: filepath.Join(t.TempDir(), "fsm.db"), NoSync: true, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if withCluster {
		b, err := (&fsm.Command{Op: fsm.OpSetCluster, Cluster: "old-cluster", Rules: fsm.RulesVersion}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		if res := f.Apply(1, b); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSnapshotSaveRefusesDamagedDownload(t *testing.T) {
	for name, damage := range map[string]func([]byte) []byte{
		"truncated":   func(b []byte) []byte { return b[:len(b)-40] },
		"flipped bit": func(b []byte) []byte { b[100] ^= 1; return b },
		"not a snapshot": func([]byte) []byte {
			return []byte("<html>proxy error</html>")
		},
	} {
		t.Run(name, func(t *testing.T) {
			bad := damage(snapshotBytes(t))
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write(bad)
			}))
			defer srv.Close()
			dir := t.TempDir()
			file := filepath.Join(dir, "snap")
			out, errs, code := kvAt(context.Background(), t, srv.URL, "", "snapshot", "save", file)
			if code != exitError || out != "" || !strings.Contains(errs, "not a valid Shelf snapshot") {
				t.Fatalf("code %d, stdout %q, stderr %q", code, out, errs)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("a damaged download left files: %v", entries)
			}
		})
	}
}

func TestSnapshotRestoreOffline(t *testing.T) {
	good := stateSnapshot(t, true)
	dir := t.TempDir()
	file := filepath.Join(dir, "good.snap")
	if err := os.WriteFile(file, good, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 0x40
	badFile := filepath.Join(dir, "bad.snap")
	if err := os.WriteFile(badFile, bad, 0o600); err != nil {
		t.Fatal(err)
	}

	// inspect shows what a snapshot holds.
	out, errs, code := kv(t, nil, "", "-o", "json", "snapshot", "inspect", file)
	var info map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil {
		t.Fatalf("inspect: %d %q %q", code, out, errs)
	}
	if info["index"] != 1.0 || info["cluster_id"] != "old-cluster" || info["checksum_ok"] != true || len(info["content_hash"].(string)) != 64 {
		t.Fatalf("inspect: %v", info)
	}
	if _, errs, code := kv(t, nil, "", "snapshot", "inspect", badFile); code != exitError || !strings.Contains(errs, "checksum mismatch") {
		t.Fatalf("inspect of a damaged file: %d %q", code, errs)
	}

	// A damaged file: a clear error, and no data directory made.
	data := filepath.Join(dir, "new")
	_, errs, code = kv(t, nil, "", "snapshot", "restore", badFile, "--data", data, "--id", "n1")
	if code != exitError || !strings.Contains(errs, "checksum mismatch") {
		t.Fatalf("restore of a damaged file: %d %q", code, errs)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("a failed restore left %s: %v", data, err)
	}

	// A good file: a new cluster id by default, the old one when kept.
	out, errs, code = kv(t, nil, "", "-o", "json", "snapshot", "restore", file, "--data", data, "--id", "n1", "--raft", "127.0.0.1:7102")
	var res map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("restore: %d %q %q", code, out, errs)
	}
	if res["index"] != 1.0 || res["from_cluster_id"] != "old-cluster" || res["cluster_id"] == "old-cluster" || res["cluster_id"] == "" {
		t.Fatalf("restore: %v", res)
	}
	raftLog := map[string]string{cluster.LogStoreBolt: "raft.db", cluster.LogStoreWAL: "raft-wal"}[cluster.DefaultLogStore]
	for _, name := range []string{"fsm.db", raftLog, "snapshots"} {
		if _, err := os.Stat(filepath.Join(data, name)); err != nil {
			t.Errorf("restored directory lacks %s: %v", name, err)
		}
	}
	kept := filepath.Join(dir, "kept")
	out, _, code = kv(t, nil, "", "-o", "json", "snapshot", "restore", file, "--data", kept, "--id", "n1", "--keep-cluster-id")
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res["cluster_id"] != "old-cluster" {
		t.Fatalf("restore --keep-cluster-id: %d %q", code, out)
	}

	// A directory that holds anything is refused, and left as it was.
	_, errs, code = kv(t, nil, "", "snapshot", "restore", file, "--data", data, "--id", "n1")
	if code != exitError || !strings.Contains(errs, "data directory is not empty") {
		t.Fatalf("restore over a data directory: %d %q", code, errs)
	}
	if _, err := os.Stat(filepath.Join(data, "fsm.db")); err != nil {
		t.Fatalf("a refused restore touched the directory: %v", err)
	}
}

func TestSnapshotProgress(t *testing.T) {
	var out testlog.Buffer
	start := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	now := start
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	p := newProgress(&out, clock)
	_, _ = p.Write(make([]byte, 3<<20))
	mu.Lock()
	now = start.Add(2 * time.Second)
	mu.Unlock()
	p.stop()
	p.stop() // a second stop is harmless
	if got := out.String(); !strings.HasSuffix(got, "\rsaving snapshot: 3.0 MiB (1.5 MiB/s)   \n") {
		t.Fatalf("progress line %q", got)
	}
	if isTerminal(&out) {
		t.Fatal("a buffer taken for a terminal")
	}
}
