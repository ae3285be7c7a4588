package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
)

// TestAuthCluster runs three kvnode processes with -auth (and a cluster
// token, no TLS): the bootstrap node writes the first admin token to
// DATA/admin.token (0600); kvctl with it makes a writer and a reader
// token and lists them without secrets; an embedded client with the
// writer token registers (binding the token to it), creates, borrows,
// edits and returns through a follower and follows the log; it is
// refused acting as another client; the reader reads but cannot write;
// requests without a token, and internal routes without this cluster's
// token, are refused and audited; a revoked token is refused on every
// node.
func TestAuthCluster(t *testing.T) {
	skipShort(t)
	const clusterToken = "office-cluster-secret"
	flags := []string{"-auth", "-cluster-token", clusterToken}
	nodes := []*Node{newNode(t, "n1"), newNode(t, "n2"), newNode(t, "n3")}
	nodes[0].Start(append(flags, "-bootstrap")...)

	tokenFile := filepath.Join(nodes[0].Dir, "admin.token")
	waitFor(t, readyTimeout, "the bootstrap node to write "+tokenFile, func() (bool, string) {
		if err, exited := nodes[0].WaitExit(0); exited {
			t.Fatalf("n1 exited: %v\n%s", err, nodes[0].tail(logTailLines))
		}
		b, err := os.ReadFile(tokenFile)
		return err == nil && strings.HasPrefix(string(b), api.TokenPrefix), fmt.Sprint(err)
	})
	fi, err := os.Stat(tokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file: %v, mode %v, want 0600", err, fi.Mode())
	}
	b, _ := os.ReadFile(tokenFile)
	admin := strings.TrimSpace(string(b))
	for _, n := range nodes {
		n.Client = n.newClient().WithToken(admin)
	}
	nodes[0].WaitReady()
	for _, n := range nodes[1:] {
		n.Start(append(flags, "-join", nodes[0].Gossip)...)
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
	waitLog(t, nodes[:1], "the log to say where the admin token is", "created the first admin token", tokenFile)
	all := strings.Join([]string{nodes[0].HTTP, nodes[1].HTTP, nodes[2].HTTP}, ",")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("no token, wrong token", func(t *testing.T) {
		for _, n := range nodes {
			if _, err := n.newClient().Status(ctx); !errors.Is(err, api.ErrUnauthenticated) {
				t.Errorf("%s: status without a token: %v, want unauthenticated", n.ID, err)
			}
		}
		code, _, stderr := kvctlOut(t, "-s", all, "status")
		if code != 6 || !strings.Contains(stderr, "requires a token") {
			t.Errorf("kvctl status without a token: exit %d, %q", code, stderr)
		}
		waitLog(t, nodes, "an audit record of the refusal", "audit: request refused", "status=401", "GET /v1/status")
	})

	var writerTok, readerTok string
	t.Run("kvctl tokens", func(t *testing.T) {
		code, stdout, stderr := kvctlOut(t, "-s", all, "--token-file", tokenFile, "tokens", "create", "ws7", "--role", "writer")
		if code != 0 || !strings.HasPrefix(stdout, api.TokenPrefix) {
			t.Fatalf("tokens create ws7: exit %d, %q, %q", code, stdout, stderr)
		}
		writerTok = strings.TrimSpace(stdout)
		code, stdout, stderr = kvctlOut(t, "-s", follower.HTTP, "--token", admin, "-o", "json", "tokens", "create", "ro", "--role", "reader")
		var ct api.CreatedToken
		if code != 0 || json.Unmarshal([]byte(stdout), &ct) != nil || ct.Role != api.RoleReader || ct.Token == "" {
			t.Fatalf("tokens create ro: exit %d, %q, %q", code, stdout, stderr)
		}
		readerTok = ct.Token
		code, stdout, stderr = kvctlOut(t, "-s", all, "--token", writerTok, "tokens", "create", "x", "--role", "admin")
		if code != 6 || !strings.Contains(stderr, "needs role admin") {
			t.Errorf("a writer creating a token: exit %d, %q, %q", code, stdout, stderr)
		}
		code, stdout, _ = kvctlOut(t, "-s", all, "--token-file", tokenFile, "-o", "json", "tokens", "list")
		var list []api.TokenInfo
		if code != 0 || json.Unmarshal([]byte(stdout), &list) != nil || len(list) != 3 {
			t.Fatalf("tokens list: exit %d, %q", code, stdout)
		}
		for _, s := range []string{admin, writerTok, readerTok, api.TokenHash(admin), api.TokenHash(writerTok)} {
			if strings.Contains(stdout, s) {
				t.Fatalf("tokens list shows a secret or its hash: %s", stdout)
			}
		}
	})

	var db *testClient
	var key api.Key
	t.Run("embedded client with a writer token", func(t *testing.T) {
		cfg := clientConfig(t, "ws-7", follower.HTTP)
		cfg.Token = writerTok
		db = openClient(t, cfg, true)
		tree := db.Tree("parts")
		res, err := tree.Create(ctx, 0, value(t, 1))
		if err != nil || res.Pending {
			t.Fatalf("create: %+v %v", res, err)
		}
		key = res.Key
		if err := tree.Checkout(ctx, key, 0); err != nil {
			t.Fatalf("checkout: %v", err)
		}
		if _, err := tree.Update(ctx, key, 0, value(t, 2)); err != nil {
			t.Fatalf("update: %v", err)
		}
		if err := tree.Return(ctx, key); err != nil {
			t.Fatalf("return: %v", err)
		}
		// Its log stream: a write by the admin reaches its replica.
		other, err := nodes[0].Client.Create(ctx, "parts", api.WriteRequest{Data: value(t, 3)})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, clientWait, "the client's replica to apply the admin's create", func() (bool, string) {
			_, err := tree.Get(other.Key)
			return err == nil, fmt.Sprint(err)
		})
		list, err := nodes[0].Client.Tokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range list {
			if ti.Name == "ws7" && ti.Client != db.ClientID() {
				t.Fatalf("token ws7 acts as %q, want the client it registered, %s", ti.Client, db.ClientID())
			}
		}
	})

	t.Run("a writer acts only as its client", func(t *testing.T) {
		other, err := nodes[0].Client.RegisterClient(ctx, "ws-8")
		if err != nil {
			t.Fatal(err)
		}
		w := follower.newClient().WithToken(writerTok)
		if _, err := w.Borrow(ctx, "parts", key, other.ID, 0); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "acts as client") {
			t.Errorf("borrow as another client: %v, want forbidden", err)
		}
		if _, err := w.RemoveClient(ctx, other.ID, "x"); !errors.Is(err, api.ErrForbidden) {
			t.Errorf("removing another client: %v, want forbidden", err)
		}
		if _, err := w.RegisterClient(ctx, "second"); !errors.Is(err, api.ErrForbidden) {
			t.Errorf("a bound writer token registering a second client: %v, want forbidden", err)
		}
		if _, err := w.ForceReturn(ctx, "parts", key, "x"); !errors.Is(err, api.ErrForbidden) {
			t.Errorf("a writer forcing a return: %v, want forbidden", err)
		}
		waitLog(t, nodes, "an audit record naming the token", "audit: request refused", "status=403", "token=ws7")

		r := leader.newClient().WithToken(readerTok)
		if _, err := r.Get(ctx, "parts", key); err != nil {
			t.Errorf("reader get: %v", err)
		}
		if _, err := r.Create(ctx, "parts", api.WriteRequest{Data: value(t, 9)}); !errors.Is(err, api.ErrForbidden) {
			t.Errorf("reader create: %v, want forbidden", err)
		}
	})

	t.Run("internal routes for this cluster's nodes only", func(t *testing.T) {
		for _, hdr := range []map[string]string{nil, {"X-Shelf-Cluster-Token": "another-cluster"}, {"Authorization": "Bearer " + admin}} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+leader.HTTP+cluster.InternalReadIndexPath, nil)
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			resp, err := testHTTP.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("internal route with %v: %s, want 403", hdr, resp.Status)
			}
		}
	})

	t.Run("operator commands a follower passes to the leader", func(t *testing.T) {
		code, stdout, stderr := kvctlOut(t, "-s", follower.HTTP, "--token-file", tokenFile, "members", "remove", "nosuch")
		if code != 3 || !strings.Contains(stderr, "nosuch") {
			t.Errorf("members remove through a follower: exit %d %q %q, want 3 (no such member: the leader served it)", code, stdout, stderr)
		}
		code, stdout, stderr = kvctlOut(t, "-s", follower.HTTP, "--token-file", tokenFile, "leader", "transfer")
		if code != 0 {
			t.Errorf("leader transfer through a follower: exit %d %q %q", code, stdout, stderr)
		}
		waitConverged(t, nodes)
	})

	t.Run("revoke", func(t *testing.T) {
		code, stdout, stderr := kvctlOut(t, "-s", all, "--token-file", tokenFile, "tokens", "revoke", "ws7")
		if code != 0 {
			t.Fatalf("tokens revoke: exit %d %q %q", code, stdout, stderr)
		}
		for _, n := range nodes {
			c := n.newClient().WithToken(writerTok)
			waitFor(t, electionTimeout, n.ID+" to refuse the revoked token", func() (bool, string) {
				_, err := c.Status(ctx)
				return errors.Is(err, api.ErrUnauthenticated), fmt.Sprint(err)
			})
		}
		code, _, stderr = kvctlOut(t, "-s", all, "--token", writerTok, "trees")
		if code != 6 || !strings.Contains(stderr, "unknown or revoked") {
			t.Errorf("kvctl with a revoked token: exit %d, %q", code, stderr)
		}
	})
}

// TestDevNode: the README's dev node (kvnode -dev) needs no token, as
// before; kvnode -dev -auth writes shelf-data/admin.token, kvctl is
// refused without it and works with --token-file.
func TestDevNode(t *testing.T) {
	skipShort(t)
	for _, auth := range []bool{false, true} {
		t.Run(fmt.Sprintf("auth=%v", auth), func(t *testing.T) {
			dir := t.TempDir()
			httpAddr := freeAddr(t)
			args := []string{"-dev", "-http", httpAddr, "-raft", freeAddr(t), "-gossip", freeAddr(t)}
			if auth {
				args = append(args, "-auth")
			}
			cmd := exec.Command(kvnodeBin, args...)
			cmd.Dir = dir
			cmd.Env = cleanEnv()
			logf, err := os.Create(filepath.Join(dir, "kvnode.log"))
			if err != nil {
				t.Fatal(err)
			}
			defer logf.Close()
			cmd.Stdout, cmd.Stderr = logf, logf
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-done
				if t.Failed() {
					b, _ := os.ReadFile(filepath.Join(dir, "kvnode.log"))
					t.Logf("kvnode log:\n%s", b)
				}
			})
			var extra []string
			if auth {
				tokenFile := filepath.Join(dir, "shelf-data", "admin.token")
				waitFor(t, readyTimeout, tokenFile, func() (bool, string) {
					_, err := os.Stat(tokenFile)
					return err == nil, fmt.Sprint(err)
				})
				extra = []string{"--token-file", tokenFile}
			}
			kv := func(args ...string) (int, string, string) {
				return kvctlOut(t, append([]string{"-s", httpAddr}, args...)...)
			}
			waitFor(t, readyTimeout, "the dev node to take a write", func() (bool, string) {
				code, out, errOut := kv(append(extra, "put", "parts", `{"name": "R1", "qty": 10}`)...)
				return code == 0, out + errOut
			})
			if code, out, errOut := kv(append(extra, "get", "parts", "1")...); code != 0 || !strings.Contains(out, "R1") {
				t.Fatalf("get: exit %d %q %q", code, out, errOut)
			}
			code, out, errOut := kv("list", "parts")
			switch {
			case !auth && (code != 0 || !strings.Contains(out, "R1")):
				t.Fatalf("dev node without auth: list: exit %d %q %q", code, out, errOut)
			case auth && (code != 6 || !strings.Contains(errOut, "requires a token")):
				t.Fatalf("dev node with auth, no token: list: exit %d %q %q", code, out, errOut)
			}
		})
	}
}

// TestAuthWithTLS: a kvnode with TLS, client certificates required and
// -auth (no cluster token: the node certificates recognise members). The
// admin token works over HTTPS with any client certificate of the CA; a
// client certificate whose common name names a token acts with that
// token's role without a bearer token; one that names none gets 401.
func TestAuthWithTLS(t *testing.T) {
	skipShort(t)
	ours := newOffice(t, filepath.Join(t.TempDir(), "office"))
	ours.issue(t, "n1", true)
	ours.issue(t, "ops", false)
	ours.issue(t, "dash", false)
	n := newNode(t, "n1")
	n.scheme, n.hc = "https", tlsHTTP(t, ours.files("ops"))
	n.Client = n.newClient()
	n.Start(append(ours.nodeFlags("n1", gossipKey(t)), "-bootstrap", "-auth")...)
	tokenFile := filepath.Join(n.Dir, "admin.token")
	waitFor(t, readyTimeout, tokenFile, func() (bool, string) {
		if err, exited := n.WaitExit(0); exited {
			t.Fatalf("n1 exited: %v\n%s", err, n.tail(logTailLines))
		}
		_, err := os.Stat(tokenFile)
		return err == nil, fmt.Sprint(err)
	})
	tls := []string{"-s", n.HTTP, "--cacert", ours.ca(), "--cert", ours.cert("ops"), "--key", ours.key("ops")}
	if code, out, errs := kvctlOut(t, append(tls, "--token-file", tokenFile, "tokens", "create", "dash", "--role", "reader")...); code != 0 {
		t.Fatalf("tokens create dash over TLS: exit %d %q %q", code, out, errs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	dash := api.NewClient("https://"+n.HTTP, tlsHTTP(t, ours.files("dash")))
	if _, err := dash.Trees(ctx); err != nil {
		t.Fatalf("certificate dash (token dash, reader): trees: %v", err)
	}
	if _, err := dash.Create(ctx, "parts", api.WriteRequest{Data: value(t, 1)}); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("certificate dash: create: %v, want forbidden", err)
	}
	if _, err := n.Client.Trees(ctx); !errors.Is(err, api.ErrUnauthenticated) || !strings.Contains(err.Error(), `"ops" names no token`) {
		t.Fatalf("certificate ops (no token of that name): %v, want unauthenticated naming it", err)
	}
}
