package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

// lossyProxy is a TCP proxy in front of a node. Armed for a request
// prefix ("POST /v1/batch"), it forwards the next request that starts
// with it to the node, then drops the node's answer and closes the
// client's connection: the write is applied, its answer lost. Every
// other byte goes through untouched.
type lossyProxy struct {
	ln     net.Listener
	target string
	armed  atomic.Pointer[string]
	lost   atomic.Int32
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
}

// startLossyProxy listens on a loopback port and forwards to target. It
// stops when the test ends.
func startLossyProxy(t *testing.T, target string) *lossyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// Addr returns the proxy's address.
func (p *lossyProxy) Addr() string { return p.ln.Addr().String() }

// loseNext arms the proxy: the answer to the next request starting with
// prefix is dropped.
func (p *lossyProxy) loseNext(prefix string) { p.armed.Store(&prefix) }

func (p *lossyProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil // connections accepted from now on are refused
	p.mu.Unlock()
	p.wg.Wait()
}

// track adds c to (on) or removes it from the open connections; false
// means the proxy is closed.
func (p *lossyProxy) track(c net.Conn, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on && p.conns == nil {
		return false
	}
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *lossyProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.pipe(c)
		}()
	}
}

// pipe carries one client connection to the node and back.
func (p *lossyProxy) pipe(c net.Conn) {
	defer c.Close()
	up, err := net.DialTimeout("tcp", p.target, 3*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.track(c, true) || !p.track(up, true) {
		return // the proxy is closing
	}
	defer p.track(c, false)
	defer p.track(up, false)
	var dropNext atomic.Bool
	done := make(chan struct{})
	go func() { // client -> node
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if pre := p.armed.Load(); pre != nil && bytes.HasPrefix(buf[:n], []byte(*pre)) && p.armed.CompareAndSwap(pre, nil) {
					dropNext.Store(true)
				}
				if _, werr := up.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				up.(*net.TCPConn).CloseWrite()
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for { // node -> client
		n, err := up.Read(buf)
		if n > 0 && dropNext.Load() {
			// The node answered: the write is applied. Drop the answer and cut.
			p.lost.Add(1)
			c.Close()
			up.Close()
			break
		}
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	c.Close()
	up.Close()
	<-done
}

// viaProxy sends every request to the proxy at addr.
type viaProxy struct {
	addr string
	base http.RoundTripper
}

func (v *viaProxy) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Host, r.Host = v.addr, v.addr
	return v.base.RoundTrip(r)
}

// countRecords returns the number of records of tree on n.
func countRecords(t *testing.T, n *Node, tree string) int {
	t.Helper()
	return len(listAll(t, n, tree))
}

// TestLostAnswerRetriedWithKeyAppliesOnce: a create sent through a proxy
// that forwards it to a node but drops the answer is applied; sent again
// with the same Idempotency-Key through another node, it is answered with
// the first result and not applied again.
func TestLostAnswerRetriedWithKeyAppliesOnce(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	leader := waitLeader(t, nodes)
	var follower, other *Node
	for _, n := range nodes {
		switch {
		case n == leader:
		case follower == nil:
			follower = n
		default:
			other = n
		}
	}
	proxy := startLossyProxy(t, follower.HTTP)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	kctx := api.WithIdempotencyKey(ctx, "lost-answer-1")
	req := api.WriteRequest{Data: value(t, 1)}

	proxy.loseNext("POST /v1/trees/")
	_, err := api.NewClient(proxy.Addr(), newHTTPClient()).Create(kctx, "parts", req)
	if !errors.Is(err, api.ErrUnreachable) || proxy.lost.Load() != 1 {
		t.Fatalf("create through the lossy proxy: %v (answers lost %d), want an unreachable error", err, proxy.lost.Load())
	}
	res, err := other.Client.Create(kctx, "parts", req)
	if err != nil || !res.Repeat {
		t.Fatalf("the same create with the same key through %s: %+v %v, want the first result, repeated", other.ID, res, err)
	}
	again, err := leader.Client.Create(kctx, "parts", req)
	if err != nil || again.Key != res.Key || again.Index != res.Index {
		t.Fatalf("third send through the leader: %+v %v, want %+v", again, err, res)
	}
	if _, err := leader.Client.Create(kctx, "parts", api.WriteRequest{Data: value(t, 2)}); !errors.Is(err, api.ErrKeyReused) {
		t.Fatalf("the key with another value: %v, want key_reused", err)
	}
	waitSameApplied(t, nodes, res.Index)
	for _, n := range nodes {
		if c := countRecords(t, n, "parts"); c != 1 {
			t.Fatalf("node %s has %d records, want 1", n.ID, c)
		}
	}
	waitSameHash(t, nodes, nil, electionTimeout)
}

// newHTTPClient returns an HTTP client with a transport of its own.
func newHTTPClient() *http.Client {
	return &http.Client{Transport: newTransport(), Timeout: requestTimeout}
}

// kvctlOut runs the built kvctl and returns its exit code, stdout and stderr.
func kvctlOut(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kvctlBin, args...)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee) && ee.Exited():
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("kvctl %s: %v; stderr %q", strings.Join(args, " "), err, stderr.String())
	return 0, "", ""
}

// TestKvctlPutRetriedOnce: kvctl put whose answer is lost retries with
// its idempotency key and makes one record; run again with the same key
// through another node, it prints the same key and makes none.
func TestKvctlPutRetriedOnce(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	proxy := startLossyProxy(t, nodes[1].HTTP)
	proxy.loseNext("POST /v1/trees/")
	code, out1, errs := kvctlOut(t, "-s", proxy.Addr(), "put", "--idempotency-key", "kvctl-once-1", "parts", `{"n": 1}`)
	if code != 0 || proxy.lost.Load() != 1 || !strings.Contains(errs, "sending again") {
		t.Fatalf("kvctl put through a lost answer: exit %d, lost %d, stdout %q, stderr %q", code, proxy.lost.Load(), out1, errs)
	}
	code, out2, errs := kvctlOut(t, "-s", nodes[2].HTTP, "put", "--idempotency-key", "kvctl-once-1", "parts", `{"n": 1}`)
	if code != 0 || out2 != out1 {
		t.Fatalf("kvctl put again with the key: exit %d, stdout %q (want %q), stderr %q", code, out2, out1, errs)
	}
	code, _, errs = kvctlOut(t, "-s", nodes[0].HTTP, "put", "--idempotency-key", "kvctl-once-1", "parts", `{"n": 2}`)
	if code != 4 || !strings.Contains(errs, "key_reused") && !strings.Contains(errs, "different request") {
		t.Fatalf("kvctl put, same key, other value: exit %d, stderr %q", code, errs)
	}
	st, err := nodes[0].Status()
	if err != nil {
		t.Fatal(err)
	}
	waitSameApplied(t, nodes, st.AppliedIndex)
	for _, n := range nodes {
		if c := countRecords(t, n, "parts"); c != 1 {
			t.Fatalf("node %s has %d records, want 1", n.ID, c)
		}
	}
}

// TestClientBatchLostAnswer: an embedded client whose batch answers are
// lost (a proxy forwards the batch, drops the answer) sends the batch
// again: a create makes one record, an update is applied once, and an
// update and a delete sent together come back without a conflict.
func TestClientBatchLostAnswer(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	proxy := startLossyProxy(t, nodes[1].HTTP)
	ctx, cancel := context.WithTimeout(context.Background(), 3*clientWait)
	defer cancel()
	cfg := clientConfig(t, "lossy", proxy.Addr())
	// Every request goes through the proxy, whichever server the client
	// picks (it learns the others from the cluster).
	cut := &cutTransport{base: &viaProxy{addr: proxy.Addr(), base: newTransport()}}
	cfg.HTTPClient = &http.Client{Transport: cut}
	db := openClient(t, cfg, true)
	parts := db.Tree("parts")
	settled := func() (bool, string) {
		cs, err := db.Conflicts()
		return db.Pending() == 0, fmt.Sprintf("%d pending, conflicts %v %v", db.Pending(), cs, err)
	}
	noConflicts := func(when string) {
		t.Helper()
		if cs, err := db.Conflicts(); err != nil || len(cs) != 0 {
			t.Fatalf("%s: conflicts %+v (%v)", when, cs, err)
		}
	}

	proxy.loseNext("POST /v1/batch")
	// The writer learns the outcome from the batch sent again (the outbox
	// tries the next server at once), or finds the create pending if that
	// one has not answered yet: either way it is applied once.
	res, err := parts.Create(ctx, 0, value(t, 1))
	if err != nil {
		t.Fatalf("create whose answer is lost: %+v %v", res, err)
	}
	waitFor(t, clientWait, "the create to be settled", settled)
	noConflicts("create sent again")
	if proxy.lost.Load() != 1 {
		t.Fatalf("%d answers lost, want 1", proxy.lost.Load())
	}
	for _, n := range nodes {
		waitRecord(t, n, "parts", res.Key, "the create", func(api.Record) bool { return true })
	}

	// Create, then update: the update's answer lost too.
	if err := parts.Checkout(ctx, res.Key, 0); err != nil {
		t.Fatal(err)
	}
	st, err := nodes[0].Status()
	if err != nil {
		t.Fatal(err)
	}
	from := st.AppliedIndex
	proxy.loseNext("POST /v1/batch")
	if _, err := parts.Update(ctx, res.Key, 0, value(t, 2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, clientWait, "the update to be settled", settled)
	noConflicts("update sent again")
	if proxy.lost.Load() != 2 {
		t.Fatalf("%d answers lost, want 2", proxy.lost.Load())
	}
	// nodes[2] may apply the update a moment after the client saw it (a
	// write's answer does not wait for every replica): wait for its
	// event, then count.
	countUpdates := func() (int, []api.Event) {
		page, err := nodes[2].Client.Events(ctx, from, 0, 0, "parts")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range page.Events {
			if e.Type == api.EventUpdated && e.Key == res.Key {
				n++
			}
		}
		return n, page.Events
	}
	waitFor(t, clientWait, "the update's event at "+nodes[2].ID, func() (bool, string) {
		n, evs := countUpdates()
		return n > 0, fmt.Sprintf("%d update events: %+v", n, evs)
	})
	if updates, evs := countUpdates(); updates != 1 {
		t.Fatalf("%d update events after index %d, want 1: %+v", updates, from, evs)
	}

	// An update and a delete queued offline go out in one batch whose
	// answer is lost.
	cut.cut.Store(true)
	waitFor(t, clientWait, "the client to go offline", func() (bool, string) { return !db.Online(), "" })
	if r, err := parts.Update(ctx, res.Key, 0, value(t, 3)); err != nil || !r.Pending {
		t.Fatalf("offline update: %+v %v", r, err)
	}
	if r, err := parts.Delete(ctx, res.Key); err != nil || !r.Pending {
		t.Fatalf("offline delete: %+v %v", r, err)
	}
	proxy.loseNext("POST /v1/batch")
	cut.cut.Store(false)
	waitFor(t, clientWait, "the offline writes to be settled", settled)
	noConflicts("update and delete sent again")
	if proxy.lost.Load() != 3 {
		t.Fatalf("%d answers lost, want 3", proxy.lost.Load())
	}
	for _, n := range nodes {
		n := n
		waitFor(t, clientWait, n.ID+" to delete the record", func() (bool, string) {
			rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
			defer rcancel()
			_, err := n.Client.Get(rctx, "parts", res.Key)
			return errors.Is(err, api.ErrNotFound), fmt.Sprint(err)
		})
	}
	waitSameHash(t, nodes, []*testClient{db}, electionTimeout)
}
