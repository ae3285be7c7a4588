package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

// kvctl watch with -s leader,b,c follows the events on the leader. When
// the leader is killed it goes on at another node (after the election)
// after the last event it printed: every record of the tree shows up
// once, in index order, with no gap.
func TestKvctlWatchMovesToAnotherNode(t *testing.T) {
	skipShort(t)
	nodes := startCluster(t, 3)
	first, err := createRetry(nodes, "parts", value(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	// The watched node first; it is the leader, so its kill also costs
	// the cluster an election while the watch looks for another node.
	leader := waitLeader(t, nodes)
	nodes = append([]*Node{leader}, slices.DeleteFunc(slices.Clone(nodes), func(n *Node) bool { return n == leader })...)

	addrs := nodes[0].HTTP + "," + nodes[1].HTTP + "," + nodes[2].HTTP
	cmd := exec.Command(kvctlBin, "-s", addrs, "--timeout", "30s", "watch", "parts", "-from", fmt.Sprint(first.Index-1), "-o", "json")
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The watch's lines, read until it exits; the process is stopped at
	// the end of the test at the latest.
	lines := make(chan string, 1024)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	exited := make(chan error, 1)
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			return err
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("kvctl watch did not stop within %s of SIGINT", stopTimeout)
		}
	}
	go func() {
		<-readDone // stdout closes when the process exits
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = stop() })

	var events []api.Event
	// waitEvent reads the watch until it printed the event at index.
	waitEvent := func(index uint64, what string) {
		t.Helper()
		deadline := time.After(electionTimeout)
		for len(events) == 0 || events[len(events)-1].Index < index {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("%s: kvctl watch exited; stderr:\n%s", what, stderr.String())
				}
				var e api.Event
				if err := json.Unmarshal([]byte(l), &e); err != nil {
					t.Fatalf("watch line %q: %v", l, err)
				}
				events = append(events, e)
			case <-deadline:
				t.Fatalf("%s: the watch did not print index %d within %s; printed %d events", what, index, electionTimeout, len(events))
			}
		}
	}

	write := func(from []*Node, n int, base int64) uint64 {
		t.Helper()
		var last uint64
		for i := range n {
			res, err := createRetry(from, "parts", value(t, base+int64(i)))
			if err != nil {
				t.Fatal(err)
			}
			last = max(last, res.Index)
		}
		return last
	}
	waitEvent(write(nodes, 20, 1), "before the kill")
	nodes[0].Kill()
	waitEvent(write(nodes[1:], 20, 100), "after killing the watched node")

	if err := stop(); err != nil {
		t.Fatalf("kvctl watch: %v; stderr:\n%s", err, stderr.String())
	}
	for l := range lines { // printed after the last wait
		var e api.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("watch line %q: %v", l, err)
		}
		events = append(events, e)
	}
	if !strings.Contains(stderr.String(), "kvctl: watch: now watching ") {
		t.Errorf("the watch did not say it moved to another node; stderr:\n%s", stderr.String())
	}
	// Once each, in order, and every record of the tree (a create that
	// was retried may have been applied twice: it is a record too).
	var got []api.Key
	type seen struct {
		index uint64
		typ   api.EventType
		key   api.Key
	}
	printed := map[seen]bool{} // events of one entry (coalesced creates) share its index
	for i, e := range events {
		if i > 0 && e.Index < events[i-1].Index {
			t.Fatalf("event %d at index %d after index %d: out of order", i, e.Index, events[i-1].Index)
		}
		if s := (seen{e.Index, e.Type, e.Key}); printed[s] {
			t.Fatalf("event %d (%s of %v at index %d) printed twice", i, e.Type, e.Key, e.Index)
		} else {
			printed[s] = true
		}
		if e.Type == api.EventCreated {
			got = append(got, e.Key)
		}
	}
	want := listAll(t, nodes[1], "parts")
	slices.SortFunc(got, func(a, b api.Key) int { return cmpKey(a, b) })
	slices.SortFunc(want, func(a, b api.Key) int { return cmpKey(a, b) })
	if !slices.Equal(got, want) {
		t.Fatalf("the watch printed the creates of %d records, the tree has %d:\nwatched %v\ntree    %v\nstderr:\n%s", len(got), len(want), got, want, stderr.String())
	}
	t.Logf("watched %d events across the kill; kvctl stderr:\n%s", len(events), stderr.String())
}

// cmpKey orders keys by id, then revision.
func cmpKey(a, b api.Key) int {
	if a.ID != b.ID {
		if a.ID < b.ID {
			return -1
		}
		return 1
	}
	return int(a.Rev) - int(b.Rev)
}
