package cluster

import (
	"encoding/json"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/shelfdb/shelf/api"
)

// Gossip health of a member, as reported in api.Member.Health. Memberlist
// v0.6 does not expose its suspicion state race-free, so a suspected
// member shows alive until gossip declares it dead; HealthSuspect is
// there for the API's sake.
const (
	HealthAlive   = "alive"
	HealthSuspect = "suspect"
	HealthDead    = "dead"
	HealthLeft    = "left"
	HealthUnknown = "unknown"
)

// nodeMeta is what a node tells its peers about itself in gossip. It
// stays well under memberlist.MetaMaxSize (ids are at most 64 bytes).
type nodeMeta struct {
	ID      string `json:"id"`
	Raft    string `json:"raft"`
	HTTP    string `json:"http,omitempty"`
	Cluster string `json:"cluster,omitempty"`
	// Removed is set by a node that found itself removed from the raft
	// configuration: no leader adds it back until it restarts.
	Removed bool `json:"removed,omitempty"`
	// Start is a random token of this run of the node: a removed node
	// that gossips another one has restarted (see fsm.OpRemoveMember).
	Start string `json:"start,omitempty"`
	// Rules is the newest state machine rules version the node's code
	// knows (fsm.RulesVersion): the leader raises the cluster's rules only
	// to a version every voter knows.
	Rules uint32 `json:"rules,omitempty"`
}

func decodeMeta(b []byte) (nodeMeta, bool) {
	var m nodeMeta
	if len(b) == 0 || json.Unmarshal(b, &m) != nil || m.ID == "" {
		return nodeMeta{}, false
	}
	return m, true
}

// peer is what gossip knows about one member.
type peer struct {
	meta   nodeMeta
	gossip string // host:port of its memberlist
	health string
}

// gossip holds the membership view and implements memberlist's Delegate,
// EventDelegate, AliveDelegate and MergeDelegate.
type gossip struct {
	n *Node

	mu      sync.Mutex
	peers   map[string]*peer  // by memberlist node name (= node id)
	leaving map[string]bool   // peers that announced a graceful leave
	refused map[string]string // peer name -> cluster id already logged as refused
	// joinConflict is the first wrong-cluster conflict found while this
	// node was joining (joining set): New fails with it.
	joinConflict error
	joining      bool
}

func newGossip(n *Node) *gossip {
	return &gossip{n: n, peers: map[string]*peer{}, leaving: map[string]bool{}, refused: map[string]string{}}
}

// NodeMeta implements memberlist.Delegate.
func (g *gossip) NodeMeta(limit int) []byte {
	b, err := json.Marshal(g.n.localMeta())
	if err != nil || len(b) > limit {
		g.n.log.Error("gossip: node metadata too large", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}

// leaveMsgPrefix starts the user message a node sends to its peers just
// before it leaves gossip. Memberlist's leave events do not tell a
// graceful leave from a failure, so the message lets peers report "left".
const leaveMsgPrefix = "shelf-leave:"

// NotifyMsg implements memberlist.Delegate: it receives leave notices.
func (g *gossip) NotifyMsg(b []byte) {
	if id, ok := strings.CutPrefix(string(b), leaveMsgPrefix); ok && id != "" {
		g.mu.Lock()
		g.leaving[id] = true
		// The notice may arrive after the leave itself.
		if p := g.peers[id]; p != nil && p.health == HealthDead {
			p.health = HealthLeft
		}
		g.mu.Unlock()
	}
}

// GetBroadcasts implements memberlist.Delegate.
func (g *gossip) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState implements memberlist.Delegate.
func (g *gossip) LocalState(join bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate.
func (g *gossip) MergeRemoteState(buf []byte, join bool) {}

// conflict returns a wrong-cluster error if a peer's metadata names a
// cluster other than ours (both known).
func (g *gossip) conflict(name string, meta []byte) error {
	m, ok := decodeMeta(meta)
	if !ok {
		return nil
	}
	ours := g.n.fsm.ClusterID()
	if ours == "" || m.Cluster == "" || ours == m.Cluster {
		return nil
	}
	return api.Errorf(api.CodeWrongCluster, "wrong cluster: this node (%s) holds the data of cluster %s, but peer %s belongs to cluster %s",
		g.n.cfg.NodeID, ours, name, m.Cluster)
}

// NotifyAlive implements memberlist.AliveDelegate: peers of another
// cluster are refused.
func (g *gossip) NotifyAlive(p *memberlist.Node) error {
	err := g.conflict(p.Name, p.Meta)
	if err == nil {
		return nil
	}
	m, _ := decodeMeta(p.Meta)
	g.mu.Lock()
	logged := g.refused[p.Name] == m.Cluster
	g.refused[p.Name] = m.Cluster
	g.mu.Unlock()
	if !logged {
		g.n.log.Error("gossip: refusing peer of another cluster", "peer", p.Name, "addr", p.Address(), "err", err)
	}
	return err
}

// NotifyMerge implements memberlist.MergeDelegate: joining a cluster
// whose members belong to another cluster fails.
func (g *gossip) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if err := g.conflict(p.Name, p.Meta); err != nil {
			g.mu.Lock()
			if g.joining && g.joinConflict == nil {
				g.joinConflict = err
			}
			g.mu.Unlock()
			g.n.log.Error("gossip: refusing to merge with another cluster", "peer", p.Name, "err", err)
			return err
		}
	}
	return nil
}

// setJoining marks whether this node is joining: only then does a merge
// conflict count against it (peers trying to join us are merely refused).
func (g *gossip) setJoining(on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.joining = on
}

// takeJoinConflict returns the conflict found while joining, if any.
func (g *gossip) takeJoinConflict() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.joinConflict
}

// NotifyJoin implements memberlist.EventDelegate.
func (g *gossip) NotifyJoin(p *memberlist.Node) {
	g.update(p, HealthAlive)
	if p.Name != g.n.cfg.NodeID {
		g.n.log.Info("gossip: member joined", "peer", p.Name, "addr", p.Address())
	}
	g.n.nudge()
}

// NotifyUpdate implements memberlist.EventDelegate.
func (g *gossip) NotifyUpdate(p *memberlist.Node) {
	g.update(p, HealthAlive)
	g.n.nudge()
}

// NotifyLeave implements memberlist.EventDelegate: the member failed or
// left. It stays in the raft configuration; only an operator removes it.
func (g *gossip) NotifyLeave(p *memberlist.Node) {
	g.mu.Lock()
	health := HealthDead
	if g.leaving[p.Name] {
		health = HealthLeft
	}
	g.mu.Unlock()
	g.update(p, health)
	if p.Name == g.n.cfg.NodeID {
		return
	}
	if health == HealthDead {
		g.n.log.Warn("gossip: member failed", "peer", p.Name, "addr", p.Address())
	} else {
		g.n.log.Info("gossip: member left", "peer", p.Name, "addr", p.Address())
	}
}

func (g *gossip) update(p *memberlist.Node, health string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	pr := g.peers[p.Name]
	if pr == nil {
		pr = &peer{}
		g.peers[p.Name] = pr
	}
	if m, ok := decodeMeta(p.Meta); ok {
		pr.meta = m
	} else if pr.meta.ID == "" {
		pr.meta.ID = p.Name
	}
	pr.gossip = p.Address()
	pr.health = health
	if health == HealthAlive {
		delete(g.refused, p.Name)
		delete(g.leaving, p.Name)
	}
}

// snapshot returns a copy of the peer table. Memberlist (v0.6) exposes
// no race-free view of a member's suspect state, so health comes from
// its join, update and leave events only.
func (g *gossip) snapshot() map[string]peer {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]peer, len(g.peers))
	for name, p := range g.peers {
		out[name] = *p
	}
	return out
}

// byID returns the peer whose metadata names node id.
func (g *gossip) byID(id string) (peer, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p, ok := g.peers[id]; ok && p.meta.ID == id {
		return *p, true
	}
	for _, p := range g.peers {
		if p.meta.ID == id {
			return *p, true
		}
	}
	return peer{}, false
}

// gossipAddrs returns the gossip addresses of the known peers other than
// this node, sorted.
func (g *gossip) gossipAddrs() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for name, p := range g.peers {
		if name != g.n.cfg.NodeID && p.gossip != "" {
			out = append(out, p.gossip)
		}
	}
	sort.Strings(out)
	return out
}

// announceLeave tells every live peer that this node is leaving, within
// timeout. The addresses come from the peer table: the *memberlist.Node
// values of ml.Members() change under memberlist's lock and must not be
// read concurrently.
func (g *gossip) announceLeave(ml *memberlist.Memberlist, timeout time.Duration) {
	msg := []byte(leaveMsgPrefix + g.n.cfg.NodeID)
	var targets []*memberlist.Node
	for name, p := range g.snapshot() {
		if name == g.n.cfg.NodeID || p.health != HealthAlive {
			continue
		}
		host, portStr, err := net.SplitHostPort(p.gossip)
		port, perr := strconv.ParseUint(portStr, 10, 16)
		if err != nil || perr != nil || net.ParseIP(host) == nil {
			continue
		}
		targets = append(targets, &memberlist.Node{Name: name, Addr: net.ParseIP(host), Port: uint16(port)})
	}
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = ml.SendReliable(t, msg)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}
