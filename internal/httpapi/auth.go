package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
)

// access is who may call a route: the route table (routes) gives every
// route one.
type access uint8

const (
	accessOpen   access = iota + 1 // anyone, without a token (health checks)
	accessReader                   // a token of role reader or more
	accessWriter                   // writer or admin; a writer only as its own client
	accessAdmin                    // admin only
	accessPeer                     // cluster members only (Config.Peer), never a token
)

func (a access) String() string {
	switch a {
	case accessOpen:
		return "open"
	case accessReader:
		return string(api.RoleReader)
	case accessWriter:
		return string(api.RoleWriter)
	case accessAdmin:
		return string(api.RoleAdmin)
	case accessPeer:
		return "peer"
	}
	return "?"
}

// role is the least role a token needs for a route of this access.
func (a access) role() api.Role {
	switch a {
	case accessReader:
		return api.RoleReader
	case accessWriter:
		return api.RoleWriter
	}
	return api.RoleAdmin
}

// caller is who sent a request, as authentication found it; it travels
// in the request's context so that the write path can check the client
// a command acts as (mayAct).
type caller struct {
	auth    bool          // enforcement is on
	token   api.TokenInfo // the token (or certificate's token) used; zero with auth off
	hash    string        // of the bearer token ("" for a certificate's)
	method  string
	pattern string
	remote  string
}

type callerCtx struct{}

func callerOf(ctx context.Context) *caller {
	c, _ := ctx.Value(callerCtx{}).(*caller)
	return c
}

// handleHTTP registers a plain http.Handler (metrics, pprof) behind the
// same checks as every route.
func (h *handler) handleHTTP(pattern string, acc access, next http.Handler) {
	h.handle(pattern, acc, func(w http.ResponseWriter, r *http.Request) error {
		next.ServeHTTP(w, r)
		return nil
	})
}

// bearer returns the token of an Authorization: Bearer header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(tok), true
}

// authenticate finds the token of a request, and the hash of a bearer
// token: the bearer token, else the token named like the common name of a
// verified client certificate.
func (h *handler) authenticate(r *http.Request) (api.TokenInfo, string, *api.Error) {
	tok, given := bearer(r)
	switch {
	case given && tok == "":
		return api.TokenInfo{}, "", api.Errorf(api.CodeUnauthenticated, "unauthenticated: malformed Authorization header: want \"Bearer TOKEN\"")
	case given:
		hash := api.TokenHash(tok)
		if ti, ok := h.node.FSM().TokenByHash(hash); ok {
			return ti, hash, nil
		}
		return api.TokenInfo{}, "", api.Errorf(api.CodeUnauthenticated, "unauthenticated: unknown or revoked token")
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		cn := r.TLS.VerifiedChains[0][0].Subject.CommonName
		if ti, ok := h.node.FSM().TokenNamed(cn); ok {
			return ti, "", nil
		}
		return api.TokenInfo{}, "", api.Errorf(api.CodeUnauthenticated, "unauthenticated: client certificate %q names no token (create one with kvctl tokens create %s --role ROLE)", cn, cn)
	}
	return api.TokenInfo{}, "", api.Errorf(api.CodeUnauthenticated, "unauthenticated: this node requires a token: send Authorization: Bearer TOKEN (kvctl --token, SHELF_TOKEN, client.Config.Token)")
}

// authorize decides a request to a route of access acc: the caller to
// serve it as (nil when auth is off or a member forwarded it: nothing is
// checked), or the refusal, already audited.
//
// member says that a cluster member (Config.Peer) forwarded the request:
// the member authorized its caller already (kvctl members remove sent to
// a follower reaches the leader this way), so it is served as is.
func (h *handler) authorize(r *http.Request, pattern string, acc access, member bool) (*caller, *api.Error) {
	if !h.auth || member {
		return nil, nil // no caller: every check passes (callerOf is nil)
	}
	c := &caller{auth: true, method: r.Method, pattern: pattern, remote: r.RemoteAddr}
	if acc == accessOpen || acc == accessPeer {
		return c, nil
	}
	ti, hash, err := h.authenticate(r)
	if err != nil {
		h.audit.refused(c, err)
		return nil, err
	}
	c.token, c.hash = ti, hash
	if ti.Role.Rank() < acc.role().Rank() {
		err := api.Errorf(api.CodeForbidden, "forbidden: %s needs role %s; token %q has role %s", pattern, acc.role(), ti.Name, ti.Role)
		h.audit.refused(c, err)
		return nil, err
	}
	return c, nil
}

// adminOps are the commands only an operator gives, whatever the route.
var adminOps = map[fsm.Op]bool{
	fsm.OpForceReturn: true, fsm.OpTakeOver: true, fsm.OpRemoveMember: true, fsm.OpReadmitMember: true,
	fsm.OpCreateToken: true, fsm.OpRevokeToken: true, fsm.OpSetRules: true, fsm.OpSetCluster: true, fsm.OpExpire: true,
}

// mayAct checks that the request's caller may submit cmd: a writer acts
// only as the client its token is bound to (the command's client and its
// session), and registers at most one client, to which its token is then
// bound (cmd.Token; the state machine refuses a second one, so that a
// registration sent again with its Idempotency-Key still gets its first
// answer). Admins, and every caller with auth off, may submit anything
// the route allows. A writer refused because its token is not bound (yet)
// to the client it names is checked once more after this node caught up
// with the leader: the binding may have been committed through another
// node a moment ago.
func (h *handler) mayAct(ctx context.Context, cmd *fsm.Command) error {
	c := callerOf(ctx)
	if c == nil || !c.auth || c.token.Role == api.RoleAdmin {
		return nil
	}
	err := writerMay(c.token, cmd, idemOf(ctx) != nil)
	if err != nil && c.token.Role == api.RoleWriter && c.token.Client != cmd.Client && c.hash != "" {
		if h.node.ReadBarrier(ctx) == nil {
			if ti, ok := h.node.FSM().TokenByHash(c.hash); ok {
				c.token = ti
				err = writerMay(ti, cmd, idemOf(ctx) != nil)
			}
		}
	}
	if err != nil {
		h.audit.refused(c, err)
		return err
	}
	return nil
}

// writerMay is mayAct's rule for a token that is not an admin's.
func writerMay(ti api.TokenInfo, cmd *fsm.Command, idempotent bool) *api.Error {
	switch {
	case ti.Role != api.RoleWriter || adminOps[cmd.Op]:
		return api.Errorf(api.CodeForbidden, "forbidden: %s needs role admin; token %q has role %s", cmd.Op, ti.Name, ti.Role)
	case cmd.Op == fsm.OpRegisterClient && ti.Client != "" && !idempotent:
		return api.Errorf(api.CodeForbidden, "forbidden: token %q already acts as client %s: a writer token registers one client (create another token for another client)", ti.Name, ti.Client)
	case cmd.Op == fsm.OpRegisterClient:
		cmd.Token = ti.Name // the state machine binds the token to the new client
		return nil
	case cmd.Op == fsm.OpRegisterSchema && cmd.Client == "":
		return nil
	case ti.Client == "":
		return api.Errorf(api.CodeForbidden, "forbidden: token %q is not bound to a client yet: register one first (POST /v1/clients) or create the token with --client", ti.Name)
	case cmd.Client != ti.Client:
		return api.Errorf(api.CodeForbidden, "forbidden: token %q acts as client %s, not as %q", ti.Name, ti.Client, cmd.Client)
	case cmd.Session != "" && cmd.ReqHash == "" && cmd.Session != ti.Client:
		return api.Errorf(api.CodeForbidden, "forbidden: token %q acts as client %s, not in session %q", ti.Name, ti.Client, cmd.Session)
	}
	return nil
}

// mayActAs reports whether the request's caller may act as client id
// (its log stream then counts as the client's sighting).
func mayActAs(ctx context.Context, id string) bool {
	c := callerOf(ctx)
	return c == nil || !c.auth || c.token.Role == api.RoleAdmin || (c.token.Role == api.RoleWriter && c.token.Client == id)
}

// Audit limits: at most auditBurst refusals logged at once, refilled at
// auditRate per second; the ones over it are counted and the count is
// logged with the next refusal that fits.
const (
	auditBurst = 20
	auditRate  = 5
)

// auditLog writes refused requests to the log at warn, rate limited so
// that a flood of bad requests cannot fill the disk.
type auditLog struct {
	log *slog.Logger
	now func() time.Time

	mu         sync.Mutex
	tokens     float64
	last       time.Time
	suppressed int
}

// refused logs a refusal: route, method, token name (never the secret),
// remote address and the reason.
func (a *auditLog) refused(c *caller, err *api.Error) {
	a.mu.Lock()
	now := a.now()
	if a.last.IsZero() {
		a.tokens = auditBurst
	} else {
		a.tokens = min(auditBurst, a.tokens+now.Sub(a.last).Seconds()*auditRate)
	}
	a.last = now
	if a.tokens < 1 {
		a.suppressed++
		a.mu.Unlock()
		return
	}
	a.tokens--
	suppressed := a.suppressed
	a.suppressed = 0
	a.mu.Unlock()
	attrs := []any{"status", api.HTTPStatus(err.Code), "method", c.method, "route", c.pattern, "token", c.token.Name, "remote", c.remote, "reason", err.Message}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	a.log.Warn("audit: request refused", attrs...)
}

// ClusterTokenHeader carries the cluster token (kvnode -cluster-token)
// on requests between nodes when they do not use TLS.
const ClusterTokenHeader = "X-Shelf-Cluster-Token"

// ClusterTokenPeer returns a Config.Peer that admits the requests that
// carry the cluster token in ClusterTokenHeader (compared in constant
// time): how nodes recognise each other without TLS. With TLS, the node
// certificate does it (tlsconf.Node.CheckPeer).
func ClusterTokenPeer(token string) func(*http.Request) error {
	want := sha256.Sum256([]byte(token))
	return func(r *http.Request) error {
		got := r.Header.Get(ClusterTokenHeader)
		if got == "" {
			return errors.New("no cluster token (a node sends the cluster's -cluster-token)")
		}
		g := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(g[:], want[:]) != 1 {
			return errors.New("wrong cluster token: not a node of this cluster")
		}
		return nil
	}
}

// ClusterTokenTransport returns a RoundTripper that adds the cluster token
// to every request through next (http.DefaultTransport if nil): the
// transport of a node's requests to its peers without TLS.
func ClusterTokenTransport(token string, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Header.Set(ClusterTokenHeader, token)
		return next.RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

// RoundTrip implements http.RoundTripper.
func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
