package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/netns"
)

// partitionNet is netns.ForTest, except that a Close error is only a test
// failure when something of the network is left behind. (netns.Close can
// fail on "ip link del PREFIXKr: Cannot find device" when the kernel
// removes the root link itself, after the hub namespace is deleted,
// between Close's check and its delete: nothing is left then.)
func partitionNet(tb testing.TB, nodes ...string) *netns.Network {
	tb.Helper()
	skipShort(tb)
	if err := netns.Check(); err != nil {
		tb.Fatalf("%v\nthis test builds network namespaces: run it as root with ip and iptables installed (apt-get install iproute2 iptables)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := netns.Sweep(ctx, netns.DefaultPrefix); err != nil {
		tb.Logf("netns: sweeping stale networks: %v", err)
	}
	nw, err := netns.New(ctx, netns.Config{Nodes: nodes})
	if err != nil {
		tb.Fatalf("netns: %v", err)
	}
	ns, _ := nw.Namespace(nodes[0]) // PREFIX-K-NODE
	subnet := strings.TrimSuffix(ns, nodes[0])
	tb.Cleanup(func() {
		err := nw.Close()
		if err == nil {
			return
		}
		left := leftovers(subnet)
		if len(left) > 0 {
			tb.Errorf("netns: %v; left behind: %v", err, left)
			return
		}
		tb.Logf("netns: %v (nothing left behind)", err)
	})
	return nw
}

// leftovers lists the namespaces of subnet ("PREFIX-K-") and its root
// link ("PREFIXKr") that still exist.
func leftovers(subnet string) []string {
	var left []string
	if b, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if name, _, _ := strings.Cut(l, " "); strings.HasPrefix(name, subnet) {
				left = append(left, name)
			}
		}
	} else {
		left = append(left, fmt.Sprintf("(ip netns list: %v)", err))
	}
	link := strings.ReplaceAll(strings.TrimSuffix(subnet, "-"), "-", "") + "r"
	if _, err := os.Stat(filepath.Join("/sys/class/net", link)); !errors.Is(err, os.ErrNotExist) {
		left = append(left, link)
	}
	return left
}

// newNodeIn prepares node id in its own namespace of nw: its HTTP, raft
// and gossip ports on the namespace's address, which the test process
// reaches directly. Register it after partitionNet, so that its process
// is killed before the network is removed.
func newNodeIn(tb testing.TB, nw *netns.Network, id string) *Node {
	tb.Helper()
	ip, err := nw.Addr(id)
	if err != nil {
		tb.Fatal(err)
	}
	base := tb.TempDir()
	at := func(port int) string { return net.JoinHostPort(ip.String(), fmt.Sprint(port)) }
	n := &Node{ID: id, Dir: filepath.Join(base, "data"), HTTP: at(7001), Raft: at(7002), Gossip: at(7003),
		Log: filepath.Join(base, id+".log"), tb: tb,
		command: func(name string, args ...string) (*exec.Cmd, error) { return nw.Command(id, name, args...) }}
	n.Client = api.NewClient(n.HTTP, testHTTP)
	tb.Cleanup(func() {
		n.Kill()
		if tb.Failed() {
			tb.Logf("--- last %d lines of node %s's log (%s):\n%s", logTailLines, n.ID, n.Log, n.tail(logTailLines))
		}
	})
	return n
}

// TestClientLeavesPartitionedNode: a client follows a node that is then
// cut off from the other two by a network partition (raft and gossip
// traffic dropped), while its HTTP API stays reachable and keeps answering
// log polls. The client must notice that the node has no leader, move to
// another node within a few seconds, and drain its outbox there: writes
// made around the cut are applied by the majority.
func TestClientLeavesPartitionedNode(t *testing.T) {
	skipShort(t)
	nw := partitionNet(t, "n1", "n2", "n3")
	nodes := []*Node{newNodeIn(t, nw, "n1"), newNodeIn(t, nw, "n2"), newNodeIn(t, nw, "n3")}
	bootstrapNode(t, nodes[0])
	for _, n := range nodes[1:] {
		n.Start("-join", nodes[0].Gossip)
	}
	for _, n := range nodes[1:] {
		n.WaitReady()
	}
	waitConverged(t, nodes)
	leader := waitLeader(t, nodes)
	var cut *Node
	var rest []*Node
	for _, n := range nodes {
		if n != leader && cut == nil {
			cut = n
		} else {
			rest = append(rest, n)
		}
	}
	db := openClient(t, clientConfig(t, "app", cut.HTTP, rest[0].HTTP, rest[1].HTTP), true)
	if !db.Online() {
		t.Fatalf("client not online after WaitSynced: %v", db.Err())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := nw.Isolate(ctx, cut.ID); err != nil {
		t.Fatalf("isolate %s: %v", cut.ID, err)
	}
	start := time.Now()
	t.Logf("%s (a follower; %s leads) cut off from the others: %s", cut.ID, leader.ID, nw.Partitions())

	// Writes of the client right after the cut (through the outbox, the
	// node it follows may still forward them into the partition), and one
	// through the majority.
	parts := db.Tree("parts")
	var mine []api.Key
	for i := range 5 {
		wctx, wcancel := context.WithTimeout(ctx, 500*time.Millisecond) // then it waits in the outbox
		res, err := parts.Create(wctx, 0, value(t, int64(i)))
		wcancel()
		if err != nil {
			t.Fatalf("client create %d: %v", i, err)
		}
		mine = append(mine, res.Key)
	}
	theirs, err := create(rest[0], "parts", value(t, 100))
	if err != nil {
		t.Fatalf("create through %s: %v", rest[0].ID, err)
	}

	// The cut-off node still answers, and says it has no leader.
	waitFor(t, 30*time.Second, cut.ID+" to report no leader", func() (bool, string) {
		st, err := cut.Status()
		return err == nil && st.NoLeader, fmt.Sprintf("%+v %v", st, err)
	})
	noLeader := time.Since(start)

	var offline time.Duration
	waitFor(t, 60*time.Second, "the client to follow the majority and drain its outbox", func() (bool, string) {
		if !db.Online() && offline == 0 {
			offline = time.Since(start)
		}
		_, err := parts.Get(theirs.Key)
		return err == nil && db.Online() && db.Pending() == 0,
			fmt.Sprintf("online %v (err %v), pending %d, majority's write: %v", db.Online(), db.Err(), db.Pending(), err)
	})
	moved := time.Since(start)
	t.Logf("after the cut: %s says no_leader at %v; client offline by %v; following the majority with its outbox drained at %v",
		cut.ID, noLeader.Round(time.Millisecond), offline.Round(time.Millisecond), moved.Round(time.Millisecond))
	if moved > 20*time.Second {
		t.Errorf("the client took %v to leave the partitioned node; want a few seconds", moved)
	}
	for _, k := range mine {
		rctx, rcancel := context.WithTimeout(ctx, requestTimeout)
		rec, err := rest[0].Client.Get(rctx, "parts", k)
		rcancel()
		if err != nil || rec.CreatedBy != db.ClientID() {
			t.Errorf("client's write %v on the majority: %+v %v", k, rec, err)
		}
	}
	if st, err := cut.Status(); err != nil || st.AppliedIndex >= theirs.Index {
		t.Errorf("cut-off node status %+v %v: want it behind index %d", st, err, theirs.Index)
	}
}
