package main

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/shelfdb/shelf/internal/version"
)

// TestVersionFlag: -version prints the build and exits, whatever else the
// command line lacks; SHELF_VERSION does not turn it on (an image may set
// such a variable for its own use), SHELF_PPROF turns on -pprof.
func TestVersionFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"-version"}, noEnv, &out, &errb); err != nil {
		t.Fatalf("kvnode -version: %v (%s)", err, errb.String())
	}
	if want := "kvnode " + version.Get().String() + "\n"; out.String() != want {
		t.Errorf("kvnode -version printed %q, want %q", out.String(), want)
	}
	if !strings.Contains(out.String(), runtime.Version()) {
		t.Errorf("kvnode -version %q does not name the Go version %s", out.String(), runtime.Version())
	}

	env := map[string]string{"SHELF_VERSION": "true", "SHELF_PPROF": "true"}
	o, err := parseFlags([]string{"-dev"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil || o.version || !o.pprof {
		t.Errorf("SHELF_VERSION and SHELF_PPROF set: %+v, %v; want version off, pprof on", o, err)
	}
	o, err = parseFlags([]string{"-dev"}, noEnv, io.Discard)
	if err != nil || o.pprof {
		t.Errorf("-pprof must be off by default: %+v, %v", o, err)
	}
}

// TestVersionLdflags: a release build sets the version and commit at link
// time, and -version prints them.
func TestVersionLdflags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	const pkg = "github.com/shelfdb/shelf/internal/version"
	bin := buildKvnode(t, t.TempDir(), "-ldflags", "-X "+pkg+".Version=v9.8.7 -X "+pkg+".Commit=0123456789abcdef")
	out, err := exec.Command(bin, "-version").CombinedOutput()
	if err != nil {
		t.Fatalf("kvnode -version: %v\n%s", err, out)
	}
	// ", modified" may follow the commit where the go command stamps the
	// work tree's state.
	if want := "kvnode v9.8.7 (commit 0123456789ab"; !strings.HasPrefix(string(out), want) || !strings.HasSuffix(string(out), runtime.Version()+")\n") {
		t.Errorf("kvnode -version printed %q, want %q... ending with the Go version", out, want)
	}
}
