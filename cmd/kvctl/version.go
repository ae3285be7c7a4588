package main

import (
	"context"
	"fmt"
	"io"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
	"github.com/shelfdb/shelf/internal/version"
)

// buildVersion is kvctl's own build in "kvctl version -o json".
type buildVersion struct {
	Version        string `json:"version"`
	Commit         string `json:"commit,omitempty"`
	Modified       bool   `json:"modified,omitempty"`
	CommitTime     string `json:"commit_time,omitempty"`
	GoVersion      string `json:"go_version"`
	RulesSupported uint32 `json:"rules_supported"`
}

// versionAnswer is the answer of "kvctl version".
type versionAnswer struct {
	Client buildVersion     `json:"client"`
	Server *api.VersionInfo `json:"server,omitempty"`
}

// version prints kvctl's build and, unless -client, the build of the node
// that answers (GET /v1/version). When no node answers, kvctl's own is
// printed before the error.
func (c *cli) version(ctx context.Context, args []string) error {
	const line = "version [-client]"
	fs := c.flagSet("version")
	clientOnly := fs.Bool("client", false, "only kvctl's own version")
	if _, err := c.parse(fs, line, args, 0, 0); err != nil {
		return err
	}
	v := version.Get()
	out := versionAnswer{Client: buildVersion{Version: v.Version, Commit: v.Commit, Modified: v.Modified,
		CommitTime: v.CommitTime, GoVersion: v.GoVersion, RulesSupported: fsm.RulesVersion}}
	var err error
	if !*clientOnly {
		var sv api.VersionInfo
		if sv, err = c.api().Version(ctx); err == nil {
			out.Server = &sv
		}
	}
	if eerr := c.emit(out, func(w io.Writer) {
		cv := out.Client
		row(w, "client", version.Info{Version: cv.Version, Commit: cv.Commit, Modified: cv.Modified, GoVersion: cv.GoVersion})
		row(w, "client rules", fmt.Sprintf("up to %d", cv.RulesSupported))
		if s := out.Server; s != nil {
			row(w, "server", version.Info{Version: s.Version, Commit: s.Commit, Modified: s.Modified, GoVersion: s.GoVersion})
			row(w, "server node", fmt.Sprintf("%s (%s)", s.NodeID, c.api().BaseURL()))
			row(w, "server rules", fmt.Sprintf("up to %d; the cluster runs %d", s.RulesSupported, s.ClusterRules))
		}
	}); eerr != nil {
		return eerr
	}
	if err != nil {
		return fmt.Errorf("server version: %w", err)
	}
	return nil
}
