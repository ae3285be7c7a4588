package client_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/fsm"
	"github.com/shelfdb/shelf/internal/httpapi"
	"github.com/shelfdb/shelf/internal/loadgen"
	"github.com/shelfdb/shelf/storage"
	"github.com/shelfdb/shelf/typed"
	"github.com/ugorji/go/codec"
	bolt "go.etcd.io/bbolt"
)

type benchPart struct {
	Name string  `codec:"name"`
	Qty  int     `codec:"qty"`
	Desc string  `codec:"desc"`
	Cost float64 `codec:"cost"`
}

var benchValue = func() []byte {
	b, err := api.Marshal(benchPart{Name: "R1", Qty: 10, Desc: "resistor 10k 0603 1%", Cost: 0.002})
	if err != nil {
		panic(err)
	}
	return b
}()

// benchServer starts one in-process node (NoSync: the benchmarks measure
// the client, not the server's disk) serving the API on loopback.
func benchServer(b *testing.B) (*cluster.Node, string) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	n, err := cluster.New(cluster.Config{NodeID: "b1", DataDir: b.TempDir(), RaftAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0",
		HTTPAddr: ln.Addr().String(), Bootstrap: true, NoSync: true, CommitTimeout: 5 * time.Millisecond,
		HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond, LeaderLeaseTimeout: 50 * time.Millisecond,
		SnapshotThreshold: 1 << 40, Logger: discard()})
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: httpapi.New(httpapi.Config{Node: n, Logger: discard()})}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { srv.Close(); n.Shutdown() })
	waitFor(b, "bench server", func() bool { return n.ClusterID() != "" && n.IsLeader() })
	return n, ln.Addr().String()
}

// fill creates n records of value in tree through raft, 256 to a batch
// from four writers.
func fill(b *testing.B, node *cluster.Node, tree string, n int, value []byte) {
	b.Helper()
	const batch = 256
	var wg sync.WaitGroup
	work := make(chan int)
	for range 4 {
		wg.Go(func() {
			for k := range work {
				cmds := make([]*fsm.Command, k)
				for i := range cmds {
					cmds[i] = &fsm.Command{Op: fsm.OpCreate, Tree: tree, Data: value}
				}
				res, err := node.ApplyMany(context.Background(), cmds)
				for i := 0; err == nil && i < len(res); i++ {
					err = res[i].Error()
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	for done := 0; done < n; done += batch {
		work <- min(batch, n-done)
	}
	close(work)
	wg.Wait()
}

// bigValue is a part of about 200 bytes, the record size of the issue's
// full sync target.
var bigValue = func() []byte {
	b, err := api.Marshal(benchPart{Name: "R1", Qty: 10, Desc: strings.Repeat("resistor 10k 0603 1% ", 8), Cost: 0.002})
	if err != nil {
		panic(err)
	}
	return b
}()

func benchOpen(b *testing.B, addr string) *client.DB { b.Helper(); return benchOpenWith(b, addr, nil) }

// benchOpenWith is benchOpen with a change to the configuration (nil: none).
func benchOpenWith(b *testing.B, addr string, configure func(*client.Config)) *client.DB {
	b.Helper()
	ctx := context.Background()
	cfg := client.Config{Dir: b.TempDir(), Servers: []string{addr}, Name: "bench", PollWait: time.Second, Logger: discard()}
	if configure != nil {
		configure(&cfg)
	}
	db, err := client.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if err := db.WaitSynced(ctx); err != nil {
		b.Fatal(err)
	}
	return db
}

// localGetRecords is the number of records the local read benchmarks
// look up, round robin.
const localGetRecords = 2000

// BenchmarkTypedGet measures local reads through a client replica of
// localGetRecords parts: typed.Get (the lookup, the pending overlay and
// the decode into the struct), and the untyped client.View and client.Get
// each followed by the same decode. BenchmarkFloorGet is the floor the
// issue compares typed.Get with.
//
// Each runs with the read cache as configured by default (the records
// fit: after the first round every read is a hit, no bbolt transaction),
// with the cache off (-nocache: every read is a bbolt read, as before the
// cache) and with a cache of 64 KiB, a seventh of what the records need
// (-thrash: nearly every read misses, reads bbolt and stores a copy,
// evicting another). The -parallel ones read from GOMAXPROCS goroutines
// (run them with -cpu 1,2).
func BenchmarkTypedGet(b *testing.B) {
	node, addr := benchServer(b)
	const n = localGetRecords
	fill(b, node, "parts", n, benchValue)
	for _, c := range []struct {
		suffix string
		cache  int64
	}{{"", 0}, {"-nocache", -1}, {"-thrash", 64 << 10}} {
		db := benchOpenWith(b, addr, func(cfg *client.Config) { cfg.ReadCache = c.cache })
		benchTypedGet(b, db, c.suffix)
		if c.suffix != "-thrash" {
			continue
		}
		if st := db.ReadCacheStats(); st.Hits > st.Misses/4 {
			b.Fatalf("thrash: %+v, want nearly every read to miss", st)
		}
	}
}

func benchTypedGet(b *testing.B, db *client.DB, suffix string) {
	const n = localGetRecords
	keys := make([]api.Key, 0, n)
	for r := range db.Tree("parts").All() {
		keys = append(keys, r.Key)
	}
	parts, err := typed.Open[benchPart](context.Background(), db, "parts")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("typed.Get"+suffix, func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			p, err := parts.Get(typed.KeyOf[benchPart](keys[i%n]))
			if err != nil || p.Name != "R1" {
				b.Fatal(p, err)
			}
		}
	})
	// The same from GOMAXPROCS goroutines. cpu-ns/op is the process's CPU
	// time per read: readers that contend for a lock or a cache line
	// spend more of it per read, whatever else the machine runs.
	b.Run("typed.Get-parallel"+suffix, func(b *testing.B) {
		b.ReportAllocs()
		var next atomic.Uint64
		c0, cpuOK := processCPU()
		defer func() {
			if c1, _ := processCPU(); cpuOK {
				b.ReportMetric(float64(c1-c0)/float64(b.N), "cpu-ns/op")
			}
		}()
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(1)) * 7919 // readers at different records
			for ; pb.Next(); i++ {
				p, err := parts.Get(typed.KeyOf[benchPart](keys[i%n]))
				if err != nil || p.Name != "R1" {
					b.Error(p, err)
					return
				}
			}
		})
	})
	// typed.Get against the floor in one process, alternating: a round
	// is n typed reads, then n floor reads (each timed as a block); a
	// change of load on the machine hits both alike. It reports the
	// medians over the rounds: ns per read of each and their ratio, and
	// (on Linux) the process's CPU time per read of each, which a busy
	// machine does not inflate as it does the wall time (-cpu 1: the
	// reads, the GC and the idle in-process server share one P).
	b.Run("vs-floor"+suffix, func(b *testing.B) {
		floor := floorReader(b, n)
		var typedNs, floorNs, ratio, typedCPU, floorCPU []float64
		for b.Loop() {
			c0, cpuOK := processCPU()
			start := time.Now()
			for i := range n {
				if p, err := parts.Get(typed.KeyOf[benchPart](keys[i])); err != nil || p.Name != "R1" {
					b.Fatal(p, err)
				}
			}
			mid := time.Now()
			c1, _ := processCPU()
			for i := range n {
				if p, err := floor(i); err != nil || p.Name != "R1" {
					b.Fatal(p, err)
				}
			}
			t, f := float64(mid.Sub(start))/n, float64(time.Since(mid))/n
			typedNs, floorNs, ratio = append(typedNs, t), append(floorNs, f), append(ratio, t/f)
			if c2, _ := processCPU(); cpuOK {
				typedCPU, floorCPU = append(typedCPU, float64(c1-c0)/n), append(floorCPU, float64(c2-c1)/n)
			}
		}
		b.ReportMetric(loadgen.Median(typedNs), "typed-ns/read")
		b.ReportMetric(loadgen.Median(floorNs), "floor-ns/read")
		b.ReportMetric(loadgen.Median(ratio), "x-floor")
		if len(typedCPU) > 0 {
			b.ReportMetric(loadgen.Median(typedCPU), "typed-cpu-ns/read")
			b.ReportMetric(loadgen.Median(floorCPU), "floor-cpu-ns/read")
		}
	})
	b.Run("client.View+decode"+suffix, func(b *testing.B) {
		t := db.Tree("parts")
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			var p benchPart
			if err := t.View(keys[i%n], func(r *client.Record) error { return api.Unmarshal(r.Data, &p) }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("client.Get+decode"+suffix, func(b *testing.B) {
		t := db.Tree("parts")
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			r, err := t.Get(keys[i%n])
			if err != nil {
				b.Fatal(err)
			}
			var p benchPart
			if err := api.Unmarshal(r.Data, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFloorGet is the floor for a local typed read (see floorReader).
func BenchmarkFloorGet(b *testing.B) {
	const n = localGetRecords
	read := floorReader(b, n)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if p, err := read(i % n); err != nil || p.Name != "R1" {
			b.Fatal(p, err)
		}
	}
}

// floorReader writes n copies of benchValue to a raw bbolt file and
// returns the floor's read of the i-th: a bbolt Get, in its own read
// transaction, of the value bytes under a 12-byte key built per call
// (id i+1, revision 1, as the replica's keys), plus a codec decode into
// the same struct with a reused decoder. The file has the replica's
// bbolt options (storage.BoltOptions: statistics off), so the floor is
// as fast as bbolt is made to be in Shelf. Not safe for concurrent use.
func floorReader(b *testing.B, n int) func(i int) (benchPart, error) {
	b.Helper()
	raw, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, storage.BoltOptions(storage.Options{NoSync: true}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { raw.Close() })
	kb := func(i int) []byte {
		return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(make([]byte, 0, 12), uint64(i+1)), 1)
	}
	if err := raw.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucket([]byte("parts"))
		for i := range n {
			if err == nil {
				err = bk.Put(kb(i), benchValue)
			}
		}
		return err
	}); err != nil {
		b.Fatal(err)
	}
	dec := codec.NewDecoderBytes(nil, api.CBOR)
	return func(i int) (benchPart, error) {
		var p benchPart
		err := raw.View(func(tx *bolt.Tx) error {
			dec.ResetBytes(tx.Bucket([]byte("parts")).Get(kb(i)))
			return dec.Decode(&p)
		})
		return p, err
	}
}

// BenchmarkFullSync measures a new client catching up with a cluster of
// N records of about 200 bytes: "snapshot" is a fresh replica
// (client.Open on an empty directory until WaitSynced: snapshot download
// and restore), "stream" a replica that follows the log while the records
// are written (apply throughput of the log stream). SHELF_BENCH_1M adds
// N = 1,000,000 (the target: <= 3 s); SHELF_BENCH_LOG=1 prints
// the client's log (the restore's phases).
func BenchmarkFullSync(b *testing.B) {
	sizes := []int{100_000}
	if os.Getenv("SHELF_BENCH_1M") != "" {
		sizes = append(sizes, 1_000_000)
	}
	logger := discard()
	if os.Getenv("SHELF_BENCH_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("snapshot/records=%d", n), func(b *testing.B) {
			node, addr := benchServer(b)
			fill(b, node, "parts", n, bigValue)
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				db, err := client.Open(ctx, client.Config{Dir: b.TempDir(), Servers: []string{addr}, Name: "bench", PollWait: time.Second, Logger: logger})
				if err == nil {
					err = db.WaitSynced(ctx)
				}
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(time.Since(start).Seconds(), "s/sync")
				b.ReportMetric(float64(n)/time.Since(start).Seconds(), "records/s")
				db.Close()
			}
		})
		b.Run(fmt.Sprintf("stream/records=%d", n), func(b *testing.B) {
			node, addr := benchServer(b)
			for b.Loop() {
				b.StopTimer()
				db := benchOpen(b, addr)
				b.StartTimer()
				start := time.Now()
				fill(b, node, "parts", n, bigValue)
				if err := db.WaitSynced(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(n)/time.Since(start).Seconds(), "records/s")
				db.Close()
			}
		})
	}
}

// BenchmarkCommitToEvent measures the time from a write's commit (the
// leader's time in the entry) to its event reaching a subscriber of
// another client, at a steady 200 writes/s. It reports p50 and p99.
func BenchmarkCommitToEvent(b *testing.B) {
	node, addr := benchServer(b)
	sub := benchOpen(b, addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs := sub.Events(ctx, "parts")
	var lat []time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range evs {
			if e.Type == api.EventCreated {
				lat = append(lat, time.Since(e.Time))
				if len(lat) == b.N {
					return
				}
			}
		}
	}()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < b.N; i++ {
		<-tick.C
		res, err := node.Apply(ctx, &fsm.Command{Op: fsm.OpCreate, Tree: "parts", Data: benchValue})
		if err != nil || res.Err != nil {
			b.Fatal(err, res.Error())
		}
	}
	<-done
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// switchable is an HTTP transport that can be cut, to take a client
// offline without stopping the server.
type switchable struct{ on atomic.Bool }

func (s *switchable) RoundTrip(r *http.Request) (*http.Response, error) {
	if !s.on.Load() {
		return nil, errors.New("network cut by the benchmark")
	}
	return http.DefaultTransport.RoundTrip(r)
}

// BenchmarkOutboxFlush measures how fast creates made offline reach the
// cluster once it is back (creates/s; the outbox sends them in batches).
// SHELF_BENCH_OUTBOX sets the number of creates (default 2000).
func BenchmarkOutboxFlush(b *testing.B) {
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("SHELF_BENCH_OUTBOX")); err == nil && v > 0 {
		n = v
	}
	_, addr := benchServer(b)
	ctx := context.Background()
	net := &switchable{}
	net.on.Store(true)
	db, err := client.Open(ctx, client.Config{Dir: b.TempDir(), Servers: []string{addr}, Name: "bench",
		RangeSize: uint64(min(n, fsm.MaxRangeSize)), Reserve: uint64(n), PollWait: 200 * time.Millisecond,
		HTTPClient: &http.Client{Transport: net}, Logger: discard()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for b.Loop() {
		b.StopTimer()
		waitFor(b, "ids for the offline creates", func() bool { a, _ := db.IDsAvailable(); return a >= uint64(n) })
		net.on.Store(false)
		waitFor(b, "offline", func() bool { return !db.Online() })
		start := time.Now()
		for range n {
			res, err := db.Tree("parts").Create(ctx, 0, benchValue)
			if err != nil || !res.Pending {
				b.Fatal(res, err)
			}
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "offline-creates/s")
		net.on.Store(true) // the client reconnects after its backoff (up to 5s)
		waitFor(b, "online", func() bool { return db.Online() })
		b.StartTimer()
		start = time.Now()
		waitFor(b, "flush", func() bool { return db.Pending() == 0 })
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "flushed/s")
	}
}
