package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// VersionInfo answers GET /v1/version: the build of the node that answers
// and the state machine rules it knows and the cluster runs.
type VersionInfo struct {
	// Version is the release version ("devel" for a build without one).
	Version string `json:"version"`
	// Commit is the git revision the binary was built from, "" if unknown;
	// Modified says the work tree had uncommitted changes.
	Commit   string `json:"commit,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	// CommitTime is the commit's time (RFC 3339), "" if unknown.
	CommitTime string `json:"commit_time,omitempty"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"go_version"`
	// RulesSupported is the newest state machine rules version the binary
	// applies (fsm.RulesVersion); ClusterRules the version the cluster's
	// replicated state runs, as this node has applied it.
	RulesSupported uint32 `json:"rules_supported"`
	ClusterRules   uint32 `json:"cluster_rules"`
	// NodeID and ClusterID name the node that answered.
	NodeID    string `json:"node_id"`
	ClusterID string `json:"cluster_id,omitempty"`
}

// Health answers GET /healthz with status 200: the node's process serves.
type Health struct {
	Status string `json:"status"` // "ok"
	NodeID string `json:"node_id"`
}

// Readiness answers GET /readyz: whether the node is a member of a
// cluster, knows a leader it heard from recently, and has applied the
// leader's commit index within a small lag. The status is 200 when Ready,
// 503 otherwise, with Reason saying why.
type Readiness struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
	NodeID string `json:"node_id"`
	// Leader is the leader's id as this node knows it, "" for none.
	Leader string `json:"leader,omitempty"`
	// AppliedIndex is this node's last applied log index; LeaderCommitIndex
	// the leader's commit index (0 when it could not be learnt); Lag the
	// difference when positive.
	AppliedIndex      uint64 `json:"applied_index"`
	LeaderCommitIndex uint64 `json:"leader_commit_index,omitempty"`
	Lag               uint64 `json:"lag"`
	// MaxLag is the lag up to which the node counts as caught up.
	MaxLag uint64 `json:"max_lag"`
}

// Version returns the build and rules versions of the node (GET
// /v1/version).
func (c *Client) Version(ctx context.Context) (VersionInfo, error) {
	return call[VersionInfo](ctx, c, http.MethodGet, "/v1/version", nil, nil)
}

// Health asks the node whether its process serves (GET /healthz). A node
// whose state machine stopped answers an *Error with code unavailable.
func (c *Client) Health(ctx context.Context) (Health, error) {
	return call[Health](ctx, c, http.MethodGet, "/healthz", nil, nil)
}

// Ready asks the node whether it is ready (GET /readyz). Both answers, 200
// and 503, come back as a Readiness without error; the error is for no
// answer or another one.
func (c *Client) Ready(ctx context.Context) (Readiness, error) {
	var rd Readiness
	u := c.base + "/readyz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return rd, fmt.Errorf("GET %s: %w", u, err)
	}
	req.Header.Set("Accept", ContentCBOR)
	resp, err := c.hc.Do(req)
	if err != nil {
		return rd, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return rd, errorAnswer(http.MethodGet, u, resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return rd, fmt.Errorf("GET %s: read answer: %w", u, err)
	}
	if err := decodeBody(resp.Header.Get("Content-Type"), b, &rd); err != nil || rd.NodeID == "" {
		// Not a node's readiness: a proxy's 503, or an API error.
		var e Error
		if decodeBody(resp.Header.Get("Content-Type"), b, &e) == nil && e.Code != "" {
			return Readiness{}, &e
		}
		return Readiness{}, &statusError{msg: fmt.Sprintf("GET %s: %s: not a readiness answer", u, resp.Status), base: ErrUnavailable}
	}
	return rd, nil
}
