package fsm

import (
	"errors"
	"log/slog"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

// batchEntry returns the encoded batch entry of cmds at the harness's
// next time.
func (h *harness) batchEntry(cmds ...Command) []byte {
	h.t.Helper()
	h.now += int64(time.Second)
	ptrs := make([]*Command, len(cmds))
	for i := range cmds {
		ptrs[i] = &cmds[i]
	}
	b, err := NewBatch(h.now, ptrs).Encode()
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

// batch applies cmds as one batch entry, the next one, and returns the
// entry's result.
func (h *harness) batch(cmds ...Command) *Result {
	h.t.Helper()
	b := h.batchEntry(cmds...)
	h.index++
	r := h.f.Apply(h.index, b)
	if r.Index != h.index || len(r.Batch) != len(cmds) {
		h.t.Fatalf("batch entry %d: index %d, %d results for %d commands", h.index, r.Index, len(r.Batch), len(cmds))
	}
	return r
}

// A batch entry applies its commands in order, each as its own entry
// would be: its own result, a rejection that changes nothing and stops
// nothing, its own events, all at the entry's index; the entry's events
// are theirs in order.
func TestBatchEntryAppliesEachCommand(t *testing.T) {
	h, ra, _ := setup(t)
	k1, k2, k3 := api.Key{ID: ra.Start, Rev: 1}, api.Key{ID: ra.Start + 1, Rev: 1}, api.Key{ID: ra.Start + 2, Rev: 1}
	h.ok(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: k2, Data: value(t, "old")})
	r := h.batch(
		Command{Op: OpCreate, Tree: "parts", Client: "a", Key: k1, Data: value(t, 1)},
		Command{Op: OpCreate, Tree: "parts", Client: "a", Key: k2, Data: value(t, "new")}, // exists
		Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: k1},
		Command{Op: OpUpdate, Tree: "parts", Client: "b", Key: k1, Data: value(t, 9)}, // not the holder
		Command{Op: OpUpdate, Tree: "parts", Client: "a", Key: k1, Data: value(t, 2)},
		Command{Op: OpReturn, Tree: "parts", Client: "a", Key: k1},
		Command{Op: OpBorrow, Tree: "parts", Client: "b", Key: k1},
		Command{Op: OpReturn, Tree: "parts", Client: "b", Key: k1},
		Command{Op: OpCreate, Tree: "parts", Client: "b", Key: k3, Data: value(t, 3)}, // not b's range
	)
	wantErr := []error{nil, api.ErrExists, nil, api.ErrNotBorrowed, nil, nil, nil, nil, api.ErrNotInRange}
	var events []api.Event
	for i, res := range r.Batch {
		if !errors.Is(res.Error(), wantErr[i]) || (wantErr[i] == nil) != (res.Err == nil) {
			t.Fatalf("command %d: %v, want %v", i, res.Error(), wantErr[i])
		}
		if res.Index != h.index {
			t.Fatalf("command %d: index %d, want the entry's %d", i, res.Index, h.index)
		}
		if res.Err != nil && len(res.Events) > 0 {
			t.Fatalf("command %d rejected with events %+v", i, res.Events)
		}
		for _, e := range res.Events {
			if e.Index != h.index {
				t.Fatalf("command %d: event %+v not at the entry's index", i, e)
			}
		}
		events = append(events, res.Events...)
	}
	if r.Err != nil || !reflect.DeepEqual(r.Events, events) {
		t.Fatalf("entry: err %v, events %+v, want the commands' %+v", r.Err, r.Events, events)
	}
	var types []api.EventType
	for _, e := range events {
		types = append(types, e.Type)
	}
	want := []api.EventType{api.EventCreated, api.EventBorrowed, api.EventUpdated, api.EventReturned, api.EventBorrowed, api.EventReturned}
	if !reflect.DeepEqual(types, want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	if rec, err := h.f.Get("parts", k2); err != nil || string(rec.Data) != string(value(t, "old")) {
		t.Fatalf("the refused create changed %s: %+v %v", k2, rec, err)
	}
	if rec, err := h.f.Get("parts", k1); err != nil || string(rec.Data) != string(value(t, 2)) || rec.Index != h.index {
		t.Fatalf("record %s: %+v %v", k1, rec, err)
	}
	if _, err := h.f.Get("parts", k3); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("the refused create of %s: %v", k3, err)
	}
	// Four borrow changes of one record at one index: four history
	// entries, none overwriting another.
	if got := history(t, h, k1); !reflect.DeepEqual(got, []string{"borrowed -> a", "returned a", "borrowed -> b", "returned b"}) {
		t.Fatalf("history %v", got)
	}
	if h.f.AppliedIndex() != h.index {
		t.Fatalf("applied %d, want %d", h.f.AppliedIndex(), h.index)
	}
}

// Exactly-once inside a batch entry and across entries: a sequence
// number seen before, in the same entry or an earlier one, is answered
// with the recorded result and applied once.
func TestBatchEntrySessions(t *testing.T) {
	h, ra, _ := setup(t)
	k1, k2 := api.Key{ID: ra.Start, Rev: 1}, api.Key{ID: ra.Start + 1, Rev: 1}
	c1 := Command{Op: OpCreate, Tree: "parts", Client: "a", Key: k1, Data: value(t, 1), Session: "a", Seq: 1}
	c2 := Command{Op: OpCreate, Tree: "parts", Client: "a", Key: k2, Data: value(t, 2), Session: "a", Seq: 2}
	r := h.batch(c1, c1, c2)
	first := h.index
	if b := r.Batch; b[0].Err != nil || b[0].Repeat || !b[1].Repeat || b[1].Err != nil || b[1].Key != k1 || b[1].Index != first || b[2].Err != nil {
		t.Fatalf("one entry: %+v %+v %+v", b[0], b[1], b[2])
	}
	if len(r.Batch[1].Events) != 0 || len(r.Events) != 2 {
		t.Fatalf("a repeat has events: entry %+v", r.Events)
	}
	r = h.batch(c2, Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: ra.Start + 2}, Data: value(t, 3), Session: "a", Seq: 3})
	if b := r.Batch; !b[0].Repeat || b[0].Index != first || b[0].Key != k2 || b[1].Repeat || b[1].Err != nil || b[1].Index != h.index {
		t.Fatalf("next entry: %+v %+v", b[0], b[1])
	}
	if tr, _ := h.f.Trees(); tr[0].Records != 3 {
		t.Fatalf("records %+v, want 3", tr)
	}
	// A repeat as an entry of its own still answers the batch's index.
	if r := h.send(c1); !r.Repeat || r.Index != first {
		t.Fatalf("single repeat: %+v", r)
	}
}

// A batch entry replayed after a restart (raft hands it over again) is
// skipped as a whole: nothing is applied twice.
func TestBatchEntryReplayIsSkipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	cfg := Config{Path: path, NoSync: true, Logger: slog.New(slog.DiscardHandler)}
	f, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	setRulesForTest(t, f, RulesVersion)
	h := &harness{t: t, f: f, now: 1}
	h.ok(Command{Op: OpSetCluster, Cluster: "c1"})
	entry := h.batchEntry(
		Command{Op: OpCreate, Tree: "t", Data: value(t, 1)},
		Command{Op: OpCreate, Tree: "t", Data: value(t, 2)},
	)
	if r := f.Apply(2, entry); r.Err != nil || len(r.Batch) != 2 || r.Batch[0].Err != nil || r.Batch[1].Err != nil {
		t.Fatalf("batch: %+v", r)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f, err = Open(cfg); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if r := f.Apply(2, entry); r.Err != nil || len(r.Events) != 0 {
		t.Fatalf("replay: %+v", r)
	}
	if tr, _ := f.Trees(); len(tr) != 1 || tr[0].Records != 2 || f.AppliedIndex() != 2 {
		t.Fatalf("after the replay: trees %+v, applied %d", tr, f.AppliedIndex())
	}
}

// The rules gate: under rules older than BatchRules a batch entry is
// refused whole, as the code of those rules refuses an op it does not
// know, and nothing changes; once raised, the same entry applies. Only
// the ops that change the cluster's identity or rules stay out of batch
// entries, and a batch is never a command taken from outside.
func TestBatchEntryRulesGate(t *testing.T) {
	h, ra, _ := setup(t)
	setRulesForTest(t, h.f, BatchRules-1)
	create := Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: ra.Start}, Data: value(t, 1)}
	r := h.batch(create)
	if !errors.Is(r.Error(), api.ErrInvalid) || !errors.Is(r.Batch[0].Error(), api.ErrInvalid) || len(r.Events) != 0 {
		t.Fatalf("rules %d: %+v %+v", BatchRules-1, r, r.Batch[0])
	}
	if _, err := h.f.Get("parts", api.Key{ID: ra.Start, Rev: 1}); err == nil {
		t.Fatal("a batch entry was applied under old rules")
	}
	h.ok(Command{Op: OpSetRules, Rules: BatchRules})
	r = h.batch(create, Command{Op: OpSetRules, Rules: BatchRules}, Command{Op: OpSetCluster, Cluster: "c1"},
		Command{Op: OpBatch, Batch: []Command{create}})
	if r.Err != nil || r.Batch[0].Err != nil {
		t.Fatalf("rules %d: %+v %+v", BatchRules, r, r.Batch[0])
	}
	for i, res := range r.Batch[1:] {
		if !errors.Is(res.Error(), api.ErrInvalid) {
			t.Fatalf("command %d: %v, want invalid", i+1, res.Error())
		}
	}
	batch := NewBatch(1, []*Command{&create})
	if err := h.f.Validate(batch); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("Validate(batch): %v", err)
	}
	withBatch := create
	withBatch.Batch = []Command{create}
	if err := h.f.Validate(&withBatch); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("Validate(create with commands): %v", err)
	}
	h.rejects(withBatch, api.ErrInvalid)
	// An empty batch entry is refused.
	h.index++
	b, _ := (&Command{Op: OpBatch, Time: h.now}).Encode()
	if r := h.f.Apply(h.index, b); !errors.Is(r.Error(), api.ErrInvalid) {
		t.Fatalf("empty batch: %+v", r)
	}
}
