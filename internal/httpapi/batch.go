package httpapi

import (
	"net/http"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
)

// batch applies the writes of a BatchRequest (CBOR only: it is the client
// library's route) in order, as one log entry per fsm.MaxBatchCommands
// ops (rules 4; consecutive entries, one per op, before): see
// cluster.Node.ApplyMany.
func (h *handler) batch(w http.ResponseWriter, r *http.Request) error {
	if !isCBOR(r) {
		return api.Errorf(api.CodeInvalid, "%s takes an %s body", r.URL.Path, api.ContentCBOR)
	}
	var req api.BatchRequest
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	if len(req.Ops) == 0 || len(req.Ops) > api.MaxBatchOps {
		return api.Errorf(api.CodeInvalid, "a batch takes 1 to %d ops, not %d", api.MaxBatchOps, len(req.Ops))
	}
	keyed := idemOf(r.Context()) != nil
	cmds := make([]*fsm.Command, len(req.Ops))
	for i, op := range req.Ops {
		kind, ok := fsm.ParseOp(op.Op)
		if !ok || (kind != fsm.OpCreate && kind != fsm.OpUpdate && kind != fsm.OpDelete) {
			return api.Errorf(api.CodeInvalid, "op %d: unknown op %q: want create, update or delete", i, op.Op)
		}
		key := op.Key
		if kind == fsm.OpCreate {
			key.Rev = 1
		}
		cmds[i] = &fsm.Command{Op: kind, Tree: op.Tree, Client: req.Client, Key: key, Schema: op.Schema, Data: op.Data}
		switch {
		case keyed && op.Seq != 0:
			return api.Errorf(api.CodeInvalid, "op %d: a batch with an %s takes no seq (op i is number i+1 of the key)", i, api.IdempotencyHeader)
		case keyed:
			withIdem(r.Context(), cmds[i], uint64(i)+1)
		case op.Seq != 0 && req.Client == "":
			return api.Errorf(api.CodeInvalid, "op %d: seq %d without a client: a sequence number belongs to the client's session", i, op.Seq)
		case op.Seq != 0:
			cmds[i].Session, cmds[i].Seq = req.Client, op.Seq
		}
	}
	for _, c := range cmds {
		if err := h.mayAct(r.Context(), c); err != nil {
			return err
		}
	}
	res, err := h.node.ApplyMany(r.Context(), cmds)
	for _, x := range res {
		noteRepeat(r.Context(), x)
	}
	if err != nil && len(res) == 0 {
		return err
	}
	out := api.BatchResult{Results: make([]api.BatchItem, len(cmds))}
	for i := range cmds {
		switch {
		case i < len(res):
			out.Results[i] = api.BatchItem{Key: res[i].Key, Index: res[i].Index, Err: res[i].Err, Repeat: res[i].Repeat}
			if res[i].Err != nil {
				out.Results[i].Key = cmds[i].Key
			}
		default:
			out.Results[i] = api.BatchItem{Key: cmds[i].Key, Err: api.Errorf(api.CodeUnavailable, "not known whether applied: %v", err)}
		}
	}
	h.write(w, r, http.StatusOK, out)
	return nil
}

// internalApplyBatch applies a batch forwarded by a follower (leader only).
func (h *handler) internalApplyBatch(w http.ResponseWriter, r *http.Request) error {
	if !isCBOR(r) {
		return api.Errorf(api.CodeInvalid, "%s takes an %s body", r.URL.Path, api.ContentCBOR)
	}
	var cmds []*fsm.Command
	if err := h.decode(w, r, &cmds); err != nil {
		return err
	}
	if len(cmds) == 0 || len(cmds) > api.MaxBatchOps {
		return api.Errorf(api.CodeInvalid, "a batch takes 1 to %d commands, not %d", api.MaxBatchOps, len(cmds))
	}
	for i, c := range cmds {
		if c == nil || c.Op == 0 || !fsm.Batchable(c) {
			return api.Errorf(api.CodeInvalid, "command %d is not accepted over the API", i)
		}
	}
	res, err := h.node.ApplyLeaderMany(r.Context(), cmds)
	if err != nil && len(res) == 0 {
		return err
	}
	// After a failure that follows committed entries, the answer is the
	// known prefix of the results: fewer results than commands, and the
	// follower answers the commands after them as of unknown outcome.
	h.write(w, r, http.StatusOK, res)
	return nil
}
