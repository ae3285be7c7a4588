package client

import (
	"testing"

	"github.com/shelfdb/shelf/api"
)

// TestEventLogGrowsThenWraps: the ring holds nothing up front, grows with
// the events up to its size, then keeps the latest size events; a reader
// behind that is told it lagged and continues from the oldest kept.
func TestEventLogGrowsThenWraps(t *testing.T) {
	l := newEventLog(4)
	if cap(l.ring) != 0 {
		t.Fatalf("new log holds room for %d events", cap(l.ring))
	}
	pub := func(n int) {
		for range n {
			l.publish(Event{Event: api.Event{Type: api.EventCreated}})
		}
	}
	pub(3)
	evs, next, lagged, _, _ := l.read(1, 10)
	if len(evs) != 3 || lagged || next != 4 || evs[0].Seq != 1 || evs[2].Seq != 3 {
		t.Fatalf("after 3: %d events, next %d, lagged %v", len(evs), next, lagged)
	}
	pub(7) // seqs 1..10; the ring keeps 7..10
	if len(l.ring) != 4 {
		t.Fatalf("ring has %d slots, want 4", len(l.ring))
	}
	evs, next, lagged, _, _ = l.read(2, 10)
	if !lagged || len(evs) != 4 || evs[0].Seq != 7 || evs[3].Seq != 10 || next != 11 {
		t.Fatalf("reader at 2: lagged %v, %d events from %d, next %d", lagged, len(evs), evs[0].Seq, next)
	}
	evs, _, lagged, _, _ = l.read(9, 1)
	if lagged || len(evs) != 1 || evs[0].Seq != 9 {
		t.Fatalf("reader at 9: lagged %v, %+v", lagged, evs)
	}
}
