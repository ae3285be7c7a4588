//go:build linux

package netns

import (
	"context"
	"testing"
	"time"
)

// ForTest builds a Network of nodes for tb and removes it in tb's Cleanup
// (register process cleanups after calling ForTest, so that they run
// first: cleanups run last-in first-out and Close wants the processes
// gone). It first sweeps networks left by crashed runs. Without root or
// the ip and iptables commands it fails tb with a message saying what to
// install; with -short it skips tb, like the other multi-process tests.
func ForTest(tb testing.TB, nodes ...string) *Network {
	tb.Helper()
	if testing.Short() {
		tb.Skip("network namespaces; skipped with -short")
	}
	if err := Check(); err != nil {
		tb.Fatalf("%v\nthese tests build network namespaces: run them as root with ip and iptables installed "+
			"(apt-get install iproute2 iptables), or skip them with -short", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if cleaned, err := Sweep(ctx, DefaultPrefix); err != nil {
		tb.Logf("netns: sweeping stale networks: %v", err)
	} else if len(cleaned) > 0 {
		tb.Logf("netns: removed stale networks of crashed runs on subnets %v", cleaned)
	}
	n, err := New(ctx, Config{Nodes: nodes})
	if err != nil {
		tb.Fatalf("netns: %v", err)
	}
	tb.Cleanup(func() {
		if err := n.Close(); err != nil {
			tb.Errorf("netns: %v", err)
		}
	})
	return n
}
