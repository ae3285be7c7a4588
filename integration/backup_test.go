package integration

// Backup and restore, and quorum-loss recovery, with real processes: a
// snapshot saved by kvctl while writes go on restores into a new cluster
// with exactly the state at the snapshot's index (the same content hash),
// a restored cluster gets a new cluster id that old clients are refused
// with a clear message, fresh nodes join a restored node, and a cluster
// that lost two of three nodes comes back from the survivor.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
)

// kvctlJSON runs the built kvctl with -o json and args, fails the test
// unless it exits 0, and decodes its standard output into out.
func kvctlJSON(t *testing.T, out any, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kvctlBin, append([]string{"-o", "json"}, args...)...)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kvctl %s: %v; stderr %q", strings.Join(args, " "), err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("kvctl %s: output %q: %v", strings.Join(args, " "), stdout.String(), err)
	}
}

// snapshotInfo is what kvctl -o json snapshot save and inspect print.
type snapshotInfo struct {
	Index       uint64 `json:"index"`
	Bytes       int64  `json:"bytes"`
	ClusterID   string `json:"cluster_id"`
	ContentHash string `json:"content_hash"`
}

// restoreInfo is what kvctl -o json snapshot restore prints.
type restoreInfo struct {
	Index         uint64 `json:"index"`
	ClusterID     string `json:"cluster_id"`
	FromClusterID string `json:"from_cluster_id"`
}

// ackedWrite is a create the cluster acknowledged.
type ackedWrite struct {
	key   api.Key
	index uint64
	data  []byte
}

// restoreNode restores file into a new node's data directory with kvctl
// (flags such as --keep-cluster-id), starts it without -bootstrap or
// -join and waits until it leads.
func restoreNode(t *testing.T, id, file string, flags ...string) (*Node, restoreInfo) {
	t.Helper()
	n := newNode(t, id)
	var res restoreInfo
	kvctlJSON(t, &res, append([]string{"snapshot", "restore", file, "--data", n.Dir, "--id", n.ID, "--raft", n.Raft}, flags...)...)
	n.Start()
	n.WaitReady()
	waitLeader(t, []*Node{n})
	return n, res
}

// nodeHash returns n's applied index and content hash.
func nodeHash(t *testing.T, n *Node) api.ContentHash {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	h, err := n.Client.ContentHash(ctx)
	if err != nil {
		t.Fatalf("node %s: content hash: %v", n.ID, err)
	}
	return h
}

// sameHash reports whether two content hashes are of the same index and
// state (whichever node answered).
func sameHash(a, b api.ContentHash) bool { return a.Index == b.Index && a.Hash == b.Hash }

func TestBackupDuringWritesRestoresSameContent(t *testing.T) {
	skipShort(t)
	const tree = "parts"
	nodes := startCluster(t, 3)

	// One writer, one create at a time, through the nodes in turn; no
	// fault is injected, so every create is acknowledged or the test fails.
	var (
		mu    sync.Mutex
		acked []ackedWrite
		werr  error
		wg    sync.WaitGroup
	)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		for i := int64(0); ctx.Err() == nil; i++ {
			data := value(t, i)
			res, err := create(nodes[i%int64(len(nodes))], tree, data)
			mu.Lock()
			if err != nil {
				werr = err
				mu.Unlock()
				return
			}
			acked = append(acked, ackedWrite{res.Key, res.Index, data})
			mu.Unlock()
		}
	})
	waitFor(t, clientWait, "100 acknowledged writes", func() (bool, string) { return count() >= 100, fmt.Sprint(count()) })

	dir := t.TempDir()
	during := filepath.Join(dir, "during.snap")
	var saved snapshotInfo
	kvctlJSON(t, &saved, "-s", nodes[1].HTTP, "snapshot", "save", during)
	before := count()
	waitFor(t, clientWait, "50 more writes after the save", func() (bool, string) { return count() >= before+50, fmt.Sprint(count()) })
	cancel()
	wg.Wait()
	if werr != nil {
		t.Fatalf("a write failed with no fault injected: %v", werr)
	}
	if first, last := acked[0].index, acked[len(acked)-1].index; saved.Index <= first || saved.Index >= last {
		t.Fatalf("snapshot at index %d not taken while the writes (indexes %d to %d) went on", saved.Index, first, last)
	}
	var inspected snapshotInfo
	kvctlJSON(t, &inspected, "snapshot", "inspect", during)
	if inspected.Index != saved.Index || len(inspected.ContentHash) != 64 {
		t.Fatalf("inspect: %+v, save said index %d", inspected, saved.Index)
	}

	// Restored with its cluster id kept: the node holds exactly the state at
	// the snapshot's index, the writes acknowledged up to it and no other.
	r1, res := restoreNode(t, "r1", during, "--keep-cluster-id")
	if res.Index != saved.Index || res.ClusterID != res.FromClusterID || res.ClusterID != inspected.ClusterID {
		t.Fatalf("restore: %+v, want index %d and cluster %s kept", res, saved.Index, inspected.ClusterID)
	}
	if h := nodeHash(t, r1); h.Index != saved.Index || h.Hash != inspected.ContentHash {
		t.Fatalf("restored node: hash %s at %d, the snapshot: %s at %d", h.Hash, h.Index, inspected.ContentHash, saved.Index)
	}
	want := map[api.Key][]byte{}
	for _, a := range acked {
		if a.index <= saved.Index {
			want[a.key] = a.data
		}
	}
	if d := diffRecords(serverRecords(t, r1, tree), want); d != "" {
		t.Fatalf("restored node against the writes acknowledged up to index %d: %s", saved.Index, d)
	}
	t.Logf("snapshot under load at index %d: %d of %d acknowledged writes in it, %d bytes", saved.Index, len(want), len(acked), saved.Bytes)

	// The load stopped, a second backup restores to the very hash the
	// original cluster has at that index.
	final := waitSameApplied(t, nodes, acked[len(acked)-1].index)
	orig := nodeHash(t, nodes[0])
	quiet := filepath.Join(dir, "quiet.snap")
	kvctlJSON(t, &saved, "-s", nodes[2].HTTP, "snapshot", "save", quiet)
	if saved.Index != final || orig.Index != final {
		t.Fatalf("quiet snapshot at index %d, original at %d (hash at %d)", saved.Index, final, orig.Index)
	}
	// This time with kvnode -restore, which restores and starts.
	r2 := newNode(t, "r2")
	r2.Start("-restore", quiet, "-keep-cluster-id")
	r2.WaitReady()
	waitLeader(t, []*Node{r2})
	if h := nodeHash(t, r2); !sameHash(h, orig) {
		t.Fatalf("restored node: hash %s at %d; original cluster: %s at %d", h.Hash, h.Index, orig.Hash, orig.Index)
	}
	// -restore left in place is refused at the next start (the directory
	// is not new); without it the node starts from its data.
	if err := r2.Stop(); err != nil {
		t.Errorf("node %s: stop: %v", r2.ID, err)
	}
	r2.Start("-restore", quiet, "-keep-cluster-id")
	if err, exited := r2.WaitExit(readyTimeout); !exited || err == nil || !strings.Contains(r2.RunLog(), "if this node was restored already, start it without -restore") {
		t.Fatalf("kvnode -restore over its restored data: exited %v (%v), log:\n%s", exited, err, r2.RunLog())
	}
	r2.Start()
	r2.WaitReady()
	waitLeader(t, []*Node{r2})
	if h := nodeHash(t, r2); !sameHash(h, orig) {
		t.Fatalf("restored node after a restart: hash %s at %d; original cluster: %s at %d", h.Hash, h.Index, orig.Hash, orig.Index)
	}
}

func TestRestoreIsANewClusterThatNodesJoin(t *testing.T) {
	skipShort(t)
	const tree = "parts"
	a := newNode(t, "a1")
	old := bootstrapNode(t, a)
	cfg := clientConfig(t, "pinned", a.HTTP)
	db := openClient(t, cfg, true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*clientWait)
	defer cancel()
	for i := range 20 {
		if _, err := db.Tree(tree).Create(ctx, 0, value(t, int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wantRecs := serverRecords(t, a, tree)
	if len(wantRecs) != 20 {
		t.Fatalf("%d records written, want 20", len(wantRecs))
	}
	file := filepath.Join(t.TempDir(), "a.snap")
	var saved snapshotInfo
	kvctlJSON(t, &saved, "-s", a.HTTP, "snapshot", "save", file)
	if err := a.Stop(); err != nil {
		t.Errorf("node %s: stop: %v", a.ID, err)
	}

	// A damaged backup: kvnode -restore refuses it and writes nothing.
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	damaged := file + ".damaged"
	if err := os.WriteFile(damaged, b, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := newNode(t, "bad")
	bad.Start("-restore", damaged)
	if err, exited := bad.WaitExit(readyTimeout); !exited || err == nil || !strings.Contains(bad.RunLog(), "checksum mismatch") {
		t.Fatalf("kvnode -restore of a damaged file: exited %v (%v), log:\n%s", exited, err, bad.RunLog())
	}
	if _, err := os.Stat(bad.Dir); !os.IsNotExist(err) {
		t.Fatalf("a refused restore left %s: %v", bad.Dir, err)
	}

	// A new cluster id by default; two fresh nodes join the restored node
	// and receive its state (raft's InstallSnapshot: the restored log
	// starts after the snapshot).
	r, res := restoreNode(t, "r1", file)
	if res.FromClusterID != old.ClusterID || res.ClusterID == old.ClusterID || res.ClusterID == "" {
		t.Fatalf("restore: %+v; the backup's cluster is %s", res, old.ClusterID)
	}
	joiners := []*Node{newNode(t, "r2"), newNode(t, "r3")}
	for _, n := range joiners {
		n.Start("-join", r.Gossip)
	}
	all := append([]*Node{r}, joiners...)
	for _, n := range joiners {
		n.WaitReady()
	}
	waitConverged(t, all)
	if st, err := r.Status(); err != nil || st.ClusterID != res.ClusterID {
		t.Fatalf("restored cluster status: %+v %v, want cluster %s", st, err, res.ClusterID)
	}
	added, err := createRetry(all, tree, value(t, 99))
	if err != nil {
		t.Fatal(err)
	}
	wantRecs[added.Key] = value(t, 99)
	idx := waitSameApplied(t, all, saved.Index+1)
	var hashes []api.ContentHash
	for _, n := range all {
		hashes = append(hashes, nodeHash(t, n))
		if d := diffRecords(serverRecords(t, n, tree), wantRecs); d != "" {
			t.Errorf("node %s against the backup's records plus one: %s", n.ID, d)
		}
	}
	if hashes[0].Index != idx || !sameHash(hashes[1], hashes[0]) || !sameHash(hashes[2], hashes[0]) {
		t.Fatalf("restored cluster's nodes differ: %+v", hashes)
	}

	// A node of the old cluster, with its data, cannot join the restored one.
	a.Start("-join", r.Gossip)
	if err, exited := a.WaitExit(electionTimeout); !exited || err == nil || !strings.Contains(a.RunLog(), res.ClusterID) {
		t.Fatalf("old node %s joining the restored cluster: exited %v (%v), log:\n%s", a.ID, exited, err, a.RunLog())
	}
	if st, err := r.Status(); err != nil || !slices.Equal(voters(st), ids(all)) {
		t.Fatalf("restored cluster after the old node tried to join: %+v %v", st, err)
	}

	// The client pinned to the old cluster is refused, and told why.
	cfg.Servers = []string{r.HTTP}
	db = openClient(t, cfg, false)
	waitFor(t, clientWait, "ErrWrongCluster", func() (bool, string) {
		err := db.Err()
		return errors.Is(err, client.ErrWrongCluster), fmt.Sprint(err)
	})
	msg := db.Err().Error()
	for _, s := range []string{res.ClusterID, old.ClusterID, "restored from a backup", "move " + cfg.Dir + " aside"} {
		if !strings.Contains(msg, s) {
			t.Errorf("refusal %q does not say %q", msg, s)
		}
	}
}

func TestQuorumLossRecoveryFromOneSurvivor(t *testing.T) {
	skipShort(t)
	const tree = "parts"
	nodes := startCluster(t, 3)
	acked := map[api.Key][]byte{}
	for i := range 200 {
		data := value(t, int64(i))
		res, err := createRetry(nodes, tree, data)
		if err != nil {
			t.Fatal(err)
		}
		acked[res.Key] = data
	}
	before, err := nodes[0].Status()
	if err != nil {
		t.Fatal(err)
	}

	// Two of three die for good: no quorum, no writes.
	survivor := nodes[0]
	nodes[1].Kill()
	nodes[2].Kill()
	wctx, wcancel := context.WithTimeout(context.Background(), 3*time.Second)
	_, err = survivor.Client.Create(wctx, tree, api.WriteRequest{Data: value(t, -1)})
	wcancel()
	if err == nil {
		t.Fatal("a write succeeded with two of three nodes dead")
	}
	if err := survivor.Stop(); err != nil {
		t.Logf("survivor stopped with %v", err)
	}

	var rec struct {
		Index     uint64   `json:"index"`
		ClusterID string   `json:"cluster_id"`
		Dropped   []string `json:"dropped"`
	}
	kvctlJSON(t, &rec, "recover", "--data", survivor.Dir, "--id", survivor.ID, "--raft", survivor.Raft)
	if rec.ClusterID != before.ClusterID || !slices.Equal(rec.Dropped, []string{"n2", "n3"}) || rec.Index < before.AppliedIndex {
		t.Fatalf("recover: %+v; before: cluster %s, applied %d", rec, before.ClusterID, before.AppliedIndex)
	}
	survivor.Start()
	survivor.WaitReady()
	waitConverged(t, []*Node{survivor})

	// It serves writes and kept every acknowledged one.
	for i := range 10 {
		data := value(t, int64(1000+i))
		res, err := createRetry([]*Node{survivor}, tree, data)
		if err != nil {
			t.Fatalf("write after recovery: %v", err)
		}
		acked[res.Key] = data
	}
	// The write refused for want of quorum may have reached the survivor's
	// log: recovery takes every entry of that log as committed (as raft's
	// RecoverCluster does), so it may be there, once, and nothing else.
	got := serverRecords(t, survivor, tree)
	for k, v := range got {
		if _, ok := acked[k]; !ok && bytes.Equal(v, value(t, -1)) {
			t.Logf("the unacknowledged write made before the recovery is kept as %s", k)
			acked[k] = v
			break
		}
	}
	if d := diffRecords(got, acked); d != "" {
		t.Fatalf("recovered node against the acknowledged writes: %s", d)
	}

	// Two fresh nodes join it.
	fresh := []*Node{newNode(t, "n4"), newNode(t, "n5")}
	for _, n := range fresh {
		n.Start("-join", survivor.Gossip)
	}
	for _, n := range fresh {
		n.WaitReady()
	}
	all := append([]*Node{survivor}, fresh...)
	waitConverged(t, all)
	st, err := survivor.Status()
	if err != nil || st.ClusterID != before.ClusterID {
		t.Fatalf("status after the joins: %+v %v", st, err)
	}
	res, err := createRetry(all, tree, value(t, 2000))
	if err != nil {
		t.Fatal(err)
	}
	acked[res.Key] = value(t, 2000)
	idx := waitSameApplied(t, all, res.Index)
	h := nodeHash(t, survivor)
	for _, n := range all {
		if got := nodeHash(t, n); !sameHash(got, h) {
			t.Errorf("node %s: hash %s at %d, %s: %s at %d", n.ID, got.Hash, got.Index, survivor.ID, h.Hash, h.Index)
		}
		if d := diffRecords(serverRecords(t, n, tree), acked); d != "" {
			t.Errorf("node %s against the acknowledged writes: %s", n.ID, d)
		}
	}
	t.Logf("recovered at index %d from %s; the cluster of %v agrees at index %d", rec.Index, survivor.ID, ids(all), idx)
}
