package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// fake serves routes (Go 1.22 mux patterns) and returns a client for it.
// The client is built from the bare host:port to cover that form too.
func fake(t *testing.T, routes map[string]http.HandlerFunc) *Client {
	t.Helper()
	mux := http.NewServeMux()
	for pat, h := range routes {
		mux.HandleFunc(pat, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return NewClient(strings.TrimPrefix(srv.URL, "http://"), srv.Client())
}

func writeCBOR(t *testing.T, w http.ResponseWriter, status int, v any) {
	t.Helper()
	b, err := Marshal(v)
	if err != nil {
		t.Errorf("marshal answer: %v", err)
		return
	}
	w.Header().Set("Content-Type", ContentCBOR)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func readCBOR(t *testing.T, r *http.Request, v any) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != ContentCBOR {
		t.Errorf("request Content-Type = %q, want %q", ct, ContentCBOR)
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := Unmarshal(b, v); err != nil {
		t.Errorf("request body: %v", err)
	}
}

func TestClientErrorDecoding(t *testing.T) {
	ctx := context.Background()
	c := fake(t, map[string]http.HandlerFunc{
		"POST /v1/trees/{tree}/records/{id}/{rev}/{action}": func(w http.ResponseWriter, r *http.Request) {
			writeCBOR(t, w, http.StatusConflict, Errorf(CodeNotBorrowed, "parts 7/1 is not borrowed by c1"))
		},
		"GET /v1/trees/{tree}/records/{id}": func(w http.ResponseWriter, r *http.Request) {
			// A JSON error body (a server that ignored Accept) decodes too.
			w.Header().Set("Content-Type", ContentJSON+"; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(ErrTreeNotFound)
		},
		"GET /v1/status": func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "upstream down", http.StatusBadGateway)
		},
	})

	_, err := c.Return(ctx, "parts", Key{ID: 7, Rev: 1}, "c1")
	if !errors.Is(err, ErrNotBorrowed) || errors.Is(err, ErrBorrowed) {
		t.Fatalf("Return error = %v, want not_borrowed", err)
	}
	var ae *Error
	if !errors.As(err, &ae) || ae.Message != "parts 7/1 is not borrowed by c1" {
		t.Fatalf("Return error = %#v, want the server's message", err)
	}

	_, err = c.Get(ctx, "parts", Key{ID: 7})
	if !errors.Is(err, ErrTreeNotFound) {
		t.Fatalf("Get error = %v, want tree_not_found", err)
	}

	// Not an API error body: the error names the URL and status.
	_, err = c.Status(ctx)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), c.BaseURL()+"/v1/status") ||
		!strings.Contains(err.Error(), "502") || !strings.Contains(err.Error(), "upstream down") {
		t.Fatalf("Status error = %v", err)
	}

	// No route at all (the mux's plain-text 404): not a record's not_found.
	_, err = c.Trees(ctx)
	if errors.Is(err, ErrNotFound) || !errors.Is(err, ErrInternal) || !strings.Contains(err.Error(), "/v1/trees") {
		t.Fatalf("Trees error = %v", err)
	}
}

func TestClientUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	c := NewClient(base+"/", nil)
	_, err := c.Members(context.Background())
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("error = %v, want ErrUnreachable", err)
	}
	var ue *url.Error
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), base+"/v1/members") {
		t.Fatalf("error = %v, want a *url.Error naming the URL", err)
	}
	if errors.Is(err, ErrUnavailable) {
		t.Fatalf("transport error must not look like an API error: %v", err)
	}
}

func TestClientRecordRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 24, 8, 0, 0, 123000000, time.UTC) // CBOR epoch times keep about a microsecond
	data, err := EncodeValue(map[string]any{"name": "R1", "qty": int64(3), "blob": []byte{0, 1, 0xff}})
	if err != nil {
		t.Fatal(err)
	}
	want := Record{
		Tree: "parts", Key: Key{ID: 42, Rev: 2}, Schema: 1, Data: data, State: -3, Released: true,
		CreatedBy: "c1", Created: now, UpdatedBy: "c2", Updated: now.Add(time.Second), Index: 99,
		Borrow: &Borrow{Tree: "parts", Key: Key{ID: 42, Rev: 2}, Client: "c2", ClientName: "ws-7", Since: now},
	}
	c := fake(t, map[string]http.HandlerFunc{
		"GET /v1/trees/{tree}/records/{id}/{rev}": func(w http.ResponseWriter, r *http.Request) {
			if a := r.Header.Get("Accept"); a != ContentCBOR {
				t.Errorf("Accept = %q", a)
			}
			writeCBOR(t, w, http.StatusOK, want)
		},
		"POST /v1/trees/{tree}/records": func(w http.ResponseWriter, r *http.Request) {
			var req WriteRequest
			readCBOR(t, r, &req)
			if !bytes.Equal(req.Data, data) || req.Schema != 1 || req.ID != 0 {
				t.Errorf("create request = %+v", req)
			}
			writeCBOR(t, w, http.StatusCreated, WriteResult{Key: Key{ID: 42, Rev: 1}, Index: 98})
		},
	})
	ctx := context.Background()
	res, err := c.Create(ctx, "parts", WriteRequest{Schema: 1, Data: data})
	if err != nil || res != (WriteResult{Key: Key{ID: 42, Rev: 1}, Index: 98}) {
		t.Fatalf("Create = %+v, %v", res, err)
	}
	got, err := c.Get(ctx, "parts", Key{ID: 42, Rev: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Created.Equal(want.Created) || !got.Updated.Equal(want.Updated) || !got.Borrow.Since.Equal(now) {
		t.Fatalf("times: got %v %v %v", got.Created, got.Updated, got.Borrow.Since)
	}
	got.Created, got.Updated, got.Borrow.Since = want.Created, want.Updated, want.Borrow.Since
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Get =\n%+v\nwant\n%+v", got, want)
	}
	v, err := DecodeValue(got.Data)
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["name"] != "R1" {
		t.Fatalf("value = %#v", v)
	}
}

func TestClientEscapesTreeNames(t *testing.T) {
	const tree = "a b/c?d%e#f"
	var seen []string
	c := fake(t, map[string]http.HandlerFunc{
		"GET /v1/trees/{tree}/records/{id}": func(w http.ResponseWriter, r *http.Request) {
			seen = append(seen, r.PathValue("tree"))
			writeCBOR(t, w, http.StatusOK, Record{Tree: r.PathValue("tree")})
		},
		"POST /v1/trees/{tree}/records/{id}/{rev}/{action}": func(w http.ResponseWriter, r *http.Request) {
			seen = append(seen, r.PathValue("tree"), r.PathValue("action"))
			var req ActionRequest
			readCBOR(t, r, &req)
			if req != (ActionRequest{Client: "c1", TTL: "1m30s"}) {
				t.Errorf("borrow request = %+v", req)
			}
			writeCBOR(t, w, http.StatusOK, WriteResult{})
		},
		"GET /v1/trees/{tree}/records": func(w http.ResponseWriter, r *http.Request) {
			seen = append(seen, r.PathValue("tree"), r.URL.Query().Get("after"), r.URL.Query().Get("limit"))
			writeCBOR(t, w, http.StatusOK, RecordPage{After: "9/1"})
		},
		"GET /v1/borrows": func(w http.ResponseWriter, r *http.Request) {
			seen = append(seen, r.URL.Query().Get("tree"))
			writeCBOR(t, w, http.StatusOK, []Borrow{})
		},
	})
	ctx := context.Background()
	if _, err := c.Get(ctx, tree, Key{ID: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Borrow(ctx, tree, Key{ID: 1, Rev: 1}, "c1", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	p, err := c.List(ctx, tree, Key{ID: 5, Rev: 2}, 10)
	if err != nil || p.After != "9/1" {
		t.Fatalf("List = %+v, %v", p, err)
	}
	if _, err := c.Borrows(ctx, tree); err != nil {
		t.Fatal(err)
	}
	want := []string{tree, tree, "borrow", tree, "5/2", "10", tree}
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("server saw %q, want %q", seen, want)
	}
}

func TestClientAdminAndStreams(t *testing.T) {
	snap := bytes.Repeat([]byte("snapshot"), 10000)
	var seen []string
	c := fake(t, map[string]http.HandlerFunc{
		"POST /v1/leader/transfer": func(w http.ResponseWriter, r *http.Request) {
			var req map[string]any
			readCBOR(t, r, &req)
			seen = append(seen, "transfer:"+req["id"].(string))
			w.WriteHeader(http.StatusNoContent)
		},
		"DELETE /v1/members/{id}": func(w http.ResponseWriter, r *http.Request) {
			seen = append(seen, "remove:"+r.PathValue("id"))
			w.WriteHeader(http.StatusNoContent)
		},
		"GET /v1/log": func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			seen = append(seen, "log:"+q.Encode())
			if q.Get("from") == "1" {
				writeCBOR(t, w, http.StatusGone, ErrCompacted)
				return
			}
			writeCBOR(t, w, http.StatusOK, LogPage{ClusterID: "cl", Next: 12, Entries: []LogEntry{{Index: 12, Data: []byte{1, 2}}}})
		},
		"GET /v1/events": func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			seen = append(seen, "events:"+q.Encode())
			if q.Get("from") == "1" {
				writeCBOR(t, w, http.StatusGone, ErrCompacted)
				return
			}
			writeCBOR(t, w, http.StatusOK, EventPage{Next: 14, Events: []Event{{Index: 13, Type: EventBorrowed, Tree: "parts", Key: Key{ID: 3, Rev: 1}, Client: "c1"}}})
		},
		"GET /v1/hash": func(w http.ResponseWriter, r *http.Request) {
			writeCBOR(t, w, http.StatusOK, ContentHash{Index: 14, Hash: "ab12", Node: "n1"})
		},
		"GET /v1/snapshot": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(snap)
		},
		"POST /v1/clients/{id}/ranges": func(w http.ResponseWriter, r *http.Request) {
			var req GrantRangeRequest
			readCBOR(t, r, &req)
			writeCBOR(t, w, http.StatusCreated, Range{Client: r.PathValue("id"), Start: 1000, End: 1000 + req.Size})
		},
		"DELETE /v1/trees/{tree}/records/{id}/{rev}": func(w http.ResponseWriter, r *http.Request) {
			seen = append(seen, "delete:"+r.PathValue("id")+"/"+r.PathValue("rev")+"?"+r.URL.RawQuery)
			writeCBOR(t, w, http.StatusOK, WriteResult{Key: Key{ID: 3, Rev: 1}})
		},
	})
	ctx := context.Background()
	if err := c.TransferLeadership(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveMember(ctx, "n/3"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, "parts", Key{ID: 3, Rev: 1}, "c 1"); err != nil {
		t.Fatal(err)
	}
	p, err := c.Log(ctx, 11, 100, 2*time.Second)
	if err != nil || p.Next != 12 || len(p.Entries) != 1 || !bytes.Equal(p.Entries[0].Data, []byte{1, 2}) {
		t.Fatalf("Log = %+v, %v", p, err)
	}
	if _, err := c.Log(ctx, 1, 0, 0); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Log(1) error = %v, want compacted", err)
	}
	ep, err := c.Events(ctx, 12, 0, time.Second, "parts")
	if err != nil || ep.Next != 14 || len(ep.Events) != 1 || ep.Events[0].Type != EventBorrowed || ep.Events[0].Key != (Key{ID: 3, Rev: 1}) {
		t.Fatalf("Events = %+v, %v", ep, err)
	}
	if _, err := c.Events(ctx, 1, 0, 0, ""); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Events(1) error = %v, want compacted", err)
	}
	if h, err := c.ContentHash(ctx); err != nil || h != (ContentHash{Index: 14, Hash: "ab12", Node: "n1"}) {
		t.Fatalf("ContentHash = %+v, %v", h, err)
	}
	rg, err := c.GrantRange(ctx, "c1", 500)
	if err != nil || rg.Size() != 500 || rg.Client != "c1" {
		t.Fatalf("GrantRange = %+v, %v", rg, err)
	}
	var buf bytes.Buffer
	n, err := c.Snapshot(ctx, &buf)
	if err != nil || n != int64(len(snap)) || !bytes.Equal(buf.Bytes(), snap) {
		t.Fatalf("Snapshot = %d, %v", n, err)
	}
	want := []string{"transfer:", "remove:n/3", "delete:3/1?client=c+1",
		"log:from=11&limit=100&wait=2s", "log:from=1",
		"events:from=12&tree=parts&wait=1s", "events:from=1"}
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("server saw %q, want %q", seen, want)
	}
}

// TestClientRoutes checks the method, path, query and body of the calls
// the other tests leave out against the route table of docs/http-api.md.
func TestClientRoutes(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Method + " " + r.URL.RequestURI()
		if r.ContentLength > 0 {
			var body map[string]any
			readCBOR(t, r, &body)
			b, _ := json.Marshal(body)
			got += " " + string(b)
		}
		w.Header().Set("Content-Type", ContentCBOR)
		_, _ = w.Write([]byte{0xa0}) // {}: decodes into any struct
	}))
	defer srv.Close()
	c, ctx, k := NewClient(srv.URL, nil), context.Background(), Key{ID: 5, Rev: 2}
	for _, tc := range []struct {
		call func() error
		want string
	}{
		{func() error { _, err := c.Schemas(ctx, "parts"); return err }, "GET /v1/trees/parts/schemas"},
		{func() error { _, err := c.RegisterSchema(ctx, "parts", []byte{1}); return err }, `POST /v1/trees/parts/schemas {"definition":"AQ=="}`},
		{func() error {
			_, err := c.Update(ctx, "parts", k, WriteRequest{Client: "c1", Data: []byte{7}})
			return err
		}, `PUT /v1/trees/parts/records/5/2 {"client":"c1","data":"Bw=="}`},
		{func() error { _, err := c.ForceReturn(ctx, "parts", k, "why"); return err }, `POST /v1/trees/parts/records/5/2/force-return {"reason":"why"}`},
		{func() error { _, err := c.Release(ctx, "parts", k, "c1"); return err }, `POST /v1/trees/parts/records/5/2/release {"client":"c1"}`},
		{func() error { _, err := c.SetState(ctx, "parts", k, "c1", 3); return err }, `POST /v1/trees/parts/records/5/2/state {"client":"c1","state":3}`},
		{func() error { _, err := c.Revise(ctx, "parts", k, "c1"); return err }, `POST /v1/trees/parts/records/5/2/revise {"client":"c1"}`},
		{func() error { _, err := c.Clients(ctx); return err }, "GET /v1/clients"},
		{func() error { _, err := c.RegisterClient(ctx, "ws-7"); return err }, `POST /v1/clients {"name":"ws-7"}`},
		{func() error { _, err := c.RemoveClient(ctx, "c 1", "left the company"); return err }, "DELETE /v1/clients/c%201?reason=left+the+company"},
		{func() error { _, err := c.RemoveClient(ctx, "c1", ""); return err }, "DELETE /v1/clients/c1"},
		{func() error {
			_, err := c.TakeOver(ctx, "parts", k, "c2", "holder is away", 90*time.Second)
			return err
		}, `POST /v1/trees/parts/records/5/2/take {"client":"c2","reason":"holder is away","ttl":"1m30s"}`},
		{func() error { _, err := c.TakeOver(ctx, "parts", k, "c2", "", 0); return err }, `POST /v1/trees/parts/records/5/2/take {"client":"c2"}`},
		{func() error { _, err := c.History(ctx, "a b", k); return err }, "GET /v1/trees/a%20b/records/5/2/history"},
		{func() error { _, err := c.Ranges(ctx, ""); return err }, "GET /v1/ranges"},
		{func() error { _, err := c.Ranges(ctx, "c1"); return err }, "GET /v1/ranges?client=c1"},
		{func() error { _, err := c.List(ctx, "parts", Key{}, 0); return err }, "GET /v1/trees/parts/records"},
		{func() error { _, err := c.LogAs(ctx, "c 1", 7, 0, 0); return err }, "GET /v1/log?client=c+1&from=7"},
		{func() error { _, err := c.Events(ctx, EventsFromNow, 0, 0, ""); return err }, "GET /v1/events?from=now"},
		{func() error { _, err := c.Events(ctx, 0, 0, 0, ""); return err }, "GET /v1/events?from=0"},
		{func() error { _, err := c.Events(ctx, 12, 50, 30*time.Second, "parts"); return err }, "GET /v1/events?from=12&limit=50&tree=parts&wait=30s"},
		{func() error { _, err := c.ContentHash(ctx); return err }, "GET /v1/hash"},
		{func() error { _, err := c.Version(ctx); return err }, "GET /v1/version"},
		{func() error { _, err := c.Health(ctx); return err }, "GET /healthz"},
	} {
		got = ""
		if err := tc.call(); err != nil || got != tc.want {
			t.Errorf("got %s (%v), want %s", got, err, tc.want)
		}
	}
}

func TestClientHistory(t *testing.T) {
	at := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	want := []AuditEntry{
		{Tree: "parts", Key: Key{ID: 5, Rev: 2}, Index: 40, Time: at, Action: AuditBorrowed, Client: "c1", Expires: at.Add(time.Hour)},
		{Tree: "parts", Key: Key{ID: 5, Rev: 2}, Index: 41, Time: at.Add(time.Minute), Action: AuditTaken, Client: "c2", Holder: "c1", Reason: "c1 is away"},
	}
	calls := 0
	c := fake(t, map[string]http.HandlerFunc{
		"GET /v1/trees/{tree}/records/{id}/{rev}/history": func(w http.ResponseWriter, r *http.Request) {
			calls++
			writeCBOR(t, w, http.StatusOK, want)
		},
	})
	ctx := context.Background()
	got, err := c.History(ctx, "parts", Key{ID: 5, Rev: 2})
	if err != nil || len(got) != 2 {
		t.Fatalf("History = %+v, %v", got, err)
	}
	for i := range got {
		if !got[i].Time.Equal(want[i].Time) || !got[i].Expires.Equal(want[i].Expires) {
			t.Fatalf("entry %d times: %v %v", i, got[i].Time, got[i].Expires)
		}
		got[i].Time, got[i].Expires = want[i].Time, want[i].Expires
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("History =\n%+v\nwant\n%+v", got, want)
	}
	// The history is per revision: no request without one.
	if _, err := c.History(ctx, "parts", Key{ID: 5}); !errors.Is(err, ErrInvalid) || calls != 1 {
		t.Fatalf("History without a revision: %v (%d requests)", err, calls)
	}
}

// TestClientKeepsConnections: a Client made without an http.Client keeps
// its connections for the next calls: 16 callers making 20 rounds of
// concurrent creates open about 16 connections in all (a few more if the
// transport dials while all are busy), not 14 new ones a round as
// http.DefaultClient does (it keeps 2 idle).
func TestClientKeepsConnections(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/trees/t/records", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		writeCBOR(t, w, http.StatusCreated, WriteResult{Key: Key{ID: 1, Rev: 1}, Index: 9})
	})
	srv := httptest.NewUnstartedServer(mux)
	var mu sync.Mutex
	conns := 0
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := NewClient(srv.URL, nil)
	t.Cleanup(defaultHTTP().CloseIdleConnections)
	const callers, rounds = 16, 20
	for range rounds {
		var wg sync.WaitGroup
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.Create(t.Context(), "t", WriteRequest{Data: []byte{0xa0}}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	mu.Lock()
	defer mu.Unlock()
	if conns > 2*callers {
		t.Errorf("%d connections for %d rounds of %d concurrent calls", conns, rounds, callers)
	}
}
