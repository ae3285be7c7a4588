package httpapi

import (
	"net/http"
	"strconv"

	"github.com/shelfdb/shelf/api"
)

// handleRead registers a read of the state machine: before fn runs, the
// node makes the read as consistent as the request asks (query parameter
// consistency: linearizable, the default, or stale) and waits for
// min_index if given; the answer carries the applied index it was served
// at in api.IndexHeader.
func (h *handler) handleRead(pattern string, acc access, fn func(http.ResponseWriter, *http.Request) error) {
	h.handle(pattern, acc, func(w http.ResponseWriter, r *http.Request) error {
		if err := h.readBarrier(r); err != nil {
			return err
		}
		w.Header().Set(api.IndexHeader, strconv.FormatUint(h.node.FSM().AppliedIndex(), 10))
		return fn(w, r)
	})
}

// readBarrier waits until a read of r may be served.
func (h *handler) readBarrier(r *http.Request) error {
	q := r.URL.Query()
	var minIndex uint64
	if s := q.Get("min_index"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return api.Errorf(api.CodeInvalid, "invalid min_index %q: want a log index", s)
		}
		minIndex = v
	}
	switch c := api.Consistency(q.Get("consistency")); c {
	case "", api.Linearizable:
		if err := h.node.ReadBarrier(r.Context()); err != nil {
			return err
		}
	case api.Stale:
	default:
		return api.Errorf(api.CodeInvalid, "invalid consistency %q: want %q (the default) or %q", c, api.Linearizable, api.Stale)
	}
	if minIndex > 0 {
		return h.node.WaitIndex(r.Context(), minIndex)
	}
	return nil
}

// internalReadIndex answers a follower's ReadBarrier: this node's read
// index if it leads.
func (h *handler) internalReadIndex(w http.ResponseWriter, r *http.Request) error {
	ri, err := h.node.LeaderReadIndex(r.Context())
	if err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, ri)
	return nil
}
