package fsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/schema"
	"github.com/shelfdb/shelf/storage"
	bolt "go.etcd.io/bbolt"
)

type harness struct {
	t     testing.TB
	f     *FSM
	index uint64
	now   int64
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	f, err := Open(Config{Path: filepath.Join(t.TempDir(), "fsm.db"), NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	setRulesForTest(t, f, RulesVersion)
	return &harness{t: t, f: f, now: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC).UnixNano()}
}

func (h *harness) apply(c Command) *Result {
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
	r := h.f.Apply(h.index, b)
	if r.Index != h.index {
		h.t.Fatalf("result index %d, want %d", r.Index, h.index)
	}
	return r
}

func (h *harness) ok(c Command) *Result {
	h.t.Helper()
	r := h.apply(c)
	if r.Err != nil {
		h.t.Fatalf("%s: unexpected rejection: %v", c.Op, r.Err)
	}
	return r
}

func (h *harness) rejects(c Command, want error) *Result {
	h.t.Helper()
	r := h.apply(c)
	if !errors.Is(r.Error(), want) {
		h.t.Fatalf("%s: got %v, want %v", c.Op, r.Error(), want)
	}
	return r
}

func value(t testing.TB, v any) []byte {
	t.Helper()
	b, err := api.EncodeValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// setup registers clients a and b, each with a range of 10 ids.
func setup(t testing.TB) (h *harness, ra, rb *api.Range) {
	h = newHarness(t)
	h.ok(Command{Op: OpSetCluster, Cluster: "c1"})
	h.ok(Command{Op: OpRegisterClient, Client: "a", Name: "alice"})
	h.ok(Command{Op: OpRegisterClient, Client: "b", Name: "bob"})
	ra = h.ok(Command{Op: OpGrantRange, Client: "a", Size: 10}).Range
	rb = h.ok(Command{Op: OpGrantRange, Client: "b", Size: 10}).Range
	return h, ra, rb
}

func TestClusterIDIsSetOnce(t *testing.T) {
	h := newHarness(t)
	h.rejects(Command{Op: OpSetCluster}, api.ErrInvalid)
	h.ok(Command{Op: OpSetCluster, Cluster: "c1"})
	if h.f.ClusterID() != "c1" {
		t.Fatalf("cluster id %q", h.f.ClusterID())
	}
	h.ok(Command{Op: OpSetCluster, Cluster: "c1"})
	h.rejects(Command{Op: OpSetCluster, Cluster: "c2"}, api.ErrWrongCluster)
	if h.f.ClusterID() != "c1" {
		t.Fatalf("cluster id changed to %q", h.f.ClusterID())
	}
}

func TestRangesNeverOverlap(t *testing.T) {
	h, ra, rb := setup(t)
	if ra.Start != 1 || ra.End != 11 || rb.Start != 11 || rb.End != 21 {
		t.Fatalf("ranges %+v %+v", ra, rb)
	}
	// An operator create takes from the same counter: never inside a range.
	k := h.ok(Command{Op: OpCreate, Tree: "parts", Data: value(t, map[string]any{"n": 1})}).Key
	if k.ID != 21 || k.Rev != 1 {
		t.Fatalf("operator key %v, want 21/1", k)
	}
	rc := h.ok(Command{Op: OpGrantRange, Client: "a", Size: 5}).Range
	if rc.Start != 22 {
		t.Fatalf("third range starts at %d, want 22", rc.Start)
	}
	h.rejects(Command{Op: OpGrantRange, Client: "a", Size: 0}, api.ErrInvalid)
	h.rejects(Command{Op: OpGrantRange, Client: "a", Size: MaxRangeSize + 1}, api.ErrInvalid)
	h.rejects(Command{Op: OpGrantRange, Client: "zz", Size: 5}, api.ErrUnknownClient)
	rs, err := h.f.Ranges("a")
	if err != nil || len(rs) != 2 {
		t.Fatalf("ranges of a: %v %v", rs, err)
	}
}

func TestCreateOnlyFromOwnRange(t *testing.T) {
	h, ra, rb := setup(t)
	data := value(t, map[string]any{"name": "R1"})
	h.ok(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: ra.Start + 3}, Data: data})
	h.rejects(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: rb.Start}, Data: data}, api.ErrNotInRange)
	h.rejects(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: 999}, Data: data}, api.ErrNotInRange)
	h.rejects(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: ra.Start + 3}, Data: data}, api.ErrExists)
	h.rejects(Command{Op: OpCreate, Tree: "parts", Client: "nobody", Key: api.Key{ID: ra.Start}, Data: data}, api.ErrUnknownClient)
	h.rejects(Command{Op: OpCreate, Tree: "bad/name", Client: "a", Key: api.Key{ID: ra.Start}, Data: data}, api.ErrInvalid)
	h.rejects(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: ra.Start}}, api.ErrInvalid)
	h.rejects(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: ra.Start}, Data: []byte{0xff, 0x00}}, api.ErrInvalid)
	h.rejects(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: ra.Start, Rev: 2}, Data: data}, api.ErrInvalid)
	h.rejects(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: ra.Start}, Data: data, Schema: 3}, api.ErrUnknownSchema)
	h.rejects(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: ra.Start}, Data: bytes.Repeat([]byte{0x40}, DefaultMaxRecordSize+1)}, api.ErrTooLarge)

	rs, _ := h.f.Ranges("a")
	if rs[0].Used != 1 || rs[0].Next != ra.Start+4 {
		t.Fatalf("range usage %+v", rs[0])
	}
	rec, err := h.f.Get("parts", api.Key{ID: ra.Start + 3})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Key.Rev != 1 || rec.CreatedBy != "a" || !bytes.Equal(rec.Data, data) || rec.Borrow != nil {
		t.Fatalf("record %+v", rec)
	}
	trees, _ := h.f.Trees()
	if len(trees) != 1 || trees[0].Name != "parts" || trees[0].Records != 1 {
		t.Fatalf("trees %+v", trees)
	}
}

func TestBorrowRules(t *testing.T) {
	h, ra, _ := setup(t)
	key := api.Key{ID: ra.Start, Rev: 1}
	h.ok(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: key, Data: value(t, "v1")})
	upd := func(client string) Command {
		return Command{Op: OpUpdate, Tree: "parts", Client: client, Key: key, Data: value(t, "v2-"+client)}
	}
	h.rejects(upd("a"), api.ErrNotBorrowed) // creator does not hold it either
	h.rejects(Command{Op: OpDelete, Tree: "parts", Client: "a", Key: key}, api.ErrNotBorrowed)
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: key})
	r := h.rejects(Command{Op: OpBorrow, Tree: "parts", Client: "b", Key: key}, api.ErrBorrowed)
	if !bytes.Contains([]byte(r.Err.Message), []byte("alice")) {
		t.Fatalf("ErrBorrowed does not name the holder: %q", r.Err.Message)
	}
	h.rejects(upd("b"), api.ErrNotBorrowed)
	h.rejects(Command{Op: OpReturn, Tree: "parts", Client: "b", Key: key}, api.ErrNotBorrowed)
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: key}) // renew
	h.ok(upd("a"))
	rec, _ := h.f.Get("parts", key)
	if rec.Borrow == nil || rec.Borrow.Client != "a" || rec.Borrow.ClientName != "alice" {
		t.Fatalf("borrow %+v", rec.Borrow)
	}
	if v, _ := api.DecodeValue(rec.Data); v != "v2-a" {
		t.Fatalf("value %v", v)
	}
	h.ok(Command{Op: OpReturn, Tree: "parts", Client: "a", Key: key})
	h.rejects(upd("a"), api.ErrNotBorrowed)
	h.rejects(Command{Op: OpReturn, Tree: "parts", Client: "a", Key: key}, api.ErrNotBorrowed)

	// Force return by an operator ends b's borrow; b can no longer edit.
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "b", Key: key})
	bs, _ := h.f.Borrows("")
	if len(bs) != 1 || bs[0].Client != "b" || bs[0].Key != key || bs[0].Tree != "parts" {
		t.Fatalf("borrows %+v", bs)
	}
	h.ok(Command{Op: OpForceReturn, Tree: "parts", Key: key, Reason: "bob is on holiday"})
	h.rejects(Command{Op: OpForceReturn, Tree: "parts", Key: key}, api.ErrNotBorrowed)
	h.rejects(upd("b"), api.ErrNotBorrowed)

	// Delete needs the borrow and removes record and borrow.
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "b", Key: key})
	h.rejects(Command{Op: OpDelete, Tree: "parts", Client: "a", Key: key}, api.ErrNotBorrowed)
	h.ok(Command{Op: OpDelete, Tree: "parts", Client: "b", Key: key})
	if _, err := h.f.Get("parts", key); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if bs, _ := h.f.Borrows("parts"); len(bs) != 0 {
		t.Fatalf("borrow survived delete: %+v", bs)
	}
	h.rejects(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: key}, api.ErrNotFound)
	h.rejects(Command{Op: OpBorrow, Tree: "nosuch", Client: "a", Key: key}, api.ErrTreeNotFound)
	h.rejects(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: api.Key{ID: 1}}, api.ErrInvalid)
	h.rejects(Command{Op: OpBorrow, Tree: "parts", Client: "zz", Key: key}, api.ErrNotFound)
	if trees, _ := h.f.Trees(); trees[0].Records != 0 {
		t.Fatalf("count after delete: %+v", trees)
	}
}

func TestBorrowExpiry(t *testing.T) {
	h, ra, _ := setup(t)
	key := api.Key{ID: ra.Start, Rev: 1}
	h.ok(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: key, Data: value(t, 1)})
	h.rejects(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: key, TTL: -1}, api.ErrInvalid)
	// The expiry is the leader's time in the entry plus the ttl: the same on every replica.
	at := h.now + int64(time.Second)
	expires := at + int64(10*time.Second)
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: key, TTL: int64(10 * time.Second), Time: at})
	h.rejects(Command{Op: OpBorrow, Tree: "parts", Client: "b", Key: key, Time: expires - 1}, api.ErrBorrowed)
	h.ok(Command{Op: OpUpdate, Tree: "parts", Client: "a", Key: key, Data: value(t, 2), Time: expires - 1})
	// At the expiry time the borrow no longer counts, even before any command removed it.
	h.rejects(Command{Op: OpUpdate, Tree: "parts", Client: "a", Key: key, Data: value(t, 3), Time: expires}, api.ErrNotBorrowed)
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "b", Key: key, Time: expires})
	h.ok(Command{Op: OpUpdate, Tree: "parts", Client: "b", Key: key, Data: value(t, 4), Time: expires + 1})
}

func TestReleaseStateRevise(t *testing.T) {
	h, ra, _ := setup(t)
	key := api.Key{ID: ra.Start, Rev: 1}
	h.ok(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: key, Data: value(t, "r1")})
	h.rejects(Command{Op: OpRevise, Tree: "parts", Client: "a", Key: key}, api.ErrNotReleased)
	h.rejects(Command{Op: OpRelease, Tree: "parts", Client: "a", Key: key}, api.ErrNotBorrowed)
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: key})
	h.rejects(Command{Op: OpSetState, Tree: "parts", Client: "b", Key: key, State: 1}, api.ErrBorrowed)
	h.ok(Command{Op: OpRelease, Tree: "parts", Client: "a", Key: key})

	rec, _ := h.f.Get("parts", key)
	if !rec.Released || rec.Borrow != nil {
		t.Fatalf("after release: %+v", rec)
	}
	// Nothing but the state number changes any more.
	h.rejects(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: key}, api.ErrReleased)
	h.rejects(Command{Op: OpUpdate, Tree: "parts", Client: "a", Key: key, Data: value(t, "x")}, api.ErrReleased)
	h.rejects(Command{Op: OpDelete, Tree: "parts", Client: "a", Key: key}, api.ErrReleased)
	h.rejects(Command{Op: OpRelease, Tree: "parts", Client: "a", Key: key}, api.ErrReleased)
	h.ok(Command{Op: OpSetState, Tree: "parts", Client: "b", Key: key, State: 3})
	rec2, _ := h.f.Get("parts", key)
	if rec2.State != 3 || !bytes.Equal(rec2.Data, rec.Data) {
		t.Fatalf("state %d data %x", rec2.State, rec2.Data)
	}

	next := h.ok(Command{Op: OpRevise, Tree: "parts", Client: "b", Key: key}).Key
	if next != (api.Key{ID: key.ID, Rev: 2}) {
		t.Fatalf("revise gave %v", next)
	}
	h.rejects(Command{Op: OpRevise, Tree: "parts", Client: "b", Key: key}, api.ErrExists)
	draft, _ := h.f.Get("parts", api.Key{ID: key.ID}) // latest revision
	if draft.Key != next || draft.Released || draft.State != 0 || !bytes.Equal(draft.Data, rec.Data) {
		t.Fatalf("draft %+v", draft)
	}
	if draft.Borrow == nil || draft.Borrow.Client != "b" {
		t.Fatalf("reviser should hold the draft: %+v", draft.Borrow)
	}
	h.ok(Command{Op: OpUpdate, Tree: "parts", Client: "b", Key: next, Data: value(t, "r2")})
	old, _ := h.f.Get("parts", key)
	if !bytes.Equal(old.Data, rec.Data) {
		t.Fatal("released revision changed after its draft was edited")
	}
	list, err := h.f.List("parts", api.Key{}, 0)
	if err != nil || len(list) != 2 || list[0].Key != key || list[1].Key != next {
		t.Fatalf("list %v %v", list, err)
	}
}

// defOf returns the encoded schema definition of v's type.
func defOf(t testing.TB, v any) []byte {
	t.Helper()
	d, err := schema.Extract(reflect.TypeOf(v))
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type schemaV1 struct {
	Name string `codec:"name"`
}

type schemaV2 struct {
	Name string `codec:"name"`
	Qty  int32  `codec:"qty"`
}

type schemaV3 struct {
	Name string `codec:"name"`
	Qty  string `codec:"qty"`
}

func TestSchemas(t *testing.T) {
	h, ra, _ := setup(t)
	def, def2 := defOf(t, schemaV1{}), defOf(t, schemaV2{})
	v1 := h.ok(Command{Op: OpRegisterSchema, Tree: "parts", Data: def, Hash: "h1"}).Version
	again := h.ok(Command{Op: OpRegisterSchema, Tree: "parts", Data: def, Hash: "h1"}).Version
	v2 := h.ok(Command{Op: OpRegisterSchema, Tree: "parts", Data: def2, Hash: "h2"}).Version
	old := h.ok(Command{Op: OpRegisterSchema, Tree: "parts", Data: def, Hash: "h1"}).Version
	if v1 != 1 || again != 1 || v2 != 2 || old != 1 {
		t.Fatalf("versions %d %d %d, old code again %d", v1, again, v2, old)
	}
	h.ok(Command{Op: OpRegisterSchema, Tree: "parts2", Data: def, Hash: "h1"})
	h.rejects(Command{Op: OpRegisterSchema, Tree: "parts", Data: def}, api.ErrInvalid)
	h.rejects(Command{Op: OpRegisterSchema, Tree: "parts", Data: value(t, map[string]any{"fields": []any{"name"}}), Hash: "h9"}, api.ErrInvalid)
	r := h.rejects(Command{Op: OpRegisterSchema, Tree: "parts", Data: defOf(t, schemaV3{}), Hash: "h3"}, api.ErrIncompatible)
	if !strings.Contains(r.Err.Error(), `"qty"`) || !strings.Contains(r.Err.Error(), "int32") || !strings.Contains(r.Err.Error(), "string") {
		t.Errorf("incompatible change: %v", r.Err)
	}
	h.ok(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: ra.Start}, Data: value(t, 1), Schema: 2})
	h.rejects(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: ra.Start + 1}, Data: value(t, 1), Schema: 3}, api.ErrUnknownSchema)
	ss, _ := h.f.Schemas("parts")
	if len(ss) != 2 || ss[1].Version != 2 || ss[1].Hash != "h2" {
		t.Fatalf("schemas %+v", ss)
	}
	trees, _ := h.f.Trees()
	if len(trees) != 2 || len(trees[0].Schemas) != 2 || len(trees[1].Schemas) != 1 {
		t.Fatalf("trees %+v", trees)
	}
}

func TestReplayIsSkipped(t *testing.T) {
	h, ra, _ := setup(t)
	c := Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: ra.Start}, Data: value(t, 1), Time: h.now}
	b, _ := c.Encode()
	h.index++
	if r := h.f.Apply(h.index, b); r.Err != nil {
		t.Fatal(r.Err)
	}
	// The same entry again (raft replaying after a restart) changes nothing
	// and is not rejected as a duplicate.
	if r := h.f.Apply(h.index, b); r.Err != nil {
		t.Fatalf("replay rejected: %v", r.Err)
	}
	if tr, _ := h.f.Trees(); tr[0].Records != 1 {
		t.Fatalf("replay applied twice: %+v", tr)
	}
	// Non-command entries only advance the index.
	h.f.ApplyBatch([]Entry{{Index: h.index + 1}})
	if h.f.AppliedIndex() != h.index+1 {
		t.Fatalf("applied %d", h.f.AppliedIndex())
	}
}

func TestGarbageEntryIsRejectedNotFatal(t *testing.T) {
	h := newHarness(t)
	for i, b := range [][]byte{{}, {0xff}, []byte("hello"), {0xa1, 0x62, 'o', 'p', 0x18, 200}} {
		r := h.f.Apply(uint64(i+1), b)
		if !errors.Is(r.Error(), api.ErrInvalid) {
			t.Fatalf("entry %x: %v", b, r.Error())
		}
	}
	if h.f.AppliedIndex() != 4 {
		t.Fatalf("applied %d", h.f.AppliedIndex())
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fsm.db")
	f, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, f: f, now: 1}
	h.ok(Command{Op: OpSetCluster, Cluster: "c1"})
	k := h.ok(Command{Op: OpCreate, Tree: "t", Data: value(t, 1)}).Key
	f.Close()
	f, err = Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.AppliedIndex() != 2 || f.ClusterID() != "c1" {
		t.Fatalf("applied %d cluster %q", f.AppliedIndex(), f.ClusterID())
	}
	if _, err := f.Get("t", k); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotRestore(t *testing.T) {
	h, ra, _ := setup(t)
	for i := range uint64(5) {
		h.ok(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: ra.Start + i}, Data: value(t, i)})
	}
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	at := snap.Index()
	// Writes after the snapshot was taken are not in it.
	h.ok(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: ra.Start + 7}, Data: value(t, 7)})
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	other := newHarness(t)
	other.ok(Command{Op: OpCreate, Tree: "junk", Data: value(t, 0)})
	if err := other.f.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if other.f.AppliedIndex() != at || other.f.ClusterID() != "c1" {
		t.Fatalf("restored applied %d (want %d) cluster %q", other.f.AppliedIndex(), at, other.f.ClusterID())
	}
	list, _ := other.f.List("parts", api.Key{}, 0)
	if len(list) != 5 {
		t.Fatalf("restored %d records, want 5", len(list))
	}
	if _, err := other.f.Get("junk", api.Key{ID: 21}); !errors.Is(err, api.ErrTreeNotFound) {
		t.Fatalf("restore kept old state: %v", err)
	}

	// A damaged stream leaves the state in place.
	bad := bytes.Clone(buf.Bytes())
	bad = bad[:len(bad)/2]
	if err := other.f.Restore(bytes.NewReader(bad)); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("truncated snapshot: %v", err)
	}
	if err := other.f.Restore(bytes.NewReader([]byte("not a snapshot at all"))); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("garbage snapshot: %v", err)
	}
	if list, _ := other.f.List("parts", api.Key{}, 0); len(list) != 5 {
		t.Fatalf("failed restore damaged state: %d records", len(list))
	}

}

func TestWaitApplied(t *testing.T) {
	h := newHarness(t)
	var wg sync.WaitGroup
	wg.Add(1)
	var werr error
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		werr = h.f.WaitApplied(ctx, 3)
	}()
	for range 3 {
		h.ok(Command{Op: OpSetCluster, Cluster: "c1"})
	}
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.f.WaitApplied(ctx, 100); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitApplied on cancelled ctx: %v", err)
	}
}

func TestReadErrors(t *testing.T) {
	h, _, _ := setup(t)
	if _, err := h.f.Get("nosuch", api.Key{ID: 1}); !errors.Is(err, api.ErrTreeNotFound) {
		t.Fatal(err)
	}
	if _, err := h.f.Get("../x", api.Key{ID: 1}); !errors.Is(err, api.ErrInvalid) {
		t.Fatal(err)
	}
	if _, err := h.f.List("nosuch", api.Key{}, 10); !errors.Is(err, api.ErrTreeNotFound) {
		t.Fatal(err)
	}
	if _, err := h.f.Client("nosuch"); !errors.Is(err, api.ErrUnknownClient) {
		t.Fatal(err)
	}
}

func TestRegisterClient(t *testing.T) {
	h := newHarness(t)
	c := h.ok(Command{Op: OpRegisterClient, Client: "id-1", Name: "workstation-7"}).Client
	if c == nil || c.ID != "id-1" || c.Name != "workstation-7" || c.Registered.IsZero() {
		t.Fatalf("client %+v", c)
	}
	// Registering again renames, keeping the registration time.
	c2 := h.ok(Command{Op: OpRegisterClient, Client: "id-1", Name: "ws-7"}).Client
	if c2.Name != "ws-7" || !c2.Registered.Equal(c.Registered) {
		t.Fatalf("re-registered %+v, first %+v", c2, c)
	}
	h.rejects(Command{Op: OpRegisterClient, Name: "x"}, api.ErrInvalid)
	h.rejects(Command{Op: OpRegisterClient, Client: string(bytes.Repeat([]byte("x"), MaxClientID+1))}, api.ErrInvalid)
	h.rejects(Command{Op: OpRegisterClient, Client: "id-2", Name: string(bytes.Repeat([]byte("n"), MaxClientName+1))}, api.ErrInvalid)
	cs, err := h.f.Clients()
	if err != nil || len(cs) != 1 {
		t.Fatalf("clients %+v %v", cs, err)
	}
	if got, err := h.f.Client("id-1"); err != nil || got.Name != "ws-7" {
		t.Fatalf("client %+v %v", got, err)
	}
}

func TestEvents(t *testing.T) {
	h, ra, _ := setup(t)
	key := api.Key{ID: ra.Start, Rev: 1}
	types := func(r *Result) (out []api.EventType) {
		for _, e := range r.Events {
			if e.Index != r.Index || e.Time.IsZero() {
				t.Errorf("event %+v of entry %d", e, r.Index)
			}
			out = append(out, e.Type)
		}
		return out
	}
	check := func(r *Result, want ...api.EventType) {
		t.Helper()
		if got := types(r); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
	check(h.ok(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: key, Data: value(t, 1)}), api.EventCreated)
	check(h.rejects(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: key, Data: value(t, 1)}, api.ErrExists))
	check(h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: key}), api.EventBorrowed)
	check(h.ok(Command{Op: OpUpdate, Tree: "parts", Client: "a", Key: key, Data: value(t, 2)}), api.EventUpdated)
	r := h.ok(Command{Op: OpForceReturn, Tree: "parts", Key: key, Reason: "why"})
	check(r, api.EventReturned)
	if e := r.Events[0]; !e.Forced || e.Holder != "a" || e.Reason != "why" || e.Tree != "parts" || e.Key != key {
		t.Fatalf("force-return event %+v", e)
	}
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: key})
	check(h.ok(Command{Op: OpRelease, Tree: "parts", Client: "a", Key: key}), api.EventReleased, api.EventReturned)
	check(h.ok(Command{Op: OpSetState, Tree: "parts", Client: "b", Key: key, State: 2}), api.EventStateChanged)
	r = h.ok(Command{Op: OpRevise, Tree: "parts", Client: "b", Key: key})
	check(r, api.EventCreated, api.EventBorrowed)
	if r.Events[0].Key.Rev != 2 {
		t.Fatalf("revise event %+v", r.Events[0])
	}
	check(h.ok(Command{Op: OpDelete, Tree: "parts", Client: "b", Key: api.Key{ID: key.ID, Rev: 2}}), api.EventDeleted)
	check(h.ok(Command{Op: OpRegisterSchema, Tree: "parts", Data: defOf(t, schemaV1{}), Hash: "h"}), api.EventSchema)
	check(h.ok(Command{Op: OpGrantRange, Client: "a", Size: 3}), api.EventRange)
	check(h.ok(Command{Op: OpRegisterClient, Client: "c", Name: "carol"}), api.EventClient)
}

func TestContentHashEqualAtSameIndex(t *testing.T) {
	src, ra, _ := setup(t)
	var entries []Entry
	for i := range uint64(20) {
		c := Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: ra.Start + i%10}, Data: value(t, i), Time: int64(i + 1)}
		b, _ := c.Encode()
		entries = append(entries, Entry{Index: src.index + 1 + i, Data: b})
	}
	snap, err := src.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	snap.WriteTo(&buf)
	snap.Release()
	src.f.ApplyBatch(entries)

	replica := newHarness(t)
	if err := replica.f.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	replica.f.ApplyBatch(entries[:10])
	_, mid, _ := replica.f.ContentHash()
	replica.f.ApplyBatch(entries[10:]) // the second half: rejected creates, same outcome everywhere
	at1, h1, err1 := src.f.ContentHash()
	at2, h2, err2 := replica.f.ContentHash()
	if err1 != nil || err2 != nil || at1 != at2 || h1 != h2 {
		t.Fatalf("source %d %s %v, replica %d %s %v", at1, h1, err1, at2, h2, err2)
	}
	if mid == h2 {
		t.Fatal("content hash did not change with the applied index")
	}
	src.index += uint64(len(entries))
	src.ok(Command{Op: OpCreate, Tree: "other", Data: value(t, 1)})
	if _, h3, _ := src.f.ContentHash(); h3 == h1 {
		t.Fatal("content hash does not see a new record")
	}
}

func TestClientSeen(t *testing.T) {
	h, _, _ := setup(t)
	r := h.ok(Command{Op: OpClientSeen, Client: "a", Applied: 41})
	if len(r.Events) != 0 {
		t.Fatalf("client-seen emitted events %+v", r.Events)
	}
	seenAt := time.Unix(0, h.now).UTC()
	if r.Client == nil || r.Client.ID != "a" || r.Client.Name != "alice" || !r.Client.LastSeen.Equal(seenAt) || r.Client.ReplicaIndex != 41 {
		t.Fatalf("result client %+v, want last seen %v at 41", r.Client, seenAt)
	}
	got, err := h.f.Client("a")
	if err != nil || !got.LastSeen.Equal(seenAt) || got.ReplicaIndex != 41 || got.Registered.IsZero() {
		t.Fatalf("stored client %+v %v", got, err)
	}
	if other, _ := h.f.Client("b"); !other.LastSeen.IsZero() || other.ReplicaIndex != 0 {
		t.Fatalf("client b changed: %+v", other)
	}

	// A later sighting replaces both, whatever the index (a replica that
	// was reset reports a lower one); a rename keeps them.
	r = h.ok(Command{Op: OpClientSeen, Client: "a", Applied: 7})
	if r.Client.ReplicaIndex != 7 || !r.Client.LastSeen.After(seenAt) {
		t.Fatalf("second sighting %+v", r.Client)
	}
	h.ok(Command{Op: OpRegisterClient, Client: "a", Name: "alice-2"})
	if got, _ := h.f.Client("a"); got.Name != "alice-2" || got.ReplicaIndex != 7 || !got.LastSeen.Equal(r.Client.LastSeen) {
		t.Fatalf("after rename %+v", got)
	}

	h.rejects(Command{Op: OpClientSeen, Client: "nobody", Applied: 3}, api.ErrUnknownClient)
	h.rejects(Command{Op: OpClientSeen, Applied: 3}, api.ErrInvalid)

	// Deterministic like every command: a replica applying the same
	// entries reaches the same content.
	replica := newHarness(t)
	var entries []Entry
	for _, c := range []Command{
		{Op: OpRegisterClient, Client: "x", Name: "x", Time: 5e9},
		{Op: OpClientSeen, Client: "x", Applied: 1, Time: 9e9},
	} {
		b, _ := c.Encode()
		entries = append(entries, Entry{Index: uint64(len(entries) + 1), Data: b})
	}
	other := newHarness(t)
	replica.f.ApplyBatch(entries)
	other.f.ApplyBatch(entries)
	_, h1, _ := replica.f.ContentHash()
	_, h2, _ := other.f.ContentHash()
	if h1 != h2 {
		t.Fatal("client-seen is not deterministic")
	}
	if c, _ := replica.f.Client("x"); !c.LastSeen.Equal(time.Unix(9, 0)) || c.ReplicaIndex != 1 {
		t.Fatalf("replica client %+v", c)
	}
	if OpClientSeen.String() != "client-seen" {
		t.Fatalf("op name %q", OpClientSeen)
	}
}

// TestClientInfoEncodingUnchanged pins the stored bytes of a client that
// was never seen: the same as before LastSeen and ReplicaIndex existed, so
// states without sightings keep their content hash.
func TestClientInfoEncodingUnchanged(t *testing.T) {
	cl := api.ClientInfo{ID: "x", Name: "n", Registered: time.Unix(5, 0).UTC()}
	b, err := api.Marshal(&cl)
	if err != nil {
		t.Fatal(err)
	}
	want := "a3626964617864" + "6e616d65616e" + "6a72656769737465726564c074313937302d30312d30315430303a30303a30355a"
	if got := fmt.Sprintf("%x", b); got != want {
		t.Fatalf("client encodes as %s, want %s", got, want)
	}
}

// A definition stored before definitions were checked (opaque bytes) does
// not stop the tree from registering checked ones.
func TestSchemaAfterLegacyDefinition(t *testing.T) {
	h, _, _ := setup(t)
	var s api.Schema
	err := h.f.db.Update(func(tx *bolt.Tx) error {
		s = api.Schema{Tree: "parts", Version: 1, Hash: "legacy", Definition: value(t, map[string]any{"fields": []any{"name"}})}
		if _, err := tx.Bucket(storage.BucketTrees).CreateBucketIfNotExists([]byte("parts")); err != nil {
			return err
		}
		if err := storage.Put(tx.Bucket(storage.BucketTreeInfo), []byte("parts"), &storage.TreeInfo{}); err != nil {
			return err
		}
		return storage.Put(tx.Bucket(storage.BucketSchemas), storage.SchemaKey("parts", 1), &s)
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := h.ok(Command{Op: OpRegisterSchema, Tree: "parts", Data: defOf(t, schemaV1{}), Hash: "h1"}).Version; v != 2 {
		t.Fatalf("version after a legacy one: %d", v)
	}
}

// TestViewRecordValueOnly checks the two fillings of ViewRecord: all (a
// borrowed record with its metadata and borrow, as Get gives it) and the
// value alone (Tree, Key, Schema and Data; nothing else), for a given
// revision and for the latest one.
func TestViewRecordValueOnly(t *testing.T) {
	h, ra, _ := setup(t)
	key := api.Key{ID: ra.Start, Rev: 1}
	h.ok(Command{Op: OpRegisterSchema, Tree: "parts", Data: defOf(t, schemaV1{}), Hash: "h1"})
	h.ok(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: key, Schema: 1, Data: value(t, schemaV1{Name: "R1"})})
	h.ok(Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: key})
	full, err := h.f.Get("parts", key)
	if err != nil || full.Borrow == nil || full.CreatedBy != "a" || full.Created.IsZero() || full.Index == 0 {
		t.Fatalf("full record %+v, %v", full, err)
	}
	for _, k := range []api.Key{key, {ID: key.ID}} {
		var all, val api.Record
		if err := h.f.ViewRecord("parts", k, &all, true, func() error { all.Data = bytes.Clone(all.Data); return nil }); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(all, full) {
			t.Fatalf("%s: all %+v, want %+v", k, all, full)
		}
		if err := h.f.ViewRecord("parts", k, &val, false, func() error { val.Data = bytes.Clone(val.Data); return nil }); err != nil {
			t.Fatal(err)
		}
		want := api.Record{Tree: "parts", Key: key, Schema: 1, Data: full.Data}
		if !reflect.DeepEqual(val, want) {
			t.Fatalf("%s: value only %+v, want %+v", k, val, want)
		}
	}
}
