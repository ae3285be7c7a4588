package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
	"github.com/shelfdb/shelf/internal/wake"
)

// outboxEntry is a write queued in local.db until the cluster applied it.
type outboxEntry struct {
	Seq    uint64  `codec:"seq"`
	Op     fsm.Op  `codec:"op"` // OpCreate, OpUpdate or OpDelete
	Tree   string  `codec:"tree"`
	Key    api.Key `codec:"key"`
	Schema uint32  `codec:"schema,omitempty"`
	Data   []byte  `codec:"data,omitempty"`
	Queued int64   `codec:"queued"` // unix ns, this machine's clock

	rangeStart uint64 // create: the range Key.ID was taken from (stored with the entry)
	// state: where the entry is on its way to the cluster (o.mu); the
	// sender sends only entryQueued ones.
	state entryState
	// The cluster's answer, kept while the entry waits to be settled (o.mu).
	res api.WriteResult
	rej *api.Error
}

// entryState is where an outbox entry is on its way to the cluster.
type entryState uint8

const (
	entryQueued   entryState = iota // waits to be sent (again)
	entryInFlight                   // in a request not answered yet
	entryAnswered                   // answered; the settler waits for the replica to apply it
	entryApplied                    // answered and applied in the replica; settled in sequence order
)

// recordID names a record whatever its revision: writes to one record
// keep their order when several batches are in flight (maxInFlight > 1).
type recordID struct {
	tree string
	id   uint64
}

// Conflict is an outbox entry the cluster rejected: the write is kept,
// with the reason, until the app resolves it (RetryConflict) or drops it
// (DiscardConflict). Nothing a user typed is lost silently.
type Conflict struct {
	Seq      uint64     `json:"seq" codec:"seq"`
	Op       string     `json:"op" codec:"op"`
	Tree     string     `json:"tree" codec:"tree"`
	Key      api.Key    `json:"key" codec:"key"`
	Schema   uint32     `json:"schema,omitempty" codec:"schema,omitempty"`
	Data     []byte     `json:"data,omitempty" codec:"data,omitempty"`
	Err      *api.Error `json:"error" codec:"err"`
	Queued   time.Time  `json:"queued" codec:"queued"`
	Rejected time.Time  `json:"rejected" codec:"rejected"`
}

// outcome is what a waiting writer learns about its entry.
type outcome struct {
	res     api.WriteResult
	err     error
	pending bool // not sent yet (offline): still in the outbox
}

// outbox sends queued writes (each record's in order, several batches in
// flight), settles them in sequence order, and keeps the
// pending overlay that reads see.
type outbox struct {
	db   *DB
	kick chan struct{}

	// n is len(entries), readable without mu: a read of a record skips
	// the lock when nothing is pending (the usual case).
	n atomic.Int64

	mu      sync.Mutex
	entries []*outboxEntry                  // in sequence order
	bySeq   map[uint64]*outboxEntry         // the same entries
	byKey   map[string]map[api.Key][]uint64 // tree -> key -> pending seqs, in order
	waiters map[uint64]chan outcome         // seq -> the writer still waiting
	drained chan struct{}                   // closed when entries becomes empty
	// progress is notified whenever entries leave (settled): Flush
	// waits on it.
	progress wake.Signal
	// flight counts, per record, the entries in requests not answered
	// yet: a later write of the record waits for their answer.
	flight map[recordID]int
	// lastSeq is the highest sequence number stored in local.db so far.
	lastSeq uint64

	// Group commit (see store): writes queued while a commit of local.db
	// runs are stored together by the next one.
	gmu        sync.Mutex
	queue      []*storeReq // waiting for the next commit, in arrival order
	committing bool        // a commit runs (its leader owns it)
	// gone lists entries the cluster confirmed that are out of the
	// in-memory outbox but still in local.db: the next commit removes
	// them (see settle for why that is safe, and maxGone for the bound).
	gone []uint64
	// removing is the part of gone a commit in progress removes: until
	// it is durable those entries are still in local.db (see span).
	removing []uint64
	// idleFlush: how long gone waits, once the outbox is empty, for a
	// write's commit to take it along (the constant idleFlush; tests
	// change it).
	idleFlush time.Duration
}

// storeReq is one write waiting to be stored in local.db.
type storeReq struct {
	e    *outboxEntry   // nil: no entry, only a commit of gone
	ch   chan outcome   // the writer's answer channel, registered with the entry
	done chan storeDone // buffered: the commit's result, or the lead
}

// storeDone tells a queued write that its group was stored (err nil), was
// not (err), or that it leads the next commit.
type storeDone struct {
	lead bool
	err  error
}

// maxGone bounds how many confirmed entries may wait in gone before the
// settler commits their removal itself. After a crash they are in local.db
// again and are sent again: the cluster answers each with the result of
// its first apply as long as its session still remembers the sequence
// number; maxSpan (below) keeps that true whatever maxGone is, which only
// trades commits of the settler for entries sent again after a crash.
const maxGone = 128

// maxInFlight bounds the outbox requests one client has in flight at
// once. It is 1: the outbox's writes reach the cluster in the order the
// app made them, across records too (a board created after the parts it
// refers to is never applied before them). take can let a batch go while
// earlier ones are unanswered (only with records that have no write in
// them, so each record keeps its order), but 4 in flight measured no
// faster than 1 (docs/performance.md, "Outbox without waiting"): a deep
// outbox already fills batches of maxBatch, so order is kept for free.
const maxInFlight = 1

// maxSpan bounds how far past the lowest sequence number still in
// local.db (an entry queued, in flight, answered, or confirmed but not yet
// removed: gone) the sender may send. The cluster keeps, per client
// session, the results of its last fsm.DefaultSessionWindow (1024)
// sequence numbers, forgetting the lowest first, and refuses a sequence
// number at or below the highest it forgot (fsm/session.go). Batches in
// flight may apply out of order, but every sequence number the cluster
// holds for this client is at most the highest sent: so while every
// entry sent is below lowest+maxSpan, fewer than maxSpan sequence numbers
// above any entry still in local.db were applied, and an entry sent again
// (after a lost answer or a crash) is either remembered (answered as a
// repeat) or above the forgotten ones (applied once). 1024 - 128 leaves a
// margin; the sender commits the removal of gone entries itself when they
// hold it back.
const maxSpan = fsm.DefaultSessionWindow - 128

// idleFlush is how long confirmed entries wait in gone, when the outbox
// is empty, for a write's commit to take them along before the settler
// commits their removal itself: a lone writer's next create then pays one
// commit, not two.
const idleFlush = 100 * time.Millisecond

func newOutbox(db *DB) *outbox {
	return &outbox{db: db, kick: make(chan struct{}, 1), waiters: map[uint64]chan outcome{},
		bySeq: map[uint64]*outboxEntry{}, byKey: map[string]map[api.Key][]uint64{}, drained: make(chan struct{}),
		flight: map[recordID]int{}, idleFlush: idleFlush}
}

func (o *outbox) load() error {
	entries, err := o.db.local.outbox()
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range entries {
		o.add(e)
	}
	if len(o.entries) == 0 {
		close(o.drained)
	}
	return nil
}

// add indexes e; o.mu held.
func (o *outbox) add(e *outboxEntry) {
	if len(o.entries) == 0 {
		select {
		case <-o.drained:
			o.drained = make(chan struct{})
		default:
		}
	}
	o.entries = append(o.entries, e)
	o.n.Store(int64(len(o.entries)))
	o.lastSeq = max(o.lastSeq, e.Seq)
	o.bySeq[e.Seq] = e
	m := o.byKey[e.Tree]
	if m == nil {
		m = map[api.Key][]uint64{}
		o.byKey[e.Tree] = m
	}
	m[e.Key] = append(m[e.Key], e.Seq)
}

// remove unindexes the entry seq; o.mu held. Entries leave from the head
// (sent in order), which costs nothing; any other place costs a copy.
func (o *outbox) remove(seq uint64) *outboxEntry {
	e := o.bySeq[seq]
	if e == nil {
		return nil
	}
	delete(o.bySeq, seq)
	if len(o.entries) > 0 && o.entries[0].Seq == seq {
		o.entries[0] = nil
		o.entries = o.entries[1:]
	} else {
		for i, x := range o.entries {
			if x.Seq == seq {
				o.entries = append(o.entries[:i], o.entries[i+1:]...)
				break
			}
		}
	}
	o.n.Store(int64(len(o.entries)))
	if m := o.byKey[e.Tree]; m != nil {
		seqs := m[e.Key]
		for i, s := range seqs {
			if s == seq {
				seqs = append(seqs[:i], seqs[i+1:]...)
				break
			}
		}
		if len(seqs) == 0 {
			delete(m, e.Key)
		} else {
			m[e.Key] = seqs
		}
	}
	if len(o.entries) == 0 {
		close(o.drained)
	}
	return e
}

// pending returns the latest pending entry for a record, if any.
func (o *outbox) pending(tree string, key api.Key) *outboxEntry {
	if o.n.Load() == 0 {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	seqs := o.byKey[tree][key]
	if len(seqs) == 0 {
		return nil
	}
	return o.bySeq[seqs[len(seqs)-1]]
}

// pendingKeys returns the latest pending entry of each record of tree.
func (o *outbox) pendingKeys(tree string) map[api.Key]*outboxEntry {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[api.Key]*outboxEntry, len(o.byKey[tree]))
	for k, seqs := range o.byKey[tree] {
		out[k] = o.bySeq[seqs[len(seqs)-1]]
	}
	return out
}

// Pending returns the number of writes waiting in the outbox.
func (db *DB) Pending() int {
	db.out.mu.Lock()
	defer db.out.mu.Unlock()
	return len(db.out.entries)
}

// submit queues e and, while online, waits for the cluster's answer.
// Offline (or once the connection drops) it returns with pending set:
// the entry stays queued and is sent, in order, when a server answers.
// It returns only once e is stored in local.db.
//
// Under NoWait(ctx) it returns, pending, as soon as e is stored.
func (o *outbox) submit(ctx context.Context, e *outboxEntry) (outcome, error) {
	e.Queued = time.Now().UnixNano()
	var ch chan outcome
	noWait := isNoWait(ctx)
	if !noWait {
		ch = make(chan outcome, 1)
	}
	if err := o.store(e, ch); err != nil {
		return outcome{}, fmt.Errorf("client: outbox: %w", err)
	}
	o.kickNow()
	if noWait {
		return outcome{pending: true}, nil
	}
	if !o.db.Online() {
		o.forget(e.Seq)
		return outcome{pending: true}, nil
	}
	select {
	case out := <-ch:
		return out, nil
	case <-ctx.Done():
		o.forget(e.Seq)
		return outcome{pending: true}, nil
	case <-o.db.ctx.Done():
		return outcome{pending: true}, nil
	}
}

// store writes e to local.db (e nil: only the removals in gone) and adds
// it to the outbox, with ch as its waiter, once the commit is durable.
//
// Group commit: the first writer to arrive while no commit runs leads
// one; writers arriving meanwhile queue, and when the commit ends the
// first of them leads the next, which stores all of them in one
// transaction (one fsync). Each writer leads at most one commit, and
// every writer learns the outcome of the commit that held its entry: an
// error fails the whole group, and none of its entries is stored.
func (o *outbox) store(e *outboxEntry, ch chan outcome) error {
	r := &storeReq{e: e, ch: ch, done: make(chan storeDone, 1)}
	o.gmu.Lock()
	o.queue = append(o.queue, r)
	lead := !o.committing
	o.committing = true
	o.gmu.Unlock()
	if !lead {
		// Bounded by the commit before ours and ours (local disk writes).
		d := <-r.done
		if !d.lead {
			return d.err
		}
	}
	return o.commit(r)
}

// commit stores the queued writes and the removals in gone in one
// transaction, then hands the lead to the first write queued meanwhile.
// Only the leader calls it (o.committing set).
func (o *outbox) commit(self *storeReq) error {
	o.gmu.Lock()
	group, gone := o.queue, o.gone
	o.queue, o.gone, o.removing = nil, nil, gone
	o.gmu.Unlock()
	entries := make([]*outboxEntry, 0, len(group))
	for _, r := range group {
		if r.e != nil {
			entries = append(entries, r.e)
		}
	}
	err := o.db.local.commitOutbox(entries, gone)
	o.gmu.Lock()
	if err != nil {
		o.gone = append(gone, o.gone...) // removed by a later commit
	}
	o.removing = nil
	o.gmu.Unlock()
	if err == nil && len(entries) > 0 {
		// In sequence order: commits run one at a time, and this one
		// adds its entries before the next may start.
		o.mu.Lock()
		for _, r := range group {
			if r.e != nil {
				o.add(r.e)
				if r.ch != nil {
					o.waiters[r.e.Seq] = r.ch
				}
			}
		}
		o.mu.Unlock()
	}
	for _, r := range group {
		if r != self {
			r.done <- storeDone{err: err}
		}
	}
	o.gmu.Lock()
	if len(o.queue) > 0 {
		o.queue[0].done <- storeDone{lead: true}
	} else {
		o.committing = false
	}
	o.gmu.Unlock()
	return err
}

// flushGone commits the removal of confirmed entries from local.db, if
// any wait (with the writes queued meanwhile).
func (o *outbox) flushGone() error {
	o.gmu.Lock()
	n := len(o.gone)
	o.gmu.Unlock()
	if n == 0 {
		return nil
	}
	return o.store(nil, nil)
}

func (o *outbox) forget(seq uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.waiters, seq)
}

func (o *outbox) kickNow() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// drain waits until every entry queued so far has been settled, so that
// an operation that needs the cluster comes after the writes before it.
func (o *outbox) drain(ctx context.Context) error {
	for {
		o.mu.Lock()
		done := o.drained
		n := len(o.entries)
		o.mu.Unlock()
		if n == 0 {
			return nil
		}
		if !o.db.Online() {
			return fmt.Errorf("%w (%d outbox entries waiting)", ErrOffline, n)
		}
		select {
		case <-done:
		case <-o.db.onlineChanged():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// maxBatch bounds how many outbox entries go in one request, and
// maxBatchBytes their total size (under the server's 4 MiB body limit).
const (
	maxBatch      = 256
	maxBatchBytes = 2 << 20
)

// run sends the outbox while online: up to maxInFlight batches at once
// (take says which entries may go while others are in flight), each
// answered batch to the settler. After a failed send it tries again after
// a backoff, or at once when the client comes online, a write is queued or
// another batch is answered in full.
//
// Sending and settling overlap: once the cluster answered a batch, the
// settler waits for the replica to apply it and settles the outbox's
// entries in sequence order while run sends the next batches.
func (o *outbox) run() {
	defer o.db.wg.Done()
	ctx := o.db.ctx
	answers := make(chan answered, maxInFlight)
	results := make(chan sentBatch, maxInFlight)
	settlerDone := make(chan struct{})
	go o.settler(answers, settlerDone)
	inFlight := 0
	defer func() {
		for ; inFlight > 0; inFlight-- {
			<-results // each send ends with ctx; its entries stay in local.db
		}
		close(answers)
		<-settlerDone
	}()
	b := newBackoff(200*time.Millisecond, 5*time.Second)
	wait := 5 * time.Second
	hold := false // a send failed: wait for the backoff, a kick or a full answer
	for {
		flushed := false
		for !hold && inFlight < maxInFlight && o.db.Online() && ctx.Err() == nil {
			batch, stalled := o.take()
			if len(batch) == 0 {
				if stalled && !flushed {
					// Confirmed entries waiting for their removal from
					// local.db hold the span back: remove them now.
					flushed = true
					if err := o.flushGone(); err != nil {
						o.db.log.Error("client: cannot remove confirmed entries from the outbox file; a later commit removes them", "err", err)
					}
					continue
				}
				break
			}
			inFlight++
			go func() { // ends with ctx at the latest (send's own deadline)
				a, complete := o.send(batch)
				results <- sentBatch{batch: batch, a: a, complete: complete}
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-o.kick:
			hold = false
		case <-time.After(wait):
			hold = false
		case r := <-results:
			inFlight--
			o.finish(r)
			if len(r.a.items) > 0 {
				select {
				case answers <- r.a:
				case <-ctx.Done():
					return
				}
			}
			if r.complete {
				b.reset()
				hold, wait = false, 5*time.Second
			} else {
				hold, wait = true, b.next()
			}
		}
	}
}

// sentBatch is a batch whose request ended: a holds the entries the
// cluster answered (a prefix of batch), complete whether it answered all.
type sentBatch struct {
	batch    []*outboxEntry
	a        answered
	complete bool
}

// take picks the next batch to send and marks it in flight: queued
// entries in sequence order, up to maxBatch entries and maxBatchBytes,
// below the lowest sequence number still in local.db plus maxSpan. An
// entry of a record with an entry in flight is skipped, and so are that
// record's later entries (they go, in order, once the earlier batch is
// answered); entries of other records may go past them. stalled tells an
// empty batch held back by the span while confirmed entries (gone) still
// wait for their removal from local.db.
func (o *outbox) take() (batch []*outboxEntry, stalled bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	floor, fromGone := uint64(math.MaxUint64), false
	if len(o.entries) > 0 {
		floor = o.entries[0].Seq
	}
	o.gmu.Lock() // settle moves entries to gone under o.mu: no entry is in neither
	for _, list := range [][]uint64{o.gone, o.removing} {
		for _, seq := range list {
			if seq < floor {
				floor, fromGone = seq, true
			}
		}
	}
	o.gmu.Unlock()
	var blocked map[recordID]bool
	size := 0
	for _, e := range o.entries {
		if e.state != entryQueued {
			continue
		}
		if e.Seq-floor >= maxSpan {
			stalled = fromGone && len(batch) == 0
			break
		}
		if len(batch) == maxBatch || (len(batch) > 0 && size+len(e.Data) > maxBatchBytes) {
			break
		}
		id := recordID{e.Tree, e.Key.ID}
		if o.flight[id] > 0 || blocked[id] {
			if blocked == nil {
				blocked = map[recordID]bool{}
			}
			blocked[id] = true
			continue
		}
		batch = append(batch, e)
		size += len(e.Data)
	}
	for _, e := range batch {
		e.state = entryInFlight
		o.flight[recordID{e.Tree, e.Key.ID}]++
	}
	return batch, stalled
}

// finish records the end of a batch's request: the entries answered wait
// for the settler, the others are queued to be sent again.
func (o *outbox) finish(r sentBatch) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, e := range r.batch {
		id := recordID{e.Tree, e.Key.ID}
		if n := o.flight[id]; n > 1 {
			o.flight[id] = n - 1
		} else {
			delete(o.flight, id)
		}
		if i < len(r.a.items) {
			it := r.a.items[i]
			e.state, e.res, e.rej = entryAnswered, it.res, it.rej
		} else {
			e.state = entryQueued
		}
	}
}

// requeue queues answered entries to be sent again (the replica did not
// apply them in time; the cluster answers them again as repeats).
func (o *outbox) requeue(items []settled) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, it := range items {
		if it.e.state == entryAnswered {
			it.e.state = entryQueued
		}
	}
}

// answered is a batch the cluster answered, up to the index of its last
// entry applied.
type answered struct {
	items []settled
	last  uint64
}

// settler takes answered batches, in the order their answers came, until
// answers is closed; once the replica has applied a batch (read your own
// writes) its entries are ready, and the settler settles the outbox's
// ready entries in sequence order: those before the first entry not
// ready. It commits the removal of confirmed entries from local.db itself
// when maxGone wait, or idleFlush after the outbox became empty if no
// write took them along.
func (o *outbox) settler(answers <-chan answered, done chan<- struct{}) {
	defer close(done)
	db := o.db
	var idle <-chan time.Time // armed while confirmed entries wait and no write comes
	flush := func() {
		if err := o.flushGone(); err != nil {
			db.log.Error("client: cannot remove confirmed entries from the outbox file; a later commit removes them", "err", err)
		}
	}
	for {
		var a answered
		var ok bool
		select {
		case a, ok = <-answers:
			if !ok {
				return
			}
		case <-idle:
			idle = nil
			flush()
			continue
		}
		if a.last > 0 {
			ctx, cancel := context.WithTimeout(db.ctx, 60*time.Second)
			err := db.replica.WaitApplied(ctx, a.last)
			cancel()
			if err != nil {
				// The entries are sent again (answered as repeats).
				o.requeue(a.items)
				o.kickNow()
				continue
			}
		}
		o.mu.Lock()
		for _, it := range a.items {
			if it.e.state == entryAnswered {
				it.e.state = entryApplied
			}
		}
		var ready []settled
		for _, e := range o.entries {
			if e.state != entryApplied {
				break
			}
			ready = append(ready, settled{e: e, res: e.res, rej: e.rej})
		}
		o.mu.Unlock()
		if len(ready) > 0 {
			o.settle(ready)
			o.kickNow() // the span moved on
		}
		o.gmu.Lock()
		n := len(o.gone)
		o.gmu.Unlock()
		switch {
		case n >= maxGone:
			flush()
		case n > 0 && o.n.Load() == 0 && idle == nil:
			// The next write's commit takes them along, or this one.
			o.gmu.Lock()
			d := o.idleFlush
			o.gmu.Unlock()
			idle = time.After(d)
		}
	}
}

// send sends a batch of entries (chosen by take, in sequence order) in one
// request and returns the entries the cluster answered, for the settler.
// complete false means the request failed (network, no leader) or an
// entry's outcome is unknown: the entries not answered stay, in order,
// and are sent again. Each entry carries its Seq in this client's session, so
// the cluster applies it once: an entry sent again after a lost answer is
// answered with the result of its first apply (or rejection).
func (o *outbox) send(batch []*outboxEntry) (answered, bool) {
	db := o.db
	ctx, cancel := context.WithTimeout(db.ctx, 60*time.Second)
	defer cancel()
	// The sync loop leaving its server means that server is cut off or
	// gone: stop waiting for its answer (the entries stay and are sent again).
	moved := db.moved()
	go func() { // ends with ctx at the latest
		select {
		case <-moved:
			cancel()
		case <-ctx.Done():
		}
	}()
	req := api.BatchRequest{Client: db.clientID, Ops: make([]api.BatchOp, len(batch))}
	for i, e := range batch {
		req.Ops[i] = api.BatchOp{Op: e.Op.String(), Tree: e.Tree, Key: e.Key, Schema: e.Schema, Data: e.Data, Seq: e.Seq}
	}
	// The server the replica follows first, then the others at once if it
	// cannot be reached or has no leader.
	var c *api.Client
	var res api.BatchResult
	var err error
	for _, s := range db.serverList() {
		c = db.api(s)
		res, err = c.Batch(ctx, req)
		if err == nil && len(res.Results) != len(batch) {
			err = fmt.Errorf("client: batch of %d answered with %d results", len(batch), len(res.Results))
		}
		if err == nil || ctx.Err() != nil || !tryNext(err) {
			break
		}
		db.log.Debug("client: outbox batch not taken; trying the next server", "server", s, "entries", len(batch), "err", err)
	}
	if err != nil {
		db.log.Debug("client: outbox batch not sent", "entries", len(batch), "err", err)
		for _, e := range batch {
			o.notify(e.Seq, outcome{pending: true})
		}
		return answered{}, false
	}
	// Read your own writes: the settler settles once the replica has the
	// changes.
	var last uint64
	for _, it := range res.Results {
		last = max(last, it.Index)
	}
	items := make([]settled, 0, len(batch))
	complete := true
	for i, e := range batch {
		it := res.Results[i]
		rej := it.Err
		switch {
		case rej == nil:
		case retryable(rej):
			// Outcome unknown from here on: send the rest again.
			o.notify(e.Seq, outcome{pending: true})
			complete = false
		}
		if !complete {
			break
		}
		items = append(items, settled{e: e, res: api.WriteResult{Key: it.Key, Index: it.Index}, rej: rej})
	}
	return answered{items: items, last: last}, complete
}

// tryNext tells a failed request that another server may take: this one
// could not be reached or has no leader. (Whatever the first server did
// with it, the outbox sends entries again until the cluster answers them;
// see send.) An unavailable answer is not one: the server is up and in
// touch with the cluster, whose leader was busy or just changed, and
// the next server would forward to the same leader; worse, the next
// server in the list may be that old leader, paused or cut off, where the
// request would wait for its whole timeout. The batch goes again to the
// first server after the backoff.
func tryNext(err error) bool {
	return errors.Is(err, api.ErrUnreachable) || errors.Is(err, api.ErrNoLeader)
}

// retryable tells an error that says nothing about the write itself.
func retryable(e *api.Error) bool {
	return e.Code == api.CodeNoLeader || e.Code == api.CodeUnavailable || e.Code == api.CodeInternal
}

// settled is the cluster's answer to one outbox entry.
type settled struct {
	e   *outboxEntry
	res api.WriteResult
	rej *api.Error
}

// settle removes answered entries, applied in the replica, from the
// outbox (in sequence order: the head of the outbox): confirmed, or
// rejected. A rejection goes to the writer if it is still waiting, else it
// becomes a Conflict.
//
// Rejections are moved to the conflicts in local.db at once, in one
// transaction. Confirmed entries leave the in-memory outbox at once, and
// local.db with the next commit of the outbox (the next group of writes,
// or the settler's own when the outbox is idle or maxGone wait): if the process
// stops before that, they are loaded again at the next Open and sent
// again with the same sequence numbers, and the cluster answers each with
// the result of its first apply instead of applying it twice.
func (o *outbox) settle(items []settled) {
	db := o.db
	o.mu.Lock()
	chans := make([]chan outcome, len(items))
	seqs := make([]uint64, len(items))
	conflicts := make([]*Conflict, len(items))
	rejected := false
	for i, it := range items {
		e := it.e
		seqs[i] = e.Seq
		chans[i] = o.waiters[e.Seq]
		delete(o.waiters, e.Seq)
		if it.rej != nil {
			rejected = true
		}
		if it.rej != nil && chans[i] == nil {
			conflicts[i] = &Conflict{Seq: e.Seq, Op: e.Op.String(), Tree: e.Tree, Key: e.Key, Schema: e.Schema, Data: e.Data,
				Err: it.rej, Queued: time.Unix(0, e.Queued).UTC(), Rejected: time.Now().UTC()}
		}
	}
	if rejected {
		if err := db.local.settle(seqs, conflicts); err != nil {
			for i, it := range items { // sent again; still waiting: answered then
				it.e.state, it.e.res, it.e.rej = entryQueued, api.WriteResult{}, nil
				if chans[i] != nil {
					o.waiters[it.e.Seq] = chans[i]
				}
			}
			o.mu.Unlock()
			db.log.Error("client: cannot settle outbox entries; they will be sent again", "entries", len(items), "err", err)
			return
		}
	}
	for _, seq := range seqs {
		o.remove(seq)
	}
	if !rejected {
		// Under o.mu: take sees every entry in the outbox or in gone.
		o.gmu.Lock()
		o.gone = append(o.gone, seqs...)
		o.gmu.Unlock()
	}
	o.progress.Notify()
	o.mu.Unlock()
	var evs []Event
	for i, it := range items {
		e := it.e
		ev := Event{Event: api.Event{Index: it.res.Index, Tree: e.Tree, Key: e.Key, Client: db.clientID, Time: time.Now().UTC()}, Outbox: e.Seq}
		switch {
		case it.rej == nil:
			ev.Type = EventConfirmed
		case conflicts[i] != nil:
			ev.Type, ev.Err = EventConflict, it.rej
			db.log.Warn("client: outbox entry rejected by the cluster; kept as a conflict", "seq", e.Seq, "op", e.Op, "tree", e.Tree, "key", e.Key, "err", it.rej)
		}
		if ev.Type != "" {
			evs = append(evs, ev)
		}
		if chans[i] != nil {
			var err error
			if it.rej != nil {
				err = it.rej
			}
			chans[i] <- outcome{res: it.res, err: err}
		}
	}
	db.events.publish(evs...)
}

func (o *outbox) notify(seq uint64, out outcome) {
	o.mu.Lock()
	ch, ok := o.waiters[seq]
	delete(o.waiters, seq)
	o.mu.Unlock()
	if ok {
		ch <- out
	}
}

// Conflicts returns the outbox entries the cluster rejected, oldest first.
func (db *DB) Conflicts() ([]Conflict, error) { return db.local.conflicts() }

// DiscardConflict drops a conflict: the app decided the write is not wanted.
func (db *DB) DiscardConflict(seq uint64) error { return db.local.dropConflict(seq) }

// RetryConflict sends a conflicting write again (after the app fixed its
// cause, for instance checked the record out again) and drops the
// conflict if the cluster takes it. It needs the cluster.
func (db *DB) RetryConflict(ctx context.Context, seq uint64) error {
	cs, err := db.local.conflicts()
	if err != nil {
		return err
	}
	for _, c := range cs {
		if c.Seq != seq {
			continue
		}
		op := fsm.OpCreate
		switch c.Op {
		case fsm.OpUpdate.String():
			op = fsm.OpUpdate
		case fsm.OpDelete.String():
			op = fsm.OpDelete
		}
		if !db.Online() {
			return ErrOffline
		}
		out, err := db.out.submit(ctx, &outboxEntry{Op: op, Tree: c.Tree, Key: c.Key, Schema: c.Schema, Data: c.Data})
		if err != nil {
			return err
		}
		if out.pending {
			return db.local.dropConflict(seq) // queued again: the outbox owns it now
		}
		if out.err != nil {
			return out.err
		}
		return db.local.dropConflict(seq)
	}
	return fmt.Errorf("client: no conflict %d", seq)
}
