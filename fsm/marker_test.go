package fsm

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func openMarked(t *testing.T, path, boot string, noSync bool) *FSM {
	t.Helper()
	f, err := Open(Config{Path: path, NoSync: noSync, BootID: boot, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// crash leaves f as a killed process does: the file holds every commit,
// the marker still says open.
func crash(t *testing.T, f *FSM) {
	t.Helper()
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
}

func advance(t *testing.T, f *FSM, index uint64) {
	t.Helper()
	if _, err := f.TryApplyBatch([]Entry{{Index: index}}); err != nil {
		t.Fatal(err)
	}
}

func TestMarker(t *testing.T) {
	t.Run("clean close is trusted on any boot", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "fsm.db")
		f := openMarked(t, path, "boot-a", true)
		advance(t, f, 5)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(MarkerPath(path))
		if err != nil || !strings.Contains(string(raw), `"clean"`) {
			t.Fatalf("marker after Close: %q, %v", raw, err)
		}
		f = openMarked(t, path, "boot-b", true)
		defer f.Close()
		if got := f.AppliedIndex(); got != 5 {
			t.Errorf("applied index %d after reopen, want 5", got)
		}
	})
	t.Run("a cleanly closed file touched since is checked in full", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "fsm.db")
		f := openMarked(t, path, "boot-a", true)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		last, err := checkMarker(path, "boot-a")
		if err != nil || (last != closeUntouched && runtime.GOOS == "linux") {
			t.Fatalf("untouched after Close: %v, %v", last, err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil { // same bytes, written again
			t.Fatal(err)
		}
		if last, err := checkMarker(path, "boot-a"); err != nil || last != closeClean {
			t.Errorf("rewritten after Close: %v, %v; want closeClean (full check)", last, err)
		}
	})
	t.Run("unclean stop on the same boot is trusted", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "fsm.db")
		f := openMarked(t, path, "boot-a", true)
		advance(t, f, 7)
		crash(t, f)
		f = openMarked(t, path, "boot-a", true)
		defer f.Close()
		if got := f.AppliedIndex(); got != 7 {
			t.Errorf("applied index %d after reopen, want 7", got)
		}
	})
	t.Run("unclean stop and another boot is refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "fsm.db")
		f := openMarked(t, path, "boot-a", true)
		advance(t, f, 7)
		crash(t, f)
		_, err := Open(Config{Path: path, NoSync: true, BootID: "boot-b"})
		if !errors.Is(err, ErrUntrusted) {
			t.Fatalf("open after a reboot: %v, want ErrUntrusted", err)
		}
		if !strings.Contains(err.Error(), "boot-a") || !strings.Contains(err.Error(), "boot-b") || !strings.Contains(err.Error(), path) {
			t.Errorf("error does not name the file and both boots: %v", err)
		}
		// Refused by the client's (synced) open as well.
		if _, err := Open(Config{Path: path, BootID: "boot-b"}); !errors.Is(err, ErrUntrusted) {
			t.Errorf("synced open after a reboot: %v, want ErrUntrusted", err)
		}
	})
	t.Run("unclean stop without a boot id is refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "fsm.db")
		f := openMarked(t, path, "boot-a", true)
		crash(t, f)
		if _, err := checkMarker(path, ""); !errors.Is(err, ErrUntrusted) {
			t.Errorf("no boot id now: %v, want ErrUntrusted", err)
		}
		if err := os.WriteFile(MarkerPath(path), []byte(`{"state":"open"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := checkMarker(path, "boot-a"); !errors.Is(err, ErrUntrusted) {
			t.Errorf("no boot id in the marker: %v, want ErrUntrusted", err)
		}
	})
	t.Run("unreadable marker is refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "fsm.db")
		f := openMarked(t, path, "boot-a", true)
		crash(t, f)
		if err := os.WriteFile(MarkerPath(path), []byte("{\x00garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(Config{Path: path, NoSync: true, BootID: "boot-a"}); !errors.Is(err, ErrUntrusted) {
			t.Errorf("open with a garbled marker: %v, want ErrUntrusted", err)
		}
	})
	t.Run("a file written with fsync per commit has no marker and is trusted", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "fsm.db")
		f := openMarked(t, path, "boot-a", false)
		advance(t, f, 3)
		crash(t, f)
		if _, err := os.Stat(MarkerPath(path)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("synced state file has a marker: %v", err)
		}
		f = openMarked(t, path, "boot-b", true)
		defer f.Close()
		if got := f.AppliedIndex(); got != 3 {
			t.Errorf("applied index %d, want 3", got)
		}
	})
}
