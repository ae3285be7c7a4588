package fsm

import (
	"errors"
	"testing"

	"github.com/shelfdb/shelf/api"
)

// FuzzDecodeCommand feeds arbitrary bytes to the log entry decoder: it must
// return a command or an api.ErrInvalid error, never panic.
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range []Command{
		{Op: OpCreate, Tree: "parts", Key: api.Key{ID: 3, Rev: 1}, Data: []byte{0x01}, Time: 1},
		{Op: OpGrantRange, Client: "c", Size: 10},
		{Op: OpForceReturn, Tree: "t", Key: api.Key{ID: 1, Rev: 1}, Reason: "r"},
	} {
		b, _ := c.Encode()
		f.Add(b)
	}
	batch, _ := NewBatch(1, []*Command{
		{Op: OpCreate, Tree: "parts", Key: api.Key{ID: 3, Rev: 1}, Data: []byte{0x01}},
		{Op: OpGrantRange, Client: "c", Size: 10},
	}).Encode()
	f.Add(batch)
	f.Add([]byte{})
	f.Add([]byte{0xbf, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if c.Op == 0 || c.Op >= opMax {
			t.Fatalf("accepted unknown op %d", c.Op)
		}
		if _, err := c.Encode(); err != nil {
			t.Fatalf("decoded command does not re-encode: %v", err)
		}
	})
}

// FuzzApply applies arbitrary entries to a state machine that holds a few
// records: every entry is applied or rejected, never a panic, and the
// applied index always advances.
func FuzzApply(f *testing.F) {
	seed := []Command{
		{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: 1}, Data: []byte{0x01}},
		{Op: OpBorrow, Tree: "parts", Client: "a", Key: api.Key{ID: 1, Rev: 1}},
		{Op: OpUpdate, Tree: "parts", Client: "a", Key: api.Key{ID: 1, Rev: 1}, Data: []byte{0x63, 'a', 'b', 'c'}},
		{Op: OpRevise, Tree: "parts", Client: "a", Key: api.Key{ID: 1, Rev: 1}},
		{Op: OpRegisterSchema, Tree: "parts", Data: defOf(f, schemaV2{}), Hash: "x"},
		{Op: OpClientSeen, Client: "a", Applied: 3},
		{Op: OpExpire, Tree: "parts", Key: api.Key{ID: 1, Rev: 1}},
		{Op: OpTakeOver, Tree: "parts", Client: "a", Key: api.Key{ID: 1, Rev: 1}, Reason: "r"},
		{Op: OpRemoveClient, Client: "a", Reason: "gone"},
	}
	for _, c := range seed {
		b, _ := c.Encode()
		f.Add(b)
	}
	batch := make([]*Command, len(seed))
	for i := range seed {
		batch[i] = &seed[i]
	}
	b, _ := NewBatch(1, batch).Encode()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, _, _ := setup(t)
		h.ok(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: 1}, Data: value(t, "x")})
		h.index++
		r := h.f.Apply(h.index, b)
		if r == nil || r.Index != h.index || h.f.AppliedIndex() != h.index {
			t.Fatalf("entry %x: result %+v applied %d", b, r, h.f.AppliedIndex())
		}
		if _, err := h.f.List("parts", api.Key{}, 0); err != nil {
			t.Fatalf("state unreadable after %x: %v", b, err)
		}
	})
}
