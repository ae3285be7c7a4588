package main

import (
	"context"
	"encoding/json"
	"net"
	"runtime"
	"strings"
	"testing"

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
		"client rules  up to 2",
		"server        "+v.String(), // the node runs in this test binary
		"server node   s1 (http://"+s.Addr+")",
		"server rules  up to 2; the cluster runs 2")

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
