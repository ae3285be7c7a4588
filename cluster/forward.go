package cluster

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
)

// Forwarding a follower's writes to the leader.
//
// A follower forwards every write it takes (Apply) to the leader's
// InternalApplyBatchPath and waits for the leader's answer. At most
// forwardsInFlight requests to the leader are in flight at once. While
// fewer are, a write is sent at once, alone, by its caller (no added
// latency when writes are few). Writes that arrive while all are in
// flight are coalesced (group commit): they queue, and when a request
// ends the next one carries all of them, up to forwardBatchCount commands
// and forwardBatchBytes bytes, so that under load the leader serves one
// request per follower per round instead of one per write. Each caller
// keeps its own context and gets its own result; see Node.Apply for the
// errors.

const (
	// forwardBatchCount bounds the commands of one coalesced request.
	forwardBatchCount = 256
	// forwardBatchBytes bounds the encoded commands of one coalesced
	// request. A command larger than this goes alone. The leader takes
	// internal bodies up to twice its API body limit (8 MiB by default);
	// if it refuses a batch as too large anyway, the batch is split.
	forwardBatchBytes = 1 << 20
	// forwardsInFlight bounds the requests in flight to the leader at
	// once; writes beyond wait and are coalesced. One in flight
	// serialises a follower's writes on the commit round; with a cap of
	// 2 to 4, writes waited for a slot at 16 writers over three nodes
	// (docs/performance.md, "Coalesced forwards").
	forwardsInFlight = 8
	// forwardDrain is how long Shutdown lets forwarded requests in flight
	// finish before it cancels them.
	forwardDrain = 2 * time.Second
)

// forwarder coalesces the writes a follower forwards to the leader. The
// node owns it: newForwarder in New, stop in Shutdown. Its sender
// goroutines run while calls are queued and end when none is.
type forwarder struct {
	n      *Node
	ctx    context.Context // bounds every request; cancelled by stop
	cancel context.CancelFunc
	wg     sync.WaitGroup // the requests in flight: callers' own and senders'

	mu       sync.Mutex
	queue    []*fwdCall // calls not sent yet, in arrival order
	busy     int        // requests in flight (<= inFlight)
	inFlight int        // forwardsInFlight
	stopped  bool
}

// fwdCall is one write waiting to be forwarded, or in flight.
type fwdCall struct {
	op   fsm.Op
	addr string // the leader's HTTP address the caller resolved
	enc  []byte // the command's CBOR
	done chan struct{}
	res  *fsm.Result // set before done is closed
	err  error
}

func newForwarder(n *Node) *forwarder {
	ctx, cancel := context.WithCancel(context.Background())
	return &forwarder{n: n, ctx: ctx, cancel: cancel, inFlight: forwardsInFlight}
}

// apply forwards cmd to the leader at addr and waits for its result
// within ctx: at once if a request slot is free, else coalesced with the
// other writes queued meanwhile. The
// error is the leader's (no_leader: nothing was applied, the caller may
// retry), unavailable when the outcome is unknown, or unavailable when ctx
// ended first (before the command was sent: not applied; after: it may
// still be applied).
func (f *forwarder) apply(ctx context.Context, addr string, cmd *fsm.Command) (*fsm.Result, error) {
	enc, err := cmd.Encode()
	if err != nil {
		return nil, api.Errorf(api.CodeInvalid, "encode command: %v", err)
	}
	c := &fwdCall{op: cmd.Op, addr: addr, enc: enc, done: make(chan struct{})}
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return nil, unavailable("node %s is shutting down", f.n.cfg.NodeID)
	}
	if f.busy < f.inFlight && len(f.queue) == 0 {
		// A free slot: send it now, from this goroutine, within ctx (and
		// the node's life).
		f.busy++
		f.wg.Add(1)
		f.mu.Unlock()
		ctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(f.ctx, cancel)
		f.post(ctx, []*fwdCall{c})
		stop()
		cancel()
		f.release()
		return c.res, c.err
	}
	f.queue = append(f.queue, c)
	if f.busy < f.inFlight {
		f.busy++
		f.wg.Add(1)
		go f.send()
	}
	f.mu.Unlock()

	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
	}
	f.mu.Lock()
	i := slices.Index(f.queue, c)
	if i >= 0 {
		f.queue = slices.Delete(f.queue, i, i+1)
	}
	f.mu.Unlock()
	select {
	case <-c.done: // answered meanwhile
		return c.res, c.err
	default:
	}
	if i >= 0 {
		return nil, unavailable("%s not sent to the leader in time (%v); it was not applied", cmd.Op, ctx.Err())
	}
	return nil, unavailable("%s forwarded to the leader, no answer in time (%v); it may still be applied", cmd.Op, ctx.Err())
}

// release ends a caller's own request: its slot goes to a sender if
// calls are queued.
func (f *forwarder) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queue) > 0 {
		go f.send() // takes over the slot and its count in wg
		return
	}
	f.busy--
	f.wg.Done()
}

// send sends batches of queued calls until the queue is empty, each
// within Config.ApplyTimeout and the node's life.
func (f *forwarder) send() {
	defer f.wg.Done()
	for {
		f.mu.Lock()
		batch := f.take()
		if len(batch) == 0 {
			f.busy--
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		ctx, cancel := context.WithTimeout(f.ctx, f.n.cfg.ApplyTimeout)
		f.post(ctx, batch)
		cancel()
	}
}

// take removes the next batch from the queue (f.mu held): the oldest call
// and the calls after it for the same leader address, within
// forwardBatchCount and forwardBatchBytes (the oldest call always).
func (f *forwarder) take() []*fwdCall {
	if len(f.queue) == 0 {
		return nil
	}
	addr := f.queue[0].addr
	var batch []*fwdCall
	size := 0
	rest := f.queue[:0]
	for _, c := range f.queue {
		fits := len(batch) < forwardBatchCount && (len(batch) == 0 || size+len(c.enc) <= forwardBatchBytes)
		if c.addr == addr && fits {
			batch = append(batch, c)
			size += len(c.enc)
		} else {
			rest = append(rest, c)
		}
	}
	clear(f.queue[len(rest):])
	f.queue = rest
	return batch
}

// post sends batch to the leader as one InternalApplyBatchPath request and
// gives every call its result: the leader's results answer their calls in
// order; the calls after a shorter answer (the leader failed after
// committing a prefix) get unavailable; an error answers every call.
func (f *forwarder) post(ctx context.Context, batch []*fwdCall) {
	body := make([]byte, 0, 9+batchBytes(batch))
	body = cborArrayHeader(body, len(batch))
	for _, c := range batch {
		body = append(body, c.enc...)
	}
	var res []*fsm.Result
	err := f.n.forwardBody(ctx, batch[0].addr, InternalApplyBatchPath, body, &res)
	switch {
	case err != nil && api.CodeOf(err) == api.CodeTooLarge && len(batch) > 1:
		// The leader takes smaller bodies than this node assumed: nothing
		// was applied; send the halves.
		f.post(ctx, batch[:len(batch)/2])
		f.post(ctx, batch[len(batch)/2:])
		return
	case err != nil:
		for _, c := range batch {
			c.finish(nil, err)
		}
		return
	case len(res) > len(batch):
		err = unavailable("the leader answered %d results for %d commands; they may or may not be applied", len(res), len(batch))
		for _, c := range batch {
			c.finish(nil, err)
		}
		return
	}
	for i, c := range batch {
		switch {
		case i >= len(res):
			c.finish(nil, unavailable("the leader applied %d of the %d commands forwarded with this %s, then failed; it may or may not be applied", len(res), len(batch), c.op))
		case res[i] == nil:
			c.finish(nil, api.Errorf(api.CodeInternal, "the leader answered no result for %s", c.op))
		default:
			c.finish(res[i], nil)
		}
	}
}

func (c *fwdCall) finish(res *fsm.Result, err error) {
	c.res, c.err = res, err
	close(c.done)
}

// stop fails the queued calls (not sent: not applied), lets the requests
// in flight finish for up to forwardDrain, then cancels them and waits
// for the senders to end. New calls fail.
func (f *forwarder) stop() {
	f.mu.Lock()
	f.stopped = true
	queued := f.queue
	f.queue = nil
	f.mu.Unlock()
	for _, c := range queued {
		c.finish(nil, unavailable("node %s is shutting down; %s was not sent to the leader", f.n.cfg.NodeID, c.op))
	}
	done := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(forwardDrain)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	f.cancel()
	<-done // every request is bounded by f.ctx, now cancelled
}

func batchBytes(batch []*fwdCall) int {
	n := 0
	for _, c := range batch {
		n += len(c.enc)
	}
	return n
}

// cborArrayHeader appends the head of a CBOR array of n items (major type
// 4): the items' encodings follow it.
func cborArrayHeader(b []byte, n int) []byte {
	const array = 4 << 5
	switch {
	case n < 24:
		return append(b, array|byte(n))
	case n <= 0xff:
		return append(b, array|24, byte(n))
	case n <= 0xffff:
		return append(b, array|25, byte(n>>8), byte(n))
	default:
		return append(b, array|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// forward sends a write to the leader's internal route path (see call)
// and reports it to the Observer.
func (n *Node) forward(ctx context.Context, addr, path string, in, out any) error {
	b, err := api.Marshal(in)
	if err != nil {
		return api.Errorf(api.CodeInvalid, "encode request: %v", err)
	}
	return n.forwardBody(ctx, addr, path, b, out)
}

// forwardBody is forward with the request body already encoded.
func (n *Node) forwardBody(ctx context.Context, addr, path string, body []byte, out any) error {
	start := time.Now()
	fctx, stop := n.untilLeaderChanges(ctx, addr)
	err := n.callBody(fctx, http.MethodPost, addr, path, body, out)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(fctx), errLeaderChanged) {
		err = unavailable("the leader changed while %s had this write (%v); it may or may not be applied", addr, err)
	}
	stop()
	if o := n.cfg.Observer; o != nil {
		o.ObserveForward(path, time.Since(start), err)
	}
	return err
}
