package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

// Deadlines of the waits. Generous: a loaded 2-core machine runs three
// raft nodes, the test process and maybe other test binaries at once.
const (
	readyTimeout    = 30 * time.Second // process start until /v1/status answers
	electionTimeout = 60 * time.Second // elections and membership convergence
	stopTimeout     = 30 * time.Second // SIGTERM until exit
	requestTimeout  = 20 * time.Second // one API request (writes wait up to 10s for a leader)
	pollInterval    = 50 * time.Millisecond
	logTailLines    = 60
)

// testHTTP is the HTTP client of the tests. Its timeout is a backstop;
// requests also carry context deadlines.
var testHTTP = &http.Client{
	Timeout: 2 * requestTimeout,
	Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	},
}

// Ports handed out by freePort in this process: never twice, so that a
// stopped node keeps its ports for its restart.
var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// freePort returns a loopback port that was free for TCP and UDP (gossip
// uses both), found by listening on 127.0.0.1:0 and closing.
func freePort(tb testing.TB) int {
	tb.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("free port: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		if portsUsed[port] {
			continue
		}
		portsUsed[port] = true
		return port
	}
	tb.Fatalf("free port: no free TCP+UDP port found")
	return 0
}

// freeAddr returns "127.0.0.1:PORT" with a port from freePort.
func freeAddr(tb testing.TB) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(tb)))
}

// Node is one kvnode process under test. Its id, data directory and
// addresses stay the same across restarts.
type Node struct {
	ID     string
	Dir    string // data directory
	HTTP   string // HTTP API address
	Raft   string // raft address
	Gossip string // gossip address; others -join through it
	Log    string // the process's stdout and stderr, every run appended
	Client *api.Client

	tb     testing.TB
	scheme string       // of the HTTP API: "http" unless a test sets "https"
	hc     *http.Client // of Client; testHTTP if nil

	mu       sync.Mutex
	proc     *proc
	logStart int64    // size of the log file when the current run started
	runs     int      // runs started
	extra    []string // the flags of the last Start beyond the fixed ones
	moved    int      // times the first run moved to other ports
}

// proc is one run of a node's process.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's answer, set before done is closed
}

// newNode prepares node id with a fresh data directory and free ports,
// without starting it. A cleanup kills its process at the end of the test
// and, if the test failed, logs the tail of its log.
func newNode(tb testing.TB, id string) *Node {
	tb.Helper()
	base := tb.TempDir() // before the cleanup below: cleanups run last-in first-out
	n := &Node{
		ID:     id,
		Dir:    filepath.Join(base, "data"),
		HTTP:   freeAddr(tb),
		Raft:   freeAddr(tb),
		Gossip: freeAddr(tb),
		Log:    filepath.Join(base, id+".log"),
		tb:     tb,
	}
	n.Client = n.newClient()
	tb.Cleanup(func() {
		n.Kill()
		if tb.Failed() {
			tb.Logf("--- last %d lines of node %s's log (%s):\n%s", logTailLines, n.ID, n.Log, n.tail(logTailLines))
		}
	})
	return n
}

// newClient returns an API client for the node's HTTP address, over its
// scheme and HTTP client.
func (n *Node) newClient() *api.Client {
	hc, scheme := n.hc, n.scheme
	if hc == nil {
		hc = testHTTP
	}
	if scheme == "" {
		scheme = "http"
	}
	return api.NewClient(scheme+"://"+n.HTTP, hc)
}

// Start starts the node's process with its fixed flags plus extra (such
// as "-bootstrap" or "-join", ADDRS) and returns without waiting for it
// to serve; see WaitReady. The node must not be running.
func (n *Node) Start(extra ...string) {
	n.tb.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !n.proc.exited() {
		n.tb.Fatalf("node %s: start: already running", n.ID)
	}
	n.runs, n.extra = n.runs+1, extra
	args := append([]string{"-id", n.ID, "-data", n.Dir, "-http", n.HTTP, "-raft", n.Raft, "-gossip", n.Gossip}, extra...)
	f, err := os.OpenFile(n.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.tb.Fatalf("node %s: log: %v", n.ID, err)
	}
	defer f.Close() // the child has its own descriptor
	fmt.Fprintf(f, "=== %s test: kvnode %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	if n.logStart, err = f.Seek(0, io.SeekEnd); err != nil {
		n.tb.Fatalf("node %s: log: %v", n.ID, err)
	}
	cmd := exec.Command(kvnodeBin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = cleanEnv()
	if err := cmd.Start(); err != nil {
		n.tb.Fatalf("node %s: start: %v", n.ID, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	n.proc = p
}

// current returns the current run, nil if the node never started.
func (n *Node) current() *proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Running reports whether the node's process is running.
func (n *Node) Running() bool {
	p := n.current()
	return p != nil && !p.exited()
}

// Kill kills the process with SIGKILL, as in a crash, and waits for it
// to be gone. It does nothing if the node is not running.
func (n *Node) Kill() {
	p := n.current()
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Pause freezes the process with SIGSTOP: to its peers it is cut off (no
// raft or gossip traffic, no answers) while its memory and files stay as
// they are, like a node behind a network partition. Resume undoes it.
// It returns once every thread of the process has stopped: SIGSTOP is
// delivered to each thread when it next runs, which on a busy machine can
// be well after kill(2) returned, and a thread still running could answer
// a request that the test takes for the paused node's.
func (n *Node) Pause() {
	n.tb.Helper()
	n.signal(syscall.SIGSTOP)
	pid := n.current().cmd.Process.Pid
	deadline := time.Now().Add(5 * time.Second)
	for !allStopped(pid) {
		if time.Now().After(deadline) {
			n.tb.Fatalf("node %s: threads of pid %d still running 5s after SIGSTOP", n.ID, pid)
		}
		time.Sleep(time.Millisecond)
	}
}

// allStopped reports whether every thread of pid is in the stopped state
// (T in /proc/PID/task/TID/stat).
func allStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false
		}
		// pid (comm) state ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
			return false
		}
	}
	return true
}

// Resume continues a paused process with SIGCONT.
func (n *Node) Resume() { n.signal(syscall.SIGCONT) }

func (n *Node) signal(sig syscall.Signal) {
	n.tb.Helper()
	p := n.current()
	if p == nil || p.exited() {
		n.tb.Fatalf("node %s: %v: not running", n.ID, sig)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		n.tb.Fatalf("node %s: %v: %v", n.ID, sig, err)
	}
}

// Stop sends SIGTERM and waits for the process to exit, which a graceful
// shutdown must do within stopTimeout (else the test fails and the
// process is killed). It returns the process's exit error: nil for exit
// status 0.
func (n *Node) Stop() error {
	n.tb.Helper()
	p := n.current()
	if p == nil || p.exited() {
		n.tb.Fatalf("node %s: stop: not running", n.ID)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		n.tb.Fatalf("node %s: SIGTERM: %v", n.ID, err)
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		n.tb.Fatalf("node %s did not exit within %v of SIGTERM; killed it", n.ID, stopTimeout)
		return nil
	}
}

// WaitExit waits up to timeout for the process to exit on its own and
// returns its exit error; exited is false on timeout.
func (n *Node) WaitExit(timeout time.Duration) (err error, exited bool) {
	p := n.current()
	if p == nil {
		return nil, true
	}
	select {
	case <-p.done:
		return p.err, true
	case <-time.After(timeout):
		return nil, false
	}
}

// RunLog returns what the current (or last) run wrote to stdout and
// stderr so far.
func (n *Node) RunLog() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.runLogLocked()
}

func (n *Node) runLogLocked() string {
	start := n.logStart
	b, err := os.ReadFile(n.Log)
	if err != nil || int64(len(b)) < start {
		return ""
	}
	return string(b[start:])
}

// tail returns the last lines of the node's log.
func (n *Node) tail(lines int) string {
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

// Status asks the node for its status, within a short deadline.
func (n *Node) Status() (api.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return n.Client.Status(ctx)
}

// WaitReady waits until the node answers /v1/status. It fails the test
// if the process exits first.
func (n *Node) WaitReady() {
	n.tb.Helper()
	waitFor(n.tb, readyTimeout, "node "+n.ID+" to serve", func() (bool, string) {
		if err, exited := n.WaitExit(0); exited {
			if n.portTaken() {
				return false, "a port was taken by another process; started again on other ports"
			}
			n.tb.Fatalf("node %s exited while starting (%v):\n%s", n.ID, err, n.tail(logTailLines))
		}
		_, err := n.Status()
		return err == nil, fmt.Sprint(err)
	})
}

// portTaken starts a node's first run again on fresh ports when it could
// not bind one: between freePort's check and the process's bind, a test
// of another package running in parallel may take it. Later runs keep
// their addresses (peers know them), so they are not moved.
func (n *Node) portTaken() bool {
	n.mu.Lock()
	keep := n.runs != 1 || n.moved >= 3 || !strings.Contains(n.runLogLocked(), "address already in use")
	if !keep {
		n.moved++
		n.runs = 0
		n.HTTP, n.Raft, n.Gossip = freeAddr(n.tb), freeAddr(n.tb), freeAddr(n.tb)
		n.Client = n.newClient()
	}
	extra := n.extra
	n.mu.Unlock()
	if keep {
		return false
	}
	n.tb.Logf("node %s: a port was taken; starting again on %s, %s, %s", n.ID, n.HTTP, n.Raft, n.Gossip)
	n.Start(extra...)
	return true
}

// waitFor polls cond until it holds, failing the test with what and
// cond's last detail after timeout. It must run on the test's goroutine.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() (ok bool, detail string)) {
	tb.Helper()
	start := time.Now()
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Since(start) > timeout {
			tb.Fatalf("timed out after %v waiting for %s; last: %s", timeout, what, detail)
		}
		time.Sleep(pollInterval)
	}
}

// ids returns the ids of nodes, sorted.
func ids(nodes []*Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.ID
	}
	slices.Sort(out)
	return out
}

// gossipAddrs returns the gossip addresses of nodes, comma-separated for
// -join.
func gossipAddrs(nodes ...*Node) string {
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Gossip
	}
	return strings.Join(addrs, ",")
}

// voters returns the sorted ids of the voters in a status.
func voters(st api.Status) []string {
	var out []string
	for _, m := range st.Members {
		if m.Suffrage == "Voter" {
			out = append(out, m.ID)
		}
	}
	slices.Sort(out)
	return out
}

// converged reports whether every node answers, knows the same cluster
// id and the same leader (one of nodes, which says it leads), and lists
// exactly nodes as voters.
func converged(nodes []*Node) (bool, string) {
	want := ids(nodes)
	var leader, cluster string
	for i, n := range nodes {
		st, err := n.Status()
		switch {
		case err != nil:
			return false, fmt.Sprintf("%s: %v", n.ID, err)
		case st.ClusterID == "":
			return false, fmt.Sprintf("%s knows no cluster id", n.ID)
		case st.Leader == "":
			return false, fmt.Sprintf("%s knows no leader (state %s, term %d)", n.ID, st.State, st.Term)
		case !slices.Equal(voters(st), want):
			return false, fmt.Sprintf("%s: voters %v, want %v", n.ID, voters(st), want)
		case i > 0 && (st.Leader != leader || st.ClusterID != cluster):
			return false, fmt.Sprintf("%s: leader %s of cluster %s, %s: leader %s of cluster %s",
				nodes[0].ID, leader, cluster, n.ID, st.Leader, st.ClusterID)
		case st.Leader == n.ID && st.State != "Leader":
			return false, fmt.Sprintf("%s: named leader but in state %s", n.ID, st.State)
		}
		leader, cluster = st.Leader, st.ClusterID
	}
	if !slices.Contains(want, leader) {
		return false, fmt.Sprintf("leader %s is not one of %v", leader, want)
	}
	return true, ""
}

// waitConverged waits until converged(nodes) holds.
func waitConverged(tb testing.TB, nodes []*Node) {
	tb.Helper()
	waitFor(tb, electionTimeout, fmt.Sprintf("%v to agree on a leader with %d voters", ids(nodes), len(nodes)), func() (bool, string) {
		return converged(nodes)
	})
}

// waitLeader waits until the nodes agree on a leader among them and
// returns it. Unlike waitConverged it does not look at the voters.
func waitLeader(tb testing.TB, nodes []*Node) *Node {
	tb.Helper()
	var leader *Node
	waitFor(tb, electionTimeout, fmt.Sprintf("a leader among %v", ids(nodes)), func() (bool, string) {
		leader = nil
		id := ""
		for _, n := range nodes {
			st, err := n.Status()
			if err != nil {
				return false, fmt.Sprintf("%s: %v", n.ID, err)
			}
			if st.Leader == "" || (id != "" && st.Leader != id) {
				return false, fmt.Sprintf("%s sees leader %q, others %q", n.ID, st.Leader, id)
			}
			id = st.Leader
			if st.Leader == n.ID && st.State == "Leader" {
				leader = n
			}
		}
		return leader != nil, fmt.Sprintf("leader %q is not among them or not in state Leader", id)
	})
	return leader
}

// waitApplied waits until every node has applied index min or more.
func waitApplied(tb testing.TB, nodes []*Node, min uint64) {
	tb.Helper()
	waitFor(tb, electionTimeout, fmt.Sprintf("%v to apply index %d", ids(nodes), min), func() (bool, string) {
		for _, n := range nodes {
			st, err := n.Status()
			if err != nil {
				return false, fmt.Sprintf("%s: %v", n.ID, err)
			}
			if st.AppliedIndex < min {
				return false, fmt.Sprintf("%s applied %d", n.ID, st.AppliedIndex)
			}
		}
		return true, ""
	})
}

// waitSameApplied waits until every node has applied the same index, at
// least min, so that their states are equal. It returns that index.
func waitSameApplied(tb testing.TB, nodes []*Node, min uint64) uint64 {
	tb.Helper()
	var idx uint64
	waitFor(tb, electionTimeout, fmt.Sprintf("%v to apply the same index (>= %d)", ids(nodes), min), func() (bool, string) {
		var got []uint64
		for _, n := range nodes {
			st, err := n.Status()
			if err != nil {
				return false, fmt.Sprintf("%s: %v", n.ID, err)
			}
			got = append(got, st.AppliedIndex)
		}
		idx = got[0]
		for _, g := range got {
			if g != idx || g < min {
				return false, fmt.Sprintf("applied indexes %v", got)
			}
		}
		return true, ""
	})
	return idx
}

// startCluster starts a cluster of size nodes n1..nSIZE: n1 bootstraps,
// the others join through n1's gossip address; it returns once all agree
// on a leader and list every node as a voter.
func startCluster(tb testing.TB, size int) []*Node {
	tb.Helper()
	nodes := make([]*Node, size)
	for i := range nodes {
		nodes[i] = newNode(tb, fmt.Sprintf("n%d", i+1))
	}
	bootstrapNode(tb, nodes[0])
	for _, n := range nodes[1:] {
		n.Start("-join", nodes[0].Gossip)
	}
	for _, n := range nodes[1:] {
		n.WaitReady()
	}
	waitConverged(tb, nodes)
	return nodes
}

// bootstrapNode starts n with -bootstrap and waits until it leads and
// has its cluster id.
func bootstrapNode(tb testing.TB, n *Node) api.Status {
	tb.Helper()
	n.Start("-bootstrap")
	n.WaitReady()
	var st api.Status
	waitFor(tb, electionTimeout, n.ID+" to lead with a cluster id", func() (bool, string) {
		var err error
		st, err = n.Status()
		if err != nil {
			return false, err.Error()
		}
		return st.State == "Leader" && st.ClusterID != "", fmt.Sprintf("state %s, cluster %q", st.State, st.ClusterID)
	})
	return st
}

// value returns the CBOR value of test record i.
func value(tb testing.TB, i int64) []byte {
	b, err := api.EncodeValue(map[string]any{"n": i})
	if err != nil {
		tb.Fatalf("encode value: %v", err)
	}
	return b
}

// create creates a record with value data in tree through n.
func create(n *Node, tree string, data []byte) (api.WriteResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	return n.Client.Create(ctx, tree, api.WriteRequest{Data: data})
}

// acks collects acknowledged creates: record id to value bytes.
type acks struct {
	mu       sync.Mutex
	recs     map[uint64][]byte
	dups     []string
	maxIndex uint64
}

func newAcks() *acks { return &acks{recs: map[uint64][]byte{}} }

// add records an acknowledged create; a key acknowledged twice is kept
// as a duplicate for the test to report.
func (a *acks) add(res api.WriteResult, data []byte) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.recs[res.Key.ID]; dup || res.Key.Rev != 1 {
		a.dups = append(a.dups, fmt.Sprintf("%s at index %d", res.Key, res.Index))
	}
	a.recs[res.Key.ID] = data
	a.maxIndex = max(a.maxIndex, res.Index)
	return len(a.recs)
}

// count returns the number of acknowledged records.
func (a *acks) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.recs)
}

// writeRecords creates count records in tree through randomly chosen
// nodes from workers goroutines, failing the test on any error, and
// adds them to a.
func writeRecords(tb testing.TB, nodes []*Node, tree string, count, workers int, first int64, a *acks) {
	tb.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = first
		end  = first + int64(count)
	)
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stop := i >= end || len(errs) > 0
				mu.Unlock()
				if stop {
					return
				}
				data := value(tb, i)
				n := nodes[rand.IntN(len(nodes))]
				res, err := create(n, tree, data)
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("create %d through %s: %w", i, n.ID, err))
					mu.Unlock()
					return
				}
				a.add(res, data)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		tb.Fatalf("writing %d records: %v", count, errors.Join(errs...))
	}
}

// checkRecords checks that every node returns every record of want (id
// to value bytes) as revision 1 with the same value bytes.
func checkRecords(tb testing.TB, nodes []*Node, tree string, want map[uint64][]byte) {
	tb.Helper()
	keys := make([]uint64, 0, len(want))
	for id := range want {
		keys = append(keys, id)
	}
	slices.Sort(keys)
	for _, n := range nodes {
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			problems []string
			bad      int
		)
		work := make(chan uint64)
		for range 8 {
			wg.Go(func() {
				for id := range work {
					ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
					rec, err := n.Client.Get(ctx, tree, api.Key{ID: id, Rev: 1})
					cancel()
					var problem string
					switch {
					case err != nil:
						problem = fmt.Sprintf("%d/1: %v", id, err)
					case rec.Key != api.Key{ID: id, Rev: 1}:
						problem = fmt.Sprintf("%d/1: answered key %s", id, rec.Key)
					case !bytes.Equal(rec.Data, want[id]):
						problem = fmt.Sprintf("%d/1: value %x, acknowledged %x", id, rec.Data, want[id])
					}
					if problem != "" {
						mu.Lock()
						bad++
						if len(problems) < 10 {
							problems = append(problems, problem)
						}
						mu.Unlock()
					}
				}
			})
		}
		for _, id := range keys {
			work <- id
		}
		close(work)
		wg.Wait()
		if bad > 0 {
			tb.Errorf("node %s: %d of %d acknowledged records missing or wrong, e.g.:\n  %s",
				n.ID, bad, len(keys), strings.Join(problems, "\n  "))
		}
	}
}

// listAll lists every record of tree on n, page by page (1000 per page),
// and returns their keys in the order listed.
func listAll(tb testing.TB, n *Node, tree string) []api.Key {
	tb.Helper()
	var (
		keys  []api.Key
		after api.Key
	)
	for page := 0; ; page++ {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		p, err := n.Client.List(ctx, tree, after, 1000)
		cancel()
		if err != nil {
			tb.Fatalf("node %s: list %s after %s: %v", n.ID, tree, after, err)
		}
		for _, r := range p.Records {
			keys = append(keys, r.Key)
		}
		if p.After == "" {
			return keys
		}
		if after, err = api.ParseKey(p.After); err != nil {
			tb.Fatalf("node %s: list %s: bad cursor %q: %v", n.ID, tree, p.After, err)
		}
		if page > 100_000 {
			tb.Fatalf("node %s: list %s does not end", n.ID, tree)
		}
	}
}

// checkLists lists tree on every node and checks that no record id
// appears twice, that the nodes list the same keys, and that they list at
// least every acknowledged record. It returns the number of records.
func checkLists(tb testing.TB, nodes []*Node, tree string, acked map[uint64][]byte) int {
	tb.Helper()
	var first []api.Key
	for i, n := range nodes {
		keys := listAll(tb, n, tree)
		seen := make(map[uint64]bool, len(keys))
		var dups []uint64
		for _, k := range keys {
			if seen[k.ID] {
				dups = append(dups, k.ID)
			}
			seen[k.ID] = true
		}
		if len(dups) > 0 {
			tb.Errorf("node %s lists %d ids twice: %v", n.ID, len(dups), dups[:min(len(dups), 20)])
		}
		missing := 0
		for id := range acked {
			if !seen[id] {
				missing++
			}
		}
		if missing > 0 {
			tb.Errorf("node %s: %d acknowledged records missing from the list of %d", n.ID, missing, len(keys))
		}
		if i == 0 {
			first = keys
			continue
		}
		if len(keys) != len(first) {
			tb.Errorf("node %s lists %d records of %s, node %s %d", n.ID, len(keys), tree, nodes[0].ID, len(first))
		} else if !slices.Equal(keys, first) {
			tb.Errorf("nodes %s and %s list the same number of records (%d) but not the same keys", n.ID, nodes[0].ID, len(keys))
		}
	}
	return len(first)
}

// stopAll stops every node with SIGTERM at once; each must exit cleanly.
func stopAll(t *testing.T, nodes []*Node) {
	t.Helper()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = n.Stop() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %s: graceful stop exited with %v", nodes[i].ID, err)
		}
	}
}
