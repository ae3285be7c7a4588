package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
)

// ForwardedHeader marks a request that a follower forwarded to the node
// it took for the leader. Such a request is never forwarded again: if the
// receiver is not the leader either, it answers no_leader and the
// follower retries.
const ForwardedHeader = "X-Shelf-Forwarded-By"

// InternalApplyPath is the HTTP route followers of earlier versions
// forward single writes to; followers now send them, coalesced, to
// InternalApplyBatchPath.
const InternalApplyPath = "/v1/internal/apply"

// InternalApplyBatchPath is the HTTP route followers forward writes to:
// an ApplyMany batch, or the writes of concurrent Apply calls coalesced.
// When the leader fails after committing some of the commands, the answer
// holds the results of that prefix only.
const InternalApplyBatchPath = "/v1/internal/apply-batch"

// maxAnswer bounds the size of an answer read from the leader.
const maxAnswer = 16 << 20

type forwardedKey struct{}

// WithForwarded marks ctx as serving a request forwarded by another node
// (the HTTP layer sets it when ForwardedHeader is present): node methods
// then act only if this node is the leader, and never forward again.
func WithForwarded(ctx context.Context) context.Context {
	return context.WithValue(ctx, forwardedKey{}, true)
}

func isForwarded(ctx context.Context) bool {
	v, _ := ctx.Value(forwardedKey{}).(bool)
	return v
}

func noLeader(format string, args ...any) *api.Error {
	return api.Errorf(api.CodeNoLeader, format, args...)
}

func unavailable(format string, args ...any) *api.Error {
	return api.Errorf(api.CodeUnavailable, format, args...)
}

// Apply commits cmd through raft and returns the state machine's result.
// On the leader the command gets the leader's clock (cmd.Time) and is
// applied directly; a follower forwards it to the leader, retrying with
// backoff while there is no leader or leadership moves, within ctx and
// Config.ApplyTimeout. A follower coalesces the writes it forwards at the
// same moment into one request to the leader (see forwarder): each
// caller still gets its own result, and no order is promised between
// concurrent callers. When Apply returns, the entry is committed (a
// majority of the voters stored it) and the leader has applied it at
// res.Index; this node may not have applied it yet when it is a follower
// (it learns the commit index with the leader's next append, within
// Config.CommitTimeout). Read your own writes through the read path: a
// linearizable read waits for the leader's commit index, and a stale read
// with min_index res.Index (or fsm.WaitApplied) waits for the entry.
//
// The error is non-nil when the command could not be committed (or its
// outcome is unknown): it is an *api.Error with code no_leader or
// unavailable (also when ctx ends while a follower waits for the
// leader's answer: the command may still be applied), or ctx's error. A command the state machine rejected is
// not an error here: the rejection is in the Result's Err.
func (n *Node) Apply(ctx context.Context, cmd *fsm.Command) (*fsm.Result, error) {
	if cmd == nil {
		return nil, api.Errorf(api.CodeInvalid, "no command")
	}
	if rej := n.refuse(cmd); rej != nil {
		return rej, nil // refused before the log: no entry, no index
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	var res *fsm.Result
	err := n.withLeader(ctx,
		func(ctx context.Context) error {
			r, err := n.applyLocalMany(ctx, []*fsm.Command{cmd}, true)
			if err != nil {
				return err
			}
			res = r[0]
			return nil
		},
		func(ctx context.Context, addr string) error {
			r, err := n.fwd.apply(ctx, addr, cmd)
			res = r
			return err
		})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// ApplyLeader applies cmd only if this node is the leader: it serves
// writes forwarded by followers, and its result carries no Events (see
// ApplyLeaderMany). Otherwise the error has code no_leader,
// which tells the follower to find the leader again.
func (n *Node) ApplyLeader(ctx context.Context, cmd *fsm.Command) (*fsm.Result, error) {
	if cmd == nil {
		return nil, api.Errorf(api.CodeInvalid, "no command")
	}
	res, err := n.ApplyLeaderMany(ctx, []*fsm.Command{cmd})
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// applyLocal applies cmd through this node's raft, which must lead.
func (n *Node) applyLocal(ctx context.Context, cmd *fsm.Command) (*fsm.Result, error) {
	res, err := n.applyLocalMany(ctx, []*fsm.Command{cmd}, false)
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// applyLocalMany appends cmds to this node's raft log, in order, with the
// leader's clock, and waits for their results. Once the cluster runs
// fsm.BatchRules, consecutive commands share one entry (an fsm.OpBatch of
// up to fsm.MaxBatchCommands commands and about fsm.MaxBatchBytes);
// before, and for the commands that cannot be batched, each command is an
// entry of its own. If the first entry could not be appended the error
// says so (no_leader: nothing happened); a failure later returns the
// results known so far with an unavailable error: the rest may or may
// not be applied. checked says that the caller refused the commands the
// state machine's stateless rules reject on this same node already
// (Apply, ApplyMany): they are not checked twice.
func (n *Node) applyLocalMany(ctx context.Context, cmds []*fsm.Command, checked bool) ([]*fsm.Result, error) {
	defer n.observeApply(time.Now(), len(cmds))
	timeout := n.cfg.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	now := time.Now().UnixNano()
	batching := len(cmds) > 1 && n.fsm.Rules() >= fsm.BatchRules
	// A command the state machine would refuse whatever the state is
	// answered here, without an entry.
	results := make([]*fsm.Result, len(cmds))
	var entries []*logEntry
	var pend []int // positions of the commands of the batch being packed
	pendBytes := 0
	propose := func(at []int) error {
		e := &logEntry{at: at, op: cmds[at[0]].Op}
		var c *fsm.Command
		if len(at) == 1 {
			cc := *cmds[at[0]]
			cc.Time = now
			c = &cc
		} else {
			batch := make([]*fsm.Command, len(at))
			for k, i := range at {
				batch[k] = cmds[i]
			}
			c = fsm.NewBatch(now, batch)
		}
		b, err := c.Encode()
		if err != nil {
			return api.Errorf(api.CodeInvalid, "encode command: %v", err)
		}
		e.future = n.raft.Apply(b, timeout)
		entries = append(entries, e)
		return nil
	}
	flush := func() error {
		if len(pend) == 0 {
			return nil
		}
		at := pend
		pend, pendBytes = nil, 0
		return propose(at)
	}
	for i, cmd := range cmds {
		if !checked {
			if results[i] = n.refuse(cmd); results[i] != nil {
				continue
			}
		}
		size := commandSize(cmd)
		if !batching || !fsm.Batchable(cmd) || size > fsm.MaxBatchBytes {
			if err := flush(); err != nil {
				return nil, err
			}
			if err := propose([]int{i}); err != nil {
				return nil, err
			}
			continue
		}
		if len(pend) == fsm.MaxBatchCommands || pendBytes+size > fsm.MaxBatchBytes {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		pend = append(pend, i)
		pendBytes += size
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return results, nil
	}
	// One waiter for all the entries, in order (raft commits and applies
	// them in order anyway); the caller waits for it or for ctx. The
	// waiter ends when raft settles the last future: applied, leadership
	// lost, or raft shut down (raft fails every pending future then), so
	// a caller that stopped waiting leaves it behind for that long at most.
	var waited atomic.Int32 // entries whose outcome is in their logEntry
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, e := range entries {
			e.err = e.future.Error()
			if e.err == nil {
				e.res = e.future.Response()
			}
			waited.Add(1)
		}
	}()
	var ctxErr error
	select {
	case <-done:
	case <-ctx.Done():
		ctxErr = ctx.Err()
	}
	known := int(waited.Load())
	for k, e := range entries {
		var err error
		if k >= known {
			err = fmt.Errorf("%s not committed in time (%w); it may still be applied", e.op, ctxErr)
		} else if err = e.err; err == nil {
			if err = e.unpack(cmds, results); err == nil {
				continue
			}
		}
		err = n.raftError(err, e.op)
		if k == 0 {
			return nil, err // nothing reached the log: send it all again
		}
		first := e.at[0]
		return results[:first], unavailable("%d of %d commands applied: %v", first, len(cmds), err)
	}
	return results, nil
}

// logEntry is an entry applyLocalMany proposed: the positions (at) of
// the commands it carries, one or a batch, and its outcome.
type logEntry struct {
	at     []int
	op     fsm.Op // of its first command, for errors
	future raft.ApplyFuture
	err    error
	res    any
}

// unpack puts the state machine's results of the entry's commands into
// results.
func (e *logEntry) unpack(cmds []*fsm.Command, results []*fsm.Result) error {
	res, ok := e.res.(*fsm.Result)
	if !ok || res == nil {
		return api.Errorf(api.CodeInternal, "raft apply %s: no result from the state machine (got %T)", e.op, e.res)
	}
	index := e.future.Index()
	if len(e.at) == 1 && res.Batch == nil {
		if res.Index == 0 {
			res.Index = index
		}
		results[e.at[0]] = res
		return nil
	}
	if len(res.Batch) != len(e.at) {
		if res.Err == nil {
			return api.Errorf(api.CodeInternal, "raft apply: %d results for a batch of %d commands", len(res.Batch), len(e.at))
		}
		// The entry failed as a whole (the state machine stopped).
		for _, i := range e.at {
			results[i] = &fsm.Result{Err: res.Err, Index: index}
		}
		return nil
	}
	for k, i := range e.at {
		r := res.Batch[k]
		if r.Index == 0 {
			r.Index = index
		}
		results[i] = r
	}
	return nil
}

// commandSize is about the size of cmd's encoding, for the byte cap of a
// batch entry (fsm.MaxBatchBytes): its variable fields plus a bound of
// the fixed ones.
func commandSize(c *fsm.Command) int {
	return 96 + len(c.Data) + len(c.Tree) + len(c.Client) + len(c.Name) + len(c.Reason) + len(c.Hash) +
		len(c.Role) + len(c.Token) + len(c.Member) + len(c.Start) + len(c.Cluster) + len(c.Session) + len(c.ReqHash)
}

// raftError maps an error of raft.Apply to an API error.
func (n *Node) raftError(err error, op fsm.Op) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return noLeader("node %s is no longer the leader", n.cfg.NodeID)
	case errors.Is(err, raft.ErrLeadershipLost):
		return unavailable("leadership lost while committing %s; it may or may not be applied", op)
	case errors.Is(err, raft.ErrRaftShutdown):
		return unavailable("node %s is shutting down", n.cfg.NodeID)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return unavailable("raft is too busy to take %s: %v", op, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return unavailable("%v", err)
	}
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		return apiErr
	}
	return api.Errorf(api.CodeInternal, "raft apply %s: %v", op, err)
}

// ApplyMany commits cmds in order, as one log entry per up to
// fsm.MaxBatchCommands commands once the cluster runs fsm.BatchRules (as
// consecutive entries, one per command, before), each command applied as
// if it were an entry of its own (a follower forwards them to the leader
// in one request of their own, not coalesced with other writes), and
// returns one result per
// command, rejections included, once they are committed and applied on the
// leader (as Apply: this node may apply them a moment later). On
// error, the results are those known (a prefix of cmds); the commands after
// them may or may not have been applied.
func (n *Node) ApplyMany(ctx context.Context, cmds []*fsm.Command) ([]*fsm.Result, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	// Refused commands are answered here; only the others go to the
	// leader (which checks them again).
	refused := make([]*fsm.Result, len(cmds))
	send := make([]*fsm.Command, 0, len(cmds))
	for i, c := range cmds {
		if refused[i] = n.refuse(c); refused[i] == nil {
			send = append(send, c)
		}
	}
	if len(send) == 0 {
		return refused, nil
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	var sent []*fsm.Result
	err := n.withLeader(ctx,
		func(ctx context.Context) error {
			r, err := n.applyLocalMany(ctx, send, true)
			sent = r
			return err
		},
		func(ctx context.Context, addr string) error {
			var r []*fsm.Result
			if err := n.forward(ctx, addr, InternalApplyBatchPath, send, &r); err != nil {
				return err
			}
			switch {
			case len(r) > len(send):
				return unavailable("leader answered %d results for %d commands", len(r), len(send))
			case len(r) < len(send):
				// The leader failed after committing a prefix.
				sent = r
				return unavailable("the leader applied %d of %d commands, then failed; the rest may or may not be applied", len(r), len(send))
			}
			sent = r
			return nil
		})
	// The results in the order of cmds, up to the first not known.
	res := make([]*fsm.Result, 0, len(cmds))
	for i := range cmds {
		if refused[i] != nil {
			res = append(res, refused[i])
			continue
		}
		if len(sent) == 0 {
			break
		}
		res, sent = append(res, sent[0]), sent[1:]
	}
	return res, err
}

// ApplyLeaderMany is ApplyMany for a batch forwarded by a follower: only
// the leader applies it. The results carry no Events: the follower does
// not use them, and they would travel back in every answer.
func (n *Node) ApplyLeaderMany(ctx context.Context, cmds []*fsm.Command) ([]*fsm.Result, error) {
	if n.closed.Load() {
		return nil, unavailable("node %s is shutting down", n.cfg.NodeID)
	}
	if n.raft.State() != raft.Leader {
		return nil, noLeader("node %s is not the leader", n.cfg.NodeID)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	res, err := n.applyLocalMany(ctx, cmds, false)
	for _, r := range res {
		r.Events = nil
	}
	return res, err
}

// refuse checks cmd with the state machine's own stateless rules
// (fsm.Validate) and returns the rejection, or nil when cmd may go to the
// log. It runs on the node that takes a request and again on the leader
// before raft.Apply, so that a command every replica would refuse never
// becomes a log entry.
func (n *Node) refuse(cmd *fsm.Command) *fsm.Result {
	err := n.fsm.Validate(cmd)
	if err == nil {
		return nil
	}
	var ae *api.Error
	if !errors.As(err, &ae) {
		ae = api.Errorf(api.CodeInvalid, "%v", err)
	}
	return &fsm.Result{Err: ae}
}

// withLeader runs local if this node leads, otherwise remote with the
// leader's HTTP address. It retries while the error is no_leader (no
// leader yet, leadership moved, leader unreachable before the request
// was sent), until ctx ends.
func (n *Node) withLeader(ctx context.Context, local func(context.Context) error, remote func(context.Context, string) error) error {
	backoff := 10 * time.Millisecond
	for {
		if n.closed.Load() {
			return unavailable("node %s is shutting down", n.cfg.NodeID)
		}
		var err error
		switch {
		case n.raft.State() == raft.Leader:
			err = local(ctx)
		case isForwarded(ctx):
			return noLeader("node %s is not the leader", n.cfg.NodeID)
		default:
			var addr string
			if addr, err = n.leaderHTTP(); err == nil {
				err = remote(ctx, addr)
			}
		}
		if err == nil || api.CodeOf(err) != api.CodeNoLeader {
			return err
		}
		select {
		case <-ctx.Done():
			return noLeader("%v (gave up: %v)", err, ctx.Err())
		case <-n.shutdownCh:
			return unavailable("node %s is shutting down", n.cfg.NodeID)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 500*time.Millisecond)
	}
}

// leaderHTTP returns the HTTP address of the current leader, from its
// gossip metadata.
func (n *Node) leaderHTTP() (string, error) {
	addr, id := n.raft.LeaderWithID()
	if id == "" {
		return "", noLeader("node %s knows no leader", n.cfg.NodeID)
	}
	if string(id) == n.cfg.NodeID {
		return "", noLeader("leadership of node %s is changing", n.cfg.NodeID)
	}
	if h := n.httpOf(string(id), string(addr)); h != "" {
		return h, nil
	}
	return "", noLeader("the HTTP address of leader %s is not known yet", id)
}

// httpOf returns the HTTP address of node id (or, failing that, of the
// node with raft address raftAddr) from gossip.
func (n *Node) httpOf(id, raftAddr string) string {
	if id == "" && raftAddr == "" {
		return ""
	}
	if id == n.cfg.NodeID {
		return n.cfg.HTTPAddr
	}
	if p, ok := n.gossip.byID(id); ok && p.meta.HTTP != "" {
		return p.meta.HTTP
	}
	if raftAddr != "" {
		for _, p := range n.gossip.snapshot() {
			if p.meta.Raft == raftAddr && p.meta.HTTP != "" {
				return p.meta.HTTP
			}
		}
	}
	return ""
}

// call sends one CBOR request to another node's HTTP API and decodes the
// answer into out (if not nil). An *api.Error answer is returned as is.
// A failure to connect is a no_leader error (nothing was sent, so the
// caller may retry); a failure after sending is unavailable.
func (n *Node) call(ctx context.Context, method, addr, path string, in, out any) error {
	var b []byte
	if in != nil {
		var err error
		if b, err = api.Marshal(in); err != nil {
			return api.Errorf(api.CodeInvalid, "encode request: %v", err)
		}
	}
	return n.callBody(ctx, method, addr, path, b, out)
}

// callBody is call with the request body already encoded as CBOR (nil for
// none).
func (n *Node) callBody(ctx context.Context, method, addr, path string, in []byte, out any) error {
	var body io.Reader
	if in != nil {
		body = bytes.NewReader(in)
	}
	scheme := "http://"
	if n.cfg.PeerTLS != nil {
		scheme = "https://"
	}
	u := scheme + addr + path
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return api.Errorf(api.CodeInternal, "forward %s %s: %v", method, u, err)
	}
	req.Header.Set("Accept", api.ContentCBOR)
	if in != nil {
		req.Header.Set("Content-Type", api.ContentCBOR)
	}
	req.Header.Set(ForwardedHeader, n.cfg.NodeID)
	resp, err := n.cfg.HTTPClient.Do(req)
	if err != nil {
		if isDialError(err) {
			return noLeader("leader at %s unreachable: %v", addr, err)
		}
		return unavailable("forward %s %s: %v; the request may or may not have been applied", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return unavailable("forward %s %s: reading the answer: %v", method, u, err)
	}
	if resp.StatusCode >= 300 {
		var e api.Error
		if decodeAnswer(resp.Header.Get("Content-Type"), b, &e) == nil && e.Code != "" {
			return &e
		}
		return unavailable("forward %s %s: %s", method, u, resp.Status)
	}
	if out == nil {
		return nil
	}
	if err := decodeAnswer(resp.Header.Get("Content-Type"), b, out); err != nil {
		return api.Errorf(api.CodeInternal, "forward %s %s: bad answer: %v", method, u, err)
	}
	return nil
}

func decodeAnswer(contentType string, b []byte, out any) error {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch mt {
	case api.ContentCBOR:
		return api.Unmarshal(b, out)
	case api.ContentJSON:
		return json.Unmarshal(b, out)
	}
	return fmt.Errorf("unexpected content type %q", contentType)
}

// isDialError reports whether err happened while connecting, so that the
// request was certainly not sent.
func isDialError(err error) bool {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}
