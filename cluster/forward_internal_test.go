package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
)

// fakeLeader serves InternalApplyBatchPath with answer, after the test
// lets each request through (hold) when holding.
type fakeLeader struct {
	t      *testing.T
	answer func(cmds []*fsm.Command) (int, any)
	hold   chan struct{} // when set, requests wait until it is closed
	mu     sync.Mutex
	sizes  []int // commands per request, in arrival order
}

func (l *fakeLeader) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var cmds []*fsm.Command
	if r.URL.Path != InternalApplyBatchPath || api.Unmarshal(b, &cmds) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	l.mu.Lock()
	l.sizes = append(l.sizes, len(cmds))
	hold := l.hold
	l.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	l.mu.Lock()
	status, v := l.answer(cmds)
	l.mu.Unlock()
	out, err := api.Marshal(v)
	if err != nil {
		l.t.Error(err)
	}
	w.Header().Set("Content-Type", api.ContentCBOR)
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

// forwardTo returns a forwarder of a node that is not started (only its
// configuration is used) and the leader address it forwards to.
func forwardTo(t *testing.T, l *fakeLeader) (*forwarder, string) {
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	n := &Node{cfg: Config{NodeID: "f1", ApplyTimeout: 10 * time.Second, HTTPClient: srv.Client()}}
	f := newForwarder(n)
	t.Cleanup(f.stop)
	return f, strings.TrimPrefix(srv.URL, "http://")
}

// results answers each command with a result naming it by its tree.
func results(cmds []*fsm.Command) []*fsm.Result {
	res := make([]*fsm.Result, len(cmds))
	for i, c := range cmds {
		res[i] = &fsm.Result{Key: api.Key{ID: uint64(len(c.Tree))}, Index: uint64(100 + len(c.Tree))}
	}
	return res
}

// applyAll forwards cmds concurrently, as concurrent callers would, and
// returns each one's outcome.
func applyAll(f *forwarder, addr string, cmds []*fsm.Command) []applyOutcome {
	out := make([]applyOutcome, len(cmds))
	var wg sync.WaitGroup
	for i, c := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].res, out[i].err = f.apply(context.Background(), addr, c)
		}()
	}
	wg.Wait()
	return out
}

type applyOutcome struct {
	res *fsm.Result
	err error
}

func cmdsOfTrees(n int) []*fsm.Command {
	cmds := make([]*fsm.Command, n)
	for i := range cmds {
		cmds[i] = &fsm.Command{Op: fsm.OpCreate, Tree: strings.Repeat("t", i+1)}
	}
	return cmds
}

// A leader that fails after committing a prefix of a batch answers that
// prefix: its callers get their results, the others unavailable (unknown
// outcome), never a result that is not theirs.
func TestForwardKnownPrefix(t *testing.T) {
	answered := map[string]bool{} // tree -> in an answered prefix
	l := &fakeLeader{t: t, hold: make(chan struct{}), answer: func(cmds []*fsm.Command) (int, any) {
		for i, c := range cmds {
			answered[c.Tree] = i < len(cmds)/2
		}
		return http.StatusOK, results(cmds)[:len(cmds)/2]
	}}
	f, addr := forwardTo(t, l)
	cmds := cmdsOfTrees(40)
	done := make(chan []applyOutcome)
	go func() { done <- applyAll(f, addr, cmds) }()
	// The first requests wait at the leader while the rest queue.
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		queued := len(f.queue)
		f.mu.Unlock()
		l.mu.Lock()
		sent := 0
		for _, n := range l.sizes {
			sent += n
		}
		requests := len(l.sizes)
		l.mu.Unlock()
		if sent+queued == len(cmds) && (requests == forwardsInFlight || queued == 0) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests of %d commands at the leader, %d queued; want %d requests and %d commands in all", requests, sent, queued, forwardsInFlight, len(cmds))
		}
		time.Sleep(time.Millisecond)
	}
	l.mu.Lock()
	close(l.hold)
	l.mu.Unlock()
	out := <-done
	l.mu.Lock()
	defer l.mu.Unlock()
	ok := 0
	for i, o := range out {
		switch {
		case o.err == nil && answered[cmds[i].Tree]:
			ok++
			if o.res.Key.ID != uint64(len(cmds[i].Tree)) {
				t.Errorf("command %d got the result of another: %+v", i, o.res)
			}
		case o.err == nil:
			t.Errorf("command %d: answered %+v, but it was after the known prefix", i, o.res)
		case answered[cmds[i].Tree]:
			t.Errorf("command %d: %v, but the leader answered it", i, o.err)
		case api.CodeOf(o.err) != api.CodeUnavailable:
			t.Errorf("command %d: %v; want unavailable", i, o.err)
		}
	}
	if ok == 0 {
		t.Errorf("no command answered; batches of %v", l.sizes)
	}
}

// An error answer (no_leader: nothing applied) goes to every caller of the
// batch, which withLeader then retries; a leader that refuses a batch as
// too large gets it again in halves.
func TestForwardErrorsAndSplit(t *testing.T) {
	l := &fakeLeader{t: t, answer: func(cmds []*fsm.Command) (int, any) {
		return http.StatusServiceUnavailable, api.Errorf(api.CodeNoLeader, "not the leader")
	}}
	f, addr := forwardTo(t, l)
	for i, o := range applyAll(f, addr, cmdsOfTrees(10)) {
		if api.CodeOf(o.err) != api.CodeNoLeader {
			t.Errorf("command %d: %+v, %v; want no_leader", i, o.res, o.err)
		}
	}

	l.mu.Lock()
	l.sizes = nil
	l.answer = func(cmds []*fsm.Command) (int, any) {
		if len(cmds) > 3 {
			return http.StatusRequestEntityTooLarge, api.Errorf(api.CodeTooLarge, "request body is over the limit")
		}
		return http.StatusOK, results(cmds)
	}
	l.mu.Unlock()
	cmds := cmdsOfTrees(50)
	for i, o := range applyAll(f, addr, cmds) {
		if o.err != nil || o.res.Key.ID != uint64(len(cmds[i].Tree)) {
			t.Errorf("command %d: %+v, %v", i, o.res, o.err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	total := 0
	for _, n := range l.sizes {
		if n <= 3 {
			total += n
		}
	}
	if total != len(cmds) {
		t.Errorf("requests of %v commands: %d accepted, want %d", l.sizes, total, len(cmds))
	}
}

// A batch is bounded in commands and bytes and goes to one address; a
// command larger than the byte bound goes alone. Calls for another
// address, or too large for the batch, wait for a later one.
func TestForwardBatchBounds(t *testing.T) {
	small := func(addr string) *fwdCall { return &fwdCall{addr: addr, enc: make([]byte, 100)} }
	f := &forwarder{}
	for range forwardBatchCount + 44 {
		f.queue = append(f.queue, small("a"))
	}
	f.queue = append(f.queue, &fwdCall{addr: "a", enc: make([]byte, forwardBatchBytes+1)}, small("b"))
	for range 5 {
		f.queue = append(f.queue, small("a"))
	}
	var got []string
	for len(f.queue) > 0 {
		b := f.take()
		got = append(got, fmt.Sprintf("%s %d/%d", b[0].addr, len(b), batchBytes(b)))
	}
	want := []string{
		fmt.Sprintf("a %d/%d", forwardBatchCount, forwardBatchCount*100),
		"a 49/4900",
		fmt.Sprintf("a 1/%d", forwardBatchBytes+1),
		"b 1/100",
	}
	if !slices.Equal(got, want) {
		t.Errorf("batches %q, want %q", got, want)
	}
}

func TestCBORArrayHeader(t *testing.T) {
	for _, n := range []int{0, 1, 23, 24, 255, 256, 1000, 65535, 65536} {
		body := cborArrayHeader(nil, n)
		one, _ := api.Marshal(fsm.Command{Op: fsm.OpCreate})
		for range n {
			body = append(body, one...)
		}
		var cmds []*fsm.Command
		if err := api.Unmarshal(body, &cmds); err != nil || len(cmds) != n {
			t.Errorf("array of %d: decoded %d, %v", n, len(cmds), err)
		}
	}
}
