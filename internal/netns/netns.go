//go:build linux

// Package netns builds a small private network of Linux network namespaces
// for tests that need real network faults between processes on one machine.
//
// A Network has a hub namespace holding a bridge, one namespace per node
// joined to the bridge by a veth pair, and a veth pair from the calling
// process's (root) namespace to the bridge, so the test process reaches
// every node directly. Addresses come from 10.77.K.0/24, where K is a
// subnet number claimed with a lock file for the life of the Network, so
// parallel test binaries get disjoint subnets and names. No node has a
// default route: traffic stays inside the namespaces this package created.
//
// Partitions are iptables rules in a chain of each node's namespace (so the
// root namespace's firewall is never touched): Isolate, Cut, CutOneWay and
// Heal. Close removes every namespace and link; Sweep removes those left by
// a process that died without closing its Network.
//
// Everything needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and the ip and
// iptables commands (Debian packages iproute2 and iptables).
package netns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors callers may test with errors.Is.
var (
	// ErrNotRoot means the process lacks the privileges to create
	// namespaces.
	ErrNotRoot = errors.New("netns: needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
	// ErrNoTool means the ip or iptables command is missing.
	ErrNoTool = errors.New("netns: ip or iptables command not found (install iproute2 and iptables)")
	// ErrNoSubnet means all subnets are claimed by other live Networks.
	ErrNoSubnet = errors.New("netns: no free subnet 10.77.K.0/24")
	// ErrUnknownNode means a node name is not part of the Network.
	ErrUnknownNode = errors.New("netns: unknown node")
	// ErrBadConfig means the Config is invalid.
	ErrBadConfig = errors.New("netns: bad config")
	// ErrClosed means the Network was closed.
	ErrClosed = errors.New("netns: network closed")
)

// DefaultPrefix is the name prefix of namespaces and links when
// Config.Prefix is empty.
const DefaultPrefix = "shelf"

// chain is the iptables chain of partition rules in each node namespace,
// jumped to from INPUT and OUTPUT.
const chain = "SHELF-NEMESIS"

// cmdTimeout bounds one ip or iptables command.
const cmdTimeout = 20 * time.Second

var (
	prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,7}$`)
	nodeRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_]{0,15}$`)
)

// Config configures New.
type Config struct {
	// Prefix starts the name of every namespace ("PREFIX-K-hub",
	// "PREFIX-K-NODE") and of the root-namespace link ("PREFIXKr"):
	// lowercase letters and digits, at most 8, starting with a letter.
	// Empty means DefaultPrefix.
	Prefix string
	// Nodes names the node namespaces: distinct, lowercase letters,
	// digits and '_', at most 16; at most 200 nodes.
	Nodes []string
	// Logger receives what the Network sets up and tears down at Debug
	// level. Nil means slog.Default().
	Logger *slog.Logger
}

// Network is a bridge network of namespaces. Its methods are safe for
// concurrent use.
type Network struct {
	prefix string
	subnet int // K of 10.77.K.0/24
	nodes  []string
	log    *slog.Logger
	lock   *os.File // flock held while the Network lives

	mu     sync.Mutex
	closed bool
	rules  []string // descriptions of the partition rules in force
}

// New claims a free subnet, sweeps what a crashed run left on it and
// creates the hub, the bridge, the root link and a namespace per node.
// On error, whatever was created is removed.
func New(ctx context.Context, cfg Config) (*Network, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !prefixRE.MatchString(cfg.Prefix) {
		return nil, fmt.Errorf("%w: prefix %q: want 1-8 lowercase letters or digits, starting with a letter", ErrBadConfig, cfg.Prefix)
	}
	if len(cfg.Nodes) == 0 || len(cfg.Nodes) > 200 {
		return nil, fmt.Errorf("%w: %d nodes: want 1 to 200", ErrBadConfig, len(cfg.Nodes))
	}
	for i, name := range cfg.Nodes {
		if !nodeRE.MatchString(name) || name == "hub" {
			return nil, fmt.Errorf("%w: node name %q: want 1-16 lowercase letters, digits or '_', not \"hub\"", ErrBadConfig, name)
		}
		if slices.Contains(cfg.Nodes[:i], name) {
			return nil, fmt.Errorf("%w: node name %q twice", ErrBadConfig, name)
		}
	}
	if err := Check(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	n := &Network{prefix: cfg.Prefix, nodes: slices.Clone(cfg.Nodes), log: log}
	if err := n.claim(ctx); err != nil {
		return nil, err
	}
	if err := n.build(ctx); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	return n, nil
}

// Check reports whether this process can build Networks: it must run as
// root and find ip and iptables. The errors are ErrNotRoot or ErrNoTool.
func Check() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: running as uid %d", ErrNotRoot, os.Geteuid())
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %w", ErrNoTool, err)
		}
	}
	return nil
}

// lockDir holds the subnet lock files.
func lockDir() string {
	if st, err := os.Stat("/run/lock"); err == nil && st.IsDir() {
		return "/run/lock"
	}
	return os.TempDir()
}

// tryLock takes the lock of subnet k of prefix without waiting. It returns
// nil, nil if another live process holds it.
func tryLock(prefix string, k int) (*os.File, error) {
	path := filepath.Join(lockDir(), fmt.Sprintf("%s-netns-%d.lock", prefix, k))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("netns: lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("netns: lock %s: %w", path, err)
	}
	return f, nil
}

// claim takes the lock of a free subnet, starting at a place that depends
// on the process id so that parallel binaries rarely contend, and removes
// anything a crashed run left on it.
func (n *Network) claim(ctx context.Context) error {
	start := os.Getpid() % 250
	for i := range 250 {
		k := 1 + (start+i)%250
		f, err := tryLock(n.prefix, k)
		if err != nil {
			return err
		}
		if f == nil {
			continue
		}
		n.subnet, n.lock = k, f
		if err := n.removeAll(ctx); err != nil {
			n.lock.Close()
			return fmt.Errorf("netns: removing a stale network on subnet %d: %w", k, err)
		}
		return nil
	}
	return ErrNoSubnet
}

// build creates the namespaces and links.
func (n *Network) build(ctx context.Context) error {
	hub := n.hubNS()
	steps := [][]string{
		{"netns", "add", hub},
		{"-n", hub, "link", "set", "lo", "up"},
		{"-n", hub, "link", "add", "br0", "type", "bridge"},
		{"-n", hub, "link", "set", "br0", "up"},
		{"link", "add", n.rootLink(), "type", "veth", "peer", "name", "host", "netns", hub},
		{"-n", hub, "link", "set", "host", "master", "br0", "up"},
		{"addr", "add", n.HostAddr().String() + "/24", "dev", n.rootLink()},
		{"link", "set", n.rootLink(), "up"},
	}
	for i, node := range n.nodes {
		ns, veth := n.nodeNS(node), "v"+strconv.Itoa(i)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"-n", hub, "link", "set", veth, "master", "br0", "up"},
			[]string{"-n", ns, "addr", "add", n.nodeAddr(i).String() + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
		)
	}
	for _, args := range steps {
		if err := run(ctx, "ip", args...); err != nil {
			return err
		}
	}
	for _, node := range n.nodes {
		for _, args := range [][]string{
			{"-N", chain},
			{"-A", "INPUT", "-j", chain},
			{"-A", "OUTPUT", "-j", chain},
		} {
			if err := n.iptables(ctx, node, args...); err != nil {
				return err
			}
		}
	}
	n.log.Debug("netns: network up", "hub", hub, "host", n.HostAddr(), "nodes", n.nodes)
	return nil
}

// hubNS returns the name of the hub namespace.
func (n *Network) hubNS() string { return fmt.Sprintf("%s-%d-hub", n.prefix, n.subnet) }

// nodeNS returns the name of a node's namespace.
func (n *Network) nodeNS(node string) string {
	return fmt.Sprintf("%s-%d-%s", n.prefix, n.subnet, node)
}

// rootLink returns the name of the veth end in the root namespace.
func (n *Network) rootLink() string { return fmt.Sprintf("%s%dr", n.prefix, n.subnet) }

// nodeAddr returns the address of the node at index i.
func (n *Network) nodeAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 77, byte(n.subnet), byte(10 + i)})
}

// HostAddr returns the address of the calling process's end of the
// network, in the root namespace: nodes reach the test process there.
func (n *Network) HostAddr() netip.Addr {
	return netip.AddrFrom4([4]byte{10, 77, byte(n.subnet), 1})
}

// Nodes returns the node names, in Config order.
func (n *Network) Nodes() []string { return slices.Clone(n.nodes) }

// Namespace returns the name of a node's namespace, as `ip netns` knows it.
func (n *Network) Namespace(node string) (string, error) {
	if !slices.Contains(n.nodes, node) {
		return "", fmt.Errorf("%w: %q", ErrUnknownNode, node)
	}
	return n.nodeNS(node), nil
}

// Addr returns a node's address.
func (n *Network) Addr(node string) (netip.Addr, error) {
	i := slices.Index(n.nodes, node)
	if i < 0 {
		return netip.Addr{}, fmt.Errorf("%w: %q", ErrUnknownNode, node)
	}
	return n.nodeAddr(i), nil
}

// Command returns a command that runs name with args inside a node's
// namespace (through `ip netns exec`, which execs name in place: the
// process id of the started command is name's own, so signals reach it
// directly). The process gets SIGKILL if the calling process dies
// (Pdeathsig), so that a test killed by its timeout leaves no process
// behind. The caller sets Env, Stdout and the rest and starts it.
func (n *Network) Command(node, name string, args ...string) (*exec.Cmd, error) {
	ns, err := n.Namespace(node)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd, nil
}

// Close removes every namespace and link of the Network (their iptables
// rules go with them) and releases its subnet. Processes still running in
// a node namespace keep it alive, detached from the bridge, until they
// exit: stop them first. Close is idempotent.
func (n *Network) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := n.removeAll(ctx)
	if n.lock != nil {
		err = errors.Join(err, n.lock.Close())
	}
	if err != nil {
		return fmt.Errorf("netns: close subnet %d: %w", n.subnet, err)
	}
	n.log.Debug("netns: network removed", "hub", n.hubNS())
	return nil
}

// removeAll deletes every namespace named PREFIX-K-* and the root link of
// subnet K, whether this Network created them or a crashed run did.
func (n *Network) removeAll(ctx context.Context) error {
	return removeSubnet(ctx, n.prefix, n.subnet)
}

func removeSubnet(ctx context.Context, prefix string, k int) error {
	names, err := namespaces()
	if err != nil {
		return err
	}
	var errs []error
	start := fmt.Sprintf("%s-%d-", prefix, k)
	for _, name := range names {
		if strings.HasPrefix(name, start) {
			if err := run(ctx, "ip", "netns", "del", name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Deleting the hub destroys the veth pair, root end included; a run
	// that died between creating the link and moving its peer leaves it.
	link := fmt.Sprintf("%s%dr", prefix, k)
	if _, err := os.Stat(filepath.Join("/sys/class/net", link)); err == nil {
		// The kernel may remove it between the check and the delete (the
		// hub's deletion takes the pair with it, asynchronously): gone is
		// what we want.
		if err := run(ctx, "ip", "link", "del", link); err != nil {
			if _, serr := os.Stat(filepath.Join("/sys/class/net", link)); serr == nil {
				errs = append(errs, err) // still there: a real failure
			}
		}
	}
	return errors.Join(errs...)
}

// namespaces lists the named network namespaces.
func namespaces() ([]string, error) {
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netns: list namespaces: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

// Sweep removes the namespaces and links of every Network with prefix
// whose process is gone (its subnet lock is free). Networks of live
// processes are left alone. It returns the subnets it cleaned.
func Sweep(ctx context.Context, prefix string) ([]int, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !prefixRE.MatchString(prefix) {
		return nil, fmt.Errorf("%w: prefix %q", ErrBadConfig, prefix)
	}
	stale := map[int]bool{}
	names, err := namespaces()
	if err != nil {
		return nil, err
	}
	nsRE := regexp.MustCompile(`^` + prefix + `-(\d+)-`)
	for _, name := range names {
		if m := nsRE.FindStringSubmatch(name); m != nil {
			k, _ := strconv.Atoi(m[1])
			stale[k] = true
		}
	}
	links, _ := os.ReadDir("/sys/class/net")
	linkRE := regexp.MustCompile(`^` + prefix + `(\d+)r$`)
	for _, l := range links {
		if m := linkRE.FindStringSubmatch(l.Name()); m != nil {
			k, _ := strconv.Atoi(m[1])
			stale[k] = true
		}
	}
	var (
		cleaned []int
		errs    []error
	)
	for _, k := range slices.Sorted(maps.Keys(stale)) {
		f, err := tryLock(prefix, k)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if f == nil {
			continue // a live Network
		}
		if err := removeSubnet(ctx, prefix, k); err != nil {
			errs = append(errs, err)
		} else {
			cleaned = append(cleaned, k)
		}
		f.Close()
	}
	return cleaned, errors.Join(errs...)
}

// run runs an ip or iptables command within cmdTimeout and returns an
// error with its output if it fails.
func run(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
