package cluster_test

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/shelfdb/shelf/fsm"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
)

func TestOldPeersFileIsRenamed(t *testing.T) {
	base, keys := nodeDir(t, 0)
	dir := copyDir(t, base)
	_ = os.Remove(filepath.Join(dir, "gossip-peers.json"))
	if err := os.WriteFile(filepath.Join(dir, "peers.json"), []byte(`["127.0.0.1:1"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ := damagedConfig(t, dir)
	n := mustStart(t, cfg)
	waitCluster(t, n)
	if _, err := n.FSM().Get("t", keys[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "peers.json")); !os.IsNotExist(err) {
		t.Errorf("the old peers.json (raft's recovery file name) is still there: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "gossip-peers.json")); err != nil || string(b) != `["127.0.0.1:1"]` {
		t.Errorf("gossip-peers.json: %q %v, want the old file's addresses", b, err)
	}
}

func TestRecoverKeepsStateFromSnapshotAndLog(t *testing.T) {
	base, keys := nodeDir(t, 2) // snapshots, and entries after the newest
	dir := copyDir(t, base)
	res, err := cluster.Recover(cluster.RecoverConfig{DataDir: dir, NodeID: "s1", RaftAddr: "127.0.0.1:1", Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	if res.ClusterID == "" || res.Index == 0 || len(res.Dropped) != 0 {
		t.Fatalf("recover: %+v", res)
	}
	cfg, _ := damagedConfig(t, dir)
	n := mustStart(t, cfg)
	waitCluster(t, n)
	if n.ClusterID() != res.ClusterID {
		t.Fatalf("cluster %s after recovery, was %s", n.ClusterID(), res.ClusterID)
	}
	for _, k := range keys {
		if _, err := n.FSM().Get("t", k); err != nil {
			t.Fatalf("%v after recovery: %v", k, err)
		}
	}
	if got := n.FSM().AppliedIndex(); got < res.Index {
		t.Fatalf("applied %d after recovery at %d", got, res.Index)
	}
}

func TestRecoverRefusesRunningOrEmptyNode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s1")
	cfg := testConfig(t, "s1", dir)
	cfg.Bootstrap = true
	n := mustStart(t, cfg)
	waitCluster(t, n)
	_, err := cluster.Recover(cluster.RecoverConfig{DataDir: dir, NodeID: "s1", RaftAddr: n.RaftAddr(), Logger: discard()})
	if err == nil || !strings.Contains(err.Error(), "is another kvnode using") {
		t.Fatalf("recover of a running node's directory: %v", err)
	}
	empty := t.TempDir()
	_, err = cluster.Recover(cluster.RecoverConfig{DataDir: empty, NodeID: "s1", RaftAddr: "127.0.0.1:7002", Logger: discard()})
	if err == nil || !strings.Contains(err.Error(), "has no raft log") {
		t.Fatalf("recover of an empty directory: %v", err)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("recover of an empty directory wrote %v", entries)
	}
}

// discard is a logger that drops everything.
func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestRestoredNodeElectsItselfAndCorrectsItsRaftAddress(t *testing.T) {
	base, keys := nodeDir(t, 1)
	// A backup of that node's state, as kvctl snapshot save makes it.
	src, err := fsm.Open(fsm.Config{Path: filepath.Join(base, "fsm.db"), Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	s, err := src.Snapshot()
	if err == nil {
		_, err = s.WriteTo(&backup)
		s.Release()
	}
	old := src.ClusterID()
	src.Close()
	if err != nil {
		t.Fatal(err)
	}

	for _, store := range []string{cluster.LogStoreBolt, cluster.LogStoreWAL} {
		t.Run(store, func(t *testing.T) {
			testRestoredNode(t, bytes.NewReader(backup.Bytes()), old, keys, store)
		})
	}
}

func testRestoredNode(t *testing.T, backup io.Reader, old string, keys []api.Key, store string) {
	dir := filepath.Join(t.TempDir(), "restored")
	// The restore is told another raft address than the node will have
	// (its port is picked at start): the node corrects it as leader.
	res, err := cluster.Restore(cluster.RestoreConfig{DataDir: dir, NodeID: "r1", RaftAddr: "127.0.0.1:1", LogStore: store, Logger: discard()}, backup)
	if err != nil {
		t.Fatal(err)
	}
	if res.FromClusterID != old || res.ClusterID == old {
		t.Fatalf("restore: %+v, backup of cluster %s", res, old)
	}
	cfg := testConfig(t, "r1", dir)
	cfg.LogStore = store
	n := mustStart(t, cfg)
	if got := waitCluster(t, n); got != res.ClusterID {
		t.Fatalf("cluster %s, restore said %s", got, res.ClusterID)
	}
	for _, k := range keys {
		if _, err := n.FSM().Get("t", k); err != nil {
			t.Fatalf("%v after restore: %v", k, err)
		}
	}
	waitFor(t, 10*time.Second, "the raft address in the configuration to be corrected", func() error {
		for _, m := range n.Members() {
			if m.ID == "r1" && m.RaftAddr == n.RaftAddr() && m.Suffrage == "Voter" {
				return nil
			}
		}
		return fmt.Errorf("members %+v, raft address %s", n.Members(), n.RaftAddr())
	})
}
