package httpapi

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shelfdb/shelf/cluster"
)

func TestSeenTrackerKeepsRegisteredClients(t *testing.T) {
	var (
		mu      sync.Mutex
		lookups []string
	)
	registered := map[string]bool{"a": true, "b": true}
	clock := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	s := newSeenTracker(30*time.Second, func(c string) bool {
		mu.Lock()
		defer mu.Unlock()
		lookups = append(lookups, c)
		return registered[c]
	})
	s.now = func() time.Time { return clock }
	at := func(d time.Duration) int64 { return clock.Add(d).UnixNano() }
	start := clock

	s.saw("a", 5)
	s.saw("b", 9)
	clock = clock.Add(time.Second)
	s.saw("a", 6) // every sighting counts; no second lookup within the interval
	want := []cluster.Sighting{{Client: "a", Time: at(0), Applied: 6}, {Client: "b", Time: start.UnixNano(), Applied: 9}}
	if got := s.sightings(); !equalSightings(got, want) {
		t.Fatalf("sightings %+v, want %+v", got, want)
	}
	s.saw("", 1)                      // no client: ignored
	s.saw(strings.Repeat("x", 65), 1) // not a possible client id
	s.saw("stranger", 1)              // not registered: not kept,
	s.saw("stranger", 2)              // nor remembered (looked up again)
	// b is removed; after the interval its next sighting finds that out.
	mu.Lock()
	delete(registered, "b")
	mu.Unlock()
	clock = start.Add(30 * time.Second)
	s.saw("b", 10)
	s.saw("a", 7) // a is looked up again too, and stays
	want = []cluster.Sighting{{Client: "a", Time: at(0), Applied: 7}}
	if got := s.sightings(); !equalSightings(got, want) {
		t.Fatalf("sightings %+v, want %+v", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(lookups, " "); got != "a b stranger stranger b a" {
		t.Errorf("registration lookups %q, want a b stranger stranger b a", got)
	}
}

func equalSightings(a, b []cluster.Sighting) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
