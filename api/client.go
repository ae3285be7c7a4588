package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrUnreachable wraps every failure to exchange a request and an answer
// with a node: refused connection, DNS failure, reset, timeout. Test with
// errors.Is(err, api.ErrUnreachable); the wrapped transport error (a
// *url.Error naming the URL) stays reachable with errors.As.
var ErrUnreachable = errors.New("cannot reach server")

// MaxAnswer bounds the size of an answer the Client reads (snapshots,
// streamed, excepted): a log page holds at most 4 MiB of entries plus one
// entry, and a request body (so an entry) at most the server's body limit.
const MaxAnswer = 32 << 20

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// Client speaks the Shelf HTTP API (docs/http-api.md) in CBOR. Answers with
// an API error body come back as *Error, so errors.Is(err, ErrNotBorrowed)
// works on the caller's side. A Client is safe for concurrent use.
type Client struct {
	base        string
	hc          *http.Client
	consistency Consistency // reads' default; "" is the server's (Linearizable)
	token       string      // sent as Authorization: Bearer, if set
}

// NewClient returns a client for the node at baseURL, "http://host:port" or
// just "host:port". A nil hc means a client shared by every Client made
// so: http.DefaultTransport's settings, but keeping up to DefaultIdleConns
// idle connections per node (http.DefaultClient keeps 2, so that a third
// concurrent caller pays a new connection per request). A given hc's
// Timeout, if any, must leave room for Log's wait and for Snapshot's
// transfer (prefer deadlines on the context).
func NewClient(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = defaultHTTP()
	}
	if !strings.Contains(baseURL, "://") {
		baseURL = "http://" + baseURL
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: hc}
}

// WithConsistency returns a copy of c whose reads ask for cons unless
// their context says otherwise (WithConsistency on the context).
func (c *Client) WithConsistency(cons Consistency) *Client {
	cc := *c
	cc.consistency = cons
	return &cc
}

// WithToken returns a copy of c that sends token (an API token, from
// kvctl tokens create) as Authorization: Bearer on every request, the log
// stream and snapshots included. "" sends none.
func (c *Client) WithToken(token string) *Client {
	cc := *c
	cc.token = CleanToken(token)
	return &cc
}

// BaseURL returns the node's base URL as the client uses it.
func (c *Client) BaseURL() string { return c.base }

// CreateToken creates an API token (admin). The answer holds the secret:
// it is shown this once, the cluster keeps only its hash.
func (c *Client) CreateToken(ctx context.Context, req CreateTokenRequest) (CreatedToken, error) {
	return call[CreatedToken](ctx, c, http.MethodPost, "/v1/tokens", nil, &req)
}

// Tokens lists the API tokens, without secrets (admin).
func (c *Client) Tokens(ctx context.Context) ([]TokenInfo, error) {
	return call[[]TokenInfo](ctx, c, http.MethodGet, "/v1/tokens", nil, nil)
}

// RevokeToken deletes the token called name (admin): requests with it
// are refused from then on.
func (c *Client) RevokeToken(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, urlPath("v1", "tokens", name), nil, nil, nil)
}

// Status returns the node's view of the cluster.
func (c *Client) Status(ctx context.Context) (Status, error) {
	return call[Status](ctx, c, http.MethodGet, "/v1/status", nil, nil)
}

// Members returns the cluster's nodes with their raft role and gossip health.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	return call[[]Member](ctx, c, http.MethodGet, "/v1/members", nil, nil)
}

// RemoveMember removes a node from the raft configuration.
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, urlPath("v1", "members", id), nil, nil, nil)
}

// TransferLeadership asks the leader to hand over to node id, or to any
// suitable node when id is "".
func (c *Client) TransferLeadership(ctx context.Context, id string) error {
	in := struct {
		ID string `json:"id"`
	}{id}
	return c.do(ctx, http.MethodPost, "/v1/leader/transfer", nil, &in, nil)
}

// Trees returns every tree with its record count and schema versions.
func (c *Client) Trees(ctx context.Context) ([]Tree, error) {
	return call[[]Tree](ctx, c, http.MethodGet, "/v1/trees", nil, nil)
}

// Schemas returns the registered schema versions of a tree.
func (c *Client) Schemas(ctx context.Context, tree string) ([]Schema, error) {
	return call[[]Schema](ctx, c, http.MethodGet, urlPath("v1", "trees", tree, "schemas"), nil, nil)
}

// RegisterSchema registers a schema definition (CBOR) for a tree. The
// result's Version is the version it got (an existing one for a definition
// already registered).
func (c *Client) RegisterSchema(ctx context.Context, tree string, def []byte) (WriteResult, error) {
	return call[WriteResult](ctx, c, http.MethodPost, urlPath("v1", "trees", tree, "schemas"), nil, &SchemaRequest{Definition: def})
}

// Get returns a record; key.Rev 0 means its latest revision. The value is
// in Record.Data as CBOR; DecodeValue turns it into plain Go values.
func (c *Client) Get(ctx context.Context, tree string, key Key) (Record, error) {
	return call[Record](ctx, c, http.MethodGet, recordPath(tree, key), nil, nil)
}

// List returns up to limit records of a tree after the given key (the zero
// Key starts at the beginning; limit 0 takes the server's default). The
// page's After, parsed with ParseKey, is the cursor of the next page.
func (c *Client) List(ctx context.Context, tree string, after Key, limit int) (RecordPage, error) {
	q := url.Values{}
	if after.ID != 0 {
		q.Set("after", after.String())
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return call[RecordPage](ctx, c, http.MethodGet, urlPath("v1", "trees", tree, "records"), q, nil)
}

// Create creates a record. With req.ID 0 the cluster assigns the id.
func (c *Client) Create(ctx context.Context, tree string, req WriteRequest) (WriteResult, error) {
	return call[WriteResult](ctx, c, http.MethodPost, urlPath("v1", "trees", tree, "records"), nil, &req)
}

// Update replaces a record's value; req.Client must hold its borrow.
func (c *Client) Update(ctx context.Context, tree string, key Key, req WriteRequest) (WriteResult, error) {
	return call[WriteResult](ctx, c, http.MethodPut, recordPath(tree, key), nil, &req)
}

// Batch sends writes of one client to be applied in order as consecutive
// log entries: one round trip and one commit for many writes. The answer
// has one item per op; see BatchItem for what an item's error means.
func (c *Client) Batch(ctx context.Context, req BatchRequest) (BatchResult, error) {
	return call[BatchResult](ctx, c, http.MethodPost, "/v1/batch", nil, req)
}

// Delete deletes a record; client must hold its borrow.
func (c *Client) Delete(ctx context.Context, tree string, key Key, client string) (WriteResult, error) {
	q := url.Values{}
	if client != "" {
		q.Set("client", client)
	}
	return call[WriteResult](ctx, c, http.MethodDelete, recordPath(tree, key), q, nil)
}

// Action runs one of the record actions "borrow", "return", "force-return",
// "take", "release", "state" or "revise". The helpers below name each one.
func (c *Client) Action(ctx context.Context, tree string, key Key, action string, req ActionRequest) (WriteResult, error) {
	return call[WriteResult](ctx, c, http.MethodPost, recordPath(tree, key)+"/"+url.PathEscape(action), nil, &req)
}

// Borrow checks a record out for client until ttl has passed; ttl 0
// takes the cluster's default (none unless the nodes set one, kvnode
// -borrow-ttl), a negative ttl asks for no expiry whatever the default.
func (c *Client) Borrow(ctx context.Context, tree string, key Key, client string, ttl time.Duration) (WriteResult, error) {
	return c.Action(ctx, tree, key, "borrow", ActionRequest{Client: client, TTL: TTLString(ttl)})
}

// TTLString is a borrow ttl as ActionRequest.TTL carries it: "" for 0
// (the cluster's default), "none" for a negative ttl (no expiry).
func TTLString(ttl time.Duration) string {
	switch {
	case ttl < 0:
		return "none"
	case ttl == 0:
		return ""
	}
	return ttl.String()
}

// Return checks a record back in; client must hold its borrow.
func (c *Client) Return(ctx context.Context, tree string, key Key, client string) (WriteResult, error) {
	return c.Action(ctx, tree, key, "return", ActionRequest{Client: client})
}

// ForceReturn ends whoever's borrow of a record, as an operator.
func (c *Client) ForceReturn(ctx context.Context, tree string, key Key, reason string) (WriteResult, error) {
	return c.Action(ctx, tree, key, "force-return", ActionRequest{Reason: reason})
}

// TakeOver moves a record's borrow to client, as an operator, in one step:
// whoever held it loses it (their borrow ends as forced, with reason) and
// client holds it from now, until ttl passes (0: no expiry). A record that
// is not borrowed is simply borrowed for client. The record's history
// records it as "taken". client must be registered (ErrUnknownClient);
// a released record cannot be taken (ErrReleased).
func (c *Client) TakeOver(ctx context.Context, tree string, key Key, client, reason string, ttl time.Duration) (WriteResult, error) {
	req := ActionRequest{Client: client, Reason: reason}
	if ttl > 0 {
		req.TTL = ttl.String()
	}
	return c.Action(ctx, tree, key, "take", req)
}

// History returns the borrow history of one revision of a record (key.Rev
// must be set), oldest first: every borrow, renewal, return, forced or
// expired end, take-over and removal of the holder, as replicated. The
// cluster keeps the latest entries of each record (256); a record deleted
// since keeps its history. ErrNotFound when the record does not exist and
// has no history.
func (c *Client) History(ctx context.Context, tree string, key Key) ([]AuditEntry, error) {
	if key.Rev == 0 {
		return nil, Errorf(CodeInvalid, "history of %s %s: the history is per revision, give one (ID/REV)", tree, key)
	}
	return call[[]AuditEntry](ctx, c, http.MethodGet, recordPath(tree, key)+"/history", nil, nil)
}

// Release makes a record immutable except for its state number.
func (c *Client) Release(ctx context.Context, tree string, key Key, client string) (WriteResult, error) {
	return c.Action(ctx, tree, key, "release", ActionRequest{Client: client})
}

// SetState sets the state number of a released record.
func (c *Client) SetState(ctx context.Context, tree string, key Key, client string, state int64) (WriteResult, error) {
	return c.Action(ctx, tree, key, "state", ActionRequest{Client: client, State: state})
}

// Revise makes revision key.Rev+1 of a released record as a draft; the
// result's Key is the new revision.
func (c *Client) Revise(ctx context.Context, tree string, key Key, client string) (WriteResult, error) {
	return c.Action(ctx, tree, key, "revise", ActionRequest{Client: client})
}

// Borrows returns the current borrows of a tree, or of every tree for "".
func (c *Client) Borrows(ctx context.Context, tree string) ([]Borrow, error) {
	q := url.Values{}
	if tree != "" {
		q.Set("tree", tree)
	}
	return call[[]Borrow](ctx, c, http.MethodGet, "/v1/borrows", q, nil)
}

// Clients returns the registered clients.
func (c *Client) Clients(ctx context.Context) ([]ClientInfo, error) {
	return call[[]ClientInfo](ctx, c, http.MethodGet, "/v1/clients", nil, nil)
}

// RegisterClient registers a new client under a display name.
func (c *Client) RegisterClient(ctx context.Context, name string) (ClientInfo, error) {
	return call[ClientInfo](ctx, c, http.MethodPost, "/v1/clients", nil, &RegisterClientRequest{Name: name})
}

// RemoveClient unregisters a client, as an operator: every borrow it holds
// is returned (forced, with reason, in each record's history as
// "client_removed"), its key ranges are retired (Range.Retired: their
// unused ids are never used), and any later request naming it is refused
// with ErrUnknownClient, as is removing it again.
func (c *Client) RemoveClient(ctx context.Context, id, reason string) (WriteResult, error) {
	q := url.Values{}
	if reason != "" {
		q.Set("reason", reason)
	}
	return call[WriteResult](ctx, c, http.MethodDelete, urlPath("v1", "clients", id), q, nil)
}

// Ranges returns the key ranges granted to a client, or to every client
// for "" (ranges of removed clients included, marked Retired).
func (c *Client) Ranges(ctx context.Context, client string) ([]Range, error) {
	q := url.Values{}
	if client != "" {
		q.Set("client", client)
	}
	return call[[]Range](ctx, c, http.MethodGet, "/v1/ranges", q, nil)
}

// GrantRange grants a new block of size record ids to a client.
func (c *Client) GrantRange(ctx context.Context, client string, size uint64) (Range, error) {
	return call[Range](ctx, c, http.MethodPost, urlPath("v1", "clients", client, "ranges"), nil, &GrantRangeRequest{Size: size})
}

// Log returns the command entries after index from, at most limit of them
// (0: the server's default). With wait > 0 the server holds the request up
// to that long until there is at least one entry. Below the oldest kept
// entry the error is ErrCompacted: take a Snapshot instead.
func (c *Client) Log(ctx context.Context, from uint64, limit int, wait time.Duration) (LogPage, error) {
	return c.LogAs(ctx, "", from, limit, wait)
}

// LogAs is Log for a registered client's replica: the request names the
// client (client=ID), so that the node records, now and then, that the
// client was seen and that its replica had applied up to from (see
// ClientInfo.LastSeen and ReplicaIndex). An empty client is Log.
func (c *Client) LogAs(ctx context.Context, client string, from uint64, limit int, wait time.Duration) (LogPage, error) {
	q := url.Values{"from": {strconv.FormatUint(from, 10)}}
	if client != "" {
		q.Set("client", client)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	return call[LogPage](ctx, c, http.MethodGet, "/v1/log", q, nil)
}

// Events returns the events with index above from (EventsFromNow: the
// node's applied index), at most limit of them (0: the server's default;
// a page never splits the events of one log entry), of one tree or of all
// for tree "". With wait > 0 the server holds the request up to that long
// until there is at least one event. Continue with from = the page's
// Next. ErrCompacted means events after from are no longer kept by the
// node (its buffer moved on, or it restarted): re-read the state the
// caller derives from events and start again from EventsFromNow.
func (c *Client) Events(ctx context.Context, from uint64, limit int, wait time.Duration, tree string) (EventPage, error) {
	q := url.Values{"from": {"now"}}
	if from != EventsFromNow {
		q.Set("from", strconv.FormatUint(from, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	if tree != "" {
		q.Set("tree", tree)
	}
	return call[EventPage](ctx, c, http.MethodGet, "/v1/events", q, nil)
}

// ContentHash returns the node's applied index and the hash of its whole
// state at that index; nodes and replicas at the same index converged
// when their hashes are equal.
func (c *Client) ContentHash(ctx context.Context) (ContentHash, error) {
	return call[ContentHash](ctx, c, http.MethodGet, "/v1/hash", nil, nil)
}

// Snapshot streams the node's state machine snapshot to w and returns the
// number of bytes written.
func (c *Client) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	var n int64
	err := c.do(ctx, http.MethodGet, "/v1/snapshot", nil, nil, func(u string, r io.Reader) error {
		var err error
		if n, err = io.Copy(w, r); err != nil {
			return fmt.Errorf("GET %s: snapshot after %d bytes: %w", u, n, err)
		}
		return nil
	})
	return n, err
}

// call sends a request with do and returns the decoded answer. (Not
// "var v T; return v, c.do(..., &v)": the order in which a return
// statement reads v and calls do is unspecified.)
func call[T any](ctx context.Context, c *Client, method, p string, q url.Values, in any) (T, error) {
	var out T
	err := c.do(ctx, method, p, q, in, &out)
	return out, err
}

// urlPath joins escaped segments into an absolute URL path, so a tree named
// "a/b c" stays one segment.
func urlPath(segs ...string) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

func recordPath(tree string, key Key) string {
	p := urlPath("v1", "trees", tree, "records", strconv.FormatUint(key.ID, 10))
	if key.Rev != 0 {
		p += "/" + strconv.FormatUint(uint64(key.Rev), 10)
	}
	return p
}

// do sends one request: in (when not nil) as a CBOR body, and decodes a
// successful answer into out, a pointer (nil: the body is ignored), or
// hands it to out when it is a func(url string, body io.Reader) error.
// p must already be escaped.
func (c *Client) do(ctx context.Context, method, p string, q url.Values, in, out any) error {
	if method == http.MethodGet {
		q = readQuery(ctx, c.consistency, q)
	}
	u := c.base + p
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, u, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	req.Header.Set("Accept", ContentCBOR)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if in != nil {
		req.Header.Set("Content-Type", ContentCBOR)
	}
	if k := IdempotencyKey(ctx); k != "" && method != http.MethodGet {
		req.Header.Set(IdempotencyHeader, k)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnreachable, err) // *url.Error names method and URL
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return errorAnswer(method, u, resp)
	}
	switch out := out.(type) {
	case nil:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	case func(string, io.Reader) error:
		return out(u, resp.Body)
	default:
		b, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer+1))
		if err == nil && len(b) > MaxAnswer {
			err = fmt.Errorf("answer is larger than %d bytes", MaxAnswer)
		}
		if err == nil {
			err = decodeBody(resp.Header.Get("Content-Type"), b, out)
		}
		if err != nil {
			return fmt.Errorf("%s %s: read answer: %w", method, u, err)
		}
		return nil
	}
}

// errorAnswer turns an error answer into the *Error its body carries, or,
// when the body is not an API error (a proxy's page, a mux's "404 page
// not found"), into an error naming the URL and the status that wraps
// ErrUnavailable for 502/503/504 and ErrInternal otherwise.
func errorAnswer(method, u string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var e Error
	if decodeBody(resp.Header.Get("Content-Type"), b, &e) == nil && e.Code != "" {
		return &e
	}
	se := &statusError{msg: fmt.Sprintf("%s %s: %s", method, u, resp.Status), base: ErrInternal}
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		se.base = ErrUnavailable
	}
	if msg := strings.TrimSpace(string(b)); msg != "" {
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		se.msg += fmt.Sprintf(": %q", msg)
	}
	return se
}

// statusError is an error answer without an API error body.
type statusError struct {
	msg  string
	base *Error
}

func (e *statusError) Error() string { return e.msg }
func (e *statusError) Unwrap() error { return e.base }

// DefaultIdleConns is how many idle connections per node the shared
// client of NewClient(addr, nil) keeps for reuse.
const DefaultIdleConns = 64

// defaultHTTP returns the shared client of NewClient(addr, nil), made on
// first use: a clone of http.DefaultTransport (proxies from the
// environment, its timeouts) that keeps DefaultIdleConns idle
// connections per host; http.DefaultClient if that transport was replaced
// by one of another type.
var defaultHTTP = sync.OnceValue(func() *http.Client {
	t, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return http.DefaultClient
	}
	t = t.Clone()
	t.MaxIdleConnsPerHost = DefaultIdleConns
	t.MaxIdleConns = max(t.MaxIdleConns, 4*DefaultIdleConns)
	return &http.Client{Transport: t}
})

// decodeBody decodes a CBOR or JSON body by its media type.
func decodeBody(contentType string, b []byte, out any) error {
	if contentType == ContentCBOR { // what a node answers: no parsing
		return Unmarshal(b, out)
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	switch mt {
	case ContentCBOR:
		return Unmarshal(b, out)
	case ContentJSON:
		return json.Unmarshal(b, out)
	default:
		return fmt.Errorf("unexpected content type %q", contentType)
	}
}
