// Command restartbench measures how long a kvnode holding many records
// takes from start to serving, and its anonymous memory (RssAnon), the
// way docs/damaged-files.md reports them. It is a measuring tool, not a
// test:
//
//	go build -o /tmp/kvnode ./cmd/kvnode
//	go run ./internal/tools/restartbench -kvnode /tmp/kvnode -data /tmp/d1m -load 1000000
//	go run ./internal/tools/restartbench -kvnode /tmp/kvnode -data /tmp/d1m -runs 3
//	go run ./internal/tools/restartbench -kvnode /tmp/kvnode -data /tmp/d1m -runs 1 -kill   # the next start follows a kill -9
//
// With -load N it starts a single bootstrapped node on an empty -data,
// creates N records of -size bytes (CBOR) through POST /v1/batch from
// -writers goroutines, and stops the node cleanly. Then it starts the
// node -runs times and prints for each the time to the first /v1/status
// answer and to the first linearizable read (a one-record list), RssAnon
// after the start and, with -scan, after listing every record.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shelfdb/shelf/api"
)

const tree = "bench"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "restartbench:", err)
		os.Exit(1)
	}
}

func run() error {
	bin := flag.String("kvnode", "", "kvnode binary")
	data := flag.String("data", "", "data directory")
	load := flag.Int("load", 0, "create this many records first (on an empty -data)")
	size := flag.Int("size", 200, "record size in bytes")
	writers := flag.Int("writers", 4, "writers for -load")
	runs := flag.Int("runs", 1, "starts to measure")
	scan := flag.Bool("scan", false, "list every record after the start and report RssAnon again")
	kill := flag.Bool("kill", false, "stop each measured run with SIGKILL instead of SIGTERM")
	port := flag.Int("port", 17401, "HTTP port; raft and gossip use the next two")
	flag.Parse()
	if *bin == "" || *data == "" {
		return errors.New("-kvnode and -data are required")
	}
	ctx := context.Background()
	if *load > 0 {
		n, err := start(*bin, *data, *port)
		if err != nil {
			return err
		}
		if _, err := n.waitServing(ctx); err != nil {
			n.stop(syscall.SIGKILL)
			return err
		}
		t := time.Now()
		err = loadRecords(ctx, n.client, *load, *size, *writers)
		n.stop(syscall.SIGTERM)
		if err != nil {
			return err
		}
		fmt.Printf("loaded %d records of %d bytes in %s; RssAnon at the end of the load: %s\n", *load, *size, time.Since(t).Round(time.Millisecond), n.lastRSS)
	}
	for i := range *runs {
		n, err := start(*bin, *data, *port)
		if err != nil {
			return err
		}
		m, err := n.waitServing(ctx)
		if err != nil {
			n.stop(syscall.SIGKILL)
			return err
		}
		fmt.Printf("run %d: status after %s, linearizable read after %s, %s\n", i+1,
			m.status.Round(time.Millisecond), m.read.Round(time.Millisecond), rssAnon(n.cmd.Process.Pid))
		if *scan {
			t := time.Now()
			count, err := scanAll(ctx, n.client)
			if err != nil {
				n.stop(syscall.SIGKILL)
				return err
			}
			fmt.Printf("run %d: listed %d records in %s, %s\n", i+1, count, time.Since(t).Round(time.Millisecond), rssAnon(n.cmd.Process.Pid))
		}
		sig := syscall.SIGTERM
		if *kill {
			sig = syscall.SIGKILL
		}
		n.stop(sig)
	}
	return nil
}

type node struct {
	cmd     *exec.Cmd
	client  *api.Client
	started time.Time
	done    chan error
	lastRSS string
}

func start(bin, data string, port int) (*node, error) {
	logf, err := os.OpenFile(filepath.Join(filepath.Dir(filepath.Clean(data)), filepath.Base(data)+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	addr := func(p int) string { return fmt.Sprintf("127.0.0.1:%d", p) }
	cmd := exec.Command(bin, "-id", "dev", "-data", data, "-bootstrap",
		"-http", addr(port), "-raft", addr(port+1), "-gossip", addr(port+2))
	cmd.Stdout, cmd.Stderr = logf, logf
	n := &node{cmd: cmd, client: api.NewClient(addr(port), nil), started: time.Now(), done: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start kvnode: %w", err)
	}
	go func() { n.done <- cmd.Wait() }()
	return n, nil
}

func (n *node) stop(sig syscall.Signal) {
	n.lastRSS = rssAnon(n.cmd.Process.Pid)
	_ = n.cmd.Process.Signal(sig)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
}

type startTimes struct{ status, read time.Duration }

// waitServing polls until the node answers a linearizable read, for at
// most two minutes.
func (n *node) waitServing(ctx context.Context) (startTimes, error) {
	var m startTimes
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-n.done:
			return m, fmt.Errorf("kvnode exited: %v (see its log beside -data)", err)
		default:
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := n.client.Status(rctx)
		if err == nil && m.status == 0 {
			m.status = time.Since(n.started)
		}
		if err == nil {
			_, err = n.client.List(rctx, tree, api.Key{}, 1)
			if api.CodeOf(err) == api.CodeTreeNotFound {
				err = nil // answered: an empty node
			}
		}
		cancel()
		if err == nil {
			m.read = time.Since(n.started)
			return m, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return m, errors.New("kvnode did not serve a linearizable read within 2 minutes")
}

func loadRecords(ctx context.Context, c *api.Client, n, size, writers int) error {
	pad := strings.Repeat("x", max(size-16, 1))
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := next.Add(api.MaxBatchOps) - api.MaxBatchOps
				if lo >= int64(n) {
					return
				}
				hi := min(lo+api.MaxBatchOps, int64(n))
				ops := make([]api.BatchOp, 0, hi-lo)
				for i := lo; i < hi; i++ {
					v, err := api.Marshal(map[string]any{"n": i, "pad": pad})
					if err != nil {
						errs <- err
						return
					}
					ops = append(ops, api.BatchOp{Op: "create", Tree: tree, Data: v})
				}
				res, err := c.Batch(ctx, api.BatchRequest{Ops: ops})
				if err != nil {
					errs <- fmt.Errorf("batch: %w", err)
					return
				}
				for _, r := range res.Results {
					if r.Err != nil {
						errs <- fmt.Errorf("create: %w", r.Err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func scanAll(ctx context.Context, c *api.Client) (int, error) {
	count := 0
	after := api.Key{}
	for {
		p, err := c.List(ctx, tree, after, 1000)
		if err != nil {
			return count, fmt.Errorf("list: %w", err)
		}
		count += len(p.Records)
		if len(p.Records) == 0 || p.After == "" {
			return count, nil
		}
		if after, err = api.ParseKey(p.After); err != nil {
			return count, err
		}
	}
}

// rssAnon reads RssAnon from /proc/PID/status.
func rssAnon(pid int) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "RssAnon unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "RssAnon:") {
			return strings.Join(strings.Fields(sc.Text()), " ")
		}
	}
	return "RssAnon unknown"
}
