package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/fsm"
)

// forwardCounter counts a node's forwarded requests (cluster.Observer).
type forwardCounter struct {
	batches atomic.Int64 // requests to InternalApplyBatchPath
	single  atomic.Int64 // requests to InternalApplyPath
}

func (*forwardCounter) ObserveApply(int, time.Duration) {}

func (c *forwardCounter) ObserveForward(path string, _ time.Duration, _ error) {
	if path == cluster.InternalApplyBatchPath {
		c.batches.Add(1)
	} else {
		c.single.Add(1)
	}
}

// gate holds a node's forwarded writes (requests to
// InternalApplyBatchPath) while it is shut; a held request ends when its
// context does.
type gate struct {
	next http.RoundTripper
	mu   sync.Mutex
	open chan struct{} // closed while the gate is open
	held int           // requests that waited at the gate
}

func newGate() *gate {
	g := &gate{next: cluster.NewPeerTransport(), open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == cluster.InternalApplyBatchPath {
		g.mu.Lock()
		ch := g.open
		select {
		case <-ch:
		default:
			g.held++
		}
		g.mu.Unlock()
		select {
		case <-ch:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return g.next.RoundTrip(r)
}

func (g *gate) shut() {
	g.mu.Lock()
	g.open = make(chan struct{})
	g.held = 0
	g.mu.Unlock()
}

func (g *gate) release() {
	g.mu.Lock()
	close(g.open)
	g.mu.Unlock()
}

func (g *gate) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

// applied is what Apply returned to one caller.
type applied struct {
	res *fsm.Result
	err error
}

func goApply(n *testNode, ctx context.Context, cmd *fsm.Command) <-chan applied {
	ch := make(chan applied, 1)
	go func() {
		res, err := n.Apply(ctx, cmd)
		ch <- applied{res, err}
	}()
	return ch
}

func await(t *testing.T, ch <-chan applied, what string) applied {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: Apply did not return within 20 s", what)
		return applied{}
	}
}

func create(t testing.TB, data string) *fsm.Command {
	return &fsm.Command{Op: fsm.OpCreate, Tree: "parts", Data: value(t, data)}
}

// logValues counts the create commands in n's log after index from, by
// the value they carry.
func logValues(t *testing.T, n *testNode, from uint64) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for {
		page, err := n.Log(from, 1000)
		if err != nil {
			t.Fatalf("%s: log after %d: %v", n.ID(), from, err)
		}
		for _, e := range page.Entries {
			c, err := fsm.DecodeCommand(e.Data)
			if err != nil {
				t.Fatalf("%s: entry %d: %v", n.ID(), e.Index, err)
			}
			cmds := []fsm.Command{*c}
			if c.Op == fsm.OpBatch {
				cmds = c.Batch
			}
			for _, c := range cmds {
				if c.Op == fsm.OpCreate {
					var v string
					if err := api.Unmarshal(c.Data, &v); err == nil {
						seen[v]++
					}
				}
			}
		}
		if len(page.Entries) == 0 || page.Next <= from {
			return seen
		}
		from = page.Next
	}
}

// Writes a follower takes at the same moment travel to the leader
// together: far fewer requests than writes, and every caller gets the
// result of its own command.
func TestFollowerCoalescesConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	counters := map[string]*forwardCounter{}
	nodes := threeNodes(t, func(c *cluster.Config) {
		counters[c.NodeID] = &forwardCounter{}
		c.Observer = counters[c.NodeID]
	})
	leader, followers := leaderOf(t, nodes...)
	f := followers[0]
	if _, err := f.Apply(ctx, create(t, "warm-up")); err != nil {
		t.Fatal(err)
	}
	before := counters[f.ID()].batches.Load()

	const writers = 200
	start := make(chan struct{})
	out := make([]<-chan applied, writers)
	var ready sync.WaitGroup
	for i := range writers {
		ready.Add(1)
		ch := make(chan applied, 1)
		out[i] = ch
		go func() {
			ready.Done()
			<-start
			res, err := f.Apply(ctx, create(t, fmt.Sprintf("w%d", i)))
			ch <- applied{res, err}
		}()
	}
	ready.Wait()
	close(start)
	ids := map[uint64]int{}
	indexes := map[uint64]int{}
	var last uint64
	results := make([]*fsm.Result, writers)
	for i, ch := range out {
		a := await(t, ch, fmt.Sprintf("writer %d", i))
		if a.err != nil || a.res == nil || a.res.Err != nil {
			t.Fatalf("writer %d: %+v, %v", i, a.res, a.err)
		}
		if j, dup := ids[a.res.Key.ID]; dup {
			t.Errorf("writers %d and %d both got id %d", j, i, a.res.Key.ID)
		}
		ids[a.res.Key.ID] = i
		indexes[a.res.Index]++ // coalesced writes share a batch entry
		last = max(last, a.res.Index)
		results[i] = a.res
	}
	// Each result names the record of its own caller's command.
	if err := leader.FSM().WaitApplied(ctx, last); err != nil {
		t.Fatal(err)
	}
	for i, res := range results {
		rec, err := leader.FSM().Get("parts", res.Key)
		if err != nil {
			t.Fatalf("writer %d: record %v: %v", i, res.Key, err)
		}
		var v string
		if err := api.Unmarshal(rec.Data, &v); err != nil || v != fmt.Sprintf("w%d", i) {
			t.Errorf("writer %d: its record %v holds %q (%v)", i, res.Key, v, err)
		}
		if rec.Index != res.Index {
			t.Errorf("writer %d: record index %d, result index %d", i, rec.Index, res.Index)
		}
	}
	sent := counters[f.ID()].batches.Load() - before
	t.Logf("%d writes through follower %s in %d requests to the leader, %d log entries", writers, f.ID(), sent, len(indexes))
	if len(indexes) > int(sent) {
		t.Errorf("%d requests to the leader made %d log entries; want one entry per request", sent, len(indexes))
	}
	if sent > writers/4 {
		t.Errorf("%d concurrent writes took %d requests to the leader; want them coalesced (at most %d)", writers, sent, writers/4)
	}
	if n := counters[f.ID()].single.Load(); n != 0 {
		t.Errorf("%d single-write requests; want every write through the batch route", n)
	}
}

// A caller whose context ends stops waiting: a write still queued on the
// follower is never sent (so never applied); a write already sent may
// still be applied. The other callers get their results.
func TestForwardedWriteCallerGivesUp(t *testing.T) {
	ctx := context.Background()
	gates := map[string]*gate{}
	nodes := threeNodes(t, func(c *cluster.Config) {
		gates[c.NodeID] = newGate()
		c.HTTPClient = &http.Client{Transport: gates[c.NodeID]}
	})
	leader, followers := leaderOf(t, nodes...)
	f, g := followers[0], gates[followers[0].ID()]
	first, err := f.Apply(ctx, create(t, "first"))
	if err != nil {
		t.Fatal(err)
	}

	g.shut()
	// Fill the requests in flight; the first one's caller gives up.
	sentCtx, giveUpSent := context.WithCancel(ctx)
	defer giveUpSent()
	inFlight := []<-chan applied{goApply(f, sentCtx, create(t, "sent-then-abandoned"))}
	waitFor(t, 10*time.Second, "the first request at the gate", func() error {
		if g.waiting() < 1 {
			return fmt.Errorf("%d requests held", g.waiting())
		}
		return nil
	})
	for i := 1; i < cluster.ForwardsInFlight; i++ {
		inFlight = append(inFlight, goApply(f, ctx, create(t, fmt.Sprintf("in-flight-%d", i))))
		waitFor(t, 10*time.Second, "every request slot taken", func() error {
			if w := g.waiting(); w < i+1 {
				return fmt.Errorf("%d of %d requests held", w, i+1)
			}
			return nil
		})
	}
	// These queue behind them.
	queuedCtx, giveUpQueued := context.WithCancel(ctx)
	queued := goApply(f, queuedCtx, create(t, "queued-then-abandoned"))
	kept := goApply(f, ctx, create(t, "queued-kept"))

	giveUpQueued()
	if a := await(t, queued, "queued caller"); a.err == nil || api.CodeOf(a.err) != api.CodeUnavailable {
		t.Errorf("queued caller that gave up: %+v, %v; want unavailable", a.res, a.err)
	}
	giveUpSent()
	if a := await(t, inFlight[0], "sent caller"); a.err == nil || api.CodeOf(a.err) != api.CodeUnavailable {
		t.Errorf("caller that gave up on a sent write: %+v, %v; want unavailable", a.res, a.err)
	}

	g.release()
	var last uint64
	for i, ch := range append(inFlight[1:], kept) {
		a := await(t, ch, "waiting caller")
		if a.err != nil || a.res.Err != nil {
			t.Fatalf("caller %d: %+v, %v", i, a.res, a.err)
		}
		last = max(last, a.res.Index)
	}
	if err := leader.FSM().WaitApplied(ctx, last); err != nil {
		t.Fatal(err)
	}
	// The write abandoned after it was sent may or may not be applied
	// (here its request was still at the gate, and its caller's context
	// cancelled it); the one abandoned in the queue never is.
	seen := logValues(t, leader, first.Index)
	if seen["sent-then-abandoned"] > 1 || seen["queued-kept"] != 1 {
		t.Errorf("log after the gate opened: %v; want the kept write once, the sent one at most once", seen)
	}
	if seen["queued-then-abandoned"] != 0 {
		t.Errorf("a write abandoned before it was sent was applied: %v", seen)
	}
}

// While leadership moves, a follower's callers get their own results or
// no_leader / unavailable, as with one request per write; no write is
// applied twice, and writes go on once a new leader is there.
func TestForwardedWritesAcrossLeaderChange(t *testing.T) {
	ctx := context.Background()
	nodes := threeNodes(t, func(*cluster.Config) {})
	leader, followers := leaderOf(t, nodes...)
	f := followers[0]

	type outcome struct {
		value string
		res   *fsm.Result
		err   error
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		oks      atomic.Int64
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				v := fmt.Sprintf("w%d-%d", w, i)
				res, err := f.Apply(ctx, create(t, v))
				mu.Lock()
				outcomes = append(outcomes, outcome{v, res, err})
				mu.Unlock()
				if err == nil {
					oks.Add(1)
				}
			}
		}()
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	waitOKs := func(n int64, what string) {
		waitFor(t, 30*time.Second, what, func() error {
			if got := oks.Load(); got < n {
				return fmt.Errorf("%d writes acknowledged", got)
			}
			return nil
		})
	}
	waitOKs(200, "writes before the leader change")
	leader.srv.Close()
	if err := leader.Crash(); err != nil {
		t.Fatal(err)
	}
	crashedAt := oks.Load()
	waitOKs(crashedAt+200, "writes after the leader change")
	close(stop)
	wg.Wait()

	var alive []*testNode
	for _, n := range nodes {
		if n != leader {
			alive = append(alive, n)
		}
	}
	newLeader, _ := leaderOf(t, alive...)
	var last uint64
	for _, o := range outcomes {
		switch {
		case o.err == nil && o.res.Err != nil:
			t.Errorf("%s: rejected: %v", o.value, o.res.Err)
		case o.err == nil:
			last = max(last, o.res.Index)
		case api.CodeOf(o.err) != api.CodeNoLeader && api.CodeOf(o.err) != api.CodeUnavailable:
			t.Errorf("%s: error %v (code %s); want no_leader or unavailable", o.value, o.err, api.CodeOf(o.err))
		}
	}
	if err := newLeader.ReadBarrier(ctx); err != nil {
		t.Fatal(err)
	}
	seen := logValues(t, newLeader, 0)
	failed := 0
	for _, o := range outcomes {
		n := seen[o.value]
		switch {
		case o.err == nil && n != 1:
			t.Errorf("%s: acknowledged at index %d, in the log %d times", o.value, o.res.Index, n)
		case o.err == nil:
			rec, err := newLeader.FSM().Get("parts", o.res.Key)
			var v string
			if err == nil {
				err = api.Unmarshal(rec.Data, &v)
			}
			if err != nil || v != o.value {
				t.Errorf("%s: its record %v holds %q (%v)", o.value, o.res.Key, v, err)
			}
		case n > 1:
			t.Errorf("%s: failed (%v) but in the log %d times", o.value, o.err, n)
		default:
			failed++
		}
	}
	t.Logf("%d writes, %d failed with no_leader or unavailable, last acknowledged index %d", len(outcomes), failed, last)
}

// Shutdown answers the follower's callers still waiting for the leader
// (unavailable), cancels the requests in flight after a moment, and
// leaves no forwarding goroutine behind.
func TestShutdownEndsForwarding(t *testing.T) {
	ctx := context.Background()
	gates := map[string]*gate{}
	nodes := threeNodes(t, func(c *cluster.Config) {
		gates[c.NodeID] = newGate()
		c.HTTPClient = &http.Client{Transport: gates[c.NodeID]}
	})
	_, followers := leaderOf(t, nodes...)
	f, g := followers[0], gates[followers[0].ID()]
	if _, err := f.Apply(ctx, create(t, "first")); err != nil {
		t.Fatal(err)
	}
	g.shut()
	// Every request slot taken, one caller at a time, and more queued.
	var waiting []<-chan applied
	for i := range cluster.ForwardsInFlight {
		waiting = append(waiting, goApply(f, ctx, create(t, fmt.Sprintf("w%d", i))))
		waitFor(t, 10*time.Second, "a request at the gate", func() error {
			if w := g.waiting(); w < i+1 {
				return fmt.Errorf("%d of %d requests held", w, i+1)
			}
			return nil
		})
	}
	for i := range 3 {
		waiting = append(waiting, goApply(f, ctx, create(t, fmt.Sprintf("queued%d", i))))
	}
	f.stop(t)
	for i, ch := range waiting {
		if a := await(t, ch, fmt.Sprintf("caller %d", i)); api.CodeOf(a.err) != api.CodeUnavailable {
			t.Errorf("caller %d after shutdown: %+v, %v; want unavailable", i, a.res, a.err)
		}
	}
	if _, err := f.Apply(ctx, create(t, "late")); api.CodeOf(err) != api.CodeUnavailable {
		t.Errorf("Apply after shutdown: %v; want unavailable", err)
	}
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	if strings.Contains(stacks, "(*forwarder)") {
		for _, s := range strings.Split(stacks, "\n\n") {
			if strings.Contains(s, "(*forwarder)") {
				t.Errorf("goroutine left after Shutdown:\n%s", s)
			}
		}
	}
}
