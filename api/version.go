package api

import (
	"context"
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
