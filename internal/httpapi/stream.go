package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
)

// Server-Sent Events (GET /v1/events/stream).
const (
	// StreamPingInterval is the longest an event stream stays silent: a
	// comment line ": ping" goes out when no event did for this long, so
	// that proxies and the browser see a live connection, and a client
	// gone is noticed.
	StreamPingInterval = 15 * time.Second
	// StreamWriteTimeout bounds each write of an event stream: a client
	// that does not read for this long is cut off.
	StreamWriteTimeout = 10 * time.Second
)

// eventStream serves the node's events as Server-Sent Events: the same
// events as GET /v1/events (node.EventsMatching), read in a loop with the
// ping interval as the wait. Each event is
//
//	id: <index>[.<k>]
//	event: <type>
//	data: <the api.Event as JSON>
//
// One log entry may have several events (a batch entry holds many
// commands; a release both releases and returns): the last event of an
// entry has its index as id, the k-th before it "<index>.<k>" (k from 1,
// counting the events the stream sends: those of its tree, if filtered).
// So a Last-Event-ID "<index>" means every event of the entry was
// received, and "<index>.<k>" that the first k were: a stream cut in the
// middle of an entry's events resumes with the next one, none lost or
// repeated.
//
// Events after the Last-Event-ID header, else after ?from= (default now).
// When the events after that index are no longer kept, the stream sends
// one "reset" event (its id the index it continues from, data
// {"reason": ...}) and goes on from now. A stream ends when the client
// goes, when a write does not complete within StreamWriteTimeout, when the
// server stops (Config.Stopping), when the node shuts down, or when the
// caller's token is revoked (then an "error" event says why; the token is
// checked again at least every ping interval).
func (h *handler) eventStream(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	// skip is how many events of entry skipAt the client has already.
	var from, skipAt, skip uint64
	if s := r.Header.Get("Last-Event-ID"); s != "" {
		// It overrides ?from=, which is not read: a client may send the
		// last id in both (an "index.k" is no valid from).
		index, k, ok := parseEventID(s)
		if !ok {
			return api.Errorf(api.CodeInvalid, "invalid Last-Event-ID %q: want the id of an event (a log index, or index.k)", s)
		}
		from = index
		if k > 0 {
			from, skipAt, skip = index-1, index, k
		}
	} else {
		var err error
		if from, err = eventsFrom(q.Get("from")); err != nil {
			return err
		}
	}
	var match func(*api.Event) bool
	if tree := q.Get("tree"); tree != "" {
		if err := fsm.ValidTreeName(tree); err != nil {
			return err
		}
		if _, err := h.node.FSM().Schemas(tree); err != nil {
			return err // tree_not_found
		}
		match = func(e *api.Event) bool { return e.Tree == tree }
	}
	if from == api.EventsFromNow {
		// Now is when the request came: a write answered after the
		// stream opened is in it.
		from = h.node.FSM().AppliedIndex()
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if h.stopping != nil {
		go func() { // ends with the stream at the latest
			select {
			case <-h.stopping:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(b []byte) error {
		if err := rc.SetWriteDeadline(time.Now().Add(StreamWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send(nil); err != nil { // the headers, at once
		return nil
	}
	ping := h.streamPing
	caller := callerOf(r.Context())
	var buf bytes.Buffer
	for {
		buf.Reset()
		asked := time.Now()
		page, err := h.node.EventsMatching(ctx, from, DefaultEventLimit, ping, match)
		if ctx.Err() != nil {
			return nil // the client is gone or the server stops
		}
		if aerr := h.stillAllowed(caller); aerr != nil {
			writeSSE(&buf, "", "error", aerr)
			_ = send(buf.Bytes())
			return nil
		}
		switch {
		case errors.Is(err, api.ErrCompacted):
			from = h.node.FSM().AppliedIndex()
			writeSSE(&buf, strconv.FormatUint(from, 10), "reset", map[string]string{"reason": errMessage(err)})
		case err != nil:
			h.log.Warn("httpapi: event stream failed", "err", err)
			writeSSE(&buf, "", "error", apiError(err))
		case len(page.Events) == 0 && time.Since(asked) < ping/2:
			// EventsMatching answers an empty page before the wait only
			// when the node shuts down.
			writeSSE(&buf, "", "error", api.Errorf(api.CodeUnavailable, "node %s is shutting down", h.node.ID()))
			err = errStreamEnd
		case len(page.Events) == 0:
			buf.WriteString(": ping\n\n")
			from = page.Next
		default:
			ids := eventIDs(page.Events)
			for i := range page.Events {
				e := &page.Events[i]
				if skip > 0 && e.Index == skipAt {
					skip-- // the client has it
					continue
				}
				writeSSE(&buf, ids[i], string(e.Type), e)
			}
			from, skip = page.Next, 0
		}
		if werr := send(buf.Bytes()); werr != nil {
			h.log.Debug("httpapi: event stream cut", "err", werr)
			return nil
		}
		if err != nil && !errors.Is(err, api.ErrCompacted) {
			return nil
		}
	}
}

// stillAllowed checks once more that the token a long request was
// authorized with still exists with a role that allows reading: a token
// revoked (or recreated with less) ends the streams it opened.
func (h *handler) stillAllowed(c *caller) *api.Error {
	if c == nil || !c.auth {
		return nil
	}
	var (
		ti api.TokenInfo
		ok bool
	)
	if c.hash != "" {
		ti, ok = h.node.FSM().TokenByHash(c.hash)
	} else {
		ti, ok = h.node.FSM().TokenNamed(c.token.Name)
	}
	switch {
	case !ok:
		err := api.Errorf(api.CodeUnauthenticated, "unauthenticated: token %q was revoked", c.token.Name)
		h.audit.refused(c, err)
		return err
	case ti.Role.Rank() < api.RoleReader.Rank():
		err := api.Errorf(api.CodeForbidden, "forbidden: token %q no longer has a role that reads", c.token.Name)
		h.audit.refused(c, err)
		return err
	}
	return nil
}

// eventIDs returns the SSE ids of a page of events (whose pages never
// split the events of one index): the last event of each index has the
// index as id, the k-th before it "<index>.<k>".
func eventIDs(evs []api.Event) []string {
	ids := make([]string, len(evs))
	for i := 0; i < len(evs); {
		j := i + 1
		for j < len(evs) && evs[j].Index == evs[i].Index {
			j++
		}
		index := strconv.FormatUint(evs[i].Index, 10)
		for k := i; k < j-1; k++ {
			ids[k] = index + "." + strconv.Itoa(k-i+1)
		}
		ids[j-1] = index
		i = j
	}
	return ids
}

// parseEventID parses an id of eventIDs: k is 0 for a plain index.
func parseEventID(s string) (index, k uint64, ok bool) {
	is, ks, dotted := strings.Cut(s, ".")
	index, err := strconv.ParseUint(is, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	if !dotted {
		return index, 0, true
	}
	k, err = strconv.ParseUint(ks, 10, 64)
	if err != nil || k == 0 || index == 0 {
		return 0, 0, false
	}
	return index, k, true
}

// errStreamEnd ends an event stream after its last event.
var errStreamEnd = errors.New("event stream ends")

// writeSSE appends one Server-Sent Event to buf: its id (none if ""), its
// type and v as one line of JSON.
func writeSSE(buf *bytes.Buffer, id, event string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		data = []byte(fmt.Sprintf(`{"code":"internal","message":%q}`, err.Error()))
	}
	if id != "" {
		buf.WriteString("id: " + id + "\n")
	}
	buf.WriteString("event: " + event + "\ndata: ")
	buf.Write(data)
	buf.WriteString("\n\n")
}

// apiError returns err as the api.Error an answer carries.
func apiError(err error) *api.Error {
	var ae *api.Error
	if !errors.As(err, &ae) {
		ae = api.Errorf(api.CodeInternal, "%v", err)
	}
	return &api.Error{Code: ae.Code, Message: ae.Message}
}

// errMessage is err's message without the code.
func errMessage(err error) string { return apiError(err).Message }
