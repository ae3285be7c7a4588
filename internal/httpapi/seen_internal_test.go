package httpapi

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSeenTrackerThrottles(t *testing.T) {
	var (
		mu        sync.Mutex
		submitted []string
		lookups   int
	)
	done := make(chan struct{}, 100)
	clock := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	s := newSeenTracker(30*time.Second,
		func(c string) bool {
			mu.Lock()
			defer mu.Unlock()
			lookups++
			return c != "stranger"
		},
		func(c string, applied uint64) {
			mu.Lock()
			submitted = append(submitted, fmt.Sprintf("%s@%d", c, applied))
			mu.Unlock()
			done <- struct{}{}
		})
	s.now = func() time.Time { return clock }
	wait := func(n int) {
		t.Helper()
		for range n {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("submit did not run")
			}
		}
	}

	s.saw("a", 5)
	s.saw("b", 9)
	s.saw("a", 6) // within the interval: dropped
	wait(2)
	clock = clock.Add(29 * time.Second)
	s.saw("a", 7) // still within
	clock = clock.Add(time.Second)
	s.saw("a", 8) // 30s after the first: recorded
	wait(1)
	s.saw("", 1)                      // no client: ignored
	s.saw(strings.Repeat("x", 65), 1) // not a possible client id
	s.saw("stranger", 1)              // not registered: not recorded,
	s.saw("stranger", 2)              // nor remembered (looked up again)
	if n := len(s.last); n != 2 {
		t.Errorf("tracker remembers %d clients, want 2", n)
	}
	mu.Lock()
	defer mu.Unlock()
	got := strings.Join(submitted, " ")
	if got != "a@5 b@9 a@8" && got != "b@9 a@5 a@8" {
		t.Errorf("submitted %q, want a@5 b@9 a@8 (first two in any order)", got)
	}
	if lookups != 5 {
		t.Errorf("%d registration lookups, want 5 (a, b, a, stranger twice)", lookups)
	}
}
