package cluster

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/wake"
)

// DefaultEventLimit is the page size of Events when the caller gives none.
const DefaultEventLimit = 1000

// eventBuffer keeps the most recent events of the state machine, in
// index order, in a ring of at most size events. Every event with an
// index above start is held: start is the applied index the buffer began
// at (node start, snapshot restore) or the index of the newest event the
// ring dropped. last is the applied index the buffer has seen.
type eventBuffer struct {
	size int

	mu     sync.Mutex
	ring   []api.Event // grows to size, then wraps
	head   int         // position of the oldest event once the ring is full
	start  uint64
	last   uint64
	notify wake.Signal // notified when events are added or the buffer is reset
}

func newEventBuffer(size int, applied uint64) *eventBuffer {
	if size <= 0 {
		size = DefaultEventBuffer
	}
	return &eventBuffer{size: size, start: applied, last: applied}
}

// at returns the i-th oldest event held. b.mu must be held.
func (b *eventBuffer) at(i int) *api.Event {
	return &b.ring[(b.head+i)%len(b.ring)]
}

// add appends the events of an applied batch; applied is the state
// machine's applied index after it.
func (b *eventBuffer) add(events []api.Event, applied uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range events {
		if len(b.ring) < b.size {
			b.ring = append(b.ring, e)
			continue
		}
		b.start = max(b.start, b.ring[b.head].Index)
		b.ring[b.head] = e
		b.head = (b.head + 1) % len(b.ring)
	}
	b.last = max(b.last, applied)
	if len(events) > 0 {
		b.wake()
	}
}

// reset empties the buffer after the state was replaced (a snapshot
// restore): events up to applied are unknown, so they count as dropped.
func (b *eventBuffer) reset(applied uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ring, b.head = nil, 0
	b.start, b.last = applied, applied
	b.wake()
}

// wake wakes the waiters. b.mu must be held.
func (b *eventBuffer) wake() { b.notify.Notify() }

// read returns up to limit events with index above from that match (all
// when match is nil), never splitting the events of one index, and a
// channel closed at the next change of the buffer.
func (b *eventBuffer) read(from uint64, limit int, match func(*api.Event) bool) (api.EventPage, <-chan struct{}, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	page := api.EventPage{Events: []api.Event{}, Next: max(from, b.last)}
	if from < b.start {
		return page, b.notify.C(), api.Errorf(api.CodeCompacted,
			"events after index %d are no longer kept (this node keeps those after index %d): start again from now, or re-read the state", from, b.start)
	}
	n := len(b.ring)
	i := sort.Search(n, func(i int) bool { return b.at(i).Index > from })
	for ; i < n; i++ {
		e := b.at(i)
		if match != nil && !match(e) {
			continue
		}
		if k := len(page.Events); k >= limit && e.Index != page.Events[k-1].Index {
			page.Next = page.Events[k-1].Index
			break
		}
		page.Events = append(page.Events, *e)
	}
	return page, b.notify.C(), nil
}

// Events returns the events of the state machine with index above from,
// in order: what changed, entry by entry, as this node applied it. At most
// limit events are answered (DefaultEventLimit when limit <= 0), except
// that a page never splits the events of one log entry. The page's Next
// is the index up to which the page is complete: the next call takes
// from=Next. From api.EventsFromNow starts at the node's applied index.
//
// With wait > 0 and no event yet, Events waits up to that long for one;
// if ctx ends first it returns the page it has with ctx's error.
//
// The node keeps the last Config.EventBuffer events in memory, from its
// start on: events at or below the applied index it started (or restored
// a snapshot) at are not kept either. If events after from are no longer
// kept, the error is api.ErrCompacted: the caller missed events, and must
// re-read the state it derives from them and start again from now.
func (n *Node) Events(ctx context.Context, from uint64, limit int, wait time.Duration) (api.EventPage, error) {
	return n.EventsMatching(ctx, from, limit, wait, nil)
}

// EventsMatching is Events with a filter: only the events for which match
// returns true are answered, counted against limit and waited for. Next
// still covers the events skipped, so a caller continues from it without
// seeing them again. match runs with the buffer locked: it must be quick
// and must not call the node.
func (n *Node) EventsMatching(ctx context.Context, from uint64, limit int, wait time.Duration, match func(*api.Event) bool) (api.EventPage, error) {
	if limit <= 0 {
		limit = DefaultEventLimit
	}
	if from == api.EventsFromNow {
		from = n.fsm.AppliedIndex()
	}
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	for {
		page, changed, err := n.events.read(from, limit, match)
		if err != nil || len(page.Events) > 0 || wait <= 0 {
			return page, err
		}
		// Nothing matched up to page.Next: no need to look there again.
		from = page.Next
		select {
		case <-changed:
		case <-timeout:
			wait = 0 // one last look, for an up-to-date Next
		case <-n.shutdownCh:
			wait = 0
		case <-ctx.Done():
			return page, ctx.Err()
		}
	}
}
