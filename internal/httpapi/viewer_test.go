package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/fsm"
	"github.com/shelfdb/shelf/internal/httpapi"
)

// testUI stands for the web viewer: it answers what it was asked for.
var testUI = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "viewer "+r.URL.Path)
})

func TestWhoAmIAuthOff(t *testing.T) {
	e := newEnv(t, 0)
	var who map[string]any
	e.json("GET", "/v1/whoami", "", 200, &who)
	want := map[string]any{"auth": false, "authenticated": true, "name": "", "role": "admin", "client": "", "node": "h1", "cluster": e.node.ClusterID()}
	for k, v := range want {
		if who[k] != v {
			t.Errorf("whoami %s = %v, want %v (answer %v)", k, who[k], v, who)
		}
	}
	// The Go client, in CBOR.
	w, err := e.cl.WhoAmI(context.Background())
	if err != nil || w.Auth || !w.Authenticated || w.Role != api.RoleAdmin || w.Node != "h1" || w.Cluster == "" {
		t.Fatalf("WhoAmI %+v %v", w, err)
	}
}

func TestWhoAmIAuthOn(t *testing.T) {
	ae := newAuthEnv(t)
	cases := []struct {
		caller, role, name, client string
	}{
		{"none", "", "", ""},
		{"reader", "reader", "reader", ""},
		{"writer", "writer", "writer", ae.a},
		{"unbound", "writer", "unbound", ""},
		{"admin", "admin", "admin", ""},
	}
	for _, c := range cases {
		status, _, body := ae.send(c.caller, "GET", "/v1/whoami", "", nil)
		var who api.WhoAmI
		if err := json.Unmarshal(body, &who); status != 200 || err != nil {
			t.Fatalf("whoami as %s: %d %s %v", c.caller, status, body, err)
		}
		authn := c.caller != "none"
		if !who.Auth || who.Authenticated != authn || string(who.Role) != c.role || who.Name != c.name || who.Client != c.client ||
			who.Node != "h1" || who.Cluster != ae.node.ClusterID() || who.Reason != "" {
			t.Errorf("whoami as %s: %s", c.caller, body)
		}
	}

	// A bad token is not a 401 here: the answer says why it is refused.
	for _, auth := range []string{"Bearer shelf_nosuchtoken", "Basic dXNlcjpwdw==", "Bearer "} {
		req, _ := http.NewRequest("GET", ae.srv.URL+"/v1/whoami", nil)
		req.Header.Set("Authorization", auth)
		resp, err := ae.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var who api.WhoAmI
		err = json.NewDecoder(resp.Body).Decode(&who)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !who.Auth || who.Authenticated || who.Role != "" || who.Name != "" || who.Reason == "" {
			t.Errorf("whoami with %q: %d %+v %v", auth, resp.StatusCode, who, err)
		}
	}

	// The Go client sends its token.
	who, err := api.NewClient(ae.srv.URL, ae.srv.Client()).WithToken(ae.tokens["reader"]).WhoAmI(context.Background())
	if err != nil || !who.Authenticated || who.Role != api.RoleReader {
		t.Fatalf("WhoAmI with the reader's token: %+v %v", who, err)
	}
}

func TestUIRoutes(t *testing.T) {
	ae := newAuthEnv(t)
	for _, path := range []string{"/", "/ui/app.js", "/ui/css/site.css"} {
		req, _ := http.NewRequest("GET", ae.srv.URL+path, nil)
		resp, err := ae.srv.Client().Do(req) // no token
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "viewer "+path {
			t.Fatalf("GET %s without a token: %d %s", path, resp.StatusCode, body)
		}
		for k, v := range httpapi.UIHeaders {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("GET %s: %s = %q, want %q", path, k, got, v)
			}
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("GET %s: CORS header on a same-origin page", path)
		}
	}
	if csp := httpapi.UIHeaders["Content-Security-Policy"]; !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	// The API still needs a token; other paths are still API 404s.
	if status, e, _ := ae.send("none", "GET", "/v1/trees", "", nil); status != 401 || e.Code != api.CodeUnauthenticated {
		t.Fatalf("GET /v1/trees without a token: %d %+v", status, e)
	}
	for _, path := range []string{"/index.html", "/nosuch", "/v1/nosuch"} {
		status, e, body := ae.send("admin", "GET", path, "", nil)
		if status != 404 || e.Code != api.CodeNotFound {
			t.Fatalf("GET %s: %d %s", path, status, body)
		}
	}
	// Without Config.UI the root is an API 404 too.
	plain := newEnv(t, 0)
	plain.apiErr("GET", "/", "", 404, api.CodeNotFound)
	plain.apiErr("GET", "/ui/app.js", "", 404, api.CodeNotFound)
}

// sse is one Server-Sent Event, or a comment (Comment set).
type sse struct {
	ID, Event, Data, Comment string
}

// sseStream reads an event stream in a goroutine that ends when the
// stream does; close ends it.
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	events chan sse
	done   chan struct{}
	cancel context.CancelFunc
}

// openStream opens GET path with header (key, value pairs) and fails
// unless it answers 200 text/event-stream.
func openStream(t *testing.T, base string, hc *http.Client, path string, header ...string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: %d %q %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	s := &sseStream{t: t, resp: resp, events: make(chan sse, 1000), done: make(chan struct{}), cancel: cancel}
	go s.read()
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) read() {
	defer close(s.done)
	defer close(s.events)
	br := bufio.NewReader(s.resp.Body)
	var ev sse
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev != (sse{}) {
				s.events <- ev
			}
			ev = sse{}
		case strings.HasPrefix(line, ":"):
			ev.Comment = strings.TrimSpace(line[1:])
		default:
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "id":
				ev.ID = v
			case "event":
				ev.Event = v
			case "data":
				ev.Data = v
			}
		}
	}
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
	<-s.done
}

// next returns the next event, skipping comments, within 10s.
func (s *sseStream) next() sse {
	s.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				s.t.Fatal("event stream ended")
			}
			if ev.Comment != "" && ev.Event == "" {
				continue
			}
			return ev
		case <-timeout:
			s.t.Fatal("no event within 10s")
		}
	}
}

// event decodes an event's data.
func (s *sseStream) event(ev sse) api.Event {
	s.t.Helper()
	var e api.Event
	if err := json.Unmarshal([]byte(ev.Data), &e); err != nil {
		s.t.Fatalf("event %+v: %v", ev, err)
	}
	if ev.ID != strconv.FormatUint(e.Index, 10) || ev.Event != string(e.Type) {
		s.t.Fatalf("event %+v: id or type differ from the data's", ev)
	}
	return e
}

// streamHandlers counts the event stream handlers running.
func streamHandlers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "httpapi.(*handler).eventStream(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitNoStreams fails unless every event stream handler ends within 10s.
func waitNoStreams(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for streamHandlers() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d event stream handlers still running", streamHandlers())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEventStream(t *testing.T) {
	e := newEnvWith(t, func(_ *cluster.Config, h *httpapi.Config) { httpapi.SetStreamPing(h, 200*time.Millisecond) })
	ctx := context.Background()
	cl, err := e.cl.RegisterClient(ctx, "ws-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tree := range []string{"a", "b"} {
		if _, err := e.cl.Create(ctx, tree, api.WriteRequest{Data: mustValue(t, map[string]any{"n": 0})}); err != nil {
			t.Fatal(err)
		}
	}

	all := openStream(t, e.srv.URL, e.srv.Client(), "/v1/events/stream")
	if h := all.resp.Header; h.Get("Cache-Control") != "no-store" {
		t.Errorf("stream headers %v", h)
	}
	onlyA := openStream(t, e.srv.URL, e.srv.Client(), "/v1/events/stream?tree=a&from=now")

	// Writes made after connecting arrive in order, each with its index
	// as id and its type as event name.
	a1, err := e.cl.Create(ctx, "a", api.WriteRequest{Data: mustValue(t, map[string]any{"n": 1})})
	if err != nil {
		t.Fatal(err)
	}
	b2, err := e.cl.Create(ctx, "b", api.WriteRequest{Data: mustValue(t, map[string]any{"n": 2})})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.Borrow(ctx, "a", a1.Key, cl.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	var got []string
	var indexes []uint64
	for range 3 {
		ev := all.event(all.next())
		got = append(got, ev.Tree+" "+string(ev.Type))
		indexes = append(indexes, ev.Index)
	}
	if strings.Join(got, ",") != "a created,b created,a borrowed" || indexes[0] != a1.Index || indexes[1] != b2.Index || indexes[2] <= indexes[1] {
		t.Fatalf("stream: %v at %v", got, indexes)
	}
	// The tree filter.
	for _, want := range []string{"created", "borrowed"} {
		if ev := onlyA.event(onlyA.next()); ev.Tree != "a" || string(ev.Type) != want {
			t.Fatalf("stream of tree a: %+v, want a %s", ev, want)
		}
	}
	// Idle: a ping comment at least every ping interval.
	deadline := time.After(10 * time.Second)
	for pinged := false; !pinged; {
		select {
		case ev := <-onlyA.events:
			if ev.Event != "" {
				t.Fatalf("stream of tree a: unexpected %+v", ev)
			}
			pinged = ev.Comment == "ping"
		case <-deadline:
			t.Fatal("no ping on an idle stream")
		}
	}

	// Resume: Last-Event-ID wins over from, and the stream goes on after it.
	resumed := openStream(t, e.srv.URL, e.srv.Client(), "/v1/events/stream?from=0", "Last-Event-ID", strconv.FormatUint(a1.Index, 10))
	if ev := resumed.event(resumed.next()); ev.Index != b2.Index || ev.Tree != "b" {
		t.Fatalf("resumed after %d: %+v", a1.Index, ev)
	}
	from := openStream(t, e.srv.URL, e.srv.Client(), "/v1/events/stream?from="+strconv.FormatUint(b2.Index, 10))
	if ev := from.event(from.next()); ev.Type != api.EventBorrowed || ev.Tree != "a" {
		t.Fatalf("from %d: %+v", b2.Index, ev)
	}

	// Refused before the stream starts, with an API error.
	e.apiErr("GET", "/v1/events/stream?tree=bad%20name", "", 400, api.CodeInvalid)
	e.apiErr("GET", "/v1/events/stream?tree=nosuch", "", 404, api.CodeTreeNotFound)
	e.apiErr("GET", "/v1/events/stream?from=x", "", 400, api.CodeInvalid)

	// A client that goes ends its handler.
	for _, s := range []*sseStream{all, onlyA, resumed, from} {
		s.close()
	}
	waitNoStreams(t)

	// A server that stops ends its streams.
	s := openStream(t, e.srv.URL, e.srv.Client(), "/v1/events/stream")
	close(e.stop)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("stream not ended by the server's stop")
	}
	waitNoStreams(t)
}

func TestEventStreamBadLastEventID(t *testing.T) {
	e := newEnv(t, 0)
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/events/stream", nil)
	req.Header.Set("Last-Event-ID", "yesterday")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ae api.Error
	if err := json.NewDecoder(resp.Body).Decode(&ae); err != nil || resp.StatusCode != 400 || ae.Code != api.CodeInvalid || !strings.Contains(ae.Message, "Last-Event-ID") {
		t.Fatalf("bad Last-Event-ID: %d %+v %v", resp.StatusCode, ae, err)
	}
}

// TestEventStreamCompacted: a stream asked to start below the events the
// node keeps gets one reset event, then the events from now on.
func TestEventStreamCompacted(t *testing.T) {
	e := newEnvWith(t, func(c *cluster.Config, _ *httpapi.Config) { c.EventBuffer = 3 })
	ctx := context.Background()
	start := e.node.FSM().AppliedIndex()
	for i := range 5 {
		if _, err := e.cl.Create(ctx, "a", api.WriteRequest{Data: mustValue(t, map[string]any{"n": i})}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.cl.Events(ctx, start, 0, 0, ""); !errors.Is(err, api.ErrCompacted) {
		t.Fatalf("events from %d: %v, want compacted", start, err)
	}
	s := openStream(t, e.srv.URL, e.srv.Client(), "/v1/events/stream?from="+strconv.FormatUint(start, 10))
	ev := s.next()
	var reset struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(ev.Data), &reset); err != nil || ev.Event != "reset" || reset.Reason == "" ||
		ev.ID != strconv.FormatUint(e.node.FSM().AppliedIndex(), 10) {
		t.Fatalf("first event %+v (%v), want a reset with a reason and the index it goes on from", ev, err)
	}
	w, err := e.cl.Create(ctx, "a", api.WriteRequest{Data: mustValue(t, map[string]any{"n": 9})})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.event(s.next()); got.Index != w.Index || got.Type != api.EventCreated {
		t.Fatalf("after the reset: %+v, want the create at %d", got, w.Index)
	}
}

// TestEventStreamAuth: a reader's stream carries events; revoking its
// token ends the stream with an error event, before any later event.
func TestEventStreamAuth(t *testing.T) {
	ae := newAuthEnv(t)
	ctx := context.Background()
	s := openStream(t, ae.srv.URL, ae.srv.Client(), "/v1/events/stream?tree=parts", "Authorization", "Bearer "+ae.tokens["reader"])
	create := func(n int) uint64 {
		t.Helper()
		res, err := ae.node.Apply(ctx, &fsm.Command{Op: fsm.OpCreate, Tree: "parts", Data: mustValue(t, map[string]any{"n": n})})
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			t.Fatal(err)
		}
		return res.Index
	}
	idx := create(10)
	if ev := s.event(s.next()); ev.Index != idx || ev.Type != api.EventCreated {
		t.Fatalf("reader's stream: %+v", ev)
	}
	res, err := ae.node.Apply(ctx, &fsm.Command{Op: fsm.OpRevokeToken, Name: "reader"})
	if err != nil || res.Error() != nil {
		t.Fatalf("revoke: %v %v", err, res.Error())
	}
	create(11)
	ev := s.next()
	var e api.Error
	if ev.Event != "error" || json.Unmarshal([]byte(ev.Data), &e) != nil || e.Code != api.CodeUnauthenticated || !strings.Contains(e.Message, "revoked") {
		t.Fatalf("after the revocation: %+v, want an unauthenticated error event", ev)
	}
	select {
	case _, ok := <-s.events:
		if ok {
			t.Fatal("the stream went on after its token was revoked")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end after its token was revoked")
	}
	// Without a token: 401 before any stream.
	if status, e, _ := ae.send("none", "GET", "/v1/events/stream", "", nil); status != 401 || e.Code != api.CodeUnauthenticated {
		t.Fatalf("stream without a token: %d %+v", status, e)
	}
}
