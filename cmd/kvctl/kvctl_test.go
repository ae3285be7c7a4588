package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/schema"
	"github.com/shelfdb/shelf/internal/testserver"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// fakeAPI is an in-memory stand-in for a node's HTTP API, speaking CBOR
// like the real one. Tree "parts" exists; records are kept in key order.
type fakeAPI struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	records []api.Record
	calls   []string              // "METHOD path?query" of each request
	fail    map[string]*api.Error // "METHOD path" -> error to answer
	creates []any                 // decoded values of creates
	actions []api.ActionRequest   // bodies of record actions
	events  []eventStep           // answers to GET /v1/events, in turn
	schemas []api.Schema          // registered schema versions of "parts"
}

// eventStep is the fake's answer to one event request: a page, an error,
// or (neither) a call of cancel followed by a wait for the client to go.
type eventStep struct {
	page   api.EventPage
	err    *api.Error
	cancel context.CancelFunc
	cut    bool // close the connection without an answer: the node went away
}

func newFake(t *testing.T, nrec int) *fakeAPI {
	f := &fakeAPI{t: t, fail: map[string]*api.Error{}}
	for i := 1; i <= nrec; i++ {
		data, _ := api.EncodeValue(map[string]any{"name": "R" + strconv.Itoa(i), "qty": int64(i)})
		r := api.Record{Tree: "parts", Key: api.Key{ID: uint64(i), Rev: 1}, Schema: 1, Data: data,
			CreatedBy: "c1", Created: now.Add(-time.Hour), UpdatedBy: "c1", Updated: now.Add(-5 * time.Minute), Index: uint64(10 + i)}
		if i == 2 {
			r.Borrow = &api.Borrow{Tree: "parts", Key: r.Key, Client: "c1", ClientName: "ws-7", Since: now.Add(-2 * time.Minute)}
		}
		f.records = append(f.records, r)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		f.reply(w, http.StatusOK, api.Status{ClusterID: "cl-1", NodeID: "n1", State: "Leader", Leader: "n1",
			LeaderHTTP: "127.0.0.1:7001", Term: 3, CommitIndex: 120, AppliedIndex: 120, LastLogIndex: 121,
			Members: members})
	})
	mux.HandleFunc("GET /v1/members", func(w http.ResponseWriter, r *http.Request) { f.reply(w, http.StatusOK, members) })
	mux.HandleFunc("DELETE /v1/members/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "n3" {
			f.reply(w, http.StatusNotFound, api.Errorf(api.CodeUnknownMember, "no member %q", r.PathValue("id")))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/leader/transfer", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID string `json:"id"`
		}
		f.read(r, &req)
		f.calls = append(f.calls, "transfer to "+req.ID)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/trees", func(w http.ResponseWriter, r *http.Request) {
		f.reply(w, http.StatusOK, []api.Tree{{Name: "parts", Records: uint64(len(f.records)), Schemas: []uint32{1, 2}, Created: now.Add(-72 * time.Hour)}})
	})
	mux.HandleFunc("GET /v1/trees/{tree}/schemas", func(w http.ResponseWriter, r *http.Request) {
		if f.tree(w, r) {
			f.reply(w, http.StatusOK, orEmpty(f.schemas))
		}
	})
	mux.HandleFunc("GET /v1/trees/{tree}/records", func(w http.ResponseWriter, r *http.Request) {
		if !f.tree(w, r) {
			return
		}
		var after api.Key
		if a := r.URL.Query().Get("after"); a != "" {
			after, _ = api.ParseKey(a)
		}
		limit := 100
		if l := r.URL.Query().Get("limit"); l != "" {
			limit, _ = strconv.Atoi(l)
		}
		var p api.RecordPage
		for _, rec := range f.records {
			if rec.Key.ID > after.ID || (rec.Key.ID == after.ID && rec.Key.Rev > after.Rev) {
				if len(p.Records) == limit {
					p.After = p.Records[limit-1].Key.String()
					break
				}
				p.Records = append(p.Records, rec)
			}
		}
		f.reply(w, http.StatusOK, p)
	})
	get := func(w http.ResponseWriter, r *http.Request) {
		if !f.tree(w, r) {
			return
		}
		id, _ := strconv.ParseUint(r.PathValue("id"), 10, 64)
		rev, _ := strconv.ParseUint(r.PathValue("rev"), 10, 32)
		for _, rec := range f.records {
			if rec.Key.ID == id && (rev == 0 || rec.Key.Rev == uint32(rev)) {
				f.reply(w, http.StatusOK, rec)
				return
			}
		}
		f.reply(w, http.StatusNotFound, api.Errorf(api.CodeNotFound, "parts %d not found", id))
	}
	mux.HandleFunc("GET /v1/trees/{tree}/records/{id}", get)
	mux.HandleFunc("GET /v1/trees/{tree}/records/{id}/{rev}", get)
	mux.HandleFunc("POST /v1/trees/{tree}/records", func(w http.ResponseWriter, r *http.Request) {
		if !f.tree(w, r) {
			return
		}
		var req api.WriteRequest
		f.read(r, &req)
		v, err := api.DecodeValue(req.Data)
		if err != nil {
			f.reply(w, http.StatusBadRequest, api.Errorf(api.CodeInvalid, "%v", err))
			return
		}
		f.creates = append(f.creates, v)
		f.reply(w, http.StatusCreated, api.WriteResult{Key: api.Key{ID: 1000 + uint64(len(f.creates)), Rev: 1}, Index: 200})
	})
	mux.HandleFunc("POST /v1/trees/{tree}/records/{id}/{rev}/{action}", func(w http.ResponseWriter, r *http.Request) {
		var req api.ActionRequest
		f.read(r, &req)
		f.actions = append(f.actions, req)
		if r.PathValue("action") == "return" && req.Client != "c1" {
			f.reply(w, http.StatusConflict, api.Errorf(api.CodeNotBorrowed, "parts 2/1 is not borrowed by %s", req.Client))
			return
		}
		id, _ := strconv.ParseUint(r.PathValue("id"), 10, 64)
		rev, _ := strconv.ParseUint(r.PathValue("rev"), 10, 32)
		f.reply(w, http.StatusOK, api.WriteResult{Key: api.Key{ID: id, Rev: uint32(rev)}, Index: 201})
	})
	mux.HandleFunc("GET /v1/borrows", func(w http.ResponseWriter, r *http.Request) {
		var bs []api.Borrow
		for _, rec := range f.records {
			if rec.Borrow != nil {
				bs = append(bs, *rec.Borrow)
			}
		}
		f.reply(w, http.StatusOK, bs)
	})
	mux.HandleFunc("GET /v1/clients", func(w http.ResponseWriter, r *http.Request) {
		f.reply(w, http.StatusOK, []api.ClientInfo{
			{ID: "c1", Name: "ws-7", Registered: now.Add(-48 * time.Hour), LastSeen: now.Add(-3 * time.Minute), ReplicaIndex: 118},
			{ID: "c2", Name: "laptop", Registered: now.Add(-2 * time.Hour)},
		})
	})
	mux.HandleFunc("GET /v1/hash", func(w http.ResponseWriter, r *http.Request) {
		f.reply(w, http.StatusOK, api.ContentHash{Index: 120, Hash: "9f86d081884c7d65", Node: "n1"})
	})
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		if len(f.events) == 0 {
			f.t.Errorf("fake: unexpected event request %s", r.URL.RequestURI())
			f.reply(w, http.StatusInternalServerError, api.Errorf(api.CodeInternal, "no more events scripted"))
			return
		}
		step := f.events[0]
		f.events = f.events[1:]
		switch {
		case step.err != nil:
			f.reply(w, api.HTTPStatus(step.err.Code), step.err)
		case step.cancel != nil:
			step.cancel()
			<-r.Context().Done()
		case step.cut:
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
		default:
			f.reply(w, http.StatusOK, step.page)
		}
	})
	mux.HandleFunc("GET /v1/ranges", func(w http.ResponseWriter, r *http.Request) {
		// c0 is a removed client: its retired range is still listed.
		var rs []api.Range
		for _, rg := range []api.Range{
			{Start: 1000, End: 2000, Client: "c1", Granted: now.Add(-time.Hour), Used: 250, Next: 1250},
			{Start: 2000, End: 2100, Client: "c0", Granted: now.Add(-time.Hour), Used: 10, Next: 2010, Retired: true},
		} {
			if c := r.URL.Query().Get("client"); c == "" || c == rg.Client {
				rs = append(rs, rg)
			}
		}
		f.reply(w, http.StatusOK, rs)
	})
	snap := snapshotBytes(t)
	mux.HandleFunc("GET /v1/snapshot", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(snap)
	})
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls = append(f.calls, r.Method+" "+r.URL.RequestURI())
		if e, ok := f.fail[r.Method+" "+r.URL.Path]; ok {
			f.reply(w, api.HTTPStatus(e.Code), e)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

var members = []api.Member{
	{ID: "n1", RaftAddr: "127.0.0.1:7101", HTTPAddr: "127.0.0.1:7001", Suffrage: "Voter", Health: "alive", Leader: true},
	{ID: "n2", RaftAddr: "127.0.0.1:7102", HTTPAddr: "127.0.0.1:7002", Suffrage: "Voter", Health: "dead"},
}

func (f *fakeAPI) tree(w http.ResponseWriter, r *http.Request) bool {
	if r.PathValue("tree") != "parts" {
		f.reply(w, http.StatusNotFound, api.Errorf(api.CodeTreeNotFound, "tree %q not found", r.PathValue("tree")))
		return false
	}
	return true
}

func (f *fakeAPI) reply(w http.ResponseWriter, status int, v any) {
	b, err := api.Marshal(v)
	if err != nil {
		f.t.Errorf("fake: %v", err)
	}
	w.Header().Set("Content-Type", api.ContentCBOR)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (f *fakeAPI) read(r *http.Request, v any) {
	b, _ := io.ReadAll(r.Body)
	if err := api.Unmarshal(b, v); err != nil {
		f.t.Errorf("fake: request body: %v", err)
	}
}

// kv runs kvctl against f (nil: no server needed) with the given stdin.
func kv(t *testing.T, f *fakeAPI, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return kvCtx(context.Background(), t, f, stdin, args...)
}

// kvCtx is kv with a context: cancelling it is what SIGINT does.
func kvCtx(ctx context.Context, t *testing.T, f *fakeAPI, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	addr := ""
	if f != nil {
		addr = f.srv.URL
	}
	return kvAt(ctx, t, addr, stdin, args...)
}

// kvAt runs kvctl against the server at addr ("": none needed).
func kvAt(ctx context.Context, t *testing.T, addr, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	env := map[string]string{}
	if addr != "" {
		env["SHELF_HTTP"] = addr
	}
	var out, errb bytes.Buffer
	c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		getenv: func(k string) string { return env[k] }, now: func() time.Time { return now }}
	code = c.main(ctx, args)
	return out.String(), errb.String(), code
}

func wantLines(t *testing.T, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q:\n%s", w, got)
		}
	}
}

func TestStatusAndMembers(t *testing.T) {
	f := newFake(t, 0)
	out, errs, code := kv(t, f, "", "status")
	if code != 0 {
		t.Fatalf("status: code %d, stderr %s", code, errs)
	}
	wantLines(t, out, "cluster         cl-1\n", "node            n1 (Leader)\n",
		"leader          n1 (127.0.0.1:7001)\n", "commit index    120\n",
		"ID  SUFFRAGE  HEALTH  LEADER  RAFT            HTTP            GOSSIP\n",
		"n2  Voter     dead            127.0.0.1:7102  127.0.0.1:7002  -\n")

	out, _, code = kv(t, f, "", "-o", "json", "members")
	var ms []api.Member
	if code != 0 || json.Unmarshal([]byte(out), &ms) != nil || len(ms) != 2 || !ms[0].Leader {
		t.Fatalf("members json: code %d, %s", code, out)
	}

	out, _, code = kv(t, f, "", "members", "remove", "n3")
	if code != 0 || out != "removed member n3\n" {
		t.Fatalf("members remove: %d %q", code, out)
	}
	f.calls = nil
	out, _, code = kv(t, f, "", "leader", "transfer", "n2")
	if code != 0 || out != "leadership transferred to n2\n" || f.calls[1] != "transfer to n2" {
		t.Fatalf("leader transfer: %d %q %q", code, out, f.calls)
	}
	_, errs, code = kv(t, f, "", "members", "remove", "n9")
	if code != exitNotFound || errs != "kvctl: no member \"n9\"\n" {
		t.Fatalf("members remove n9: %d %q", code, errs)
	}
}

func TestRunReadsEnvironment(t *testing.T) {
	f := newFake(t, 0)
	t.Setenv("SHELF_HTTP", strings.TrimPrefix(f.srv.URL, "http://"))
	t.Setenv("SHELF_OUTPUT", "json")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"status"}, &out, &errb); code != 0 {
		t.Fatalf("code %d: %s", code, errb.String())
	}
	var st api.Status
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || st.ClusterID != "cl-1" || len(st.Members) != 2 {
		t.Fatalf("status json %v: %s", err, out.String())
	}
	// A flag beats the environment, after the command too. (run uses the
	// real clock: the CREATED column is not checked.)
	out.Reset()
	if code := run(context.Background(), []string{"trees", "-o", "table"}, &out, &errb); code != 0 ||
		!strings.HasPrefix(out.String(), "NAME   RECORDS  SCHEMAS  CREATED\nparts  0        1,2 ") {
		t.Fatalf("trees: code %d: %q", code, out.String())
	}
}

func TestGet(t *testing.T) {
	f := newFake(t, 3)
	out, errs, code := kv(t, f, "", "get", "parts", "2")
	if code != 0 {
		t.Fatalf("get: %d %s", code, errs)
	}
	wantLines(t, out, "key          2/1\n", "released     no\n",
		"updated      2026-11-24T11:55:00Z (5m ago) by c1\n",
		"borrowed by  ws-7 (c1), since 2026-11-24T11:58:00Z (2m ago)\n",
		"value\n{\n  \"name\": \"R2\",\n  \"qty\": 2\n}\n")

	out, _, code = kv(t, f, "", "get", "parts", "3/1", "-o", "json")
	var m map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil {
		t.Fatalf("get json: %d %s", code, out)
	}
	if v := m["value"].(map[string]any); v["name"] != "R3" || v["qty"] != 3.0 {
		t.Fatalf("value = %v", m["value"])
	}
	if _, ok := m["data"]; ok || m["key"].(map[string]any)["id"] != 3.0 || m["created_by"] != "c1" {
		t.Fatalf("json record = %s", out)
	}
}

func TestList(t *testing.T) {
	f := newFake(t, 5)
	out, errs, code := kv(t, f, "", "list", "parts", "-limit", "2")
	if code != 0 {
		t.Fatalf("list: %d %s", code, errs)
	}
	want := "KEY  RELEASED  STATE  BORROWER   UPDATED  VALUE\n" +
		"1/1  no        0      -          5m ago   {\"name\":\"R1\",\"qty\":1}\n" +
		"2/1  no        0      ws-7 (c1)  5m ago   {\"name\":\"R2\",\"qty\":2}\n"
	if out != want {
		t.Fatalf("list table:\n%s\nwant\n%s", out, want)
	}
	if errs != "more records: kvctl list parts -after 2/1\n" {
		t.Fatalf("list hint %q", errs)
	}

	f.calls = nil
	out, _, code = kv(t, f, "", "-o", "json", "list", "-all", "parts", "-limit=2")
	var p struct {
		Records []map[string]any `json:"records"`
		After   *string          `json:"after"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || len(p.Records) != 5 || p.After != nil {
		t.Fatalf("list -all json: %d %s", code, out)
	}
	if p.Records[4]["value"].(map[string]any)["name"] != "R5" {
		t.Fatalf("last record %v", p.Records[4])
	}
	wantCalls := []string{"GET /v1/trees/parts/records?limit=2", "GET /v1/trees/parts/records?after=2%2F1&limit=2",
		"GET /v1/trees/parts/records?after=4%2F1&limit=2"}
	if strings.Join(f.calls, "\n") != strings.Join(wantCalls, "\n") {
		t.Fatalf("calls:\n%s", strings.Join(f.calls, "\n"))
	}

	out, _, code = kv(t, newFake(t, 0), "", "list", "parts", "-o", "json")
	if code != 0 || out != "{\n  \"records\": []\n}\n" {
		t.Fatalf("empty list json: %q", out)
	}
}

func TestPut(t *testing.T) {
	f := newFake(t, 0)
	out, errs, code := kv(t, f, `{"name": "R1", "qty": 3, "tags": ["a"], "w": 1.5}`, "put", "parts", "-")
	if code != 0 || out != "1001/1\n" {
		t.Fatalf("put stdin: %d %q %s", code, out, errs)
	}
	got, _ := json.Marshal(f.creates[0])
	if string(got) != `{"name":"R1","qty":3,"tags":["a"],"w":1.5}` {
		t.Fatalf("server got %s", got)
	}
	out, _, code = kv(t, f, "", "put", "parts", `{"a":1}`, "-o", "json")
	var res api.WriteResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Key != (api.Key{ID: 1002, Rev: 1}) {
		t.Fatalf("put json: %d %s", code, out)
	}
	_, errs, code = kv(t, f, `{"a":`, "put", "parts", "-")
	if code != exitUsage || !strings.HasPrefix(errs, "kvctl: put: the value is not valid JSON") {
		t.Fatalf("bad json: %d %q", code, errs)
	}
	_, errs, code = kv(t, f, "", "put", "tools", `{}`)
	if code != exitNotFound || errs != "kvctl: tree \"tools\" not found\n" {
		t.Fatalf("unknown tree: %d %q", code, errs)
	}
}

func TestLeases(t *testing.T) {
	f := newFake(t, 3)
	f.records[0].Borrow = &api.Borrow{Tree: "parts", Key: f.records[0].Key, Client: "c2", ClientName: "laptop",
		Since: now.Add(-time.Hour), Expires: now.Add(25 * time.Minute)}
	f.records[2].Borrow = &api.Borrow{Tree: "parts", Key: f.records[2].Key, Client: "c9",
		Since: now.Add(-3 * time.Hour), Expires: now.Add(-time.Minute)}
	out, _, code := kv(t, f, "", "leases", "parts")
	want := "TREE   RECORD  HOLDER  HOLDER ID  SINCE   EXPIRES\n" +
		"parts  1/1     laptop  c2         1h ago  in 25m\n" +
		"parts  2/1     ws-7    c1         2m ago  never\n" +
		"parts  3/1     -       c9         3h ago  expired 1m ago\n"
	if code != 0 || out != want {
		t.Fatalf("leases: %d\n%s\nwant\n%s", code, out, want)
	}
	f.records[0].Borrow, f.records[2].Borrow = nil, nil
	if f.calls[0] != "GET /v1/borrows?tree=parts" {
		t.Fatalf("calls %q", f.calls)
	}

	// Without a revision the latest is looked up first.
	f.calls = nil
	out, errs, code := kv(t, f, "", "leases", "return", "parts", "2", "--force", "--reason", "left the company")
	if code != 0 || out != "returned parts 2/1\n" {
		t.Fatalf("force return: %d %q %s", code, out, errs)
	}
	if len(f.calls) != 2 || f.calls[1] != "POST /v1/trees/parts/records/2/1/force-return" ||
		f.actions[0] != (api.ActionRequest{Reason: "left the company"}) {
		t.Fatalf("calls %q actions %+v", f.calls, f.actions)
	}

	if _, _, code = kv(t, f, "", "leases", "return", "parts", "2/1", "--client", "c1"); code != 0 {
		t.Fatalf("return as holder: %d", code)
	}
	// The holder by name.
	f.actions = nil
	if _, errs, code = kv(t, f, "", "leases", "return", "parts", "2/1", "--client", "ws-7"); code != 0 || len(f.actions) != 1 || f.actions[0].Client != "c1" {
		t.Fatalf("return as holder by name: %d %q %+v", code, errs, f.actions)
	}
	_, errs, code = kv(t, f, "", "leases", "return", "parts", "2/1", "--client", "c9")
	if code != exitConflict || errs != "kvctl: parts 2/1 is not borrowed by c9\n" {
		t.Fatalf("return as other: %d %q", code, errs)
	}
	_, errs, code = kv(t, f, "", "leases", "return", "parts", "2/1")
	if code != exitUsage || !strings.Contains(errs, "usage: kvctl leases return TREE ID[/REV]") {
		t.Fatalf("return without --client: %d %q", code, errs)
	}
}

func TestRangesClientsSnapshot(t *testing.T) {
	f := newFake(t, 0)
	out, _, code := kv(t, f, "", "ranges", "c1")
	want := "CLIENT     START  END   SIZE  USED       NEXT  GRANTED  RETIRED\nws-7 (c1)  1000   2000  1000  250 (25%)  1250  1h ago   -\n"
	if code != 0 || out != want {
		t.Fatalf("ranges: %d\n%s", code, out)
	}
	// By name; a removed client's ranges by its id; no such client.
	if out2, _, code := kv(t, f, "", "ranges", "ws-7"); code != 0 || out2 != out || f.calls[len(f.calls)-1] != "GET /v1/ranges?client=c1" {
		t.Fatalf("ranges ws-7: %d\n%s", code, out2)
	}
	if out2, errs, code := kv(t, f, "", "ranges", "c0", "-o", "json"); code != 0 || !strings.Contains(out2, `"retired": true`) {
		t.Fatalf("ranges of a removed client: %d %s %s", code, out2, errs)
	}
	for _, o := range []string{"table", "json"} {
		if out2, errs, code := kv(t, f, "", "ranges", "NOSUCH", "-o", o); code != exitNotFound || out2 != "" ||
			(o == "table" && errs != "kvctl: client NOSUCH not found\n") ||
			(o == "json" && errs != `{"error":{"code":"unknown_client","message":"client NOSUCH not found"}}`+"\n") {
			t.Fatalf("ranges NOSUCH -o %s: %d %q %q", o, code, out2, errs)
		}
	}
	out, _, code = kv(t, f, "", "clients")
	want = "NAME    ID  REGISTERED  LAST SEEN  REPLICA INDEX\n" +
		"ws-7    c1  2d ago      3m ago     118\n" +
		"laptop  c2  2h ago      -          -\n"
	if code != 0 || out != want {
		t.Fatalf("clients: %d\n%s\nwant\n%s", code, out, want)
	}
	out, _, code = kv(t, f, "", "clients", "-o", "json")
	var cls []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &cls) != nil || len(cls) != 2 {
		t.Fatalf("clients json: %d %s", code, out)
	}
	if cls[0]["name"] != "ws-7" || cls[0]["replica_index"] != 118.0 || cls[0]["last_seen"] != "2026-11-24T11:57:00Z" {
		t.Fatalf("clients json: %v", cls[0])
	}
	if _, ok := cls[1]["last_seen"]; ok || cls[1]["replica_index"] != 0.0 {
		t.Fatalf("never seen client json: %v", cls[1])
	}
	file := filepath.Join(t.TempDir(), "snap.db")
	out, _, code = kv(t, f, "", "snapshot", "save", file)
	if b, err := os.ReadFile(file); code != 0 || err != nil || !bytes.Equal(b, snapshotBytes(t)) {
		t.Fatalf("snapshot save: %d %v %q", code, err, b)
	}
	if want := fmt.Sprintf("saved snapshot at index 0 to %s (%d bytes in ", file, len(snapshotBytes(t))); !strings.HasPrefix(out, want) || !strings.HasSuffix(out, "s, checksum verified)\n") {
		t.Fatalf("snapshot output %q, want %q...", out, want)
	}
	entries, _ := os.ReadDir(filepath.Dir(file))
	if len(entries) != 1 {
		t.Fatalf("leftover files: %v", entries)
	}
}

func TestExitCodes(t *testing.T) {
	f := newFake(t, 3)
	f.fail["GET /v1/trees"] = api.Errorf(api.CodeInternal, "disk on fire")
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	for _, tc := range []struct {
		args []string
		code int
		msg  string // start of stderr
	}{
		{[]string{"get", "parts", "9"}, exitNotFound, "kvctl: parts 9 not found\n"},
		{[]string{"get", "tools", "1/1"}, exitNotFound, "kvctl: tree \"tools\" not found\n"},
		{[]string{"trees"}, exitError, "kvctl: disk on fire\n"},
		{[]string{"-s", down.URL, "status"}, exitUnreachable, "kvctl: cannot reach server: Get \"" + down.URL + "/v1/status\""},
		{[]string{"get", "parts"}, exitUsage, "kvctl: get: missing arguments\nusage: kvctl get TREE ID[/REV]\n"},
		{[]string{"get", "parts", "x/1"}, exitUsage, "kvctl: invalid record id \"x\""},
		{[]string{"list", "parts", "-limit"}, exitUsage, "kvctl: flag needs an argument: -limit\n"},
		{[]string{"list", "parts", "-bogus"}, exitUsage, "kvctl: flag provided but not defined: -bogus\n"},
		{[]string{"-o", "yaml", "status"}, exitUsage, "kvctl: -o \"yaml\": want table or json\n"},
		{[]string{"-x"}, exitUsage, "kvctl: flag provided but not defined: -x\nrun \"kvctl help\""},
		{[]string{"status", "extra"}, exitUsage, "kvctl: status: unexpected arguments [\"extra\"]\n"},
		{[]string{"leader", "elect"}, exitUsage, "kvctl: leader: unknown subcommand \"elect\"\n"},
		{[]string{"leases", "--force"}, exitUsage, "kvctl: leases: --force goes with leases return\nusage: kvctl leases [TREE]\n"},
		{[]string{"leases", "parts", "--to", "c1"}, exitUsage, "kvctl: leases: --to goes with leases take\n"},
		{[]string{"leases", "return", "parts", "2", "--force", "--ttl", "1h"}, exitUsage, "kvctl: leases return: --ttl goes with leases take\nusage: kvctl leases return TREE"},
		{[]string{"leases", "take", "parts", "2", "--client", "c1"}, exitUsage, "kvctl: leases take: --client goes with leases return\n"},
		{[]string{"leases", "take", "parts", "2"}, exitUsage, "kvctl: leases take: want --to CLIENT, the client that gets the borrow\nusage: kvctl leases take TREE ID[/REV] --to CLIENT [--reason R] [--ttl D]\n"},
		{[]string{"leases", "take", "parts", "--to", "c1"}, exitUsage, "kvctl: leases take: want TREE and ID[/REV]\n"},
		{[]string{"leases", "take", "parts", "2", "--to", "c1", "--ttl", "soon"}, exitUsage, "kvctl: invalid value \"soon\" for flag -ttl"},
		{[]string{"leases", "take", "parts", "2", "--to", "c1", "--ttl", "-1h"}, exitUsage, "kvctl: leases take: --ttl -1h0m0s: want a positive duration\n"},
		{[]string{"leases", "history", "parts", "2", "--reason", "x"}, exitUsage, "kvctl: leases history: --reason goes with leases return and leases take\n"},
		{[]string{"leases", "history", "parts"}, exitUsage, "kvctl: leases history: want TREE and ID[/REV]\nusage: kvctl leases history TREE ID[/REV]\n"},
		{[]string{"leases", "history", "parts", "x"}, exitUsage, "kvctl: invalid record id \"x\""},
		{[]string{"leases", "history", "parts", "9"}, exitNotFound, "kvctl: parts 9 not found\n"},
		{[]string{"clients", "drop", "c1"}, exitUsage, "kvctl: clients: unknown subcommand \"drop\"\nusage: kvctl clients | clients remove NAME|ID [--reason R]\n"},
		{[]string{"clients", "remove"}, exitUsage, "kvctl: clients remove: want the client's name or ID\n"},
		{[]string{"clients", "--reason", "x"}, exitUsage, "kvctl: clients: --reason goes with clients remove\n"},
		{[]string{"snapshot", "frob", "f"}, exitUsage, "kvctl: snapshot: unknown subcommand \"frob\"\n"},
		{[]string{"snapshot", "restore", "f"}, exitUsage, "kvctl: snapshot restore: --data and --id are required\n"},
		{[]string{"recover", "--data", "d"}, exitUsage, "kvctl: recover: --data and --id are required\n"},
		{[]string{"watch", "-from", "x"}, exitUsage, "kvctl: watch: -from \"x\": want a log index or now\nusage: kvctl watch [TREE] [-from N|now]\n"},
		{[]string{"watch", "a", "b"}, exitUsage, "kvctl: watch: unexpected arguments [\"b\"]\n"},
		{[]string{"hash", "x"}, exitUsage, "kvctl: hash: unexpected arguments [\"x\"]\n"},
		{[]string{"frobnicate"}, exitUsage, "kvctl: unknown command \"frobnicate\"\nrun \"kvctl help\" for usage\n"},
		{[]string{"sttaus"}, exitUsage, "kvctl: unknown command \"sttaus\"; did you mean \"status\"?\nrun \"kvctl help\" for usage\n"},
		{[]string{"lease"}, exitUsage, "kvctl: unknown command \"lease\"; did you mean \"leases\"?\n"},
		{[]string{"help", "gett"}, exitUsage, "kvctl: unknown command \"gett\"; did you mean \"get\"?\n"},
		{[]string{"--timeout", "-1s", "status"}, exitUsage, "kvctl: --timeout -1s: want a positive duration, or 0 for none\n"},
		{[]string{"status", "--timeout", "soon"}, exitUsage, "kvctl: invalid value \"soon\" for flag -timeout"},
		{[]string{}, exitUsage, "Usage: kvctl"},
	} {
		out, errs, code := kv(t, f, "", tc.args...)
		if code != tc.code || !strings.HasPrefix(errs, tc.msg) || out != "" {
			t.Errorf("kvctl %q: code %d, stdout %q, stderr %q; want code %d, stderr %q...",
				tc.args, code, out, errs, tc.code, tc.msg)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		out, errs, code := kv(t, nil, "", args...)
		if code != 0 || errs != "" || out != usageText {
			t.Fatalf("kvctl %q: %d %q", args, code, errs)
		}
	}
	for name := range commands {
		if !strings.Contains(usageText, "\n  "+name) {
			t.Errorf("usage lacks command %q", name)
		}
	}
	for _, sub := range []string{"members remove ID", "leader transfer [ID]", "leases return TREE", "leases take TREE ID[/REV] --to CLIENT", "leases history TREE ID[/REV]",
		"clients remove NAME|ID [--reason R]", "snapshot save FILE", "snapshot restore FILE --data DIR --id ID", "recover --data DIR --id ID", "put TREE JSON|-", "schema TREE [VERSION]", "-limit N", "-all", "watch [TREE] [-from N|now]"} {
		if !strings.Contains(usageText, sub) {
			t.Errorf("usage lacks %q", sub)
		}
	}
}

func TestWatch(t *testing.T) {
	f := newFake(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	at := func(s int) time.Time { return now.Add(time.Duration(s) * time.Second) }
	key := api.Key{ID: 1000, Rev: 1}
	f.events = []eventStep{
		{page: api.EventPage{Next: 58, Events: []api.Event{
			{Index: 57, Type: api.EventCreated, Tree: "parts", Key: key, Client: "c1", Time: at(1)},
			{Index: 58, Type: api.EventBorrowed, Tree: "parts", Key: key, Client: "c1", Time: at(2)},
		}}},
		{page: api.EventPage{Next: 60, Events: []api.Event{
			{Index: 59, Type: api.EventReturned, Tree: "parts", Key: key, Holder: "c1", Forced: true, Reason: "left for the day", Time: at(3)},
		}}},
		{page: api.EventPage{Next: 60}}, // a long poll that found nothing
		{page: api.EventPage{Next: 75, Events: []api.Event{
			{Index: 71, Type: api.EventStateChanged, Tree: "parts", Key: key, Client: "c9", State: 3, Time: at(4)},
			{Index: 72, Type: api.EventClient, Client: "c2", Time: at(5)},
			{Index: 73, Type: api.EventRange, Key: api.Key{ID: 2000}, Client: "c2", Time: at(6)},
			{Index: 74, Type: api.EventSchema, Tree: "parts", Version: 2, Time: at(7)},
			{Index: 75, Type: api.EventUpdated, Tree: "parts", Key: key, Client: "c9", Time: at(8)},
		}}},
		{cancel: cancel}, // SIGINT while waiting
	}
	out, errs, code := kvCtx(ctx, t, f, "", "watch", "parts")
	if code != 0 {
		t.Fatalf("watch: code %d, stderr %s", code, errs)
	}
	want := "2026-11-24T12:00:01Z  57  created        parts  1000/1  ws-7\n" +
		"2026-11-24T12:00:02Z  58  borrowed       parts  1000/1  ws-7\n" +
		"2026-11-24T12:00:03Z  59  returned       parts  1000/1  operator  holder=ws-7 forced reason=\"left for the day\"\n" +
		"2026-11-24T12:00:04Z  71  state_changed  parts  1000/1  c9  state=3\n" +
		"2026-11-24T12:00:05Z  72  client         -  -  laptop\n" +
		"2026-11-24T12:00:06Z  73  range          -  -  laptop  start=2000\n" +
		"2026-11-24T12:00:07Z  74  schema         parts  -  operator  version=2\n" +
		"2026-11-24T12:00:08Z  75  updated        parts  1000/1  c9\n"
	if out != want {
		t.Fatalf("watch output:\n%s\nwant\n%s", out, want)
	}
	if errs != "" {
		t.Fatalf("watch stderr %q", errs)
	}
	// Clients are looked up at the first event, again for the unknown c9
	// (once), and again after the client event of c2.
	var calls []string
	for _, c := range f.calls {
		if strings.HasPrefix(c, "GET /v1/events") || c == "GET /v1/clients" {
			calls = append(calls, c)
		}
	}
	wantCalls := []string{
		"GET /v1/events?from=now&tree=parts&wait=30s", "GET /v1/clients",
		"GET /v1/events?from=58&tree=parts&wait=30s",
		"GET /v1/events?from=60&tree=parts&wait=30s",
		"GET /v1/events?from=60&tree=parts&wait=30s", "GET /v1/clients", "GET /v1/clients",
		"GET /v1/events?from=75&tree=parts&wait=30s",
	}
	if strings.Join(calls, "\n") != strings.Join(wantCalls, "\n") {
		t.Fatalf("calls:\n%s\nwant\n%s", strings.Join(calls, "\n"), strings.Join(wantCalls, "\n"))
	}
}

func TestWatchJSONFrom(t *testing.T) {
	f := newFake(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.events = []eventStep{
		{page: api.EventPage{Next: 9, Events: []api.Event{
			{Index: 6, Type: api.EventReturned, Tree: "t", Key: api.Key{ID: 1, Rev: 1}, Holder: "c1", Forced: true, Time: now},
			{Index: 9, Type: api.EventCreated, Tree: "u", Key: api.Key{ID: 2, Rev: 1}, Time: now},
		}}},
		{cancel: cancel},
	}
	out, errs, code := kvCtx(ctx, t, f, "", "watch", "-from", "5", "-o", "json")
	if code != 0 || errs != "" {
		t.Fatalf("watch json: code %d, stderr %s", code, errs)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one JSON object per line, got:\n%s", out)
	}
	var e api.Event
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e.Index != 6 || e.Type != api.EventReturned || !e.Forced || e.Holder != "c1" {
		t.Fatalf("first line %s: %+v %v", lines[0], e, err)
	}
	if lines[1] != `{"index":9,"type":"created","tree":"u","key":{"id":2,"rev":1},"time":"2026-11-24T12:00:00Z"}` {
		t.Fatalf("second line %s", lines[1])
	}
	if f.calls[0] != "GET /v1/events?from=5&wait=30s" || f.calls[1] != "GET /v1/events?from=9&wait=30s" {
		t.Fatalf("calls %q", f.calls)
	}
}

// Several events of one log entry (a batch entry's creates) are all
// printed, and a page that overlaps the last one prints none twice.
func TestWatchEventsSharingAnIndex(t *testing.T) {
	f := newFake(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ev := func(index, id uint64) api.Event {
		return api.Event{Index: index, Type: api.EventCreated, Tree: "t", Key: api.Key{ID: id, Rev: 1}, Time: now}
	}
	f.events = []eventStep{
		{page: api.EventPage{Next: 9, Events: []api.Event{ev(9, 1), ev(9, 2), ev(9, 3)}}},
		{page: api.EventPage{Next: 10, Events: []api.Event{ev(9, 2), ev(9, 3), ev(10, 4), ev(10, 5)}}},
		{cancel: cancel},
	}
	out, errs, code := kvCtx(ctx, t, f, "", "watch", "-from", "5", "-o", "json")
	if code != 0 || errs != "" {
		t.Fatalf("watch: code %d, stderr %s", code, errs)
	}
	var ids []uint64
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var e api.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		ids = append(ids, e.Key.ID)
	}
	if fmt.Sprint(ids) != "[1 2 3 4 5]" {
		t.Fatalf("printed the events of records %v, want [1 2 3 4 5]:\n%s", ids, out)
	}
}

func TestWatchErrorExits(t *testing.T) {
	f := newFake(t, 0)
	f.events = []eventStep{{err: api.Errorf(api.CodeInternal, "disk on fire")}}
	_, errs, code := kv(t, f, "", "watch")
	if code != exitError || errs != "kvctl: disk on fire\n" {
		t.Fatalf("watch on a failing server: %d %q", code, errs)
	}
}

func TestHash(t *testing.T) {
	f := newFake(t, 0)
	out, _, code := kv(t, f, "", "hash")
	if code != 0 || out != "node   n1\nindex  120\nhash   9f86d081884c7d65\n" {
		t.Fatalf("hash: %d %q", code, out)
	}
	out, _, code = kv(t, f, "", "hash", "-o", "json")
	var h api.ContentHash
	if code != 0 || json.Unmarshal([]byte(out), &h) != nil || h != (api.ContentHash{Index: 120, Hash: "9f86d081884c7d65", Node: "n1"}) {
		t.Fatalf("hash json: %d %s", code, out)
	}
}

// Record types written by Go code, as package typed stores them: CBOR maps
// keyed by codec tag, with nested structs, slices, integer-keyed maps and
// a recursive pointer.
type (
	Dims struct {
		W float64 `codec:"w"`
		H float64 `codec:"h"`
	}
	Lot struct {
		Code string `codec:"code"`
		Qty  uint32 `codec:"qty"`
	}
	Bin struct {
		Count int64 `codec:"count"`
	}
	Part struct {
		Name  string      `codec:"name"`
		Dims  Dims        `codec:"dims"`
		Lots  []Lot       `codec:"lots"`
		Stock map[int]Bin `codec:"stock"`
		Alt   *Part       `codec:"alt,omitempty"`
		Made  time.Time   `codec:"made"`
	}
	// PartV2 is the next version of Part: a field added, Dims renamed in
	// Go under the same key.
	PartV2 struct {
		Name   string      `codec:"name"`
		Size   Dims        `codec:"dims"`
		Lots   []Lot       `codec:"lots"`
		Stock  map[int]Bin `codec:"stock"`
		Alt    *PartV2     `codec:"alt,omitempty"`
		Made   time.Time   `codec:"made"`
		Colour string      `json:"color"`
	}
)

// definition returns the encoded schema definition of T with its Go names,
// as registered before definitions were registered as shapes (without
// them).
func definition[T any](t *testing.T) []byte {
	t.Helper()
	d, err := schema.Extract(reflect.TypeFor[T]())
	if err != nil {
		t.Fatal(err)
	}
	b, err := api.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSchema(t *testing.T) {
	f := newFake(t, 0)
	d1, d2 := definition[Part](t), definition[PartV2](t)
	f.schemas = []api.Schema{
		{Tree: "parts", Version: 1, Hash: schema.Hash(d1), Definition: d1, Registered: now.Add(-2 * time.Hour)},
		{Tree: "parts", Version: 2, Hash: schema.Hash(d2), Definition: d2, Registered: now.Add(-30 * time.Minute)},
	}
	const pkg = "github.com/shelfdb/shelf/cmd/kvctl."
	v2 := "parts version 2  registered 2026-11-24T11:30:00Z (30m ago)  root " + pkg + "PartV2  hash " + schema.Hash(d2)[:12] + "\n" +
		"PATH           GO             TYPE\n" +
		"name           Name           string\n" +
		"dims           Size           struct " + pkg + "Dims\n" +
		"dims.w         Size.W         float64\n" +
		"dims.h         Size.H         float64\n" +
		"lots           Lots           []struct " + pkg + "Lot\n" +
		"lots[].code    Lots[].Code    string\n" +
		"lots[].qty     Lots[].Qty     uint32\n" +
		"stock          Stock          map[int64]struct " + pkg + "Bin\n" +
		"stock{}.count  Stock{}.Count  int64\n" +
		"alt            Alt            *struct " + pkg + "PartV2 (recursive)\n" +
		"made           Made           time\n" +
		"color          Colour         string\n"
	out, errs, code := kv(t, f, "", "schema", "parts", "2")
	if code != 0 || out != v2 {
		t.Fatalf("schema parts 2: code %d, stderr %s\n%s\nwant\n%s", code, errs, out, v2)
	}
	out, _, code = kv(t, f, "", "schema", "parts")
	if code != 0 || !strings.HasPrefix(out, "parts version 1  registered 2026-11-24T10:00:00Z (2h ago)  root "+pkg+"Part  hash ") ||
		!strings.HasSuffix(out, "\n\n"+v2) {
		t.Fatalf("schema parts:\n%s", out)
	}
	wantLines(t, out, "dims           Dims           struct "+pkg+"Dims\n", "dims.w         Dims.W         float64\n",
		"alt            Alt            *struct "+pkg+"Part (recursive)\n")

	out, _, code = kv(t, f, "", "-o", "json", "schema", "parts")
	var vs []struct {
		Tree       string    `json:"tree"`
		Version    uint32    `json:"version"`
		Registered time.Time `json:"registered"`
		Hash       string    `json:"hash"`
		Root       string    `json:"root"`
		Fields     []struct {
			Path, Go, Type string
			Recursive      bool
		} `json:"fields"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &vs) != nil || len(vs) != 2 {
		t.Fatalf("schema json: %d\n%s", code, out)
	}
	if v := vs[1]; v.Tree != "parts" || v.Version != 2 || !v.Registered.Equal(now.Add(-30*time.Minute)) ||
		v.Hash != schema.Hash(d2) || v.Root != pkg+"PartV2" || len(v.Fields) != 12 {
		t.Fatalf("schema json version 2: %+v", v)
	}
	if f := vs[0].Fields[8]; f.Path != "stock{}.count" || f.Go != "Stock{}.Count" || f.Type != "int64" || f.Recursive {
		t.Fatalf("schema json field: %+v", f)
	}
	if f := vs[0].Fields[9]; f.Path != "alt" || f.Type != "*struct "+pkg+"Part" || !f.Recursive {
		t.Fatalf("schema json recursive field: %+v", f)
	}
	if !strings.Contains(out, `
      {
        "path": "lots[].code",
        "go": "Lots[].Code",
        "type": "string"
      },`) {
		t.Fatalf("schema json field shape:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"schema", "tools"}, exitNotFound, "kvctl: tree \"tools\" not found\n"},
		{[]string{"schema", "parts", "3"}, exitNotFound, "kvctl: tree \"parts\" has no schema version 3 (registered: 1,2)\n"},
		{[]string{"schema", "parts", "v1"}, exitUsage, "kvctl: schema: invalid version \"v1\": want a positive integer\nusage: kvctl schema TREE [VERSION]\n"},
		{[]string{"schema"}, exitUsage, "kvctl: schema: missing arguments\nusage: kvctl schema TREE [VERSION]\n"},
	} {
		out, errs, code := kv(t, f, "", tc.args...)
		if code != tc.code || errs != tc.msg || out != "" {
			t.Errorf("kvctl %q: code %d, stdout %q, stderr %q; want code %d, stderr %q", tc.args, code, out, errs, tc.code, tc.msg)
		}
	}

	// A definition that does not decode names the tree and the version.
	f.schemas[1].Definition = []byte{0xa1, 0x64, 'r', 'o', 'o', 't', 0x01}
	_, errs, code = kv(t, f, "", "schema", "parts")
	if code != exitError || !strings.HasPrefix(errs, "kvctl: schema version 2 of tree \"parts\" does not decode: ") {
		t.Fatalf("undecodable definition: %d %q", code, errs)
	}

	f.schemas = nil
	out, _, code = kv(t, f, "", "schema", "parts")
	if code != 0 || out != "tree parts has no registered schema: its records are schemaless\n" {
		t.Fatalf("no schema: %d %q", code, out)
	}
	out, _, code = kv(t, f, "", "schema", "parts", "-o", "json")
	if code != 0 || out != "[]\n" {
		t.Fatalf("no schema json: %d %q", code, out)
	}
}

// TestTypedRecordsOnServer checks that get, list and schema show records a
// Go program wrote with a registered schema, on a real node.
func TestTypedRecordsOnServer(t *testing.T) {
	s := testserver.Start(t)
	db := testserver.Open(t, t.TempDir(), s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	parts := db.Tree("parts")
	v, err := parts.RegisterSchema(ctx, definition[Part](t))
	if err != nil {
		t.Fatal(err)
	}
	p := Part{Name: "R1", Dims: Dims{W: 1.5, H: 2}, Lots: []Lot{{Code: "L1", Qty: 5}},
		Stock: map[int]Bin{7: {Count: 3}, -2: {Count: 1}}, Made: now}
	data, err := api.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	res, err := parts.Create(ctx, v, data)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"dims":{"h":2,"w":1.5},"lots":[{"code":"L1","qty":5}],"made":"2026-11-24T12:00:00Z",` +
		`"name":"R1","stock":{"-2":{"count":1},"7":{"count":3}}}`
	compact := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	run := func(args ...string) string {
		t.Helper()
		out, errs, code := kvAt(ctx, t, s.Addr, "", args...)
		if code != 0 {
			t.Fatalf("kvctl %q: code %d, stderr %s", args, code, errs)
		}
		return out
	}

	out := run("get", "parts", res.Key.String())
	_, value, ok := strings.Cut(out, "value\n")
	var got any
	if !ok || json.Unmarshal([]byte(value), &got) != nil || compact(got) != want {
		t.Fatalf("get table:\n%s\nwant value %s", out, want)
	}
	wantLines(t, out, "schema       1\n")

	var rec api.Record
	out = run("get", "parts", strconv.FormatUint(res.Key.ID, 10), "-o", "json")
	if json.Unmarshal([]byte(out), &rec) != nil || rec.Schema != 1 || compact(rec.Value) != want {
		t.Fatalf("get json:\n%s", out)
	}

	var page struct {
		Records []api.Record `json:"records"`
	}
	out = run("list", "parts", "-o", "json")
	if json.Unmarshal([]byte(out), &page) != nil || len(page.Records) != 1 || compact(page.Records[0].Value) != want {
		t.Fatalf("list json:\n%s", out)
	}
	out = run("list", "parts")
	if lines := strings.Split(out, "\n"); len(lines) != 3 || !strings.HasSuffix(lines[1], want[:57]+"...") {
		t.Fatalf("list table:\n%s", out)
	}

	out = run("schema", "parts")
	wantLines(t, out, "parts version 1  registered ", "  root github.com/shelfdb/shelf/cmd/kvctl.Part  hash ")
	var rows []string
	for _, l := range strings.Split(out, "\n")[1:] {
		rows = append(rows, strings.Join(strings.Fields(l), " "))
	}
	if got := strings.Join(rows, "\n"); !strings.Contains(got, "stock Stock map[int64]struct github.com/shelfdb/shelf/cmd/kvctl.Bin\n"+
		"stock{}.count Stock{}.Count int64\n") || !strings.Contains(got, "lots[].qty Lots[].Qty uint32\n") {
		t.Fatalf("schema table:\n%s", out)
	}

	// A tree without a schema, and one that does not exist.
	if _, err := db.Tree("tools").Create(ctx, 0, data); err != nil {
		t.Fatal(err)
	}
	if out := run("schema", "tools", "-o", "json"); out != "[]\n" {
		t.Fatalf("schema of a schemaless tree: %q", out)
	}
	_, errs, code := kvAt(ctx, t, s.Addr, "", "schema", "nope")
	if code != exitNotFound || !strings.Contains(errs, `"nope"`) {
		t.Fatalf("schema of a missing tree: %d %q", code, errs)
	}
}

// TestBorrowAdminOnServer runs leases take, leases history, ranges and
// clients remove against a real node.
func TestBorrowAdminOnServer(t *testing.T) {
	s := testserver.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl := api.NewClient(s.Addr, nil)
	must := func(_ api.WriteResult, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ws, err := cl.RegisterClient(ctx, "ws-7")
	if err != nil {
		t.Fatal(err)
	}
	laptop, err := cl.RegisterClient(ctx, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	var keys []api.Key
	for i := range 3 {
		res, err := cl.Create(ctx, "parts", api.WriteRequest{Data: mustJSON(t, i)})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, res.Key)
	}
	id := func(k api.Key) string { return strconv.FormatUint(k.ID, 10) }
	// kvctl with the real clock, since the server uses it.
	run := func(wantCode int, args ...string) (string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		c := &cli{stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
			getenv: func(k string) string { return map[string]string{"SHELF_HTTP": s.Addr}[k] }, now: time.Now}
		if code := c.main(ctx, args); code != wantCode {
			t.Fatalf("kvctl %q: code %d, want %d; stdout:\n%s\nstderr: %s", args, code, wantCode, out.String(), errb.String())
		}
		return out.String(), errb.String()
	}
	historyActions := func(k api.Key) []string {
		t.Helper()
		out, _ := run(0, "leases", "history", "parts", k.String(), "-o", "json")
		var h []api.AuditEntry
		if err := json.Unmarshal([]byte(out), &h); err != nil {
			t.Fatalf("history json: %v\n%s", err, out)
		}
		var acts []string
		for _, a := range h {
			if a.Tree != "parts" || a.Key != k || a.Index == 0 || a.Time.IsZero() {
				t.Errorf("history entry %+v", a)
			}
			acts = append(acts, string(a.Action))
		}
		return acts
	}

	// A record never borrowed has no history.
	if out, _ := run(0, "leases", "history", "parts", id(keys[0])); out != "parts "+keys[0].String()+" has no borrow history\n" {
		t.Fatalf("empty history: %q", out)
	}
	if out, _ := run(0, "leases", "history", "parts", keys[0].String(), "-o", "json"); out != "[]\n" {
		t.Fatalf("empty history json: %q", out)
	}

	// leases shows the holder's name and id, since and expiry.
	must(cl.Borrow(ctx, "parts", keys[0], ws.ID, time.Hour))
	out, _ := run(0, "leases", "parts")
	lines := strings.Split(out, "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "TREE RECORD HOLDER HOLDER ID SINCE EXPIRES" ||
		!regexp.MustCompile(`^parts +1/1 +ws-7 +`+ws.ID+` +(now|\d+s ago) +in 59m$`).MatchString(lines[1]) {
		t.Fatalf("leases:\n%s", out)
	}

	// take moves the borrow, by the new holder's name or id.
	out, _ = run(0, "leases", "take", "parts", id(keys[0]), "--to", "laptop", "--reason", "ws-7 is away", "--ttl", "2h")
	if !strings.HasPrefix(out, "borrow of parts 1/1 moved from ws-7 ("+ws.ID+") to laptop ("+laptop.ID+"), expires 20") ||
		!strings.HasSuffix(out, " (in 1h)\n") {
		t.Fatalf("take: %q", out)
	}
	out, _ = run(0, "leases", "-o", "json")
	var bs []api.Borrow
	if err := json.Unmarshal([]byte(out), &bs); err != nil || len(bs) != 1 || bs[0].Client != laptop.ID || bs[0].ClientName != "laptop" ||
		time.Until(bs[0].Expires) < 119*time.Minute {
		t.Fatalf("leases after take: %v\n%s", err, out)
	}
	if acts := historyActions(keys[0]); strings.Join(acts, " ") != "borrowed taken" {
		t.Fatalf("history after take: %v", acts)
	}
	out, _ = run(0, "leases", "history", "parts", keys[0].String())
	lines = strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	rfc := `20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ`
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "TIME ACTION HOLDER NEW HOLDER REASON EXPIRES" ||
		!regexp.MustCompile(`^`+rfc+` +borrowed +- +ws-7 +- +`+rfc+`$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^`+rfc+` +taken +ws-7 +laptop +ws-7 is away +`+rfc+`$`).MatchString(lines[2]) {
		t.Fatalf("history table:\n%s", out)
	}
	out, _ = run(0, "-o", "json", "leases", "take", "parts", keys[0].String(), "--to", ws.ID)
	var wr api.WriteResult
	if err := json.Unmarshal([]byte(out), &wr); err != nil || wr.Key != keys[0] || wr.Index == 0 {
		t.Fatalf("take json: %v %s", err, out)
	}
	if out, _ := run(0, "leases", "take", "parts", id(keys[2]), "--to", ws.ID); out != "borrow of parts 3/1 given to ws-7 ("+ws.ID+") (nobody held it)\n" {
		t.Fatalf("take of a free record: %q", out)
	}
	if _, errs := run(exitNotFound, "leases", "take", "parts", id(keys[1]), "--to", "nobody"); !strings.Contains(errs, `"nobody" is not registered`) {
		t.Fatalf("take to an unknown client: %q", errs)
	}

	// History of borrow, return and force-return, through kvctl.
	must(cl.Borrow(ctx, "parts", keys[1], ws.ID, 0))
	if out, _ := run(0, "leases", "return", "parts", id(keys[1]), "--client", ws.ID); out != "returned parts 2/1\n" {
		t.Fatalf("return: %q", out)
	}
	must(cl.Borrow(ctx, "parts", keys[1], laptop.ID, 0))
	run(0, "leases", "return", "parts", id(keys[1]), "--force", "--reason", "left for the day")
	if acts := historyActions(keys[1]); strings.Join(acts, " ") != "borrowed returned borrowed forced" {
		t.Fatalf("history: %v", acts)
	}
	out, _ = run(0, "leases", "history", "parts", id(keys[1]))
	var rows []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n")[1:] {
		rows = append(rows, strings.Join(strings.Fields(l)[1:], " "))
	}
	if want := []string{"borrowed - ws-7 - never", "returned ws-7 - - -", "borrowed - laptop - never", "forced laptop - left for the day -"}; !reflect.DeepEqual(rows, want) {
		t.Fatalf("history rows:\n%s\nwant %q", out, want)
	}

	// Released records cannot be taken: a conflict.
	must(cl.Borrow(ctx, "parts", keys[1], laptop.ID, 0))
	must(cl.Release(ctx, "parts", keys[1], laptop.ID))
	if _, errs := run(exitConflict, "leases", "take", "parts", id(keys[1]), "--to", ws.ID); !strings.Contains(errs, "released") {
		t.Fatalf("take of a released record: %q", errs)
	}

	// clients remove: ws-7 holds 1/1 and 3/1 and has a range with one id used.
	rg, err := cl.GrantRange(ctx, ws.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Create(ctx, "parts", api.WriteRequest{Client: ws.ID, ID: rg.Start, Data: mustJSON(t, "own")}); err != nil {
		t.Fatal(err)
	}
	out, _ = run(0, "ranges")
	if lines := strings.Split(out, "\n"); len(lines) != 3 || !strings.HasSuffix(lines[0], "RETIRED") || !strings.HasSuffix(lines[1], " -") {
		t.Fatalf("ranges before remove:\n%s", out)
	}
	out, _ = run(0, "clients", "remove", ws.ID, "--reason", "left the company")
	lines = strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	end := strconv.FormatUint(rg.End, 10)
	want := []string{
		"removed client ws-7 (" + ws.ID + ")",
		"returned 2 borrows:",
		"TREE RECORD SINCE EXPIRES",
		"parts 1/1 ", "parts 3/1 ",
		"retired 1 range (their unused ids are never used):",
		"START END SIZE USED NEXT",
		strconv.FormatUint(rg.Start, 10) + " " + end + " 100 1 " + strconv.FormatUint(rg.Start+1, 10),
	}
	if len(lines) != len(want) {
		t.Fatalf("clients remove:\n%s", out)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Fatalf("clients remove line %d %q, want %q...:\n%s", i, lines[i], want[i], out)
		}
	}
	// Its borrows are returned, its range retired, it is gone.
	if out, _ := run(0, "leases", "-o", "json"); out != "[]\n" {
		t.Fatalf("leases after remove: %q", out)
	}
	if out, _ := run(0, "leases"); strings.Join(strings.Fields(out), " ") != "TREE RECORD HOLDER HOLDER ID SINCE EXPIRES" {
		t.Fatalf("leases table after remove: %q", out)
	}
	out, _ = run(0, "ranges", ws.ID)
	if lines := strings.Split(out, "\n"); len(lines) != 3 || !strings.HasPrefix(lines[1], ws.ID+" ") || !strings.HasSuffix(lines[1], " yes") {
		t.Fatalf("ranges after remove:\n%s", out)
	}
	out, _ = run(0, "ranges", "-o", "json")
	var rs []api.Range
	if err := json.Unmarshal([]byte(out), &rs); err != nil || len(rs) != 1 || !rs[0].Retired {
		t.Fatalf("ranges json after remove: %v %s", err, out)
	}
	if out, _ := run(0, "clients", "-o", "json"); strings.Contains(out, ws.ID) {
		t.Fatalf("clients after remove:\n%s", out)
	}
	// The history shows the removal, the removed holder by id.
	out, _ = run(0, "leases", "history", "parts", id(keys[2]))
	if lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); len(lines) != 3 ||
		strings.Join(strings.Fields(lines[2])[1:], " ") != "client_removed "+ws.ID+" - left the company -" {
		t.Fatalf("history after remove:\n%s", out)
	}
	out, errs := run(exitNotFound, "clients", "remove", ws.ID)
	if out != "" || errs != "kvctl: remove-client: client \""+ws.ID+"\" is not registered\n" {
		t.Fatalf("clients remove again: %q %q", out, errs)
	}

	// A client without borrows or ranges, in JSON; two clients of one
	// name must be named by id.
	out, _ = run(0, "clients", "remove", "laptop", "-o", "json") // by name
	var rm struct {
		Client   string       `json:"client"`
		Name     string       `json:"name"`
		Index    uint64       `json:"index"`
		Returned []api.Borrow `json:"returned"`
		Retired  []api.Range  `json:"retired"`
	}
	if err := json.Unmarshal([]byte(out), &rm); err != nil || rm.Client != laptop.ID || rm.Name != "laptop" || rm.Index == 0 ||
		rm.Returned == nil || len(rm.Returned) != 0 || rm.Retired == nil || len(rm.Retired) != 0 {
		t.Fatalf("clients remove json: %v %s", err, out)
	}
	for range 2 {
		if _, err := cl.RegisterClient(ctx, "twin"); err != nil {
			t.Fatal(err)
		}
	}
	if _, errs := run(exitUsage, "leases", "take", "parts", id(keys[0]), "--to", "twin"); !strings.Contains(errs, `2 clients are named "twin"`) {
		t.Fatalf("take to an ambiguous name: %q", errs)
	}
	for _, args := range [][]string{{"ranges", "twin"}, {"clients", "remove", "twin"}, {"leases", "return", "parts", id(keys[0]), "--client", "twin"}} {
		if _, errs := run(exitUsage, args...); !strings.Contains(errs, `2 clients are named "twin" (`) || !strings.Contains(errs, "give the id") {
			t.Fatalf("kvctl %q with an ambiguous name: %q", args, errs)
		}
	}
	// A name or id that is no client is not found, not an empty list.
	if out, errs := run(exitNotFound, "ranges", "NOSUCH"); out != "" || errs != "kvctl: client NOSUCH not found\n" {
		t.Fatalf("ranges NOSUCH: %q %q", out, errs)
	}
	if _, errs := run(exitNotFound, "ranges", "laptop"); errs != "kvctl: client laptop not found\n" {
		t.Fatalf("ranges of a removed client's name: %q", errs)
	}
	if _, errs := run(exitNotFound, "clients", "remove", "NOSUCH"); !strings.Contains(errs, "NOSUCH") {
		t.Fatalf("clients remove NOSUCH: %q", errs)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := api.EncodeValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
