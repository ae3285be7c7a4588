package client_test

import (
	"syscall"
	"time"
	"unsafe"
)

// processCPU returns the CPU time the process has used so far (all its
// threads, user and system, to the nanosecond: CLOCK_PROCESS_CPUTIME_ID),
// so that a benchmark on a busy machine can report CPU time per
// operation rather than wall time. ok is false where it is not available.
func processCPU() (d time.Duration, ok bool) {
	const clockProcessCPUTimeID = 2
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockProcessCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
