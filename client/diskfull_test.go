package client_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
	"github.com/shelfdb/shelf/internal/testserver"
)

// mountSmallDisk mounts a tmpfs of size bytes at a new directory and
// unmounts it when the test ends. Needs root (CI runs as root).
func mountSmallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("this test mounts a small tmpfs to fill it up and needs root: mount: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the disk is full.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !strings.Contains(err.Error(), "no space") {
				t.Fatalf("filling the disk: %v", err)
			}
			return path
		}
	}
}

// A client whose disk fills up does not take the application down: the
// replica's failure to apply is reported (Err, an event), the client goes
// offline, local reads go on, and once there is room again the replica is
// rebuilt from a snapshot, catches up, and writes go through again.
func TestReplicaDiskFull(t *testing.T) {
	s := testserver.Start(t)
	dir := mountSmallDisk(t, "8m")
	db := testserver.Open(t, dir, s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	evs := db.Events(ctx)
	parts := db.Tree("parts")
	first, err := parts.Create(ctx, 0, marshal(t, map[string]any{"n": 1}))
	if err != nil {
		t.Fatal(err)
	}

	filler := fillDisk(t, dir)
	// Writes by others that the replica must store: it cannot.
	other := api.NewClient(s.Addr, nil)
	blob := marshal(t, map[string]any{"b": strings.Repeat("x", 200<<10)})
	var last api.WriteResult
	for range 8 {
		if last, err = other.Create(ctx, "parts", api.WriteRequest{Data: blob}); err != nil {
			t.Fatal(err)
		}
	}
	var failed client.Event
	for failed.Type != client.EventReplicaFailed {
		select {
		case failed = <-evs:
		case <-ctx.Done():
			t.Fatalf("no %s event; Err: %v", client.EventReplicaFailed, db.Err())
		}
	}
	if failed.Err == nil || !strings.Contains(failed.Err.Message, "no space") {
		t.Fatalf("replica_failed event: %+v", failed.Err)
	}
	testserver.WaitFor(t, "the client to go offline with the storage error", func() bool {
		return !db.Online() && db.Err() != nil && strings.Contains(db.Err().Error(), "no space")
	})
	if _, err := parts.Get(first.Key); err != nil {
		t.Fatalf("local read while the replica is broken: %v", err)
	}

	// Room again: the replica is rebuilt and catches up; a write made
	// meanwhile is not lost.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := db.WaitSynced(ctx); err != nil {
		t.Fatalf("after freeing the disk: %v (Err %v)", err, db.Err())
	}
	if got := db.Err(); got != nil {
		t.Fatalf("Err after recovery: %v", got)
	}
	if _, err := parts.Get(last.Key); err != nil {
		t.Fatalf("the replica did not catch up after the rebuild: %v", err)
	}
	res, err := parts.Create(ctx, 0, marshal(t, map[string]any{"n": 2}))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := other.Get(ctx, "parts", res.Key)
	if err != nil || rec.Key != res.Key {
		t.Fatalf("create after recovery not on the server: %v", err)
	}
}
