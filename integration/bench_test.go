package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

// BenchmarkCreate3Node measures operator creates on a 3-node cluster
// (started once for both sub-benchmarks) with 1 and 64 concurrent
// writers. Each writer has its own client, pointed round-robin at the
// three nodes, so two thirds of the writers go through a follower that
// forwards to the leader. Besides ns/op it reports creates/s.
func BenchmarkCreate3Node(b *testing.B) {
	skipShort(b)
	nodes := startCluster(b, 3)
	data, err := api.EncodeValue(map[string]any{"n": 1, "name": "bench"})
	if err != nil {
		b.Fatal(err)
	}
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			clients := make([]*api.Client, writers)
			for i := range clients {
				hc := &http.Client{
					Timeout: 2 * requestTimeout,
					Transport: &http.Transport{
						Proxy:               nil,
						DialContext:         (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
						MaxIdleConnsPerHost: 2,
					},
				}
				clients[i] = api.NewClient(nodes[i%len(nodes)].HTTP, hc)
			}
			var (
				next     atomic.Int64
				failed   atomic.Int64
				firstErr atomic.Pointer[error]
				wg       sync.WaitGroup
			)
			b.ResetTimer()
			for _, c := range clients {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
						_, err := c.Create(ctx, "bench", api.WriteRequest{Data: data})
						cancel()
						if err != nil {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, &err)
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d of %d creates failed, first: %v", n, b.N, *firstErr.Load())
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
		})
	}
}
