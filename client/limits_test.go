package client_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
)

// A write the cluster would refuse whatever its state (nested deeper than
// api.MaxDepth, over the size limit) is refused by Create and Update at
// once: it is not queued in the outbox and takes no id.
func TestWritesCheckedBeforeTheyAreQueued(t *testing.T) {
	s := startServer(t)
	a := open(t, t.TempDir(), s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	parts := a.Tree("parts")
	res, err := parts.Create(ctx, 0, val(t, map[string]any{"name": "R1"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := parts.Checkout(ctx, res.Key, 0); err != nil {
		t.Fatal(err)
	}
	ids, err := a.IDsAvailable()
	if err != nil {
		t.Fatal(err)
	}
	deep := append(append([]byte{0xa1, 0x61, 'a'}, bytes.Repeat([]byte{0x81}, 300)...), 0)
	huge := val(t, map[string]any{"blob": bytes.Repeat([]byte{7}, fsm.DefaultMaxRecordSize)})
	if _, err := parts.Create(ctx, 0, deep); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("create nested 301 deep: %v, want %v", err, api.ErrInvalid)
	}
	if _, err := parts.Create(ctx, 0, huge); !errors.Is(err, api.ErrTooLarge) {
		t.Errorf("create over the size limit: %v, want %v", err, api.ErrTooLarge)
	}
	if _, err := parts.Update(ctx, res.Key, 0, deep); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("update nested 301 deep: %v, want %v", err, api.ErrInvalid)
	}
	if n := a.Pending(); n != 0 {
		t.Errorf("%d writes pending after refused ones", n)
	}
	if left, err := a.IDsAvailable(); err != nil || left != ids {
		t.Errorf("ids available %d (%v), %d before the refused creates", left, err, ids)
	}
	if rec, err := s.Node.FSM().Get("parts", res.Key); err != nil || rec.Index != res.Index {
		t.Errorf("the record changed on the server: index %d, want %d (%v)", rec.Index, res.Index, err)
	}
}
