package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrUntrusted means the state file was not closed cleanly while its
// commits were not fsync'ed (Config.NoSync), and the machine may have
// crashed or lost power since: its pages may be torn or missing, so it
// must not be used. A server rebuilds it from its snapshots and raft log.
var ErrUntrusted = errors.New("fsm: state file not closed cleanly and the machine may have stopped since")

// markerSuffix names the open/clean marker beside the state file.
const markerSuffix = ".marker"

// Marker states.
const (
	markerOpen  = "open"  // commits since may be in the page cache only
	markerClean = "clean" // closed after an fsync of the whole file
)

// marker is the content of the marker file of a state file opened with
// Config.NoSync. It is written (and fsync'ed, with its directory) as
// "open" before the first commit that is not fsync'ed, and as "clean"
// after Close fsync'ed the state file.
type marker struct {
	State  string    `json:"state"`
	BootID string    `json:"boot_id,omitempty"` // kernel boot id when opened ("" unknown)
	PID    int       `json:"pid,omitempty"`
	Time   time.Time `json:"time"`
	// Stamp is the state file's fileStamp when it was closed cleanly: the
	// same stamp at the next open means nothing touched it since.
	Stamp string `json:"stamp,omitempty"`
}

// stampOf formats a fileStamp.
func stampOf(dev, ino uint64, size, ctime, mtime int64) string {
	return fmt.Sprintf("%d:%d:%d:%d:%d", dev, ino, size, ctime, mtime)
}

// bootIDFile is where Linux keeps the id of the running boot.
const bootIDFile = "/proc/sys/kernel/random/boot_id"

// currentBootID returns the kernel's boot id, or "" where there is none.
func currentBootID() string {
	b, err := os.ReadFile(bootIDFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// MarkerPath returns the path of the marker that records whether the state
// file at path was closed cleanly (see Config.NoSync).
func MarkerPath(path string) string { return path + markerSuffix }

// How the state file was last closed, as checkMarker found it.
type lastClose int

const (
	closeUnknown   lastClose = iota // no file, or no marker: written with an fsync per commit
	closeClean                      // closed cleanly after an fsync, touched since
	closeUntouched                  // closed cleanly after an fsync, not touched since
	closeSameBoot                   // not closed, but the machine has not restarted since
)

// checkMarker decides whether the state file at path can be trusted after
// the way it was last closed. It trusts a missing file, a missing marker
// (the file was written with an fsync per commit), a clean close, and an
// unclean stop within the running boot (the process died, the kernel
// kept every page it wrote, and bbolt writes its meta page last); it
// returns an error wrapping ErrUntrusted otherwise.
func checkMarker(path, boot string) (lastClose, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return closeUnknown, nil
	}
	raw, err := os.ReadFile(MarkerPath(path))
	if errors.Is(err, os.ErrNotExist) {
		return closeUnknown, nil
	}
	if err != nil {
		return closeUnknown, fmt.Errorf("fsm: read %s: %w", MarkerPath(path), err)
	}
	var m marker
	if err := json.Unmarshal(raw, &m); err != nil {
		return closeUnknown, fmt.Errorf("%w: %s: its marker %s is unreadable (%v), so whether it was closed cleanly is unknown",
			ErrUntrusted, path, MarkerPath(path), err)
	}
	switch {
	case m.State == markerClean:
		if stamp, ok := fileStamp(path); ok && m.Stamp == stamp {
			return closeUntouched, nil
		}
		return closeClean, nil
	case m.State != markerOpen:
		return closeUnknown, fmt.Errorf("%w: %s: its marker %s has unknown state %q", ErrUntrusted, path, MarkerPath(path), m.State)
	case m.BootID == "" || boot == "":
		return closeUnknown, fmt.Errorf("%w: %s was not closed cleanly (opened by pid %d at %s) and this system has no boot id to tell whether the machine restarted since",
			ErrUntrusted, path, m.PID, m.Time.Format(time.RFC3339))
	case m.BootID != boot:
		return closeUnknown, fmt.Errorf("%w: %s was not closed cleanly (opened by pid %d at %s) and the machine restarted since (boot id %s, now %s): commits that were not fsync'ed may be torn or lost",
			ErrUntrusted, path, m.PID, m.Time.Format(time.RFC3339), m.BootID, boot)
	}
	return closeSameBoot, nil
}

// writeMarker replaces the marker of the state file at path atomically
// and durably: a temporary file, fsync, rename, fsync of the directory.
func writeMarker(path string, m marker) error {
	raw, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("fsm: marker: %w", err)
	}
	dst := MarkerPath(path)
	tmp := dst + ".tmp"
	if err := writeSynced(tmp, append(raw, '\n')); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("fsm: write marker %s: %w", dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("fsm: write marker %s: %w", dst, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("fsm: write marker %s: %w", dst, err)
	}
	return nil
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
