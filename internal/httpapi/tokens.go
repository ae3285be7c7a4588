package httpapi

import (
	"net/http"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
)

// createToken makes an API token: the node draws the secret, the cluster
// stores its hash, and the answer is the only place the secret appears.
func (h *handler) createToken(w http.ResponseWriter, r *http.Request) error {
	var req api.CreateTokenRequest
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	if err := fsm.ValidTokenName(req.Name); err != nil {
		return err
	}
	if _, err := api.ParseRole(string(req.Role)); err != nil {
		return api.Errorf(api.CodeInvalid, "%v", err)
	}
	secret, err := api.NewToken()
	if err != nil {
		return err
	}
	res, err := h.apply(r.Context(), &fsm.Command{
		Op: fsm.OpCreateToken, Name: req.Name, Role: string(req.Role), Client: req.Client, Hash: api.TokenHash(secret),
	})
	if err != nil {
		return err
	}
	// A follower answers once the leader applied the create; the token
	// works here (and is shown with its creation time) once this node
	// has applied it too.
	if err := h.node.WaitIndex(r.Context(), res.Index); err != nil {
		return err
	}
	ti, ok := h.node.FSM().TokenByHash(api.TokenHash(secret))
	if !ok {
		return api.Errorf(api.CodeInternal, "create-token: the token is not in the state after its commit")
	}
	h.log.Info("httpapi: token created", "name", ti.Name, "role", ti.Role, "client", ti.Client, "by", callerName(r))
	h.write(w, r, http.StatusCreated, api.CreatedToken{TokenInfo: ti, Token: secret})
	return nil
}

// tokens lists the API tokens, never their secrets.
func (h *handler) tokens(w http.ResponseWriter, r *http.Request) error {
	h.write(w, r, http.StatusOK, nonNil(h.node.FSM().Tokens()))
	return nil
}

// revokeToken deletes a token; requests with it are refused as soon as
// each node applies the revoke.
func (h *handler) revokeToken(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	res, err := h.apply(r.Context(), &fsm.Command{Op: fsm.OpRevokeToken, Name: name})
	if err != nil {
		return err
	}
	if err := h.node.WaitIndex(r.Context(), res.Index); err != nil {
		return err // revoked in the cluster; this node has not applied it yet
	}
	h.log.Info("httpapi: token revoked", "name", name, "by", callerName(r))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// callerName is the name of the request's token, for logs.
func callerName(r *http.Request) string {
	if c := callerOf(r.Context()); c != nil {
		return c.token.Name
	}
	return ""
}
