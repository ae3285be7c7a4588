package httpapi

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/fsm"
)

// peerSightingsTimeout bounds how long GET /v1/clients waits for the other
// nodes' sightings; a node that does not answer in time is left out.
const peerSightingsTimeout = 2 * time.Second

// seenTracker keeps, in memory, when this node last saw each registered
// client follow the log (GET /v1/log?client=ID) and the applied index of
// its replica then. Liveness stays out of the replicated log: a sighting
// costs no raft write and no entry streamed to every replica. GET
// /v1/clients merges the sightings of every node it can reach with the
// replicated state (which holds the fsm.OpClientSeen sightings older
// nodes committed).
type seenTracker struct {
	interval time.Duration            // how long a registration check holds
	known    func(client string) bool // is the client registered?
	now      func() time.Time

	mu   sync.Mutex
	seen map[string]*sighting // registered clients (as of checked), by id
}

type sighting struct {
	at      time.Time
	applied uint64
	checked time.Time // when the client was last found registered
}

func newSeenTracker(interval time.Duration, known func(string) bool) *seenTracker {
	return &seenTracker{interval: interval, known: known, now: time.Now, seen: map[string]*sighting{}}
}

// saw notes a log request of client, whose replica has applied up to
// applied. Only registered clients are kept, so made-up ids cannot grow
// the table; the registration is looked up again once per interval, so a
// removed client drops out.
func (s *seenTracker) saw(client string, applied uint64) {
	if client == "" || len(client) > fsm.MaxClientID {
		return
	}
	now := s.now()
	s.mu.Lock()
	if e := s.seen[client]; e != nil && now.Sub(e.checked) < s.interval {
		e.at, e.applied = now, applied
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	known := s.known(client) // a state read: not under the lock
	s.mu.Lock()
	defer s.mu.Unlock()
	if !known {
		delete(s.seen, client)
		return
	}
	s.seen[client] = &sighting{at: now, applied: applied, checked: now}
}

// sightings returns what the tracker holds, by client id order.
func (s *seenTracker) sightings() []cluster.Sighting {
	s.mu.Lock()
	out := make([]cluster.Sighting, 0, len(s.seen))
	for c, e := range s.seen {
		out = append(out, cluster.Sighting{Client: c, Time: e.at.UnixNano(), Applied: e.applied})
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b cluster.Sighting) int {
		if a.Client < b.Client {
			return -1
		}
		if a.Client > b.Client {
			return 1
		}
		return 0
	})
	return out
}

// clientKnown reports whether client is registered in the node's state.
func (h *handler) clientKnown(client string) bool {
	_, err := h.node.FSM().Client(client)
	if err != nil {
		h.log.Debug("httpapi: log stream of an unregistered client; not recorded", "client", client, "err", err)
	}
	return err == nil
}

// internalSightings serves cluster.InternalSightingsPath: this node's own
// sightings, for a peer answering GET /v1/clients.
func (h *handler) internalSightings(w http.ResponseWriter, r *http.Request) error {
	var out []cluster.Sighting
	if h.seen != nil {
		out = h.seen.sightings()
	}
	h.write(w, r, http.StatusOK, nonNil(out))
	return nil
}

// withSightings sets each client's LastSeen and ReplicaIndex to its latest
// sighting: in the state (committed by older nodes), at this node, or at
// the other nodes that answer in time.
func (h *handler) withSightings(ctx context.Context, clients []api.ClientInfo) []api.ClientInfo {
	if h.seen == nil {
		return clients
	}
	ctx, cancel := context.WithTimeout(ctx, peerSightingsTimeout)
	peers, missed := h.node.PeerSightings(ctx)
	cancel()
	if len(missed) > 0 {
		h.log.Debug("httpapi: clients: no sightings from some nodes", "nodes", missed)
	}
	all := append(h.seen.sightings(), peers...)
	byID := make(map[string]int, len(clients))
	for i, c := range clients {
		byID[c.ID] = i
	}
	for _, s := range all {
		i, ok := byID[s.Client]
		if !ok {
			continue // removed since
		}
		if at := time.Unix(0, s.Time).UTC(); at.After(clients[i].LastSeen) {
			clients[i].LastSeen, clients[i].ReplicaIndex = at, s.Applied
		}
	}
	return clients
}
