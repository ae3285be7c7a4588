package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shelfdb/shelf/api"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Bounds of the waits while clusters start and stop.
const (
	startTimeout = 60 * time.Second
	stopGrace    = 15 * time.Second
)

// cluster is three server processes of one system on loopback.
type cluster struct {
	servers   []*server
	endpoints []string // client addresses, one per server, in order
}

// pids returns the servers' process ids.
func (c *cluster) pids() []int {
	var pids []int
	for _, s := range c.servers {
		pids = append(pids, s.pid())
	}
	return pids
}

// stop stops every server that was started.
func (c *cluster) stop() {
	for _, s := range c.servers {
		s.stop(stopGrace)
	}
}

// dead returns an error naming a server that exited, nil if all run.
func (c *cluster) dead() error {
	for _, s := range c.servers {
		if s.exited() {
			return fmt.Errorf("%s exited (%v); its log ends:\n%s", s.name, s.err, s.tail())
		}
	}
	return nil
}

// startEtcd starts a 3-member etcd cluster (fsync on, etcd's default)
// with data under dir, and waits until a put through every member works.
func startEtcd(ctx context.Context, bin, dir string, p ports) (*cluster, error) {
	const n = 3
	var client, peer, initial []string
	for i := range n {
		ca, err := p.addr()
		if err != nil {
			return nil, err
		}
		pa, err := p.addr()
		if err != nil {
			return nil, err
		}
		client, peer = append(client, "http://"+ca), append(peer, "http://"+pa)
		initial = append(initial, fmt.Sprintf("e%d=http://%s", i+1, pa))
	}
	c := &cluster{endpoints: client}
	for i := range n {
		name := fmt.Sprintf("e%d", i+1)
		s, err := start(dir, "etcd-"+name, bin,
			"--name", name, "--data-dir", filepath.Join(dir, "etcd-"+name),
			"--listen-client-urls", client[i], "--advertise-client-urls", client[i],
			"--listen-peer-urls", peer[i], "--initial-advertise-peer-urls", peer[i],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "shelf-bench", "--logger", "zap", "--log-level", "warn")
		if err != nil {
			c.stop()
			return nil, err
		}
		c.servers = append(c.servers, s)
	}
	for _, ep := range client {
		err := poll(ctx, startTimeout, "etcd member "+ep, func() error {
			if err := c.dead(); err != nil {
				return err
			}
			cli, err := newEtcdClient(ep)
			if err != nil {
				return err
			}
			defer cli.Close()
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err = cli.Put(pctx, "bench-ready", "1")
			return err
		})
		if err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

// newEtcdClient connects to one etcd member only.
func newEtcdClient(endpoint string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

// startShelf starts three kvnodes (fsync on, kvnode's default): n1
// bootstraps, n2 and n3 join through its gossip address, as in the
// integration tests, each with the extra flags. It returns once every node names the same leader and
// lists three voters.
func startShelf(ctx context.Context, bin, dir string, p ports, extra []string) (*cluster, error) {
	const n = 3
	c := &cluster{}
	var firstGossip string
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		var addrs [3]string
		for j := range addrs {
			a, err := p.addr()
			if err != nil {
				c.stop()
				return nil, err
			}
			addrs[j] = a
		}
		args := []string{"-id", id, "-data", filepath.Join(dir, "kvnode-"+id), "-http", addrs[0], "-raft", addrs[1], "-gossip", addrs[2], "-log-level", "warn"}
		if i == 0 {
			args = append(args, "-bootstrap")
			firstGossip = addrs[2]
		} else {
			args = append(args, "-join", firstGossip)
		}
		args = append(args, extra...)
		s, err := start(dir, "kvnode-"+id, bin, args...)
		if err != nil {
			c.stop()
			return nil, err
		}
		c.servers = append(c.servers, s)
		c.endpoints = append(c.endpoints, addrs[0])
		if i == 0 { // the others join a leader
			if err := waitShelf(ctx, c, 1); err != nil {
				c.stop()
				return nil, err
			}
		}
	}
	if err := waitShelf(ctx, c, n); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// waitShelf waits until every node of c names the same leader and lists
// voters voters.
func waitShelf(ctx context.Context, c *cluster, voters int) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	return poll(ctx, startTimeout, fmt.Sprintf("%d kvnodes with one leader", voters), func() error {
		if err := c.dead(); err != nil {
			return err
		}
		var leader string
		for _, ep := range c.endpoints {
			st, err := api.NewClient(ep, hc).Status(ctx)
			if err != nil {
				return err
			}
			v := 0
			for _, m := range st.Members {
				if m.Suffrage == "Voter" {
					v++
				}
			}
			if st.Leader == "" || st.NoLeader || st.ClusterID == "" || v != voters || (leader != "" && st.Leader != leader) {
				return fmt.Errorf("%s: leader %q, %d voters", ep, st.Leader, v)
			}
			leader = st.Leader
		}
		return nil
	})
}

// mkTemp makes the run's temporary directory.
func mkTemp() (string, error) {
	dir, err := os.MkdirTemp("", "shelf-sidebyside-")
	if err != nil {
		return "", fmt.Errorf("temp dir: %w", err)
	}
	return dir, nil
}
