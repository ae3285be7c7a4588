package cluster

import (
	"errors"
	"fmt"
	"testing"

	"github.com/shelfdb/shelf/api"
)

func ev(index uint64, typ api.EventType, tree string) api.Event {
	return api.Event{Index: index, Type: typ, Tree: tree, Key: api.Key{ID: index, Rev: 1}}
}

// indexes lists "index:type" of a page's events.
func indexes(p api.EventPage) string {
	s := ""
	for _, e := range p.Events {
		s += fmt.Sprintf("%d:%s ", e.Index, e.Type)
	}
	return s
}

func TestEventBufferPages(t *testing.T) {
	b := newEventBuffer(5, 10)
	check := func(from uint64, limit int, match func(*api.Event) bool, want string, next uint64) {
		t.Helper()
		p, _, err := b.read(from, limit, match)
		if err != nil || indexes(p) != want || p.Next != next {
			t.Fatalf("read(%d, %d) = %q next %d, %v; want %q next %d", from, limit, indexes(p), p.Next, err, want, next)
		}
	}
	check(10, 100, nil, "", 10)
	check(12, 100, nil, "", 12) // ahead of this node: nothing yet, Next stays

	b.add([]api.Event{ev(11, api.EventCreated, "a"), ev(12, api.EventCreated, "b"), ev(12, api.EventBorrowed, "b")}, 13)
	b.add(nil, 14) // entries without events still advance Next
	check(10, 100, nil, "11:created 12:created 12:borrowed ", 14)
	check(10, 1, nil, "11:created ", 11)
	// A page never splits the events of one entry.
	check(10, 2, nil, "11:created 12:created 12:borrowed ", 14)
	check(11, 1, nil, "12:created 12:borrowed ", 14)
	b.add([]api.Event{ev(15, api.EventUpdated, "a")}, 15)
	check(10, 2, nil, "11:created 12:created 12:borrowed ", 12)
	check(10, 3, nil, "11:created 12:created 12:borrowed ", 12)
	check(10, 4, nil, "11:created 12:created 12:borrowed 15:updated ", 15)
	check(12, 100, nil, "15:updated ", 15)
	check(15, 100, nil, "", 15)
	// The filter counts only matching events, and Next covers the rest.
	tree := func(name string) func(*api.Event) bool { return func(e *api.Event) bool { return e.Tree == name } }
	check(10, 100, tree("b"), "12:created 12:borrowed ", 15)
	check(10, 1, tree("a"), "11:created ", 11)
	check(10, 100, tree("c"), "", 15)

	// Overflow: the ring keeps the last 5 events; 11 and the first event
	// of 12 are dropped, so only from >= 12 is complete (the other event
	// of 12 is still held, but never answered).
	b.add([]api.Event{ev(16, api.EventUpdated, "a"), ev(17, api.EventReleased, "a"), ev(17, api.EventReturned, "a")}, 17)
	for _, from := range []uint64{0, 10, 11} {
		if p, _, err := b.read(from, 100, nil); !errors.Is(err, api.ErrCompacted) || len(p.Events) != 0 {
			t.Fatalf("read(%d) after overflow: %q, %v; want ErrCompacted", from, indexes(p), err)
		}
	}
	check(12, 100, nil, "15:updated 16:updated 17:released 17:returned ", 17)
	check(15, 2, nil, "16:updated 17:released 17:returned ", 17)

	// A restore resets the buffer: nothing before it is known.
	_, changed, _ := b.read(17, 100, nil)
	b.reset(30)
	select {
	case <-changed:
	default:
		t.Fatal("reset did not wake waiters")
	}
	if _, _, err := b.read(17, 100, nil); !errors.Is(err, api.ErrCompacted) {
		t.Fatalf("read(17) after reset: %v", err)
	}
	check(30, 100, nil, "", 30)
	_, changed, _ = b.read(30, 100, nil)
	b.add(nil, 31)
	select {
	case <-changed:
		t.Fatal("a batch without events woke waiters")
	default:
	}
	b.add([]api.Event{ev(32, api.EventCreated, "a")}, 32)
	select {
	case <-changed:
	default:
		t.Fatal("new events did not wake waiters")
	}
	check(30, 100, nil, "32:created ", 32)
}
