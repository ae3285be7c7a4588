package httpapi

import (
	"net/http"

	"github.com/shelfdb/shelf/api"
)

// whoami answers who the node takes the caller for (api.WhoAmI). The
// route is open, so that a login page can try a token: credentials that
// name no token give authenticated=false with the reason, not a 401. With
// auth off every caller is an admin, as on every other route.
func (h *handler) whoami(w http.ResponseWriter, r *http.Request) error {
	ans := api.WhoAmI{Auth: h.auth, Node: h.node.ID(), Cluster: h.node.ClusterID()}
	w.Header().Set("Cache-Control", "no-store")
	if !h.auth {
		ans.Authenticated, ans.Role = true, api.RoleAdmin
		h.write(w, r, http.StatusOK, ans)
		return nil
	}
	_, given := bearer(r)
	cert := r.TLS != nil && len(r.TLS.VerifiedChains) > 0
	if given || cert {
		ti, _, aerr := h.authenticate(r)
		if aerr != nil {
			ans.Reason = aerr.Message
		} else {
			ans.Authenticated = true
			ans.Name, ans.Role, ans.Client = ti.Name, ti.Role, ti.Client
		}
	}
	h.write(w, r, http.StatusOK, ans)
	return nil
}
