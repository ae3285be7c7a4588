package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/fsm"
	"github.com/shelfdb/shelf/internal/httpapi"
	"github.com/shelfdb/shelf/internal/testlog"
)

// env is one bootstrapped node behind an httptest.Server.
type env struct {
	t    testing.TB
	node *cluster.Node
	srv  *httptest.Server
	cl   *api.Client
	stop chan struct{} // closing it ends pending long polls
}

func newEnv(t testing.TB, maxBody int64) *env {
	t.Helper()
	return newEnvWith(t, func(c *cluster.Config, h *httpapi.Config) { h.MaxBody = maxBody })
}

// newEnvWith is newEnv with changes to the node's and the handler's
// configuration.
func newEnvWith(t testing.TB, tune func(*cluster.Config, *httpapi.Config)) *env {
	t.Helper()
	logger := testlog.New(t)
	ccfg := cluster.Config{
		NodeID:             "h1",
		DataDir:            filepath.Join(t.TempDir(), "h1"),
		RaftAddr:           "127.0.0.1:0",
		GossipAddr:         "127.0.0.1:0",
		Bootstrap:          true,
		Logger:             logger,
		HeartbeatTimeout:   100 * time.Millisecond,
		ElectionTimeout:    100 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		ReconcileInterval:  100 * time.Millisecond,
		SnapshotThreshold:  1 << 20, // snapshots only when the test asks
		TrailingLogs:       2,
		NoSync:             true,
	}
	stop := make(chan struct{})
	hcfg := httpapi.Config{Logger: logger, Stopping: stop}
	tune(&ccfg, &hcfg)
	node, err := cluster.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	hcfg.Node = node
	srv := httptest.NewServer(httpapi.New(hcfg))
	t.Cleanup(func() {
		srv.Close()
		if err := node.Shutdown(); err != nil {
			t.Error(err)
		}
	})
	e := &env{t: t, node: node, srv: srv, cl: api.NewClient(srv.URL, srv.Client()), stop: stop}
	deadline := time.Now().Add(10 * time.Second)
	for node.ClusterID() == "" || !node.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("node did not become leader with a cluster id")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return e
}

// do sends a request; body is sent as is with contentType (if any).
func (e *env) do(method, path, contentType, accept string, body []byte) (int, http.Header, []byte) {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// json sends a JSON request and decodes the JSON answer into out (if not
// nil), failing unless the status is want.
func (e *env) json(method, path, body string, want int, out any) []byte {
	e.t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	status, h, ans := e.do(method, path, "application/json", "", b)
	if status != want {
		e.t.Fatalf("%s %s %s: status %d, want %d: %s", method, path, body, status, want, ans)
	}
	if len(ans) > 0 && !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		e.t.Fatalf("%s %s: content type %q", method, path, h.Get("Content-Type"))
	}
	if out != nil {
		if err := json.Unmarshal(ans, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, ans, err)
		}
	}
	return ans
}

// apiErr sends a JSON request that must fail with status and code.
func (e *env) apiErr(method, path, body string, status int, code api.Code) api.Error {
	e.t.Helper()
	var ae api.Error
	e.json(method, path, body, status, &ae)
	if ae.Code != code {
		e.t.Fatalf("%s %s %s: code %q (%s), want %q", method, path, body, ae.Code, ae.Message, code)
	}
	if ae.Message == "" {
		e.t.Errorf("%s %s: error without message", method, path)
	}
	return ae
}

func TestRecordLifecycleJSON(t *testing.T) {
	e := newEnv(t, 0)
	var cl api.ClientInfo
	e.json("POST", "/v1/clients", `{"name":"workstation-7"}`, 201, &cl)
	if cl.ID == "" || cl.Name != "workstation-7" {
		t.Fatalf("client %+v", cl)
	}
	c := cl.ID

	var wr api.WriteResult
	e.json("POST", "/v1/trees/parts/records", `{"client":"`+c+`","value":{"name":"R1","qty":3,"tags":["a"],"w":1.5}}`, 201, &wr)
	if wr.Key != (api.Key{ID: 1, Rev: 1}) || wr.Index == 0 {
		t.Fatalf("create: %+v", wr)
	}
	var rec struct {
		api.Record
		Value map[string]any `json:"value"`
	}
	e.json("GET", "/v1/trees/parts/records/1", "", 200, &rec)
	if rec.Value["name"] != "R1" || rec.Value["qty"] != float64(3) || rec.Value["w"] != 1.5 || rec.CreatedBy != c {
		t.Fatalf("get: %+v", rec)
	}
	// Whole JSON numbers are stored as CBOR integers.
	if r, err := e.node.FSM().Get("parts", wr.Key); err != nil {
		t.Fatal(err)
	} else if v, _ := api.DecodeValue(r.Data); fmt.Sprintf("%T", v.(map[string]any)["qty"]) == "float64" {
		t.Errorf("qty stored as float: %#v", v)
	}
	e.json("GET", "/v1/trees/parts/records/1/1", "", 200, &rec)

	e.apiErr("PUT", "/v1/trees/parts/records/1/1", `{"client":"`+c+`","value":{"name":"R1","qty":4}}`, 409, api.CodeNotBorrowed)
	e.json("POST", "/v1/trees/parts/records/1/1/borrow", `{"client":"`+c+`","ttl":"1h"}`, 200, nil)
	var borrows []api.Borrow
	e.json("GET", "/v1/borrows?tree=parts", "", 200, &borrows)
	if len(borrows) != 1 || borrows[0].Client != c || borrows[0].Expires.IsZero() {
		t.Fatalf("borrows: %+v", borrows)
	}
	e.json("PUT", "/v1/trees/parts/records/1/1", `{"client":"`+c+`","value":{"name":"R1","qty":4}}`, 200, &wr)
	e.json("GET", "/v1/trees/parts/records/1", "", 200, &rec)
	if rec.Value["qty"] != float64(4) {
		t.Fatalf("after update: %+v", rec.Value)
	}
	e.json("POST", "/v1/trees/parts/records/1/1/return", `{"client":"`+c+`"}`, 200, nil)
	e.apiErr("PUT", "/v1/trees/parts/records/1/1", `{"client":"`+c+`","value":{"qty":5}}`, 409, api.CodeNotBorrowed)

	// Operator force-return of somebody's borrow.
	e.json("POST", "/v1/trees/parts/records/1/1/borrow", `{"client":"`+c+`"}`, 200, nil)
	e.json("POST", "/v1/trees/parts/records/1/1/force-return", `{"reason":"left for holidays"}`, 200, nil)
	e.json("GET", "/v1/borrows", "", 200, &borrows)
	if len(borrows) != 0 {
		t.Fatalf("borrows after force-return: %+v", borrows)
	}

	e.json("POST", "/v1/trees/parts/records/1/1/borrow", `{"client":"`+c+`"}`, 200, nil)
	e.json("POST", "/v1/trees/parts/records/1/1/release", `{"client":"`+c+`"}`, 200, nil)
	e.apiErr("PUT", "/v1/trees/parts/records/1/1", `{"client":"`+c+`","value":{"qty":5}}`, 409, api.CodeReleased)
	e.json("POST", "/v1/trees/parts/records/1/1/state", `{"client":"`+c+`","state":3}`, 200, nil)
	e.json("GET", "/v1/trees/parts/records/1/1", "", 200, &rec)
	if !rec.Released || rec.State != 3 {
		t.Fatalf("released record: %+v", rec.Record)
	}

	e.json("POST", "/v1/trees/parts/records/1/1/revise", `{"client":"`+c+`"}`, 200, &wr)
	if wr.Key != (api.Key{ID: 1, Rev: 2}) {
		t.Fatalf("revise: %+v", wr)
	}
	e.json("PUT", "/v1/trees/parts/records/1/2", `{"client":"`+c+`","value":{"name":"R1 v2"}}`, 200, nil)
	e.json("GET", "/v1/trees/parts/records/1", "", 200, &rec)
	if rec.Key.Rev != 2 || rec.Value["name"] != "R1 v2" {
		t.Fatalf("latest revision: %+v", rec)
	}
	e.apiErr("DELETE", "/v1/trees/parts/records/1/2?client=nobody", "", 409, api.CodeNotBorrowed)
	e.json("DELETE", "/v1/trees/parts/records/1/2?client="+c, "", 200, nil)
	e.apiErr("GET", "/v1/trees/parts/records/1/2", "", 404, api.CodeNotFound)
	e.json("GET", "/v1/trees/parts/records/1", "", 200, &rec)
	if rec.Key.Rev != 1 {
		t.Fatalf("latest after delete: %+v", rec.Key)
	}

	var trees []api.Tree
	e.json("GET", "/v1/trees", "", 200, &trees)
	if len(trees) != 1 || trees[0].Name != "parts" || trees[0].Records != 1 {
		t.Fatalf("trees: %+v", trees)
	}
	var clients []api.ClientInfo
	e.json("GET", "/v1/clients", "", 200, &clients)
	if len(clients) != 1 || clients[0].ID != c {
		t.Fatalf("clients: %+v", clients)
	}
}

func TestCBORClient(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	cl, err := e.cl.RegisterClient(ctx, "lib")
	if err != nil {
		t.Fatal(err)
	}
	rg, err := e.cl.GrantRange(ctx, cl.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rg.Size() != httpapi.DefaultRangeSize || rg.Client != cl.ID {
		t.Fatalf("range %+v", rg)
	}
	if _, err := e.cl.GrantRange(ctx, cl.ID, httpapi.MaxRangeSize+1); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("oversize range: %v", err)
	}
	ranges, err := e.cl.Ranges(ctx, cl.ID)
	if err != nil || len(ranges) != 1 {
		t.Fatalf("ranges %+v %v", ranges, err)
	}

	data, _ := api.EncodeValue(map[string]any{"name": "R1", "qty": 1})
	var keys []api.Key
	for i := range 25 {
		req := api.WriteRequest{Client: cl.ID, Data: data}
		if i%2 == 0 {
			req.ID = rg.Start + uint64(i) // from the granted range
		}
		wr, err := e.cl.Create(ctx, "parts", req)
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		keys = append(keys, wr.Key)
	}
	if _, err := e.cl.Create(ctx, "parts", api.WriteRequest{Client: cl.ID, ID: rg.End + 5000, Data: data}); !errors.Is(err, api.ErrNotInRange) {
		t.Errorf("create outside range: %v", err)
	}
	rec, err := e.cl.Get(ctx, "parts", keys[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rec.Data, data) {
		t.Errorf("record data %x, want %x", rec.Data, data)
	}

	// Paging sees every record once, in key order.
	seen := map[api.Key]bool{}
	var after api.Key
	var last api.Key
	pages := 0
	for {
		page, err := e.cl.List(ctx, "parts", after, 10)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range page.Records {
			if seen[r.Key] {
				t.Fatalf("record %v listed twice", r.Key)
			}
			if r.Key.ID < last.ID {
				t.Fatalf("out of order: %v after %v", r.Key, last)
			}
			last = r.Key
			seen[r.Key] = true
			if len(r.Data) == 0 {
				t.Fatalf("record %v without data", r.Key)
			}
		}
		if page.After == "" {
			break
		}
		if after, err = api.ParseKey(page.After); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 25 || pages != 3 {
		t.Errorf("listed %d records in %d pages, want 25 in 3", len(seen), pages)
	}

	k := keys[3]
	if _, err := e.cl.Update(ctx, "parts", k, api.WriteRequest{Client: cl.ID, Data: data}); !errors.Is(err, api.ErrNotBorrowed) {
		t.Fatalf("update without borrow: %v", err)
	}
	if _, err := e.cl.Borrow(ctx, "parts", k, cl.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	data2, _ := api.EncodeValue(map[string]any{"name": "R1", "qty": 2})
	if _, err := e.cl.Update(ctx, "parts", k, api.WriteRequest{Client: cl.ID, Data: data2}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.Release(ctx, "parts", k, cl.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.Update(ctx, "parts", k, api.WriteRequest{Client: cl.ID, Data: data}); !errors.Is(err, api.ErrReleased) {
		t.Fatalf("update after release: %v", err)
	}
	if _, err := e.cl.SetState(ctx, "parts", k, cl.ID, 7); err != nil {
		t.Fatal(err)
	}
	wr, err := e.cl.Revise(ctx, "parts", k, cl.ID)
	if err != nil || wr.Key.Rev != k.Rev+1 {
		t.Fatalf("revise: %+v %v", wr, err)
	}
	if _, err := e.cl.Delete(ctx, "parts", wr.Key, cl.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.Get(ctx, "parts", wr.Key); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if _, err := e.cl.Get(ctx, "nosuch", k); !errors.Is(err, api.ErrTreeNotFound) {
		t.Fatalf("get from unknown tree: %v", err)
	}

	// Schemas: JSON definition answered decoded, hash over the CBOR.
	def, _ := api.EncodeValue(map[string]any{"root": "p", "types": map[string]any{"p": map[string]any{"fields": []any{
		map[string]any{"name": "name", "go": "Name", "type": map[string]any{"kind": "string"}},
		map[string]any{"name": "qty", "go": "Qty", "type": map[string]any{"kind": "int", "bits": 64}},
	}}}})
	sr, err := e.cl.RegisterSchema(ctx, "parts", def)
	if err != nil || sr.Version != 1 {
		t.Fatalf("register schema: %+v %v", sr, err)
	}
	schemas, err := e.cl.Schemas(ctx, "parts")
	if err != nil || len(schemas) != 1 || !bytes.Equal(schemas[0].Definition, def) {
		t.Fatalf("schemas: %+v %v", schemas, err)
	}
	sum := sha256.Sum256(def)
	if schemas[0].Hash != hex.EncodeToString(sum[:]) {
		t.Errorf("schema hash %q", schemas[0].Hash)
	}
	var js []api.Schema
	e.json("GET", "/v1/trees/parts/schemas", "", 200, &js)
	if m, ok := js[0].Value.(map[string]any); !ok || m["types"] == nil {
		t.Errorf("JSON schema definition: %#v", js[0].Value)
	}
	e.json("POST", "/v1/trees/parts/schemas", `{"definition":{"root":"p","types":{"p":{"fields":[{"name":"name","go":"Name","type":{"kind":"string"}}]}}}}`, 200, &sr)
	if sr.Version != 2 {
		t.Errorf("second schema version %d", sr.Version)
	}

	st, err := e.cl.Status(ctx)
	if err != nil || st.State != "Leader" || st.ClusterID == "" || len(st.Members) != 1 || st.Members[0].Health != "alive" {
		t.Fatalf("status: %+v %v", st, err)
	}
	if err := e.cl.RemoveMember(ctx, "nosuch"); !errors.Is(err, api.ErrUnknownMember) {
		t.Errorf("remove unknown member: %v", err)
	}
	if err := e.cl.TransferLeadership(ctx, ""); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("transfer leadership in a one-node cluster: %v", err)
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, 64<<10)
	e.json("POST", "/v1/trees/parts/records", `{"value":{"n":1}}`, 201, nil)

	ae := e.apiErr("POST", "/v1/trees/parts/records", `{"value": {"name": "R1",}`, 400, api.CodeInvalid)
	if !strings.Contains(ae.Message, "malformed JSON") {
		t.Errorf("malformed JSON message: %q", ae.Message)
	}
	ae = e.apiErr("POST", "/v1/trees/parts/records", `{"valeu": 1}`, 400, api.CodeInvalid)
	if !strings.Contains(ae.Message, "valeu") {
		t.Errorf("unknown field message: %q", ae.Message)
	}
	e.apiErr("POST", "/v1/trees/parts/records", `{"id": "x", "value": {"n": 1}}`, 400, api.CodeInvalid)
	e.apiErr("POST", "/v1/trees/parts/records", `{"value": {"n": 1}} {}`, 400, api.CodeInvalid)
	status, _, body := e.do("POST", "/v1/trees/parts/records", api.ContentCBOR, "", []byte{0xff, 0x00})
	if status != 400 || !bytes.Contains(body, []byte("CBOR")) {
		t.Errorf("malformed CBOR: %d %s", status, body)
	}

	big := `{"value":{"s":"` + strings.Repeat("x", 100<<10) + `"}}`
	e.apiErr("POST", "/v1/trees/parts/records", big, 413, api.CodeTooLarge)

	e.apiErr("GET", "/v1/trees/nosuch/records/1", "", 404, api.CodeTreeNotFound)
	e.apiErr("GET", "/v1/trees/nosuch/records", "", 404, api.CodeTreeNotFound)
	e.apiErr("GET", "/v1/trees/parts/records/abc", "", 400, api.CodeInvalid)
	e.apiErr("GET", "/v1/trees/parts/records/0", "", 400, api.CodeInvalid)
	e.apiErr("GET", "/v1/trees/parts/records/1/0", "", 400, api.CodeInvalid)
	e.apiErr("GET", "/v1/trees/parts/records/99", "", 404, api.CodeNotFound)
	e.apiErr("PUT", "/v1/trees/parts/records/x/1", `{"value":1}`, 400, api.CodeInvalid)
	e.apiErr("GET", "/v1/trees/parts/records?limit=-1", "", 400, api.CodeInvalid)
	e.apiErr("GET", "/v1/trees/parts/records?after=zz", "", 400, api.CodeInvalid)
	e.apiErr("POST", "/v1/trees/parts/records/1/1/fly", `{}`, 400, api.CodeInvalid)
	e.apiErr("POST", "/v1/trees/parts/records/1/1/borrow", `{"client":"x","ttl":"soon"}`, 400, api.CodeInvalid)
	e.apiErr("POST", "/v1/trees/bad%20name/records", `{"value":1}`, 400, api.CodeInvalid)
	e.apiErr("GET", "/v1/nope", "", 404, api.CodeNotFound)
	e.apiErr("GET", "/", "", 404, api.CodeNotFound)
	e.apiErr("PATCH", "/v1/status", "", 405, api.CodeMethodNotFound)
	e.apiErr("GET", "/v1/log?from=x", "", 400, api.CodeInvalid)
	e.apiErr("GET", "/v1/log?wait=forever", "", 400, api.CodeInvalid)

	// Errors are CBOR when asked for.
	status, h, body := e.do("GET", "/v1/trees/nosuch/records/1", "", api.ContentCBOR, nil)
	var ae2 api.Error
	if status != 404 || h.Get("Content-Type") != api.ContentCBOR || api.Unmarshal(body, &ae2) != nil || ae2.Code != api.CodeTreeNotFound {
		t.Errorf("CBOR error answer: %d %q %x", status, h.Get("Content-Type"), body)
	}

	// The internal apply route takes CBOR commands only, never set-cluster.
	e.apiErr("POST", "/v1/internal/apply", `{}`, 400, api.CodeInvalid)
	cmd, _ := (&fsm.Command{Op: fsm.OpSetCluster, Cluster: "x"}).Encode()
	if status, _, body := e.do("POST", "/v1/internal/apply", api.ContentCBOR, api.ContentCBOR, cmd); status != 400 {
		t.Errorf("internal set-cluster: %d %x", status, body)
	}
	cmd, _ = (&fsm.Command{Op: fsm.OpRegisterClient, Client: "c-internal", Name: "x"}).Encode()
	status, _, body = e.do("POST", "/v1/internal/apply", api.ContentCBOR, api.ContentCBOR, cmd)
	var res fsm.Result
	if status != 200 || api.Unmarshal(body, &res) != nil || res.Err != nil || res.Index == 0 {
		t.Errorf("internal apply: %d %+v", status, res)
	}
}

func TestLogStream(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	var idx []uint64
	for i := range 5 {
		wr, err := e.cl.Create(ctx, "t", api.WriteRequest{Data: mustValue(t, i)})
		if err != nil {
			t.Fatal(err)
		}
		idx = append(idx, wr.Index)
	}
	page, err := e.cl.Log(ctx, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if page.ClusterID != e.node.ClusterID() || page.Next < idx[4] {
		t.Fatalf("page: %+v", page)
	}
	var got []uint64
	for _, en := range page.Entries {
		c, err := fsm.DecodeCommand(en.Data)
		if err != nil {
			t.Fatal(err)
		}
		if c.Op == fsm.OpCreate {
			got = append(got, en.Index)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(idx) {
		t.Errorf("create entries at %v, want %v", got, idx)
	}
	// Limit and resume.
	p1, err := e.cl.Log(ctx, 0, 2, 0)
	if err != nil || len(p1.Entries) != 2 || p1.Next != p1.Entries[1].Index {
		t.Fatalf("limited page: %+v %v", p1, err)
	}
	p2, err := e.cl.Log(ctx, p1.Next, 1000, 0)
	if err != nil || len(p2.Entries) == 0 || p2.Entries[0].Index <= p1.Next {
		t.Fatalf("next page: %+v %v", p2, err)
	}

	// Nothing new: a short wait returns an empty page.
	end, err := e.cl.Log(ctx, page.Next, 0, 0)
	if err != nil || len(end.Entries) != 0 {
		t.Fatalf("end page %+v %v", end, err)
	}
	start := time.Now()
	p, err := e.cl.Log(ctx, end.Next, 0, 150*time.Millisecond)
	if err != nil || len(p.Entries) != 0 || p.Next != end.Next {
		t.Fatalf("waited page %+v %v", p, err)
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Errorf("long poll returned after %s", time.Since(start))
	}
	// A long poll returns with the next write.
	type result struct {
		p   api.LogPage
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := e.cl.Log(ctx, end.Next, 0, 30*time.Second)
		done <- result{p, err}
	}()
	wr, err := e.cl.Create(ctx, "t", api.WriteRequest{Data: mustValue(t, "new")})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if len(r.p.Entries) == 0 || r.p.Entries[len(r.p.Entries)-1].Index != wr.Index {
			t.Fatalf("long poll page %+v, want the entry at %d", r.p, wr.Index)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("long poll did not return")
	}

	// A server that stops answers pending long polls at once.
	go func() {
		p, err := e.cl.Log(ctx, wr.Index, 0, 50*time.Second)
		done <- result{p, err}
	}()
	close(e.stop)
	select {
	case r := <-done:
		if r.err != nil || len(r.p.Entries) != 0 || r.p.Next != wr.Index {
			t.Fatalf("long poll ended by stop: %+v %v", r.p, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("long poll not ended by stop")
	}

	// Snapshot and compaction: the start of the log is gone.
	if err := e.node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.Log(ctx, 0, 0, 0); !errors.Is(err, api.ErrCompacted) {
		t.Fatalf("log from 0 after compaction: %v, want ErrCompacted", err)
	}
	e.apiErr("GET", "/v1/log?from=0", "", 410, api.CodeCompacted)
	if p, err := e.cl.Log(ctx, wr.Index-1, 0, 0); err != nil || len(p.Entries) != 1 || p.Entries[0].Index != wr.Index {
		t.Fatalf("log near the end after compaction: %+v %v", p, err)
	}

	// The snapshot stream restores into a fresh state machine.
	var buf bytes.Buffer
	if _, err := e.cl.Snapshot(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	f, err := fsm.Open(fsm.Config{Path: filepath.Join(t.TempDir(), "copy.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if f.AppliedIndex() < wr.Index || f.ClusterID() != e.node.ClusterID() {
		t.Errorf("restored copy at %d cluster %q", f.AppliedIndex(), f.ClusterID())
	}
	if _, err := f.Get("t", wr.Key); err != nil {
		t.Errorf("restored copy: %v", err)
	}
}

func mustValue(t testing.TB, v any) []byte {
	t.Helper()
	b, err := api.EncodeValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
