package client_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/fsm"
)

// writeMarker makes replica.db's marker say the file was left open (not
// closed cleanly) in the boot with id boot.
func writeMarker(t *testing.T, dir, boot string) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"state": "open", "boot_id": boot, "time": time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fsm.MarkerPath(filepath.Join(dir, "replica.db")), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// replica.db commits without fsync. A replica left open when the machine
// stopped (another boot id in its marker) may be torn: it is moved aside
// and rebuilt from the cluster. One left open by a crashed process within
// the same boot is whole (the kernel kept its pages) and is kept.
func TestReplicaAfterUncleanStop(t *testing.T) {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatalf("this test needs the kernel's boot id: %v", err)
	}
	for _, tc := range []struct {
		name    string
		boot    string
		rebuilt bool
	}{
		{"machine restarted", "00000000-another-boot", true},
		{"process crashed", strings.TrimSpace(string(boot)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t)
			dir := clientDir(t, s.Addr)
			writeMarker(t, dir, tc.boot)
			a := open(t, dir, s.Addr)
			got := strings.Contains(a.Recovered(), filepath.Join(dir, "replica.db"))
			if got != tc.rebuilt {
				t.Errorf("replica rebuilt: %v (Recovered %q), want %v", got, a.Recovered(), tc.rebuilt)
			}
			waitFor(t, "the 20 records", func() bool {
				n := 0
				for range a.Tree("parts").All() {
					n++
				}
				return n == 20
			})
		})
	}
}
