package loadgen

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
	"sync"
	"sync/atomic"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
	"github.com/shelfdb/shelf/storage"
	"github.com/shelfdb/shelf/typed"
	bolt "go.etcd.io/bbolt"
)

// HTTPClient returns an HTTP client for conns concurrent requests to a
// node: it keeps that many connections alive, so a load measures the
// server rather than connection setup.
func HTTPClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
		MaxIdleConns:        conns + 8,
		MaxIdleConnsPerHost: conns + 8,
		IdleConnTimeout:     time.Minute,
	}}
}

// quiet is the logger of the embedded clients of a load.
var quiet = slog.New(slog.DiscardHandler)

// CreatesConfig shapes a load of creates through the HTTP API.
type CreatesConfig struct {
	Servers []string // node HTTP addresses; writer w sends to Servers[w%len]
	Tree    string
	Value   []byte // the record value (CBOR), see Value
	Writers int
	Total   int
}

// Creates creates cfg.Total records through the HTTP API (CBOR), each
// writer sticking to one node.
func Creates(ctx context.Context, cfg CreatesConfig) (Summary, error) {
	if len(cfg.Servers) == 0 {
		return Summary{}, fmt.Errorf("%w: no servers", ErrBadConfig)
	}
	clis := make([]*api.Client, len(cfg.Servers))
	for i, s := range cfg.Servers {
		hc := HTTPClient(cfg.Writers)
		defer hc.CloseIdleConnections() // the next load opens its own
		clis[i] = api.NewClient(s, hc)
	}
	return Run(ctx, Config{Writers: cfg.Writers, Total: cfg.Total}, func(ctx context.Context, w int) error {
		_, err := clis[w%len(clis)].Create(ctx, cfg.Tree, api.WriteRequest{Data: cfg.Value})
		return err
	})
}

// ErrNotAcked is an embedded client's create that came back pending: the
// cluster did not acknowledge it while the writer waited.
var ErrNotAcked = errors.New("loadgen: create still pending in the outbox (not acknowledged)")

// Wait says when a create of the outbox load counts.
type Wait string

const (
	// WaitApplied: each writer's Tree.Create returns once the cluster
	// applied the create and the client's replica too (closed loop).
	WaitApplied Wait = "applied"
	// WaitStored: writers create under client.NoWait (Tree.Create returns
	// once the create is in local.db); the clock stops when every client's
	// Flush returned, every create applied at the replicas.
	WaitStored Wait = "stored"
)

// OutboxConfig shapes a load of creates through embedded clients.
type OutboxConfig struct {
	Servers []string // client i follows Servers[i%len]
	Dir     string   // the clients' replicas go in temporary directories under Dir
	Tree    string
	Value   []byte
	Clients int  // embedded clients (client.DB)
	Writers int  // writer w creates through client w%Clients
	Total   int  //
	Wait    Wait // WaitApplied if empty
	// Logger receives the clients' logs (default: none).
	Logger *slog.Logger
}

// OutboxResult is the outcome of an outbox load. Its Summary counts the
// creates applied; Elapsed runs from the first create to the last one
// applied at its client's replica; the latencies are those of the
// Tree.Create calls (under WaitStored: until the create is in local.db).
type OutboxResult struct {
	Summary
	// Flush is, under WaitStored, the time from the last create's return
	// to the end of the last client's Flush (0 under WaitApplied).
	Flush time.Duration
}

// String is Summary's line, with the flush time under WaitStored.
func (r OutboxResult) String() string {
	if r.Flush == 0 {
		return r.Summary.String()
	}
	return r.Summary.String() + fmt.Sprintf("  last create -> flushed=%s ms", Ms(r.Flush))
}

// Outbox creates cfg.Total records through embedded clients: each create
// goes into its client's outbox, which sends them to the cluster in
// batches. Under WaitApplied a create counts when Tree.Create returns
// applied (not pending): the cluster acknowledged it and the client's
// replica applied it. Under WaitStored the writers create under
// client.NoWait, then every client's Flush waits until its creates are
// applied; a create counts if its Flush succeeded. The clients are opened
// and synced before the clock starts, and closed and removed after.
func Outbox(ctx context.Context, cfg OutboxConfig) (OutboxResult, error) {
	if len(cfg.Servers) == 0 || cfg.Clients <= 0 {
		return OutboxResult{}, fmt.Errorf("%w: %d servers, %d clients", ErrBadConfig, len(cfg.Servers), cfg.Clients)
	}
	switch cfg.Wait {
	case "":
		cfg.Wait = WaitApplied
	case WaitApplied, WaitStored:
	default:
		return OutboxResult{}, fmt.Errorf("%w: wait %q (applied or stored)", ErrBadConfig, cfg.Wait)
	}
	dbs := make([]*client.DB, cfg.Clients)
	for i := range dbs {
		db, closeDB, err := openClient(ctx, cfg.Dir, fmt.Sprintf("loadgen-%d", i), cfg.Writers, cfg.Servers[i%len(cfg.Servers)], rangeSize(cfg), cfg.Logger)
		if err != nil {
			return OutboxResult{}, fmt.Errorf("client %d: %w", i, err)
		}
		defer closeDB()
		dbs[i] = db
	}
	if cfg.Wait == WaitApplied {
		s, err := Run(ctx, Config{Writers: cfg.Writers, Total: cfg.Total}, func(ctx context.Context, w int) error {
			res, err := dbs[w%len(dbs)].Tree(cfg.Tree).Create(ctx, 0, cfg.Value)
			if err == nil && res.Pending {
				err = ErrNotAcked
			}
			return err
		})
		return OutboxResult{Summary: s}, err
	}
	perClient := make([]atomic.Int64, len(dbs)) // creates stored, per client
	start := time.Now()
	s, err := Run(ctx, Config{Writers: cfg.Writers, Total: cfg.Total}, func(ctx context.Context, w int) error {
		c := w % len(dbs)
		_, err := dbs[c].Tree(cfg.Tree).Create(client.NoWait(ctx), 0, cfg.Value)
		if err == nil {
			perClient[c].Add(1)
		}
		return err
	})
	if err != nil {
		return OutboxResult{Summary: s}, err
	}
	stored := time.Now()
	fctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	errs := make([]error, len(dbs))
	var wg sync.WaitGroup
	for i, db := range dbs {
		wg.Go(func() { errs[i] = db.Flush(fctx) })
	}
	wg.Wait()
	end := time.Now()
	for i, err := range errs {
		if err != nil {
			n := int(perClient[i].Load())
			s.Ops -= n
			s.Errors += n
			if s.FirstErr == nil {
				s.FirstErr = fmt.Errorf("client %d: flush: %w", i, err)
			}
		}
	}
	s.Elapsed = end.Sub(start)
	return OutboxResult{Summary: s, Flush: end.Sub(stored)}, ctx.Err()
}

// rangeSize is the key range an outbox load's client asks for at a time:
// enough ids for its share of the load at once, as an app that creates at
// a high rate would configure, so that a create never waits for a range
// (under NoWait the creates outrun the default range's refill).
func rangeSize(cfg OutboxConfig) uint64 {
	return uint64(max(1000, 2*cfg.Total/cfg.Clients))
}

// flushTimeout bounds the wait for the clients' outboxes at the end of a
// WaitStored load.
const flushTimeout = 5 * time.Minute

// openTimeout bounds opening and syncing an embedded client.
const openTimeout = 2 * time.Minute

// openClient opens an embedded client with a new replica in a temporary
// directory under dir, following server, and waits until it is synced.
// The returned func closes it and removes its directory.
//
// rangeSize is the client's Config.RangeSize (0: the default), log its
// logger (nil: none); configure, if given, changes the rest of its
// configuration before it opens (the reads mode's ReadCache).
func openClient(ctx context.Context, dir, name string, conns int, server string, rangeSize uint64, log *slog.Logger, configure ...func(*client.Config)) (*client.DB, func(), error) {
	if log == nil {
		log = quiet
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	d, err := os.MkdirTemp(dir, name+"-")
	if err != nil {
		return nil, nil, err
	}
	octx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	cfg := client.Config{Dir: d, Servers: []string{server}, Name: name, HTTPClient: HTTPClient(conns), Logger: log, RangeSize: rangeSize}
	for _, f := range configure {
		f(&cfg)
	}
	db, err := client.Open(octx, cfg)
	if err != nil {
		os.RemoveAll(d)
		return nil, nil, err
	}
	closeDB := func() { db.Close(); os.RemoveAll(d) }
	if err := db.WaitSynced(octx); err != nil {
		closeDB()
		return nil, nil, err
	}
	return db, closeDB, nil
}

// Preload creates n records with value val in tree as fast as the API
// allows: batches of batch operator creates, from writers concurrent
// writers spread over servers. It returns the load's summary (one
// operation per batch).
func Preload(ctx context.Context, servers []string, tree string, val []byte, n, writers, batch int) (Summary, error) {
	if len(servers) == 0 || batch <= 0 || batch > api.MaxBatchOps {
		return Summary{}, fmt.Errorf("%w: %d servers, batch %d (1..%d)", ErrBadConfig, len(servers), batch, api.MaxBatchOps)
	}
	if n <= 0 {
		return Summary{}, nil
	}
	clis := make([]*api.Client, len(servers))
	for i, s := range servers {
		hc := HTTPClient(writers)
		defer hc.CloseIdleConnections()
		clis[i] = api.NewClient(s, hc)
	}
	batches := (n + batch - 1) / batch
	var next atomic.Int64
	return Run(ctx, Config{Writers: writers, Total: batches, OpTimeout: time.Minute}, func(ctx context.Context, w int) error {
		b := int(next.Add(1) - 1)
		size := min(batch, n-b*batch)
		ops := make([]api.BatchOp, size)
		for i := range ops {
			ops[i] = api.BatchOp{Op: "create", Tree: tree, Data: val}
		}
		res, err := clis[w%len(clis)].Batch(ctx, api.BatchRequest{Ops: ops})
		if err != nil {
			return err
		}
		for _, it := range res.Results {
			if it.Err != nil {
				return it.Err
			}
		}
		return nil
	})
}

// Part is the struct of the reads load: the shape of the typed
// benchmarks' records (about 50 bytes of CBOR).
type Part struct {
	Name string  `codec:"name"`
	Qty  int     `codec:"qty"`
	Desc string  `codec:"desc"`
	Cost float64 `codec:"cost"`
}

// ReadsConfig shapes the local read load.
type ReadsConfig struct {
	Servers     []string // preload through these; the client follows Servers[0]
	Dir         string   // the client's replica and the raw bbolt file go under Dir
	Tree        string
	Records     int
	SkipPreload bool // the tree already holds Part records
	Readers     int
	Duration    time.Duration // of each of the two measurements, in all
	// ReadCache is the client's Config.ReadCache (0: its default;
	// negative: off).
	ReadCache int64
}

// ReadsResult compares typed Get with the floor.
type ReadsResult struct {
	Records     int     // records read from (the tree's count in the replica)
	TypedPerSec float64 // typed.Tree.Get by key, all readers together
	TypedNs     float64 // ns per Get per reader
	RawPerSec   float64 // raw bbolt Get plus api.Unmarshal of the same bytes into the same struct
	RawNs       float64
	// Cache is the client's read cache at the end (its hits and misses
	// count the warm-up pass too).
	Cache client.ReadCacheStats
}

// Ratio is typed over raw time per read.
func (r ReadsResult) Ratio() float64 {
	if r.RawNs == 0 {
		return 0
	}
	return r.TypedNs / r.RawNs
}

// Reads measures local typed reads: a replica holding the tree's records
// answers typed.Tree[Part].Get by key from cfg.Readers goroutines; the
// same values, copied into a plain bbolt file (one bucket, 8-byte
// big-endian id keys), are read the same way with a bbolt Get plus a CBOR
// decode: the floor. The two alternate in rounds for cfg.Duration each in
// all; the result holds the medians of the rounds.
func Reads(ctx context.Context, cfg ReadsConfig) (ReadsResult, error) {
	if len(cfg.Servers) == 0 || cfg.Readers <= 0 || cfg.Duration <= 0 {
		return ReadsResult{}, fmt.Errorf("%w: %d servers, %d readers, duration %v", ErrBadConfig, len(cfg.Servers), cfg.Readers, cfg.Duration)
	}
	if !cfg.SkipPreload {
		val, err := api.Marshal(Part{Name: "R1", Qty: 10, Desc: "resistor 10k 0603 1%", Cost: 0.002})
		if err != nil {
			return ReadsResult{}, err
		}
		s, err := Preload(ctx, cfg.Servers, cfg.Tree, val, cfg.Records, 8, 500)
		if err == nil && s.Errors > 0 {
			err = fmt.Errorf("preload: %d batches failed, first: %w", s.Errors, s.FirstErr)
		}
		if err != nil {
			return ReadsResult{}, err
		}
	}
	db, closeDB, err := openClient(ctx, cfg.Dir, "loadgen-reads", 2, cfg.Servers[0], 0, nil,
		func(c *client.Config) { c.ReadCache = cfg.ReadCache })
	if err != nil {
		return ReadsResult{}, err
	}
	defer closeDB()
	tree, err := typed.Open[Part](ctx, db, cfg.Tree)
	if err != nil {
		return ReadsResult{}, err
	}
	var (
		keys    []typed.Key[Part]
		rawKeys [][]byte // the same keys as the raw file has them, encoded before the clock starts
	)
	// The replica's bbolt options: the floor differs from a typed Get only
	// in Shelf's own work.
	raw, err := bolt.Open(filepath.Join(db.Dir(), "loadgen-raw.db"), 0o600, storage.BoltOptions(storage.Options{NoSync: true}))
	if err != nil {
		return ReadsResult{}, err
	}
	defer raw.Close()
	bucket := []byte("records")
	err = raw.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucket)
		if err != nil {
			return err
		}
		for r := range db.Tree(cfg.Tree).All() {
			keys = append(keys, typed.KeyOf[Part](r.Key))
			rawKeys = append(rawKeys, binary.BigEndian.AppendUint64(nil, r.Key.ID))
			if err := b.Put(rawKeys[len(rawKeys)-1], r.Data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return ReadsResult{}, fmt.Errorf("raw bbolt copy: %w", err)
	}
	if len(keys) == 0 {
		return ReadsResult{}, fmt.Errorf("%w: tree %q has no records to read", ErrBadConfig, cfg.Tree)
	}
	typedRead := func(i int) error {
		_, err := tree.Get(keys[i])
		return err
	}
	rawRead := func(i int) error {
		return raw.View(func(tx *bolt.Tx) error {
			var p Part
			return api.Unmarshal(tx.Bucket(bucket).Get(rawKeys[i]), &p)
		})
	}
	for i := range keys { // one untimed pass each: both start with warm pages and caches
		if err := errors.Join(typedRead(i), rawRead(i)); err != nil {
			return ReadsResult{}, fmt.Errorf("warm-up read: %w", err)
		}
	}
	// Alternate the two in readRounds rounds and keep the medians, so that
	// a change of load on the machine hits both alike.
	var tRate, tNs, rRate, rNs []float64
	for range readRounds {
		rate, ns, err := timeReads(ctx, cfg.Readers, cfg.Duration/readRounds, len(keys), typedRead)
		if err != nil {
			return ReadsResult{}, fmt.Errorf("typed Get: %w", err)
		}
		tRate, tNs = append(tRate, rate), append(tNs, ns)
		if rate, ns, err = timeReads(ctx, cfg.Readers, cfg.Duration/readRounds, len(keys), rawRead); err != nil {
			return ReadsResult{}, fmt.Errorf("raw bbolt Get: %w", err)
		}
		rRate, rNs = append(rRate, rate), append(rNs, ns)
	}
	return ReadsResult{Records: len(keys), TypedPerSec: Median(tRate), TypedNs: Median(tNs), RawPerSec: Median(rRate), RawNs: Median(rNs),
		Cache: db.ReadCacheStats()}, nil
}

// readRounds is how many times Reads alternates typed and raw reads.
const readRounds = 5

// timeReads runs read(i) over keys 0..n-1 (each reader starting
// elsewhere) from readers goroutines for d, and returns reads per second
// and nanoseconds per read per reader.
func timeReads(ctx context.Context, readers int, d time.Duration, n int, read func(i int) error) (float64, float64, error) {
	var (
		stop  atomic.Bool
		total atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	start := time.Now()
	for r := range readers {
		wg.Go(func() {
			i, count := r*n/readers, 0
			for ; !stop.Load(); count++ {
				if err := read(i); err != nil {
					mu.Lock()
					first = cmpOr(first, err)
					mu.Unlock()
					stop.Store(true)
					break
				}
				if i++; i == n {
					i = 0
				}
			}
			total.Add(int64(count))
		})
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	if first != nil {
		return 0, 0, first
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	c := float64(total.Load())
	if c == 0 {
		return 0, 0, errors.New("no read finished")
	}
	return c / elapsed.Seconds(), float64(elapsed.Nanoseconds()) * float64(readers) / c, nil
}

// cmpOr returns the first non-nil error.
func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// EventsConfig shapes the commit-to-event load.
type EventsConfig struct {
	Write  string // the node the writes go to
	Follow string // the node the measuring client follows (another one)
	Dir    string
	Tree   string
	Value  []byte
	Rate   float64 // writes per second
	Total  int
}

// EventsResult holds, for every write, the time until its event reached
// the client that follows another node: from the write's send, from its
// acknowledgment to the writer (negative when the event came first), and
// from the leader's stamp (api.Event.Time: the time the leader put in the
// command when it took the write, before raft committed it, so this
// includes the leader's queue and the commit itself).
type EventsResult struct {
	FromSend, FromAck, FromStamp Summary
	Failures                     Failures
	Missing                      int     // acknowledged writes whose event never came
	Achieved                     float64 // acknowledged writes per second, first send to last acknowledgment
}

// eventWait bounds the wait for the last events after the last write.
const eventWait = 30 * time.Second

// Events writes cfg.Total records at cfg.Rate through cfg.Write while an
// embedded client following cfg.Follow subscribes to the tree's events,
// and measures, for each write, when its created event arrived.
func Events(ctx context.Context, cfg EventsConfig) (EventsResult, error) {
	var res EventsResult
	if cfg.Rate <= 0 || cfg.Total <= 0 {
		return res, fmt.Errorf("%w: rate %v, total %d", ErrBadConfig, cfg.Rate, cfg.Total)
	}
	db, closeDB, err := openClient(ctx, cfg.Dir, "loadgen-events", 2, cfg.Follow, 0, nil)
	if err != nil {
		return res, err
	}
	defer closeDB()
	type times struct{ sent, acked, arrived, stamped time.Time }
	var (
		mu   sync.Mutex
		byID = map[uint64]*times{}
		got  = make(chan struct{}, cfg.Total)
	)
	entry := func(id uint64) *times {
		t := byID[id]
		if t == nil {
			t = &times{}
			byID[id] = t
		}
		return t
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs := db.Events(sctx, cfg.Tree)
	var wg sync.WaitGroup
	wg.Go(func() {
		for e := range evs {
			if e.Type != api.EventCreated {
				continue
			}
			now := time.Now()
			mu.Lock()
			t := entry(e.Key.ID)
			t.arrived, t.stamped = now, e.Time
			mu.Unlock()
			select {
			case got <- struct{}{}:
			default:
			}
		}
	})
	defer wg.Wait() // runs after the cancel below: the channel closes
	defer cancel()
	hc := HTTPClient(64)
	defer hc.CloseIdleConnections()
	w := api.NewClient(cfg.Write, hc)
	var acked atomic.Int64
	res.Failures, err = Paced(ctx, cfg.Rate, cfg.Total, func(ctx context.Context, i int) error {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		sent := time.Now()
		r, err := w.Create(wctx, cfg.Tree, api.WriteRequest{Data: cfg.Value})
		if err != nil {
			return err
		}
		now := time.Now()
		mu.Lock()
		t := entry(r.Key.ID)
		t.sent, t.acked = sent, now
		mu.Unlock()
		acked.Add(1)
		return nil
	})
	if err != nil {
		return res, err
	}
	// Wait for the events of the acknowledged writes, within a bound.
	deadline := time.NewTimer(eventWait)
	defer deadline.Stop()
wait:
	for {
		mu.Lock()
		done := 0
		for _, t := range byID {
			if !t.sent.IsZero() && !t.arrived.IsZero() {
				done++
			}
		}
		mu.Unlock()
		if int64(done) >= acked.Load() {
			break
		}
		select {
		case <-got:
		case <-deadline.C:
			res.Missing = int(acked.Load()) - done
			break wait
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	mu.Lock()
	var fromSend, fromAck, fromStamp []time.Duration
	var first, last time.Time
	for _, t := range byID {
		if !t.sent.IsZero() && (first.IsZero() || t.sent.Before(first)) {
			first = t.sent
		}
		if t.acked.After(last) {
			last = t.acked
		}
		if t.sent.IsZero() || t.arrived.IsZero() {
			continue
		}
		fromSend = append(fromSend, t.arrived.Sub(t.sent))
		fromAck = append(fromAck, t.arrived.Sub(t.acked))
		fromStamp = append(fromStamp, t.arrived.Sub(t.stamped))
	}
	mu.Unlock()
	elapsed := last.Sub(first)
	if elapsed > 0 {
		res.Achieved = float64(acked.Load()) / elapsed.Seconds()
	}
	res.FromSend = Summarize(fromSend, res.Failures.Count, res.Failures.First, elapsed)
	res.FromAck = Summarize(fromAck, res.Failures.Count, res.Failures.First, elapsed)
	res.FromStamp = Summarize(fromStamp, res.Failures.Count, res.Failures.First, elapsed)
	return res, nil
}

// SyncResult is a new replica's full sync.
type SyncResult struct {
	Records  int64         // records in the tree as the synced replica has them
	Elapsed  time.Duration // client.Open until WaitSynced returned
	Preload  Summary       // the preload (one op per batch), zero when skipped
	Preloads int           // records the preload sent (see Preload.Errors for failed batches)
}

// SyncConfig shapes the full-sync measurement.
type SyncConfig struct {
	Servers     []string // preload through these; the new client follows Servers[0]
	Dir         string
	Tree        string
	Value       []byte
	Records     int
	SkipPreload bool
	Writers     int // preload writers
	Batch       int // preload creates per request
}

// Sync preloads cfg.Records records (unless cfg.SkipPreload), then times
// a new embedded client from Open to fully synced.
func Sync(ctx context.Context, cfg SyncConfig) (SyncResult, error) {
	var res SyncResult
	if len(cfg.Servers) == 0 {
		return res, fmt.Errorf("%w: no servers", ErrBadConfig)
	}
	if !cfg.SkipPreload {
		// Failed batches (a leader change on a loaded machine) do not stop
		// the measurement: the sync is timed with whatever the tree holds,
		// and Preload.Errors tells how many batches failed.
		s, err := Preload(ctx, cfg.Servers, cfg.Tree, cfg.Value, cfg.Records, cfg.Writers, cfg.Batch)
		if err != nil {
			return res, err
		}
		res.Preload, res.Preloads = s, cfg.Records
	}
	start := time.Now()
	db, closeDB, err := openClient(ctx, cfg.Dir, "loadgen-sync", 2, cfg.Servers[0], 0, nil)
	if err != nil {
		return res, err
	}
	res.Elapsed = time.Since(start)
	defer closeDB()
	trees, err := db.Trees()
	if err != nil {
		return res, err
	}
	i := slices.IndexFunc(trees, func(t api.Tree) bool { return t.Name == cfg.Tree })
	if i >= 0 {
		res.Records = int64(trees[i].Records)
	}
	return res, nil
}
