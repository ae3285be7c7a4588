package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/testserver"
)

// TestPutIdempotencyKeyOnServer: kvctl put sends its write with an
// idempotency key; the same key twice makes one record, and a put whose
// answer is lost (the connection cut after the server applied it) is sent
// again with the same key and applied once.
func TestPutIdempotencyKeyOnServer(t *testing.T) {
	s := testserver.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	count := func() int {
		recs, _ := s.Node.FSM().List("parts", api.Key{}, 0)
		return len(recs)
	}

	out1, errs, code := kvAt(ctx, t, s.Addr, "", "put", "--idempotency-key", "order-17", "parts", `{"n":1}`)
	if code != exitOK {
		t.Fatalf("put: %d %s", code, errs)
	}
	out2, errs, code := kvAt(ctx, t, s.Addr, "", "put", "parts", `{"n":1}`, "--idempotency-key", "order-17")
	if code != exitOK || out1 != out2 {
		t.Fatalf("put again with the same key: %d %q %s, want %q", code, out2, errs, out1)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d records, want 1", n)
	}
	_, errs, code = kvAt(ctx, t, s.Addr, "", "put", "--idempotency-key", "order-17", "parts", `{"n":2}`)
	if code != exitConflict || !strings.Contains(errs, "order-17") {
		t.Fatalf("same key, other value: exit %d, %s", code, errs)
	}
	// Without a key, each invocation is a write of its own.
	kvAt(ctx, t, s.Addr, "", "put", "parts", `{"n":1}`)
	if n := count(); n != 2 {
		t.Fatalf("%d records, want 2", n)
	}

	// A proxy that forwards the first POST but cuts the connection
	// instead of answering.
	var cut atomic.Int32
	cut.Store(1)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, "http://"+s.Addr+r.URL.RequestURI(), r.Body)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		if r.Method == http.MethodPost && cut.Add(-1) >= 0 {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	defer proxy.Close()
	out, errs, code := kvAt(ctx, t, strings.TrimPrefix(proxy.URL, "http://"), "", "put", "parts", `{"n":3}`)
	if code != exitOK || !strings.Contains(errs, "sending again") {
		t.Fatalf("put through a cut answer: exit %d, stdout %q, stderr %s", code, out, errs)
	}
	if n := count(); n != 3 {
		t.Fatalf("%d records after a retried put, want 3", n)
	}
}
