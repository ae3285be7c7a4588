package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
)

// These tests cover borrows against real kvnode processes: client
// processes racing for the same records, a borrow's expiry across the
// kill of the leader that granted it, borrows, ranges and histories across
// whole-cluster and client restarts, and an offline edit whose borrow an
// operator ended meanwhile.

// startClusterWith is startCluster with extra kvnode flags on every node
// (such as "-expiry-grace", "1s").
func startClusterWith(tb testing.TB, size int, flags ...string) []*Node {
	tb.Helper()
	nodes := make([]*Node, size)
	for i := range nodes {
		nodes[i] = newNode(tb, fmt.Sprintf("n%d", i+1))
	}
	nodes[0].Start(append([]string{"-bootstrap"}, flags...)...)
	nodes[0].WaitReady()
	waitLeader(tb, nodes[:1])
	for _, n := range nodes[1:] {
		n.Start(append([]string{"-join", nodes[0].Gossip}, flags...)...)
	}
	for _, n := range nodes[1:] {
		n.WaitReady()
	}
	waitConverged(tb, nodes)
	return nodes
}

// history returns the borrow history of a record on n.
func history(n *Node, tree string, key api.Key) ([]api.AuditEntry, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	return n.Client.History(ctx, tree, key)
}

// borrows returns the borrows of tree ("" for all) on n.
func borrows(n *Node, tree string) ([]api.Borrow, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	return n.Client.Borrows(ctx, tree)
}

// stamp formats a time for comparisons: UTC, rounded to the microsecond
// as the API's CBOR times are (the replicated state and a client's
// replica keep nanoseconds), "-" for the zero time.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Round(time.Microsecond).Format(time.RFC3339Nano)
}

// auditLine describes an audit entry completely, for comparisons.
func auditLine(e api.AuditEntry) string {
	return fmt.Sprintf("%s/%s @%d %s %s client=%s holder=%s reason=%q expires=%s",
		e.Tree, e.Key, e.Index, stamp(e.Time), e.Action, e.Client, e.Holder, e.Reason, stamp(e.Expires))
}

func auditLines(es []api.AuditEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = auditLine(e)
	}
	return out
}

// borrowLine describes a borrow completely, for comparisons.
func borrowLine(b api.Borrow) string {
	return fmt.Sprintf("%s/%s holder=%s (%s) since=%s expires=%s", b.Tree, b.Key, b.Client, b.ClientName, stamp(b.Since), stamp(b.Expires))
}

func borrowLines(bs []api.Borrow) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = borrowLine(b)
	}
	slices.Sort(out)
	return out
}

// diffLines describes how got differs from want ("" if equal).
func diffLines(got, want []string) string {
	if slices.Equal(got, want) {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d lines, want %d", len(got), len(want))
	for i := range max(len(got), len(want)) {
		g, w := "(none)", "(none)"
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			fmt.Fprintf(&b, "\n  [%d] got  %s\n  [%d] want %s", i, g, i, w)
		}
	}
	return b.String()
}

// racerLine is one line of a racer's stdout (see testdata/racer).
type racerLine struct {
	Ready    bool   `json:"ready"`
	Name     string `json:"name"`
	Client   string `json:"client"`
	Round    int    `json:"round"`
	Key      string `json:"key"`
	Won      bool   `json:"won"`
	Err      string `json:"err"`
	Borrowed bool   `json:"borrowed"`
}

// racerMsg is a line from racer number from, or the news that it exited
// (exit set, err its exit error).
type racerMsg struct {
	from int
	line racerLine
	raw  string
	exit bool
	err  error
}

// racerProc is one racer process.
type racerProc struct {
	name   string
	stderr string // path of its stderr
}

// startRacer starts racer process number idx called name, with its own
// replica directory and the further flags args; its lines and its exit go
// to msgs. A cleanup kills it at the end of the test and, if the test
// failed, logs its stderr.
func startRacer(t *testing.T, idx int, name string, msgs chan<- racerMsg, args ...string) *racerProc {
	t.Helper()
	dir := t.TempDir()
	p := &racerProc{name: name, stderr: filepath.Join(dir, "stderr")}
	f, err := os.Create(p.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child has its own descriptor
	cmd := exec.Command(racerBin, append([]string{"-dir", filepath.Join(dir, "replica"), "-name", name}, args...)...)
	cmd.Env = cleanEnv()
	cmd.Stderr = f
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start racer %s: %v", name, err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	send := func(m racerMsg) {
		select {
		case msgs <- m:
		case <-stop:
		}
	}
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			m := racerMsg{from: idx, raw: sc.Text()}
			m.err = json.Unmarshal(sc.Bytes(), &m.line)
			send(m)
		}
		send(racerMsg{from: idx, exit: true, err: cmd.Wait()})
	}()
	t.Cleanup(func() {
		close(stop)
		_ = cmd.Process.Kill() // harmless when it has exited
		<-done
		if t.Failed() {
			b, _ := os.ReadFile(p.stderr)
			t.Logf("--- stderr of racer %s:\n%s", name, strings.TrimSpace(string(b)))
		}
	})
	return p
}

// TestCheckoutRace has five client processes race for the same record,
// twenty times: all five are synced and wait for the test's go file, then
// try to check the round's record out at once. Exactly one must win each
// round; every loser must get client.ErrBorrowed naming the winner; and
// the cluster's borrows and histories must show that winner and no one
// else.
func TestCheckoutRace(t *testing.T) {
	skipShort(t)
	const (
		tree    = "parts"
		racers  = 5
		rounds  = 20
		waitMsg = 30 * time.Second // for one line of every racer
	)
	start := time.Now()
	nodes := startCluster(t, 3)
	keys := make([]api.Key, rounds)
	keyArgs := make([]string, rounds)
	for i := range keys {
		res, err := createRetry(nodes, tree, value(t, int64(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		keys[i], keyArgs[i] = res.Key, res.Key.String()
	}
	syncDir := t.TempDir()
	msgs := make(chan racerMsg, racers*(rounds+2))
	procs := make([]*racerProc, racers)
	for i := range procs {
		// Each racer syncs from (and sends its checkouts to) another node
		// first, so that most checkouts are forwarded to the leader.
		servers := make([]string, len(nodes))
		for j := range nodes {
			servers[j] = nodes[(i+j)%len(nodes)].HTTP
		}
		procs[i] = startRacer(t, i, fmt.Sprintf("racer-%d", i+1), msgs,
			"-servers", strings.Join(servers, ","), "-tree", tree, "-keys", strings.Join(keyArgs, ","), "-sync", syncDir)
	}
	// next returns the next line of a racer, failing the test on a racer
	// that prints something else than a JSON line, or exits before it
	// printed a line for every round (its exit is noted in exited).
	var (
		printed = make([]int, racers) // lines per racer
		exited  = make([]bool, racers)
	)
	next := func(what string) racerMsg {
		t.Helper()
		timer := time.NewTimer(waitMsg)
		defer timer.Stop()
		for {
			select {
			case m := <-msgs:
				p := procs[m.from]
				switch {
				case m.exit && (m.err != nil || printed[m.from] != 1+rounds):
					b, _ := os.ReadFile(p.stderr)
					t.Fatalf("racer %s exited (%v) after %d lines, while waiting for %s; stderr:\n%s", p.name, m.err, printed[m.from], what, b)
				case m.exit:
					exited[m.from] = true
					continue
				case m.err != nil:
					t.Fatalf("racer %s printed %q: %v", p.name, m.raw, m.err)
				}
				printed[m.from]++
				return m
			case <-timer.C:
				t.Fatalf("no line from the racers within %v while waiting for %s", waitMsg, what)
				return racerMsg{}
			}
		}
	}

	clientOf := make([]string, racers) // racer index -> client id
	for range racers {
		m := next("the racers to be synced")
		if !m.line.Ready || m.line.Name != procs[m.from].name || m.line.Client == "" || clientOf[m.from] != "" {
			t.Fatalf("racer %s: first line %s, want ready with its name and client id", procs[m.from].name, m.raw)
		}
		clientOf[m.from] = m.line.Client
	}
	t.Logf("cluster, %d records and %d synced racers in %v", rounds, racers, time.Since(start).Round(time.Millisecond))

	winners := make([]int, rounds) // round-1 -> racer index, -1 for none or several
	wins := make([]int, racers)
	raceStart := time.Now()
	for r := 1; r <= rounds; r++ {
		if err := os.WriteFile(filepath.Join(syncDir, "go-"+strconv.Itoa(r)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		got := make([]*racerLine, racers)
		for range racers {
			m := next(fmt.Sprintf("round %d", r))
			if m.line.Round != r || got[m.from] != nil {
				t.Fatalf("racer %s printed %s in round %d", procs[m.from].name, m.raw, r)
			}
			if m.line.Key != keys[r-1].String() {
				t.Fatalf("racer %s tried %s in round %d, want %s", procs[m.from].name, m.line.Key, r, keys[r-1])
			}
			got[m.from] = &m.line
		}
		var won []string
		winners[r-1] = -1
		for i, l := range got {
			if l.Won {
				won = append(won, procs[i].name)
				winners[r-1] = i
			}
		}
		if len(won) != 1 {
			winners[r-1] = -1
			t.Errorf("round %d (%s): %d winners %v, want exactly one", r, keys[r-1], len(won), won)
			for i, l := range got {
				t.Logf("  racer %s: won %v, err %q", procs[i].name, l.Won, l.Err)
			}
			continue
		}
		w := winners[r-1]
		wins[w]++
		quoted := strconv.Quote(procs[w].name)
		for i, l := range got {
			if i == w {
				continue
			}
			if !l.Borrowed {
				t.Errorf("round %d (%s): loser %s got %q, not client.ErrBorrowed", r, keys[r-1], procs[i].name, l.Err)
			} else if !strings.Contains(l.Err, quoted) {
				t.Errorf("round %d (%s): loser %s got %q, which does not name the winner %s", r, keys[r-1], procs[i].name, l.Err, quoted)
			}
		}
	}
	var tally []string
	for i, n := range wins {
		tally = append(tally, fmt.Sprintf("%s %d", procs[i].name, n))
	}
	t.Logf("%d rounds in %v; wins: %s", rounds, time.Since(raceStart).Round(time.Millisecond), strings.Join(tally, ", "))
	// The racers print nothing more and exit with status 0.
	exitWait := time.NewTimer(waitMsg)
	defer exitWait.Stop()
	for slices.Contains(exited, false) {
		select {
		case m := <-msgs:
			if !m.exit || m.err != nil {
				t.Fatalf("racer %s after the last round: line %q, exit %v (%v); want exit status 0", procs[m.from].name, m.raw, m.exit, m.err)
			}
			exited[m.from] = true
		case <-exitWait.C:
			t.Fatalf("racers did not exit within %v of the last round (exited: %v)", waitMsg, exited)
		}
	}

	// The cluster: every node holds exactly the winners' borrows, and each
	// record's history has the winner's borrow and nothing else.
	waitSameApplied(t, nodes, 0)
	for _, n := range nodes {
		bs, err := borrows(n, tree)
		if err != nil {
			t.Fatalf("node %s: borrows: %v", n.ID, err)
		}
		byKey := map[api.Key]api.Borrow{}
		for _, b := range bs {
			byKey[b.Key] = b
		}
		if len(bs) != rounds || len(byKey) != rounds {
			t.Errorf("node %s: %d borrows of %s (%d records), want %d", n.ID, len(bs), tree, len(byKey), rounds)
		}
		for r, k := range keys {
			w := winners[r]
			if w < 0 {
				continue
			}
			b, ok := byKey[k]
			if !ok || b.Client != clientOf[w] || b.ClientName != procs[w].name || !b.Expires.IsZero() {
				t.Errorf("node %s: borrow of %s: %+v (present %v), want held by the winner %s (%s) without expiry",
					n.ID, k, b, ok, procs[w].name, clientOf[w])
			}
			h, err := history(n, tree, k)
			if err != nil {
				t.Fatalf("node %s: history of %s: %v", n.ID, k, err)
			}
			if len(h) != 1 || h[0].Action != api.AuditBorrowed || h[0].Client != clientOf[w] {
				t.Errorf("node %s: history of %s:\n  %s\nwant one borrow by the winner %s (%s)",
					n.ID, k, strings.Join(auditLines(h), "\n  "), procs[w].name, clientOf[w])
			}
		}
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// TestBorrowExpiryAcrossLeaderKill checks out a record with a ttl of 3s
// through the leader of a cluster whose nodes expire borrows after a
// grace of 1s, and kills that leader with SIGKILL at once: the survivors
// must elect a leader that expires the borrow exactly once, soon after
// its expiry; the killed node, restarted, must come to the same history
// and no borrow; and another client can then check the record out.
func TestBorrowExpiryAcrossLeaderKill(t *testing.T) {
	skipShort(t)
	const (
		tree  = "parts"
		ttl   = 3 * time.Second
		grace = "1s"
		late  = 10 * time.Second // the expiry may come this much after the borrow's end
	)
	start := time.Now()
	nodes := startClusterWith(t, 3, "-expiry-grace", grace)
	leader := waitLeader(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 2*clientWait)
	defer cancel()
	res, err := createRetry([]*Node{leader}, tree, value(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	key := res.Key
	holder := openClient(t, clientConfig(t, "holder", leader.HTTP), true)
	if err := holder.Tree(tree).Checkout(ctx, key, ttl); err != nil {
		t.Fatalf("checkout with ttl %v: %v", ttl, err)
	}
	old := waitLeader(t, nodes) // the leader that took the borrow, unless it changed meanwhile
	old.Kill()
	killed := time.Now()
	var survivors []*Node
	for _, n := range nodes {
		if n != old {
			survivors = append(survivors, n)
		}
	}
	held, err := holder.Borrowed()
	if err != nil || len(held) != 1 || held[0].Key != key || held[0].Expires.IsZero() {
		t.Fatalf("the holder's borrows after the checkout: %+v %v; want %s with an expiry", held, err, key)
	}
	expiry := held[0].Expires
	if got := held[0].Expires.Sub(held[0].Since); got != ttl {
		t.Errorf("borrow since %s, expires %s: ttl %v, want %v", stamp(held[0].Since), stamp(expiry), got, ttl)
	}
	// The API rounds times to the microsecond, which keeps their order:
	// compare its times with the rounded expiry.
	expiry = expiry.Round(time.Microsecond)
	t.Logf("killed leader %s (SIGKILL) %v before the borrow's expiry", old.ID, expiry.Sub(killed).Round(time.Millisecond))
	next := waitLeader(t, survivors)
	t.Logf("%s leads %v after the kill", next.ID, time.Since(killed).Round(time.Millisecond))

	// The survivors expire the borrow.
	var hist []api.AuditEntry
	waitFor(t, time.Until(expiry)+late+20*time.Second, "the expiry in the history on "+survivors[0].ID, func() (bool, string) {
		hist, err = history(survivors[0], tree, key)
		if err != nil {
			return false, err.Error()
		}
		for _, e := range hist {
			if e.Action == api.AuditExpired {
				return true, ""
			}
		}
		return false, strings.Join(auditLines(hist), "; ")
	})
	t.Logf("history on %s:\n  %s", survivors[0].ID, strings.Join(auditLines(hist), "\n  "))
	var expired []api.AuditEntry
	for _, e := range hist {
		if e.Action == api.AuditExpired {
			expired = append(expired, e)
		}
	}
	if len(expired) != 1 {
		t.Fatalf("%d expired entries, want exactly one", len(expired))
	}
	e := expired[0]
	if e.Time.Before(expiry) || e.Time.After(expiry.Add(late)) {
		t.Errorf("expired at %s, %v after the borrow's expiry %s; want within [0, %v]", stamp(e.Time), e.Time.Sub(expiry), stamp(expiry), late)
	}
	if e.Holder != holder.ClientID() || !e.Expires.Equal(expiry) {
		t.Errorf("expired entry %s: want holder %s and expiry %s", auditLine(e), holder.ClientID(), stamp(expiry))
	}
	if len(hist) != 2 || hist[0].Action != api.AuditBorrowed || hist[0].Client != holder.ClientID() ||
		!hist[0].Expires.Equal(expiry) || hist[1].Action != api.AuditExpired {
		t.Errorf("history: want the borrow by %s with expiry %s, then its expiry", holder.ClientID(), stamp(expiry))
	}
	waitApplied(t, survivors, e.Index)
	for _, n := range survivors {
		if bs, err := borrows(n, ""); err != nil || len(bs) != 0 {
			t.Errorf("node %s: borrows after the expiry: %v %v, want none", n.ID, borrowLines(bs), err)
		}
	}

	// The killed node comes back to the same history, index for index.
	old.Start("-join", gossipAddrs(survivors...), "-expiry-grace", grace)
	old.WaitReady()
	waitConverged(t, nodes)
	waitSameApplied(t, nodes, e.Index)
	want := auditLines(hist)
	for _, n := range nodes {
		h, err := history(n, tree, key)
		if err != nil {
			t.Fatalf("node %s: history: %v", n.ID, err)
		}
		if d := diffLines(auditLines(h), want); d != "" {
			t.Errorf("node %s: history differs from %s's: %s", n.ID, survivors[0].ID, d)
		}
		if bs, err := borrows(n, ""); err != nil || len(bs) != 0 {
			t.Errorf("node %s: borrows after the restart: %v %v, want none", n.ID, borrowLines(bs), err)
		}
	}

	// Another client checks the record out, through the restarted node.
	other := openClient(t, clientConfig(t, "other", old.HTTP), true)
	if err := other.Tree(tree).Checkout(ctx, key, 0); err != nil {
		t.Fatalf("checkout by another client after the expiry: %v", err)
	}
	if err := holder.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if bs, err := holder.Borrowed(); err != nil || len(bs) != 0 {
		t.Errorf("the first holder's replica still lists borrows: %+v %v", bs, err)
	}
	if _, err := holder.Tree(tree).Update(ctx, key, 0, value(t, 2)); !errors.Is(err, client.ErrNotBorrowed) {
		t.Errorf("update by the first holder after the expiry: %v, want ErrNotBorrowed", err)
	}
	h, err := history(old, tree, key)
	if err != nil || len(h) != 3 || h[2].Action != api.AuditBorrowed || h[2].Client != other.ClientID() ||
		!slices.Equal(auditLines(h[:2]), want) {
		t.Errorf("history on %s after the new checkout (%v):\n  %s\nwant the two entries before, then a borrow by %s",
			old.ID, err, strings.Join(auditLines(h), "\n  "), other.ClientID())
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// borrowState is what the cluster holds of borrows, key ranges and
// borrow histories, as comparable lines.
type borrowState struct {
	borrows []string
	ranges  []string
	history map[api.Key][]string
}

// readBorrowState reads the borrows and ranges of every client and the
// histories of keys in tree on n.
func readBorrowState(n *Node, tree string, keys []api.Key) (borrowState, error) {
	s := borrowState{history: map[api.Key][]string{}}
	bs, err := borrows(n, "")
	if err != nil {
		return s, fmt.Errorf("node %s: borrows: %w", n.ID, err)
	}
	s.borrows = borrowLines(bs)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	rs, err := n.Client.Ranges(ctx, "")
	cancel()
	if err != nil {
		return s, fmt.Errorf("node %s: ranges: %w", n.ID, err)
	}
	for _, r := range rs {
		s.ranges = append(s.ranges, fmt.Sprintf("[%d,%d) client=%s used=%d next=%d granted=%s retired=%v",
			r.Start, r.End, r.Client, r.Used, r.Next, stamp(r.Granted), r.Retired))
	}
	slices.Sort(s.ranges)
	for _, k := range keys {
		h, err := history(n, tree, k)
		if err != nil && !errors.Is(err, api.ErrNotFound) {
			return s, fmt.Errorf("node %s: history of %s: %w", n.ID, k, err)
		}
		s.history[k] = auditLines(h)
	}
	return s, nil
}

// diff describes how s differs from want ("" if equal).
func (s borrowState) diff(want borrowState) string {
	var out []string
	if d := diffLines(s.borrows, want.borrows); d != "" {
		out = append(out, "borrows: "+d)
	}
	if d := diffLines(s.ranges, want.ranges); d != "" {
		out = append(out, "ranges: "+d)
	}
	for k, w := range want.history {
		if d := diffLines(s.history[k], w); d != "" {
			out = append(out, fmt.Sprintf("history of %s: %s", k, d))
		}
	}
	return strings.Join(out, "\n")
}

// checkBorrowState waits until nodes have applied index min or more and
// the same index, and checks that each holds want.
func checkBorrowState(t *testing.T, nodes []*Node, tree string, keys []api.Key, min uint64, want borrowState, when string) {
	t.Helper()
	waitSameApplied(t, nodes, min)
	for _, n := range nodes {
		got, err := readBorrowState(n, tree, keys)
		if err != nil {
			t.Fatal(err)
		}
		if d := got.diff(want); d != "" {
			t.Errorf("%s: node %s differs from the state before:\n%s", when, n.ID, d)
		}
	}
}

// heldBy returns the borrow lines of db's replica (Borrowed).
func heldBy(t *testing.T, db *testClient) []string {
	t.Helper()
	bs, err := db.Borrowed()
	if err != nil {
		t.Fatalf("client %s: borrowed: %v", db.Name(), err)
	}
	return borrowLines(bs)
}

// TestBorrowsAndRangesSurviveRestarts has two clients hold borrows (with
// and without expiry, renewed, taken over from another client) and key
// ranges, partly used, and records the cluster's borrows, ranges and
// histories; then it restarts the whole cluster, gracefully and after
// SIGKILL, and the clients: everything must be as before, the reopened
// clients must list their borrows, and a client can still update what it
// holds.
func TestBorrowsAndRangesSurviveRestarts(t *testing.T) {
	skipShort(t)
	const (
		tree    = "parts"
		perCli  = 6
		longTTL = time.Hour
	)
	start := time.Now()
	nodes := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*clientWait)
	defer cancel()
	cfgs := []client.Config{clientConfig(t, "alice", nodes[0].HTTP), clientConfig(t, "bob", nodes[1].HTTP)}
	dbs := []*testClient{openClient(t, cfgs[0], true), openClient(t, cfgs[1], true)}
	alice, bob := dbs[0], dbs[1]

	// Records created by the clients, with ids from their ranges.
	var keys []api.Key
	made := make([][]api.Key, len(dbs))
	for i, db := range dbs {
		for j := range perCli {
			res, err := db.Tree(tree).Create(ctx, 0, value(t, int64(100*i+j)))
			if err != nil || res.Pending {
				t.Fatalf("client %s: create: %+v %v", db.Name(), res, err)
			}
			made[i] = append(made[i], res.Key)
			keys = append(keys, res.Key)
		}
	}
	a, b := made[0], made[1]
	steps := []struct {
		what string
		do   func() error
	}{
		{"alice borrows a0 for an hour", func() error { return alice.Tree(tree).Checkout(ctx, a[0], longTTL) }},
		{"alice borrows a1 without expiry", func() error { return alice.Tree(tree).Checkout(ctx, a[1], 0) }},
		{"alice borrows a2 for an hour", func() error { return alice.Tree(tree).Checkout(ctx, a[2], longTTL) }},
		{"alice renews a2 for two hours", func() error { return alice.Tree(tree).Checkout(ctx, a[2], 2*longTTL) }},
		{"alice borrows a3", func() error { return alice.Tree(tree).Checkout(ctx, a[3], 0) }},
		{"alice returns a3", func() error { return alice.Tree(tree).Return(ctx, a[3]) }},
		{"alice borrows b0 (bob's record)", func() error { return alice.Tree(tree).Checkout(ctx, b[0], 0) }},
		{"bob borrows b1 for an hour", func() error { return bob.Tree(tree).Checkout(ctx, b[1], longTTL) }},
		{"bob borrows b2", func() error { return bob.Tree(tree).Checkout(ctx, b[2], 0) }},
		{"bob borrows b3", func() error { return bob.Tree(tree).Checkout(ctx, b[3], 0) }},
		{"an operator takes b3 from bob for alice", func() error {
			_, err := nodes[2].Client.TakeOver(ctx, tree, b[3], alice.ClientID(), "bob is on leave", longTTL)
			return err
		}},
		{"bob borrows b4", func() error { return bob.Tree(tree).Checkout(ctx, b[4], 0) }},
		{"an operator force-returns b4", func() error {
			_, err := nodes[2].Client.ForceReturn(ctx, tree, b[4], "bob's disk died")
			return err
		}},
		{"bob fails to borrow a0", func() error {
			if err := bob.Tree(tree).Checkout(ctx, a[0], 0); !errors.Is(err, client.ErrBorrowed) {
				return fmt.Errorf("got %v, want ErrBorrowed", err)
			}
			return nil
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
	}
	for _, db := range dbs {
		if err := db.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The clients keep more than their reserve (50 of ranges of 100): no
	// range is granted from here on.
	idx := waitSameApplied(t, nodes, 0)
	before, err := readBorrowState(nodes[0], tree, keys)
	if err != nil {
		t.Fatal(err)
	}
	checkBorrowState(t, nodes, tree, keys, idx, before, "before the restarts")
	if len(before.borrows) != 7 || len(before.ranges) != 2 {
		t.Fatalf("before the restarts: %d borrows, %d ranges; want 7 and 2:\n  %s\n  %s", len(before.borrows), len(before.ranges),
			strings.Join(before.borrows, "\n  "), strings.Join(before.ranges, "\n  "))
	}
	held := make([][]string, len(dbs))
	for i, db := range dbs {
		held[i] = heldBy(t, db)
		var want []string
		for _, l := range before.borrows {
			if strings.Contains(l, " holder="+db.ClientID()+" ") {
				want = append(want, l)
			}
		}
		if d := diffLines(held[i], want); d != "" {
			t.Errorf("client %s: Borrowed differs from the cluster's borrows: %s", db.Name(), d)
		}
	}
	t.Logf("%d borrows, %d ranges, %d histories at index %d; %v", len(before.borrows), len(before.ranges), len(keys), idx,
		time.Since(start).Round(time.Millisecond))

	// The clients stop; the whole cluster stops gracefully and comes back.
	for _, db := range dbs {
		if err := db.Close(); err != nil {
			t.Fatalf("close client %s: %v", db.Name(), err)
		}
	}
	stopAll(t, nodes)
	restartAll(t, nodes)
	checkBorrowState(t, nodes, tree, keys, idx, before, "after a graceful restart")
	t.Logf("graceful restart checked at %v", time.Since(start).Round(time.Millisecond))

	// Every node killed; the clients reopen while the cluster is down.
	for _, n := range nodes {
		n.Kill()
	}
	for i := range dbs {
		dbs[i] = openClient(t, cfgs[i], false)
		if d := diffLines(heldBy(t, dbs[i]), held[i]); d != "" {
			t.Errorf("client %s reopened offline: Borrowed differs: %s", dbs[i].Name(), d)
		}
	}
	alice, bob = dbs[0], dbs[1]
	restartAll(t, nodes)
	checkBorrowState(t, nodes, tree, keys, idx, before, "after SIGKILL and restart")
	t.Logf("restart after SIGKILL checked at %v", time.Since(start).Round(time.Millisecond))

	// The reopened clients sync, list their borrows, and edit.
	for i, db := range dbs {
		if err := db.WaitSynced(ctx); err != nil {
			t.Fatalf("client %s: wait synced: %v (err %v)", db.Name(), err, db.Err())
		}
		if d := diffLines(heldBy(t, db), held[i]); d != "" {
			t.Errorf("client %s reopened and synced: Borrowed differs: %s", db.Name(), d)
		}
	}
	edits := []struct {
		db  *testClient
		key api.Key
	}{{alice, a[1]}, {alice, b[3]}, {bob, b[2]}}
	var last uint64
	for i, e := range edits {
		data := value(t, int64(-1-i))
		res, err := e.db.Tree(tree).Update(ctx, e.key, 0, data)
		if err != nil || res.Pending || res.Index == 0 {
			t.Fatalf("client %s: update of held %s after the restarts: %+v %v", e.db.Name(), e.key, res, err)
		}
		last = max(last, res.Index)
		waitRecord(t, nodes[2], tree, e.key, "the update after the restarts", func(r api.Record) bool {
			return bytes.Equal(r.Data, data)
		})
	}
	if _, err := bob.Tree(tree).Update(ctx, b[0], 0, value(t, -9)); !errors.Is(err, client.ErrNotBorrowed) {
		t.Errorf("bob updating b0, which alice holds: %v, want ErrNotBorrowed", err)
	}
	// Updates change no borrow, range or history.
	checkBorrowState(t, nodes, tree, keys, last, before, "after the updates")
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// TestOfflineEditAfterForceReturnIsAConflict has client A check a record
// out and lose its network, then edit the record (queued in its outbox);
// meanwhile an operator force-returns the borrow and client B checks the
// record out and updates it. When A is back its edit must become a
// conflict (not_borrowed) that keeps what A typed, B's value must stand,
// and the record's history must tell the story in order.
func TestOfflineEditAfterForceReturnIsAConflict(t *testing.T) {
	skipShort(t)
	const (
		tree   = "parts"
		reason = "A's laptop was left on a train"
	)
	start := time.Now()
	nodes := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*clientWait)
	defer cancel()
	link := &cutTransport{base: newTransport()}
	cfgA := clientConfig(t, "A", nodes[0].HTTP)
	cfgA.HTTPClient = &http.Client{Transport: link}
	dbA := openClient(t, cfgA, true)
	dbB := openClient(t, clientConfig(t, "B", nodes[1].HTTP), true)

	original := value(t, 1)
	res, err := dbA.Tree(tree).Create(ctx, 0, original)
	if err != nil {
		t.Fatal(err)
	}
	key := res.Key
	if err := dbA.Tree(tree).Checkout(ctx, key, 0); err != nil {
		t.Fatal(err)
	}

	link.cut.Store(true)
	waitFor(t, clientWait, "client A to be offline", func() (bool, string) { return !dbA.Online(), "online" })
	typed := value(t, 2)
	if res, err := dbA.Tree(tree).Update(ctx, key, 0, typed); err != nil || !res.Pending {
		t.Fatalf("offline update by A: %+v %v, want pending", res, err)
	}

	if _, err := nodes[2].Client.ForceReturn(ctx, tree, key, reason); err != nil {
		t.Fatalf("force return: %v", err)
	}
	if err := dbB.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dbB.Tree(tree).Checkout(ctx, key, 0); err != nil {
		t.Fatalf("checkout by B after the force-return: %v", err)
	}
	fromB := value(t, 3)
	resB, err := dbB.Tree(tree).Update(ctx, key, 0, fromB)
	if err != nil || resB.Pending {
		t.Fatalf("update by B: %+v %v", resB, err)
	}

	// A comes back.
	events := recordEvents(t, dbA, tree)
	link.cut.Store(false)
	waitFor(t, clientWait, "A's outbox to settle", func() (bool, string) {
		return dbA.Pending() == 0, fmt.Sprintf("outbox %d, online %v, err %v", dbA.Pending(), dbA.Online(), dbA.Err())
	})
	cs, err := dbA.Conflicts()
	if err != nil || len(cs) != 1 {
		t.Fatalf("A's conflicts: %+v %v, want one", cs, err)
	}
	c := cs[0]
	if !errors.Is(c.Err, client.ErrNotBorrowed) || c.Err.Code != api.CodeNotBorrowed || c.Op != "update" || c.Tree != tree ||
		c.Key != key || !bytes.Equal(c.Data, typed) {
		t.Errorf("conflict %+v (err %v): want A's update of %s with the value typed offline, rejected as not_borrowed", c, c.Err, key)
	}
	t.Logf("conflict: %v", c.Err)
	waitFor(t, clientWait, "the conflict event", func() (bool, string) {
		n := events.count(func(e client.Event) bool { return e.Type == client.EventConflict })
		return n > 0, "none yet"
	})
	if n := events.count(func(e client.Event) bool { return e.Type == client.EventConflict }); n != 1 {
		t.Errorf("%d conflict events, want 1", n)
	}

	// B's value stands, everywhere, B holding the record.
	for _, n := range nodes {
		waitRecord(t, n, tree, key, "B's value, borrowed by B", func(r api.Record) bool {
			return bytes.Equal(r.Data, fromB) && r.Borrow != nil && r.Borrow.Client == dbB.ClientID()
		})
	}
	if err := dbA.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if rec, err := dbA.Tree(tree).Get(key); err != nil || rec.Pending || !bytes.Equal(rec.Data, fromB) {
		t.Errorf("A's replica after the conflict: %+v %v; want B's value, not pending", rec, err)
	}
	if bs, err := dbA.Borrowed(); err != nil || len(bs) != 0 {
		t.Errorf("A still lists borrows: %+v %v", bs, err)
	}

	// The history: borrowed by A, forced from A with the reason, borrowed by B.
	idx := waitSameApplied(t, nodes, resB.Index)
	for _, n := range nodes {
		h, err := history(n, tree, key)
		if err != nil {
			t.Fatalf("node %s: history: %v", n.ID, err)
		}
		ok := len(h) == 3 &&
			h[0].Action == api.AuditBorrowed && h[0].Client == dbA.ClientID() &&
			h[1].Action == api.AuditForced && h[1].Holder == dbA.ClientID() && h[1].Reason == reason &&
			h[2].Action == api.AuditBorrowed && h[2].Client == dbB.ClientID()
		for i := 1; ok && i < len(h); i++ {
			ok = h[i].Index > h[i-1].Index && !h[i].Time.Before(h[i-1].Time)
		}
		if !ok {
			t.Errorf("node %s: history of %s (applied %d):\n  %s\nwant: borrowed by A (%s), forced from A with reason %q, borrowed by B (%s), in index order",
				n.ID, key, idx, strings.Join(auditLines(h), "\n  "), dbA.ClientID(), reason, dbB.ClientID())
		}
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}
