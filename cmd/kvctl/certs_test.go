package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/tlsconf"
)

func TestCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "office")
	out, errOut, code := kv(t, nil, "", "certs", "init", "--dir", dir)
	if code != 0 || !strings.Contains(out, "ca.crt") {
		t.Fatalf("certs init: exit %d, %q %q", code, out, errOut)
	}
	if _, errOut, code = kv(t, nil, "", "certs", "init", "--dir", dir); code != exitConflict || !strings.Contains(errOut, "--force") {
		t.Fatalf("certs init again: exit %d, %q; want %d and a hint at --force", code, errOut, exitConflict)
	}
	if _, errOut, code = kv(t, nil, "", "certs", "issue", "--ca", dir, "n1", "--node", "--hosts", "127.0.0.1,localhost"); code != 0 {
		t.Fatalf("certs issue --node: exit %d, %q", code, errOut)
	}
	out, errOut, code = kv(t, nil, "", "-o", "json", "certs", "issue", "--ca", dir, "alice", "--client", "--out", filepath.Join(dir, "clients"))
	if code != 0 {
		t.Fatalf("certs issue --client: exit %d, %q", code, errOut)
	}
	var issued map[string]string
	if err := json.Unmarshal([]byte(out), &issued); err != nil || issued["kind"] != "client" || issued["cert"] != filepath.Join(dir, "clients", "alice.crt") {
		t.Fatalf("certs issue -o json: %q (%v)", out, err)
	}
	for f, mode := range map[string]os.FileMode{"ca.key": 0o600, "ca.crt": 0o644, "n1.key": 0o600, "n1.crt": 0o644, "clients/alice.key": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v %v, want mode %v", f, fi, err, mode)
		}
	}
	if _, err := tlsconf.LoadNode(tlsconf.NodeFiles{Cert: filepath.Join(dir, "n1.crt"), Key: filepath.Join(dir, "n1.key"), CA: filepath.Join(dir, "ca.crt")}); err != nil {
		t.Errorf("the node certificate does not load as one: %v", err)
	}
	if _, errOut, code = kv(t, nil, "", "certs", "issue", "--ca", dir, "n1", "--node", "--hosts", "127.0.0.1"); code != exitConflict {
		t.Errorf("issue over an existing certificate: exit %d, %q", code, errOut)
	}
	if _, errOut, code = kv(t, nil, "", "certs", "issue", "--ca", dir, "n1", "--node", "--hosts", "127.0.0.1", "--force"); code != 0 {
		t.Errorf("issue --force: exit %d, %q", code, errOut)
	}
	for _, bad := range [][]string{
		{"certs"},
		{"certs", "frob"},
		{"certs", "init"},
		{"certs", "issue", "n2", "--node", "--hosts", "127.0.0.1"},
		{"certs", "issue", "--ca", dir, "n2", "--node"},
		{"certs", "issue", "--ca", dir, "n2", "--node", "--client", "--hosts", "127.0.0.1"},
		{"certs", "issue", "--ca", dir, "n2"},
		{"certs", "issue", "--ca", dir, "../n2", "--client"},
		{"certs", "issue", "--ca", dir, "n2", "--node", "--hosts", "127.0.0.1:7001"},
	} {
		if _, errOut, code := kv(t, nil, "", bad...); code != exitUsage {
			t.Errorf("kvctl %v: exit %d, %q; want usage error", bad, code, errOut)
		}
	}
	if _, errOut, code := kv(t, nil, "", "certs", "issue", "--ca", t.TempDir(), "n2", "--client"); code != exitError || !strings.Contains(errOut, "ca.crt") {
		t.Errorf("issue with a directory without CA: exit %d, %q", code, errOut)
	}
	out, _, code = kv(t, nil, "", "certs", "gossip-key")
	if _, err := tlsconf.ParseGossipKey(out); code != 0 || err != nil {
		t.Errorf("certs gossip-key: exit %d, %q: %v", code, out, err)
	}
}

// TestTLSFlags: with --cacert (and a client certificate for a server that
// requires one) kvctl reaches a bare address over https.
func TestTLSFlags(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"certs", "init", "--dir", dir},
		{"certs", "issue", "--ca", dir, "n1", "--node", "--hosts", "127.0.0.1"},
		{"certs", "issue", "--ca", dir, "alice", "--client"},
	} {
		if _, errOut, code := kv(t, nil, "", args...); code != 0 {
			t.Fatalf("kvctl %v: %q", args, errOut)
		}
	}
	ca := filepath.Join(dir, "ca.crt")
	node, err := tlsconf.LoadNode(tlsconf.NodeFiles{Cert: filepath.Join(dir, "n1.crt"), Key: filepath.Join(dir, "n1.key"), CA: ca, ClientCA: ca})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", api.ContentJSON)
		json.NewEncoder(w).Encode(api.Status{ClusterID: "c1", State: "Leader", Leader: "n1"})
	}))
	srv.TLS = node.HTTPServer
	srv.StartTLS()
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	ctx := context.Background()

	out, errOut, code := kvAt(ctx, t, addr, "", "--cacert", ca, "--cert", filepath.Join(dir, "alice.crt"), "--key", filepath.Join(dir, "alice.key"), "-o", "json", "status")
	if code != 0 || !strings.Contains(out, `"c1"`) {
		t.Fatalf("status over TLS: exit %d, %q %q", code, out, errOut)
	}
	if _, errOut, code = kvAt(ctx, t, addr, "", "--cacert", ca, "status"); code == 0 {
		t.Errorf("status without the client certificate the server requires: exit 0, %q", errOut)
	}
	if _, errOut, code = kvAt(ctx, t, addr, "", "--cacert", filepath.Join(dir, "missing.crt"), "status"); code != exitError || !strings.Contains(errOut, "missing.crt") {
		t.Errorf("a missing --cacert file: exit %d, %q", code, errOut)
	}
	if _, errOut, code = kvAt(ctx, t, addr, "", "--cacert", ca, "--cert", filepath.Join(dir, "alice.crt"), "status"); code != exitError || !strings.Contains(errOut, "both") {
		t.Errorf("--cert without --key: exit %d, %q", code, errOut)
	}
}
