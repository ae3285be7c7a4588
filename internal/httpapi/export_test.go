package httpapi

import "net/http"

// RouteAccess is a route of the route table and who may call it.
type RouteAccess struct{ Pattern, Access string }

// Routes returns the route table of a handler from New.
func Routes(h http.Handler) []RouteAccess {
	var out []RouteAccess
	for _, r := range h.(*handler).table {
		out = append(out, RouteAccess{r.pattern, r.access.String()})
	}
	return out
}
