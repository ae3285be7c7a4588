package faults

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shelfdb/shelf/fsm"
)

// rebuiltUnclean is what a node logs when it rebuilds an fsm.db it cannot
// trust after a crash of the machine.
const rebuiltUnclean = "STATE MACHINE FILE NOT TRUSTED AFTER A CRASH OF THE MACHINE"

// powerLoss makes a killed node's fsm.db look as a power loss can leave
// it: its commits are not fsync'ed, so pages written since the kernel last
// flushed them are lost (zeros here, on every third page after the meta
// pages), and the machine booted again (the boot id in the marker the
// node left is another one). raft.db and the snapshots are fsync'ed and
// stay as they are. The node must notice, rebuild fsm.db from its snapshot
// and raft log, and lose no acknowledged write.
func powerLoss(dir string) error {
	path := filepath.Join(dir, "fsm.db")
	mpath := fsm.MarkerPath(path)
	raw, err := os.ReadFile(mpath)
	if err != nil {
		return fmt.Errorf("marker of a killed node: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("marker %s: %w", mpath, err)
	}
	if m["state"] != "open" {
		return fmt.Errorf("marker %s of a killed node says %v, want open", mpath, m["state"])
	}
	m["boot_id"] = fmt.Sprintf("before-power-loss-%v", m["boot_id"])
	if raw, err = json.Marshal(m); err != nil {
		return err
	}
	if err := os.WriteFile(mpath, raw, 0o600); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	const ps = 4096
	var meta [ps]byte
	if _, err := f.ReadAt(meta[:], 0); err != nil {
		return fmt.Errorf("fsm.db meta page: %w", err)
	}
	pages := binary.LittleEndian.Uint64(meta[16+40:]) // the meta's high-water mark
	zero := make([]byte, ps)
	for p := uint64(2); p < pages; p += 3 {
		if _, err := f.WriteAt(zero, int64(p)*ps); err != nil {
			return err
		}
	}
	return f.Close()
}
