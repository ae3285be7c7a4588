package fsm

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

func actions(h []api.AuditEntry) []string {
	var out []string
	for _, e := range h {
		s := string(e.Action)
		if e.Holder != "" {
			s += " " + e.Holder
		}
		if e.Client != "" {
			s += " -> " + e.Client
		}
		out = append(out, s)
	}
	return out
}

func history(t *testing.T, h *harness, key api.Key) []string {
	t.Helper()
	hist, err := h.f.History("parts", key)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range hist {
		if e.Tree != "parts" || e.Key != key || e.Index == 0 || e.Time.IsZero() || (i > 0 && e.Index < hist[i-1].Index) {
			t.Fatalf("history entry %d: %+v", i, e)
		}
	}
	return actions(hist)
}

// Every change of a borrow lands in the record's replicated history.
func TestBorrowHistory(t *testing.T) {
	h, ra, _ := setup(t)
	key := api.Key{ID: ra.Start, Rev: 1}
	h.ok(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: key, Data: value(t, 1)})
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: key})
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: key, TTL: int64(time.Hour)})
	h.ok(Command{Op: OpReturn, Tree: "parts", Client: "a", Key: key})
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "b", Key: key})
	r := h.ok(Command{Op: OpForceReturn, Tree: "parts", Key: key, Reason: "bob is on holiday"})
	if r.Events[0].Holder != "b" || !r.Events[0].Forced || r.Events[0].Reason != "bob is on holiday" {
		t.Fatalf("force-return event %+v", r.Events[0])
	}
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: key})
	r = h.ok(Command{Op: OpTakeOver, Tree: "parts", Client: "b", Key: key, Reason: "alice left"})
	if len(r.Events) != 2 || r.Events[0].Type != api.EventReturned || r.Events[0].Holder != "a" || !r.Events[0].Forced ||
		r.Events[1].Type != api.EventBorrowed || r.Events[1].Client != "b" {
		t.Fatalf("take-over events %+v", r.Events)
	}
	h.rejects(Command{Op: OpUpdate, Tree: "parts", Client: "a", Key: key, Data: value(t, 2)}, api.ErrNotBorrowed)
	h.ok(Command{Op: OpUpdate, Tree: "parts", Client: "b", Key: key, Data: value(t, 2)})
	h.ok(Command{Op: OpRelease, Tree: "parts", Client: "b", Key: key})
	h.rejects(Command{Op: OpTakeOver, Tree: "parts", Client: "a", Key: key}, api.ErrReleased)
	h.rejects(Command{Op: OpTakeOver, Tree: "parts", Client: "nobody", Key: api.Key{ID: ra.Start + 9, Rev: 1}}, api.ErrNotFound)
	got := history(t, h, key)
	want := []string{"borrowed -> a", "renewed -> a", "returned a", "borrowed -> b", "forced b", "borrowed -> a",
		"taken a -> b", "released b"}
	if !slices.Equal(got, want) {
		t.Fatalf("history\n%q\nwant\n%q", got, want)
	}
	// A deleted record keeps its history.
	k2 := api.Key{ID: ra.Start + 1, Rev: 1}
	h.ok(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: k2, Data: value(t, 1)})
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: k2})
	h.ok(Command{Op: OpDelete, Tree: "parts", Client: "a", Key: k2})
	if got := history(t, h, k2); !slices.Equal(got, []string{"borrowed -> a", "deleted a"}) {
		t.Fatalf("history of a deleted record %q", got)
	}
}

// An expired borrow ends once: by the leader's expire command, or by the
// next borrow if that comes first; an expire command that finds the
// borrow renewed or gone changes nothing.
func TestExpire(t *testing.T) {
	h, ra, _ := setup(t)
	key := api.Key{ID: ra.Start, Rev: 1}
	h.ok(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: key, Data: value(t, 1)})
	at := h.now + int64(time.Second)
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: key, TTL: int64(10 * time.Second), Time: at})
	expires := at + int64(10*time.Second)
	if r := h.ok(Command{Op: OpExpire, Tree: "parts", Key: key, Time: expires - 1}); len(r.Events) != 0 {
		t.Fatalf("early expire changed something: %+v", r.Events)
	}
	r := h.ok(Command{Op: OpExpire, Tree: "parts", Key: key, Time: expires})
	if len(r.Events) != 1 || r.Events[0].Type != api.EventReturned || !r.Events[0].Expired || r.Events[0].Holder != "a" {
		t.Fatalf("expire events %+v", r.Events)
	}
	if r := h.ok(Command{Op: OpExpire, Tree: "parts", Key: key, Time: expires + 1}); len(r.Events) != 0 {
		t.Fatalf("second expire changed something: %+v", r.Events)
	}
	// Lazily: the next borrow after the expiry ends the old one first.
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: key, TTL: int64(time.Second), Time: expires + 2})
	r = h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "b", Key: key, Time: expires + 2 + int64(time.Second)})
	if len(r.Events) != 2 || !r.Events[0].Expired || r.Events[0].Holder != "a" || r.Events[1].Client != "b" {
		t.Fatalf("borrow after an unexpired-but-late borrow: %+v", r.Events)
	}
	want := []string{"borrowed -> a", "expired a", "borrowed -> a", "expired a", "borrowed -> b"}
	if got := history(t, h, key); !slices.Equal(got, want) {
		t.Fatalf("history %q, want %q", got, want)
	}
	hist, _ := h.f.History("parts", key)
	if !hist[1].Time.Equal(time.Unix(0, expires)) || !hist[1].Expires.Equal(time.Unix(0, expires)) {
		t.Fatalf("expiry entry %+v, want time and expiry %v", hist[1], time.Unix(0, expires).UTC())
	}

	// A lapsed borrow ends as expired whatever ends it: its holder's
	// return, a force-return, a take-over, the removal of its holder.
	k2 := api.Key{ID: ra.Start + 1, Rev: 1}
	h.ok(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: k2, Data: value(t, 1)})
	lapse := func(client string) {
		h.ok(Command{Op: OpBorrow, Tree: "parts", Client: client, Key: k2, TTL: 1})
	}
	lapse("a")
	if r := h.ok(Command{Op: OpReturn, Tree: "parts", Client: "a", Key: k2}); !r.Events[0].Expired {
		t.Fatalf("return of a lapsed borrow: %+v", r.Events)
	}
	lapse("a")
	h.ok(Command{Op: OpForceReturn, Tree: "parts", Key: k2, Reason: "late"})
	lapse("a")
	h.ok(Command{Op: OpTakeOver, Tree: "parts", Client: "b", Key: k2, Reason: "a is gone"})
	h.ok(Command{Op: OpReturn, Tree: "parts", Client: "b", Key: k2})
	lapse("a")
	h.ok(Command{Op: OpRemoveClient, Client: "a"})
	want = []string{"borrowed -> a", "expired a", "borrowed -> a", "expired a", "borrowed -> a", "expired a", "taken -> b", "returned b",
		"borrowed -> a", "expired a"}
	if got := history(t, h, k2); !slices.Equal(got, want) {
		t.Fatalf("history of lapsed borrows %q, want %q", got, want)
	}
}

// Removing a client returns its borrows, retires its ranges and refuses
// whatever it sends afterwards.
func TestRemoveClient(t *testing.T) {
	h, ra, rb := setup(t)
	k1, k2 := api.Key{ID: ra.Start, Rev: 1}, api.Key{ID: ra.Start + 1, Rev: 1}
	for _, k := range []api.Key{k1, k2} {
		h.ok(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: k, Data: value(t, 1)})
		h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: k})
	}
	r := h.ok(Command{Op: OpRemoveClient, Client: "a", Reason: "laptop stolen"})
	if len(r.Events) != 3 || r.Events[0].Holder != "a" || r.Events[0].Tree != "parts" || !r.Events[0].Forced || r.Events[2].Type != api.EventClientGone {
		t.Fatalf("remove-client events %+v", r.Events)
	}
	for _, k := range []api.Key{k1, k2} {
		if got := history(t, h, k); !slices.Equal(got, []string{"borrowed -> a", "client_removed a"}) {
			t.Fatalf("history of %v: %q", k, got)
		}
	}
	if bs, _ := h.f.Borrows(""); len(bs) != 0 {
		t.Fatalf("borrows left: %+v", bs)
	}
	rs, _ := h.f.Ranges("a")
	if len(rs) != 1 || !rs[0].Retired {
		t.Fatalf("ranges of the removed client: %+v", rs)
	}
	if rs, _ := h.f.Ranges("b"); len(rs) != 1 || rs[0].Retired || rs[0].Start != rb.Start {
		t.Fatalf("ranges of another client: %+v", rs)
	}
	h.rejects(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: ra.Start + 2}, Data: value(t, 1)}, api.ErrUnknownClient)
	h.rejects(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: k1}, api.ErrUnknownClient)
	h.rejects(Command{Op: OpGrantRange, Client: "a", Size: 10}, api.ErrUnknownClient)
	h.rejects(Command{Op: OpRemoveClient, Client: "a"}, api.ErrUnknownClient)
	// Registering the same id again does not revive the ranges.
	h.ok(Command{Op: OpRegisterClient, Client: "a", Name: "alice again"})
	h.rejects(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: ra.Start + 2}, Data: value(t, 1)}, api.ErrNotInRange)
}

// Property: whatever mix of range grants, operator creates, snapshots and
// restores (a new leader, or a follower catching up by snapshot), no id is
// ever handed out twice.
func TestNoIDGrantedTwice(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		h := newHarness(t)
		h.ok(Command{Op: OpSetCluster, Cluster: "c1"})
		for _, c := range []string{"a", "b", "c"} {
			h.ok(Command{Op: OpRegisterClient, Client: c, Name: c})
		}
		seen := map[uint64]string{}
		take := func(id uint64, what string) {
			if prev, dup := seen[id]; dup {
				t.Fatalf("seed %d: id %d handed out twice: %s and %s", seed, id, prev, what)
			}
			seen[id] = what
		}
		for step := range 300 {
			switch rng.IntN(10) {
			case 0, 1, 2, 3:
				c := []string{"a", "b", "c"}[rng.IntN(3)]
				r := h.ok(Command{Op: OpGrantRange, Client: c, Size: 1 + rng.Uint64N(50)}).Range
				for id := r.Start; id < r.End; id++ {
					take(id, "range of "+c)
				}
			case 4, 5, 6:
				r := h.ok(Command{Op: OpCreate, Tree: "parts", Data: value(t, step)})
				take(r.Key.ID, "operator create")
			case 7:
				h.ok(Command{Op: OpRemoveClient, Client: []string{"a", "b", "c"}[rng.IntN(3)]})
				for _, c := range []string{"a", "b", "c"} {
					h.ok(Command{Op: OpRegisterClient, Client: c, Name: c})
				}
			default:
				// The state moves to a new machine through a snapshot.
				snap, err := h.f.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				_, err = snap.WriteTo(&buf)
				snap.Release()
				if err != nil {
					t.Fatal(err)
				}
				next := newHarness(t)
				if err := next.f.Restore(&buf); err != nil {
					t.Fatal(err)
				}
				next.index, next.now = h.index, h.now
				h = next
			}
		}
	}
}
