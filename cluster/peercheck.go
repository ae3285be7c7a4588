package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"
)

// peerCheckTimeout bounds the TLS probe of a member before it is added.
const peerCheckTimeout = 5 * time.Second

// refusalLogEvery is how often at most the refusal of one peer is logged.
const refusalLogEvery = time.Minute

// verifyPeer checks, when PeerTLS is on, that the raft address of a gossip
// member presents a node certificate of the cluster CA, before the leader
// adds it to the raft configuration: a node with the gossip key but a
// certificate of another CA (or none) then stays out of the
// configuration, rather than becoming a voter that can never be reached.
func (n *Node) verifyPeer(raftAddr string) error {
	if n.cfg.PeerTLS == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), peerCheckTimeout)
	defer cancel()
	d := &tls.Dialer{NetDialer: &net.Dialer{}, Config: n.cfg.PeerTLS.Client}
	c, err := d.DialContext(ctx, "tcp", raftAddr)
	if err != nil {
		return fmt.Errorf("TLS check of %s: %w", raftAddr, err)
	}
	return c.Close()
}

// peerRefusals rate-limits the log of peers that verifyPeer refused.
type peerRefusals struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// shouldLog reports whether a refusal of peer id is to be logged now.
func (r *peerRefusals) shouldLog(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = map[string]time.Time{}
	}
	if t, ok := r.last[id]; ok && time.Since(t) < refusalLogEvery {
		return false
	}
	r.last[id] = time.Now()
	return true
}
