// Package version tells which Shelf build is running: one place for the
// version string of kvnode, kvctl, GET /v1/version and the shelf_build_info
// metric.
//
// The version comes from, in order: the Version variable set at link time
// (go build -ldflags "-X github.com/shelfdb/shelf/internal/version.Version=v1.2.0"),
// the module version of a binary built with go install MODULE@VERSION, or
// "devel". The commit and whether the work tree had changes come from the
// build information the go command records for builds inside a git checkout
// (vcs.revision, vcs.modified, vcs.time); Commit overrides the revision
// where that information is missing (a build from a source tarball, a
// container build without .git).
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// Set at link time with -ldflags "-X github.com/shelfdb/shelf/internal/version.NAME=VALUE".
var (
	// Version is the release version, such as "v1.2.0".
	Version = ""
	// Commit is the source revision, used when the build information has none.
	Commit = ""
)

// Devel is the version of a build that has no release version.
const Devel = "devel"

// Info describes the running build.
type Info struct {
	// Version is the release version, or Devel.
	Version string
	// Commit is the git revision the binary was built from, "" if unknown.
	Commit string
	// Modified says the work tree had uncommitted changes at build time.
	Modified bool
	// CommitTime is the commit's time (RFC 3339) as recorded by the go
	// command, "" if unknown.
	CommitTime string
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string
}

var (
	once sync.Once
	info Info
)

// Get returns the running build's Info.
func Get() Info {
	once.Do(func() {
		bi, _ := debug.ReadBuildInfo()
		info = fromBuildInfo(bi, Version, Commit)
	})
	return info
}

// fromBuildInfo computes Info from the build information (nil if the
// binary has none) and the link-time overrides.
func fromBuildInfo(bi *debug.BuildInfo, version, commit string) Info {
	in := Info{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if bi == nil {
		if in.Version == "" {
			in.Version = Devel
		}
		return in
	}
	if bi.GoVersion != "" {
		in.GoVersion = bi.GoVersion
	}
	if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		in.Version = bi.Main.Version
	}
	if in.Version == "" {
		in.Version = Devel
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if in.Commit == "" {
				in.Commit = s.Value
			}
		case "vcs.modified":
			in.Modified = s.Value == "true"
		case "vcs.time":
			in.CommitTime = s.Value
		}
	}
	return in
}

// ShortCommit is the commit's first 12 characters, or "unknown".
func (i Info) ShortCommit() string {
	switch {
	case i.Commit == "":
		return "unknown"
	case len(i.Commit) > 12:
		return i.Commit[:12]
	default:
		return i.Commit
	}
}

// String formats the build on one line, as "kvnode -version" prints it:
// "v1.2.0 (commit 0123456789ab, modified, go1.26.8)".
func (i Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (commit %s", i.Version, i.ShortCommit())
	if i.Modified {
		b.WriteString(", modified")
	}
	fmt.Fprintf(&b, ", %s)", i.GoVersion)
	return b.String()
}
