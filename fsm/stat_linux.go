package fsm

import (
	"os"
	"syscall"
)

// fileStamp identifies a file's content as of its last change: inode,
// size, and change and modification times. ctime cannot be set from user
// space, so a file written, replaced or copied in since has another stamp.
func fileStamp(path string) (string, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", false
	}
	return stampOf(uint64(st.Dev), uint64(st.Ino), st.Size, st.Ctim.Nano(), st.Mtim.Nano()), true
}
