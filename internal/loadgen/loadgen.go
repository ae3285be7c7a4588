// Package loadgen is the load generator behind cmd/shelfbench and the
// side-by-side comparison in bench/: a pool of writers sharing a total
// number of operations, a paced sender, latency percentiles, the result
// line they print, and the memory of server processes.
//
// It measures; it never judges. Speed targets live in the callers'
// reports, not here.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBadConfig is returned for a load that cannot run (no writers, no
// operations, a rate of zero).
var ErrBadConfig = errors.New("loadgen: bad configuration")

// Percentile returns the q-quantile (0 < q <= 1) of sorted by the
// nearest-rank method: the smallest value such that at least q of all
// values are at or below it. It returns 0 for an empty slice; q <= 0 gives
// the minimum and q >= 1 the maximum.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(n))) // 1-based
	rank = max(1, min(rank, n))
	return sorted[rank-1]
}

// Summary is the outcome of a load: how many operations succeeded and
// failed, over how long, and their latency distribution.
type Summary struct {
	Ops      int           // operations that succeeded
	Errors   int           // operations that failed
	FirstErr error         // the first failure, if any
	Elapsed  time.Duration // wall time of the whole load
	P50      time.Duration
	P99      time.Duration
	P999     time.Duration
	Max      time.Duration
}

// Summarize builds a Summary from the latencies of the successful
// operations (in any order; lat is sorted in place).
func Summarize(lat []time.Duration, errs int, firstErr error, elapsed time.Duration) Summary {
	slices.Sort(lat)
	s := Summary{Ops: len(lat), Errors: errs, FirstErr: firstErr, Elapsed: elapsed,
		P50: Percentile(lat, 0.50), P99: Percentile(lat, 0.99), P999: Percentile(lat, 0.999)}
	if len(lat) > 0 {
		s.Max = lat[len(lat)-1]
	}
	return s
}

// OpsPerSec is the rate of successful operations over the whole load.
func (s Summary) OpsPerSec() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Ops) / s.Elapsed.Seconds()
}

// String is the one-line report: rate, count, latency percentiles in
// milliseconds, and the errors with the first one.
func (s Summary) String() string {
	line := fmt.Sprintf("%.0f ops/s  ops=%d  elapsed=%s  p50=%s p99=%s p999=%s max=%s ms  errors=%d",
		s.OpsPerSec(), s.Ops, s.Elapsed.Round(time.Millisecond), Ms(s.P50), Ms(s.P99), Ms(s.P999), Ms(s.Max), s.Errors)
	if s.FirstErr != nil {
		line += fmt.Sprintf(" (first: %v)", s.FirstErr)
	}
	return line
}

// Ms formats d in milliseconds with two decimals.
func Ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

// Print writes label and s as one line to w.
func Print(w io.Writer, label string, s Summary) {
	fmt.Fprintf(w, "%-28s %s\n", label, s)
}

// Op is one operation of a load, run by writer w (0-based). Its error
// counts as a failed operation; the load goes on.
type Op func(ctx context.Context, w int) error

// Config shapes a load.
type Config struct {
	// Writers is the number of goroutines issuing operations one at a time.
	Writers int
	// Total is the number of operations, shared by the writers: each takes
	// the next one until none is left.
	Total int
	// OpTimeout bounds each operation (default 30s).
	OpTimeout time.Duration
}

// Run runs cfg.Total operations with cfg.Writers concurrent writers and
// summarizes them. It returns early, with what was done, when ctx ends;
// the error is then ctx's.
func Run(ctx context.Context, cfg Config, op Op) (Summary, error) {
	if cfg.Writers <= 0 || cfg.Total <= 0 {
		return Summary{}, fmt.Errorf("%w: writers %d, total %d (both must be positive)", ErrBadConfig, cfg.Writers, cfg.Total)
	}
	timeout := cfg.OpTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	var (
		next     atomic.Int64
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, cfg.Total)
		errs     int
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	for w := range cfg.Writers {
		wg.Go(func() {
			mine := make([]time.Duration, 0, cfg.Total/cfg.Writers+1)
			var myErrs int
			var myFirst error
			for next.Add(1) <= int64(cfg.Total) && ctx.Err() == nil {
				octx, cancel := context.WithTimeout(ctx, timeout)
				t0 := time.Now()
				err := op(octx, w)
				d := time.Since(t0)
				cancel()
				if err != nil {
					myErrs++
					if myFirst == nil {
						myFirst = err
					}
					continue
				}
				mine = append(mine, d)
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += myErrs
			if firstErr == nil {
				firstErr = myFirst
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return Summarize(lat, errs, firstErr, time.Since(start)), ctx.Err()
}

// Paced calls op total times at a steady rate per second, each call in its
// own goroutine so that a slow one does not delay the schedule, and waits
// for all of them. op gets the operation's number (0-based) and the time
// it was due. It returns the failed calls; when ctx ends it stops
// scheduling and returns ctx's error.
func Paced(ctx context.Context, rate float64, total int, op func(ctx context.Context, i int) error) (Failures, error) {
	if rate <= 0 || total <= 0 {
		return Failures{}, fmt.Errorf("%w: rate %v, total %d (both must be positive)", ErrBadConfig, rate, total)
	}
	interval := time.Duration(float64(time.Second) / rate)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		errs     int
		firstErr error
	)
	start := time.Now()
	var ctxErr error
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		if ctxErr = ctx.Err(); ctxErr != nil {
			break
		}
		wg.Go(func() {
			if err := op(ctx, i); err != nil {
				mu.Lock()
				errs++
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return Failures{Count: errs, First: firstErr}, ctxErr
}

// Failures counts failed operations and keeps the first error.
type Failures struct {
	Count int
	First error
}

// Median returns the median of xs (the mean of the two middle values for
// an even count), 0 for none. xs is not changed.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
