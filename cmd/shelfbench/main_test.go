package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/testserver"
)

// shelfbench runs the tool with args and returns its output.
func shelfbench(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, args, &out, &errOut)
	if errOut.Len() > 0 {
		t.Logf("stderr of %v:\n%s", args, errOut.String())
	}
	return out.String(), err
}

// number returns the integer after name= in out.
func number(t *testing.T, out, name string) int {
	t.Helper()
	m := regexp.MustCompile(`\b` + name + `=(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %s= in output:\n%s", name, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestModesAgainstANode runs every mode briefly against a real node and
// checks that each did what it says: the counts, no errors, the lines it
// promises. It never judges speed. One node, not three: on a loaded test
// machine (-race, two cores) the test clusters' 150 ms elections let a
// leader change fail writes that the test counts; the events mode's
// client then follows the node it writes to (-s A,A), which the tool
// takes like any other pair.
func TestModesAgainstANode(t *testing.T) {
	node := testserver.Start(t)
	all := node.Addr
	pid := strconv.Itoa(os.Getpid()) // the server runs in this process
	t.Run("creates", func(t *testing.T) {
		out, err := shelfbench(t, "creates", "-s", all, "-writers", "4", "-n", "30", "-size", "100", "-pids", pid)
		if err != nil {
			t.Fatal(err)
		}
		if number(t, out, "ops") != 30 || number(t, out, "errors") != 0 {
			t.Fatalf("want 30 creates and no errors:\n%s", out)
		}
		if !strings.Contains(out, "RssAnon") {
			t.Fatalf("no memory line for -pids:\n%s", out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		trees, err := api.NewClient(node.Addr, nil).Trees(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := recordsIn(trees, "bench"); n != 30 {
			t.Fatalf("tree bench holds %d records, want 30", n)
		}
	})
	t.Run("outbox", func(t *testing.T) {
		out, err := shelfbench(t, "outbox", "-s", all, "-clients", "2", "-writers", "5", "-n", "25", "-tree", "obx")
		if err != nil {
			t.Fatal(err)
		}
		if number(t, out, "ops") != 25 || number(t, out, "errors") != 0 {
			t.Fatalf("want 25 acknowledged creates and no errors:\n%s", out)
		}
	})
	t.Run("outbox-stored", func(t *testing.T) {
		out, err := shelfbench(t, "outbox", "-s", all, "-clients", "2", "-writers", "5", "-n", "25", "-tree", "obxs", "-wait", "stored")
		if err != nil {
			t.Fatal(err)
		}
		if number(t, out, "ops") != 25 || number(t, out, "errors") != 0 || !strings.Contains(out, "last create -> flushed=") {
			t.Fatalf("want 25 creates applied after the flush, no errors, the flush time:\n%s", out)
		}
		trees, err := api.NewClient(strings.Split(all, ",")[0], nil).Trees(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n := recordsIn(trees, "obxs"); n != 25 {
			t.Fatalf("tree obxs holds %d records, want 25", n)
		}
	})
	t.Run("bad-wait", func(t *testing.T) {
		if _, err := shelfbench(t, "outbox", "-s", all, "-wait", "soon"); err == nil || !strings.Contains(err.Error(), "-wait") {
			t.Fatalf("-wait soon: %v, want a usage error naming -wait", err)
		}
	})
	t.Run("reads", func(t *testing.T) {
		out, err := shelfbench(t, "reads", "-s", all, "-records", "40", "-readers", "2", "-duration", "100ms")
		if err != nil {
			t.Fatal(err)
		}
		if number(t, out, "records") != 40 || !strings.Contains(out, "typed Get") || !strings.Contains(out, "raw bbolt Get + decode") ||
			!strings.Contains(out, "read cache              32.0 MiB, 40 records") {
			t.Fatalf("want reads of 40 records, typed and raw, all 40 in the default read cache:\n%s", out)
		}
		out, err = shelfbench(t, "reads", "-s", all, "-skip-preload", "-duration", "100ms", "-cache", "-1")
		if err != nil {
			t.Fatal(err)
		}
		if number(t, out, "records") != 40 || !strings.Contains(out, "read cache              off") {
			t.Fatalf("-cache -1: want the 40 records read with the read cache off:\n%s", out)
		}
	})
	t.Run("events", func(t *testing.T) {
		out, err := shelfbench(t, "events", "-s", all+","+all, "-rate", "200", "-n", "20", "-tree", "ev")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "failed writes 0, events missing 0") {
			t.Fatalf("want every write's event:\n%s", out)
		}
		for _, line := range []string{"stamp -> event", "ack -> event", "send -> event"} {
			if !regexp.MustCompile(regexp.QuoteMeta(line) + ` +n=20 `).MatchString(out) {
				t.Fatalf("want %q with 20 events:\n%s", line, out)
			}
		}
	})
	t.Run("sync", func(t *testing.T) {
		out, err := shelfbench(t, "sync", "-s", all, "-records", "300", "-batch", "70", "-writers", "3", "-tree", "sy")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "preload 300 records") || !strings.Contains(out, "tree sy holds 300 records") {
			t.Fatalf("want 300 preloaded and synced:\n%s", out)
		}
		out, err = shelfbench(t, "sync", "-s", node.Addr, "-skip-preload", "-tree", "sy")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "preload") || !strings.Contains(out, "tree sy holds 300 records") {
			t.Fatalf("-skip-preload: want no preload and the 300 records:\n%s", out)
		}
	})
}

func recordsIn(trees []api.Tree, name string) uint64 {
	for _, t := range trees {
		if t.Name == name {
			return t.Records
		}
	}
	return 0
}

func TestBadCommandLines(t *testing.T) {
	cases := [][]string{
		nil,
		{"nosuchmode"},
		{"creates", "-writers", "0"},
		{"creates", "-size", "2"},
		{"creates", "extra"},
		{"events", "-s", "127.0.0.1:1"},
		{"reads", "-pids", "12,abc"},
		{"sync", "-batch", "-1"},
	}
	for _, args := range cases {
		_, err := shelfbench(t, args...)
		if !errors.As(err, new(usageError)) {
			t.Errorf("%q: err %v, want a usage error", args, err)
		}
	}
	out, err := shelfbench(t, "-h")
	if err != nil || !strings.Contains(out, "outbox") || !strings.Contains(out, "events") {
		t.Errorf("-h: %v\n%s", err, out)
	}
	if _, err := shelfbench(t, "creates", "-h"); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("creates -h: %v", err)
	}
}
