package client

import (
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
	berrors "go.etcd.io/bbolt/errors"
)

// queueGroup holds the lead of the outbox's group commit, starts n
// writers storing an entry each, and waits until all of them are queued
// for the next commit (one group). It returns their results channel.
func queueGroup(t *testing.T, o *outbox, n int) (entries []*outboxEntry, results chan error) {
	t.Helper()
	o.gmu.Lock()
	if o.committing {
		o.gmu.Unlock()
		t.Fatal("a commit runs already")
	}
	o.committing = true // as if a commit ran: the writers queue behind it
	o.gmu.Unlock()
	results = make(chan error, n)
	for i := range n {
		e := &outboxEntry{Op: fsm.OpCreate, Tree: "parts", Key: api.Key{ID: uint64(100 + i), Rev: 1}, Data: []byte{0xa0}, Queued: time.Now().UnixNano()}
		entries = append(entries, e)
		go func() { results <- o.store(e, make(chan outcome, 1)) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		o.gmu.Lock()
		queued := len(o.queue)
		o.gmu.Unlock()
		if queued == n {
			return entries, results
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d writers queued", queued, n)
		}
		time.Sleep(time.Millisecond) // polling with a deadline
	}
}

// lead hands the lead to the first queued writer, as the end of a commit does.
func lead(o *outbox) {
	o.gmu.Lock()
	defer o.gmu.Unlock()
	o.queue[0].done <- storeDone{lead: true}
}

func newTestOutbox(t *testing.T, path string) *outbox {
	t.Helper()
	l, err := openLocal(path)
	if err != nil {
		t.Fatal(err)
	}
	o := newOutbox(&DB{local: l, log: slog.New(slog.DiscardHandler), events: newEventLog(16)})
	if err := o.load(); err != nil {
		t.Fatal(err)
	}
	return o
}

// Writers that store concurrently share one commit: each returns once its
// entry is in local.db, the entries take consecutive sequence numbers in
// the order they queued, and all of them are there after a reopen.
func TestOutboxGroupCommitStoresEveryWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "local.db")
	o := newTestOutbox(t, path)
	const n = 16
	entries, results := queueGroup(t, o, n)
	lead(o)
	for range n {
		if err := <-results; err != nil {
			t.Fatalf("store: %v", err)
		}
	}
	var want []uint64
	for i, e := range entries {
		if e.Seq == 0 {
			t.Fatalf("entry %d has no sequence number", i)
		}
		want = append(want, e.Seq)
	}
	slices.Sort(want)
	if want[n-1]-want[0] != n-1 {
		t.Fatalf("sequence numbers %v are not consecutive", want)
	}
	var got []uint64
	for _, e := range o.entries {
		got = append(got, e.Seq)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("outbox in memory holds %v, want %v", got, want)
	}
	if len(o.waiters) != n {
		t.Fatalf("%d waiters registered, want %d", len(o.waiters), n)
	}
	if o.committing || len(o.queue) != 0 {
		t.Fatalf("after the group: committing %v, %d queued", o.committing, len(o.queue))
	}
	if err := o.db.local.close(); err != nil {
		t.Fatal(err)
	}

	o = newTestOutbox(t, path)
	defer o.db.local.close()
	if o.n.Load() != n {
		t.Fatalf("after reopen: %d entries, want %d", o.n.Load(), n)
	}
	for i, e := range o.entries {
		if e.Seq != want[i] || e.Key.ID == 0 {
			t.Fatalf("after reopen entry %d: seq %d key %v, want seq %d", i, e.Seq, e.Key, want[i])
		}
	}
	// The id cursor of each range moved past the highest id stored.
	entries, results = queueGroup(t, o, 1)
	entries[0].rangeStart = 1
	entries[0].Key.ID = 500
	lead(o)
	if err := <-results; err != nil {
		t.Fatal(err)
	}
	if c := o.db.local.cursor(1); c != 501 {
		t.Fatalf("cursor after storing id 500: %d, want 501", c)
	}
}

// A commit that fails fails every write of its group with the error, and
// stores none of them; the next group commits again.
func TestOutboxGroupCommitFailureFailsTheGroup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "local.db")
	o := newTestOutbox(t, path)
	const n = 8
	_, results := queueGroup(t, o, n)
	if err := o.db.local.close(); err != nil { // every commit now fails
		t.Fatal(err)
	}
	lead(o)
	for range n {
		if err := <-results; !errors.Is(err, berrors.ErrDatabaseNotOpen) {
			t.Fatalf("store in a failed group: %v, want %v", err, berrors.ErrDatabaseNotOpen)
		}
	}
	if o.n.Load() != 0 || len(o.waiters) != 0 || o.committing {
		t.Fatalf("after a failed group: %d entries, %d waiters, committing %v", o.n.Load(), len(o.waiters), o.committing)
	}

	o = newTestOutbox(t, path)
	defer o.db.local.close()
	if o.n.Load() != 0 {
		t.Fatalf("a failed group left %d entries in local.db", o.n.Load())
	}
	_, results = queueGroup(t, o, 2)
	lead(o)
	for range 2 {
		if err := <-results; err != nil {
			t.Fatalf("store after reopen: %v", err)
		}
	}
}

// Confirmed entries wait in gone and leave local.db with the next commit
// of writes, in the same transaction.
func TestOutboxConfirmedEntriesLeaveWithTheNextCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "local.db")
	o := newTestOutbox(t, path)
	entries, results := queueGroup(t, o, 3)
	lead(o)
	for range 3 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	o.settle([]settled{{e: entries[0]}, {e: entries[1]}})
	if o.n.Load() != 1 || len(o.gone) != 2 {
		t.Fatalf("after settle: %d entries, %d gone", o.n.Load(), len(o.gone))
	}
	stored, err := o.db.local.outbox()
	if err != nil || len(stored) != 3 {
		t.Fatalf("local.db before the next commit: %d entries, %v", len(stored), err)
	}
	more, results := queueGroup(t, o, 1)
	lead(o)
	if err := <-results; err != nil {
		t.Fatal(err)
	}
	stored, err = o.db.local.outbox()
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, e := range stored {
		seqs = append(seqs, e.Seq)
	}
	if want := []uint64{entries[2].Seq, more[0].Seq}; !slices.Equal(seqs, want) || len(o.gone) != 0 {
		t.Fatalf("local.db after the next commit holds %v (gone %v), want %v", seqs, o.gone, want)
	}
	if err := o.db.local.close(); err != nil {
		t.Fatal(err)
	}
}

// addEntries puts entries with the given sequence numbers, ops and record
// ids in the in-memory outbox (no local.db involved).
func addEntries(o *outbox, specs ...outboxEntry) []*outboxEntry {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []*outboxEntry
	for _, s := range specs {
		e := s
		e.Tree = "parts"
		e.Data = []byte{0xa0}
		o.add(&e)
		out = append(out, &e)
	}
	return out
}

func seqsOf(batch []*outboxEntry) []uint64 {
	var s []uint64
	for _, e := range batch {
		s = append(s, e.Seq)
	}
	return s
}

// A batch may go while earlier ones are unanswered only with entries of
// records that have none in flight; a record's later writes wait, in
// order, for the earlier batch's answer, and an unanswered batch's
// entries are sent again.
func TestTakeKeepsEachRecordsOrderAcrossBatchesInFlight(t *testing.T) {
	o := newTestOutbox(t, filepath.Join(t.TempDir(), "local.db"))
	defer o.db.local.close()
	addEntries(o, outboxEntry{Seq: 1, Op: fsm.OpCreate, Key: api.Key{ID: 10, Rev: 1}})
	first, _ := o.take()
	if got := seqsOf(first); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("first batch %v, want [1]", got)
	}
	// An update of the record in flight, a create of another, a second
	// update of the first record: only the other record's create may go.
	addEntries(o,
		outboxEntry{Seq: 2, Op: fsm.OpUpdate, Key: api.Key{ID: 10, Rev: 1}},
		outboxEntry{Seq: 3, Op: fsm.OpCreate, Key: api.Key{ID: 11, Rev: 1}},
		outboxEntry{Seq: 4, Op: fsm.OpUpdate, Key: api.Key{ID: 10, Rev: 1}})
	second, _ := o.take()
	if got := seqsOf(second); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("second batch while [1] is in flight: %v, want [3]", got)
	}
	if third, _ := o.take(); len(third) != 0 {
		t.Fatalf("third batch while [1] and [3] are in flight: %v, want none", seqsOf(third))
	}
	// [1] answered: the record's two updates go, in order, in one batch.
	o.finish(sentBatch{batch: first, a: answered{items: []settled{{e: first[0]}}}, complete: true})
	third, _ := o.take()
	if got := seqsOf(third); !slices.Equal(got, []uint64{2, 4}) {
		t.Fatalf("batch after [1] was answered: %v, want [2 4]", got)
	}
	// [3] not answered (request failed): it is sent again.
	o.finish(sentBatch{batch: second})
	again, _ := o.take()
	if got := seqsOf(again); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("batch after [3] failed: %v, want [3]", got)
	}
	if len(o.flight) != 2 || o.flight[recordID{"parts", 10}] != 2 || o.flight[recordID{"parts", 11}] != 1 {
		t.Fatalf("records in flight: %v", o.flight)
	}
}

// The sender never sends an entry maxSpan or more past the lowest entry
// still in local.db, counting confirmed entries not yet removed from it
// (the cluster's session would have forgotten that one's outcome); it
// reports when those hold it back, and goes on once they are removed.
func TestTakeStaysWithinTheSessionWindow(t *testing.T) {
	o := newTestOutbox(t, filepath.Join(t.TempDir(), "local.db"))
	defer o.db.local.close()
	o.gmu.Lock()
	o.gone = []uint64{5}
	o.gmu.Unlock()
	addEntries(o,
		outboxEntry{Seq: 5 + maxSpan - 1, Op: fsm.OpCreate, Key: api.Key{ID: 1, Rev: 1}},
		outboxEntry{Seq: 5 + maxSpan, Op: fsm.OpCreate, Key: api.Key{ID: 2, Rev: 1}})
	batch, stalled := o.take()
	if got := seqsOf(batch); !slices.Equal(got, []uint64{5 + maxSpan - 1}) || stalled {
		t.Fatalf("batch %v (stalled %v), want [%d] (not stalled)", got, stalled, 5+maxSpan-1)
	}
	batch, stalled = o.take()
	if len(batch) != 0 || !stalled {
		t.Fatalf("batch %v (stalled %v) past the span, want none, stalled", seqsOf(batch), stalled)
	}
	if err := o.flushGone(); err != nil { // what run does when stalled
		t.Fatal(err)
	}
	batch, stalled = o.take()
	if got := seqsOf(batch); !slices.Equal(got, []uint64{5 + maxSpan}) || stalled {
		t.Fatalf("after the removal: batch %v (stalled %v), want [%d]", got, stalled, 5+maxSpan)
	}
}
