package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
	"github.com/shelfdb/shelf/internal/testserver"
	"github.com/shelfdb/shelf/internal/version"
)

// TestVersion: kvctl version shows its own build and the node's, in a
// table and as JSON; -client needs no server; with no server it prints its
// own and exits 5.
func TestVersion(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	v := version.Get()

	out, errs, code := kvAt(ctx, t, s.Addr, "", "version")
	if code != exitOK {
		t.Fatalf("kvctl version: exit %d: %s", code, errs)
	}
	wantLines(t, out,
		"client        "+v.String(),
		"client rules  up to "+fmt.Sprint(fsm.RulesVersion),
		"server        "+v.String(), // the node runs in this test binary
		"server node   s1 (http://"+s.Addr+")",
		fmt.Sprintf("server rules  up to %d; the cluster runs %d", fsm.RulesVersion, fsm.RulesVersion))

	out, errs, code = kvAt(ctx, t, s.Addr, "", "-o", "json", "version")
	if code != exitOK {
		t.Fatalf("kvctl -o json version: exit %d: %s", code, errs)
	}
	var ans versionAnswer
	if err := json.Unmarshal([]byte(out), &ans); err != nil {
		t.Fatalf("kvctl -o json version: %v\n%s", err, out)
	}
	if ans.Client.Version != v.Version || ans.Client.GoVersion != runtime.Version() || ans.Client.RulesSupported != fsm.RulesVersion {
		t.Errorf("client part: %+v", ans.Client)
	}
	if sv := ans.Server; sv == nil || sv.NodeID != "s1" || sv.ClusterID != s.Node.ClusterID() || sv.Version != v.Version ||
		sv.GoVersion != runtime.Version() || sv.RulesSupported != fsm.RulesVersion || sv.ClusterRules != fsm.RulesVersion {
		t.Errorf("server part: %+v", ans.Server)
	}

	// No server: -client works, the full command prints kvctl's part and
	// fails as unreachable.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	out, errs, code = kvAt(ctx, t, dead, "", "version", "-client")
	if code != exitOK || !strings.HasPrefix(out, "client        "+v.String()) || strings.Contains(out, "server") {
		t.Errorf("kvctl version -client: exit %d, %q, %q", code, out, errs)
	}
	out, errs, code = kvAt(ctx, t, dead, "", "version")
	if code != exitUnreachable || !strings.HasPrefix(out, "client        "+v.String()) || !strings.Contains(errs, "server version: cannot reach server") {
		t.Errorf("kvctl version, no server: exit %d, %q, %q", code, out, errs)
	}
}

// TestHealth: kvctl health and health -ready against a node that leads,
// a node that answers not ready, and no node.
func TestHealth(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()

	out, errs, code := kvAt(ctx, t, s.Addr, "", "health")
	if code != exitOK || out != "s1: healthy\n" {
		t.Errorf("kvctl health: exit %d, %q, %q", code, out, errs)
	}
	out, errs, code = kvAt(ctx, t, s.Addr, "", "health", "-ready")
	if code != exitOK || !strings.HasPrefix(out, "s1: ready (leader s1, applied index ") || !strings.HasSuffix(out, ", 0 behind)\n") {
		t.Errorf("kvctl health -ready: exit %d, %q, %q", code, out, errs)
	}
	out, errs, code = kvAt(ctx, t, s.Addr, "", "-o", "json", "health", "-ready")
	var rd api.Readiness
	if code != exitOK || json.Unmarshal([]byte(out), &rd) != nil || !rd.Ready || rd.NodeID != "s1" {
		t.Errorf("kvctl -o json health -ready: exit %d, %q, %q", code, out, errs)
	}

	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", api.ContentJSON)
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(api.Readiness{NodeID: "n3", Reason: "no leader known", MaxLag: 1000})
	}))
	defer notReady.Close()
	out, errs, code = kvAt(ctx, t, notReady.URL, "", "health", "-ready")
	if code != exitError || out != "" || errs != "kvctl: node n3 is not ready: no leader known\n" {
		t.Errorf("kvctl health -ready, not ready: exit %d, %q, %q", code, out, errs)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	for _, args := range [][]string{{"health"}, {"health", "-ready"}} {
		if _, errs, code := kvAt(ctx, t, dead, "", args...); code != exitUnreachable {
			t.Errorf("kvctl %v, no server: exit %d, %q; want %d", args, code, errs, exitUnreachable)
		}
	}
}
