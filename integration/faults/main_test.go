package faults

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	shelfcluster "github.com/shelfdb/shelf/cluster"
)

// Flags of the suite.
var (
	flagSchedules = flag.Int("faults.schedules", 0, "number of schedules, seeds -faults.first.. (0: the CI set of ciSchedules)")
	flagFirst     = flag.Uint64("faults.first", 1, "seed of the first schedule")
	flagSeed      = flag.Uint64("faults.seed", 0, "run only the schedule of this seed (replay)")
	flagDuration  = flag.Duration("faults.duration", 25*time.Second, "nemesis and workload time of one schedule")
	flagKinds     = flag.String("faults.kinds", "", "comma-separated fault kinds to draw from (default all: kill9-restart, pause-leader, isolate-leader, minority, flip, one-way)")
	flagRaftLog   = flag.String("faults.raftlog", shelfcluster.DefaultLogStore, "raft log store of every kvnode (its -raft-log): bolt or wal; default kvnode's default for a new data directory")
)

// kvnodeBin is the kvnode binary TestMain builds.
var kvnodeBin string

// TestMain builds kvnode into a temporary directory, runs the tests and
// removes the directory.
func TestMain(m *testing.M) {
	flag.Parse()
	if *flagRaftLog != "bolt" && *flagRaftLog != "wal" {
		fmt.Fprintf(os.Stderr, "faults: -faults.raftlog %q: want bolt or wal\n", *flagRaftLog)
		os.Exit(2)
	}
	if testing.Short() {
		os.Exit(m.Run()) // the tests skip themselves
	}
	dir, err := os.MkdirTemp("", "shelf-faults-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "faults: %v\n", err)
		os.Exit(1)
	}
	code := 1
	if err := buildKvnode(dir); err != nil {
		fmt.Fprintf(os.Stderr, "faults: %v\n", err)
	} else {
		code = m.Run()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// buildKvnode builds cmd/kvnode into dir with the go command running this
// test.
func buildKvnode(dir string) error {
	goBin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(goBin); os.Getenv("GOROOT") == "" || err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			return fmt.Errorf("no go command: %w", err)
		}
	}
	cmd := exec.Command(goBin, "build", "-o", dir+string(filepath.Separator), "github.com/shelfdb/shelf/cmd/kvnode")
	cmd.Dir = filepath.Join("..", "..") // the module root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build kvnode: %w\n%s", err, strings.TrimSpace(string(out)))
	}
	kvnodeBin = filepath.Join(dir, "kvnode")
	return nil
}

// cleanEnv returns the environment without SHELF_* variables, so that the
// caller's settings cannot change the flags of the processes under test.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHELF_") {
			env = append(env, kv)
		}
	}
	return env
}
