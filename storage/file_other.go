//go:build !unix

package storage

import (
	"os"
	"time"
)

// lockFile does nothing where bbolt does not use flock: Verify then reads
// the file unlocked.
func lockFile(*os.File, time.Duration) error { return nil }
