package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

func noEnv(string) string { return "" }

func TestFlags(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string // substring of the error; "" = valid
	}{
		{"dev", []string{"-dev"}, nil, ""},
		{"full", []string{"-id", "n1", "-data", "d", "-bootstrap"}, nil, ""},
		{"join list", []string{"-id", "n2", "-data", "d", "-join", "127.0.0.1:7003, 127.0.0.1:7013"}, nil, ""},
		{"env", nil, map[string]string{"SHELF_ID": "n1", "SHELF_DATA": "d", "SHELF_BOOTSTRAP": "true", "SHELF_LOG_LEVEL": "debug"}, ""},
		{"no id", []string{"-data", "d", "-bootstrap"}, nil, "-id is required"},
		{"no data", []string{"-id", "n1", "-bootstrap"}, nil, "-data is required"},
		{"both", []string{"-id", "n1", "-data", "d", "-bootstrap", "-join", "127.0.0.1:7003"}, nil, "exclude each other"},
		{"dev join", []string{"-dev", "-join", "127.0.0.1:7003"}, nil, "cannot -join"},
		{"bad http", []string{"-dev", "-http", "7001"}, nil, "-http"},
		{"bad port", []string{"-dev", "-gossip", "127.0.0.1:99999"}, nil, "bad port"},
		{"unspecified raft", []string{"-dev", "-raft", "0.0.0.0:7002"}, nil, "-raft"},
		{"unknown raft log store", []string{"-dev", "-raft-log", "leveldb"}, nil, "-raft-log"},
		{"wal raft log store", []string{"-dev", "-raft-log", "wal"}, nil, ""},
		{"bad join", []string{"-id", "n2", "-data", "d", "-join", "nohost"}, nil, "-join"},
		{"bad level", []string{"-dev", "-log-level", "loud"}, nil, "-log-level"},
		{"bad env", nil, map[string]string{"SHELF_BOOTSTRAP": "maybe"}, "SHELF_BOOTSTRAP"},
		{"unknown flag", []string{"-frobnicate"}, nil, "frobnicate"},
		{"stray arg", []string{"-dev", "extra"}, nil, "unexpected arguments"},
		{"tls", []string{"-dev", "-tls-cert", "n.crt", "-tls-key", "n.key", "-tls-ca", "ca.crt", "-tls-client-ca", "ca.crt"}, nil, ""},
		{"tls env", []string{"-dev"}, map[string]string{"SHELF_TLS_CERT": "n.crt", "SHELF_TLS_KEY": "n.key", "SHELF_TLS_CA": "ca.crt", "SHELF_GOSSIP_KEY": "AAAAAAAAAAAAAAAAAAAAAA=="}, ""},
		{"tls without ca", []string{"-dev", "-tls-cert", "n.crt", "-tls-key", "n.key"}, nil, "-tls-ca"},
		{"client ca alone", []string{"-dev", "-tls-client-ca", "ca.crt"}, nil, "-tls-cert"},
		{"short gossip key", []string{"-dev", "-gossip-key", "AAAA"}, nil, "want 16, 24 or 32"},
		{"gossip key not base64", nil, map[string]string{"SHELF_ID": "n1", "SHELF_DATA": "d", "SHELF_GOSSIP_KEY": "secret!"}, "not base64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			getenv := func(k string) string { return c.env[k] }
			o, err := parseFlags(c.args, getenv, io.Discard)
			if c.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one containing %q (options %+v)", err, c.want, o)
			}
			if !errors.As(err, new(usageError)) {
				t.Errorf("%v is not a usage error", err)
			}
		})
	}

	o, err := parseFlags([]string{"-dev"}, noEnv, io.Discard)
	if err != nil || o.id != "dev" || o.data != "shelf-data" || !o.bootstrap || o.http != defaultHTTP {
		t.Errorf("-dev: %+v %v", o, err)
	}
	// The command line wins over the environment.
	o, err = parseFlags([]string{"-id", "flag", "-data", "d", "-bootstrap"}, func(k string) string {
		return map[string]string{"SHELF_ID": "env", "SHELF_HTTP": "127.0.0.1:9001"}[k]
	}, io.Discard)
	if err != nil || o.id != "flag" || o.http != "127.0.0.1:9001" {
		t.Errorf("flag over env: %+v %v", o, err)
	}
	o, err = parseFlags([]string{"-id", "n", "-data", "d", "-join", "a:1,b:2"}, noEnv, io.Discard)
	if err != nil || len(o.join) != 2 || o.join[1] != "b:2" {
		t.Errorf("join: %+v %v", o, err)
	}
}

// syncBuf is an io.Writer safe for concurrent use.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// node is kvnode's run in this process.
type node struct {
	cancel context.CancelFunc
	done   chan error
	stdout *syncBuf
	stderr *syncBuf
}

func startRun(t *testing.T, args ...string) *node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{cancel: cancel, done: make(chan error, 1), stdout: &syncBuf{}, stderr: &syncBuf{}}
	go func() { n.done <- run(ctx, args, noEnv, n.stdout, n.stderr) }()
	t.Cleanup(func() { n.stop(t) })
	return n
}

// addr waits for the "listening on" line and returns the HTTP address.
func (n *node) addr(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, rest, ok := strings.Cut(n.stdout.String(), "listening on http://"); ok {
			return strings.TrimSpace(strings.SplitN(rest, "\n", 2)[0])
		}
		select {
		case err := <-n.done:
			n.done <- err
			t.Fatalf("kvnode exited: %v\n%s", err, n.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("kvnode did not start:\n%s", n.stderr.String())
	return ""
}

func (n *node) stop(t *testing.T) error {
	t.Helper()
	n.cancel()
	select {
	case err := <-n.done:
		n.done <- err
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("kvnode did not stop")
		return nil
	}
}

func waitLeader(t *testing.T, c *api.Client) api.Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := c.Status(context.Background())
		if err == nil && st.Leader != "" && st.ClusterID != "" {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader: %+v %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunRestart(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "n1")
	args := []string{"-id", "n1", "-data", dir, "-http", "127.0.0.1:0", "-raft", "127.0.0.1:0", "-gossip", "127.0.0.1:0", "-log-level", "warn"}
	n := startRun(t, append(args, "-bootstrap")...)
	c := api.NewClient(n.addr(t), nil)
	st := waitLeader(t, c)
	wr, err := c.Create(ctx, "parts", api.WriteRequest{Data: []byte{0x01}})
	if err != nil {
		t.Fatal(err)
	}
	// A second node on the same data directory is refused.
	err = run(ctx, []string{"-id", "n1", "-data", dir, "-http", "127.0.0.1:0", "-raft", "127.0.0.1:0", "-gossip", "127.0.0.1:0"}, noEnv, io.Discard, io.Discard)
	if err == nil || !(strings.Contains(err.Error(), "lock") || strings.Contains(err.Error(), "in use")) {
		t.Errorf("second node on the same data: %v, want an in-use error", err)
	}
	if err := n.stop(t); err != nil {
		t.Fatalf("run: %v\n%s", err, n.stderr.String())
	}

	// Restarted without -bootstrap or -join: the data is there.
	n = startRun(t, args...)
	c = api.NewClient(n.addr(t), nil)
	st2 := waitLeader(t, c)
	if st2.ClusterID != st.ClusterID {
		t.Errorf("cluster id %q after restart, was %q", st2.ClusterID, st.ClusterID)
	}
	if _, err := c.Get(ctx, "parts", wr.Key); err != nil {
		t.Errorf("after restart: %v", err)
	}
	if err := n.stop(t); err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestRunWrongCluster(t *testing.T) {
	base := t.TempDir()
	common := []string{"-http", "127.0.0.1:0", "-raft", "127.0.0.1:0", "-gossip", "127.0.0.1:0", "-log-level", "error"}
	a := startRun(t, append([]string{"-id", "a1", "-data", filepath.Join(base, "a1"), "-bootstrap"}, common...)...)
	stA := waitLeader(t, api.NewClient(a.addr(t), nil))
	gossipA := stA.Members[0].GossipAddr

	b := startRun(t, append([]string{"-id", "b1", "-data", filepath.Join(base, "b1"), "-bootstrap"}, common...)...)
	stB := waitLeader(t, api.NewClient(b.addr(t), nil))
	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}

	err := run(context.Background(), append([]string{"-id", "b1", "-data", filepath.Join(base, "b1"), "-join", gossipA}, common...), noEnv, io.Discard, io.Discard)
	if !errors.Is(err, api.ErrWrongCluster) {
		t.Fatalf("joining another cluster: %v, want ErrWrongCluster", err)
	}
	if !strings.Contains(err.Error(), stA.ClusterID) || !strings.Contains(err.Error(), stB.ClusterID) {
		t.Errorf("error %q does not name both clusters", err)
	}

	// A fresh node without -bootstrap or -join is refused clearly.
	err = run(context.Background(), append([]string{"-id", "c1", "-data", filepath.Join(base, "c1")}, common...), noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "Bootstrap") {
		t.Errorf("fresh node without -bootstrap/-join: %v", err)
	}
	// A data dir that is a file.
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), append([]string{"-id", "d1", "-data", file, "-bootstrap"}, common...), noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "data directory") {
		t.Errorf("data dir is a file: %v", err)
	}
}

// TestBinarySignal builds kvnode, runs it in -dev mode and stops it with
// SIGTERM.
func TestBinarySignal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "kvnode")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	build := exec.Command(goBin, "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// Bad flags: exit 2 with a message.
	bad := exec.Command(bin, "-bootstrap")
	bad.Dir = dir
	out, err = bad.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "-id is required") {
		t.Errorf("bad flags: %v\n%s", err, out)
	}

	cmd, addr, stderr := startBinary(t, dir, bin, "-dev", "-http", "127.0.0.1:0", "-raft", "127.0.0.1:0", "-gossip", "127.0.0.1:0")
	c := api.NewClient(addr, nil)
	waitLeader(t, c)
	if _, err := c.Create(context.Background(), "t", api.WriteRequest{Data: []byte{0x02}}); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("kvnode exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("kvnode did not exit on SIGTERM")
	}
	if !strings.Contains(stderr.String(), "kvnode: stopped") {
		t.Errorf("no clean stop in the log:\n%s", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "shelf-data", "fsm.db")); err != nil {
		t.Errorf("-dev data: %v", err)
	}
}

// startBinary starts the kvnode binary bin in dir with args and waits
// until it says which HTTP address it listens on. The process is killed
// when the test ends, unless it exited before.
func startBinary(t *testing.T, dir, bin string, args ...string) (cmd *exec.Cmd, addr string, stderr *syncBuf) {
	t.Helper()
	cmd = exec.Command(bin, args...)
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr = &syncBuf{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	addrs := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if _, a, ok := strings.Cut(sc.Text(), "listening on http://"); ok {
				addrs <- a
			}
		}
	}()
	select {
	case addr = <-addrs:
	case <-time.After(30 * time.Second):
		t.Fatalf("kvnode did not start:\n%s", stderr.String())
	}
	return cmd, addr, stderr
}

// TestRunTLSFiles: a node whose TLS files cannot be used does not start,
// and the error names the file and the problem.
func TestRunTLSFiles(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "n1.crt")
	junk := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"-id", "n1", "-data", filepath.Join(dir, "data"), "-bootstrap", "-http", "127.0.0.1:0", "-raft", "127.0.0.1:0", "-gossip", "127.0.0.1:0"}
	for _, c := range []struct {
		files []string
		want  string
	}{
		{[]string{"-tls-cert", missing, "-tls-key", missing, "-tls-ca", junk}, junk + ": no PEM data"},
		{[]string{"-tls-cert", missing, "-tls-key", missing, "-tls-ca", "/nonexistent/ca.crt"}, "/nonexistent/ca.crt: file does not exist"},
	} {
		err := run(context.Background(), append(common, c.files...), noEnv, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("kvnode %v: %v, want an error containing %q", c.files, err, c.want)
		}
	}
}
