package cluster

import (
	"context"
	"net/http"
	"sync"
)

// InternalSightingsPath is the HTTP route where a node answers the client
// sightings it holds (see Sighting), for a peer answering GET /v1/clients.
const InternalSightingsPath = "/v1/internal/sightings"

// Sighting is when a node last saw a client's replica follow the log, and
// the replica's applied index then. Sightings are liveness, not state:
// each node keeps its own in memory, and none goes through raft.
type Sighting struct {
	Client  string `codec:"c"`
	Time    int64  `codec:"t"` // unix ns, the node's clock
	Applied uint64 `codec:"a"`
}

// PeerSightings asks every other live member for its sightings, all at
// once, and returns those that answered within ctx. A member that does
// not answer (down, partitioned, or a version without the route) is left
// out and named in missed: sightings are best effort.
func (n *Node) PeerSightings(ctx context.Context) (out []Sighting, missed []string) {
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, m := range n.Members() {
		if m.ID == n.cfg.NodeID || m.HTTPAddr == "" || (m.Health != HealthAlive && m.Health != HealthSuspect) {
			continue
		}
		wg.Go(func() {
			var got []Sighting
			err := n.call(ctx, http.MethodGet, m.HTTPAddr, InternalSightingsPath, nil, &got)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				n.log.Debug("cluster: sightings of a peer", "peer", m.ID, "err", err)
				missed = append(missed, m.ID)
				return
			}
			out = append(out, got...)
		})
	}
	wg.Wait()
	return out, missed
}
