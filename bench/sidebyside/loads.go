package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shelfdb/shelf/internal/loadgen"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// opTimeout bounds one write of a load.
const opTimeout = 30 * time.Second

// etcdKeys numbers the keys of every etcd load of the run: each put
// writes a new key.
var etcdKeys atomic.Int64

// etcdLoad puts n new keys with value val through the members of c,
// writer w through member w%3 (one gRPC client per member).
func etcdLoad(ctx context.Context, c *cluster, writers, n int, val []byte) (loadgen.Summary, error) {
	clis := make([]*clientv3.Client, len(c.endpoints))
	for i, ep := range c.endpoints {
		cli, err := newEtcdClient(ep)
		if err != nil {
			return loadgen.Summary{}, fmt.Errorf("etcd client %s: %w", ep, err)
		}
		defer cli.Close()
		clis[i] = cli
	}
	v := string(val)
	return loadgen.Run(ctx, loadgen.Config{Writers: writers, Total: n, OpTimeout: opTimeout}, func(ctx context.Context, w int) error {
		_, err := clis[w%len(clis)].Put(ctx, fmt.Sprintf("bench/%012d", etcdKeys.Add(1)), v)
		return err
	})
}

// shelfLoad creates n records with value val in tree "bench" through the
// HTTP API of the nodes of c, writer w through node w%3.
func shelfLoad(ctx context.Context, c *cluster, writers, n int, val []byte) (loadgen.Summary, error) {
	return loadgen.Creates(ctx, loadgen.CreatesConfig{Servers: c.endpoints, Tree: "bench", Value: val, Writers: writers, Total: n})
}

// outboxLoad creates n records through embedded clients' outboxes (see
// loadgen.Outbox): client i follows node i%3, writer w creates through
// client w%clients; wait says when a create counts (loadgen.Wait).
func outboxLoad(ctx context.Context, c *cluster, clients, writers, n int, val []byte, dir string, wait loadgen.Wait) (loadgen.OutboxResult, error) {
	return loadgen.Outbox(ctx, loadgen.OutboxConfig{Servers: c.endpoints, Dir: dir, Tree: "bench", Value: val,
		Clients: clients, Writers: writers, Total: n, Wait: wait})
}

// fsyncCount is what strace counted on each server of a system.
type fsyncCount struct {
	system string
	writes int
	calls  []int64 // fdatasync+fsync calls per server, in order
	names  []string
}

// String formats the calls per write of each server.
func (f fsyncCount) String() string {
	var parts []string
	for i, c := range f.calls {
		parts = append(parts, fmt.Sprintf("%s %.2f", f.names[i], float64(c)/float64(f.writes)))
	}
	return strings.Join(parts, ", ") + " per write"
}

// straceLoad runs one 1-writer load of n writes on s with strace
// counting fdatasync and fsync on each of its servers.
func straceLoad(ctx context.Context, s *system, n int, dir string) (fsyncCount, error) {
	fc := fsyncCount{system: s.name, writes: n}
	type tracer struct {
		cmd       *exec.Cmd
		out, errf string
		done      chan error
	}
	var tracers []*tracer
	defer func() {
		for _, t := range tracers { // on an early return
			if t.cmd.ProcessState == nil {
				_ = t.cmd.Process.Kill()
				<-t.done
			}
		}
	}()
	for i, pid := range s.c.pids() {
		t := &tracer{out: filepath.Join(dir, fmt.Sprintf("strace-%s-%d.txt", s.name, i)),
			errf: filepath.Join(dir, fmt.Sprintf("strace-%s-%d.err", s.name, i)), done: make(chan error, 1)}
		ef, err := os.Create(t.errf)
		if err != nil {
			return fc, err
		}
		t.cmd = exec.Command("strace", "-f", "-c", "-e", "trace=fdatasync,fsync", "-o", t.out, "-p", strconv.Itoa(pid))
		t.cmd.Stderr = ef
		t.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		err = t.cmd.Start()
		ef.Close()
		if err != nil {
			return fc, fmt.Errorf("strace: %w", err)
		}
		go func() { t.done <- t.cmd.Wait() }()
		tracers = append(tracers, t)
		err = poll(ctx, 10*time.Second, "strace to attach to "+s.c.servers[i].name, func() error {
			b, _ := os.ReadFile(t.errf)
			if strings.Contains(string(b), "attached") {
				return nil
			}
			return fmt.Errorf("strace says %q", strings.TrimSpace(string(b)))
		})
		if err != nil {
			return fc, err
		}
	}
	sum, err := s.load(ctx, 1, n)
	if err != nil {
		return fc, err
	}
	if sum.Errors > 0 {
		return fc, fmt.Errorf("%d writes failed under strace, first: %w", sum.Errors, sum.FirstErr)
	}
	for i, t := range tracers {
		_ = t.cmd.Process.Signal(os.Interrupt) // detaches and writes the summary
		select {
		case <-t.done:
		case <-time.After(10 * time.Second):
			_ = t.cmd.Process.Kill()
			<-t.done
			return fc, errors.New("strace did not stop within 10s of SIGINT")
		}
		calls, err := parseStraceCounts(t.out)
		if err != nil {
			return fc, err
		}
		fc.calls = append(fc.calls, calls)
		fc.names = append(fc.names, s.c.servers[i].name)
	}
	return fc, nil
}

// parseStraceCounts sums the calls column of the fdatasync and fsync rows
// of an strace -c summary.
func parseStraceCounts(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("strace summary: %w", err)
	}
	defer f.Close()
	var total int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		if name := fields[len(fields)-1]; name != "fdatasync" && name != "fsync" {
			continue
		}
		c, err := strconv.ParseInt(fields[3], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("strace summary %s: line %q: %w", path, sc.Text(), err)
		}
		total += c
	}
	return total, sc.Err()
}
