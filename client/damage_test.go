package client_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/client"
)

// clientDir makes a client directory with a few records and returns it,
// the client closed.
func clientDir(t *testing.T, addr string) string {
	t.Helper()
	dir := t.TempDir()
	a := open(t, dir, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 20 {
		if _, err := a.Tree("parts").Create(ctx, 0, val(t, strings.Repeat("x", 300+i))); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	return dir
}

func garbagePages(b []byte, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 11))
	b = append([]byte(nil), b...)
	for i := 2 * 4096; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b
}

// TestDamagedLocalFileRefused: local.db holds the outbox, so a damaged
// one is refused with an error naming it, and left as it was.
func TestDamagedLocalFileRefused(t *testing.T) {
	s := startServer(t)
	base := clientDir(t, s.Addr)
	good, err := os.ReadFile(filepath.Join(base, "local.db"))
	if err != nil {
		t.Fatal(err)
	}
	replica, err := os.ReadFile(filepath.Join(base, "replica.db"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":              {},
		"shorter than page":  good[:200],
		"not page aligned":   good[:3*4096+5],
		"garbage pages":      garbagePages(good, 1),
		"json":               []byte(`{"client": "c-1"}`),
		"a replica in place": replica,
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "local.db")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := client.Open(context.Background(), client.Config{Dir: dir, Servers: []string{s.Addr}, Logger: discard()})
			if err == nil {
				db.Close()
				t.Fatal("opened with a damaged local.db")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "outbox") {
				t.Errorf("error does not name %s and say why it is kept: %v", path, err)
			}
			t.Logf("%v", err)
			if now, err := os.ReadFile(path); err != nil || !bytes.Equal(now, data) {
				t.Errorf("local.db changed or gone: %v", err)
			}
		})
	}
}

// TestDamagedReplicaRebuilt: every kind of damage to replica.db is
// repaired by moving it aside and rebuilding from the cluster.
func TestDamagedReplicaRebuilt(t *testing.T) {
	s := startServer(t)
	base := clientDir(t, s.Addr)
	replica, err := os.ReadFile(filepath.Join(base, "replica.db"))
	if err != nil {
		t.Fatal(err)
	}
	local, err := os.ReadFile(filepath.Join(base, "local.db"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":          {},
		"truncated":      replica[:8*4096],
		"garbage pages":  garbagePages(replica, 2),
		"a local.db":     local,
		"not page align": replica[:len(replica)-7],
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "local.db"), local, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "replica.db"), data, 0o600); err != nil {
				t.Fatal(err)
			}
			a := open(t, dir, s.Addr)
			if !strings.Contains(a.Recovered(), filepath.Join(dir, "replica.db")) {
				t.Errorf("repair not reported: %q", a.Recovered())
			}
			waitFor(t, "the rebuilt replica", func() bool {
				n := 0
				for range a.Tree("parts").All() {
					n++
				}
				return n == 20
			})
		})
	}
}
