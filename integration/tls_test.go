package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
)

// office is a set of certificates made with kvctl certs in a test's
// temporary directory.
type office struct {
	dir string // holds ca.crt, ca.key and NAME.crt, NAME.key
}

// newOffice makes a CA with kvctl certs init in dir.
func newOffice(t *testing.T, dir string) office {
	t.Helper()
	if code, _, stderr := kvctlOut(t, "certs", "init", "--dir", dir); code != 0 {
		t.Fatalf("kvctl certs init: exit %d: %s", code, stderr)
	}
	return office{dir: dir}
}

// issue makes a certificate with kvctl certs issue: a node certificate
// for 127.0.0.1 and localhost, or a client certificate.
func (o office) issue(t *testing.T, name string, node bool) {
	t.Helper()
	args := []string{"certs", "issue", "--ca", o.dir, name, "--client"}
	if node {
		args = []string{"certs", "issue", "--ca", o.dir, name, "--node", "--hosts", "127.0.0.1,localhost"}
	}
	if code, _, stderr := kvctlOut(t, args...); code != 0 {
		t.Fatalf("kvctl %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
}

func (o office) ca() string              { return filepath.Join(o.dir, "ca.crt") }
func (o office) cert(name string) string { return filepath.Join(o.dir, name+".crt") }
func (o office) key(name string) string  { return filepath.Join(o.dir, name+".key") }
func (o office) files(name string) api.TLSFiles {
	return api.TLSFiles{CA: o.ca(), Cert: o.cert(name), Key: o.key(name)}
}

// nodeFlags are the TLS flags of node name: its certificate, the cluster
// CA, client certificates required from the same CA, and the gossip key.
func (o office) nodeFlags(name, gossipKey string) []string {
	return []string{"-tls-cert", o.cert(name), "-tls-key", o.key(name), "-tls-ca", o.ca(), "-tls-client-ca", o.ca(), "-gossip-key", gossipKey}
}

// tlsHTTP returns an HTTP client with the TLS configuration of files.
func tlsHTTP(t *testing.T, files api.TLSFiles) *http.Client {
	t.Helper()
	cfg, err := files.Config()
	if err != nil {
		t.Fatalf("client TLS: %v", err)
	}
	tr := testHTTP.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return &http.Client{Timeout: testHTTP.Timeout, Transport: tr}
}

// gossipKey makes a gossip key with kvctl certs gossip-key.
func gossipKey(t *testing.T) string {
	t.Helper()
	code, stdout, stderr := kvctlOut(t, "certs", "gossip-key")
	if code != 0 {
		t.Fatalf("kvctl certs gossip-key: exit %d: %s", code, stderr)
	}
	return strings.TrimSpace(stdout)
}

// waitLog waits until the current run of one of nodes has logged a line
// with all of want.
func waitLog(t *testing.T, nodes []*Node, what string, want ...string) {
	t.Helper()
	waitFor(t, electionTimeout, what, func() (bool, string) {
		for _, n := range nodes {
			for _, line := range strings.Split(n.RunLog(), "\n") {
				found := true
				for _, w := range want {
					found = found && strings.Contains(line, w)
				}
				if found {
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("no node of %v has logged a line with %q", ids(nodes), want)
	})
}

// TestTLSCluster runs a cluster of three kvnode processes with TLS on
// everywhere (certificates and gossip key made by kvctl certs): it elects
// a leader, a write through a follower is forwarded to the leader over
// mutual TLS, and an embedded client reads it over HTTPS. Plain HTTP is
// refused, a node with a certificate of another CA stays out of the
// cluster (raft, internal routes and the leader's membership check each
// refuse it, and say why in the log), and a node with another gossip key
// cannot join.
func TestTLSCluster(t *testing.T) {
	skipShort(t)
	ours := newOffice(t, filepath.Join(t.TempDir(), "office"))
	for _, name := range []string{"n1", "n2", "n3", "n5"} {
		ours.issue(t, name, true)
	}
	ours.issue(t, "alice", false)
	theirs := newOffice(t, filepath.Join(t.TempDir(), "elsewhere"))
	theirs.issue(t, "n4", true)
	key := gossipKey(t)

	aliceHTTP := tlsHTTP(t, ours.files("alice"))
	nodes := make([]*Node, 3)
	for i := range nodes {
		nodes[i] = newNode(t, fmt.Sprintf("n%d", i+1))
		nodes[i].scheme, nodes[i].hc = "https", aliceHTTP
		nodes[i].Client = nodes[i].newClient()
	}
	nodes[0].Start(append(ours.nodeFlags("n1", key), "-bootstrap")...)
	nodes[0].WaitReady()
	for _, n := range nodes[1:] {
		n.Start(append(ours.nodeFlags(n.ID, key), "-join", nodes[0].Gossip)...)
	}
	for _, n := range nodes[1:] {
		n.WaitReady()
	}
	waitConverged(t, nodes)
	leader := waitLeader(t, nodes)
	var follower *Node
	for _, n := range nodes {
		if n != leader {
			follower = n
			break
		}
	}
	if !strings.Contains(leader.RunLog(), "listening on https://") {
		t.Errorf("leader %s does not say it listens on https://", leader.ID)
	}

	t.Run("write through a follower, read in a client", func(t *testing.T) {
		res, err := create(follower, "tls", value(t, 42))
		if err != nil {
			t.Fatalf("create through follower %s: %v", follower.ID, err)
		}
		cfg, err := ours.files("alice").Config()
		if err != nil {
			t.Fatal(err)
		}
		// A bare address: Config.TLS makes it https, as it does the
		// addresses the client learns from the cluster.
		db := openClient(t, client.Config{Dir: t.TempDir(), Servers: []string{follower.HTTP}, Name: "alice", TLS: cfg}, true)
		rec, err := db.Tree("tls").Get(res.Key)
		if err != nil {
			t.Fatalf("client read of %v: %v", res.Key, err)
		}
		v, err := api.DecodeValue(rec.Data)
		if m, ok := v.(map[string]any); err != nil || !ok || fmt.Sprint(m["n"]) != "42" {
			t.Fatalf("client read %v (%v), want n=42", v, err)
		}
	})

	t.Run("plain HTTP and missing client certificates are refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+leader.HTTP+"/v1/status", nil)
		resp, err := testHTTP.Do(req)
		if err != nil {
			t.Fatalf("plain HTTP request: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTP request to an HTTPS server") {
			t.Fatalf("plain HTTP to a TLS node: %s %q, want 400 \"Client sent an HTTP request to an HTTPS server\"", resp.Status, body)
		}
		// kvctl without TLS flags says the same; with them it works.
		code, _, stderr := kvctlOut(t, "-s", leader.HTTP, "status")
		if code == 0 || !strings.Contains(stderr, "HTTP request to an HTTPS server") {
			t.Errorf("kvctl status over plain HTTP: exit %d, stderr %q", code, stderr)
		}
		code, stdout, stderr := kvctlOut(t, "-s", leader.HTTP, "--cacert", ours.ca(), "--cert", ours.cert("alice"), "--key", ours.key("alice"), "-o", "json", "status")
		if code != 0 || !strings.Contains(stdout, `"leader"`) {
			t.Errorf("kvctl status over TLS: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		// -tls-client-ca: the CA alone is not enough.
		if _, err := api.NewClient("https://"+leader.HTTP, tlsHTTP(t, api.TLSFiles{CA: ours.ca()})).Status(ctx); err == nil {
			t.Error("a request without a client certificate was served by a node with -tls-client-ca")
		}
	})

	t.Run("a node with another CA's certificate stays out", func(t *testing.T) {
		n4 := newNode(t, "n4")
		n4.scheme, n4.hc = "https", tlsHTTP(t, api.TLSFiles{CA: theirs.ca()})
		n4.Client = n4.newClient()
		n4.Start("-tls-cert", theirs.cert("n4"), "-tls-key", theirs.key("n4"), "-tls-ca", theirs.ca(), "-gossip-key", key, "-join", nodes[0].Gossip)
		n4.WaitReady()
		// It got through gossip (it has the key), but the leader checks
		// its raft address before adding it, and refuses.
		waitLog(t, nodes, "the leader to refuse n4",
			"not adding a gossip member whose raft address does not present a node certificate of the cluster CA", "peer=n4")
		st, err := waitLeader(t, nodes).Status()
		if err != nil {
			t.Fatal(err)
		}
		if got := voters(st); !slices.Equal(got, []string{"n1", "n2", "n3"}) {
			t.Fatalf("voters %v after n4 tried to join, want [n1 n2 n3]", got)
		}

		// Raft: a connection with n4's certificate fails the handshake, and
		// the node logs why.
		n4cert, err := tls.LoadX509KeyPair(theirs.cert("n4"), theirs.key("n4"))
		if err != nil {
			t.Fatal(err)
		}
		ourCA, err := api.TLSFiles{CA: ours.ca()}.Config()
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", leader.Raft,
			&tls.Config{Certificates: []tls.Certificate{n4cert}, RootCAs: ourCA.RootCAs, MinVersion: tls.VersionTLS12})
		if err == nil {
			// TLS 1.3: the server judges the client certificate after the
			// client's side of the handshake; its refusal arrives on read.
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil {
			t.Fatal("raft accepted a connection with a certificate of another CA")
		}
		waitLog(t, []*Node{leader}, "the node to log the refused raft connection",
			"cluster: raft: refused a connection that failed TLS authentication")

		// Internal routes: n4's certificate does not get through the
		// handshake; a client certificate of our CA is not a member's.
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		n4HTTP := tlsHTTP(t, api.TLSFiles{CA: ours.ca(), Cert: theirs.cert("n4"), Key: theirs.key("n4")})
		get := func(hc *http.Client) (int, string, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+leader.HTTP+"/v1/internal/read-index", nil)
			resp, err := hc.Do(req)
			if err != nil {
				return 0, "", err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b), nil
		}
		if code, body, err := get(n4HTTP); err == nil {
			t.Errorf("internal route with another CA's node certificate: %d %s, want a refused handshake", code, body)
		}
		code, body, err := get(aliceHTTP)
		if err != nil || code != http.StatusForbidden || !strings.Contains(body, "cluster members only") {
			t.Errorf("internal route with a client certificate: %d %q %v, want 403 for cluster members only", code, body, err)
		}
	})

	t.Run("a node with another gossip key cannot join", func(t *testing.T) {
		n5 := newNode(t, "n5")
		n5.Start(append(ours.nodeFlags("n5", gossipKey(t)), "-join", nodes[0].Gossip)...)
		waitLog(t, nodes[:1], "n1 to refuse n5's gossip", "no installed keys could decrypt the message")
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		members, err := leader.Client.Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range members {
			if m.ID == "n5" {
				t.Fatalf("n5 with another gossip key is a member: %+v", m)
			}
		}
		if n5.Running() && strings.Contains(n5.RunLog(), "joined gossip") {
			t.Fatalf("n5 says it joined gossip:\n%s", n5.RunLog())
		}
	})

	t.Run("the leader killed, the others elect over TLS and take writes", func(t *testing.T) {
		old := waitLeader(t, nodes)
		old.Kill()
		var rest []*Node
		for _, n := range nodes {
			if n != old {
				rest = append(rest, n)
			}
		}
		waitLeader(t, rest)
		waitFor(t, electionTimeout, "a write after the election", func() (bool, string) {
			_, err := create(rest[0], "tls", value(t, 43))
			return err == nil, fmt.Sprint(err)
		})
	})
}
