package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
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
		f.reply(w, http.StatusOK, []api.ClientInfo{{ID: "c1", Name: "ws-7", Registered: now.Add(-48 * time.Hour)}})
	})
	mux.HandleFunc("GET /v1/ranges", func(w http.ResponseWriter, r *http.Request) {
		f.reply(w, http.StatusOK, []api.Range{{Start: 1000, End: 2000, Client: "c1", Granted: now.Add(-time.Hour), Used: 250, Next: 1250}})
	})
	mux.HandleFunc("GET /v1/snapshot", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write([]byte("SNAPSHOT-BYTES"))
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
	env := map[string]string{}
	if f != nil {
		env["SHELF_HTTP"] = f.srv.URL
	}
	var out, errb bytes.Buffer
	c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		getenv: func(k string) string { return env[k] }, now: func() time.Time { return now }}
	code = c.main(context.Background(), args)
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
	out, _, code := kv(t, f, "", "leases", "parts")
	want := "TREE   KEY  BORROWER   SINCE   EXPIRES\nparts  2/1  ws-7 (c1)  2m ago  never\n"
	if code != 0 || out != want {
		t.Fatalf("leases: %d\n%s", code, out)
	}
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
	want := "CLIENT     START  END   SIZE  USED       NEXT  GRANTED\nws-7 (c1)  1000   2000  1000  250 (25%)  1250  1h ago\n"
	if code != 0 || out != want {
		t.Fatalf("ranges: %d\n%s", code, out)
	}
	out, _, code = kv(t, f, "", "clients", "-o", "json")
	if code != 0 || !strings.Contains(out, `"name": "ws-7"`) {
		t.Fatalf("clients json: %d %s", code, out)
	}
	file := filepath.Join(t.TempDir(), "snap.db")
	out, _, code = kv(t, f, "", "snapshot", "save", file)
	if b, err := os.ReadFile(file); code != 0 || err != nil || string(b) != "SNAPSHOT-BYTES" {
		t.Fatalf("snapshot save: %d %v %q", code, err, b)
	}
	if out != "saved snapshot to "+file+" (14 bytes)\n" {
		t.Fatalf("snapshot output %q", out)
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
		{[]string{"leases", "--force"}, exitUsage, "kvctl: leases: --client, --force and --reason go with leases return\n"},
		{[]string{"snapshot", "restore", "f"}, exitUsage, "kvctl: snapshot: unknown subcommand \"restore\"\n"},
		{[]string{"frobnicate"}, exitUsage, "kvctl: unknown command \"frobnicate\"\n\nUsage: kvctl"},
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
	for _, args := range [][]string{{"help"}, {"-h"}, {"list", "-h"}} {
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
	for _, sub := range []string{"members remove ID", "leader transfer [ID]", "leases return TREE", "snapshot save FILE", "put TREE JSON|-", "-limit N", "-all"} {
		if !strings.Contains(usageText, sub) {
			t.Errorf("usage lacks %q", sub)
		}
	}
}
