package faults

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
	"github.com/shelfdb/shelf/internal/testlog"
)

// How fast an embedded client must leave a node cut off from the
// majority.
const (
	switchTimeout = 10 * time.Second // until it follows a majority server
	drainTimeout  = 20 * time.Second // until its outbox is empty
)

// TestClientLeavesPartitionedNode attaches an embedded client to a
// follower X (Servers lists all three, X first), writes through it, then
// cuts X off from the other two nodes while X's HTTP API stays reachable
// from the client. X answers but can neither commit writes nor see new
// ones: the client must move to a server of the majority within a few
// seconds (it sees a write made there), be online, and deliver every write
// it accepted (its outbox drains and each record is on the majority).
func TestClientLeavesPartitionedNode(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes in network namespaces; skipped with -short")
	}
	dir := artifactDir(t, "client-partition")
	c := newCluster(t, dir)
	ctx := context.Background()
	leader := c.leader(ctx)
	if leader == nil {
		t.Fatal("no leader")
	}
	var x *node
	servers := []string{}
	for _, n := range c.nodes {
		if n != leader && x == nil {
			x = n
		}
	}
	servers = append(servers, x.HTTP)
	var majority []*node
	for _, n := range c.nodes {
		if n != x {
			servers = append(servers, n.HTTP)
			majority = append(majority, n)
		}
	}

	octx, cancel := context.WithTimeout(ctx, convergeTimeout)
	defer cancel()
	db, err := client.Open(octx, client.Config{
		Dir:        filepath.Join(dir, "client"),
		Servers:    servers,
		Name:       "mover",
		HTTPClient: testHTTP,
		Logger:     testlog.New(t),
	})
	if err != nil {
		t.Fatalf("open the client on %v: %v", servers, err)
	}
	defer db.Close()
	if err := db.WaitSynced(octx); err != nil {
		t.Fatalf("client sync: %v", err)
	}
	if err := poll(octx, convergeTimeout, func() (bool, string) {
		n, err := db.IDsAvailable()
		return err == nil && n >= 40, fmt.Sprintf("%d ids, %v", n, err)
	}); err != nil {
		t.Fatalf("client has no ids: %v", err)
	}

	tr := db.Tree("moves")
	var keys []api.Key
	write := func(i int) {
		t.Helper()
		data, err := api.EncodeValue(map[string]any{"i": i})
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		res, err := tr.Create(wctx, 0, data)
		if err != nil {
			t.Errorf("create %d: %v", i, err)
			return
		}
		keys = append(keys, res.Key)
	}
	for i := range 10 {
		write(i)
	}

	if err := c.net.Isolate(ctx, x.ID); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	t.Logf("%s (the client's first server) cut off from %s and %s", x.ID, majority[0].ID, majority[1].ID)
	for i := 10; i < 20; i++ {
		write(i)
	}

	// A write made on the majority after the cut: the client sees it only
	// once it follows a server there.
	var marker api.WriteResult
	if err := poll(ctx, convergeTimeout, func() (bool, string) {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		data, _ := api.EncodeValue(map[string]any{"marker": true})
		marker, err = majority[0].Client.Create(wctx, "markers", api.WriteRequest{Data: data})
		return err == nil, fmt.Sprint(err)
	}); err != nil {
		t.Fatalf("write on the majority after the cut: %v", err)
	}
	err = poll(ctx, switchTimeout, func() (bool, string) {
		_, gerr := db.Tree("markers").Get(marker.Key)
		return db.Online() && gerr == nil, fmt.Sprintf("online %v, marker %s: %v, err %v", db.Online(), marker.Key, gerr, db.Err())
	})
	if err != nil {
		t.Errorf("within %v of the cut the client does not follow a server of the majority: %v", switchTimeout, err)
	} else {
		t.Logf("client follows the majority %v after the cut", time.Since(cut).Round(time.Millisecond))
	}
	err = poll(ctx, drainTimeout, func() (bool, string) {
		return db.Pending() == 0, fmt.Sprintf("%d writes pending, online %v", db.Pending(), db.Online())
	})
	if err != nil {
		t.Errorf("within %v of the cut the client did not send its outbox: %v", drainTimeout, err)
	}
	for _, n := range majority {
		var missing []string
		for _, k := range keys {
			gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := n.Client.Get(gctx, "moves", k)
			cancel()
			if err != nil {
				missing = append(missing, fmt.Sprintf("%s (%v)", k, err))
			}
		}
		if len(missing) > 0 {
			t.Errorf("%s lacks %d of the %d records the client accepted, first %s", n.ID, len(missing), len(keys), missing[0])
		}
	}
	if conflicts, err := db.Conflicts(); err != nil || len(conflicts) > 0 {
		t.Errorf("client conflicts: %v, %v", conflicts, err)
	}
}
