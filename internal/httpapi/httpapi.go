// Package httpapi is the HTTP API of a Shelf node (docs/http-api.md).
//
// Reads are answered from the node's own state machine, linearizable by
// default (the node first confirms the leader's commit index and catches
// up with it; ?consistency=stale skips that); writes become
// fsm.Commands that the node commits through raft (forwarding them to the
// leader when it follows), and are answered once the node has applied
// them. Request bodies are CBOR (Content-Type: application/cbor) or JSON;
// answers are CBOR when the request accepts application/cbor, JSON
// otherwise. Every error answer is an api.Error with the status that
// api.HTTPStatus gives its code.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/internal/metrics"
)

// DefaultMaxBody is the default limit of a request body.
const DefaultMaxBody = 4 << 20

// Limits of the query parameters.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
	DefaultLogLimit  = 1000
	MaxLogLimit      = 10000
	MaxLogWait       = 60 * time.Second
	DefaultRangeSize = 1000
	MaxRangeSize     = 1_000_000
	// Event stream (GET /v1/events); its wait is capped at MaxLogWait.
	DefaultEventLimit = 1000
	MaxEventLimit     = 10000
)

// DefaultClientSeenInterval is how often at most a node looks up whether
// a client it sees following the log is still registered.
const DefaultClientSeenInterval = 30 * time.Second

// Config configures the handler.
type Config struct {
	// Node is the node the API serves. Required.
	Node *cluster.Node
	// Logger receives request errors; slog.Default() if nil.
	Logger *slog.Logger
	// MaxBody limits request bodies (413 above it); DefaultMaxBody if 0.
	MaxBody int64
	// Stopping, when closed, ends pending log long polls at once (they
	// answer what they have), so that a graceful server shutdown does not
	// wait for them. Optional.
	Stopping <-chan struct{}
	// ClientSeenInterval is how often at most a GET /v1/log with
	// client=ID looks up the client's registration: the node keeps a
	// sighting (last-seen time, replica index; in memory, never through
	// raft) of registered clients only, and drops a removed one within
	// this interval. DefaultClientSeenInterval if 0; no sightings kept if
	// negative.
	ClientSeenInterval time.Duration
	// Peer, when set, decides whether a request comes from another node
	// of the cluster (with TLS: it presents a node certificate of the
	// cluster CA). The internal routes (/v1/internal/*) answer 403 to
	// requests it refuses, and the forwarded header of a refused request
	// is ignored. Without it every caller is trusted as a peer.
	Peer func(*http.Request) error
	// Auth turns on authentication and roles: every route but the open
	// ones needs a token (Authorization: Bearer, or a client certificate
	// whose common name names a token) of the role the route table gives
	// it, a writer acts only as its own client, and every refusal goes to
	// the audit log (warn level, rate limited). The internal routes are
	// decided by Peer alone, so set Peer too. Off, every caller may do
	// everything (the dev node).
	Auth bool
	// Metrics, when set, is served on GET /metrics and counts every
	// request by route and status. Optional.
	Metrics *metrics.Metrics
	// Pprof mounts net/http/pprof on /debug/pprof/ (kvnode -pprof).
	Pprof bool
	// ReadyMaxLag is how far behind the leader's commit index the node
	// may be for GET /readyz to answer 200; cluster.DefaultReadyMaxLag if 0.
	ReadyMaxLag uint64
	// UI, when set, serves the web viewer: GET / (the page) and GET /ui/
	// (its assets), open to every caller (the page must load before its
	// login; it then calls GET /v1/whoami), with a strict
	// Content-Security-Policy (UIHeaders). Optional.
	UI http.Handler

	// streamPing is StreamPingInterval unless a test shortens it.
	streamPing time.Duration
}

// UIHeaders are the headers of every answer of Config.UI: the page may
// load scripts, styles and images from its own origin only (and images
// as data: URLs), talk to its own origin only, and be framed by nobody.
var UIHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
	"X-Content-Type-Options":  "nosniff",
	"Referrer-Policy":         "no-referrer",
}

type handler struct {
	node     *cluster.Node
	log      *slog.Logger
	maxBody  int64
	stopping <-chan struct{}
	seen     *seenTracker
	peer     func(*http.Request) error
	auth     bool
	audit    *auditLog
	table    []route
	mux      *http.ServeMux
	ops      ops // the operations routes (ops.go)
	ui       http.Handler
	// streamPing is how long an event stream may stay silent.
	streamPing time.Duration
}

// New returns the HTTP handler of the API.
func New(cfg Config) http.Handler { return build(cfg).instrumented() }

// build makes the handler of cfg with its routes.
func build(cfg Config) *handler {
	if cfg.Node == nil {
		panic("httpapi: Config.Node is nil")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.ClientSeenInterval == 0 {
		cfg.ClientSeenInterval = DefaultClientSeenInterval
	}
	if cfg.streamPing <= 0 {
		cfg.streamPing = StreamPingInterval
	}
	h := &handler{node: cfg.Node, log: cfg.Logger, maxBody: cfg.MaxBody, stopping: cfg.Stopping, peer: cfg.Peer, auth: cfg.Auth, mux: http.NewServeMux(),
		ui: cfg.UI, streamPing: cfg.streamPing}
	h.audit = &auditLog{log: cfg.Logger, now: time.Now}
	if cfg.Auth && cfg.Peer == nil {
		h.peer = func(*http.Request) error {
			return errors.New("this node has auth on but no way to recognise cluster members (no TLS, no cluster token)")
		}
	}
	h.ops = ops{metrics: cfg.Metrics, pprof: cfg.Pprof, maxLag: cfg.ReadyMaxLag}
	if cfg.ClientSeenInterval > 0 {
		h.seen = newSeenTracker(cfg.ClientSeenInterval, h.clientKnown)
	}
	h.routes()
	return h
}

// routes registers exactly the routes of docs/http-api.md, each with who
// may call it (the route table: docs/http-api.md, "Authentication"). The
// routes that write state take an Idempotency-Key (idempotent).
func (h *handler) routes() {
	h.handle("GET /v1/whoami", accessOpen, h.whoami)
	h.handle("GET /v1/status", accessReader, h.status)
	h.handle("GET /v1/members", accessReader, h.members)
	h.handle("DELETE /v1/members/{id}", accessAdmin, h.removeMember)
	h.handle("POST /v1/leader/transfer", accessAdmin, h.transferLeader)
	h.handleRead("GET /v1/trees", accessReader, h.trees)
	h.handleRead("GET /v1/trees/{tree}/schemas", accessReader, h.schemas)
	h.handle("POST /v1/trees/{tree}/schemas", accessWriter, h.idempotent(h.registerSchema))
	h.handleRead("GET /v1/trees/{tree}/records", accessReader, h.listRecords)
	h.handleRead("GET /v1/trees/{tree}/search", accessReader, h.search)
	h.handle("POST /v1/trees/{tree}/records", accessWriter, h.idempotent(h.createRecord))
	h.handleRead("GET /v1/trees/{tree}/records/{id}", accessReader, h.getRecord)
	h.handleRead("GET /v1/trees/{tree}/records/{id}/{rev}", accessReader, h.getRecord)
	h.handle("PUT /v1/trees/{tree}/records/{id}/{rev}", accessWriter, h.idempotent(h.updateRecord))
	h.handle("DELETE /v1/trees/{tree}/records/{id}/{rev}", accessWriter, h.idempotent(h.deleteRecord))
	h.handle("POST /v1/trees/{tree}/records/{id}/{rev}/{action}", accessWriter, h.idempotent(h.recordAction))
	h.handle("POST /v1/trees/{tree}/records/{id}/{rev}/force-return", accessAdmin, h.idempotent(h.recordActionNamed("force-return")))
	h.handle("POST /v1/trees/{tree}/records/{id}/{rev}/take", accessAdmin, h.idempotent(h.recordActionNamed("take")))
	h.handleRead("GET /v1/trees/{tree}/records/{id}/{rev}/history", accessReader, h.history)
	h.handleRead("GET /v1/borrows", accessReader, h.borrows)
	h.handleRead("GET /v1/clients", accessReader, h.clients)
	h.handle("POST /v1/clients", accessWriter, h.idempotent(h.registerClient))
	h.handle("DELETE /v1/clients/{id}", accessWriter, h.idempotent(h.removeClient))
	h.handleRead("GET /v1/ranges", accessReader, h.ranges)
	h.handle("POST /v1/clients/{id}/ranges", accessWriter, h.idempotent(h.grantRange))
	h.handle("GET /v1/log", accessReader, h.logStream)
	h.handle("GET /v1/events", accessReader, h.events)
	h.handle("GET /v1/events/stream", accessReader, h.eventStream)
	h.handleRead("GET /v1/hash", accessReader, h.contentHash)
	h.handle("GET /v1/snapshot", accessReader, h.snapshot)
	h.handle("POST /v1/batch", accessWriter, h.idempotent(h.batch))
	h.handle("POST /v1/tokens", accessAdmin, h.createToken)
	h.handleRead("GET /v1/tokens", accessAdmin, h.tokens)
	h.handle("DELETE /v1/tokens/{name}", accessAdmin, h.revokeToken)
	h.handle("POST "+cluster.InternalApplyPath, accessPeer, h.internalApply)
	h.handle("POST "+cluster.InternalApplyBatchPath, accessPeer, h.internalApplyBatch)
	h.handle("GET "+cluster.InternalReadIndexPath, accessPeer, h.internalReadIndex)
	h.opsRoutes()
	h.handle("GET "+cluster.InternalSightingsPath, accessPeer, h.internalSightings)
	if h.ui != nil {
		// "/{$}" is the root alone: every other unknown path stays a 404.
		ui := uiHandler(h.ui)
		h.handleHTTP("GET /{$}", accessOpen, ui)
		h.handleHTTP("GET /ui/", accessOpen, ui)
	}
}

// uiHandler serves next with UIHeaders.
func uiHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range UIHeaders {
			w.Header().Set(k, v)
		}
		next.ServeHTTP(w, r)
	})
}

// route is one entry of the route table.
type route struct {
	pattern string
	access  access
}

// handle registers fn for callers that acc admits; an error it returns is
// written as the answer.
func (h *handler) handle(pattern string, acc access, fn func(http.ResponseWriter, *http.Request) error) {
	h.table = append(h.table, route{pattern, acc})
	internal := acc == accessPeer
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		forwarded := r.Header.Get(cluster.ForwardedHeader) != ""
		if (internal || forwarded) && h.peer != nil {
			if err := h.peer(r); err != nil {
				if internal {
					ae := api.Errorf(api.CodeForbidden, "%s is for cluster members only: %v", r.URL.Path, err)
					h.audit.refused(&caller{method: r.Method, pattern: pattern, remote: r.RemoteAddr}, ae)
					h.writeError(w, r, ae)
					return
				}
				forwarded = false // a forged forwarded header: served as a client's own request
			}
		}
		if aw, ok := w.(*answerWriter); ok {
			aw.routed = true
		}
		c, aerr := h.authorize(r, pattern, acc, forwarded && h.peer != nil)
		if aerr != nil {
			if aerr.Code == api.CodeUnauthenticated {
				w.Header().Set("WWW-Authenticate", `Bearer realm="shelf"`)
			}
			h.writeError(w, r, aerr)
			return
		}
		// One copy of the request at most, and none for a client's own
		// request with auth off (the common write: nothing to carry).
		if c != nil || forwarded {
			ctx := r.Context()
			if c != nil {
				ctx = context.WithValue(ctx, callerCtx{}, c)
			}
			if forwarded {
				ctx = cluster.WithForwarded(ctx)
			}
			r = r.WithContext(ctx)
		}
		if err := fn(w, r); err != nil {
			h.writeError(w, r, err)
		}
	})
}

// ServeHTTP routes the request. Unknown routes get a 404 and wrong
// methods a 405, both with an API error body; a panicking handler is
// logged and answered 500.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	aw, ok := w.(*answerWriter)
	if !ok {
		aw = &answerWriter{ResponseWriter: w}
	}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.log.Error("httpapi: handler panic", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
			aw.routed = true
			h.writeError(aw, r, api.Errorf(api.CodeInternal, "internal error: %v", p))
		}
	}()
	// The mux routes once: a route's handler marks the writer routed
	// (handle) before it writes; what the mux answers by itself, without
	// a route, is captured and answered here.
	aw.routed = false
	h.mux.ServeHTTP(aw, r)
	if aw.routed {
		return
	}
	// No route: the mux decided between 404, 405 and a redirect; give
	// 404 and 405 an API error body.
	cw := aw.capture()
	aw.routed, aw.captured = true, nil
	switch cw.status {
	case http.StatusNotFound:
		h.writeError(aw, r, api.Errorf(api.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
	case http.StatusMethodNotAllowed:
		allow := cw.header.Get("Allow")
		aw.Header().Set("Allow", allow)
		h.writeError(aw, r, api.Errorf(api.CodeMethodNotFound, "method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow))
	default:
		for k, v := range cw.header {
			aw.Header()[k] = v
		}
		aw.WriteHeader(cw.status)
		_, _ = aw.Write(cw.body.Bytes())
	}
}

// answerWriter is the writer a request is served with: it records the
// answer's status (for the metrics), and, until a route's handler takes
// the request (routed), captures what the mux answers by itself.
type answerWriter struct {
	http.ResponseWriter
	status   int
	routed   bool
	captured *captureWriter // the mux's own answer, before routed
}

// capture returns the writer of the mux's own answer.
func (a *answerWriter) capture() *captureWriter {
	if a.captured == nil {
		a.captured = &captureWriter{header: http.Header{}}
	}
	return a.captured
}

// Header implements http.ResponseWriter.
func (a *answerWriter) Header() http.Header {
	if !a.routed {
		return a.capture().header
	}
	return a.ResponseWriter.Header()
}

// WriteHeader implements http.ResponseWriter.
func (a *answerWriter) WriteHeader(code int) {
	if !a.routed {
		a.capture().WriteHeader(code)
		return
	}
	if a.status == 0 {
		a.status = code
	}
	a.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (a *answerWriter) Write(b []byte) (int, error) {
	if !a.routed {
		return a.capture().Write(b)
	}
	if a.status == 0 {
		a.status = http.StatusOK
	}
	return a.ResponseWriter.Write(b)
}

// ReadFrom implements io.ReaderFrom with the underlying writer's, so
// that a file sent whole (GET /v1/snapshot) still goes by sendfile.
func (a *answerWriter) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := a.ResponseWriter.(io.ReaderFrom); ok && a.routed {
		if a.status == 0 {
			a.status = http.StatusOK
		}
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{a}, r)
}

// writerOnly hides every method of a writer but Write (from io.Copy).
type writerOnly struct{ io.Writer }

// Flush implements http.Flusher when the underlying writer does.
func (a *answerWriter) Flush() {
	if f, ok := a.ResponseWriter.(http.Flusher); ok && a.routed {
		if a.status == 0 {
			a.status = http.StatusOK
		}
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (a *answerWriter) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// code is the answer's status: 200 if the handler wrote nothing.
func (a *answerWriter) code() int {
	if a.status == 0 {
		return http.StatusOK
	}
	return a.status
}

// captureWriter records what the mux answers for a request without route.
type captureWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

// Header implements http.ResponseWriter.
func (c *captureWriter) Header() http.Header { return c.header }

// WriteHeader implements http.ResponseWriter.
func (c *captureWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

// Write implements http.ResponseWriter.
func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return c.body.Write(b)
}

// wantsCBOR reports whether the answer should be CBOR.
func wantsCBOR(r *http.Request) bool {
	for _, a := range r.Header["Accept"] {
		if strings.Contains(a, api.ContentCBOR) {
			return true
		}
	}
	return false
}

// write answers v with status, in CBOR or JSON.
func (h *handler) write(w http.ResponseWriter, r *http.Request, status int, v any) {
	var (
		b   []byte
		err error
		ct  string
	)
	if wantsCBOR(r) {
		b, err = api.Marshal(v)
		ct = api.ContentCBOR
	} else {
		b, err = json.Marshal(v)
		ct = api.ContentJSON
	}
	if err != nil {
		h.log.Error("httpapi: encoding the answer failed", "method", r.Method, "path", r.URL.Path, "err", err)
		if _, isErr := v.(*api.Error); isErr {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		h.writeError(w, r, api.Errorf(api.CodeInternal, "encoding the answer: %v", err))
		return
	}
	hd := w.Header()
	if ct == api.ContentCBOR {
		hd["Content-Type"] = cborType
	} else {
		hd["Content-Type"] = jsonType
	}
	hd["X-Content-Type-Options"] = nosniff
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// The values of the headers of every answer, shared (never changed):
// setting them allocates nothing.
var (
	cborType = []string{api.ContentCBOR}
	jsonType = []string{api.ContentJSON}
	nosniff  = []string{"nosniff"}
)

// writeError answers err as an api.Error.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *api.Error
	if !errors.As(err, &ae) {
		ae = api.Errorf(api.CodeInternal, "%v", err)
	}
	status := api.HTTPStatus(ae.Code)
	if status >= 500 && ae.Code != api.CodeNoLeader && ae.Code != api.CodeUnavailable {
		h.log.Error("httpapi: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		h.log.Debug("httpapi: request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	h.write(w, r, status, &api.Error{Code: ae.Code, Message: ae.Message})
}

// preallocBody is the largest announced body length that readBody
// allocates at once.
const preallocBody = 64 << 10

// readBody reads the request body within the size limit. A forwarded
// write (the internal routes) may take twice the limit: its commands carry
// a little more than the body they came in (client id, session, time per
// command), and a batch the follower took must not fail on the leader.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := h.maxBody
	if strings.HasPrefix(r.URL.Path, "/v1/internal/") {
		limit *= 2
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	var (
		b   []byte
		err error
	)
	if n := r.ContentLength; n >= 0 && n < limit && n < preallocBody {
		// The announced length in one allocation, and a byte more to see
		// a body longer than announced (read on, as below). Only for
		// small bodies: a large one grows with what arrives, so that an
		// announced length costs no memory before its bytes come.
		b = make([]byte, n+1)
		var m int
		m, err = io.ReadFull(body, b)
		switch {
		case (err == io.ErrUnexpectedEOF || err == io.EOF) && int64(m) == n:
			b, err = b[:m], nil
		case err == io.EOF:
			err = io.ErrUnexpectedEOF // shorter than announced
		case err == nil:
			var rest []byte
			rest, err = io.ReadAll(body)
			b = append(b, rest...)
		}
	} else {
		b, err = io.ReadAll(body)
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, api.Errorf(api.CodeTooLarge, "request body is over the limit of %d bytes", mbe.Limit)
		}
		return nil, api.Errorf(api.CodeInvalid, "reading the request body: %v", err)
	}
	return b, nil
}

// isCBOR reports whether the request body is CBOR; anything else is
// taken as JSON.
func isCBOR(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct == api.ContentCBOR { // what api.Client sends: no parsing
		return true
	}
	mt, _, _ := mime.ParseMediaType(ct)
	return mt == api.ContentCBOR
}

// decode reads the body into v: CBOR or JSON by Content-Type. An empty
// body leaves v as it is.
func (h *handler) decode(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := h.readBody(w, r)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return err
	}
	if isCBOR(r) {
		if err := api.Unmarshal(b, v); err != nil {
			return api.Errorf(api.CodeInvalid, "malformed CBOR body: %v", err)
		}
		return nil
	}
	return decodeJSON(b, v)
}

// decodeJSON decodes a JSON body strictly: unknown fields and trailing
// data are errors, so that typos do not pass silently.
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return api.Errorf(api.CodeInvalid, "malformed JSON body: %v", jsonErr(err, b))
	}
	if dec.More() {
		return api.Errorf(api.CodeInvalid, "malformed JSON body: data after the JSON value")
	}
	return nil
}

// jsonErr makes a JSON error name where the problem is.
func jsonErr(err error, b []byte) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line := 1 + bytes.Count(b[:min(int(se.Offset), len(b))], []byte("\n"))
		return fmt.Errorf("%v (line %d, byte %d)", err, line, se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q: cannot use a JSON %s as %s", te.Field, te.Value, te.Type)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unexpected end of JSON input")
	}
	return err
}

// jsonValue converts a JSON value (raw) to CBOR bytes. Whole numbers stay
// integers, exactly (api.DecodeJSON); a number that cannot, or nesting
// deeper than api.MaxDepth, is an error naming where. Empty raw gives nil.
func jsonValue(raw json.RawMessage, field string) ([]byte, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	var v any
	if err := api.DecodeJSON(bytes.NewReader(raw), &v); err != nil {
		return nil, api.Errorf(api.CodeInvalid, "invalid JSON in %q: %v", field, err)
	}
	b, err := api.EncodeValue(v)
	if err != nil {
		return nil, api.Errorf(api.CodeInvalid, "field %q: %v", field, err)
	}
	return b, nil
}

// recordValue checks the value of a JSON record write: present, a map of
// fields (a JSON object), at most api.MaxDepth deep (api.CheckValue).
func recordValue(data []byte, field string) error {
	if len(data) == 0 {
		return api.Errorf(api.CodeInvalid, "no %s: a record value is a map of fields", field)
	}
	if err := api.CheckValue(data); err != nil {
		return api.Errorf(api.CodeInvalid, "%s: %v", field, err)
	}
	return nil
}
