package fsm

import (
	"bytes"
	"errors"
	"testing"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/storage"
	bolt "go.etcd.io/bbolt"
)

// setRulesForTest sets the rules version of f's state directly, as a
// cluster created by code of that version has it.
func setRulesForTest(t testing.TB, f *FSM, v uint32) {
	t.Helper()
	if err := f.db.Update(func(tx *bolt.Tx) error {
		return storage.PutUint(tx.Bucket(storage.BucketMeta), storage.MetaRules, uint64(v))
	}); err != nil {
		t.Fatal(err)
	}
	f.rules.Store(v)
}

// A state from before rules were versioned runs rules 1: a command with a
// session is applied as a plain command, as code of that version does
// (it ignores the fields), and the ops of rules 2 are refused, as that
// code refuses unknown ops. Raising the rules turns both on.
func TestRulesOneBehavesAsBefore(t *testing.T) {
	h, ra, _ := setup(t)
	setRulesForTest(t, h.f, 1)
	key := api.Key{ID: ra.Start, Rev: 1}
	create := Command{Op: OpCreate, Tree: "parts", Client: "a", Key: key, Data: value(t, 1), Session: "a", Seq: 1}
	h.ok(create)
	if r := h.apply(create); r.Repeat || !errors.Is(r.Error(), api.ErrExists) {
		t.Fatalf("rules 1: a resent create: %+v, want a plain exists rejection", r)
	}
	h.rejects(Command{Op: OpRemoveMember, Member: "n3"}, api.ErrInvalid)

	h.ok(Command{Op: OpSetRules, Rules: 2})
	if h.f.Rules() != 2 {
		t.Fatalf("rules %d after set-rules 2", h.f.Rules())
	}
	h.ok(Command{Op: OpSetRules, Rules: 1}) // never lowered
	if h.f.Rules() != 2 {
		t.Fatalf("rules %d after set-rules 1", h.f.Rules())
	}
	h.ok(Command{Op: OpRemoveMember, Member: "n3"})
	k2 := api.Key{ID: ra.Start + 1, Rev: 1}
	c2 := Command{Op: OpCreate, Tree: "parts", Client: "a", Key: k2, Data: value(t, 2), Session: "a", Seq: 2}
	h.ok(c2)
	if r := h.send(c2); !r.Repeat {
		t.Fatalf("rules 2: a resent create: %+v, want a repeat", r)
	}
}

// A replica meets newer rules than its code knows: it stops, applies
// nothing of the batch, and says to upgrade; a snapshot of such a state is
// refused the same way, before it replaces anything.
func TestNewerRulesStopAReplica(t *testing.T) {
	h, ra, _ := setup(t)
	before := h.f.AppliedIndex()
	create, _ := (&Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: ra.Start, Rev: 1}, Data: value(t, 1)}).Encode()
	raise, _ := (&Command{Op: OpSetRules, Rules: RulesVersion + 1}).Encode()
	_, err := h.f.TryApplyBatch([]Entry{{Index: before + 1, Data: create}, {Index: before + 2, Data: raise}})
	if !errors.Is(err, ErrNeedsUpgrade) {
		t.Fatalf("batch raising the rules past %d: %v, want ErrNeedsUpgrade", RulesVersion, err)
	}
	if h.f.AppliedIndex() != before {
		t.Fatalf("applied index moved to %d", h.f.AppliedIndex())
	}
	if _, err := h.f.Get("parts", api.Key{ID: ra.Start, Rev: 1}); !errors.Is(err, api.ErrNotFound) && !errors.Is(err, api.ErrTreeNotFound) {
		t.Fatalf("the create before the raise was applied: %v", err)
	}

	// A state already at newer rules (written by newer code).
	newer := newHarness(t)
	setRulesForTest(t, newer.f, RulesVersion+1)
	s, err := newer.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var snap bytes.Buffer
	if _, err := s.WriteTo(&snap); err != nil {
		t.Fatal(err)
	}
	s.Release()
	if err := h.f.Restore(&snap); !errors.Is(err, ErrNeedsUpgrade) {
		t.Fatalf("restore of a rules %d snapshot: %v, want ErrNeedsUpgrade", RulesVersion+1, err)
	}
	if h.f.Rules() != RulesVersion {
		t.Fatalf("rules %d after the refused restore", h.f.Rules())
	}
	if _, err := newer.f.TryApplyBatch([]Entry{{Index: 1, Data: create}}); !errors.Is(err, ErrNeedsUpgrade) {
		t.Fatalf("apply on a rules %d state: %v, want ErrNeedsUpgrade", RulesVersion+1, err)
	}
}

// A new cluster starts with the rules its set-cluster command names.
func TestSetClusterSetsRules(t *testing.T) {
	h := newHarness(t)
	setRulesForTest(t, h.f, 1)
	h.ok(Command{Op: OpSetCluster, Cluster: "c1", Rules: RulesVersion})
	if h.f.Rules() != RulesVersion {
		t.Fatalf("rules %d, want %d", h.f.Rules(), RulesVersion)
	}
}

// Under rules 1 the stricter checks of rules 2 do not apply in the state
// machine: entries that code of rules 1 accepted (a client without a
// name, a value nested deeper than api.MaxDepth) are accepted alike, so an
// old log replays the same; under rules 2 they are refused.
func TestRulesOneKeepsOldChecks(t *testing.T) {
	deep := append(bytes.Repeat([]byte{0x81}, api.MaxDepth+10), 0x01) // arrays in arrays
	for _, rules := range []uint32{1, 2} {
		h := newHarness(t)
		setRulesForTest(t, h.f, rules)
		h.ok(Command{Op: OpSetCluster, Cluster: "c1"})
		nameless := Command{Op: OpRegisterClient, Client: "x"}
		deepCreate := Command{Op: OpCreate, Tree: "parts", Data: deep}
		if rules == 1 {
			h.ok(nameless)
			h.ok(deepCreate)
			continue
		}
		h.rejects(nameless, api.ErrInvalid)
		h.rejects(deepCreate, api.ErrInvalid)
	}
}
