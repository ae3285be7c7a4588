package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/shelfdb/shelf/api"
)

// splitAddrs parses the -s value: one or more node addresses
// ("host:port" or "http://host:port"), comma-separated.
func splitAddrs(s string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		u := a
		if !strings.Contains(u, "://") {
			u = "http://" + u
		}
		p, err := url.Parse(u)
		if err != nil || p.Host == "" || (p.Scheme != "http" && p.Scheme != "https") || strings.Trim(p.Path, "/") != "" {
			return nil, fmt.Errorf("-s %q: want HOST:PORT or http://HOST:PORT, comma-separated", a)
		}
		out = append(out, p.Scheme+"://"+p.Host)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-s %q: no node address", s)
	}
	return out, nil
}

// failover sends each request to the first of several nodes that takes
// it, starting with the node that answered last. It moves on to the next
// node when a node cannot be reached (the request was not sent) or
// answers no_leader (it did not apply the request). When a request was
// sent and its answer is lost (reset connection, timeout) or the answer is
// unavailable (the outcome is unknown), it tries the next node only if the
// request may run twice: a read (GET, HEAD) or a write carrying an
// Idempotency-Key header. A request is never sent to two nodes at once.
type failover struct {
	next http.RoundTripper

	mu    sync.Mutex
	nodes []string // scheme://host:port, the one that answered last first
}

// RoundTrip implements http.RoundTripper.
func (f *failover) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	nodes := append([]string(nil), f.nodes...)
	f.mu.Unlock()
	var errs nodeErrors
	var answered *http.Response // a node's no_leader answer, if one gave it
	unknown := false            // the request was sent and its outcome is not known
	for i, node := range nodes {
		last := i == len(nodes)-1
		r, err := toNode(req, node, i > 0)
		if err != nil {
			errs = append(errs, err)
			break
		}
		resp, err := f.next.RoundTrip(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", node, err))
			if req.Context().Err() != nil {
				break
			}
			if !notSent(err) && !replayable(req) {
				unknown = true
				break
			}
			continue
		}
		if !last && resp.StatusCode == http.StatusServiceUnavailable {
			code, kept := errorCode(resp)
			if code == api.CodeNoLeader || (code == api.CodeUnavailable && replayable(req)) {
				// Kept: if no other node answers at all, this answer
				// says more than a connection error.
				if answered != nil {
					answered.Body.Close()
				}
				answered = kept
				errs = append(errs, fmt.Errorf("%s: %s", node, code))
				continue
			}
			resp = kept
		}
		f.prefer(node)
		return resp, nil
	}
	if unknown {
		if answered != nil {
			answered.Body.Close()
		}
		return nil, fmt.Errorf("%w (the request was sent and its outcome is unknown: not sent to another node, since it is not a read and has no Idempotency-Key)", errs)
	}
	if answered != nil {
		return answered, nil
	}
	return nil, errs
}

// nodeErrors are the failures of one request at each node tried, in order.
type nodeErrors []error

func (e nodeErrors) Error() string {
	parts := make([]string, len(e))
	for i, err := range e {
		parts[i] = err.Error()
	}
	return strings.Join(parts, "; ")
}

func (e nodeErrors) Unwrap() []error { return e }

// prefer makes node the first one tried by the next request.
func (f *failover) prefer(node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, n := range f.nodes {
		if n == node {
			copy(f.nodes[1:i+1], f.nodes[:i])
			f.nodes[0] = node
			return
		}
	}
}

// toNode returns req addressed to node, with a fresh copy of its body for
// a second attempt.
func toNode(req *http.Request, node string, again bool) (*http.Request, error) {
	u, err := url.Parse(node)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", node, err)
	}
	r := req.Clone(req.Context())
	r.URL.Scheme, r.URL.Host, r.Host = u.Scheme, u.Host, ""
	if again && req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			return nil, fmt.Errorf("%s: the request body cannot be sent again", node)
		}
		if r.Body, err = req.GetBody(); err != nil {
			return nil, fmt.Errorf("%s: %w", node, err)
		}
	}
	return r, nil
}

// notSent tells a transport error that happened before the request left:
// the connection could not be made (refused, no route, DNS, dial timeout).
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" && !errors.Is(err, context.Canceled)
}

// replayable tells a request that may run twice without harm.
func replayable(req *http.Request) bool {
	return req.Method == http.MethodGet || req.Method == http.MethodHead || req.Header.Get("Idempotency-Key") != ""
}

// errorCode reads the API error code of an error answer (from its first
// 64 KiB) and returns it with a response whose body still reads in full.
func errorCode(resp *http.Response) (api.Code, *http.Response) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
	var e api.Error
	if err != nil {
		return "", resp
	}
	ct := resp.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, api.ContentCBOR):
		_ = api.Unmarshal(b, &e)
	case strings.HasPrefix(ct, api.ContentJSON):
		_ = json.Unmarshal(b, &e)
	}
	return e.Code, resp
}
