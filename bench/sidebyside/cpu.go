package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/shelfdb/shelf/internal/loadgen"
)

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on Linux).
const clockTick = 10 * time.Millisecond

// procCPU returns the CPU time (user + system) the process pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses;
	// utime and stime are fields 14 and 15, the 12th and 13th after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the command name", pid, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// selfCPU returns the CPU time this process (the load generator and, in
// the outbox loads, the embedded clients) has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuUse is the CPU time used during one load.
type cpuUse struct {
	servers time.Duration // the three servers together
	loadgen time.Duration // this process
}

// cpuMeter measures the CPU time the servers pids and this process use
// between its creation and done.
type cpuMeter struct {
	pids   []int
	server time.Duration
	self   time.Duration
}

func newCPUMeter(pids []int) *cpuMeter {
	m := &cpuMeter{pids: pids, self: selfCPU()}
	m.server = m.servers()
	return m
}

func (m *cpuMeter) servers() time.Duration {
	var sum time.Duration
	for _, pid := range m.pids {
		d, err := procCPU(pid)
		if err != nil {
			return 0
		}
		sum += d
	}
	return sum
}

// done returns the CPU used since newCPUMeter.
func (m *cpuMeter) done() cpuUse {
	return cpuUse{servers: m.servers() - m.server, loadgen: selfCPU() - m.self}
}

// perWrite returns the median over reps of CPU microseconds per write of
// the servers and of the load generator (load).
func perWrite(uses []cpuUse, writes int) (servers, load float64) {
	var s, l []float64
	for _, u := range uses {
		s = append(s, float64(u.servers.Microseconds())/float64(writes))
		l = append(l, float64(u.loadgen.Microseconds())/float64(writes))
	}
	return loadgen.Median(s), loadgen.Median(l)
}
