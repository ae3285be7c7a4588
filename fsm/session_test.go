package fsm

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

// send applies c as the next entry and returns its result, whatever its
// index (a repeat answers the index of the original).
func (h *harness) send(c Command) *Result {
	h.t.Helper()
	h.index++
	h.now += int64(time.Second)
	if c.Time == 0 {
		c.Time = h.now
	}
	b, err := c.Encode()
	if err != nil {
		h.t.Fatal(err)
	}
	return h.f.Apply(h.index, b)
}

func newHarnessCfg(t testing.TB, cfg Config) *harness {
	t.Helper()
	cfg.Path, cfg.NoSync, cfg.Logger = filepath.Join(t.TempDir(), "fsm.db"), true, slog.New(slog.DiscardHandler)
	f, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	setRulesForTest(t, f, RulesVersion)
	return &harness{t: t, f: f, now: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC).UnixNano()}
}

func TestSessionRepeatIsAnsweredNotApplied(t *testing.T) {
	h, ra, _ := setup(t)
	create := Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: ra.Start}, Data: value(t, 1), Session: "a", Seq: 1}
	first := h.send(create)
	if first.Err != nil || first.Repeat || len(first.Events) != 1 {
		t.Fatalf("first apply: %+v", first)
	}
	again := h.send(create)
	if again.Err != nil || !again.Repeat || again.Key != first.Key || again.Index != first.Index || len(again.Events) != 0 {
		t.Fatalf("repeat: %+v, want the first result (key %s index %d) marked Repeat without events", again, first.Key, first.Index)
	}
	// An operator create (the cluster picks the id) is not applied twice either.
	op := Command{Op: OpCreate, Tree: "parts", Client: "a", Data: value(t, 2), Session: "a", Seq: 2}
	k1 := h.send(op)
	k2 := h.send(op)
	if k1.Err != nil || !k2.Repeat || k2.Key != k1.Key {
		t.Fatalf("assigned-id create: %+v then %+v", k1, k2)
	}
	if list, _ := h.f.List("parts", api.Key{}, 0); len(list) != 2 {
		t.Fatalf("%d records, want 2: a repeat was applied again", len(list))
	}

	// Create, borrow, update: the update repeated (its answer lost) is
	// answered, not refused as a conflict and not applied twice.
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: first.Key})
	upd := Command{Op: OpUpdate, Tree: "parts", Client: "a", Key: first.Key, Data: value(t, 3), Session: "a", Seq: 3}
	u1, u2 := h.send(upd), h.send(upd)
	if u1.Err != nil || u2.Err != nil || !u2.Repeat || u2.Index != u1.Index {
		t.Fatalf("update then repeat: %+v, %+v", u1, u2)
	}
	if rec, _ := h.f.Get("parts", first.Key); rec.Index != u1.Index {
		t.Fatalf("record index %d, want %d (the update applied once)", rec.Index, u1.Index)
	}

	// A rejection is recorded too: the repeat gets the same rejection,
	// even once the cause is gone.
	bad := Command{Op: OpUpdate, Tree: "parts", Client: "b", Key: first.Key, Data: value(t, 4), Session: "b", Seq: 1}
	r1 := h.send(bad)
	if !errors.Is(r1.Error(), api.ErrBorrowed) && !errors.Is(r1.Error(), api.ErrNotBorrowed) {
		t.Fatalf("update by b: %v", r1.Error())
	}
	h.ok(Command{Op: OpReturn, Tree: "parts", Client: "a", Key: first.Key})
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "b", Key: first.Key})
	r2 := h.send(bad)
	if !r2.Repeat || r2.Err == nil || r2.Err.Code != r1.Err.Code || r2.Index != r1.Index {
		t.Fatalf("repeat of a rejection: %+v, want %v at %d", r2, r1.Err, r1.Index)
	}

	// Grant-range and register-client repeats name what the first made.
	g := Command{Op: OpGrantRange, Client: "a", Size: 5, Session: "a", Seq: 4}
	g1, g2 := h.send(g), h.send(g)
	if g1.Range == nil || g2.Range == nil || g2.Range.Start != g1.Range.Start || !g2.Repeat {
		t.Fatalf("grant-range repeat: %+v %+v", g1.Range, g2.Range)
	}
	if rs, _ := h.f.Ranges("a"); len(rs) != 2 {
		t.Fatalf("client a has %d ranges, want 2", len(rs))
	}
	reg := Command{Op: OpRegisterClient, Client: "c", Name: "carol", Session: "key-1", Seq: 1, ReqHash: "h1"}
	reg2 := reg
	reg2.Client = "d" // the HTTP layer picks a new id for each request
	c1, c2 := h.send(reg), h.send(reg2)
	if c1.Client == nil || c2.Client == nil || c2.Client.ID != "c" {
		t.Fatalf("register-client repeat: %+v %+v", c1.Client, c2.Client)
	}
	if _, err := h.f.Client("d"); !errors.Is(err, api.ErrUnknownClient) && !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("the repeat registered a second client: %v", err)
	}
}

func TestSessionChecks(t *testing.T) {
	h, ra, _ := setup(t)
	d := value(t, 1)
	h.rejects(Command{Op: OpCreate, Tree: "p", Data: d, Session: "a"}, api.ErrInvalid)
	h.rejects(Command{Op: OpCreate, Tree: "p", Data: d, Seq: 1}, api.ErrInvalid)
	h.rejects(Command{Op: OpCreate, Tree: "p", Data: d, Session: "a\x00b", Seq: 1}, api.ErrInvalid)
	h.rejects(Command{Op: OpCreate, Tree: "p", Data: d, Session: string(bytes.Repeat([]byte("x"), MaxSessionID+1)), Seq: 1, ReqHash: "h"}, api.ErrInvalid)
	// A client session names a registered client.
	h.rejects(Command{Op: OpCreate, Tree: "p", Data: d, Session: "nobody", Seq: 1}, api.ErrUnknownClient)
	// A key used with another request is refused, and nothing is applied.
	h.ok(Command{Op: OpCreate, Tree: "p", Client: "a", Key: api.Key{ID: ra.Start}, Data: d, Session: "k", Seq: 1, ReqHash: "one"})
	h.rejects(Command{Op: OpCreate, Tree: "p", Client: "a", Key: api.Key{ID: ra.Start + 1}, Data: d, Session: "k", Seq: 1, ReqHash: "two"}, api.ErrKeyReused)
	if list, _ := h.f.List("p", api.Key{}, 0); len(list) != 1 {
		t.Fatalf("%d records, want 1", len(list))
	}
	// A client session and a key session of the same name are apart.
	r := h.send(Command{Op: OpCreate, Tree: "p", Client: "a", Key: api.Key{ID: ra.Start + 2}, Data: d, Session: "a", Seq: 1})
	if r.Err != nil || r.Repeat {
		t.Fatalf("client session a seq 1: %+v", r)
	}
}

func TestSessionWindow(t *testing.T) {
	h := newHarnessCfg(t, Config{SessionWindow: 4})
	h.ok(Command{Op: OpRegisterClient, Client: "a", Name: "alice"})
	create := func(seq uint64) Command {
		return Command{Op: OpCreate, Tree: "p", Client: "a", Data: value(t, seq), Session: "a", Seq: seq}
	}
	// Out of order within the window is fine.
	for _, seq := range []uint64{2, 1, 3, 4, 6, 5} {
		if r := h.send(create(seq)); r.Err != nil || r.Repeat {
			t.Fatalf("seq %d: %+v", seq, r)
		}
	}
	// 1 and 2 were forgotten (the window keeps 3-6): refused, never applied again.
	for _, seq := range []uint64{1, 2} {
		h.rejects(create(seq), api.ErrSeqForgotten)
	}
	for _, seq := range []uint64{3, 6} {
		if r := h.send(create(seq)); !r.Repeat {
			t.Fatalf("seq %d in the window: %+v, want a repeat", seq, r)
		}
	}
	if list, _ := h.f.List("p", api.Key{}, 0); len(list) != 6 {
		t.Fatalf("%d records, want 6", len(list))
	}
	// Removing the client drops its sessions.
	h.ok(Command{Op: OpRemoveClient, Client: "a"})
	h.ok(Command{Op: OpRegisterClient, Client: "a", Name: "alice again"})
	if r := h.send(create(1)); r.Err != nil || r.Repeat {
		t.Fatalf("seq 1 of a new client a: %+v, want applied", r)
	}
}

func TestIdemKeyRetention(t *testing.T) {
	h := newHarnessCfg(t, Config{MaxIdemKeys: 3, IdemKeyRetention: time.Hour})
	key := func(k string) Command {
		return Command{Op: OpCreate, Tree: "p", Data: value(t, k), Session: k, Seq: 1, ReqHash: "h-" + k}
	}
	first := h.ok(key("k1"))
	h.ok(key("k2"))
	h.ok(key("k3"))
	if r := h.send(key("k1")); !r.Repeat || r.Key != first.Key {
		t.Fatalf("k1 within limits: %+v", r)
	}
	h.ok(key("k4")) // over the limit: k1, the oldest, is forgotten
	if r := h.send(key("k1")); r.Repeat || r.Err != nil {
		t.Fatalf("k1 after eviction: %+v, want applied as new", r)
	}
	// k1 is now the newest; k2 (oldest) and k3 went.
	if r := h.send(key("k4")); !r.Repeat {
		t.Fatalf("k4: %+v, want a repeat", r)
	}
	// Keys older than the retention are forgotten when new keys come.
	h.now += int64(2 * time.Hour)
	h.ok(key("k5"))
	if r := h.send(key("k4")); r.Repeat {
		t.Fatalf("k4 after retention: %+v, want applied as new", r)
	}
}

// TestSessionsReplicate: sessions are replicated state: in snapshots and
// in the content hash, and a replica given the same entries answers the
// same repeats.
func TestSessionsReplicate(t *testing.T) {
	src, ra, _ := setup(t)
	var entries []Entry
	add := func(c Command) {
		c.Time = int64(len(entries) + 1)
		b, _ := c.Encode()
		entries = append(entries, Entry{Index: src.index + uint64(len(entries)) + 1, Data: b})
	}
	for i := range uint64(6) {
		c := Command{Op: OpCreate, Tree: "p", Client: "a", Key: api.Key{ID: ra.Start + i%3}, Data: value(t, i), Session: "a", Seq: 1 + i%3}
		add(c)
		add(Command{Op: OpCreate, Tree: "q", Data: value(t, i), Session: "key", Seq: 1 + i%2, ReqHash: "h"})
	}
	replica := newHarness(t)
	snap, err := src.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if err := replica.f.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	r1 := src.f.ApplyBatch(entries)
	r2 := replica.f.ApplyBatch(entries)
	for i := range r1 {
		if r1[i].Repeat != r2[i].Repeat || r1[i].Key != r2[i].Key || r1[i].Index != r2[i].Index {
			t.Fatalf("entry %d: source %+v, replica %+v", i, r1[i], r2[i])
		}
	}
	if !r1[6].Repeat || !r1[5].Repeat || r1[3].Repeat {
		t.Fatalf("repeats not recognised: %+v %+v %+v", r1[6], r1[5], r1[3])
	}
	_, h1, _ := src.f.ContentHash()
	_, h2, _ := replica.f.ContentHash()
	if h1 != h2 {
		t.Fatalf("hashes differ: %s %s", h1, h2)
	}
	if list, _ := src.f.List("q", api.Key{}, 0); len(list) != 2 {
		t.Fatalf("tree q has %d records, want 2", len(list))
	}

	// A snapshot taken now carries the sessions: a repeat after restore
	// is still answered.
	snap, err = src.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	snap.WriteTo(&buf)
	snap.Release()
	fresh := newHarness(t)
	if err := fresh.f.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	fresh.index = fresh.f.AppliedIndex()
	if r := fresh.send(Command{Op: OpCreate, Tree: "p", Client: "a", Key: api.Key{ID: ra.Start}, Data: value(t, 0), Session: "a", Seq: 1}); !r.Repeat {
		t.Fatalf("after restore: %+v, want a repeat", r)
	}
	_, h3, _ := fresh.f.ContentHash()
	_, h4, _ := src.f.ContentHash()
	if h3 == h4 {
		t.Fatal("content hash did not change with the applied index")
	}
}
