package httpapi_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/internal/httpapi"
	"github.com/shelfdb/shelf/internal/loadgen"
	"github.com/shelfdb/shelf/internal/metrics"
)

// BenchmarkCreateHandler measures the create route in process, as kvnode
// serves it (metrics on), on a single leader without fsync: one
// POST /v1/trees/{tree}/records of a 256-byte CBOR value per op, from the
// handler's entry to its answer, raft apply included. Compare ns/op and
// allocs/op (docs/performance.md, "HTTP write path").
func BenchmarkCreateHandler(b *testing.B) {
	for _, c := range []struct {
		name      string
		forwarded bool
	}{{"client", false}, {"forwarded", true}} {
		b.Run(c.name, func(b *testing.B) {
			e := newEnv(b, 0)
			h := httpapi.New(httpapi.Config{Node: e.node, Metrics: metrics.New(), Logger: slog.New(slog.DiscardHandler)})
			v, err := loadgen.Value(256)
			if err != nil {
				b.Fatal(err)
			}
			body, err := api.Marshal(api.WriteRequest{Data: v})
			if err != nil {
				b.Fatal(err)
			}
			rd := bytes.NewReader(body)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				rd.Reset(body)
				req := httptest.NewRequest(http.MethodPost, "/v1/trees/bench/records", rd)
				req.Header.Set("Content-Type", api.ContentCBOR)
				req.Header.Set("Accept", api.ContentCBOR)
				if c.forwarded {
					req.Header.Set(cluster.ForwardedHeader, "n2")
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusCreated {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
