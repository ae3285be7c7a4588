package faults

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

// ciSchedules is the number of schedules of the default set, what
// `go test ./...` runs: seeds 1..ciSchedules, every fault kind once as a
// first fault; about 35 s each on a 2-core machine. .ci/run runs seeds
// 8..14 besides.
const ciSchedules = 7

// TestFaults runs seeded nemesis schedules against a three-node cluster
// in network namespaces while HTTP workers and embedded clients read and
// write, then checks the history and the replicas. See the package doc.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection with real processes; skipped with -short")
	}
	kinds, err := parseKinds(*flagKinds)
	if err != nil {
		t.Fatalf("-faults.kinds: %v", err)
	}
	var seeds []uint64
	switch {
	case *flagSeed != 0:
		seeds = []uint64{*flagSeed}
	default:
		n := *flagSchedules
		if n <= 0 {
			n = ciSchedules
		}
		for i := range uint64(n) {
			seeds = append(seeds, *flagFirst+i)
		}
	}
	sum := newSummary()
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			r, faults := runSchedule(t, seed, *flagDuration, kinds)
			sum.add(seed, r, faults)
		})
	}
	t.Log("\n" + sum.String())
	if len(sum.failed) > 0 {
		var b strings.Builder
		for _, s := range sum.failed {
			fmt.Fprintf(&b, "\n  %s", replay(s))
		}
		t.Errorf("failing seeds, replay each with:%s", b.String())
	}
}

// artifactDir returns where a schedule keeps its node logs and
// visualizations: t.ArtifactDir() with -artifacts; otherwise a directory
// that is kept if the test fails, so that the paths printed stay valid.
func artifactDir(t *testing.T, name string) string {
	if f := flag.Lookup("test.artifacts"); f != nil && f.Value.String() == "true" {
		return t.ArtifactDir()
	}
	dir, err := os.MkdirTemp("", "shelf-faults-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
		}
	})
	return dir
}

// runSchedule runs one seeded schedule and all checks, failing t on any
// violation.
func runSchedule(t *testing.T, seed uint64, dur time.Duration, kinds []faultKind) (*report, map[faultKind]int) {
	dir := artifactDir(t, fmt.Sprintf("seed%d", seed))
	steps := plan(seed, dur, kinds)
	var planText []string
	for _, s := range steps {
		planText = append(planText, "  "+s.String())
	}
	t.Logf("seed %d: %d faults over %v; artifacts in %s\n%s", seed, len(steps), dur, dir, strings.Join(planText, "\n"))

	c := newCluster(t, dir)
	wl := newWorkload(t, c, seed, dir)
	nem := newNemesis(t, c)
	nem.onPause = func(ctx context.Context, n *node, hold time.Duration) {
		wl.burst(ctx, n, hold+opTimeout)
	}
	r := newReport()

	ctx, cancel := context.WithTimeout(context.Background(), dur+30*time.Second)
	defer cancel()
	wctx, stopWork := context.WithCancel(ctx)
	workDone := make(chan struct{})
	go func() {
		defer close(workDone)
		wl.run(wctx)
	}()
	nem.run(ctx, steps)
	stopWork()
	<-workDone

	background := context.Background()
	if err := nem.healAll(background); err != nil {
		t.Fatalf("healing: %v", err)
	}
	t.Logf("nemesis timeline:\n%s", nem.timeline())
	finalChecks(t, c, wl, r, dir)

	r.mu.Lock()
	for _, n := range r.notes {
		t.Logf("note: %s", n)
	}
	var counts []string
	for _, c := range checkNames {
		counts = append(counts, fmt.Sprintf("%s %d", c, r.checked[c]))
	}
	t.Logf("checked: %s", strings.Join(counts, ", "))
	for _, check := range checkNames {
		for _, v := range r.violations[check] {
			t.Errorf("%s: %s", check, v)
		}
	}
	failed := len(r.violations) > 0
	r.mu.Unlock()
	if failed {
		t.Errorf("seed %d failed; replay: %s\nnode logs and timelines in %s", seed, replay(seed), dir)
	}
	return r, nem.faults()
}

// finalChecks waits for the healed cluster to converge, reads every
// record from every node, runs the checks and finally stops the nodes and
// compares their raft logs.
func finalChecks(t *testing.T, c *cluster, wl *workload, r *report, dir string) {
	ctx := context.Background()
	if err := poll(ctx, convergeTimeout, func() (bool, string) { return c.converged(ctx) }); err != nil {
		r.fail("converged", "no leader agreed by all three nodes after healing: %v", err)
	}

	// Embedded clients send what their outboxes hold.
	for i, db := range wl.dbs {
		if err := poll(ctx, convergeTimeout, func() (bool, string) {
			return db.Online() && db.Pending() == 0, fmt.Sprintf("online %v, %d pending, err %v", db.Online(), db.Pending(), db.Err())
		}); err != nil {
			r.fail("acked-writes", "embedded client %d did not drain its outbox: %v", i, err)
		}
	}

	// Wait for every replica to reach the same state before the final
	// reads: what is missing then is lost, not late.
	checkHashes(ctx, c, wl, r)

	// Final reads of every record from every node, part of the history.
	final := map[uint64]finalRead{}
	leader := c.leader(ctx)
	for _, n := range c.nodes {
		w := wl.h.worker()
		for _, id := range wl.records() {
			fr, ok := wl.read(ctx, w, "final", n, id)
			if !ok {
				r.note("final read of %d from %s failed", id, n.ID)
				continue
			}
			if n == leader || (leader == nil && n == c.nodes[0]) {
				final[id] = fr
			}
		}
	}
	var burstOK, burstUnknown, burstOther int
	for _, o := range wl.h.snapshot() {
		if o.In.Kind == opCreate && strings.HasPrefix(o.In.Value, "b") {
			switch {
			case o.Out.OK:
				burstOK++
			case o.Out.Unknown:
				burstUnknown++
			default:
				burstOther++
			}
		}
	}
	if burstOK+burstUnknown+burstOther > 0 {
		r.note("creates sent to paused leaders: %d acknowledged, %d unknown, %d rejected", burstOK, burstUnknown, burstOther)
	}
	checkLinearizable(wl.h, r, dir)
	checkAckedWrites(wl.h, final, r)
	checkHolders(wl.h, r)
	if leader != nil {
		for _, id := range wl.records() {
			checkAudit(ctx, leader, tree, id, r)
		}
	}
	checkEmbedded(ctx, c, wl, r)
	checkRanges(ctx, c.nodes, wl.granted, r)

	// Raft logs, compared with the nodes stopped.
	commit := ^uint64(0)
	for _, n := range c.nodes {
		st, err := n.Status(ctx)
		if err != nil {
			r.fail("raft-logs", "status of %s before stopping: %v", n.ID, err)
			commit = 0
			continue
		}
		commit = min(commit, st.CommitIndex)
	}
	if err := c.stopAll(); err != nil {
		r.note("stopping: %v", err)
	}
	if commit > 0 && commit != ^uint64(0) {
		checkRaftLogs(c.nodes, commit, r)
	}
}

// checkEmbedded checks the creates the embedded clients acknowledged:
// each exists on every node, and no record id is used twice, by them or
// by the HTTP workers.
func checkEmbedded(ctx context.Context, c *cluster, wl *workload, r *report) {
	wl.mu.Lock()
	acks := append([]embeddedAck(nil), wl.eAcks...)
	unknown := wl.eUnknown
	wl.mu.Unlock()
	r.note("embedded clients: %d creates acknowledged (%d of them queued offline), %d failed", len(acks), countPending(acks), unknown)

	// A create of a fresh id from the client's own range has nothing to
	// conflict with: a conflict means a write the client sent again was
	// applied twice (the second time rejected), or an id was reused.
	for i, db := range wl.dbs {
		conflicts, err := db.Conflicts()
		if err != nil {
			r.fail("acked-writes", "embedded client %d: conflicts: %v", i, err)
		}
		for _, cf := range conflicts {
			r.fail("acked-writes", "embedded client %d: queued %s of %s/%s was rejected by the cluster: %v", i, cf.Op, cf.Tree, cf.Key, cf.Err)
		}
	}

	ids := map[uint64]string{}
	for _, o := range wl.h.snapshot() {
		if o.In.Kind == opCreate && o.Out.OK {
			if prev, dup := ids[o.Rec]; dup {
				r.fail("unique-ids", "record id %d acknowledged to two creates: %s and %s", o.Rec, prev, o.In.Value)
			}
			ids[o.Rec] = o.In.Value
		}
	}
	for _, a := range acks {
		if prev, dup := ids[a.Key.ID]; dup {
			r.fail("unique-ids", "record id %d acknowledged to two creates: %s and %s", a.Key.ID, prev, a.Label)
		}
		ids[a.Key.ID] = a.Label
	}
	for _, n := range c.nodes {
		list, err := listIDs(ctx, n, tree)
		if err != nil {
			r.fail("acked-writes", "%v", err)
			continue
		}
		seen := map[uint64]bool{}
		for _, id := range list {
			if seen[id] {
				r.fail("unique-ids", "%s lists record %d twice", n.ID, id)
			}
			seen[id] = true
		}
		r.count("unique-ids", len(list))
		var missing []string
		for _, a := range acks {
			r.count("acked-writes", 1)
			if !seen[a.Key.ID] {
				missing = append(missing, fmt.Sprintf("%s as record %d (queued offline: %v)", a.Label, a.Key.ID, a.Pending))
			}
		}
		if len(missing) > 0 {
			r.fail("acked-writes", "%s lacks %d acknowledged creates of embedded clients, e.g. %s",
				n.ID, len(missing), strings.Join(missing[:min(3, len(missing))], ", "))
		}
	}
}

func countPending(acks []embeddedAck) int {
	n := 0
	for _, a := range acks {
		if a.Pending {
			n++
		}
	}
	return n
}

// checkHashes waits until every node has applied the same index with the
// same content hash, and every embedded client's replica too.
func checkHashes(ctx context.Context, c *cluster, wl *workload, r *report) {
	var (
		index    uint64
		hash     string
		mismatch string
	)
	err := poll(ctx, convergeTimeout, func() (bool, string) {
		var hs []api.ContentHash
		for _, n := range c.nodes {
			hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			h, err := n.Client.ContentHash(hctx)
			cancel()
			if err != nil {
				return false, fmt.Sprintf("%s: %v", n.ID, err)
			}
			hs = append(hs, h)
		}
		for _, h := range hs[1:] {
			if h.Index != hs[0].Index {
				return false, fmt.Sprintf("applied indexes %v", hs)
			}
			if h.Hash != hs[0].Hash {
				mismatch = fmt.Sprintf("%s and %s differ at applied index %d: %.12s vs %.12s", hs[0].Node, h.Node, h.Index, hs[0].Hash, h.Hash)
				return true, ""
			}
		}
		index, hash = hs[0].Index, hs[0].Hash
		return true, ""
	})
	r.count("converged", len(c.nodes))
	switch {
	case err != nil:
		r.fail("converged", "nodes did not reach the same applied index: %v", err)
		return
	case mismatch != "":
		r.fail("converged", "content hashes: %s", mismatch)
		return
	}
	for i, db := range wl.dbs {
		r.count("converged", 1)
		var last string
		err := poll(ctx, convergeTimeout, func() (bool, string) {
			idx, h, err := db.ContentHash()
			if err != nil {
				return false, err.Error()
			}
			if idx == index && h != hash {
				last = fmt.Sprintf("embedded client %d differs from the nodes at index %d: %.12s vs %.12s", i, idx, h, hash)
				return true, ""
			}
			if idx != index {
				// The nodes may have moved on (client last-seen updates):
				// compare with a node at the client's index instead.
				for _, n := range c.nodes {
					hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					nh, err := n.Client.ContentHash(hctx)
					cancel()
					if err == nil && nh.Index == idx {
						if nh.Hash != h {
							last = fmt.Sprintf("embedded client %d differs from %s at index %d: %.12s vs %.12s", i, n.ID, idx, h, nh.Hash)
						}
						return true, ""
					}
				}
			}
			return idx == index, fmt.Sprintf("client at %d, nodes at %d", idx, index)
		})
		if err != nil {
			r.fail("converged", "embedded client %d did not reach the nodes' index: %v", i, err)
		} else if last != "" {
			r.fail("converged", "content hashes: %s", last)
		}
	}
}

// replay returns the command that runs seed's schedule again.
func replay(seed uint64) string {
	cmd := fmt.Sprintf("go test ./integration/faults -run TestFaults -faults.seed=%d -faults.duration=%v", seed, *flagDuration)
	if *flagKinds != "" {
		cmd += " -faults.kinds=" + *flagKinds
	}
	return cmd + " -v"
}
