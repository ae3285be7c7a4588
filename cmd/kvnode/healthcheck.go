package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
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
// same flags (or SHELF_* variables) for its status, presenting the node
// certificate when TLS is on, and succeeds when the node is in the raft
// configuration and knows a leader it has heard from lately. A container
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
	st, err := api.NewClient(base, hc).Status(ctx)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", errUnhealthy, base, err)
	}
	if o.id != "" && st.NodeID != o.id {
		return fmt.Errorf("%w: %s is node %q, not %q", errUnhealthy, base, st.NodeID, o.id)
	}
	member := slices.ContainsFunc(st.Members, func(m api.Member) bool { return m.ID == st.NodeID && m.Suffrage != "" })
	switch {
	case !member:
		return fmt.Errorf("%w: node %s is not in the raft configuration yet", errUnhealthy, st.NodeID)
	case st.Leader == "" || st.NoLeader:
		return fmt.Errorf("%w: node %s knows no leader it has heard from lately", errUnhealthy, st.NodeID)
	}
	fmt.Fprintf(stdout, "kvnode: healthy: node %s %s, leader %s, applied index %d\n", st.NodeID, st.State, st.Leader, st.AppliedIndex)
	return nil
}
