package faults

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/netns"
)

// Deadlines of the waits: generous, the 2-core machine is shared.
const (
	readyTimeout    = 30 * time.Second
	convergeTimeout = 60 * time.Second
	stopTimeout     = 10 * time.Second
	pollInterval    = 100 * time.Millisecond
	logTailLines    = 40
)

// Fixed ports: every node has its own address, so they never collide.
const (
	httpPort   = "8080"
	raftPort   = "7000"
	gossipPort = "7946"
)

// testHTTP carries the test's requests; every request also has a context
// deadline.
var testHTTP = &http.Client{
	Timeout: 30 * time.Second,
	Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	},
}

// node is one kvnode process in its own namespace. Its data directory and
// addresses stay the same across restarts.
type node struct {
	ID     string
	Dir    string
	HTTP   string
	Raft   string
	Gossip string
	Log    string
	Client *api.Client

	tb  testing.TB
	net *netns.Network

	mu     sync.Mutex
	proc   *proc
	extra  []string
	paused bool
}

// proc is one run of a node's process.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// cluster is three nodes on a namespace network.
type cluster struct {
	tb    testing.TB
	net   *netns.Network
	nodes []*node
}

// newCluster builds the namespaces and starts n1 with -bootstrap and n2,
// n3 joining it, and waits until they agree on a leader. Cleanups kill the
// processes before the network goes.
func newCluster(tb testing.TB, logDir string) *cluster {
	tb.Helper()
	ids := []string{"n1", "n2", "n3"}
	nw := netns.ForTest(tb, ids...)
	c := &cluster{tb: tb, net: nw}
	base := tb.TempDir()
	for _, id := range ids {
		addr, err := nw.Addr(id)
		if err != nil {
			tb.Fatal(err)
		}
		host := addr.String()
		n := &node{
			ID:     id,
			Dir:    filepath.Join(base, id),
			HTTP:   net.JoinHostPort(host, httpPort),
			Raft:   net.JoinHostPort(host, raftPort),
			Gossip: net.JoinHostPort(host, gossipPort),
			Log:    filepath.Join(logDir, id+".log"),
			tb:     tb,
			net:    nw,
		}
		n.Client = api.NewClient(n.HTTP, testHTTP)
		c.nodes = append(c.nodes, n)
	}
	tb.Cleanup(func() {
		for _, n := range c.nodes {
			n.Kill()
			if tb.Failed() {
				tb.Logf("--- last %d lines of %s's log (%s):\n%s", logTailLines, n.ID, n.Log, n.tail(logTailLines))
			}
		}
	})
	c.nodes[0].Start("-bootstrap")
	c.nodes[0].WaitReady()
	for _, n := range c.nodes[1:] {
		n.Start("-join", c.nodes[0].Gossip)
	}
	for _, n := range c.nodes[1:] {
		n.WaitReady()
	}
	c.waitConverged(convergeTimeout)
	return c
}

// Start starts the node's process inside its namespace with the fixed
// flags (with -raft-log from -faults.raftlog) plus extra; later restarts
// reuse extra. It does not wait.
func (n *node) Start(extra ...string) {
	n.tb.Helper()
	if err := n.start(extra); err != nil {
		n.tb.Fatalf("node %s: %v", n.ID, err)
	}
}

// Restart starts the node again with the flags of its last start.
func (n *node) Restart() error {
	n.mu.Lock()
	extra := n.extra
	n.mu.Unlock()
	return n.start(extra)
}

func (n *node) start(extra []string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !n.proc.exited() {
		return errors.New("start: already running")
	}
	n.extra = extra
	args := append([]string{"-id", n.ID, "-data", n.Dir, "-http", n.HTTP, "-raft", n.Raft, "-gossip", n.Gossip, "-raft-log", *flagRaftLog}, extra...)
	f, err := os.OpenFile(n.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	defer f.Close()
	fmt.Fprintf(f, "=== %s test: kvnode %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd, err := n.net.Command(n.ID, kvnodeBin, args...)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = cleanEnv()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { // ends when the process exits; Kill and Stop make sure it does
		p.err = cmd.Wait()
		close(p.done)
	}()
	n.proc, n.paused = p, false
	return nil
}

func (n *node) current() *proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// Running reports whether the process runs (paused or not).
func (n *node) Running() bool {
	p := n.current()
	return p != nil && !p.exited()
}

// Kill kills the process with SIGKILL, as in a crash, and waits until it
// is gone. A paused process dies as well.
func (n *node) Kill() {
	p := n.current()
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	n.mu.Lock()
	n.paused = false
	n.mu.Unlock()
}

// Pause freezes the process with SIGSTOP.
func (n *node) Pause() error { return n.signal(syscall.SIGSTOP, true) }

// Resume continues a paused process with SIGCONT; it does nothing if the
// node is not paused.
func (n *node) Resume() error {
	n.mu.Lock()
	paused := n.paused
	n.mu.Unlock()
	if !paused {
		return nil
	}
	return n.signal(syscall.SIGCONT, false)
}

func (n *node) signal(sig syscall.Signal, paused bool) error {
	p := n.current()
	if p == nil || p.exited() {
		return fmt.Errorf("node %s: %v: not running", n.ID, sig)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("node %s: %v: %w", n.ID, sig, err)
	}
	n.mu.Lock()
	n.paused = paused
	n.mu.Unlock()
	return nil
}

// Stop resumes the process if paused, sends SIGTERM and waits for it to
// exit; after stopTimeout it kills it and says so.
func (n *node) Stop() error {
	p := n.current()
	if p == nil || p.exited() {
		return nil
	}
	_ = n.Resume()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("node %s: SIGTERM: %w", n.ID, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("node %s did not exit within %v of SIGTERM; killed it", n.ID, stopTimeout)
	}
}

// tail returns the last lines of the node's log.
func (n *node) tail(lines int) string {
	b, err := os.ReadFile(n.Log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// Status asks the node for its status within a short deadline.
func (n *node) Status(ctx context.Context) (api.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return n.Client.Status(ctx)
}

// WaitReady waits until the node answers /v1/status; it fails the test
// if the process exits first.
func (n *node) WaitReady() {
	n.tb.Helper()
	err := poll(context.Background(), readyTimeout, func() (bool, string) {
		if p := n.current(); p != nil && p.exited() {
			return false, "exited"
		}
		_, err := n.Status(context.Background())
		return err == nil, fmt.Sprint(err)
	})
	if err != nil {
		n.tb.Fatalf("node %s did not start serving: %v\n%s", n.ID, err, n.tail(logTailLines))
	}
}

// errTimeout is what poll returns when its condition never held.
var errTimeout = errors.New("timed out")

// poll calls cond every pollInterval until it holds, timeout passes (an
// error wrapping errTimeout with cond's last detail) or ctx ends.
func poll(ctx context.Context, timeout time.Duration, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %v; last: %s", errTimeout, timeout, detail)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// leader returns the node that says it leads, preferring the highest
// term, or nil if none answers as leader.
func (c *cluster) leader(ctx context.Context) *node {
	var (
		best *node
		term uint64
	)
	for _, n := range c.nodes {
		st, err := n.Status(ctx)
		if err == nil && st.State == "Leader" && st.Term >= term {
			best, term = n, st.Term
		}
	}
	return best
}

// converged reports whether every node answers, names the same leader
// (one of them, in state Leader) and lists all three as voters.
func (c *cluster) converged(ctx context.Context) (bool, string) {
	var leader string
	for i, n := range c.nodes {
		st, err := n.Status(ctx)
		switch {
		case err != nil:
			return false, fmt.Sprintf("%s: %v", n.ID, err)
		case st.Leader == "":
			return false, fmt.Sprintf("%s knows no leader (state %s, term %d)", n.ID, st.State, st.Term)
		case i > 0 && st.Leader != leader:
			return false, fmt.Sprintf("%s sees leader %s, %s sees %s", c.nodes[0].ID, leader, n.ID, st.Leader)
		case st.Leader == n.ID && st.State != "Leader":
			return false, fmt.Sprintf("%s named leader but in state %s", n.ID, st.State)
		}
		var voters []string
		for _, m := range st.Members {
			if m.Suffrage == "Voter" {
				voters = append(voters, m.ID)
			}
		}
		slices.Sort(voters)
		if !slices.Equal(voters, []string{"n1", "n2", "n3"}) {
			return false, fmt.Sprintf("%s: voters %v", n.ID, voters)
		}
		leader = st.Leader
	}
	return true, ""
}

// waitConverged waits until converged holds, failing the test otherwise.
func (c *cluster) waitConverged(timeout time.Duration) {
	c.tb.Helper()
	if err := poll(context.Background(), timeout, func() (bool, string) { return c.converged(context.Background()) }); err != nil {
		c.tb.Fatalf("cluster did not agree on a leader: %v", err)
	}
}

// stopAll stops every node at once.
func (c *cluster) stopAll() error {
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Go(func() { errs[i] = n.Stop() })
	}
	wg.Wait()
	return errors.Join(errs...)
}
