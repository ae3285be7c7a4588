package httpapi_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/httpapi"
	"github.com/shelfdb/shelf/internal/loadgen"
	"github.com/shelfdb/shelf/internal/metrics"
)

// BenchmarkCreateHandler measures the create route in process, as kvnode
// serves it (metrics on), on a single leader without fsync: one
// POST /v1/trees/{tree}/records of a 256-byte CBOR value per op, from the
// handler's entry to its answer, raft apply included, 16 at a time per
// CPU. Besides ns/op (wall time, bound by raft's commit rounds) and
// allocations it reports cpu-µs/op, the process's user+system CPU per
// create: what the handler path costs the machine (docs/performance.md,
// "HTTP write path").
func BenchmarkCreateHandler(b *testing.B) {
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
	b.ReportAllocs()
	b.SetParallelism(16)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rd := bytes.NewReader(body)
		for pb.Next() {
			rd.Reset(body)
			req := httptest.NewRequest(http.MethodPost, "/v1/trees/bench/records", rd)
			req.Header.Set("Content-Type", api.ContentCBOR)
			req.Header.Set("Accept", api.ContentCBOR)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusCreated {
				b.Errorf("status %d: %s", rec.Code, rec.Body)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
