//go:build linux

package netns

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Isolate cuts node off from every other node, both ways. The host
// (HostAddr, the test process) still reaches it.
func (n *Network) Isolate(ctx context.Context, node string) error {
	var others []string
	for _, o := range n.nodes {
		if o != node {
			others = append(others, o)
		}
	}
	return n.Cut(ctx, []string{node}, others)
}

// Cut drops all traffic, both ways, between every node of a and every node
// of b. Connections between them stall (their packets are dropped, not
// refused) until Heal.
func (n *Network) Cut(ctx context.Context, a, b []string) error {
	if err := n.check(a, b); err != nil {
		return err
	}
	for _, x := range a {
		for _, y := range b {
			if x == y {
				continue
			}
			ax, _ := n.Addr(x)
			ay, _ := n.Addr(y)
			for _, r := range []struct {
				node string
				args []string
			}{
				{x, []string{"-A", chain, "-d", ay.String(), "-j", "DROP"}},
				{x, []string{"-A", chain, "-s", ay.String(), "-j", "DROP"}},
				{y, []string{"-A", chain, "-d", ax.String(), "-j", "DROP"}},
				{y, []string{"-A", chain, "-s", ax.String(), "-j", "DROP"}},
			} {
				if err := n.iptables(ctx, r.node, r.args...); err != nil {
					return err
				}
			}
			n.note(fmt.Sprintf("%s<->%s", x, y))
		}
	}
	return nil
}

// CutOneWay stops messages from every node of from reaching every node of
// to, while to still reaches from. For TCP: a connection opened by a node
// of from to a node of to cannot be set up (or, if open, stalls), while a
// connection opened by a node of to works, replies included. For UDP:
// datagrams from from to to are dropped, those the other way pass.
func (n *Network) CutOneWay(ctx context.Context, from, to []string) error {
	if err := n.check(from, to); err != nil {
		return err
	}
	for _, x := range from {
		for _, y := range to {
			if x == y {
				continue
			}
			ax, _ := n.Addr(x)
			ay, _ := n.Addr(y)
			// Packets in the "original" direction of a connection are
			// those of the side that opened it: dropping x's original-
			// direction packets to y (at both ends, each with its own
			// connection tracking) stops what x opens towards y and keeps
			// x's replies on what y opened.
			for _, r := range []struct {
				node string
				args []string
			}{
				{x, []string{"-A", chain, "-d", ay.String(), "-p", "tcp", "-m", "conntrack", "--ctdir", "ORIGINAL", "-j", "DROP"}},
				{x, []string{"-A", chain, "-d", ay.String(), "-p", "udp", "-j", "DROP"}},
				{y, []string{"-A", chain, "-s", ax.String(), "-p", "tcp", "-m", "conntrack", "--ctdir", "ORIGINAL", "-j", "DROP"}},
				{y, []string{"-A", chain, "-s", ax.String(), "-p", "udp", "-j", "DROP"}},
			} {
				if err := n.iptables(ctx, r.node, r.args...); err != nil {
					return err
				}
			}
			n.note(fmt.Sprintf("%s->%s", x, y))
		}
	}
	return nil
}

// Heal removes every partition rule.
func (n *Network) Heal(ctx context.Context) error {
	for _, node := range n.nodes {
		if err := n.iptables(ctx, node, "-F", chain); err != nil {
			return err
		}
	}
	n.mu.Lock()
	n.rules = nil
	n.mu.Unlock()
	return nil
}

// Partitions describes the cuts in force, such as "n1<->n2 n3->n1"
// ("" when healed).
func (n *Network) Partitions() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.rules, " ")
}

func (n *Network) note(rule string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rules = append(n.rules, rule)
}

// check validates node sets.
func (n *Network) check(sets ...[]string) error {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return ErrClosed
	}
	for _, set := range sets {
		for _, node := range set {
			if !slices.Contains(n.nodes, node) {
				return fmt.Errorf("%w: %q", ErrUnknownNode, node)
			}
		}
	}
	return nil
}

// iptables runs iptables with args in node's namespace. -w waits for the
// xtables lock, which is shared by all namespaces.
func (n *Network) iptables(ctx context.Context, node string, args ...string) error {
	return run(ctx, "ip", append([]string{"netns", "exec", n.nodeNS(node), "iptables", "-w", "10"}, args...)...)
}
