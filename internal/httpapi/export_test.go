package httpapi

import "time"

// RouteAccess is a route of the route table and who may call it.
type RouteAccess struct{ Pattern, Access string }

// Routes returns the route table of the handler New makes of cfg.
func Routes(cfg Config) []RouteAccess {
	var out []RouteAccess
	for _, r := range build(cfg).table {
		out = append(out, RouteAccess{r.pattern, r.access.String()})
	}
	return out
}

// SetStreamPing makes the event streams of the handler of cfg ping after
// d of silence instead of StreamPingInterval.
func SetStreamPing(cfg *Config, d time.Duration) { cfg.streamPing = d }
