package cluster_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/fsm"
)

// openMarker writes the marker a running node leaves beside fsm.db: the
// state on disk after the process or the machine died.
func openMarker(t *testing.T, dir, boot string) {
	t.Helper()
	m := fmt.Sprintf(`{"state":"open","boot_id":%q,"pid":1,"time":"2026-12-01T00:00:00Z"}`, boot)
	if err := os.WriteFile(fsm.MarkerPath(filepath.Join(dir, "fsm.db")), []byte(m), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tornDir runs a node (boot id "boot-1") that writes records, snapshots,
// writes more, and stops; it returns its data directory after replacing
// fsm.db by what a power loss can leave of a file whose commits were not
// fsync'ed: the newest meta pages over older data pages, and the marker
// of a node that was running.
func tornDir(t *testing.T) (string, []api.Key) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "s1")
	cfg, _ := damagedConfig(t, dir)
	cfg.Bootstrap = true
	n := mustStart(t, cluster.WithBootID(cfg, "boot-1"))
	waitCluster(t, n)
	ctx := context.Background()
	var keys []api.Key
	write := func(count int) {
		for i := range count {
			wr, err := n.client().Create(ctx, "t", api.WriteRequest{Data: value(t, strings.Repeat(fmt.Sprint(i), 100))})
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, wr.Key)
		}
	}
	write(100)
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	write(50)
	old, err := os.ReadFile(filepath.Join(dir, "fsm.db"))
	if err != nil {
		t.Fatal(err)
	}
	write(50)
	n.stop(t)
	cur, err := os.ReadFile(filepath.Join(dir, "fsm.db"))
	if err != nil {
		t.Fatal(err)
	}
	torn := make([]byte, len(cur))
	copy(torn, old)
	copy(torn[:2*4096], cur) // the meta pages reached the disk, the rest did not
	if err := os.WriteFile(filepath.Join(dir, "fsm.db"), torn, 0o600); err != nil {
		t.Fatal(err)
	}
	openMarker(t, dir, "boot-1")
	return dir, keys
}

func TestPowerLossRebuildsStateMachine(t *testing.T) {
	dir, keys := tornDir(t)
	cfg, logs := damagedConfig(t, dir)
	n := mustStart(t, cluster.WithBootID(cfg, "boot-2"))
	last := keys[len(keys)-1]
	waitFor(t, 10*time.Second, "the last record", func() error { _, err := n.FSM().Get("t", last); return err })
	for _, k := range keys {
		if _, err := n.FSM().Get("t", k); err != nil {
			t.Errorf("record %v lost: %v", k, err)
		}
	}
	aside, _ := filepath.Glob(filepath.Join(dir, "fsm.db.unclean-*"))
	if len(aside) != 1 {
		t.Errorf("untrusted fsm.db not kept aside: %v", aside)
	}
	if !strings.Contains(logs.String(), "NOT TRUSTED") || !strings.Contains(logs.String(), "boot-1") {
		t.Errorf("rebuild not logged with its reason:\n%s", logs.String())
	}
	// Stopped cleanly, it starts on its own file again, without a rebuild.
	n.stop(t)
	n = mustStart(t, cluster.WithBootID(cfg, "boot-3"))
	waitFor(t, 10*time.Second, "the last record", func() error { _, err := n.FSM().Get("t", last); return err })
	if aside, _ := filepath.Glob(filepath.Join(dir, "fsm.db.unclean-*")); len(aside) != 1 {
		t.Errorf("rebuilt again after a clean stop: %v", aside)
	}
}

func TestProcessCrashKeepsStateMachine(t *testing.T) {
	base, keys := nodeDir(t, 1)
	dir := copyDir(t, base)
	// A killed process: the marker still says open, the file holds every
	// commit (the kernel kept them), and the machine did not restart.
	openMarker(t, dir, "boot-1")
	cfg, logs := damagedConfig(t, dir)
	n := mustStart(t, cluster.WithBootID(cfg, "boot-1"))
	for _, k := range keys {
		if _, err := n.FSM().Get("t", k); err != nil {
			t.Errorf("record %v lost: %v", k, err)
		}
	}
	if aside, _ := filepath.Glob(filepath.Join(dir, "fsm.db.*-*")); len(aside) != 0 {
		t.Errorf("fsm.db moved aside after a process crash: %v", aside)
	}
	if !strings.Contains(logs.String(), "not closed cleanly, but the machine has not restarted") {
		t.Errorf("unclean stop not logged:\n%s", logs.String())
	}
}
