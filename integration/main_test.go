package integration

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Paths of the binaries TestMain builds, shared by every test.
var (
	kvnodeBin string
	kvctlBin  string
	racerBin  string // testdata/racer: a client process racing for borrows
)

// TestMain builds kvnode and kvctl into a temporary directory, runs the
// tests and removes the directory.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// The tests skip themselves; nothing to build.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "shelf-integration-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		os.Exit(1)
	}
	code := 1
	if err := buildBinaries(dir); err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
	} else {
		code = m.Run()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// buildBinaries builds kvnode, kvctl and testdata/racer into dir with the
// go command that runs this test.
func buildBinaries(dir string) error {
	// The go command exports GOROOT to the tests it runs; prefer that
	// toolchain, then whatever go is on PATH.
	goBin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(goBin); os.Getenv("GOROOT") == "" || err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			return fmt.Errorf("no go command: %w", err)
		}
	}
	start := time.Now()
	cmd := exec.Command(goBin, "build", "-o", dir+string(filepath.Separator),
		"github.com/shelfdb/shelf/cmd/kvnode", "github.com/shelfdb/shelf/cmd/kvctl", "./integration/testdata/racer")
	cmd.Dir = ".." // the module root; the test runs in integration/
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build kvnode kvctl racer: %v\n%s", err, strings.TrimSpace(string(out)))
	}
	kvnodeBin = filepath.Join(dir, "kvnode")
	kvctlBin = filepath.Join(dir, "kvctl")
	racerBin = filepath.Join(dir, "racer")
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "integration: built kvnode, kvctl and racer in %v\n", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// skipShort skips tb in -short mode: these tests start real processes.
func skipShort(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("multi-process test; skipped with -short")
	}
}

// cleanEnv returns the environment without SHELF_* variables, so that
// the caller's settings cannot change the flags of the processes under
// test.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHELF_") {
			env = append(env, kv)
		}
	}
	return env
}
