package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// Defaults of the tunables in Config.
const (
	DefaultApplyTimeout      = 10 * time.Second
	DefaultReadTimeout       = 5 * time.Second
	DefaultCommitTimeout     = 5 * time.Millisecond
	DefaultJoinTimeout       = 30 * time.Second
	DefaultReconcileInterval = 2 * time.Second
	DefaultSnapshotRetain    = 2
	DefaultEventBuffer       = 100_000
	DefaultMaxAppendEntries  = 512
	DefaultExpiryInterval    = 500 * time.Millisecond
	DefaultExpiryGrace       = 5 * time.Second
	// DefaultStaleFactor times raft's heartbeat timeout is the default
	// Config.LeaderStaleAfter.
	DefaultStaleFactor = 3
)

// Config configures a Node. NodeID, DataDir, RaftAddr and GossipAddr are
// required; the zero value of every tunable means its default.
type Config struct {
	// NodeID names the node in raft and in gossip. It must be unique in
	// the cluster and stay the same across restarts.
	NodeID string
	// DataDir holds raft.db (raft log and stable store), fsm.db (the
	// state machine), the raft snapshots and the known gossip peers.
	DataDir string
	// RaftAddr is the host:port the raft transport binds to and
	// advertises to peers, so it must be reachable by them (not 0.0.0.0).
	// Port 0 picks a free port (see Node.RaftAddr).
	RaftAddr string
	// GossipAddr is the host:port memberlist binds to (TCP and UDP).
	// Port 0 picks a free port (see Node.GossipAddr).
	GossipAddr string
	// HTTPAddr is the node's HTTP API address as peers reach it; followers
	// forward writes to the leader's. It is only advertised, not listened on.
	HTTPAddr string
	// Bootstrap makes a node without raft state start a new cluster with
	// itself as the only voter. With existing state it is ignored.
	Bootstrap bool
	// Join lists gossip addresses of existing members. New retries them
	// for JoinTimeout, since nodes may start in any order.
	Join []string
	// Logger receives the node's logs, raft's and memberlist's included;
	// slog.Default() if nil.
	Logger *slog.Logger

	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout are raft's
	// timing; raft's defaults when zero. CommitTimeout is how long an idle
	// leader waits before it tells followers the commit index again; it
	// bounds how long a follower's read or forwarded write waits to learn
	// that an entry committed (DefaultCommitTimeout when zero).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// LeaderStaleAfter is how long a follower may go without hearing from
	// the leader before it reports that it has none (Node.LeaderHealth,
	// api.Status.NoLeader, api.LogPage.NoLeader), so that clients move to
	// another node; DefaultStaleFactor times raft's heartbeat timeout when
	// zero.
	LeaderStaleAfter time.Duration
	// SnapshotThreshold is how many log entries since the last snapshot
	// trigger a new one; SnapshotInterval how often raft checks. Raft's
	// defaults (8192, 2m) when zero.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs is how many log entries stay after a snapshot: the log
	// stream (Node.Log) can serve that far back. Raft's default (10240)
	// when zero.
	TrailingLogs uint64
	// ApplyTimeout bounds one write, forwarding and retries included;
	// DefaultApplyTimeout when zero.
	ApplyTimeout time.Duration
	// ReadTimeout bounds how long a linearizable read waits to confirm a
	// leader and catch up with it (Node.ReadBarrier), and a read's wait
	// for min_index; DefaultReadTimeout when zero.
	ReadTimeout time.Duration
	// JoinTimeout bounds the attempts to join gossip at start;
	// DefaultJoinTimeout when zero.
	JoinTimeout time.Duration
	// ReconcileInterval is how often the leader adds live gossip members
	// missing from the raft configuration; DefaultReconcileInterval when
	// zero.
	ReconcileInterval time.Duration
	// SnapshotRetain is how many raft snapshots are kept on disk;
	// DefaultSnapshotRetain when zero.
	SnapshotRetain int
	// EventBuffer is how many of the latest state machine events the node
	// keeps in memory for Node.Events (GET /v1/events); DefaultEventBuffer
	// when zero or negative.
	EventBuffer int
	// DefaultBorrowTTL is the expiry given to a borrow that asks for none
	// (0: borrows never expire unless asked to). Set the same on every node.
	DefaultBorrowTTL time.Duration
	// ExpiryInterval is how often the leader looks for borrows whose
	// expiry has passed (DefaultExpiryInterval when zero), and ExpiryGrace
	// how long a new leader waits after taking over before it expires any
	// (DefaultExpiryGrace when zero, no wait when negative): see
	// expiryLoop for the rule.
	ExpiryInterval time.Duration
	ExpiryGrace    time.Duration
	// MaxAppendEntries is how many log entries the leader stores in one
	// disk write and sends in one AppendEntries (group commit);
	// DefaultMaxAppendEntries when zero, at most 1024 (raft's limit).
	MaxAppendEntries int
	// LogStore names the raft log store: LogStoreBolt (raft.db) or
	// LogStoreWAL (the raft-wal directory); LogStoreAuto or empty: the
	// kind the data directory holds, DefaultLogStore for a new one. A node
	// refuses to start on a data directory that holds the other kind
	// (ErrOtherLogStore).
	LogStore string
	// NoSync skips the fsyncs of the raft log. Tests only: a crash may
	// lose acknowledged writes. The state machine (fsm.db) never fsyncs
	// its commits, whatever NoSync says: the raft log is the durable
	// record, fsm.db is fsync'ed when the node stops cleanly and rebuilt
	// from the snapshots and the log after a crash of the machine.
	NoSync bool
	// HTTPClient forwards requests to the leader; a client with sensible
	// timeouts when nil.
	HTTPClient *http.Client
	// PeerTLS, when set, secures the traffic between nodes: raft runs over
	// TLS with mutual authentication, and requests to other nodes' HTTP
	// APIs (forwarded writes, read index) use https:// and present the
	// node certificate. With PeerTLS the default HTTPClient uses
	// PeerTLS.Client; a caller's own HTTPClient must do the same.
	PeerTLS *PeerTLS
	// GossipKey, when set, encrypts and authenticates gossip with
	// memberlist's AES-GCM keyring (16, 24 or 32 bytes): a node with
	// another key or none cannot join. Every node needs the same key.
	GossipKey []byte
	// TuneGossip, when set, may adjust the memberlist configuration (for
	// example faster failure detection in tests) before it is used.
	TuneGossip func(*memberlist.Config)
	// Observer, when set, receives apply and forwarding measurements
	// (internal/metrics).
	Observer Observer
	// bootID replaces the kernel's boot id for fsm.Config.BootID (tests
	// simulate a reboot with it).
	bootID string
	// walSegmentSize replaces raft-wal's segment size (64 MiB) when not
	// zero (tests: many segments from few entries).
	walSegmentSize int
	// rules replaces fsm.RulesVersion as the rules this node's code
	// claims to know when not zero (tests: a node of older code, for
	// the cluster's rules version).
	rules uint32
}

// PeerTLS holds the TLS configurations of the links between nodes.
type PeerTLS struct {
	// Server accepts raft connections from peers. It must require and
	// verify a client certificate of the cluster CA
	// (tls.RequireAndVerifyClientCert).
	Server *tls.Config
	// Client dials peers (raft, and their HTTP API): it presents the
	// node certificate and verifies the peer's against the cluster CA.
	Client *tls.Config
}

// withDefaults validates c and fills in the defaults.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("node id is empty"))
	} else if len(c.NodeID) > 64 {
		errs = append(errs, fmt.Errorf("node id %q is longer than 64 bytes", c.NodeID))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is empty"))
	}
	if err := checkHostPort("raft", c.RaftAddr, true); err != nil {
		errs = append(errs, err)
	}
	if err := checkHostPort("gossip", c.GossipAddr, false); err != nil {
		errs = append(errs, err)
	}
	if c.HTTPAddr != "" {
		if err := checkHostPort("http", c.HTTPAddr, false); err != nil {
			errs = append(errs, err)
		}
	}
	if c.PeerTLS != nil {
		if c.PeerTLS.Server == nil || c.PeerTLS.Client == nil {
			errs = append(errs, errors.New("PeerTLS needs both its Server and its Client config"))
		} else if c.PeerTLS.Server.ClientAuth != tls.RequireAndVerifyClientCert {
			errs = append(errs, errors.New("PeerTLS.Server must require and verify client certificates (tls.RequireAndVerifyClientCert)"))
		}
	}
	switch len(c.GossipKey) {
	case 0, 16, 24, 32:
	default:
		errs = append(errs, fmt.Errorf("gossip key is %d bytes; want 16, 24 or 32", len(c.GossipKey)))
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("cluster: bad config: %w", errors.Join(errs...))
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ApplyTimeout <= 0 {
		c.ApplyTimeout = DefaultApplyTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.CommitTimeout <= 0 {
		c.CommitTimeout = DefaultCommitTimeout
	}
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = DefaultJoinTimeout
	}
	if c.ReconcileInterval <= 0 {
		c.ReconcileInterval = DefaultReconcileInterval
	}
	if c.ExpiryInterval <= 0 {
		c.ExpiryInterval = DefaultExpiryInterval
	}
	if c.ExpiryGrace == 0 {
		c.ExpiryGrace = DefaultExpiryGrace
	}
	if c.DefaultBorrowTTL < 0 {
		return c, fmt.Errorf("cluster: negative DefaultBorrowTTL %s", c.DefaultBorrowTTL)
	}
	if c.SnapshotRetain <= 0 {
		c.SnapshotRetain = DefaultSnapshotRetain
	}
	if c.MaxAppendEntries <= 0 {
		c.MaxAppendEntries = DefaultMaxAppendEntries
	}
	if c.MaxAppendEntries > 1024 {
		return c, fmt.Errorf("cluster: MaxAppendEntries %d is above raft's limit of 1024", c.MaxAppendEntries)
	}
	switch c.LogStore {
	case "":
		c.LogStore = LogStoreAuto
	case LogStoreBolt, LogStoreWAL, LogStoreAuto:
	default:
		return c, fmt.Errorf("cluster: unknown LogStore %q: want %q, %q or %q", c.LogStore, LogStoreBolt, LogStoreWAL, LogStoreAuto)
	}
	if c.EventBuffer <= 0 {
		c.EventBuffer = DefaultEventBuffer
	}
	if c.HTTPClient == nil {
		t := NewPeerTransport()
		if c.PeerTLS != nil {
			t.TLSClientConfig = c.PeerTLS.Client.Clone()
		}
		c.HTTPClient = &http.Client{Transport: t}
	}
	return c, nil
}

// PeerIdleConns is how many idle keep-alive connections a node keeps to
// each other node for forwarded writes. Every write a follower takes is
// one request to the leader, waiting for the commit: with N writers on a
// follower about N forwards are in flight at once, and a connection that
// finds no idle slot when its request ends is closed, so the next forward
// dials again (a TCP handshake on both nodes, and a socket left in
// TIME_WAIT). net/http's default is 2 per host.
const PeerIdleConns = 1024

// NewPeerTransport returns the HTTP transport a node forwards writes to
// the leader with (Config.HTTPClient's default): no proxy, a 3 s dial
// timeout, PeerIdleConns idle connections per node, idle ones closed
// after 90 s. Callers wrapping it (a cluster token) or adding TLS use
// this one so that every node-to-node client has the same settings.
func NewPeerTransport() *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: PeerIdleConns,
		IdleConnTimeout:     90 * time.Second,
	}
}

// checkHostPort checks a host:port flag value. A concrete host is needed
// where the address is advertised as is.
func checkHostPort(what, addr string, concrete bool) error {
	if addr == "" {
		return fmt.Errorf("%s address is empty", what)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s address %q: %v", what, addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%s address %q: bad port %q", what, addr, port)
	}
	if concrete {
		if host == "" {
			return fmt.Errorf("%s address %q: needs a host or IP that peers can reach", what, addr)
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			return fmt.Errorf("%s address %q: %s is not an address peers can reach; give this host's IP", what, addr, host)
		}
	}
	return nil
}
