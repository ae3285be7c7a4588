package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
	"github.com/shelfdb/shelf/internal/testlog"
)

// Shape of the workload.
const (
	tree          = "faults"
	httpWorkers   = 4
	embedded      = 2
	initialRecs   = 4 // created before the faults
	hotRecs       = 4 // the latest records, where borrows race
	opTimeout     = 4 * time.Second
	thinkTime     = 15 * time.Millisecond // between one worker's operations: keeps the 2 cores for the cluster
	embeddedEvery = 250 * time.Millisecond
)

// worker is one HTTP client of the workload: a registered client id with
// a range of record ids for its creates.
type worker struct {
	w      int // porcupine client id
	name   string
	client string
	next   uint64 // next id of its range
	end    uint64
	rng    *rand.Rand
	seq    int
	wait   time.Duration // how long one operation may take; 0: opTimeout
	holds  []uint64      // records it may hold the borrow of
}

// embeddedAck is a create an embedded client acknowledged.
type embeddedAck struct {
	Client  string
	Key     api.Key
	Pending bool // queued in the outbox, not applied yet when acknowledged
	Label   string
}

// workload drives the HTTP workers and embedded clients and records what
// they did.
type workload struct {
	tb testing.TB
	c  *cluster
	h  *history

	workers []*worker
	burster *worker // creates of the bursts at a paused leader
	dbs     []*client.DB
	granted []api.Range
	bursts  sync.WaitGroup

	mu       sync.Mutex
	pool     []uint64 // ids of records created or being created
	eAcks    []embeddedAck
	eUnknown int
}

// newWorkload registers the workers, grants their ranges, creates the hot
// records and opens the embedded clients, all before any fault.
func newWorkload(tb testing.TB, c *cluster, seed uint64, dir string) *workload {
	tb.Helper()
	wl := &workload{tb: tb, c: c, h: newHistory()}
	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()
	leader := c.leader(ctx)
	if leader == nil {
		tb.Fatal("no leader to set the workload up")
	}
	for i := range httpWorkers {
		name := fmt.Sprintf("worker%d", i)
		info, err := leader.Client.RegisterClient(ctx, name)
		if err != nil {
			tb.Fatalf("register %s: %v", name, err)
		}
		clientNames.Store(info.ID, name)
		rg, err := leader.Client.GrantRange(ctx, info.ID, 1000)
		if err != nil {
			tb.Fatalf("grant a range to %s: %v", name, err)
		}
		wl.granted = append(wl.granted, rg)
		wl.workers = append(wl.workers, &worker{w: wl.h.worker(), name: name, client: info.ID, next: rg.Start, end: rg.End,
			rng: rand.New(rand.NewPCG(seed, uint64(i)))})
	}
	info, err := leader.Client.RegisterClient(ctx, "burst")
	if err != nil {
		tb.Fatalf("register the burst client: %v", err)
	}
	clientNames.Store(info.ID, "burst")
	rg, err := leader.Client.GrantRange(ctx, info.ID, 10000)
	if err != nil {
		tb.Fatalf("grant a range to the burst client: %v", err)
	}
	wl.granted = append(wl.granted, rg)
	wl.burster = &worker{name: "burst", client: info.ID, next: rg.Start, end: rg.End}
	for i := range initialRecs {
		w := wl.workers[i%len(wl.workers)]
		if !wl.create(ctx, w, leader) {
			tb.Fatalf("creating hot record %d failed before any fault", i)
		}
	}
	for i := range embedded {
		servers := make([]string, len(c.nodes))
		for j := range c.nodes {
			servers[j] = c.nodes[(i+j)%len(c.nodes)].HTTP
		}
		db, err := client.Open(ctx, client.Config{
			Dir:        filepath.Join(dir, fmt.Sprintf("embedded%d", i)),
			Servers:    servers,
			Name:       fmt.Sprintf("embedded%d", i),
			HTTPClient: testHTTP,
			Logger:     testlog.New(tb),
		})
		if err != nil {
			tb.Fatalf("open embedded client %d: %v", i, err)
		}
		tb.Cleanup(func() { db.Close() })
		if err := db.WaitSynced(ctx); err != nil {
			tb.Fatalf("embedded client %d: %v", i, err)
		}
		if err := poll(ctx, convergeTimeout, func() (bool, string) {
			n, err := db.IDsAvailable()
			return err == nil && n > 0, fmt.Sprintf("%d ids, %v", n, err)
		}); err != nil {
			tb.Fatalf("embedded client %d got no ids: %v", i, err)
		}
		wl.dbs = append(wl.dbs, db)
	}
	return wl
}

// run drives the workload until ctx ends and returns when every worker
// has stopped (each operation is bounded by opTimeout).
func (wl *workload) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range wl.workers {
		wg.Go(func() { wl.httpLoop(ctx, w) })
	}
	for i, db := range wl.dbs {
		wg.Go(func() { wl.embeddedLoop(ctx, i, db) })
	}
	wg.Wait()
	wl.bursts.Wait()
}

// burstSize is the number of creates a burst sends at once.
const burstSize = 48

// burst sends burstSize creates at once to n, which the nemesis has just
// paused, each waiting up to timeout: they are still queued there when n
// resumes as a deposed leader, the moment when a leader that appends them
// under the new leader's term makes the replicas diverge. It returns at
// once; run waits for the bursts.
func (wl *workload) burst(ctx context.Context, n *node, timeout time.Duration) {
	for range burstSize {
		w := &worker{w: wl.h.worker(), client: wl.burster.client, wait: timeout}
		wl.mu.Lock()
		if wl.burster.next >= wl.burster.end {
			wl.mu.Unlock()
			return
		}
		w.next, w.end = wl.burster.next, wl.burster.next+1
		wl.burster.next++
		wl.mu.Unlock()
		wl.bursts.Go(func() {
			wl.create(context.WithoutCancel(ctx), w, n)
		})
	}
}

func (wl *workload) httpLoop(ctx context.Context, w *worker) {
	for ctx.Err() == nil {
		n := wl.c.nodes[w.rng.IntN(len(wl.c.nodes))]
		id := wl.pick(w.rng)
		switch r := w.rng.IntN(100); {
		case r < 35:
			wl.read(ctx, w.w, w.client, n, id)
		case r < 55:
			wl.action(ctx, w, n, id, opBorrow)
		case r < 72:
			wl.action(ctx, w, n, w.held(id), opUpdate)
		case r < 88:
			wl.action(ctx, w, n, w.held(id), opReturn)
		default:
			wl.create(ctx, w, n)
		}
		wait(ctx, thinkTime)
	}
}

// held returns, most of the time, a record the worker may hold (its
// borrow was acknowledged or its outcome is unknown), else id.
func (w *worker) held(id uint64) uint64 {
	if len(w.holds) == 0 || w.rng.IntN(5) == 0 {
		return id
	}
	return w.holds[w.rng.IntN(len(w.holds))]
}

// pick returns a record id: half the time one of the hotRecs latest
// records, where borrows race. The hot set moves on with the creates, so
// that no record's history grows too long for the checker.
func (wl *workload) pick(rng *rand.Rand) uint64 {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	if rng.IntN(2) == 0 {
		return wl.pool[len(wl.pool)-1-rng.IntN(min(hotRecs, len(wl.pool)))]
	}
	return wl.pool[rng.IntN(len(wl.pool))]
}

// create creates the worker's next record through n and reports whether
// it was acknowledged.
func (wl *workload) create(ctx context.Context, w *worker, n *node) bool {
	if w.next >= w.end {
		return false
	}
	id := w.next
	w.next++
	w.seq++
	label := fmt.Sprintf("c%d.%d", w.w, w.seq)
	if w.name == "" {
		label = fmt.Sprintf("b%d", id) // a burst create
	}
	data := wl.h.value(label)
	wl.mu.Lock()
	wl.pool = append(wl.pool, id)
	wl.mu.Unlock()
	o := op{Rec: id, Worker: w.w, In: regInput{Kind: opCreate, Client: w.client, Value: label, Node: n.ID}, Call: wl.h.now()}
	timeout := opTimeout
	if w.wait > 0 {
		timeout = w.wait
	}
	octx, cancel := context.WithTimeout(ctx, timeout)
	_, err := n.Client.Create(octx, tree, api.WriteRequest{Client: w.client, ID: id, Data: data})
	cancel()
	o.Return, o.Out = wl.h.now(), outcome(err)
	wl.h.add(o)
	return err == nil
}

// action borrows, updates or returns record id as w, through n.
func (wl *workload) action(ctx context.Context, w *worker, n *node, id uint64, kind opKind) {
	key := api.Key{ID: id, Rev: 1}
	o := op{Rec: id, Worker: w.w, In: regInput{Kind: kind, Client: w.client, Node: n.ID}, Call: wl.h.now()}
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	var err error
	switch kind {
	case opBorrow:
		_, err = n.Client.Borrow(octx, tree, key, w.client, -1) // no expiry
	case opReturn:
		_, err = n.Client.Return(octx, tree, key, w.client)
	case opUpdate:
		w.seq++
		o.In.Value = fmt.Sprintf("u%d.%d", w.w, w.seq)
		_, err = n.Client.Update(octx, tree, key, api.WriteRequest{Client: w.client, Data: wl.h.value(o.In.Value)})
	}
	cancel()
	o.Return, o.Out = wl.h.now(), outcome(err)
	wl.h.add(o)
	switch {
	case kind == opBorrow && !o.Out.Unknown && !o.Out.OK:
	case kind == opBorrow:
		if !slices.Contains(w.holds, id) {
			w.holds = append(w.holds, id)
		}
	case kind == opReturn && !o.Out.Unknown:
		w.holds = slices.DeleteFunc(w.holds, func(x uint64) bool { return x == id })
	}
}

// read reads record id through n with the default consistency of GET. A
// read without an answer is left out: it changed nothing.
func (wl *workload) read(ctx context.Context, worker int, clientID string, n *node, id uint64) (finalRead, bool) {
	o := op{Rec: id, Worker: worker, In: regInput{Kind: opRead, Client: clientID, Node: n.ID}, Call: wl.h.now()}
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	rec, err := n.Client.Get(octx, tree, api.Key{ID: id, Rev: 1})
	cancel()
	o.Return = wl.h.now()
	switch {
	case errors.Is(err, api.ErrNotFound):
		o.Out = regOutput{OK: true}
	case err != nil:
		return finalRead{}, false
	default:
		o.Out = regOutput{OK: true, Found: true, Value: wl.h.label(rec.Data)}
		if rec.Borrow != nil {
			o.Out.Holder = rec.Borrow.Client
		}
	}
	wl.h.add(o)
	return finalRead{Found: o.Out.Found, Value: o.Out.Value, Holder: o.Out.Holder}, true
}

// embeddedLoop creates records through an embedded client: online they
// are applied, offline they wait in its outbox.
func (wl *workload) embeddedLoop(ctx context.Context, i int, db *client.DB) {
	for seq := 1; ctx.Err() == nil; seq++ {
		label := fmt.Sprintf("e%d.%d", i, seq)
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		res, err := db.Tree(tree).Create(octx, 0, wl.h.value(label))
		cancel()
		wl.mu.Lock()
		if err == nil {
			wl.eAcks = append(wl.eAcks, embeddedAck{Client: db.ClientID(), Key: res.Key, Pending: res.Pending, Label: label})
		} else {
			wl.eUnknown++
		}
		wl.mu.Unlock()
		wait(ctx, embeddedEvery)
	}
}

// records returns the ids of the pool.
func (wl *workload) records() []uint64 {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	return append([]uint64(nil), wl.pool...)
}
