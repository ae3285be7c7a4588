package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
)

// apply commits cmd and folds a state machine rejection into the error.
// A request with an Idempotency-Key gives cmd the key's session.
func (h *handler) apply(ctx context.Context, cmd *fsm.Command) (*fsm.Result, error) {
	if err := h.mayAct(ctx, cmd); err != nil {
		return nil, err
	}
	withIdem(ctx, cmd, 1)
	res, err := h.node.Apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	noteRepeat(ctx, res)
	if res.Err != nil {
		return res, res.Err
	}
	return res, nil
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) error {
	h.write(w, r, http.StatusOK, h.node.Status())
	return nil
}

func (h *handler) members(w http.ResponseWriter, r *http.Request) error {
	h.write(w, r, http.StatusOK, h.node.Members())
	return nil
}

func (h *handler) removeMember(w http.ResponseWriter, r *http.Request) error {
	if err := h.node.RemoveMember(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// transferRequest is the body of POST /v1/leader/transfer.
type transferRequest struct {
	ID string `json:"id"`
}

func (h *handler) transferLeader(w http.ResponseWriter, r *http.Request) error {
	var req transferRequest
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	if err := h.node.TransferLeadership(r.Context(), req.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) trees(w http.ResponseWriter, r *http.Request) error {
	trees, err := h.node.FSM().Trees()
	if err != nil {
		return err
	}
	for i := range trees {
		if trees[i].Schemas == nil {
			trees[i].Schemas = []uint32{}
		}
	}
	h.write(w, r, http.StatusOK, nonNil(trees))
	return nil
}

func (h *handler) schemas(w http.ResponseWriter, r *http.Request) error {
	schemas, err := h.node.FSM().Schemas(r.PathValue("tree"))
	if err != nil {
		return err
	}
	if !wantsCBOR(r) {
		for i := range schemas {
			v, err := api.DecodeValue(schemas[i].Definition)
			if err != nil {
				h.log.Warn("httpapi: undecodable schema definition", "tree", schemas[i].Tree, "version", schemas[i].Version, "err", err)
			}
			schemas[i].Value = v
		}
	}
	h.write(w, r, http.StatusOK, nonNil(schemas))
	return nil
}

// jsonSchemaRequest is SchemaRequest as JSON: the definition is any JSON
// value, stored as CBOR.
type jsonSchemaRequest struct {
	Definition json.RawMessage `json:"definition"`
}

func (h *handler) registerSchema(w http.ResponseWriter, r *http.Request) error {
	var def []byte
	if isCBOR(r) {
		var req api.SchemaRequest
		if err := h.decode(w, r, &req); err != nil {
			return err
		}
		def = req.Definition
	} else {
		var req jsonSchemaRequest
		if err := h.decode(w, r, &req); err != nil {
			return err
		}
		var err error
		if def, err = jsonValue(req.Definition, "definition"); err != nil {
			return err
		}
	}
	if len(def) == 0 {
		return api.Errorf(api.CodeInvalid, "schema definition is empty")
	}
	sum := sha256.Sum256(def)
	res, err := h.apply(r.Context(), &fsm.Command{
		Op:   fsm.OpRegisterSchema,
		Tree: r.PathValue("tree"),
		Data: def,
		Hash: hex.EncodeToString(sum[:]),
	})
	if err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, api.WriteResult{Key: res.Key, Index: res.Index, Version: res.Version, Repeat: res.Repeat})
	return nil
}

// queryInt parses an optional positive integer query parameter.
func queryInt(r *http.Request, name string, def, maxv int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		return 0, api.Errorf(api.CodeInvalid, "invalid %s %q: want a positive integer", name, s)
	}
	return min(v, maxv), nil
}

// recordKey parses the {id} and optional {rev} path values.
func recordKey(r *http.Request) (api.Key, error) {
	s := r.PathValue("id")
	if rev := r.PathValue("rev"); rev != "" {
		s += "/" + rev
	}
	return api.ParseKey(s)
}

// jsonRecords fills the JSON Value of records from their CBOR data.
func (h *handler) jsonRecords(r *http.Request, recs []api.Record) {
	if wantsCBOR(r) {
		return
	}
	for i := range recs {
		recs[i].FillValue()
		if recs[i].ValueError != "" {
			h.log.Warn("httpapi: record value has no JSON view", "tree", recs[i].Tree, "key", recs[i].Key, "err", recs[i].ValueError)
		}
	}
}

func (h *handler) listRecords(w http.ResponseWriter, r *http.Request) error {
	var after api.Key
	if s := r.URL.Query().Get("after"); s != "" {
		k, err := api.ParseKey(s)
		if err != nil {
			return api.Errorf(api.CodeInvalid, "invalid after %q: %v", s, err)
		}
		after = k
	}
	limit, err := queryInt(r, "limit", DefaultListLimit, MaxListLimit)
	if err != nil {
		return err
	}
	recs, err := h.node.FSM().List(r.PathValue("tree"), after, limit+1)
	if err != nil {
		return err
	}
	page := api.RecordPage{Records: nonNil(recs)}
	if len(recs) > limit {
		page.Records = recs[:limit]
		page.After = recs[limit-1].Key.String()
	}
	h.jsonRecords(r, page.Records)
	h.write(w, r, http.StatusOK, page)
	return nil
}

func (h *handler) getRecord(w http.ResponseWriter, r *http.Request) error {
	key, err := recordKey(r)
	if err != nil {
		return err
	}
	rec, err := h.node.FSM().Get(r.PathValue("tree"), key)
	if err != nil {
		return err
	}
	recs := []api.Record{rec}
	h.jsonRecords(r, recs)
	h.write(w, r, http.StatusOK, recs[0])
	return nil
}

// jsonWriteRequest is WriteRequest as JSON: the value is any JSON value,
// stored as CBOR.
type jsonWriteRequest struct {
	Client string          `json:"client"`
	ID     uint64          `json:"id"`
	Schema uint32          `json:"schema"`
	Value  json.RawMessage `json:"value"`
}

// writeRequest decodes a WriteRequest body, CBOR or JSON.
func (h *handler) writeRequest(w http.ResponseWriter, r *http.Request) (api.WriteRequest, error) {
	if isCBOR(r) {
		var req api.WriteRequest
		err := h.decode(w, r, &req)
		return req, err // the node checks the value (fsm.Validate)
	}
	var jr jsonWriteRequest
	if err := h.decode(w, r, &jr); err != nil {
		return api.WriteRequest{}, err
	}
	data, err := jsonValue(jr.Value, "value")
	if err != nil {
		return api.WriteRequest{}, err
	}
	return api.WriteRequest{Client: jr.Client, ID: jr.ID, Schema: jr.Schema, Data: data}, recordValue(data, "value")
}

func (h *handler) createRecord(w http.ResponseWriter, r *http.Request) error {
	req, err := h.writeRequest(w, r)
	if err != nil {
		return err
	}
	cmd := &fsm.Command{
		Op:     fsm.OpCreate,
		Tree:   r.PathValue("tree"),
		Client: req.Client,
		Key:    api.Key{ID: req.ID, Rev: 1},
		Schema: req.Schema,
		Data:   req.Data,
	}
	res, err := h.apply(r.Context(), cmd)
	if err != nil {
		return err
	}
	h.write(w, r, http.StatusCreated, api.WriteResult{Key: res.Key, Index: res.Index, Repeat: res.Repeat})
	return nil
}

func (h *handler) updateRecord(w http.ResponseWriter, r *http.Request) error {
	key, err := recordKey(r)
	if err != nil {
		return err
	}
	req, err := h.writeRequest(w, r)
	if err != nil {
		return err
	}
	if req.ID != 0 && req.ID != key.ID {
		return api.Errorf(api.CodeInvalid, "body id %d does not match the path's record id %d", req.ID, key.ID)
	}
	res, err := h.apply(r.Context(), &fsm.Command{
		Op:     fsm.OpUpdate,
		Tree:   r.PathValue("tree"),
		Client: req.Client,
		Key:    key,
		Schema: req.Schema,
		Data:   req.Data,
	})
	if err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, api.WriteResult{Key: res.Key, Index: res.Index, Repeat: res.Repeat})
	return nil
}

func (h *handler) deleteRecord(w http.ResponseWriter, r *http.Request) error {
	key, err := recordKey(r)
	if err != nil {
		return err
	}
	res, err := h.apply(r.Context(), &fsm.Command{
		Op:     fsm.OpDelete,
		Tree:   r.PathValue("tree"),
		Client: r.URL.Query().Get("client"),
		Key:    key,
	})
	if err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, api.WriteResult{Key: res.Key, Index: res.Index, Repeat: res.Repeat})
	return nil
}

// actionOps maps the {action} of a record route to its command.
var actionOps = map[string]fsm.Op{
	"borrow":       fsm.OpBorrow,
	"return":       fsm.OpReturn,
	"force-return": fsm.OpForceReturn,
	"release":      fsm.OpRelease,
	"state":        fsm.OpSetState,
	"revise":       fsm.OpRevise,
	"take":         fsm.OpTakeOver,
}

// recordActionNamed serves the route of one action (registered apart
// from {action} because it needs another role).
func (h *handler) recordActionNamed(action string) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		r.SetPathValue("action", action)
		return h.recordAction(w, r)
	}
}

func (h *handler) recordAction(w http.ResponseWriter, r *http.Request) error {
	action := r.PathValue("action")
	op, ok := actionOps[action]
	if !ok {
		return api.Errorf(api.CodeInvalid, "unknown action %q: want borrow, return, force-return, take, release, state or revise", action)
	}
	key, err := recordKey(r)
	if err != nil {
		return err
	}
	var req api.ActionRequest
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	cmd := &fsm.Command{
		Op:     op,
		Tree:   r.PathValue("tree"),
		Client: req.Client,
		Key:    key,
	}
	switch op {
	case fsm.OpBorrow:
		// No ttl asked: the cluster's default (none unless the nodes set
		// one); "none" asks for no expiry whatever the default.
		if req.TTL == "" {
			cmd.TTL = int64(h.node.DefaultBorrowTTL())
		} else if cmd.TTL, err = parseTTL(req.TTL); err != nil {
			return err
		}
	case fsm.OpForceReturn:
		cmd.Reason = req.Reason
	case fsm.OpTakeOver:
		// Client is the new holder: the operator hands the borrow over.
		if req.Client == "" {
			return api.Errorf(api.CodeInvalid, "take: no client given: want the id of the client that gets the borrow")
		}
		if cmd.TTL, err = parseTTL(req.TTL); err != nil {
			return err
		}
		cmd.Reason = req.Reason
	case fsm.OpSetState:
		cmd.State = req.State
	}
	res, err := h.apply(r.Context(), cmd)
	if err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, api.WriteResult{Key: res.Key, Index: res.Index, Repeat: res.Repeat})
	return nil
}

// parseTTL parses the ttl of a borrow or take-over: "" is no expiry (0).
func parseTTL(s string) (int64, error) {
	if s == "" || s == "none" {
		return 0, nil
	}
	ttl, err := time.ParseDuration(s)
	if err != nil || ttl <= 0 {
		return 0, api.Errorf(api.CodeInvalid, "invalid ttl %q: want a positive Go duration such as 30m or 2h, or none", s)
	}
	return int64(ttl), nil
}

// history answers a record's borrow history, oldest first. A record
// deleted since keeps its history; one that does not exist and has none is
// not found (as is a tree that does not exist).
func (h *handler) history(w http.ResponseWriter, r *http.Request) error {
	key, err := recordKey(r)
	if err != nil {
		return err
	}
	tree := r.PathValue("tree")
	entries, err := h.node.FSM().History(tree, key)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		if _, err := h.node.FSM().Get(tree, key); err != nil {
			return err
		}
	}
	h.write(w, r, http.StatusOK, nonNil(entries))
	return nil
}

func (h *handler) borrows(w http.ResponseWriter, r *http.Request) error {
	b, err := h.node.FSM().Borrows(r.URL.Query().Get("tree"))
	if err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, nonNil(b))
	return nil
}

func (h *handler) clients(w http.ResponseWriter, r *http.Request) error {
	c, err := h.node.FSM().Clients()
	if err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, nonNil(h.withSightings(r.Context(), c)))
	return nil
}

func (h *handler) registerClient(w http.ResponseWriter, r *http.Request) error {
	var req api.RegisterClientRequest
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	if req.Name == "" {
		return api.Errorf(api.CodeInvalid, "register client: no name: want a body such as {\"name\": \"ws-7\"} (shown to operators as the borrower)")
	}
	res, err := h.apply(r.Context(), &fsm.Command{
		Op:     fsm.OpRegisterClient,
		Client: uuid.NewString(),
		Name:   req.Name,
	})
	if err != nil {
		return err
	}
	if res.Client == nil {
		return api.Errorf(api.CodeInternal, "register-client: no client in the result")
	}
	h.write(w, r, http.StatusCreated, res.Client)
	return nil
}

// removeClient unregisters a client as operator: its borrows are returned
// (forced, with the reason), its ranges retired.
func (h *handler) removeClient(w http.ResponseWriter, r *http.Request) error {
	res, err := h.apply(r.Context(), &fsm.Command{
		Op:     fsm.OpRemoveClient,
		Client: r.PathValue("id"),
		Reason: r.URL.Query().Get("reason"),
	})
	if err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, api.WriteResult{Key: res.Key, Index: res.Index, Repeat: res.Repeat})
	return nil
}

func (h *handler) ranges(w http.ResponseWriter, r *http.Request) error {
	rg, err := h.node.FSM().Ranges(r.URL.Query().Get("client"))
	if err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, nonNil(rg))
	return nil
}

func (h *handler) grantRange(w http.ResponseWriter, r *http.Request) error {
	var req api.GrantRangeRequest
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	if req.Size == 0 {
		req.Size = DefaultRangeSize
	}
	if req.Size > MaxRangeSize {
		return api.Errorf(api.CodeInvalid, "range size %d is over the maximum of %d", req.Size, MaxRangeSize)
	}
	res, err := h.apply(r.Context(), &fsm.Command{
		Op:     fsm.OpGrantRange,
		Client: r.PathValue("id"),
		Size:   req.Size,
	})
	if err != nil {
		return err
	}
	if res.Range == nil {
		return api.Errorf(api.CodeInternal, "grant-range: no range in the result")
	}
	h.write(w, r, http.StatusCreated, res.Range)
	return nil
}

func (h *handler) logStream(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var from uint64
	if s := q.Get("from"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return api.Errorf(api.CodeInvalid, "invalid from %q: want a log index", s)
		}
		from = v
	}
	limit, err := queryInt(r, "limit", DefaultLogLimit, MaxLogLimit)
	if err != nil {
		return err
	}
	wait, err := queryWait(r)
	if err != nil {
		return err
	}
	if c := q.Get("client"); c != "" && h.seen != nil && mayActAs(r.Context(), c) {
		h.seen.saw(c, from)
	}
	page, err := h.node.Log(from, limit)
	if err != nil {
		return err
	}
	if len(page.Entries) == 0 && page.Next == from && wait > 0 {
		ctx, cancel := h.pollContext(r, wait)
		werr := h.node.WaitLog(ctx, from+1) // early when the node loses or has no leader
		cancel()
		if r.Context().Err() != nil {
			return nil // the client is gone
		}
		if werr == nil || errors.Is(werr, context.DeadlineExceeded) || errors.Is(werr, context.Canceled) {
			if page, err = h.node.Log(from, limit); err != nil {
				return err
			}
		}
	}
	h.write(w, r, http.StatusOK, page)
	return nil
}

// queryWait parses the wait of a long poll, capped at MaxLogWait.
func queryWait(r *http.Request) (time.Duration, error) {
	s := r.URL.Query().Get("wait")
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, api.Errorf(api.CodeInvalid, "invalid wait %q: want a Go duration such as 30s", s)
	}
	return min(d, MaxLogWait), nil
}

// pollContext returns the context of a long poll: r's, ended after wait
// or, at once, when the server stops. The caller must call cancel.
func (h *handler) pollContext(r *http.Request, wait time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	if h.stopping != nil {
		go func() { // ends with ctx at the latest
			select {
			case <-h.stopping:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	return ctx, cancel
}

func (h *handler) events(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	from, err := eventsFrom(q.Get("from"))
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", DefaultEventLimit, MaxEventLimit)
	if err != nil {
		return err
	}
	wait, err := queryWait(r)
	if err != nil {
		return err
	}
	var match func(*api.Event) bool
	if tree := q.Get("tree"); tree != "" {
		if err := fsm.ValidTreeName(tree); err != nil {
			return err
		}
		match = func(e *api.Event) bool { return e.Tree == tree }
	}
	// The wait is the node's; the context only ends it early (client
	// gone, server stopping).
	ctx, cancel := h.pollContext(r, wait+time.Second)
	defer cancel()
	page, err := h.node.EventsMatching(ctx, from, limit, wait, match)
	if err != nil {
		if r.Context().Err() != nil {
			return nil // the client is gone
		}
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
	page.Events = nonNil(page.Events)
	h.write(w, r, http.StatusOK, page)
	return nil
}

func (h *handler) contentHash(w http.ResponseWriter, r *http.Request) error {
	index, sum, err := h.node.FSM().ContentHash()
	if err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, api.ContentHash{Index: index, Hash: sum, Node: h.node.ID()})
	return nil
}

func (h *handler) snapshot(w http.ResponseWriter, r *http.Request) error {
	// From a file: the state's read transaction ends before the download
	// starts, however slow the reader.
	f, index, size, err := h.node.SnapshotFile()
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("X-Shelf-Snapshot-Index", strconv.FormatUint(index, 10))
	w.Header().Set("Content-Disposition", `attachment; filename="shelf-`+strconv.FormatUint(index, 10)+`.snap"`)
	if _, err := io.Copy(w, f); err != nil {
		h.log.Debug("httpapi: snapshot download ended early", "index", index, "err", err)
		// The status is out already: cut the connection so that the
		// client sees a truncated stream, not a complete one.
		panic(http.ErrAbortHandler)
	}
	return nil
}

func (h *handler) internalApply(w http.ResponseWriter, r *http.Request) error {
	if !isCBOR(r) {
		return api.Errorf(api.CodeInvalid, "%s takes an %s body", r.URL.Path, api.ContentCBOR)
	}
	b, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	cmd, err := fsm.DecodeCommand(b)
	if err != nil {
		return err
	}
	if cmd.Op == fsm.OpSetCluster || cmd.Op == fsm.OpSetRules {
		return api.Errorf(api.CodeInvalid, "%s is not accepted over the API", cmd.Op)
	}
	res, err := h.node.ApplyLeader(r.Context(), cmd)
	if err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, res)
	return nil
}

// nonNil turns a nil slice into an empty one, so JSON says [] not null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// eventsFrom parses the from parameter of the event routes: a log index,
// or "now" or empty for api.EventsFromNow.
func eventsFrom(s string) (uint64, error) {
	if s == "" || s == "now" {
		return api.EventsFromNow, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, api.Errorf(api.CodeInvalid, "invalid from %q: want a log index or \"now\"", s)
	}
	return v, nil
}
