package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/fsm"
	"github.com/shelfdb/shelf/internal/httpapi"
	"github.com/shelfdb/shelf/internal/metrics"
)

// authEnv is a node with auth on (cluster token "cluster-a" for its
// peers), clients A and B, and a token per caller kind.
type authEnv struct {
	*env
	tokens  map[string]string // caller -> bearer token ("" none)
	a, b    string            // client ids
	rec     api.Key           // a record of A, borrowed by A
	logs    *recordingHandler
	metrics *metrics.Metrics
}

// recordingHandler keeps the log records at warn and above.
type recordingHandler struct {
	mu   sync.Mutex
	recs []string
}

func (h *recordingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	h.mu.Lock()
	h.recs = append(h.recs, b.String())
	h.mu.Unlock()
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) find(sub ...string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
next:
	for _, r := range h.recs {
		for _, s := range sub {
			if !strings.Contains(r, s) {
				continue next
			}
		}
		return r
	}
	return ""
}

func newAuthEnv(t *testing.T) *authEnv {
	rec := &recordingHandler{}
	m := metrics.New()
	e := newEnvWith(t, func(_ *cluster.Config, h *httpapi.Config) {
		h.Metrics, h.Pprof = m, true
		h.UI = testUI
		h.Auth = true
		h.Peer = httpapi.ClusterTokenPeer("cluster-a")
		h.Logger = slog.New(rec)
	})
	ae := &authEnv{env: e, tokens: map[string]string{"none": ""}, logs: rec, metrics: m}
	ctx := context.Background()
	apply := func(c *fsm.Command) *fsm.Result {
		t.Helper()
		res, err := e.node.Apply(ctx, c)
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			t.Fatalf("%s: %v", c.Op, err)
		}
		return res
	}
	ae.a = apply(&fsm.Command{Op: fsm.OpRegisterClient, Client: "client-a", Name: "ws-a"}).Client.ID
	ae.b = apply(&fsm.Command{Op: fsm.OpRegisterClient, Client: "client-b", Name: "ws-b"}).Client.ID
	apply(&fsm.Command{Op: fsm.OpGrantRange, Client: ae.a, Size: 100})
	ae.rec = apply(&fsm.Command{Op: fsm.OpCreate, Tree: "parts", Client: ae.a, Data: mustValue(t, map[string]any{"n": 1})}).Key
	apply(&fsm.Command{Op: fsm.OpBorrow, Tree: "parts", Client: ae.a, Key: ae.rec})
	for _, tk := range []struct{ caller, role, client string }{
		{"reader", "reader", ""}, {"writer", "writer", ae.a}, {"other", "writer", ae.b}, {"admin", "admin", ""}, {"unbound", "writer", ""},
	} {
		secret, err := api.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		apply(&fsm.Command{Op: fsm.OpCreateToken, Name: tk.caller, Role: tk.role, Client: tk.client, Hash: api.TokenHash(secret)})
		ae.tokens[tk.caller] = secret
	}
	spare, _ := api.NewToken()
	apply(&fsm.Command{Op: fsm.OpCreateToken, Name: "spare", Role: "reader", Hash: api.TokenHash(spare)})
	return ae
}

// send sends a request as caller: its bearer token, or, for "member" and
// "foreign", the cluster token of this cluster or another one.
func (ae *authEnv) send(caller, method, path, contentType string, body []byte) (int, api.Error, []byte) {
	ae.t.Helper()
	req, err := http.NewRequest(method, ae.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		ae.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	switch caller {
	case "member":
		req.Header.Set(httpapi.ClusterTokenHeader, "cluster-a")
	case "foreign":
		req.Header.Set(httpapi.ClusterTokenHeader, "cluster-b")
	default:
		if tok := ae.tokens[caller]; tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	resp, err := ae.srv.Client().Do(req)
	if err != nil {
		ae.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e api.Error
	if resp.StatusCode >= 400 {
		_ = json.Unmarshal(b, &e)
	}
	return resp.StatusCode, e, b
}

// Every route of the route table × every kind of caller: no token, a
// reader, the writer of client A, the writer of another client (B), an
// admin, a node of this cluster and a node of another cluster. The
// requests are the ones client A's writer would send; a route added to
// the table without a request here fails the test.
func TestRouteRoleTable(t *testing.T) {
	ae := newAuthEnv(t)
	rec := fmt.Sprintf("/v1/trees/parts/records/%d/%d", ae.rec.ID, ae.rec.Rev)
	jsonBody := func(s string) []byte { return []byte(s) }
	batch, err := api.Marshal(api.BatchRequest{Client: ae.a, Ops: []api.BatchOp{{Op: "create", Tree: "parts", Data: mustValue(t, map[string]any{"n": 2})}}})
	if err != nil {
		t.Fatal(err)
	}
	internalCmd, err := api.Marshal(&fsm.Command{Op: fsm.OpClientSeen, Client: ae.a})
	if err != nil {
		t.Fatal(err)
	}
	internalBatch, err := api.Marshal([]*fsm.Command{{Op: fsm.OpClientSeen, Client: ae.a}})
	if err != nil {
		t.Fatal(err)
	}
	type request struct {
		path, ct string
		body     []byte
	}
	js := "application/json"
	requests := map[string]request{
		"GET /v1/whoami":                                        {"/v1/whoami", "", nil},
		"GET /{$}":                                              {"/", "", nil},
		"GET /ui/":                                              {"/ui/app.js", "", nil},
		"GET /v1/status":                                        {"/v1/status", "", nil},
		"GET /v1/members":                                       {"/v1/members", "", nil},
		"DELETE /v1/members/{id}":                               {"/v1/members/nosuch", "", nil},
		"POST /v1/leader/transfer":                              {"/v1/leader/transfer", js, jsonBody(`{"id":"nosuch"}`)},
		"GET /v1/trees":                                         {"/v1/trees", "", nil},
		"GET /v1/trees/{tree}/schemas":                          {"/v1/trees/parts/schemas", "", nil},
		"POST /v1/trees/{tree}/schemas":                         {"/v1/trees/parts/schemas", js, jsonBody(`{"definition":{"fields":{"n":{"type":"int"}}}}`)},
		"GET /v1/trees/{tree}/records":                          {"/v1/trees/parts/records", "", nil},
		"POST /v1/trees/{tree}/records":                         {"/v1/trees/parts/records", js, jsonBody(`{"client":"` + ae.a + `","value":{"n":3}}`)},
		"GET /v1/trees/{tree}/search":                           {"/v1/trees/parts/search?field=n&value=1", "", nil},
		"GET /v1/trees/{tree}/records/{id}":                     {fmt.Sprintf("/v1/trees/parts/records/%d", ae.rec.ID), "", nil},
		"GET /v1/trees/{tree}/records/{id}/{rev}":               {rec, "", nil},
		"PUT /v1/trees/{tree}/records/{id}/{rev}":               {rec, js, jsonBody(`{"client":"` + ae.a + `","value":{"n":4}}`)},
		"DELETE /v1/trees/{tree}/records/{id}/{rev}":            {rec + "?client=" + ae.a, "", nil},
		"POST /v1/trees/{tree}/records/{id}/{rev}/{action}":     {rec + "/state", js, jsonBody(`{"client":"` + ae.a + `","state":2}`)},
		"POST /v1/trees/{tree}/records/{id}/{rev}/force-return": {rec + "/force-return", js, jsonBody(`{"reason":"test"}`)},
		"POST /v1/trees/{tree}/records/{id}/{rev}/take":         {rec + "/take", js, jsonBody(`{"client":"` + ae.a + `"}`)},
		"GET /v1/trees/{tree}/records/{id}/{rev}/history":       {rec + "/history", "", nil},
		"GET /v1/borrows":                                       {"/v1/borrows", "", nil},
		"GET /v1/clients":                                       {"/v1/clients", "", nil},
		"POST /v1/clients":                                      {"/v1/clients", js, jsonBody(`{"name":"ws-new"}`)},
		"DELETE /v1/clients/{id}":                               {"/v1/clients/" + ae.a, "", nil},
		"GET /v1/ranges":                                        {"/v1/ranges", "", nil},
		"POST /v1/clients/{id}/ranges":                          {"/v1/clients/" + ae.a + "/ranges", js, jsonBody(`{"size":10}`)},
		"GET /v1/log":                                           {"/v1/log?client=" + ae.a, "", nil},
		"GET /v1/events":                                        {"/v1/events", "", nil},
		"GET /v1/events/stream":                                 {"/v1/events/stream?tree=nosuch", "", nil},
		"GET /v1/hash":                                          {"/v1/hash", "", nil},
		"GET /v1/snapshot":                                      {"/v1/snapshot", "", nil},
		"POST /v1/batch":                                        {"/v1/batch", api.ContentCBOR, batch},
		"POST /v1/tokens":                                       {"/v1/tokens", js, jsonBody(`{"name":"new-%s","role":"reader"}`)},
		"GET /v1/tokens":                                        {"/v1/tokens", "", nil},
		"DELETE /v1/tokens/{name}":                              {"/v1/tokens/spare", "", nil},
		"POST " + cluster.InternalApplyPath:                     {cluster.InternalApplyPath, api.ContentCBOR, internalCmd},
		"POST " + cluster.InternalApplyBatchPath:                {cluster.InternalApplyBatchPath, api.ContentCBOR, internalBatch},
		"GET " + cluster.InternalReadIndexPath:                  {cluster.InternalReadIndexPath, "", nil},
		"GET " + cluster.InternalSightingsPath:                  {cluster.InternalSightingsPath, "", nil},
		"GET /healthz":                                          {"/healthz", "", nil},
		"GET /readyz":                                           {"/readyz", "", nil},
		"GET /v1/version":                                       {"/v1/version", "", nil},
		"GET /metrics":                                          {"/metrics", "", nil},
		"GET /debug/pprof/":                                     {"/debug/pprof/", "", nil},
		"GET /debug/pprof/cmdline":                              {"/debug/pprof/cmdline", "", nil},
		"GET /debug/pprof/profile":                              {"/debug/pprof/profile?seconds=1", "", nil},
		"GET /debug/pprof/symbol":                               {"/debug/pprof/symbol", "", nil},
		"POST /debug/pprof/symbol":                              {"/debug/pprof/symbol", "text/plain", []byte("0x1")},
		"GET /debug/pprof/trace":                                {"/debug/pprof/trace?seconds=0.1", "", nil},
	}
	// Explicit exceptions to what the route's role gives: every writer
	// token here is bound already, so it registers no other client; any
	// writer registers schemas (they belong to no client).
	exceptions := map[string]map[string]string{
		"POST /v1/clients":              {"writer": "403", "other": "403", "unbound": "ok"},
		"POST /v1/trees/{tree}/schemas": {"other": "ok", "unbound": "ok"},
	}
	callers := []string{"none", "foreign", "member", "reader", "unbound", "other", "writer", "admin"}
	// expect gives "ok" (served: not 401 or 403), "401" or "403".
	expect := func(access, caller string) string {
		switch access {
		case "open":
			return "ok"
		case "peer":
			if caller == "member" {
				return "ok"
			}
			return "403"
		}
		if caller == "none" || caller == "foreign" || caller == "member" {
			return "401"
		}
		rank := map[string]int{"reader": 1, "writer": 2, "admin": 3}
		callerRank := map[string]int{"reader": 1, "unbound": 2, "other": 2, "writer": 2, "admin": 3}[caller]
		if callerRank < rank[access] {
			return "403"
		}
		if access == "writer" && (caller == "other" || caller == "unbound") {
			return "403" // acts as client A: only A's writer (or an admin) may
		}
		return "ok"
	}

	table := httpapi.Routes(httpapi.Config{Node: ae.node, Metrics: ae.metrics, Pprof: true, UI: testUI})
	if len(table) < len(requests) {
		t.Errorf("route table has %d routes, the test %d requests", len(table), len(requests))
	}
	// The destructive requests go last, so that the others meet A as it was.
	last := map[string]bool{"DELETE /v1/clients/{id}": true, "DELETE /v1/trees/{tree}/records/{id}/{rev}": true}
	var ordered []httpapi.RouteAccess
	for _, r := range table {
		if !last[r.Pattern] {
			ordered = append(ordered, r)
		}
	}
	for _, r := range table {
		if last[r.Pattern] {
			ordered = append(ordered, r)
		}
	}
	for _, route := range ordered {
		req, ok := requests[route.Pattern]
		if !ok {
			t.Errorf("route %q (%s) has no request in this test: add one, and its expectations", route.Pattern, route.Access)
			continue
		}
		method, _, _ := strings.Cut(route.Pattern, " ")
		for _, caller := range callers {
			want := expect(route.Access, caller)
			if w, ok := exceptions[route.Pattern][caller]; ok {
				want = w
			}
			body := req.body
			if route.Pattern == "POST /v1/tokens" {
				body = []byte(fmt.Sprintf(string(req.body), caller))
			}
			status, ae2, raw := ae.send(caller, method, req.path, req.ct, body)
			got := "ok"
			switch status {
			case http.StatusUnauthorized:
				got = "401"
				if ae2.Code != api.CodeUnauthenticated || ae2.Message == "" {
					t.Errorf("%s as %s: 401 with %s", route.Pattern, caller, raw)
				}
			case http.StatusForbidden:
				got = "403"
				if ae2.Code != api.CodeForbidden || ae2.Message == "" {
					t.Errorf("%s as %s: 403 with %s", route.Pattern, caller, raw)
				}
			}
			if got != want {
				t.Errorf("%s (%s) as %s: %d %s, want %s", route.Pattern, route.Access, caller, status, raw, want)
			}
		}
	}
}

// Refusals say why, 401 and 403 apart, and go to the audit log with the
// route, the token's name (never its secret) and the caller's address;
// a flood of them is rate limited.
func TestRefusalsAreAudited(t *testing.T) {
	ae := newAuthEnv(t)
	status, e, _ := ae.send("none", http.MethodGet, "/v1/trees", "", nil)
	if status != http.StatusUnauthorized || !strings.Contains(e.Message, "Bearer") {
		t.Fatalf("no token: %d %+v", status, e)
	}
	ae.tokens["bogus"] = "shelf_notatoken"
	if status, e, _ = ae.send("bogus", http.MethodGet, "/v1/trees", "", nil); status != http.StatusUnauthorized || !strings.Contains(e.Message, "unknown or revoked") {
		t.Fatalf("unknown token: %d %+v", status, e)
	}
	if status, e, _ = ae.send("reader", http.MethodGet, "/v1/tokens", "", nil); status != http.StatusForbidden || !strings.Contains(e.Message, "needs role admin") {
		t.Fatalf("reader on tokens: %d %+v", status, e)
	}
	body := []byte(`{"client":"` + ae.b + `","value":{"n":1}}`)
	if status, e, _ = ae.send("writer", http.MethodPost, "/v1/trees/parts/records", "application/json", body); status != http.StatusForbidden || !strings.Contains(e.Message, "acts as client") {
		t.Fatalf("writer as another client: %d %+v", status, e)
	}
	for _, want := range [][]string{
		{"audit: request refused", "status=401", "route=GET /v1/trees", "remote=127.0.0.1"},
		{"audit: request refused", "status=403", "route=GET /v1/tokens", "token=reader"},
		{"audit: request refused", "status=403", "route=POST /v1/trees/{tree}/records", "token=writer", "acts as client"},
	} {
		if ae.logs.find(want...) == "" {
			t.Errorf("no audit record with %q in\n%s", want, strings.Join(ae.logs.recs, "\n"))
		}
	}
	for caller, secret := range ae.tokens {
		if secret != "" && ae.logs.find(secret) != "" {
			t.Fatalf("the secret of %s is in the log", caller)
		}
	}
	// A flood: far fewer records than refusals, and the count of the
	// suppressed ones is reported.
	ae.logs.mu.Lock()
	ae.logs.recs = nil
	ae.logs.mu.Unlock()
	for range 200 {
		ae.send("none", http.MethodGet, "/v1/trees", "", nil)
	}
	ae.logs.mu.Lock()
	n := len(ae.logs.recs)
	ae.logs.mu.Unlock()
	if n == 0 || n > 100 {
		t.Fatalf("%d audit records for 200 refusals", n)
	}
}

// A request a member forwards (a follower passes members remove and
// leader transfer to the leader) was authorized by that member and is
// served without a token; a forwarded header from anyone else changes
// nothing.
func TestForwardedFromAMember(t *testing.T) {
	ae := newAuthEnv(t)
	send := func(clusterToken string) int {
		req, err := http.NewRequest(http.MethodDelete, ae.srv.URL+"/v1/members/nosuch", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(cluster.ForwardedHeader, "h2")
		req.Header.Set(httpapi.ClusterTokenHeader, clusterToken)
		resp, err := ae.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := send("cluster-a"); got != http.StatusNotFound {
		t.Errorf("members remove forwarded by a member: %d, want 404 (served: no such member)", got)
	}
	if got := send("cluster-b"); got != http.StatusUnauthorized {
		t.Errorf("members remove with a forwarded header from another cluster's node: %d, want 401", got)
	}
}
