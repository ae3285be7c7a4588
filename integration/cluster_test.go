package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

// liveSet is the set of nodes writers may send requests to.
type liveSet struct {
	mu    sync.Mutex
	nodes []*Node
}

// pick returns a random live node.
func (l *liveSet) pick() *Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nodes[rand.IntN(len(l.nodes))]
}

// remove takes n out of the set, before it is killed.
func (l *liveSet) remove(n *Node) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nodes = slices.DeleteFunc(l.nodes, func(m *Node) bool { return m == n })
}

// add puts n (back) into the set.
func (l *liveSet) add(n *Node) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nodes = append(l.nodes, n)
}

// retryable reports whether a failed write may be retried: the node or
// the cluster could not take it right now, and the outcome is unknown or
// negative. Anything else (a 4xx rejection) is a test failure.
func retryable(err error) bool {
	return errors.Is(err, api.ErrUnreachable) || errors.Is(err, api.ErrNoLeader) ||
		errors.Is(err, api.ErrUnavailable) || errors.Is(err, api.ErrInternal) ||
		errors.Is(err, context.DeadlineExceeded)
}

// errTally counts failed writes by kind, for the test log.
type errTally struct {
	mu     sync.Mutex
	counts map[string]int
	sample map[string]string
}

// add counts err under its API code ("unreachable" for transport errors).
func (e *errTally) add(err error) {
	kind := string(api.CodeOf(err))
	if errors.Is(err, api.ErrUnreachable) {
		kind = "unreachable"
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.counts == nil {
		e.counts, e.sample = map[string]int{}, map[string]string{}
	}
	e.counts[kind]++
	e.sample[kind] = err.Error()
}

// String lists the counts with one example message each.
func (e *errTally) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var parts []string
	for k, c := range e.counts {
		parts = append(parts, fmt.Sprintf("%s: %d (e.g. %s)", k, c, e.sample[k]))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

// TestKillLeaderKeepsAcknowledgedWrites writes 1000 records through
// random nodes of a 3-node cluster while its leader is killed with
// SIGKILL (after 300 acknowledgements) and restarted on its data (after
// 700), and checks that every acknowledged record is on every node
// afterwards, with its value, exactly once.
func TestKillLeaderKeepsAcknowledgedWrites(t *testing.T) {
	skipShort(t)
	const (
		tree      = "parts"
		total     = 1000
		killAt    = 300
		restartAt = 700
		writers   = 4
	)
	start := time.Now()
	nodes := startCluster(t, 3)
	t.Logf("cluster up in %v", time.Since(start).Round(time.Millisecond))

	var (
		live     = &liveSet{nodes: slices.Clone(nodes)}
		acked    = newAcks()
		nAcked   atomic.Int64
		seq      atomic.Int64 // tickets: record i has value {"n": i}
		failures errTally
		fatalMu  sync.Mutex
		fatal    []string // non-retryable errors
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); wg.Wait() }) // runs before the nodes' cleanups
	for range writers {
		wg.Go(func() {
			backoff := 20 * time.Millisecond
			var data []byte // the value being written; kept while retrying
			for ctx.Err() == nil {
				if data == nil {
					// One ticket per record: exactly total acknowledgements.
					i := seq.Add(1)
					if i > total {
						return
					}
					data = value(t, i)
				}
				n := live.pick()
				rctx, rcancel := context.WithTimeout(ctx, requestTimeout)
				res, err := n.Client.Create(rctx, tree, api.WriteRequest{Data: data})
				rcancel()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					if !retryable(err) {
						fatalMu.Lock()
						fatal = append(fatal, fmt.Sprintf("create through %s: %v", n.ID, err))
						fatalMu.Unlock()
						cancel()
						return
					}
					failures.add(err)
					select {
					case <-ctx.Done():
					case <-time.After(backoff + rand.N(backoff)):
					}
					backoff = min(2*backoff, time.Second)
					continue
				}
				backoff = 20 * time.Millisecond
				acked.add(res, data)
				nAcked.Add(1)
				data = nil
			}
		})
	}
	progress := func() string {
		fatalMu.Lock()
		defer fatalMu.Unlock()
		return fmt.Sprintf("%d acknowledged; failed writes: %s; fatal: %v", nAcked.Load(), failures.String(), fatal)
	}
	waitAcks := func(n int64, timeout time.Duration) {
		t.Helper()
		waitFor(t, timeout, fmt.Sprintf("%d acknowledged writes", n), func() (bool, string) {
			if ctx.Err() != nil {
				t.Fatalf("writers stopped: %s", progress())
			}
			return nAcked.Load() >= n, progress()
		})
	}

	waitAcks(killAt, 90*time.Second)
	leader := waitLeader(t, nodes)
	live.remove(leader)
	leader.Kill()
	killed := time.Now()
	t.Logf("killed leader %s (SIGKILL) after %d acknowledged writes, %v after the first write",
		leader.ID, nAcked.Load(), killed.Sub(start).Round(time.Millisecond))

	waitAcks(restartAt, 120*time.Second)
	var others []*Node
	for _, n := range nodes {
		if n != leader {
			others = append(others, n)
		}
	}
	t.Logf("%d acknowledged writes %v after the kill; restarting %s", nAcked.Load(), time.Since(killed).Round(time.Millisecond), leader.ID)
	leader.Start("-join", gossipAddrs(others...))
	leader.WaitReady()
	waitFor(t, electionTimeout, leader.ID+" to know the new leader", func() (bool, string) {
		st, err := leader.Status()
		if err != nil {
			return false, err.Error()
		}
		return st.Leader != "" && st.Leader != leader.ID, fmt.Sprintf("state %s, leader %q", st.State, st.Leader)
	})
	live.add(leader)
	t.Logf("%s back after %v, %d acknowledged writes", leader.ID, time.Since(killed).Round(time.Millisecond), nAcked.Load())

	waitAcks(total, 120*time.Second)
	wg.Wait()
	if len(fatal) > 0 {
		t.Fatalf("writes rejected: %v", fatal)
	}
	t.Logf("%d writes acknowledged in %v; failed and retried: %s", acked.count(), time.Since(start).Round(time.Millisecond), failures.String())
	if acked.count() != total {
		t.Errorf("%d distinct records acknowledged, want %d", acked.count(), total)
	}
	if len(acked.dups) > 0 {
		t.Errorf("the cluster acknowledged a key twice or a create as revision > 1: %v", acked.dups)
	}

	waitConverged(t, nodes)
	waitApplied(t, nodes, acked.maxIndex)
	checkRecords(t, nodes, tree, acked.recs)
	waitSameApplied(t, nodes, acked.maxIndex)
	n := checkLists(t, nodes, tree, acked.recs)
	t.Logf("every node lists %d records (%d acknowledged, %d more from writes whose answer was lost); total %v",
		n, len(acked.recs), n-len(acked.recs), time.Since(start).Round(time.Millisecond))
}

// TestWholeClusterRestart stops every node of a 3-node cluster with
// SIGTERM, restarts them all on their data and ports, and checks that
// every record is still on every node and that the cluster takes writes.
func TestWholeClusterRestart(t *testing.T) {
	skipShort(t)
	const tree = "parts"
	nodes := startCluster(t, 3)
	acked := newAcks()
	writeRecords(t, nodes, tree, 200, 4, 1, acked)
	waitApplied(t, nodes, acked.maxIndex)
	before := waitLeader(t, nodes)
	st, err := before.Status()
	if err != nil {
		t.Fatal(err)
	}
	cluster := st.ClusterID

	// Stop all three at once.
	stopAll(t, nodes)

	nodes[0].Start("-bootstrap") // ignored: it has state
	for _, n := range nodes[1:] {
		n.Start("-join", nodes[0].Gossip)
	}
	for _, n := range nodes {
		n.WaitReady()
	}
	waitConverged(t, nodes)
	for _, n := range nodes {
		st, err := n.Status()
		if err != nil {
			t.Fatal(err)
		}
		if st.ClusterID != cluster {
			t.Errorf("node %s: cluster id %s after the restart, was %s", n.ID, st.ClusterID, cluster)
		}
	}
	waitApplied(t, nodes, acked.maxIndex)
	checkRecords(t, nodes, tree, acked.recs)

	writeRecords(t, nodes, tree, 50, 2, 1001, acked)
	waitApplied(t, nodes, acked.maxIndex)
	checkRecords(t, nodes, tree, acked.recs)
	waitSameApplied(t, nodes, acked.maxIndex)
	if n := checkLists(t, nodes, tree, acked.recs); n != len(acked.recs) {
		t.Errorf("nodes list %d records, %d were written", n, len(acked.recs))
	}
}

// TestWrongClusterRefusesJoin starts a node on the data of cluster B with
// -join pointing at cluster A: it must refuse to start, naming the other
// cluster, A must not take it in, and B's data must be intact.
func TestWrongClusterRefusesJoin(t *testing.T) {
	skipShort(t)
	const tree = "parts"
	a := newNode(t, "a1")
	stA := bootstrapNode(t, a)

	b := newNode(t, "b1")
	stB := bootstrapNode(t, b)
	if stA.ClusterID == stB.ClusterID {
		t.Fatalf("two bootstrapped clusters share the id %s", stA.ClusterID)
	}
	data := value(t, 42)
	res, err := create(b, tree, data)
	if err != nil {
		t.Fatalf("create in B: %v", err)
	}
	if err := b.Stop(); err != nil {
		t.Errorf("B: graceful stop exited with %v", err)
	}

	b.Start("-join", a.Gossip)
	err, exited := b.WaitExit(60 * time.Second)
	if !exited {
		b.Kill()
		t.Fatalf("a node with cluster B's data joining cluster A did not exit within 60s")
	}
	out := b.RunLog()
	var ee interface{ ExitCode() int }
	switch {
	case err == nil:
		t.Errorf("a node with cluster B's data joining cluster A exited 0, want non-zero; output:\n%s", out)
	case !errors.As(err, &ee):
		t.Errorf("wait: %v", err)
	default:
		t.Logf("refused with exit code %d", ee.ExitCode())
	}
	last := lastLine(out, "kvnode: ")
	t.Logf("last line: %s", last)
	if !strings.Contains(last, "cluster") || !strings.Contains(out, stA.ClusterID) {
		t.Errorf("the refusal should name the wrong cluster (%s); last kvnode line %q; output:\n%s", stA.ClusterID, last, out)
	}

	// A must not take b1 in, neither now nor a little later.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		st, err := a.Status()
		if err != nil {
			t.Fatalf("A: %v", err)
		}
		for _, m := range st.Members {
			if m.ID == b.ID {
				t.Fatalf("cluster A lists %s (of cluster B) as a member: %+v", b.ID, m)
			}
		}
		if st.ClusterID != stA.ClusterID {
			t.Fatalf("cluster A's id changed from %s to %s", stA.ClusterID, st.ClusterID)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// B's data is intact: it starts alone and serves the record.
	b.Start("-bootstrap")
	b.WaitReady()
	waitLeader(t, []*Node{b})
	st, err := b.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.ClusterID != stB.ClusterID {
		t.Errorf("B restarted with cluster id %s, was %s", st.ClusterID, stB.ClusterID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	rec, err := b.Client.Get(ctx, tree, res.Key)
	if err != nil {
		t.Fatalf("B lost its record %s: %v", res.Key, err)
	}
	if !bytes.Equal(rec.Data, data) {
		t.Errorf("B's record %s: value %x, want %x", res.Key, rec.Data, data)
	}
}

// lastLine returns the last line of out that starts with prefix.
func lastLine(out, prefix string) string {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], prefix) {
			return lines[i]
		}
	}
	return ""
}
