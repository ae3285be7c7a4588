package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/tlsconf"
)

// healthcheckTimeout bounds one kvnode -healthcheck run.
const healthcheckTimeout = 5 * time.Second

// errUnhealthy is returned by healthcheck when the node answers but is
// not a serving member of a cluster with a leader.
var errUnhealthy = errors.New("unhealthy")

// healthURL is the base URL of the node that kvnode -healthcheck checks:
// the -http address (its loopback address when it listens on all
// interfaces), https when the TLS flags are set.
func healthURL(o *options) string {
	host, port, _ := net.SplitHostPort(o.http)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	scheme := "http"
	if o.tls.Cert != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// healthcheck is kvnode -healthcheck: it asks the node configured by the
// same flags (or SHELF_* variables) whether it is ready (GET /readyz),
// presenting the node certificate when TLS is on: it succeeds when the
// node is a member that knows a leader and has caught up. A container
// HEALTHCHECK uses it, since a FROM scratch image has no curl.
func healthcheck(ctx context.Context, o *options, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	hc := &http.Client{}
	if o.tls.Cert != "" {
		certs, err := tlsconf.LoadNode(o.tls)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = certs.PeerClient.Clone()
		hc.Transport = tr
	}
	base := healthURL(o)
	rd, err := api.NewClient(base, hc).Ready(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %s: %w", errUnhealthy, base, err)
	case o.id != "" && rd.NodeID != o.id:
		return fmt.Errorf("%w: %s is node %q, not %q", errUnhealthy, base, rd.NodeID, o.id)
	case !rd.Ready:
		return fmt.Errorf("%w: node %s is not ready: %s", errUnhealthy, rd.NodeID, rd.Reason)
	}
	fmt.Fprintf(stdout, "kvnode: healthy: node %s ready, leader %s, applied index %d\n", rd.NodeID, rd.Leader, rd.AppliedIndex)
	return nil
}
