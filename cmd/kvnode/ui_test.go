package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestUIFlag: kvnode serves the web viewer at / by default, with the
// viewer's security headers; -ui=false (or SHELF_UI=false) leaves only
// the API, and / is 404.
func TestUIFlag(t *testing.T) {
	o, err := parseFlags([]string{"-dev"}, noEnv, io.Discard)
	if err != nil || !o.ui {
		t.Fatalf("-dev: ui %v, %v; want on by default", o.ui, err)
	}
	if o, err := parseFlags([]string{"-dev"}, func(k string) string { return map[string]string{"SHELF_UI": "false"}[k] }, io.Discard); err != nil || o.ui {
		t.Errorf("SHELF_UI=false: ui %v, %v", o.ui, err)
	}
	for _, ui := range []bool{true, false} {
		args := []string{"-id", "n1", "-data", t.TempDir(), "-bootstrap", "-http", "127.0.0.1:0", "-raft", "127.0.0.1:0", "-gossip", "127.0.0.1:0", "-log-level", "warn"}
		if !ui {
			args = append(args, "-ui=false")
		}
		n := startRun(t, args...)
		addr := n.addr(t)
		res, err := http.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		switch {
		case ui && (res.StatusCode != 200 || !strings.Contains(string(b), `src="/ui/app.js"`)):
			t.Errorf("-ui: GET / = %d %.200q, want the viewer's page", res.StatusCode, b)
		case ui && !strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'self'"):
			t.Errorf("-ui: GET / without the CSP: %q", res.Header.Get("Content-Security-Policy"))
		case !ui && res.StatusCode != http.StatusNotFound:
			t.Errorf("-ui=false: GET / = %d, want 404", res.StatusCode)
		}
		res, err = http.Get("http://" + addr + "/ui/app.js")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if want := map[bool]int{true: 200, false: 404}[ui]; res.StatusCode != want {
			t.Errorf("ui %v: GET /ui/app.js = %d, want %d", ui, res.StatusCode, want)
		}
		if err := n.stop(t); err != nil {
			t.Fatalf("run: %v", err)
		}
	}
}
