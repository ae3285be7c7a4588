// Package testserver runs a bootstrapped single-node Shelf cluster (or a
// cluster of several nodes) in the test process, serving the HTTP API on
// loopback ports, and opens clients against it: the fixture of the client
// and typed tests. A server can be stopped and started again on the same
// port and data, to take its clients offline and back.
package testserver

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/shelfdb/shelf/client"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/internal/httpapi"
	"github.com/shelfdb/shelf/internal/metrics"
	"github.com/shelfdb/shelf/internal/testlog"
)

// Server is one in-process node.
type Server struct {
	t    testing.TB
	Dir  string
	Addr string // HTTP API address
	Node *cluster.Node
	// Metrics are the node's metrics, served on /metrics (a new registry
	// per start).
	Metrics *metrics.Metrics
	srv     *http.Server

	configure func(*cluster.Config)
	member    bool // one of StartCluster's nodes
}

// Start starts a bootstrapped node and waits until it leads. It stops
// when the test ends.
func Start(t testing.TB) *Server { t.Helper(); return StartWith(t, nil) }

// StartWith is Start with a change to the node's configuration (nil: none).
func StartWith(t testing.TB, configure func(*cluster.Config)) *Server {
	t.Helper()
	s := &Server{t: t, Dir: t.TempDir(), configure: configure}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	s.start(ln, true)
	t.Cleanup(s.Stop)
	return s
}

// StartCluster starts size nodes s1..sSIZE: s1 bootstraps the cluster, the
// others join it through gossip. It returns once every node follows the
// same leader and lists all of them as voters. They stop when the test ends.
func StartCluster(t testing.TB, size int) []*Server {
	t.Helper()
	var first string // s1's gossip address
	servers := make([]*Server, size)
	for i := range servers {
		id := fmt.Sprintf("s%d", i+1)
		join := first
		s := &Server{t: t, Dir: t.TempDir(), configure: func(c *cluster.Config) {
			c.NodeID, c.Bootstrap = id, join == ""
			if join != "" {
				c.Join = []string{join}
			}
			c.HeartbeatTimeout, c.ElectionTimeout = 150*time.Millisecond, 150*time.Millisecond
			c.LeaderLeaseTimeout = 100 * time.Millisecond
			c.ReconcileInterval = 100 * time.Millisecond
			c.Logger = c.Logger.With("node", id)
			c.TuneGossip = fastGossip
		}}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.Addr = ln.Addr().String()
		s.start(ln, i == 0)
		s.member = true
		t.Cleanup(s.Stop)
		if i == 0 {
			first = s.Node.GossipAddr()
		}
		servers[i] = s
	}
	WaitFor(t, "a leader with all nodes as voters", func() bool {
		var leader string
		for _, s := range servers {
			st := s.Node.Status()
			voters := 0
			for _, m := range st.Members {
				if m.Suffrage == "Voter" {
					voters++
				}
			}
			if st.Leader == "" || st.NoLeader || (leader != "" && st.Leader != leader) || voters != size || st.ClusterID == "" {
				return false
			}
			leader = st.Leader
		}
		return true
	})
	return servers
}

// fastGossip makes memberlist notice joins and failures within a second.
func fastGossip(c *memberlist.Config) {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.SuspicionMult = 2
	c.GossipInterval = 50 * time.Millisecond
	c.PushPullInterval = 2 * time.Second
	c.TCPTimeout = time.Second
}

// Restart starts a stopped server again, on the same address and data. A
// single server leads when it returns; a node of StartCluster serves, with
// or without a leader.
func (s *Server) Restart() {
	s.t.Helper()
	var ln net.Listener
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ln, err = net.Listen("tcp", s.Addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the old listener's port is being released
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.start(ln, !s.member)
}

// start starts the node serving on ln; with lead it waits until the node
// leads.
func (s *Server) start(ln net.Listener, lead bool) {
	s.t.Helper()
	cfg := cluster.Config{
		NodeID: "s1", DataDir: s.Dir, RaftAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", HTTPAddr: s.Addr,
		Bootstrap: true, Logger: testlog.New(s.t), NoSync: true,
		HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
	}
	s.Metrics = metrics.New()
	cfg.Observer = s.Metrics
	if s.configure != nil {
		s.configure(&cfg)
	}
	var err error
	s.Node, err = cluster.New(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.Metrics.WatchNode(s.Node); err != nil {
		s.t.Fatal(err)
	}
	s.srv = &http.Server{Handler: httpapi.New(httpapi.Config{Node: s.Node, Logger: testlog.New(s.t), Metrics: s.Metrics})}
	go func() { _ = s.srv.Serve(ln) }()
	if lead {
		WaitFor(s.t, "server to lead", func() bool { return s.Node.ClusterID() != "" && s.Node.IsLeader() })
	}
}

// Stop stops the server (a no-op when it is stopped).
func (s *Server) Stop() {
	if s.srv == nil {
		return
	}
	s.srv.Close()
	s.Node.Shutdown()
	s.srv = nil
}

// WaitFor polls cond until it holds, failing the test after 20 seconds.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Open opens a client with its replica in dir (small key ranges, short
// polls) and waits until it is synced. It closes when the test ends.
func Open(t testing.TB, dir string, servers ...string) *client.DB {
	t.Helper()
	return OpenWith(t, dir, nil, servers...)
}

// OpenWith is Open with a change to the client's configuration (nil: none).
func OpenWith(t testing.TB, dir string, configure func(*client.Config), servers ...string) *client.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := client.Config{Dir: dir, Servers: servers, Name: "test-" + filepath.Base(dir),
		RangeSize: 100, PollWait: time.Second, Logger: testlog.New(t)}
	if configure != nil {
		configure(&cfg)
	}
	db, err := client.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}
