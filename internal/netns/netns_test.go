//go:build linux

package netns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as the program run inside namespaces:
// NETNS_HELPER=listen:ADDR echoes lines on ADDR, NETNS_HELPER=dial:ADDR
// connects to ADDR and exits 0 if an echo comes back.
func TestMain(m *testing.M) {
	if h := os.Getenv("NETNS_HELPER"); h != "" {
		os.Exit(helper(h))
	}
	os.Exit(m.Run())
}

func helper(h string) int {
	mode, addr, _ := strings.Cut(h, ":")
	switch mode {
	case "listen":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Println("listening")
		for {
			c, err := ln.Accept()
			if err != nil {
				return 2
			}
			go func() {
				defer c.Close()
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil {
					_, _ = c.Write([]byte(line))
				}
			}()
		}
	case "dial":
		if err := echo(addr, 1500*time.Millisecond); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	return 2
}

// echo connects to addr, sends a line and waits for it back.
func echo(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	_, err = bufio.NewReader(c).ReadString('\n')
	return err
}

const port = "7000"

// startListeners runs an echo server in every node namespace and returns
// once each has said it listens.
func startListeners(t *testing.T, n *Network) {
	t.Helper()
	for _, node := range n.Nodes() {
		addr, _ := n.Addr(node)
		cmd, err := n.Command(node, os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(os.Environ(), "NETNS_HELPER=listen:"+net.JoinHostPort(addr.String(), port))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start listener in %s: %v", node, err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "listening\n" {
			t.Fatalf("listener in %s: %q, %v", node, line, err)
		}
	}
}

// reaches reports whether from's namespace can connect to to's echo server.
func reaches(t *testing.T, n *Network, from, to string) bool {
	t.Helper()
	addr, _ := n.Addr(to)
	cmd, err := n.Command(from, os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "NETNS_HELPER=dial:"+net.JoinHostPort(addr.String(), port))
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("dial helper in %s: %v", from, err)
	}
	return err == nil
}

// hostReaches reports whether the test process reaches node's server.
func hostReaches(n *Network, node string) bool {
	addr, _ := n.Addr(node)
	return echo(net.JoinHostPort(addr.String(), port), 1500*time.Millisecond) == nil
}

func wantReach(t *testing.T, n *Network, state string, want map[[2]string]bool) {
	t.Helper()
	for pair, ok := range want {
		if got := reaches(t, n, pair[0], pair[1]); got != ok {
			t.Errorf("%s: %s reaches %s: %v, want %v", state, pair[0], pair[1], got, ok)
		}
	}
	for _, node := range n.Nodes() {
		if !hostReaches(n, node) {
			t.Errorf("%s: the host does not reach %s", state, node)
		}
	}
}

func TestPartitions(t *testing.T) {
	ctx := context.Background()
	n := ForTest(t, "a", "b", "c")
	startListeners(t, n)
	all := map[[2]string]bool{{"a", "b"}: true, {"b", "a"}: true, {"a", "c"}: true, {"c", "b"}: true}
	wantReach(t, n, "healed", all)

	if err := n.Isolate(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	wantReach(t, n, "a isolated", map[[2]string]bool{{"a", "b"}: false, {"b", "a"}: false, {"c", "a"}: false, {"c", "b"}: true})
	if got := n.Partitions(); got != "a<->b a<->c" {
		t.Errorf("Partitions() = %q", got)
	}
	if err := n.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	wantReach(t, n, "healed again", all)

	if err := n.CutOneWay(ctx, []string{"a"}, []string{"b"}); err != nil {
		t.Fatal(err)
	}
	wantReach(t, n, "a->b cut", map[[2]string]bool{{"a", "b"}: false, {"b", "a"}: true, {"a", "c"}: true, {"c", "b"}: true})

	if err := n.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Cut(ctx, []string{"a", "b"}, []string{"c"}); err != nil {
		t.Fatal(err)
	}
	wantReach(t, n, "ab|c", map[[2]string]bool{{"a", "b"}: true, {"b", "c"}: false, {"c", "a"}: false})
	if err := n.Cut(ctx, []string{"a"}, []string{"zz"}); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("Cut with an unknown node: %v, want ErrUnknownNode", err)
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	n := ForTest(t, "x", "y")
	hub, link := n.hubNS(), n.rootLink()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	checkGone(t, n.prefix, n.subnet, hub, link)
	if err := n.Heal(context.Background()); err == nil {
		t.Error("Heal after Close succeeded")
	}
}

// TestSweepRemovesStale leaves a network behind as a crashed process
// would (lock released, nothing removed) and checks that Sweep removes
// it, while a live network of the same prefix stays.
func TestSweepRemovesStale(t *testing.T) {
	if testing.Short() {
		t.Skip("network namespaces; skipped with -short")
	}
	if err := Check(); err != nil {
		t.Fatalf("%v: run as root with iproute2 and iptables", err)
	}
	ctx := context.Background()
	const prefix = "shtest"
	live, err := New(ctx, Config{Prefix: prefix, Nodes: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	crashed, err := New(ctx, Config{Prefix: prefix, Nodes: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	crashed.lock.Close() // the process "died"
	cleaned, err := Sweep(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cleaned, []int{crashed.subnet}) {
		t.Errorf("Sweep cleaned subnets %v, want [%d]", cleaned, crashed.subnet)
	}
	checkGone(t, prefix, crashed.subnet, crashed.hubNS(), crashed.rootLink())
	names, _ := namespaces()
	if !slices.Contains(names, live.hubNS()) {
		t.Errorf("Sweep removed the live network %s", live.hubNS())
	}
}

func checkGone(t *testing.T, prefix string, subnet int, hub, link string) {
	t.Helper()
	names, err := namespaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.HasPrefix(name, fmt.Sprintf("%s-%d-", prefix, subnet)) {
			t.Errorf("namespace %s left behind", name)
		}
	}
	if _, err := os.Stat("/sys/class/net/" + link); err == nil {
		t.Errorf("link %s left behind (hub %s)", link, hub)
	}
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Nodes: nil},
		{Nodes: []string{"a", "a"}},
		{Nodes: []string{"Bad"}},
		{Nodes: []string{"hub"}},
		{Prefix: "much-too-long", Nodes: []string{"a"}},
	} {
		if _, err := New(context.Background(), cfg); !errors.Is(err, ErrBadConfig) {
			t.Errorf("New(%+v) = %v, want ErrBadConfig", cfg, err)
		}
	}
}
