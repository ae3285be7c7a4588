package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/internal/httpapi"
)

// jsonEventPage is EventPage as JSON decodes it, with the events' raw
// fields visible.
type jsonEventPage struct {
	Events []map[string]any `json:"events"`
	Next   uint64           `json:"next"`
}

func TestEvents(t *testing.T) {
	e := newEnvWith(t, func(c *cluster.Config, _ *httpapi.Config) { c.EventBuffer = 6 })
	ctx := context.Background()
	cl, err := e.cl.RegisterClient(ctx, "ws-7")
	if err != nil {
		t.Fatal(err)
	}
	start := e.node.FSM().AppliedIndex()
	a, err := e.cl.Create(ctx, "a", api.WriteRequest{Data: mustValue(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.cl.Create(ctx, "b", api.WriteRequest{Data: mustValue(t, 2)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.Borrow(ctx, "b", b.Key, cl.ID, time.Hour); err != nil {
		t.Fatal(err)
	}

	// JSON for people: events with their JSON field names, [] when none.
	var jp jsonEventPage
	e.json("GET", "/v1/events?from="+strconv.FormatUint(start, 10), "", 200, &jp)
	if len(jp.Events) != 3 || jp.Next != e.node.FSM().AppliedIndex() {
		t.Fatalf("events page %+v", jp)
	}
	if ev := jp.Events[2]; ev["type"] != "borrowed" || ev["tree"] != "b" || ev["client"] != cl.ID ||
		ev["key"].(map[string]any)["id"] != float64(b.Key.ID) || ev["time"] == "" {
		t.Fatalf("borrow event %v", ev)
	}
	body := e.json("GET", "/v1/events?from=now", "", 200, &jp)
	if string(body) != fmt.Sprintf(`{"events":[],"next":%d}`, e.node.FSM().AppliedIndex()) {
		t.Fatalf("events from now: %s", body)
	}
	e.json("GET", "/v1/events", "", 200, &jp) // from defaults to now
	if len(jp.Events) != 0 || jp.Next != e.node.FSM().AppliedIndex() {
		t.Fatalf("events without from: %+v", jp)
	}

	// CBOR for the library, with the tree filter and paging.
	p, err := e.cl.Events(ctx, start, 0, 0, "b")
	if err != nil || len(p.Events) != 2 || p.Events[0].Type != api.EventCreated || p.Events[1].Type != api.EventBorrowed ||
		p.Events[0].Index != b.Index || p.Next != e.node.FSM().AppliedIndex() {
		t.Fatalf("events of tree b: %+v %v", p, err)
	}
	p, err = e.cl.Events(ctx, start, 1, 0, "")
	if err != nil || len(p.Events) != 1 || p.Events[0].Index != a.Index || p.Next != a.Index {
		t.Fatalf("first page: %+v %v", p, err)
	}
	p, err = e.cl.Events(ctx, p.Next, 1, 0, "")
	if err != nil || len(p.Events) != 1 || p.Events[0].Index != b.Index || p.Next != b.Index {
		t.Fatalf("second page: %+v %v", p, err)
	}

	// A long poll on tree b is not answered by a change to tree a.
	type result struct {
		p   api.EventPage
		err error
	}
	done := make(chan result, 1)
	from := e.node.FSM().AppliedIndex()
	go func() {
		p, err := e.cl.Events(ctx, from, 0, 30*time.Second, "b")
		done <- result{p, err}
	}()
	if _, err := e.cl.Create(ctx, "a", api.WriteRequest{Data: mustValue(t, 3)}); err != nil {
		t.Fatal(err)
	}
	ret, err := e.cl.Return(ctx, "b", b.Key, cl.ID)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || len(r.p.Events) != 1 || r.p.Events[0].Type != api.EventReturned ||
			r.p.Events[0].Holder != cl.ID || r.p.Events[0].Index != ret.Index {
			t.Fatalf("long poll on tree b: %+v %v", r.p, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("long poll did not return")
	}

	// The buffer holds 6 events: the first ones are gone.
	for i := range 6 {
		if _, err := e.cl.Create(ctx, "a", api.WriteRequest{Data: mustValue(t, i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.cl.Events(ctx, start, 0, 0, ""); !errors.Is(err, api.ErrCompacted) {
		t.Fatalf("events from %d after overflow: %v, want ErrCompacted", start, err)
	}
	e.apiErr("GET", "/v1/events?from="+strconv.FormatUint(start, 10), "", 410, api.CodeCompacted)

	e.apiErr("GET", "/v1/events?from=x", "", 400, api.CodeInvalid)
	e.apiErr("GET", "/v1/events?limit=0", "", 400, api.CodeInvalid)
	e.apiErr("GET", "/v1/events?wait=soon", "", 400, api.CodeInvalid)
	e.apiErr("GET", "/v1/events?tree=bad%20name", "", 400, api.CodeInvalid)
	e.apiErr("POST", "/v1/events", "", 405, api.CodeMethodNotFound)

	// A server that stops answers pending long polls at once.
	go func() {
		p, err := e.cl.Events(ctx, api.EventsFromNow, 0, 50*time.Second, "")
		done <- result{p, err}
	}()
	close(e.stop)
	select {
	case r := <-done:
		if r.err != nil || len(r.p.Events) != 0 {
			t.Fatalf("long poll ended by stop: %+v %v", r.p, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("long poll not ended by stop")
	}
}

func TestContentHash(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	h1, err := e.cl.ContentHash(ctx)
	if err != nil || h1.Node != "h1" || len(h1.Hash) != 64 || h1.Index != e.node.FSM().AppliedIndex() {
		t.Fatalf("hash %+v %v", h1, err)
	}
	if _, err := e.cl.Create(ctx, "parts", api.WriteRequest{Data: mustValue(t, 1)}); err != nil {
		t.Fatal(err)
	}
	var h2 api.ContentHash
	e.json("GET", "/v1/hash", "", 200, &h2)
	index, sum, err := e.node.FSM().ContentHash()
	if err != nil || h2.Index != index || h2.Hash != sum || h2.Index <= h1.Index || h2.Hash == h1.Hash {
		t.Fatalf("hash after a write %+v, before %+v; fsm says %d %s %v", h2, h1, index, sum, err)
	}
}

// TestLogRecordsClientSeen checks that a client's log stream requests
// show as its last-seen time and replica index in GET /v1/clients, and
// that recording them writes nothing to the replicated log.
func TestLogRecordsClientSeen(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	cl, err := e.cl.RegisterClient(ctx, "replica-1")
	if err != nil {
		t.Fatal(err)
	}
	if cl.ReplicaIndex != 0 || !cl.LastSeen.IsZero() {
		t.Fatalf("new client %+v", cl)
	}
	from := e.node.FSM().AppliedIndex()
	before := time.Now()
	for range 5 {
		if _, err := e.cl.LogAs(ctx, cl.ID, from, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	var clients []api.ClientInfo
	e.json("GET", "/v1/clients", "", 200, &clients)
	if len(clients) != 1 || clients[0].ReplicaIndex != from || clients[0].LastSeen.Before(before.Add(-time.Second)) {
		t.Fatalf("clients %+v, want replica_index %d, last_seen after %v", clients, from, before)
	}
	if got := e.node.FSM().AppliedIndex(); got != from {
		t.Fatalf("the log requests moved the applied index from %d to %d: a sighting went through raft", from, got)
	}
	// Unknown clients are not an error for the log stream; the sighting
	// is simply not recorded.
	if _, err := e.cl.LogAs(ctx, "nobody", from, 0, 0); err != nil {
		t.Fatal(err)
	}
	e.json("GET", "/v1/log?client=nobody&from=0", "", 200, nil)
	e.json("GET", "/v1/clients", "", 200, &clients)
	if len(clients) != 1 {
		t.Fatalf("clients %+v", clients)
	}
}

// TestEventStreamResumesInsideAnEntry: the events of one log entry (a
// batch of creates) have ids index.1, index.2, ..., index; a stream cut
// after any of them resumes with the next event, none lost or repeated.
func TestEventStreamResumesInsideAnEntry(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	before := e.node.FSM().AppliedIndex()
	req := api.BatchRequest{}
	for i := range 3 {
		req.Ops = append(req.Ops, api.BatchOp{Op: "create", Tree: "a", Data: mustValue(t, map[string]any{"n": i})})
	}
	res, err := e.cl.Batch(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	index := res.Results[0].Index
	var keys []api.Key
	for i, r := range res.Results {
		if r.Err != nil || r.Index != index {
			t.Fatalf("batch result %d: %+v, want index %d", i, r, index)
		}
		keys = append(keys, r.Key)
	}
	in := strconv.FormatUint(index, 10)
	ids := []string{in + ".1", in + ".2", in}
	// next reads the next event and checks its id and key.
	next := func(s *sseStream, i int) {
		t.Helper()
		ev := s.next()
		var got api.Event
		if err := json.Unmarshal([]byte(ev.Data), &got); err != nil {
			t.Fatal(err)
		}
		if ev.ID != ids[i] || got.Index != index || got.Key != keys[i] || got.Type != api.EventCreated {
			t.Fatalf("event %d: id %q %+v, want id %q key %v", i, ev.ID, got, ids[i], keys[i])
		}
	}
	all := openStream(t, e.srv.URL, e.srv.Client(), "/v1/events/stream?from="+strconv.FormatUint(before, 10))
	for i := range ids {
		next(all, i)
	}
	for cut := range ids[:2] {
		// The header overrides ?from=, which may hold the same id (the
		// viewer's older pages sent both): an "index.k" there is not read.
		s := openStream(t, e.srv.URL, e.srv.Client(), "/v1/events/stream?tree=a&from="+ids[cut], "Last-Event-ID", ids[cut])
		for i := cut + 1; i < len(ids); i++ {
			next(s, i)
		}
		s.close()
	}
	// After the entry's last event: the next write's event comes next.
	s := openStream(t, e.srv.URL, e.srv.Client(), "/v1/events/stream", "Last-Event-ID", in)
	wr, err := e.cl.Create(ctx, "a", api.WriteRequest{Data: mustValue(t, map[string]any{"n": 9})})
	if err != nil {
		t.Fatal(err)
	}
	if ev := s.next(); ev.ID != strconv.FormatUint(wr.Index, 10) {
		t.Fatalf("after %s: event %+v, want the create at %d", in, ev, wr.Index)
	}
	for _, bad := range []string{in + ".0", "x.1", in + ".", "0.1"} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/v1/events/stream", nil)
		req.Header.Set("Last-Event-ID", bad)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("Last-Event-ID %q: status %d, want 400", bad, resp.StatusCode)
		}
	}
}
