package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
)

// idem is the Idempotency-Key of a write request: the key, the hash of
// the request, and whether the answer is a repeat.
type idem struct {
	key    string
	hash   string
	repeat bool
}

type idemCtx struct{}

func idemOf(ctx context.Context) *idem {
	i, _ := ctx.Value(idemCtx{}).(*idem)
	return i
}

// validIdemKey reports whether k can be an idempotency key: 1 to 255
// visible ASCII characters.
func validIdemKey(k string) bool {
	if len(k) == 0 || len(k) > fsm.MaxSessionID {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// idempotent wraps the handler of a write route: a request with an
// Idempotency-Key header becomes a session of its own (fsm.Command's
// Session, Seq and ReqHash, set by apply and batch), identified by the
// key and bound to a hash of the request (method, path, query and body),
// so that the same key with a different request is refused. The answer to
// a repeat carries the ReplayedHeader.
func (h *handler) idempotent(fn func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		vals := r.Header.Values(api.IdempotencyHeader)
		if len(vals) == 0 {
			return fn(w, r)
		}
		if len(vals) > 1 || !validIdemKey(vals[0]) {
			return api.Errorf(api.CodeInvalid, "invalid %s header: want one key of 1-%d visible ASCII characters", api.IdempotencyHeader, fsm.MaxSessionID)
		}
		body, err := h.readBody(w, r)
		if err != nil {
			return err
		}
		sum := sha256.New()
		io.WriteString(sum, r.Method+"\n"+r.URL.EscapedPath()+"\n"+r.URL.Query().Encode()+"\n")
		sum.Write(body)
		i := &idem{key: vals[0], hash: hex.EncodeToString(sum.Sum(nil))}
		r = r.WithContext(context.WithValue(r.Context(), idemCtx{}, i))
		r.Body = io.NopCloser(bytes.NewReader(body))
		return fn(&replayWriter{ResponseWriter: w, i: i}, r)
	}
}

// replayWriter sets the ReplayedHeader on the answer to a repeat.
type replayWriter struct {
	http.ResponseWriter
	i *idem
}

// WriteHeader implements http.ResponseWriter.
func (w *replayWriter) WriteHeader(status int) {
	if w.i.repeat {
		w.Header().Set(api.ReplayedHeader, "true")
	}
	w.ResponseWriter.WriteHeader(status)
}

// withIdem gives cmd the request's idempotency key session, if any, as
// sequence number seq.
func withIdem(ctx context.Context, cmd *fsm.Command, seq uint64) {
	if i := idemOf(ctx); i != nil {
		cmd.Session, cmd.Seq, cmd.ReqHash = i.key, seq, i.hash
	}
}

// noteRepeat marks the request's answer as a repeat.
func noteRepeat(ctx context.Context, res *fsm.Result) {
	if i := idemOf(ctx); i != nil && res != nil && res.Repeat {
		i.repeat = true
	}
}
