package httpapi_test

import (
	"context"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/internal/httpapi"
)

// register registers a client over JSON and returns its id.
func (e *env) register(name string) string {
	e.t.Helper()
	var cl api.ClientInfo
	e.json("POST", "/v1/clients", `{"name":"`+name+`"}`, 201, &cl)
	return cl.ID
}

// eventsSince returns the events applied after index from.
func (e *env) eventsSince(from uint64) []api.Event {
	e.t.Helper()
	p, err := e.cl.Events(context.Background(), from, 0, 0, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return p.Events
}

func TestTakeOver(t *testing.T) {
	e := newEnv(t, 0)
	c1, c2 := e.register("ws-7"), e.register("laptop")
	e.json("POST", "/v1/trees/parts/records", `{"value":{"name":"R1"}}`, 201, nil)
	e.json("POST", "/v1/trees/parts/records/1/1/borrow", `{"client":"`+c1+`"}`, 200, nil)
	start := e.node.FSM().AppliedIndex()

	before := time.Now()
	var wr api.WriteResult
	e.json("POST", "/v1/trees/parts/records/1/1/take", `{"client":"`+c2+`","reason":"ws-7 is away","ttl":"2h"}`, 200, &wr)
	if wr.Key != (api.Key{ID: 1, Rev: 1}) || wr.Index <= start {
		t.Fatalf("take: %+v", wr)
	}
	var borrows []api.Borrow
	e.json("GET", "/v1/borrows?tree=parts", "", 200, &borrows)
	if len(borrows) != 1 || borrows[0].Client != c2 || borrows[0].ClientName != "laptop" ||
		borrows[0].Expires.Before(before.Add(2*time.Hour)) || borrows[0].Expires.After(time.Now().Add(2*time.Hour)) {
		t.Fatalf("borrows after take: %+v", borrows)
	}
	// The new holder edits, the old one no longer can.
	e.apiErr("PUT", "/v1/trees/parts/records/1/1", `{"client":"`+c1+`","value":{"name":"R1"}}`, 409, api.CodeNotBorrowed)
	e.json("PUT", "/v1/trees/parts/records/1/1", `{"client":"`+c2+`","value":{"name":"R1 fixed"}}`, 200, nil)

	// The old holder's borrow ends forced, with the reason; then the new one starts.
	ev := e.eventsSince(start)
	if len(ev) < 2 || ev[0].Type != api.EventReturned || !ev[0].Forced || ev[0].Holder != c1 || ev[0].Reason != "ws-7 is away" ||
		ev[0].Client != "" || ev[1].Type != api.EventBorrowed || ev[1].Client != c2 || ev[0].Index != wr.Index || ev[1].Index != wr.Index {
		t.Fatalf("take events: %+v", ev)
	}

	// CBOR, through the library: a record nobody holds is simply given.
	e.json("POST", "/v1/trees/parts/records", `{"value":{"name":"R2"}}`, 201, nil)
	ctx := context.Background()
	if _, err := e.cl.TakeOver(ctx, "parts", api.Key{ID: 2, Rev: 1}, c1, "", 0); err != nil {
		t.Fatal(err)
	}
	if bs, err := e.cl.Borrows(ctx, "parts"); err != nil || len(bs) != 2 || bs[1].Client != c1 || !bs[1].Expires.IsZero() {
		t.Fatalf("borrows after take of a free record: %+v %v", bs, err)
	}

	// Refusals.
	e.apiErr("POST", "/v1/trees/parts/records/1/1/take", `{"client":"nobody"}`, 404, api.CodeUnknownClient)
	ae := e.apiErr("POST", "/v1/trees/parts/records/1/1/take", `{"reason":"x"}`, 400, api.CodeInvalid)
	if !strings.Contains(ae.Message, "client") {
		t.Errorf("take without client: %q", ae.Message)
	}
	e.apiErr("POST", "/v1/trees/parts/records/1/1/take", `{"client":"`+c1+`","ttl":"-5m"}`, 400, api.CodeInvalid)
	e.apiErr("POST", "/v1/trees/parts/records/9/1/take", `{"client":"`+c1+`"}`, 404, api.CodeNotFound)
	e.apiErr("POST", "/v1/trees/parts/records/1/1/take", `{"client":"`+c1+`","reason":"`+strings.Repeat("x", 2000)+`"}`, 400, api.CodeInvalid)
	e.json("POST", "/v1/trees/parts/records/1/1/release", `{"client":"`+c2+`"}`, 200, nil)
	if _, err := e.cl.TakeOver(ctx, "parts", api.Key{ID: 1, Rev: 1}, c1, "", 0); !errors.Is(err, api.ErrReleased) {
		t.Fatalf("take of a released record: %v", err)
	}
}

func TestHistory(t *testing.T) {
	e := newEnv(t, 0)
	c1, c2 := e.register("ws-7"), e.register("laptop")
	e.json("POST", "/v1/trees/parts/records", `{"value":{"name":"R1"}}`, 201, nil)
	const path = "/v1/trees/parts/records/1/1/history"

	// Never borrowed: an empty list, [] in JSON.
	if body := e.json("GET", path, "", 200, nil); string(body) != "[]" {
		t.Fatalf("history of a record never borrowed: %s", body)
	}

	before := time.Now().Add(-time.Second)
	for _, step := range []struct{ action, body string }{
		{"borrow", `{"client":"` + c1 + `","ttl":"1h"}`},
		{"borrow", `{"client":"` + c1 + `","ttl":"2h"}`},
		{"return", `{"client":"` + c1 + `"}`},
		{"borrow", `{"client":"` + c2 + `"}`},
		{"force-return", `{"reason":"left for the day"}`},
		{"borrow", `{"client":"` + c2 + `"}`},
		{"take", `{"client":"` + c1 + `","reason":"laptop is broken","ttl":"30m"}`},
	} {
		e.json("POST", "/v1/trees/parts/records/1/1/"+step.action, step.body, 200, nil)
	}
	var got []api.AuditEntry
	e.json("GET", path, "", 200, &got)
	type short struct {
		Action         api.AuditAction
		Client, Holder string
		Reason         string
		HasExpiry      bool
	}
	want := []short{
		{api.AuditBorrowed, c1, "", "", true},
		{api.AuditRenewed, c1, "", "", true},
		{api.AuditReturned, "", c1, "", false},
		{api.AuditBorrowed, c2, "", "", false},
		{api.AuditForced, "", c2, "left for the day", false},
		{api.AuditBorrowed, c2, "", "", false},
		{api.AuditTaken, c1, c2, "laptop is broken", true},
	}
	var have []short
	for i, a := range got {
		have = append(have, short{a.Action, a.Client, a.Holder, a.Reason, !a.Expires.IsZero()})
		if a.Tree != "parts" || a.Key != (api.Key{ID: 1, Rev: 1}) || a.Time.Before(before) || a.Time.After(time.Now()) ||
			(i > 0 && a.Index <= got[i-1].Index) {
			t.Errorf("entry %d: %+v", i, a)
		}
	}
	if !reflect.DeepEqual(have, want) {
		t.Fatalf("history:\n%+v\nwant\n%+v", have, want)
	}
	if d := got[1].Expires.Sub(got[1].Time); d != 2*time.Hour {
		t.Errorf("renewed expiry %v after the entry, want 2h", d)
	}

	// CBOR, through the library: the same entries.
	ctx := context.Background()
	lib, err := e.cl.History(ctx, "parts", api.Key{ID: 1, Rev: 1})
	if err != nil || len(lib) != len(got) {
		t.Fatalf("library history: %d entries, %v", len(lib), err)
	}
	for i := range lib { // CBOR times keep about a microsecond
		if lib[i].Index != got[i].Index || lib[i].Action != got[i].Action || lib[i].Client != got[i].Client ||
			lib[i].Time.Sub(got[i].Time).Abs() > time.Microsecond || lib[i].Expires.IsZero() != got[i].Expires.IsZero() {
			t.Errorf("CBOR entry %d = %+v, JSON %+v", i, lib[i], got[i])
		}
	}

	// A deleted record keeps its history.
	e.json("DELETE", "/v1/trees/parts/records/1/1?client="+url.QueryEscape(c1), "", 200, nil)
	e.json("GET", path, "", 200, &got)
	if last := got[len(got)-1]; len(got) != 8 || last.Action != api.AuditDeleted || last.Holder != c1 {
		t.Fatalf("history after delete: %+v", got)
	}

	e.apiErr("GET", "/v1/trees/parts/records/1/x/history", "", 400, api.CodeInvalid)
	e.apiErr("GET", "/v1/trees/nosuch/records/1/1/history", "", 404, api.CodeTreeNotFound)
	e.apiErr("GET", "/v1/trees/parts/records/99/1/history", "", 404, api.CodeNotFound)
	e.apiErr("POST", path, "", 400, api.CodeInvalid) // "history" is no action
}

func TestRemoveClient(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	c1, c2 := e.register("ws-7"), e.register("laptop")
	rg, err := e.cl.GrantRange(ctx, c1, 100)
	if err != nil {
		t.Fatal(err)
	}
	var keys []api.Key
	for i := range 3 {
		wr, err := e.cl.Create(ctx, "parts", api.WriteRequest{Client: c1, ID: rg.Start + uint64(i), Data: mustValue(t, i)})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, wr.Key)
	}
	for i, k := range keys {
		holder := c1
		if i == 2 {
			holder = c2
		}
		if _, err := e.cl.Borrow(ctx, "parts", k, holder, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	start := e.node.FSM().AppliedIndex()

	var wr api.WriteResult
	e.json("DELETE", "/v1/clients/"+c1+"?reason="+url.QueryEscape("left the company"), "", 200, &wr)
	if wr.Index <= start {
		t.Fatalf("remove: %+v", wr)
	}

	// Its borrows are returned, the other client's stays.
	var borrows []api.Borrow
	e.json("GET", "/v1/borrows", "", 200, &borrows)
	if len(borrows) != 1 || borrows[0].Client != c2 || borrows[0].Key != keys[2] {
		t.Fatalf("borrows after remove: %+v", borrows)
	}
	// Its ranges are retired, in JSON as "retired": true.
	var ranges []map[string]any
	e.json("GET", "/v1/ranges?client="+c1, "", 200, &ranges)
	if len(ranges) != 1 || ranges[0]["retired"] != true || ranges[0]["used"] != 3.0 {
		t.Fatalf("ranges after remove: %v", ranges)
	}
	var clients []api.ClientInfo
	e.json("GET", "/v1/clients", "", 200, &clients)
	if len(clients) != 1 || clients[0].ID != c2 {
		t.Fatalf("clients after remove: %+v", clients)
	}
	h, err := e.cl.History(ctx, "parts", keys[0])
	if last := h[len(h)-1]; err != nil || last.Action != api.AuditClientRemoved || last.Holder != c1 || last.Reason != "left the company" {
		t.Fatalf("history after remove: %+v %v", h, err)
	}
	var types []string
	for _, ev := range e.eventsSince(start) {
		if ev.Index != wr.Index {
			t.Errorf("event of another entry: %+v", ev)
		}
		if ev.Type == api.EventReturned && (!ev.Forced || ev.Holder != c1 || ev.Reason != "left the company") {
			t.Errorf("returned event: %+v", ev)
		}
		if ev.Type == api.EventClientGone && (ev.Client != c1 || ev.Reason != "left the company") {
			t.Errorf("client_removed event: %+v", ev)
		}
		types = append(types, string(ev.Type))
	}
	if strings.Join(types, ",") != "returned,returned,client_removed" {
		t.Fatalf("remove events: %v", types)
	}

	// The client is gone: its requests, and removing it again, are refused.
	if _, err := e.cl.Create(ctx, "parts", api.WriteRequest{Client: c1, ID: rg.Start + 10, Data: mustValue(t, 9)}); err == nil {
		t.Fatal("create by a removed client accepted")
	}
	e.apiErr("DELETE", "/v1/clients/"+c1, "", 404, api.CodeUnknownClient)
	if _, err := e.cl.RemoveClient(ctx, c1, "again"); !errors.Is(err, api.ErrUnknownClient) {
		t.Fatalf("remove again through the library: %v", err)
	}
	e.apiErr("DELETE", "/v1/clients/"+c2+"?reason="+strings.Repeat("x", 2000), "", 400, api.CodeInvalid)
	if _, err := e.cl.RemoveClient(ctx, c2, ""); err != nil {
		t.Fatal(err)
	}
}

// A borrow that asks for no ttl gets the nodes' default; "none" opts out.
func TestDefaultBorrowTTL(t *testing.T) {
	e := newEnvWith(t, func(c *cluster.Config, _ *httpapi.Config) { c.DefaultBorrowTTL = time.Hour })
	ctx := context.Background()
	c := e.register("ws")
	wr, err := e.cl.Create(ctx, "parts", api.WriteRequest{Data: []byte{0x01}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.cl.Borrow(ctx, "parts", wr.Key, c, 0)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := e.cl.Borrows(ctx, "parts")
	if err != nil || len(bs) != 1 || bs[0].Expires.Sub(bs[0].Since) != time.Hour {
		t.Fatalf("borrow with the default ttl: %+v %v (index %d)", bs, err, res.Index)
	}
	var out api.WriteResult
	e.json("POST", "/v1/trees/parts/records/"+wr.Key.String()+"/borrow", `{"client":"`+c+`","ttl":"none"}`, 200, &out)
	if bs, _ := e.cl.Borrows(ctx, "parts"); len(bs) != 1 || !bs[0].Expires.IsZero() {
		t.Fatalf("borrow renewed with ttl none: %+v", bs)
	}
}
