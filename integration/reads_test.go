package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

// TestFollowerReadsSeeAcknowledgedWrites writes through the leader and
// reads the same record through a follower at once, 200 times: a read
// with the default consistency always sees the acknowledged write. The
// same with ?consistency=stale is counted and logged (it may miss).
func TestFollowerReadsSeeAcknowledgedWrites(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	leader := waitLeader(t, nodes)
	var followers []*Node
	for _, n := range nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	ctx := context.Background()
	lc := api.NewClient(leader.HTTP, testHTTP)
	const rounds = 200
	run := func(cons api.Consistency) (stale int) {
		for i := range rounds {
			v := value(t, int64(i))
			cctx, cancel := context.WithTimeout(ctx, requestTimeout)
			res, err := lc.Create(cctx, "reads", api.WriteRequest{Data: v})
			cancel()
			if err != nil {
				t.Fatalf("create %d through leader %s: %v", i, leader.ID, err)
			}
			fc := api.NewClient(followers[i%len(followers)].HTTP, testHTTP).WithConsistency(cons)
			cctx, cancel = context.WithTimeout(ctx, requestTimeout)
			rec, err := fc.Get(cctx, "reads", res.Key)
			cancel()
			switch {
			case errors.Is(err, api.ErrNotFound):
				stale++
			case err != nil:
				t.Fatalf("read %d through follower: %v", i, err)
			case string(rec.Data) != string(v):
				stale++
			}
		}
		return stale
	}
	if stale := run(api.Linearizable); stale != 0 {
		t.Errorf("%d of %d linearizable reads through a follower missed the write acknowledged just before", stale, rounds)
	}
	t.Logf("stale reads through a follower right after the write: %d of %d", run(api.Stale), rounds)
}

// TestCutOffNodeRefusesLinearizableReads: a node that cannot reach a
// leader (the two others paused) answers a linearizable read no_leader,
// never with its old state; a stale read still answers, and says at
// which index.
func TestCutOffNodeRefusesLinearizableReads(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	ctx := context.Background()
	res, err := create(nodes[0], "cut", value(t, 1))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	waitApplied(t, nodes, res.Index)
	lone := nodes[2]
	for _, n := range nodes[:2] {
		n.Pause()
	}
	t.Cleanup(func() {
		for _, n := range nodes[:2] {
			n.Resume()
		}
	})
	c := api.NewClient(lone.HTTP, testHTTP)
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	_, err = c.Get(cctx, "cut", res.Key)
	cancel()
	if !errors.Is(err, api.ErrNoLeader) && !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("linearizable read on a node cut off from the others: got %v, want no_leader or unavailable", err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+lone.HTTP+"/v1/trees/cut/records/"+strconv.FormatUint(res.Key.ID, 10)+"?consistency=stale", nil)
	resp, err := testHTTP.Do(req)
	if err != nil {
		t.Fatalf("stale read: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stale read on the cut-off node: status %s", resp.Status)
	}
	if idx, err := strconv.ParseUint(resp.Header.Get(api.IndexHeader), 10, 64); err != nil || idx < res.Index {
		t.Fatalf("stale read's %s = %q, want an index >= %d", api.IndexHeader, resp.Header.Get(api.IndexHeader), res.Index)
	}
}

// BenchmarkReads3Node measures reads of one record through a follower of
// a three-node cluster, linearizable (the default) and stale, with 16
// concurrent readers: reads/s and latency percentiles.
func BenchmarkReads3Node(b *testing.B) {
	skipShort(b)
	nodes := startCluster(b, 3)
	leader := waitLeader(b, nodes)
	res, err := create(leader, "bench", value(b, 1))
	if err != nil {
		b.Fatal(err)
	}
	waitApplied(b, nodes, res.Index)
	follower := nodes[0]
	if follower == leader {
		follower = nodes[1]
	}
	for _, cons := range []api.Consistency{api.Linearizable, api.Stale} {
		for _, at := range []*Node{leader, follower} {
			role := "follower"
			if at == leader {
				role = "leader"
			}
			b.Run(fmt.Sprintf("%s/%s", cons, role), func(b *testing.B) {
				c := api.NewClient(at.HTTP, testHTTP).WithConsistency(cons)
				var (
					mu   sync.Mutex
					lats []time.Duration
					next = make(chan struct{})
					wg   sync.WaitGroup
				)
				b.ResetTimer()
				for range 16 {
					wg.Go(func() {
						var mine []time.Duration
						for range next {
							start := time.Now()
							ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
							_, err := c.Get(ctx, "bench", res.Key)
							cancel()
							if err != nil {
								b.Error(err)
								return
							}
							mine = append(mine, time.Since(start))
						}
						mu.Lock()
						lats = append(lats, mine...)
						mu.Unlock()
					})
				}
				for range b.N {
					next <- struct{}{}
				}
				close(next)
				wg.Wait()
				b.StopTimer()
				slices.Sort(lats)
				if len(lats) > 0 {
					b.ReportMetric(float64(len(lats))/b.Elapsed().Seconds(), "reads/s")
					b.ReportMetric(float64(lats[len(lats)/2].Microseconds()), "p50-µs")
					b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds()), "p99-µs")
				}
			})
		}
	}
}
