package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Mem is the memory of a process as /proc/PID/status reports it, in bytes.
type Mem struct {
	PID     int
	VmRSS   int64 // resident set: anonymous, file-backed (mmapped bbolt pages) and shared
	RssAnon int64 // resident anonymous memory: the heap and stacks
}

// String formats m in MiB.
func (m Mem) String() string {
	return fmt.Sprintf("pid %d: VmRSS %.1f MiB, RssAnon %.1f MiB", m.PID, float64(m.VmRSS)/(1<<20), float64(m.RssAnon)/(1<<20))
}

// ProcMem reads VmRSS and RssAnon of process pid from /proc (Linux only).
func ProcMem(pid int) (Mem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, fmt.Errorf("loadgen: memory of pid %d: %w", pid, err)
	}
	return parseStatus(pid, b)
}

// parseStatus reads the VmRSS and RssAnon lines ("VmRSS:  1234 kB") of a
// /proc/PID/status file.
func parseStatus(pid int, b []byte) (Mem, error) {
	m := Mem{PID: pid}
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "RssAnon") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return Mem{}, fmt.Errorf("loadgen: pid %d: unexpected %s line %q", pid, name, sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return Mem{}, fmt.Errorf("loadgen: pid %d: %s: %w", pid, name, err)
		}
		if name == "VmRSS" {
			m.VmRSS = kb << 10
		} else {
			m.RssAnon = kb << 10
		}
		found++
	}
	if found != 2 {
		return Mem{}, fmt.Errorf("loadgen: pid %d: no VmRSS and RssAnon in its status (a kernel thread, or not Linux?)", pid)
	}
	return m, nil
}

// ParsePIDs parses a comma-separated list of process ids ("" gives none).
func ParsePIDs(s string) ([]int, error) {
	var pids []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := strconv.Atoi(f)
		if err != nil || p <= 0 {
			return nil, fmt.Errorf("%w: bad pid %q in %q", ErrBadConfig, f, s)
		}
		pids = append(pids, p)
	}
	return pids, nil
}
