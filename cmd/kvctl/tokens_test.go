package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

// The token comes from --token, SHELF_TOKEN, --token-file or
// SHELF_TOKEN_FILE, in that order, and goes out as a bearer token; the
// tokens subcommands send what the API takes and print what it answers;
// 401 and 403 exit with 6.
func TestTokensAndTokenSources(t *testing.T) {
	var mu sync.Mutex
	var auths, bodies []string
	mux := http.NewServeMux()
	record := func(r *http.Request) {
		var b bytes.Buffer
		_, _ = b.ReadFrom(r.Body)
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		bodies = append(bodies, b.String())
		mu.Unlock()
	}
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", api.ContentJSON)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /v1/trees", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		if r.Header.Get("Authorization") == "" {
			reply(w, http.StatusUnauthorized, api.Errorf(api.CodeUnauthenticated, "unauthenticated: this node requires a token"))
			return
		}
		reply(w, http.StatusOK, []api.Tree{})
	})
	mux.HandleFunc("POST /v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		reply(w, http.StatusCreated, api.CreatedToken{TokenInfo: api.TokenInfo{Name: "ws-7", Role: api.RoleWriter, Created: now}, Token: "shelf_newsecret"})
	})
	mux.HandleFunc("GET /v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		reply(w, http.StatusOK, []api.TokenInfo{{Name: "admin", Role: api.RoleAdmin, Created: now.Add(-time.Hour)}, {Name: "ws-7", Role: api.RoleWriter, Client: "c-1", Created: now}})
	})
	mux.HandleFunc("DELETE /v1/tokens/{name}", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		if r.PathValue("name") != "ws-7" {
			reply(w, http.StatusForbidden, api.Errorf(api.CodeForbidden, "forbidden: needs role admin"))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	file := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(file, []byte("shelf_fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty.token")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(env map[string]string, args ...string) (string, string, int) {
		env["SHELF_HTTP"] = srv.URL
		var out, errb bytes.Buffer
		c := &cli{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] }, now: func() time.Time { return now }}
		code := c.main(context.Background(), args)
		return out.String(), errb.String(), code
	}
	last := func() (string, string) {
		mu.Lock()
		defer mu.Unlock()
		return auths[len(auths)-1], bodies[len(bodies)-1]
	}
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{}, []string{"--token", "shelf_flag", "trees"}, "Bearer shelf_flag"},
		{map[string]string{"SHELF_TOKEN": "shelf_env"}, []string{"trees"}, "Bearer shelf_env"},
		{map[string]string{}, []string{"--token-file", file, "trees"}, "Bearer shelf_fromfile"},
		{map[string]string{"SHELF_TOKEN_FILE": file}, []string{"trees"}, "Bearer shelf_fromfile"},
		{map[string]string{"SHELF_TOKEN_FILE": file}, []string{"--token", "shelf_flag", "trees"}, "Bearer shelf_flag"},
	} {
		if _, errs, code := run(c.env, c.args...); code != 0 {
			t.Fatalf("%v %v: exit %d %s", c.env, c.args, code, errs)
		}
		if got, _ := last(); got != c.want {
			t.Errorf("%v %v: sent %q, want %q", c.env, c.args, got, c.want)
		}
	}
	if _, errs, code := run(map[string]string{}, "trees"); code != exitDenied || !strings.Contains(errs, "requires a token") {
		t.Errorf("no token: exit %d %q", code, errs)
	}
	if _, errs, code := run(map[string]string{}, "--token-file", empty, "trees"); code != exitError || !strings.Contains(errs, "empty") {
		t.Errorf("empty token file: exit %d %q", code, errs)
	}
	if _, errs, code := run(map[string]string{}, "--token-file", filepath.Join(t.TempDir(), "nosuch"), "trees"); code == 0 || !strings.Contains(errs, "--token-file") {
		t.Errorf("missing token file: exit %d %q", code, errs)
	}

	tok := map[string]string{"SHELF_TOKEN": "shelf_admin"}
	out, errs, code := run(tok, "tokens", "create", "ws-7", "--role", "writer")
	if code != 0 || strings.TrimSpace(out) != "shelf_newsecret" || !strings.Contains(errs, "only this once") {
		t.Fatalf("tokens create: exit %d %q %q", code, out, errs)
	}
	if _, body := last(); !strings.Contains(body, "ws-7") || !strings.Contains(body, "writer") {
		t.Errorf("tokens create sent %q", body)
	}
	out, _, code = run(tok, "tokens")
	if code != 0 || !strings.Contains(out, "ws-7") || !strings.Contains(out, "c-1") || !strings.Contains(out, "admin") {
		t.Errorf("tokens list: exit %d %q", code, out)
	}
	if out, errs, code = run(tok, "tokens", "revoke", "ws-7"); code != 0 || !strings.Contains(out, "revoked token ws-7") {
		t.Errorf("tokens revoke: exit %d %q %q", code, out, errs)
	}
	if _, _, code = run(tok, "tokens", "revoke", "other"); code != exitDenied {
		t.Errorf("tokens revoke refused: exit %d, want %d", code, exitDenied)
	}
	for _, args := range [][]string{
		{"tokens", "create", "x"},                   // no role
		{"tokens", "create", "x", "--role", "root"}, // bad role
		{"tokens", "create", "--role", "reader"},    // no name
		{"tokens", "revoke"},
		{"tokens", "frob"},
	} {
		if _, errs, code := run(tok, args...); code != exitUsage {
			t.Errorf("%v: exit %d %q, want usage", args, code, errs)
		}
	}
}
