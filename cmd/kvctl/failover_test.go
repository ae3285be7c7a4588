package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/shelfdb/shelf/api"
)

// deadAddr returns an address where nothing listens.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// cutServer accepts requests and closes the connection without an
// answer: the request was sent, its outcome is unknown. It counts them.
func cutServer(t *testing.T) (addr string, hits *atomic.Int32) {
	hits = new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), hits
}

func host(f *fakeAPI) string { return strings.TrimPrefix(f.srv.URL, "http://") }

func TestFailoverAcrossEndpoints(t *testing.T) {
	f := newFake(t, 3)
	dead := deadAddr(t)

	// First endpoint dead: -s and SHELF_HTTP both take a list.
	out, errs, code := kvAt(context.Background(), t, "", "", "-s", dead+","+host(f), "get", "parts", "1")
	if code != 0 || !strings.Contains(out, `"name": "R1"`) {
		t.Fatalf("-s dead,live get: code %d, stdout %q, stderr %q", code, out, errs)
	}
	out, errs, code = kvAt(context.Background(), t, dead+", "+f.srv.URL, "", "put", "parts", `{"name": "new"}`)
	if code != 0 || out != "1001/1\n" {
		t.Fatalf("SHELF_HTTP=dead,live put: code %d, stdout %q, stderr %q", code, out, errs)
	}

	// Every endpoint dead: exit 5, naming each.
	dead2 := deadAddr(t)
	_, errs, code = kvAt(context.Background(), t, "", "", "-s", dead+","+dead2, "status")
	if code != exitUnreachable || !strings.Contains(errs, dead) || !strings.Contains(errs, dead2) {
		t.Fatalf("all dead: code %d, stderr %q", code, errs)
	}

	// A node without a leader did not apply the write: the next one gets it.
	noLeader := newFake(t, 0)
	noLeader.fail["POST /v1/trees/parts/records"] = api.Errorf(api.CodeNoLeader, "node n3 knows no leader")
	f.creates = nil
	out, errs, code = kvAt(context.Background(), t, "", "", "-s", host(noLeader)+","+host(f), "put", "parts", `{"name": "again"}`)
	if code != 0 || len(f.creates) != 1 || len(noLeader.calls) != 1 {
		t.Fatalf("no_leader then live: code %d, stdout %q, stderr %q; creates %d, calls on the first %q", code, out, errs, len(f.creates), noLeader.calls)
	}
	// The last node's no_leader is the answer.
	_, errs, code = kvAt(context.Background(), t, "", "", "-s", dead+","+host(noLeader), "put", "parts", `{"name": "x"}`)
	if code != exitError || !strings.Contains(errs, "knows no leader") {
		t.Fatalf("dead then no_leader: code %d, stderr %q", code, errs)
	}

	// Sent and the answer lost: a read goes to the next node, a write
	// without Idempotency-Key does not (it may have been applied).
	cut, hits := cutServer(t)
	out, errs, code = kvAt(context.Background(), t, "", "", "-s", cut+","+host(f), "get", "parts", "2")
	if code != 0 || !strings.Contains(out, `"name": "R2"`) || hits.Load() == 0 {
		t.Fatalf("cut then live get: code %d, stdout %q, stderr %q, hits %d", code, out, errs, hits.Load())
	}
	// kvctl's writes carry an Idempotency-Key: the next node may take one
	// whose answer was lost, and it is applied once.
	f.creates = nil
	_, errs, code = kvAt(context.Background(), t, "", "", "-s", cut+","+host(f), "put", "parts", `{"name": "once"}`)
	if code != 0 || len(f.creates) != 1 {
		t.Fatalf("cut then live put: code %d, stderr %q, creates on the second node %d", code, errs, len(f.creates))
	}
	// A write without one (leader transfer) is not sent again.
	_, errs, code = kvAt(context.Background(), t, "", "", "-s", cut+","+host(f), "leader", "transfer")
	if code != exitUnreachable || !strings.Contains(errs, "outcome is unknown") {
		t.Fatalf("cut then live leader transfer: code %d, stderr %q", code, errs)
	}

	// Bad lists are usage errors.
	for _, s := range []string{",", " , ", "a:1,ftp://b:2", "a:1,http://b:2/x"} {
		if _, errs, code := kvAt(context.Background(), t, "", "", "-s", s, "status"); code != exitUsage || !strings.HasPrefix(errs, "kvctl: -s ") {
			t.Errorf("-s %q: code %d, stderr %q", s, code, errs)
		}
	}
}

// A write carrying an Idempotency-Key may run twice: when its answer is
// lost it goes to the next node.
func TestFailoverIdempotentWrite(t *testing.T) {
	cut, hits := cutServer(t)
	var got atomic.Int32
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Idempotency-Key") == "k1" {
			got.Add(1)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(live.Close)
	nodes, err := splitAddrs(cut + "," + live.URL)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &failover{next: http.DefaultTransport, nodes: nodes}}
	req, _ := http.NewRequest(http.MethodPost, "http://"+cut+"/v1/batch", strings.NewReader("body"))
	req.Header.Set("Idempotency-Key", "k1")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("idempotent write: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || got.Load() != 1 || hits.Load() == 0 {
		t.Fatalf("status %d, live got %d, cut got %d", resp.StatusCode, got.Load(), hits.Load())
	}
}
