package httpapi_test

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/fsm"
)

// cborDo sends v as a CBOR body and decodes a CBOR answer into out (if
// not nil), failing unless the status is want.
func (e *env) cborDo(method, path string, v any, want int, out any) {
	e.t.Helper()
	b, err := api.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	status, _, ans := e.do(method, path, api.ContentCBOR, api.ContentCBOR, b)
	if status != want {
		var ae api.Error
		_ = api.Unmarshal(ans, &ae)
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, ae.Message)
	}
	if out != nil {
		if err := api.Unmarshal(ans, out); err != nil {
			e.t.Fatalf("%s %s: decode answer: %v", method, path, err)
		}
	}
}

// Writes refused for their content leave no trace in the raft log: a
// value over the record limit (with a body limit above it), a value
// nested 100,000 deep, a reason or a client name too long, a bad op in a
// batch. Raft's last index moves only for what was accepted.
func TestRefusedWritesLeaveNoLogEntry(t *testing.T) {
	e := newEnv(t, 8<<20)
	lastIndex := func() uint64 { return e.node.Status().LastLogIndex }
	var cl api.ClientInfo
	e.json("POST", "/v1/clients", `{"name":"ws"}`, 201, &cl)
	good, _ := api.EncodeValue(map[string]any{"name": "R1"})
	var wr api.WriteResult
	e.cborDo("POST", "/v1/trees/parts/records", api.WriteRequest{Data: good}, 201, &wr)
	before := lastIndex()

	huge, _ := api.EncodeValue(map[string]any{"blob": bytes.Repeat([]byte{7}, 4<<20)})
	deep := append(append([]byte{0xa1, 0x61, 'a'}, bytes.Repeat([]byte{0x81}, 100_000)...), 0)
	var ae api.Error
	e.cborDo("POST", "/v1/trees/parts/records", api.WriteRequest{Data: huge}, 413, &ae)
	e.cborDo("PUT", "/v1/trees/parts/records/1/1", api.WriteRequest{Client: cl.ID, Data: huge}, 413, &ae)
	e.cborDo("POST", "/v1/trees/parts/records", api.WriteRequest{Data: deep}, 400, &ae)
	if !strings.Contains(ae.Message, "nested too deep") {
		t.Errorf("deep value: %q", ae.Message)
	}
	e.json("POST", "/v1/trees/parts/records", `{"value":`+strings.Repeat(`{"a":`, 100)+`1`+strings.Repeat("}", 100)+`}`, 400, nil)
	e.apiErr("POST", "/v1/trees/parts/records/1/1/force-return", `{"reason":"`+strings.Repeat("r", fsm.MaxReason+1)+`"}`, 400, api.CodeInvalid)
	e.apiErr("POST", "/v1/clients", `{"name":"`+strings.Repeat("n", fsm.MaxClientName+1)+`"}`, 400, api.CodeInvalid)
	e.apiErr("POST", "/v1/trees/"+strings.Repeat("t", fsm.MaxTreeName+1)+"/records", `{"value":{"a":1}}`, 400, api.CodeInvalid)
	def, _ := api.EncodeValue(map[string]any{"blob": bytes.Repeat([]byte{7}, 2<<20)})
	e.cborDo("POST", "/v1/trees/parts/schemas", api.SchemaRequest{Definition: def}, 413, &ae)
	if got := lastIndex(); got != before {
		t.Fatalf("refused writes moved raft's last index from %d to %d", before, got)
	}

	// A batch: each op stands alone; only the good one is an entry.
	var br api.BatchResult
	e.cborDo("POST", "/v1/batch", api.BatchRequest{Ops: []api.BatchOp{
		{Op: "create", Tree: "parts", Data: huge},
		{Op: "create", Tree: "parts", Data: good},
		{Op: "create", Tree: "parts", Data: deep},
	}}, 200, &br)
	if len(br.Results) != 3 || br.Results[0].Err == nil || br.Results[0].Err.Code != api.CodeTooLarge ||
		br.Results[1].Err != nil || br.Results[2].Err == nil || br.Results[2].Err.Code != api.CodeInvalid {
		t.Fatalf("batch results: %+v", br.Results)
	}
	if br.Results[0].Index != 0 || br.Results[2].Index != 0 {
		t.Errorf("refused batch ops have log indexes: %+v", br.Results)
	}
	if got := lastIndex(); got != before+1 {
		t.Fatalf("a batch with one good op of three moved raft's last index from %d to %d", before, got)
	}
}

// JSON numbers are stored exactly, or refused naming where; a record
// value is an object; a client has a name.
func TestJSONValuesAreExact(t *testing.T) {
	e := newEnv(t, 0)
	var wr api.WriteResult
	e.json("POST", "/v1/trees/parts/records", `{"value":{"max":18446744073709551615,"big":9223372036854775808,"min":-9223372036854775808,"f":1.5}}`, 201, &wr)
	ans := e.json("GET", "/v1/trees/parts/records/"+wr.Key.String(), "", 200, nil)
	for _, n := range []string{`"max":18446744073709551615`, `"big":9223372036854775808`, `"min":-9223372036854775808`, `"f":1.5`} {
		if !bytes.Contains(ans, []byte(n)) {
			t.Errorf("stored value lost %s: %s", n, ans)
		}
	}
	for _, body := range []string{
		`{"value":{"qty":{"n":18446744073709551616}}}`,
		`{"value":{"qty":{"n":-9223372036854775809}}}`,
		`{"value":{"qty":{"n":1e999}}}`,
	} {
		ae := e.apiErr("POST", "/v1/trees/parts/records", body, 400, api.CodeInvalid)
		if !strings.Contains(ae.Message, `"qty.n"`) || !strings.Contains(ae.Message, "out of range") {
			t.Errorf("%s: %q does not name the field", body, ae.Message)
		}
	}
	for _, body := range []string{`{"value":null}`, `{"value":5}`, `{"value":"x"}`, `{"value":[1]}`, `{}`} {
		ae := e.apiErr("POST", "/v1/trees/parts/records", body, 400, api.CodeInvalid)
		if !strings.Contains(ae.Message, "map of fields") {
			t.Errorf("%s: %q", body, ae.Message)
		}
	}
	for _, body := range []string{``, `{}`, `{"name":""}`} {
		ae := e.apiErr("POST", "/v1/clients", body, 400, api.CodeInvalid)
		if !strings.Contains(ae.Message, "name") {
			t.Errorf("register %q: %q", body, ae.Message)
		}
	}
}

// A record whose value has no JSON view (a NaN, which CBOR has and JSON
// does not) is listed with value_error; the rest of the tree lists.
func TestListMarksRecordWithoutJSONView(t *testing.T) {
	e := newEnv(t, 0)
	nan, _ := api.Marshal(map[string]any{"x": math.NaN()})
	good, _ := api.EncodeValue(map[string]any{"name": "R1"})
	e.cborDo("POST", "/v1/trees/parts/records", api.WriteRequest{Data: nan}, 201, nil)
	e.cborDo("POST", "/v1/trees/parts/records", api.WriteRequest{Data: good}, 201, nil)
	var page struct {
		Records []struct {
			Key        api.Key        `json:"key"`
			Value      map[string]any `json:"value"`
			ValueError string         `json:"value_error"`
		} `json:"records"`
	}
	e.json("GET", "/v1/trees/parts/records", "", 200, &page)
	if len(page.Records) != 2 {
		t.Fatalf("listed %d records, want 2", len(page.Records))
	}
	if r := page.Records[0]; r.Value != nil || !strings.Contains(r.ValueError, "NaN") {
		t.Errorf("record without JSON view: %+v", r)
	}
	if r := page.Records[1]; r.Value["name"] != "R1" || r.ValueError != "" {
		t.Errorf("good record: %+v", r)
	}
	var one struct {
		ValueError string `json:"value_error"`
	}
	e.json("GET", "/v1/trees/parts/records/"+page.Records[0].Key.String(), "", 200, &one)
	if one.ValueError == "" {
		t.Error("get of the record without JSON view: no value_error")
	}
}

// A follower forwards what it took within its body limit as commands,
// which carry a little more (client, session, time): the leader's internal
// routes take twice the limit, so such a batch does not fail there.
func TestForwardedBatchMayExceedTheBodyLimit(t *testing.T) {
	e := newEnv(t, 64<<10)
	var cmds []*fsm.Command
	for range 3 {
		v, _ := api.EncodeValue(map[string]any{"b": bytes.Repeat([]byte{1}, 30<<10)})
		cmds = append(cmds, &fsm.Command{Op: fsm.OpCreate, Tree: "parts", Data: v})
	}
	b, err := api.Marshal(cmds)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) <= 64<<10 {
		t.Fatalf("forwarded batch of %d bytes is within the limit", len(b))
	}
	status, _, ans := e.do("POST", cluster.InternalApplyBatchPath, api.ContentCBOR, api.ContentCBOR, b)
	if status != 200 {
		t.Fatalf("forwarded batch of %d bytes: status %d: %s", len(b), status, ans)
	}
	var res []*fsm.Result
	if err := api.Unmarshal(ans, &res); err != nil || len(res) != 3 {
		t.Fatalf("results %+v %v", res, err)
	}
	for i, r := range res {
		if r.Err != nil || r.Index == 0 {
			t.Errorf("command %d: %+v", i, r)
		}
	}
	// Twice the limit is the end of it.
	big, _ := api.Marshal([]*fsm.Command{{Op: fsm.OpCreate, Tree: "parts", Data: bytes.Repeat([]byte{1}, 130<<10)}})
	if status, _, _ := e.do("POST", cluster.InternalApplyBatchPath, api.ContentCBOR, api.ContentCBOR, big); status != 413 {
		t.Errorf("forwarded body over twice the limit: status %d, want 413", status)
	}
}
