package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

// rawRequest sends one request to n without the client library and
// returns the status and the body.
func rawRequest(t *testing.T, n *Node, method, path, contentType string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+n.HTTP+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := testHTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, b
}

// TestBadInputGets4xx sends malformed and refused requests to a real node
// and checks the status and the JSON error body of each answer, then runs
// kvctl against a missing tree and against a node that is down.
func TestBadInputGets4xx(t *testing.T) {
	skipShort(t)
	n := newNode(t, "n1")
	bootstrapNode(t, n)
	res, err := create(n, "parts", value(t, 1))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	cl, err := n.Client.RegisterClient(ctx, "bad-input-test")
	if err != nil {
		t.Fatalf("register client: %v", err)
	}
	rec := fmt.Sprintf("/v1/trees/parts/records/%d/%d", res.Key.ID, res.Key.Rev)
	big := append(append([]byte(`{"value": "`), bytes.Repeat([]byte("x"), 5<<20)...), `"}`...)

	for _, tc := range []struct {
		name         string
		method, path string
		contentType  string
		body         []byte
		status       int
		code         api.Code
	}{
		{"malformed JSON", "POST", "/v1/trees/parts/records", api.ContentJSON, []byte(`{"value": {"n": 1`), 400, api.CodeInvalid},
		{"JSON with unknown field", "POST", "/v1/trees/parts/records", api.ContentJSON, []byte(`{"valeu": 1}`), 400, api.CodeInvalid},
		{"malformed CBOR", "POST", "/v1/trees/parts/records", api.ContentCBOR, []byte{0xa1, 0x64, 'd', 'a'}, 400, api.CodeInvalid},
		{"unknown tree", "GET", "/v1/trees/nosuch/records/1", "", nil, 404, api.CodeTreeNotFound},
		{"non-numeric id", "GET", "/v1/trees/parts/records/abc", "", nil, 400, api.CodeInvalid},
		{"non-numeric revision", "GET", "/v1/trees/parts/records/1/x", "", nil, 400, api.CodeInvalid},
		{"record does not exist", "GET", "/v1/trees/parts/records/999999", "", nil, 404, api.CodeNotFound},
		{"body of 5 MiB", "POST", "/v1/trees/parts/records", api.ContentJSON, big, 413, api.CodeTooLarge},
		{"unknown route", "GET", "/v1/nosuch", "", nil, 404, api.CodeNotFound},
		{"update without a borrow", "PUT", rec, api.ContentJSON, []byte(`{"client": "` + cl.ID + `", "value": {"n": 2}}`), 409, api.CodeNotBorrowed},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			status, h, body := rawRequest(t, n, tc.method, tc.path, tc.contentType, tc.body)
			if status != tc.status {
				t.Errorf("%s %s: status %d, want %d; body %.300q", tc.method, tc.path, status, tc.status, body)
			}
			if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); mt != api.ContentJSON {
				t.Errorf("%s %s: Content-Type %q, want %s", tc.method, tc.path, h.Get("Content-Type"), api.ContentJSON)
			}
			var e map[string]any
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("%s %s: error body is not JSON (%v): %.300q", tc.method, tc.path, err, body)
			}
			if e["code"] != string(tc.code) {
				t.Errorf("%s %s: code %v, want %s; body %.300q", tc.method, tc.path, e["code"], tc.code, body)
			}
			if msg, _ := e["message"].(string); strings.TrimSpace(msg) == "" {
				t.Errorf("%s %s: no message in the error body %.300q", tc.method, tc.path, body)
			}
		})
	}

	// The record is unchanged by the refused update.
	got, err := n.Client.Get(ctx, "parts", res.Key)
	if err != nil {
		t.Fatalf("get %s: %v", res.Key, err)
	}
	if !bytes.Equal(got.Data, value(t, 1)) {
		t.Errorf("record %s changed to %x by refused requests", res.Key, got.Data)
	}

	t.Run("kvctl_get_missing_tree", func(t *testing.T) {
		code, stderr := runKvctl(t, "-s", n.HTTP, "get", "nosuch", "1")
		if code == 0 {
			t.Errorf("kvctl get nosuch 1: exit 0, want non-zero")
		} else if code != 3 {
			t.Errorf("kvctl get nosuch 1: exit %d, want 3 (not found)", code)
		}
		if !strings.HasPrefix(stderr, "kvctl: ") {
			t.Errorf("kvctl get nosuch 1: stderr %q, want it to start with \"kvctl: \"", stderr)
		}
	})
	t.Run("kvctl_server_down", func(t *testing.T) {
		down := freeAddr(t) // nothing listens there
		code, stderr := runKvctl(t, "-s", down, "status")
		if code != 5 {
			t.Errorf("kvctl status against a node that is down: exit %d, want 5; stderr %q", code, stderr)
		}
		if !strings.HasPrefix(stderr, "kvctl: ") {
			t.Errorf("kvctl status against a node that is down: stderr %q, want it to start with \"kvctl: \"", stderr)
		}
	})
}

// runKvctl runs the built kvctl with args and returns its exit code and
// stderr.
func runKvctl(t *testing.T, args ...string) (int, string) {
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
		return 0, stderr.String()
	case errors.As(err, &ee) && ee.Exited():
		t.Logf("kvctl %s: exit %d, stderr %q", strings.Join(args, " "), ee.ExitCode(), stderr.String())
		return ee.ExitCode(), stderr.String()
	default:
		t.Fatalf("kvctl %s: %v; stderr %q", strings.Join(args, " "), err, stderr.String())
		return 0, ""
	}
}
