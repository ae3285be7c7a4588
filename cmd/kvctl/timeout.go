package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// defaultTimeout bounds a command's network waits when neither --timeout
// nor SHELF_TIMEOUT says otherwise.
const defaultTimeout = 10 * time.Second

// timeoutEnv reads --timeout's default from SHELF_TIMEOUT.
func (c *cli) timeoutEnv() error {
	c.deadline.after = defaultTimeout
	if v := c.getenv("SHELF_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return usagef("", "SHELF_TIMEOUT %q: want a duration such as 10s, or 0 for none", v)
		}
		c.deadline.after = d
	}
	return nil
}

// unboundedCommands run as long as they need to: watch (until
// interrupted; it bounds each wait for a node itself), snapshot (a
// large snapshot takes as long as its transfer), export and import
// (a request per page or record, as many as the trees hold), and edit
// (the editor takes its time; edit bounds each network step itself).
var unboundedCommands = map[string]bool{"watch": true, "snapshot": true, "export": true, "import": true, "edit": true}

// commandDeadline is --timeout: once the command line is parsed, the
// command has this long for all its requests (and the waits between
// retries); then its context is cancelled with a *timeoutError.
type commandDeadline struct {
	after  time.Duration // 0: no bound
	cancel context.CancelCauseFunc
	timer  *time.Timer
}

// start arms the deadline (once; a no-op without a bound).
func (d *commandDeadline) start(waiting *inFlight) {
	if d.after <= 0 || d.timer != nil || d.cancel == nil {
		return
	}
	after := d.after
	d.timer = time.AfterFunc(after, func() {
		d.cancel(&timeoutError{after: after, waiting: waiting.String()})
	})
}

// stop disarms the deadline.
func (d *commandDeadline) stop() {
	if d.timer != nil {
		d.timer.Stop()
	}
}

// bound returns ctx bounded by extra plus --timeout (no bound without
// --timeout), for a wait on what: a request that is meant to wait, such as a
// long poll, or one step of a command that bounds its own waits.
func (c *cli) bound(ctx context.Context, extra time.Duration, what string) (context.Context, context.CancelFunc) {
	if c.deadline.after <= 0 {
		return context.WithCancel(ctx)
	}
	d := extra + c.deadline.after
	return context.WithTimeoutCause(ctx, d, &timeoutError{after: d, waiting: what})
}

// timeoutError is a command (or one of its waits) running out of time.
type timeoutError struct {
	after   time.Duration
	waiting string // the request in flight when it ran out, if any
}

func (e *timeoutError) Error() string {
	if e.waiting == "" {
		return fmt.Sprintf("timed out after %s (--timeout)", e.after)
	}
	return fmt.Sprintf("timed out after %s waiting for %s (--timeout)", e.after, e.waiting)
}

// Unwrap makes a timeout a context.DeadlineExceeded.
func (e *timeoutError) Unwrap() error { return context.DeadlineExceeded }

// inFlight is the HTTP transport under kvctl's API client (below the
// failover, so it sees the node each attempt goes to): it remembers the
// request last sent, which a timeout names.
type inFlight struct {
	next http.RoundTripper

	mu   sync.Mutex
	last string // "an answer from HOST to GET /v1/status"
}

// RoundTrip implements http.RoundTripper.
func (f *inFlight) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.last = fmt.Sprintf("%s to answer %s %s", req.URL.Host, req.Method, req.URL.Path)
	f.mu.Unlock()
	return f.next.RoundTrip(req)
}

// String returns the last request sent, "" before any.
func (f *inFlight) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}
