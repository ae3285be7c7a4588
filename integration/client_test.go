package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
	"github.com/shelfdb/shelf/internal/testlog"
)

// These tests run the embedded client library (package client) against
// real kvnode processes: replicas converging with the servers, events
// across a node crash, offline work reaching the cluster after a whole
// cluster restart, conflicts, and a client refusing another cluster.

// clientWait bounds the waits on clients: syncing, failover, outbox flush.
const clientWait = 60 * time.Second

// testClient is an open client.DB whose Close may be called by the test
// and again, harmlessly, by the cleanup.
type testClient struct {
	*client.DB
	once sync.Once
	err  error
}

// Close closes the DB once.
func (c *testClient) Close() error {
	c.once.Do(func() { c.err = c.DB.Close() })
	return c.err
}

// clientConfig returns the configuration of a test client called name,
// with a fresh directory, syncing from servers: ranges of 100 ids, log
// polls of one second, logs through t.Log.
func clientConfig(t *testing.T, name string, servers ...string) client.Config {
	t.Helper()
	return client.Config{
		Dir:       filepath.Join(t.TempDir(), name),
		Servers:   servers,
		Name:      name,
		RangeSize: 100,
		PollWait:  time.Second,
		Logger:    testlog.New(t).With("test-client", name),
	}
}

// openClient opens a client with cfg and registers its Close as a
// cleanup, which runs before the nodes' (cleanups run last-in first-out,
// and the nodes were created first). With synced it waits until the
// replica has caught up with the cluster.
func openClient(t *testing.T, cfg client.Config, synced bool) *testClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientWait)
	defer cancel()
	db, err := client.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open client %s: %v", cfg.Name, err)
	}
	c := &testClient{DB: db}
	t.Cleanup(func() { c.Close() })
	if synced {
		if err := db.WaitSynced(ctx); err != nil {
			t.Fatalf("client %s: wait synced: %v (err %v)", cfg.Name, err, db.Err())
		}
	}
	return c
}

// cutTransport is an HTTP transport that a test can cut off: while cut,
// every request fails at once, as if the client's network were down.
type cutTransport struct {
	cut  atomic.Bool
	base http.RoundTripper
}

func (c *cutTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.cut.Load() {
		return nil, errors.New("test: the client's network is cut")
	}
	return c.base.RoundTrip(r)
}

// countingTransport counts the failed requests to one address.
type countingTransport struct {
	host   string
	failed atomic.Int64
	base   http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err != nil && r.URL.Host == c.host {
		c.failed.Add(1)
	}
	return resp, err
}

// newTransport returns a transport of its own for one client.
func newTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return tr
}

// eventRecorder collects the events of a client subscription.
type eventRecorder struct {
	mu   sync.Mutex
	evs  []client.Event
	done chan struct{}
}

// recordEvents subscribes to db's events of trees (all when none) until
// the test ends.
func recordEvents(t *testing.T, db *testClient, trees ...string) *eventRecorder {
	ctx, cancel := context.WithCancel(context.Background())
	r := &eventRecorder{done: make(chan struct{})}
	ch := db.Events(ctx, trees...)
	go func() {
		defer close(r.done)
		for e := range ch {
			r.mu.Lock()
			r.evs = append(r.evs, e)
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// events returns the events received so far.
func (r *eventRecorder) events() []client.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

// count returns how many events received so far match.
func (r *eventRecorder) count(match func(client.Event) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.evs {
		if match(e) {
			n++
		}
	}
	return n
}

// serverRecords lists every record of tree on n: key to value bytes.
func serverRecords(t *testing.T, n *Node, tree string) map[api.Key][]byte {
	t.Helper()
	out := map[api.Key][]byte{}
	var after api.Key
	for {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		p, err := n.Client.List(ctx, tree, after, 1000)
		cancel()
		if errors.Is(err, api.ErrTreeNotFound) {
			return out
		}
		if err != nil {
			t.Fatalf("node %s: list %s after %s: %v", n.ID, tree, after, err)
		}
		for _, r := range p.Records {
			out[r.Key] = r.Data
		}
		if p.After == "" {
			return out
		}
		if after, err = api.ParseKey(p.After); err != nil {
			t.Fatalf("node %s: list %s: bad cursor %q: %v", n.ID, tree, p.After, err)
		}
	}
}

// clientRecords lists every record of tree in a client's replica, pending
// writes included: key to value bytes, and the keys of pending records.
func clientRecords(t *testing.T, db *testClient, tree string) (recs map[api.Key][]byte, pending []api.Key) {
	t.Helper()
	recs = map[api.Key][]byte{}
	var after api.Key
	for {
		page, err := db.Tree(tree).List(after, 1000)
		if errors.Is(err, api.ErrTreeNotFound) {
			return recs, pending
		}
		if err != nil {
			t.Fatalf("client %s: list %s after %s: %v", db.Name(), tree, after, err)
		}
		if len(page) == 0 {
			return recs, pending
		}
		for _, r := range page {
			if _, dup := recs[r.Key]; dup {
				t.Errorf("client %s: list %s shows %s twice", db.Name(), tree, r.Key)
			}
			recs[r.Key] = r.Data
			if r.Pending {
				pending = append(pending, r.Key)
			}
		}
		after = page[len(page)-1].Key
	}
}

// diffRecords describes how got differs from want ("" if equal), with at
// most a few examples.
func diffRecords(got, want map[api.Key][]byte) string {
	var missing, extra, differ []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			missing = append(missing, k.String())
		case !bytes.Equal(g, w):
			differ = append(differ, k.String())
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			extra = append(extra, k.String())
		}
	}
	if len(missing)+len(extra)+len(differ) == 0 {
		return ""
	}
	some := func(s []string) []string {
		slices.Sort(s)
		return s[:min(len(s), 5)]
	}
	return fmt.Sprintf("%d records, want %d: %d missing %v, %d extra %v, %d with another value %v",
		len(got), len(want), len(missing), some(missing), len(extra), some(extra), len(differ), some(differ))
}

// waitRecord waits until n (which may lag behind the leader) returns the
// record of key and ok accepts it.
func waitRecord(t *testing.T, n *Node, tree string, key api.Key, what string, ok func(api.Record) bool) {
	t.Helper()
	waitFor(t, clientWait, fmt.Sprintf("record %s/%s on node %s: %s", tree, key, n.ID, what), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		r, err := n.Client.Get(ctx, tree, key)
		if err != nil {
			return false, err.Error()
		}
		return ok(r), fmt.Sprintf("%+v (borrow %+v)", r, r.Borrow)
	})
}

// restartAll starts stopped nodes of a cluster again on their data and
// waits until they agree on a leader.
func restartAll(t *testing.T, nodes []*Node) {
	t.Helper()
	nodes[0].Start("-bootstrap") // ignored: it has state
	for _, n := range nodes[1:] {
		n.Start("-join", nodes[0].Gossip)
	}
	for _, n := range nodes {
		n.WaitReady()
	}
	waitConverged(t, nodes)
}

// createRetry creates a record through one of nodes, trying the next
// node on errors that may pass (no leader, node unreachable), until
// clientWait. A retried create whose first answer was lost may create
// the record twice, under two ids.
func createRetry(nodes []*Node, tree string, data []byte) (api.WriteResult, error) {
	deadline := time.Now().Add(clientWait)
	for i := 0; ; i++ {
		n := nodes[i%len(nodes)]
		res, err := create(n, tree, data)
		if err == nil {
			return res, nil
		}
		if !retryable(err) || time.Now().After(deadline) {
			return res, fmt.Errorf("create through %s: %w", n.ID, err)
		}
		time.Sleep(50 * time.Millisecond) // back off before the next attempt, not a synchronisation
	}
}

// hashAt is the content hash of a node or client at its applied index.
type hashAt struct {
	who    string
	index  uint64
	hash   string
	commit uint64 // nodes: the raft commit index
}

// contentHashes returns the content hashes of nodes and clients, nodes
// first.
func contentHashes(nodes []*Node, dbs []*testClient) ([]hashAt, error) {
	var at []hashAt
	for _, n := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		h, err := n.Client.ContentHash(ctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("node %s: content hash: %w", n.ID, err)
		}
		st, err := n.Status()
		if err != nil {
			return nil, fmt.Errorf("node %s: status: %w", n.ID, err)
		}
		at = append(at, hashAt{"node " + n.ID, h.Index, h.Hash, st.CommitIndex})
	}
	for _, db := range dbs {
		idx, h, err := db.ContentHash()
		if err != nil {
			return nil, fmt.Errorf("client %s: content hash: %w", db.Name(), err)
		}
		at = append(at, hashAt{"client " + db.Name(), idx, h, 0})
	}
	return at, nil
}

// waitSameHash waits, up to timeout, until nodes and clients stand at the
// same applied index, while nothing is written, and checks that they then
// have the same content hash. If they do not come to the same index, it
// reports the test failed, and compares hashes among those at the same
// index. It returns the last hashes seen.
func waitSameHash(t *testing.T, nodes []*Node, dbs []*testClient, timeout time.Duration) []hashAt {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var (
		at  []hashAt
		err error
	)
	for {
		at, err = contentHashes(nodes, dbs)
		same := err == nil
		for i := 1; same && i < len(at); i++ {
			same = at[i].index == at[0].index
		}
		if same {
			break
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("content hashes: %v", err)
			}
			t.Errorf("nodes and clients do not come to the same applied index within %v of quiet: %s", timeout, describeHashes(at))
			break
		}
		time.Sleep(pollInterval)
	}
	byIndex := map[uint64]hashAt{}
	for _, a := range at {
		if first, ok := byIndex[a.index]; !ok {
			byIndex[a.index] = a
		} else if a.hash != first.hash {
			t.Errorf("at index %d %s has content hash %.16s, %s %.16s", a.index, a.who, a.hash, first.who, first.hash)
		}
	}
	return at
}

// describeHashes lists indexes and hashes, and says so when the clients
// stand past the nodes on entries the nodes committed but did not apply.
func describeHashes(at []hashAt) string {
	var parts []string
	var nodeMax, clientMin, commitMin uint64
	clientMin, commitMin = ^uint64(0), ^uint64(0)
	for _, a := range at {
		if strings.HasPrefix(a.who, "node ") {
			parts = append(parts, fmt.Sprintf("%s applied %d (commit %d) hash %.12s", a.who, a.index, a.commit, a.hash))
			nodeMax, commitMin = max(nodeMax, a.index), min(commitMin, a.commit)
		} else {
			parts = append(parts, fmt.Sprintf("%s applied %d hash %.12s", a.who, a.index, a.hash))
			clientMin = min(clientMin, a.index)
		}
	}
	out := strings.Join(parts, "; ")
	if clientMin > nodeMax && clientMin <= commitMin {
		out += fmt.Sprintf(".\nThe clients stand past every node: the entries %d..%d are committed on the nodes but "+
			"never reach their state machines (raft barrier or no-op entries: not commands, not configuration), "+
			"while the client counts them as applied (client/sync.go, apply: page.Next); "+
			"in a quiet cluster a client and a server then never stand at the same index to compare hashes", nodeMax+1, clientMin)
	}
	return out
}

// TestClientsConvergeWithServers has three clients, each syncing from
// another node of a 3-node cluster, create records at the same time
// while one of them checks out and edits records of its own and of
// another client; then every client and every node must reach the same
// applied index with the same content hash and the same records.
func TestClientsConvergeWithServers(t *testing.T) {
	skipShort(t)
	const (
		tree      = "parts"
		perClient = 200
		more      = 50 // created by c2 and c3 while c1 edits
		edits     = 10 // of c1's own records, and as many of c2's
	)
	start := time.Now()
	nodes := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*clientWait)
	defer cancel()

	dbs := make([]*testClient, len(nodes))
	for i, n := range nodes {
		dbs[i] = openClient(t, clientConfig(t, fmt.Sprintf("c%d", i+1), n.HTTP), true)
	}
	t.Logf("cluster and clients up in %v", time.Since(start).Round(time.Millisecond))

	// want is what every replica must end with: key to value.
	var (
		wantMu sync.Mutex
		want   = map[api.Key][]byte{}
		keys   = make([][]api.Key, len(dbs)) // created, by client
	)
	createSome := func(i, from, count int) error {
		for j := from; j < from+count; j++ {
			data := value(t, int64(1000*(i+1)+j))
			res, err := dbs[i].Tree(tree).Create(ctx, 0, data)
			if err != nil {
				return fmt.Errorf("client %s: create %d: %w", dbs[i].Name(), j, err)
			}
			if res.Pending || res.Index == 0 {
				return fmt.Errorf("client %s: create %d while online answered %+v (pending, no index)", dbs[i].Name(), j, res)
			}
			// Read your own write: the replica has it when Create returns.
			if rec, err := dbs[i].Tree(tree).Get(res.Key); err != nil || rec.Pending || !bytes.Equal(rec.Data, data) {
				return fmt.Errorf("client %s: own create %s not in the replica at once: %+v %v", dbs[i].Name(), res.Key, rec, err)
			}
			wantMu.Lock()
			want[res.Key] = data
			keys[i] = append(keys[i], res.Key)
			wantMu.Unlock()
		}
		return nil
	}
	errs := make([]error, len(dbs))
	var wg sync.WaitGroup
	for i := range dbs {
		wg.Go(func() { errs[i] = createSome(i, 0, perClient) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d concurrent creates by %d clients in %v", len(want), len(dbs), time.Since(start).Round(time.Millisecond))

	// c1 edits records while c2 and c3 keep creating.
	c1 := dbs[0]
	editSome := func() error {
		if err := c1.WaitSynced(ctx); err != nil { // to see c2's records
			return err
		}
		targets := append(slices.Clone(keys[0][:edits]), keys[1][:edits]...)
		for i, k := range targets {
			if err := c1.Tree(tree).Checkout(ctx, k, 0); err != nil {
				return fmt.Errorf("c1: checkout %s: %w", k, err)
			}
			data := value(t, int64(-1-i))
			res, err := c1.Tree(tree).Update(ctx, k, 0, data)
			if err != nil || res.Pending {
				return fmt.Errorf("c1: update %s: %+v %w", k, res, err)
			}
			wantMu.Lock()
			want[k] = data
			wantMu.Unlock()
			if i%2 == 0 {
				if err := c1.Tree(tree).Return(ctx, k); err != nil {
					return fmt.Errorf("c1: return %s: %w", k, err)
				}
			}
		}
		return nil
	}
	errs = make([]error, len(dbs))
	wg.Go(func() { errs[0] = editSome() })
	for i := 1; i < len(dbs); i++ {
		wg.Go(func() { errs[i] = createSome(i, perClient, more) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// c2 cannot edit its own record while c1 holds it.
	t.Logf("edits and more creates done at %v", time.Since(start).Round(time.Millisecond))
	held := keys[1][1] // edited by c1 and not returned
	if _, err := dbs[1].Tree(tree).Update(ctx, held, 0, value(t, 0)); !errors.Is(err, client.ErrNotBorrowed) {
		t.Errorf("c2 updating %s that c1 holds: %v, want ErrNotBorrowed", held, err)
	}

	for _, db := range dbs {
		if err := db.WaitSynced(ctx); err != nil {
			t.Fatalf("client %s: wait synced: %v", db.Name(), err)
		}
	}
	t.Logf("clients synced at %v", time.Since(start).Round(time.Millisecond))
	// Nothing is written any more; servers may still apply entries that
	// move their index (configuration changes), so wait for all six to
	// stand at the same index, then compare their hashes.
	at := waitSameHash(t, nodes, dbs, 10*time.Second)
	final := at[0].index
	// The same records, by the API and in every replica.
	for _, n := range nodes {
		if d := diffRecords(serverRecords(t, n, tree), want); d != "" {
			t.Errorf("node %s: %s", n.ID, d)
		}
	}
	for _, db := range dbs {
		got, pending := clientRecords(t, db, tree)
		if d := diffRecords(got, want); d != "" {
			t.Errorf("client %s: %s", db.Name(), d)
		}
		if len(pending) > 0 || db.Pending() != 0 {
			t.Errorf("client %s: %d records shown pending, outbox %d, after everything was confirmed", db.Name(), len(pending), db.Pending())
		}
		if cs, err := db.Conflicts(); err != nil || len(cs) > 0 {
			t.Errorf("client %s: conflicts %+v %v", db.Name(), cs, err)
		}
	}
	t.Logf("%d records; index %d (hash %.12s); total %v",
		len(want), final, at[0].hash, time.Since(start).Round(time.Millisecond))
}

// TestClientEventsSurviveNodeKill subscribes to the events of a client
// that syncs from a follower, writes records through the other nodes and
// kills the follower with SIGKILL midway: the client must fail over to a
// node it learnt from the cluster, and its subscriber must see exactly
// one EventCreated per record created, in index order.
func TestClientEventsSurviveNodeKill(t *testing.T) {
	skipShort(t)
	const (
		tree    = "parts"
		total   = 300
		killAt  = total / 2
		writers = 3
	)
	start := time.Now()
	nodes := startCluster(t, 3)
	leader := waitLeader(t, nodes)
	var attached *Node
	var others []*Node
	for _, n := range nodes {
		if n != leader && attached == nil {
			attached = n
		} else {
			others = append(others, n)
		}
	}
	db := openClient(t, clientConfig(t, "watcher", attached.HTTP), true)

	ctx, cancel := context.WithTimeout(context.Background(), 2*clientWait)
	defer cancel()
	rec := recordEvents(t, db, tree)
	createdSeen := func(key api.Key) bool {
		return rec.count(func(e client.Event) bool { return e.Type == api.EventCreated && e.Key == key }) > 0
	}

	acked := newAcks()
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		errs  []error
	)
	for range writers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				data := value(t, i)
				res, err := createRetry(others, tree, data)
				if err != nil {
					errMu.Lock()
					errs = append(errs, fmt.Errorf("record %d: %w", i, err))
					errMu.Unlock()
					return
				}
				acked.add(res, data)
			}
		})
	}
	waitFor(t, clientWait, fmt.Sprintf("%d acknowledged creates", killAt), func() (bool, string) {
		n := acked.count()
		return n >= killAt || next.Load() > total, fmt.Sprintf("%d acknowledged", n)
	})
	attached.Kill()
	killed := time.Now()
	t.Logf("killed %s (the client's server) after %d acknowledged creates", attached.ID, acked.count())
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("writers: %v", errors.Join(errs...))
	}

	// A last create: once its event is in, every event before it is too.
	sentinel, err := createRetry(others, tree, value(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, clientWait, "the client to fail over and deliver the last create's event", func() (bool, string) {
		return createdSeen(sentinel.Key), fmt.Sprintf("online %v, err %v, applied %d (last create at %d)",
			db.Online(), db.Err(), db.AppliedIndex(), sentinel.Index)
	})
	t.Logf("client caught up %v after the kill", time.Since(killed).Round(time.Millisecond))
	if !db.Online() {
		t.Errorf("client offline after failing over: %v", db.Err())
	}

	// What the cluster has: every acknowledged create, plus maybe a few
	// from retries whose first answer was lost.
	waitApplied(t, others, sentinel.Index)
	want := serverRecords(t, others[0], tree)
	for id, data := range acked.recs {
		if w, ok := want[api.Key{ID: id, Rev: 1}]; !ok || !bytes.Equal(w, data) {
			t.Errorf("acknowledged record %d/1 is not on node %s with its value", id, others[0].ID)
		}
	}
	if len(acked.dups) > 0 {
		t.Errorf("keys acknowledged twice: %v", acked.dups)
	}

	got := rec.events()
	var (
		created  = map[api.Key]int{}
		last     uint64
		resynced []uint64
		problems []string
	)
	for _, e := range got {
		switch e.Type {
		case client.EventResynced:
			resynced = append(resynced, e.Index)
			if e.Index < last {
				problems = append(problems, fmt.Sprintf("resynced at index %d after an event at %d", e.Index, last))
			}
			last = max(last, e.Index)
			continue
		case client.EventLagged:
			problems = append(problems, fmt.Sprintf("subscriber lagged (event seq %d)", e.Seq))
			continue
		case api.EventCreated:
			created[e.Key]++
		default:
			problems = append(problems, fmt.Sprintf("unexpected event %s of %s at index %d", e.Type, e.Key, e.Index))
		}
		if e.Tree != tree {
			problems = append(problems, fmt.Sprintf("event of tree %q: %+v", e.Tree, e))
		}
		// (The creates of one outbox batch are one log entry: their
		// events share its index. A repeat shows in created's counts.)
		if e.Index < last {
			problems = append(problems, fmt.Sprintf("event %s of %s at index %d after index %d", e.Type, e.Key, e.Index, last))
		}
		last = max(last, e.Index)
	}
	var missing []string
	for k := range want {
		if created[k] == 0 {
			missing = append(missing, k.String())
		}
	}
	for k, c := range created {
		if _, ok := want[k]; !ok {
			problems = append(problems, fmt.Sprintf("created event for %s, which the cluster does not have", k))
		}
		if c > 1 {
			problems = append(problems, fmt.Sprintf("%d created events for %s", c, k))
		}
	}
	if len(missing) > 0 {
		if len(resynced) == 0 {
			slices.Sort(missing)
			problems = append(problems, fmt.Sprintf("no created event for %d of %d records (no resync), e.g. %v", len(missing), len(want), missing[:min(5, len(missing))]))
		} else {
			t.Logf("%d records without a created event, covered by resyncs at %v", len(missing), resynced)
		}
	}
	if len(problems) > 0 {
		t.Errorf("%d problems in the %d events received, e.g.:\n  %s", len(problems), len(got), strings.Join(problems[:min(len(problems), 20)], "\n  "))
	}

	// The replica itself: everything, with the values (and in any case
	// when a resync replaced events).
	if err := db.WaitSynced(ctx); err != nil {
		t.Fatalf("wait synced: %v", err)
	}
	rs, pending := clientRecords(t, db, tree)
	if d := diffRecords(rs, want); d != "" || len(pending) > 0 {
		t.Errorf("client replica after the failover: %s (%d pending)", d, len(pending))
	}
	t.Logf("%d records, %d events, %d resyncs; total %v", len(want), len(got), len(resynced), time.Since(start).Round(time.Millisecond))
}

// TestClientOfflineWorkReachesCluster has a client keep working while the whole
// cluster is down (SIGTERM): 1000 creates with ids from its reserve, an
// edit of a record it had checked out, a restart of the client itself;
// then the cluster comes back and the outbox must reach it with the ids
// assigned offline, without conflicts.
func TestClientOfflineWorkReachesCluster(t *testing.T) {
	skipShort(t)
	const (
		tree    = "parts"
		offline = 1000
	)
	start := time.Now()
	nodes := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*clientWait)
	defer cancel()
	cfg := clientConfig(t, "field", nodes[0].HTTP)
	cfg.RangeSize, cfg.Reserve = 1000, 1500
	db := openClient(t, cfg, true)
	parts := db.Tree(tree)

	// Config.Reserve: the client keeps that many unused ids in hand for
	// offline creates (the cluster knows the ranges and how far each is
	// used; nothing of this client is pending yet).
	freeIDs := func() (uint64, string) {
		rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
		defer rcancel()
		rs, err := nodes[0].Client.Ranges(rctx, db.ClientID())
		if err != nil {
			return 0, err.Error()
		}
		var free uint64
		for _, r := range rs {
			free += r.End - max(r.Next, r.Start)
		}
		var desc []string
		for _, r := range rs {
			desc = append(desc, fmt.Sprintf("[%d,%d) next %d", r.Start, r.End, r.Next))
		}
		return free, fmt.Sprintf("%d free ids in ranges %s", free, strings.Join(desc, ", "))
	}
	waitFree := func(want uint64, within time.Duration) bool {
		deadline := time.Now().Add(within)
		for {
			free, detail := freeIDs()
			if free >= want {
				t.Logf("reserve: %s", detail)
				return true
			}
			if time.Now().After(deadline) {
				// Not fatal: go on with what the client has, to test the rest.
				t.Errorf("client with Config{RangeSize: %d, Reserve: %d} does not hold %d unused ids after %v: %s",
					cfg.RangeSize, cfg.Reserve, want, within, detail)
				return false
			}
			time.Sleep(pollInterval)
		}
	}
	reserveKept := waitFree(cfg.Reserve, 10*time.Second)

	borrowed, err := parts.Create(ctx, 0, value(t, -1))
	if err != nil || borrowed.Pending {
		t.Fatalf("create: %+v %v", borrowed, err)
	}
	if err := parts.Checkout(ctx, borrowed.Key, 0); err != nil {
		t.Fatal(err)
	}
	if reserveKept {
		waitFree(offline, 10*time.Second)
	}

	stopAll(t, nodes)
	waitFor(t, clientWait, "the client to notice the cluster is down", func() (bool, string) {
		return !db.Online(), "still online"
	})
	offStart := time.Now()
	type created struct {
		key  api.Key
		data []byte
	}
	var made []created
	for i := range offline {
		data := value(t, int64(i))
		res, err := parts.Create(ctx, 0, data)
		if err != nil {
			t.Errorf("offline create %d of %d: %v", i+1, offline, err)
			break
		}
		if !res.Pending || res.Index != 0 {
			t.Fatalf("offline create %d: %+v, want pending", i, res)
		}
		made = append(made, created{res.Key, data})
	}
	edited := value(t, -2)
	if res, err := parts.Update(ctx, borrowed.Key, 0, edited); err != nil || !res.Pending {
		t.Fatalf("offline update of the borrowed record: %+v %v", res, err)
	}
	t.Logf("%d creates and 1 update offline in %v", len(made), time.Since(offStart).Round(time.Millisecond))
	ids := map[uint64]bool{borrowed.Key.ID: true}
	for _, m := range made {
		if ids[m.key.ID] || m.key.Rev != 1 {
			t.Fatalf("offline create got key %s twice or not revision 1", m.key)
		}
		ids[m.key.ID] = true
	}
	queued := len(made) + 1
	if n := db.Pending(); n != queued {
		t.Errorf("outbox holds %d, want %d", n, queued)
	}

	// Restart the client while offline: the outbox is on disk.
	if err := db.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	db = openClient(t, cfg, false)
	parts = db.Tree(tree)
	if n := db.Pending(); n != queued {
		t.Fatalf("outbox after reopening offline: %d, want %d", n, queued)
	}
	if rec, err := parts.Get(borrowed.Key); err != nil || !rec.Pending || !bytes.Equal(rec.Data, edited) {
		t.Errorf("offline edit after reopen: %+v %v", rec, err)
	}
	if len(made) > 0 {
		if rec, err := parts.Get(made[len(made)-1].key); err != nil || !rec.Pending {
			t.Errorf("offline create after reopen: %+v %v", rec, err)
		}
	}
	if rs, pending := clientRecords(t, db, tree); len(rs) != queued || len(pending) != queued {
		t.Errorf("offline list after reopen: %d records, %d pending; want %d and %d", len(rs), len(pending), queued, queued)
	}

	rec := recordEvents(t, db, tree)
	restart := time.Now()
	restartAll(t, nodes)
	waitFor(t, clientWait, "the outbox to reach the cluster", func() (bool, string) {
		return db.Pending() == 0, fmt.Sprintf("outbox %d, online %v, err %v", db.Pending(), db.Online(), db.Err())
	})
	t.Logf("cluster back and outbox flushed in %v", time.Since(restart).Round(time.Millisecond))
	if cs, err := db.Conflicts(); err != nil || len(cs) > 0 {
		t.Errorf("conflicts after the flush: %d %v, e.g. %+v", len(cs), err, cs[:min(len(cs), 3)])
	}
	// One EventConfirmed per outbox entry, no EventConflict.
	isConfirmed := func(e client.Event) bool { return e.Type == client.EventConfirmed }
	waitFor(t, clientWait, fmt.Sprintf("%d confirmed events", queued), func() (bool, string) {
		n := rec.count(isConfirmed)
		return n >= queued, fmt.Sprintf("%d confirmed", n)
	})
	confirmed := map[uint64]bool{}
	var lastConfirmed uint64
	for _, e := range rec.events() {
		switch e.Type {
		case client.EventConflict:
			t.Errorf("conflict event %+v (err %v)", e, e.Err)
		case client.EventConfirmed:
			if confirmed[e.Outbox] {
				t.Errorf("outbox entry %d confirmed twice", e.Outbox)
			}
			confirmed[e.Outbox] = true
			lastConfirmed = max(lastConfirmed, e.Index)
		}
	}
	waitApplied(t, nodes, lastConfirmed) // before reading from the nodes

	// A fresh client sees the offline work, under the ids assigned offline.
	fresh := openClient(t, clientConfig(t, "office", nodes[1].HTTP), true)
	want := map[api.Key][]byte{borrowed.Key: edited}
	for _, m := range made {
		want[m.key] = m.data
		rec, err := fresh.Tree(tree).Get(m.key)
		if err != nil || rec.Pending || !bytes.Equal(rec.Data, m.data) || rec.CreatedBy != db.ClientID() {
			t.Fatalf("fresh client reads %s: %+v %v (want created by %s)", m.key, rec, err, db.ClientID())
		}
	}
	got, _ := clientRecords(t, fresh, tree)
	if d := diffRecords(got, want); d != "" {
		t.Errorf("fresh client: %s", d)
	}
	if d := diffRecords(serverRecords(t, nodes[2], tree), want); d != "" {
		t.Errorf("node %s: %s", nodes[2].ID, d)
	}
	// The offline client's replica shows the same, no longer pending.
	if err := db.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	mine, pending := clientRecords(t, db, tree)
	if d := diffRecords(mine, want); d != "" || len(pending) > 0 {
		t.Errorf("the offline client's replica: %s (%d pending)", d, len(pending))
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// TestClientConflictWhenBorrowForceReturned edits a checked-out record while
// the client is cut off, closes the client, has the operator force-return
// the record, and reopens the client: the edit must become a conflict
// holding what was typed, not be lost and not be applied.
func TestClientConflictWhenBorrowForceReturned(t *testing.T) {
	skipShort(t)
	const tree = "parts"
	start := time.Now()
	nodes := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*clientWait)
	defer cancel()
	link := &cutTransport{base: newTransport()}
	cfg := clientConfig(t, "laptop", nodes[0].HTTP)
	cfg.HTTPClient = &http.Client{Transport: link}
	db := openClient(t, cfg, true)
	parts := db.Tree(tree)
	original := value(t, 1)
	res, err := parts.Create(ctx, 0, original)
	if err != nil {
		t.Fatal(err)
	}
	key := res.Key
	if err := parts.Checkout(ctx, key, 0); err != nil {
		t.Fatal(err)
	}

	link.cut.Store(true)
	waitFor(t, clientWait, "the client to be offline", func() (bool, string) { return !db.Online(), "online" })
	typed := value(t, 2)
	if res, err := parts.Update(ctx, key, 0, typed); err != nil || !res.Pending {
		t.Fatalf("offline update: %+v %v", res, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := nodes[1].Client.ForceReturn(ctx, tree, key, "left for holiday"); err != nil {
		t.Fatalf("force return: %v", err)
	}

	// Reopen still cut off, subscribe, then let it reach the cluster.
	db = openClient(t, cfg, false)
	if db.Pending() != 1 {
		t.Fatalf("outbox after reopen: %d, want 1", db.Pending())
	}
	rec := recordEvents(t, db)
	link.cut.Store(false)
	waitFor(t, clientWait, "the outbox to settle", func() (bool, string) {
		return db.Pending() == 0, fmt.Sprintf("outbox %d, online %v, err %v", db.Pending(), db.Online(), db.Err())
	})
	cs, err := db.Conflicts()
	if err != nil || len(cs) != 1 {
		t.Fatalf("conflicts: %+v %v, want one", cs, err)
	}
	c := cs[0]
	if !errors.Is(c.Err, client.ErrNotBorrowed) || c.Key != key || c.Tree != tree || c.Op != "update" || !bytes.Equal(c.Data, typed) {
		t.Errorf("conflict %+v (err %v): want the update of %s with the typed value, rejected as not borrowed", c, c.Err, key)
	}
	isConflict := func(e client.Event) bool { return e.Type == client.EventConflict }
	waitFor(t, clientWait, "the conflict event", func() (bool, string) {
		return rec.count(isConflict) > 0, "none yet"
	})
	for _, e := range rec.events() {
		if isConflict(e) && (e.Outbox != c.Seq || e.Key != key || !errors.Is(e.Err, client.ErrNotBorrowed)) {
			t.Errorf("conflict event %+v (err %v) for conflict %d", e, e.Err, c.Seq)
		}
	}
	// The cluster kept the original, now returned; so does the replica.
	waitRecord(t, nodes[2], tree, key, "the original value, not borrowed", func(r api.Record) bool {
		return bytes.Equal(r.Data, original) && r.Borrow == nil
	})
	if err := db.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if rec, err := db.Tree(tree).Get(key); err != nil || rec.Pending || !bytes.Equal(rec.Data, original) {
		t.Errorf("client record after the conflict: %+v %v; want the cluster's original, not pending", rec, err)
	}

	// Resolve: check out again and send the typed value.
	if err := db.Tree(tree).Checkout(ctx, key, 0); err != nil {
		t.Fatal(err)
	}
	if err := db.RetryConflict(ctx, c.Seq); err != nil {
		t.Fatalf("retry conflict: %v", err)
	}
	if cs, _ := db.Conflicts(); len(cs) != 0 {
		t.Errorf("conflicts after the retry: %+v", cs)
	}
	waitRecord(t, nodes[2], tree, key, "the value typed offline, after the retry", func(r api.Record) bool {
		return bytes.Equal(r.Data, typed)
	})
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// TestClientRefusesOtherCluster opens a client pinned to cluster A with
// only a server of an independent cluster B reachable: it must refuse to
// sync (ErrWrongCluster, which stays while no server of A answers), leave
// its replica as it was, keep its outbox away from B, and sync again
// once A is back.
func TestClientRefusesOtherCluster(t *testing.T) {
	skipShort(t)
	const tree = "parts"
	start := time.Now()
	a := newNode(t, "a1")
	bootstrapNode(t, a)
	b := newNode(t, "b1")
	bootstrapNode(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*clientWait)
	defer cancel()
	if _, err := createRetry([]*Node{b}, tree, value(t, 7)); err != nil {
		t.Fatal(err)
	}

	cfg := clientConfig(t, "pinned", a.HTTP)
	db := openClient(t, cfg, true)
	if _, err := db.Tree(tree).Create(ctx, 0, value(t, 1)); err != nil {
		t.Fatal(err)
	}
	if err := db.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	beforeIdx, beforeHash, err := db.ContentHash()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(); err != nil {
		t.Errorf("node %s: graceful stop exited with %v", a.ID, err)
	}

	// Reopen with B's address only (A's is remembered, but A is down).
	count := &countingTransport{host: a.HTTP, base: newTransport()}
	cfg.Servers = []string{b.HTTP}
	cfg.HTTPClient = &http.Client{Transport: count}
	db = openClient(t, cfg, false)
	waitFor(t, clientWait, "ErrWrongCluster", func() (bool, string) {
		err := db.Err()
		return errors.Is(err, client.ErrWrongCluster), fmt.Sprint(err)
	})
	wctx, wcancel := context.WithTimeout(ctx, requestTimeout)
	err = db.WaitSynced(wctx)
	wcancel()
	if !errors.Is(err, client.ErrWrongCluster) {
		t.Errorf("WaitSynced with only cluster B answering: %v, want ErrWrongCluster", err)
	}
	queued, err := db.Tree(tree).Create(ctx, 0, value(t, 2))
	if err != nil || !queued.Pending {
		t.Fatalf("create while refused: %+v %v, want pending", queued, err)
	}

	// The error stays while no server of A answers, also across an
	// attempt on A's (dead) address.
	failedA := count.failed.Load()
	var flipped []string
	var seenAt time.Time
	waitFor(t, clientWait, "the client to try A's address again", func() (bool, string) {
		for {
			if err := db.Err(); !errors.Is(err, client.ErrWrongCluster) && len(flipped) < 3 {
				flipped = append(flipped, fmt.Sprint(err))
			}
			if db.Online() {
				t.Fatal("client online while only cluster B answers")
			}
			if seenAt.IsZero() && count.failed.Load() > failedA {
				seenAt = time.Now()
			}
			// Watch a little past the failed attempt on A.
			if !seenAt.IsZero() && time.Since(seenAt) > 100*time.Millisecond {
				return true, ""
			}
			if seenAt.IsZero() {
				return false, fmt.Sprintf("%d failed requests to %s", count.failed.Load(), a.HTTP)
			}
			time.Sleep(5 * time.Millisecond) // sampling Err over a window
		}
	})
	if len(flipped) > 0 {
		t.Errorf("Err() left ErrWrongCluster while only cluster B answers: %q", flipped)
	}
	if idx, h, err := db.ContentHash(); err != nil || idx != beforeIdx || h != beforeHash {
		t.Errorf("replica changed: index %d hash %.12s (%v), was %d %.12s", idx, h, err, beforeIdx, beforeHash)
	}
	if db.Pending() != 1 {
		t.Errorf("outbox %d, want 1", db.Pending())
	}
	for k := range serverRecords(t, b, tree) {
		rctx, rcancel := context.WithTimeout(ctx, requestTimeout)
		rec, err := b.Client.Get(rctx, tree, k)
		rcancel()
		if err == nil && rec.CreatedBy == db.ClientID() {
			t.Errorf("cluster B took record %s from the client pinned to A", k)
		}
	}

	// A comes back: the client syncs and sends its outbox there.
	a.Start("-bootstrap") // ignored: it has state
	a.WaitReady()
	waitFor(t, clientWait, "the client to sync with A again", func() (bool, string) {
		return db.Online() && db.Err() == nil && db.Pending() == 0,
			fmt.Sprintf("online %v, err %v, outbox %d", db.Online(), db.Err(), db.Pending())
	})
	rctx, rcancel := context.WithTimeout(ctx, requestTimeout)
	rec, err := a.Client.Get(rctx, tree, queued.Key)
	rcancel()
	if err != nil || !bytes.Equal(rec.Data, value(t, 2)) {
		t.Errorf("record queued while refused, on A: %+v %v", rec, err)
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}
