package client

import (
	"context"
	"slices"
	"sync"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/wake"
)

// Event types the client adds to the state machine's (api.EventCreated,
// api.EventUpdated, ...).
const (
	// EventConfirmed: an outbox entry of this client was applied by the
	// cluster (Outbox names it; Key is the record).
	EventConfirmed api.EventType = "confirmed"
	// EventConflict: the cluster rejected an outbox entry; it is kept as a
	// Conflict (see DB.Conflicts). Err says why.
	EventConflict api.EventType = "conflict"
	// EventResynced: the replica was replaced by a snapshot (new replica,
	// or the server no longer had the log it needed): re-read what is shown.
	EventResynced api.EventType = "resynced"
	// EventLagged: this subscriber fell more than the event buffer behind;
	// the events in between are lost to it: re-read what is shown.
	EventLagged api.EventType = "lagged"
	// EventReplicaFailed: the local replica could not apply the log: a
	// storage failure (disk full, I/O error: the client goes offline and
	// rebuilds the replica from a snapshot when it can; the outbox is
	// kept), or ErrNeedsUpgrade (the cluster runs newer rules than this
	// client: it stops following until the application is upgraded).
	// Err says which; DB.Err() too.
	EventReplicaFailed api.EventType = "replica_failed"
)

// DefaultEventBuffer is how many events are kept for slow subscribers
// when Config.EventBuffer is not set.
const DefaultEventBuffer = 100_000

// Event is one change seen by this client, in the order it was applied.
type Event struct {
	api.Event
	// Seq numbers this client's events since Open, without gaps.
	Seq uint64 `json:"seq"`
	// Outbox is the outbox entry an EventConfirmed or EventConflict is about.
	Outbox uint64 `json:"outbox,omitempty"`
	// Err is why an outbox entry conflicted.
	Err *api.Error `json:"err,omitempty"`
}

// eventLog is a ring of the latest events. Replication appends without
// ever waiting for a subscriber; each subscriber reads at its own pace
// from its own position, so a slow one delays nobody. One that falls more
// than the ring's size behind gets EventLagged and continues from the
// oldest event kept. The ring grows as events come, up to size, and then
// wraps: event Seq sits at (Seq-1) % size.
type eventLog struct {
	size   int
	mu     sync.Mutex
	ring   []Event
	next   uint64      // Seq of the next event
	notify wake.Signal // notified at each publish, and at close
	closed bool
}

func newEventLog(size int) *eventLog {
	return &eventLog{size: size, next: 1}
}

func (l *eventLog) publish(evs ...Event) {
	if len(evs) == 0 {
		return
	}
	l.mu.Lock()
	for _, e := range evs {
		e.Seq = l.next
		if pos := int((e.Seq - 1) % uint64(l.size)); pos == len(l.ring) {
			l.ring = append(l.ring, e)
		} else {
			l.ring[pos] = e
		}
		l.next++
	}
	l.notify.Notify()
	l.mu.Unlock()
}

func (l *eventLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		l.notify.Notify() // readers see closed at their next read
	}
}

// read returns the events from seq on (at most max), the seq to read
// next, whether events were lost, and a channel closed when more arrive.
func (l *eventLog) read(seq uint64, max int) (evs []Event, next uint64, lagged bool, wait <-chan struct{}, closed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	oldest := l.next - uint64(len(l.ring))
	if seq < oldest {
		seq, lagged = oldest, true
	}
	for ; seq < l.next && len(evs) < max; seq++ {
		evs = append(evs, l.ring[(seq-1)%uint64(l.size)])
	}
	return evs, seq, lagged, l.notify.C(), l.closed
}

func (l *eventLog) end() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}

// Events returns the events applied from now on, of the given trees (all
// events when none is given; EventResynced and EventLagged always come),
// in commit order. The channel closes when
// ctx ends or the DB closes. Reading slowly never holds up replication.
func (db *DB) Events(ctx context.Context, trees ...string) <-chan Event {
	return db.events.subscribe(ctx, db.events.end(), trees)
}

// EventsSince is Events from the event numbered seq on (Event.Seq; 0 or 1:
// every event since Open, as far as the buffer still holds them, else
// EventLagged first). An app that subscribes after Open uses it to see
// what the replica applied while catching up, such as a borrow of this
// client that an operator force-returned, or that expired, while the app
// was closed (EventReturned with Holder = ClientID()).
func (db *DB) EventsSince(ctx context.Context, seq uint64, trees ...string) <-chan Event {
	return db.events.subscribe(ctx, max(seq, 1), trees)
}

func (l *eventLog) subscribe(ctx context.Context, seq uint64, trees []string) <-chan Event {
	ch := make(chan Event, 64)
	go func() {
		defer close(ch)
		for {
			evs, next, lagged, wait, closed := l.read(seq, 256)
			if lagged {
				evs = append([]Event{{Event: api.Event{Type: EventLagged}, Seq: seq}}, evs...)
			}
			for _, e := range evs {
				if len(trees) > 0 && !slices.Contains(trees, e.Tree) && e.Type != EventResynced && e.Type != EventLagged {
					continue
				}
				select {
				case ch <- e:
				case <-ctx.Done():
					return
				}
			}
			seq = next
			if len(evs) > 0 {
				continue
			}
			if closed {
				return
			}
			select {
			case <-wait:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}
