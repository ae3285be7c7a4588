package httpapi

import (
	"context"
	"sync"
	"time"

	"github.com/shelfdb/shelf/fsm"
)

// seenTracker turns the log stream requests of clients into replicated
// sightings (fsm.OpClientSeen), at most one per client per interval. The
// commit runs in the background: the log answer never waits for it, and
// a failed commit is dropped (the next request after the interval tries
// again).
type seenTracker struct {
	interval time.Duration
	known    func(client string) bool            // is the client registered?
	submit   func(client string, applied uint64) // commit a sighting; runs in its own goroutine
	now      func() time.Time

	mu   sync.Mutex
	last map[string]time.Time // when a sighting was last submitted, by client
}

func newSeenTracker(interval time.Duration, known func(string) bool, submit func(string, uint64)) *seenTracker {
	return &seenTracker{interval: interval, known: known, submit: submit, now: time.Now, last: map[string]time.Time{}}
}

// saw notes a log request of client, whose replica has applied up to
// applied. Only registered clients are remembered, so made-up ids cannot
// grow the table.
func (s *seenTracker) saw(client string, applied uint64) {
	if client == "" || len(client) > fsm.MaxClientID {
		return
	}
	now := s.now()
	s.mu.Lock()
	if t, ok := s.last[client]; ok && now.Sub(t) < s.interval {
		s.mu.Unlock()
		return
	}
	s.last[client] = now
	s.mu.Unlock()
	if !s.known(client) {
		s.mu.Lock()
		if s.last[client].Equal(now) {
			delete(s.last, client)
		}
		s.mu.Unlock()
		return
	}
	go s.submit(client, applied)
}

// clientKnown reports whether client is registered in the node's state.
func (h *handler) clientKnown(client string) bool {
	_, err := h.node.FSM().Client(client)
	if err != nil {
		h.log.Debug("httpapi: log stream of an unregistered client; not recorded", "client", client, "err", err)
	}
	return err == nil
}

// submitSeen commits a sighting of client through raft.
func (h *handler) submitSeen(client string, applied uint64) {
	res, err := h.node.Apply(context.Background(), &fsm.Command{Op: fsm.OpClientSeen, Client: client, Applied: applied})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		h.log.Debug("httpapi: recording a client sighting failed; dropped", "client", client, "applied", applied, "err", err)
	}
}
