package version

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	vcs := []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"},
		{Key: "vcs.modified", Value: "true"},
		{Key: "vcs.time", Value: "2026-12-04T07:00:00Z"},
	}
	tests := []struct {
		name            string
		bi              *debug.BuildInfo
		version, commit string
		want            Info
		str             string
	}{
		{
			name: "git checkout build",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs},
			want: Info{Version: Devel, Commit: "0123456789abcdef0123", Modified: true, CommitTime: "2026-12-04T07:00:00Z", GoVersion: "go1.26.8"},
			str:  "devel (commit 0123456789ab, modified, go1.26.8)",
		},
		{
			name: "go install at a version",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.3.0"}},
			want: Info{Version: "v1.3.0", GoVersion: "go1.26.8"},
			str:  "v1.3.0 (commit unknown, go1.26.8)",
		},
		{
			name:    "ldflags override both",
			bi:      &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.3.0"}, Settings: vcs},
			version: "v2.0.0", commit: "feedbeef",
			want: Info{Version: "v2.0.0", Commit: "feedbeef", Modified: true, CommitTime: "2026-12-04T07:00:00Z", GoVersion: "go1.26.8"},
			str:  "v2.0.0 (commit feedbeef, modified, go1.26.8)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromBuildInfo(tt.bi, tt.version, tt.commit)
			if got != tt.want {
				t.Errorf("fromBuildInfo = %+v, want %+v", got, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("String() = %q, want %q", s, tt.str)
			}
		})
	}
	if got := fromBuildInfo(nil, "", ""); got.Version != Devel || got.GoVersion == "" {
		t.Errorf("no build info: %+v, want version %q and the running Go version", got, Devel)
	}
}
