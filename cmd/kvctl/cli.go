package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shelfdb/shelf/api"
)

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1 // generic or server error
	exitUsage       = 2 // bad command line
	exitNotFound    = 3 // not_found, tree_not_found, unknown_*
	exitConflict    = 4 // borrowed, not_borrowed, released, exists, ...
	exitUnreachable = 5 // no answer from the server
)

const usageText = `Usage: kvctl [-s HTTP_ADDR[,HTTP_ADDR...]] [-o table|json] <command> [args]

Commands:
  status                       cluster id, leader, term, commit/applied index, members
  members                      members with raft suffrage and gossip health
  members remove ID            remove a node from the raft configuration
  leader transfer [ID]         hand leadership to node ID (default: any node)
  trees                        trees with record counts and schema versions
  schema TREE [VERSION]        a tree's registered schema versions (or one), when
                               registered, and their fields: stored key path
                               ("dims.w", "lots[].code", "stock{}.n"), Go name, type
  get TREE ID[/REV]            one record, its value as JSON (no /REV: latest)
  list TREE [-limit N] [-after ID/REV] [-all]
                               records of a tree, one page (-limit per page,
                               server default 100) or every page with -all
  put TREE JSON|-              create a record from JSON (argument, or stdin
                               for "-") with a cluster-assigned id; prints ID/REV
  leases [TREE]                current borrows: record, holder (name and id),
                               since when, when it expires
  leases return TREE ID[/REV] (--client ID | --force [--reason R])
                               end a borrow as its holder, or force it as operator
  leases take TREE ID[/REV] --to CLIENT [--reason R] [--ttl D]
                               move a borrow to another client (id or name) as
                               operator, whoever holds it; --ttl: new expiry
  leases history TREE ID[/REV] a record's borrow history: time, action (borrowed,
                               renewed, returned, forced, expired, taken, released,
                               deleted, client_removed), holder, new holder, reason,
                               expiry
  ranges [CLIENT]              granted key ranges, how much of each is used, and
                               whether it is retired (its client was removed)
  clients                      registered clients, when last seen, replica index
  clients remove ID [--reason R]
                               remove a client: its borrows are returned and its
                               ranges retired (both listed); it cannot come back
  watch [TREE] [-from N|now]   stream events (of one tree or all), one per line,
                               from now or after log index N, until interrupted
  hash                         the node's applied index and content hash (equal
                               hashes at equal index: the replicas converged)
  snapshot save FILE           save the state machine snapshot ("-": stdout)
  certs init --dir DIR         make an office CA (DIR/ca.crt, DIR/ca.key)
  certs issue --ca DIR NAME (--node --hosts H[,H...] | --client) [--out DIR]
                               make a node certificate (server and client auth,
                               for the IPs and names in --hosts) or a client
                               certificate (CN=NAME): NAME.crt, NAME.key
  certs gossip-key             print a new -gossip-key
  version [-client]            kvctl's version and the answering node's (version,
                               commit, Go, state machine rules); -client: kvctl's only
  health [-ready]              exit 0 if the node serves (/healthz) or, with -ready,
                               is a member that knows a leader and caught up
                               (/readyz); else exit 1 with the reason (for probes)
  help                         this text

Flags (before or after the command):
  -s HTTP_ADDRS  a node's HTTP address, or several, comma-separated (env SHELF_HTTP,
                 default 127.0.0.1:7001): a request goes to the first that takes
                 it, moving on when a node cannot be reached or has no leader;
                 a request whose answer was lost is sent again to the next node
                 only if it is a read or carries an Idempotency-Key
  --cacert FILE  CA that verifies the nodes' certificates (nodes run with -tls-cert);
                 addresses without a scheme are then reached over https:// (env
                 SHELF_CACERT)
  --cert FILE, --key FILE
                 client certificate and key, for nodes that require one
                 (-tls-client-ca) (env SHELF_CERT, SHELF_KEY)
  -o FORMAT      table for people, json for scripts (env SHELF_OUTPUT, default table)
  -consistency C linearizable (default): a read reflects every write acknowledged
                 before it, whichever node answers; stale: the node's own state as
                 it is, faster, possibly behind (env SHELF_CONSISTENCY)
  --idempotency-key K
                 the Idempotency-Key of a write (put, leases return, leases take,
                 clients remove); default: a fresh random key per invocation.
                 A write whose answer does not arrive (server unreachable,
                 unavailable, no leader) is sent again, up to 4 times in all,
                 with the same key: the cluster applies it once. Run kvctl
                 again with the same K to retry a write that failed for good;
                 the cluster keeps a key at least 24h (see docs/http-api.md)

Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 conflict, 5 cannot reach the server.
`

// cli is one invocation: its streams, settings and the API client.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	hc             *http.Client

	addr, output, consistency string
	idemKey                   string // --idempotency-key
	client                    *api.Client
	retryWait                 time.Duration // first wait before a write is sent again (0: 250ms)
	tls                       tlsOptions    // --cacert, --cert, --key
}

// usageError is a bad command line; line is the command's synopsis.
type usageError struct{ line, msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(line, format string, args ...any) error {
	return &usageError{line: line, msg: fmt.Sprintf(format, args...)}
}

// run runs kvctl with args (without the program name) and returns the exit
// code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdin: os.Stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv, now: time.Now}
	return c.main(ctx, args)
}

// commands maps a command name to its handler.
var commands = map[string]func(*cli, context.Context, []string) error{
	"status":   (*cli).status,
	"members":  (*cli).members,
	"leader":   (*cli).leader,
	"trees":    (*cli).trees,
	"schema":   (*cli).schemas,
	"get":      (*cli).get,
	"list":     (*cli).list,
	"put":      (*cli).put,
	"leases":   (*cli).leases,
	"ranges":   (*cli).ranges,
	"clients":  (*cli).clients,
	"watch":    (*cli).watch,
	"hash":     (*cli).hash,
	"snapshot": (*cli).snapshot,
	"certs":    (*cli).certs,
	"version":  (*cli).version,
	"health":   (*cli).health,
}

func (c *cli) main(ctx context.Context, args []string) int {
	c.addr = c.getenv("SHELF_HTTP")
	if c.addr == "" {
		c.addr = "127.0.0.1:7001"
	}
	c.output = c.getenv("SHELF_OUTPUT")
	if c.output == "" {
		c.output = "table"
	}
	c.consistency = c.getenv("SHELF_CONSISTENCY")
	c.tlsEnv()
	fs := c.flagSet("kvctl")
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		err = usagef("", "%v", err)
	}
	if err == nil {
		err = c.checkFlags("")
	}
	if err == nil {
		args = fs.Args()
		if len(args) == 0 || args[0] == "help" {
			if len(args) == 0 {
				fmt.Fprint(c.stderr, usageText)
				return exitUsage
			}
			fmt.Fprint(c.stdout, usageText)
			return exitOK
		}
		cmd, ok := commands[args[0]]
		if !ok {
			fmt.Fprintf(c.stderr, "kvctl: unknown command %q\n\n%s", args[0], usageText)
			return exitUsage
		}
		err = cmd(c, ctx, args[1:])
	}
	return c.fail(ctx, err)
}

// fail reports err on stderr and returns its exit code.
func (c *cli) fail(ctx context.Context, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(c.stdout, usageText)
		return exitOK
	}
	if ctx.Err() != nil {
		fmt.Fprintf(c.stderr, "kvctl: %v\n", context.Cause(ctx))
		return exitError
	}
	fmt.Fprintf(c.stderr, "kvctl: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.line != "" {
			fmt.Fprintf(c.stderr, "usage: kvctl %s\n", ue.line)
		} else {
			fmt.Fprintln(c.stderr, `run "kvctl help" for usage`)
		}
		return exitUsage
	}
	if errors.Is(err, api.ErrUnreachable) {
		return exitUnreachable
	}
	if errors.As(err, new(existsError)) {
		return exitConflict
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case api.CodeNotFound, api.CodeTreeNotFound, api.CodeUnknownClient,
			api.CodeUnknownSchema, api.CodeUnknownMember:
			return exitNotFound
		case api.CodeExists, api.CodeBorrowed, api.CodeNotBorrowed, api.CodeReleased,
			api.CodeNotReleased, api.CodeNotInRange, api.CodeWrongCluster, api.CodeIncompatible,
			api.CodeKeyReused, api.CodeSeqForgotten:
			return exitConflict
		}
	}
	return exitError
}

// flagSet returns a flag set with the global flags, bound to c.
func (c *cli) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.addr, "s", c.addr, "HTTP addresses of nodes, comma-separated")
	fs.StringVar(&c.output, "o", c.output, "output format: table or json")
	fs.StringVar(&c.consistency, "consistency", c.consistency, "reads: linearizable (default) or stale")
	fs.StringVar(&c.idemKey, "idempotency-key", c.idemKey, "idempotency key of a write")
	c.tlsFlags(fs)
	return fs
}

// writeAttempts bounds how often kvctl sends one write.
const writeAttempts = 4

// write runs a write with an idempotency key (--idempotency-key, or one
// fresh random key for this invocation), sending it again with the same
// key, with backoff, while its answer does not arrive: the cluster
// applies it once.
func (c *cli) write(ctx context.Context, send func(ctx context.Context) error) error {
	if c.idemKey == "" {
		c.idemKey = api.NewIdempotencyKey()
	}
	ctx = api.WithIdempotencyKey(ctx, c.idemKey)
	wait := c.retryWait
	if wait <= 0 {
		wait = 250 * time.Millisecond
	}
	for attempt := 1; ; attempt++ {
		err := send(ctx)
		if err == nil || attempt == writeAttempts || !(errors.Is(err, api.ErrUnreachable) ||
			errors.Is(err, api.ErrUnavailable) || errors.Is(err, api.ErrNoLeader)) {
			return err
		}
		fmt.Fprintf(c.stderr, "kvctl: %v; sending again in %s with idempotency key %s (attempt %d of %d)\n", err, wait, c.idemKey, attempt+1, writeAttempts)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// parse parses args with flags anywhere among the positional arguments
// ("--" ends the flags) and checks the positional count is in [min, max].
func (c *cli) parse(fs *flag.FlagSet, line string, args []string, min, max int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef(line, "%v", err)
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if err := c.checkFlags(line); err != nil {
		return nil, err
	}
	switch {
	case len(pos) < min:
		return nil, usagef(line, "%s: missing arguments", fs.Name())
	case len(pos) > max:
		return nil, usagef(line, "%s: unexpected arguments %q", fs.Name(), pos[max:])
	}
	return pos, nil
}

// checkFlags checks the global flags' values.
func (c *cli) checkFlags(line string) error {
	if c.output != "table" && c.output != "json" {
		return usagef(line, "-o %q: want table or json", c.output)
	}
	switch api.Consistency(c.consistency) {
	case "", api.Linearizable, api.Stale:
	default:
		return usagef(line, "-consistency %q: want linearizable or stale", c.consistency)
	}
	if _, err := splitAddrs(c.addr); err != nil {
		return usagef(line, "%v", err)
	}
	return c.loadTLS()
}

// api returns the API client for -s. With several addresses, each
// request goes to the first node that takes it (see failover).
func (c *cli) api() *api.Client {
	if c.client == nil {
		hc := c.hc
		if hc == nil {
			t := http.DefaultTransport.(*http.Transport).Clone()
			t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
			t.ResponseHeaderTimeout = time.Minute
			t.TLSClientConfig = c.tls.cfg
			hc = &http.Client{Transport: t}
		}
		addr := c.withScheme(c.addr)
		addrs, err := splitAddrs(addr)
		if err != nil || len(addrs) == 1 {
			c.client = api.NewClient(addr, hc).WithConsistency(api.Consistency(c.consistency)) // checkFlags reported a bad -s already
			return c.client
		}
		next := hc.Transport
		if next == nil {
			next = http.DefaultTransport
		}
		fo := *hc
		fo.Transport = &failover{next: next, nodes: addrs}
		c.client = api.NewClient(addrs[0], &fo).WithConsistency(api.Consistency(c.consistency))
	}
	return c.client
}

// emit prints v as indented JSON with -o json, or calls table otherwise.
func (c *cli) emit(v any, table func(w io.Writer)) error {
	if c.output == "json" {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.stdout, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// row writes tab-separated cells as one table line.
func row(w io.Writer, cells ...any) {
	for i, v := range cells {
		if i > 0 {
			fmt.Fprint(w, "\t")
		}
		fmt.Fprint(w, v)
	}
	fmt.Fprintln(w)
}

// orEmpty makes a nil slice print as [] rather than null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ago formats t relative to now: "5m ago", "in 2h", a date when far.
func (c *cli) ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := c.now().Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh", int(d/time.Hour))
	case d < 30*24*time.Hour:
		s = fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	default:
		return t.Local().Format(time.DateOnly)
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// when formats t as RFC 3339 with the relative time: for detail views.
func (c *cli) when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%s (%s)", t.Format(time.RFC3339), c.ago(t))
}

// who names a client: "name (id)", or the id alone.
func who(id, name string) string {
	switch {
	case id == "":
		return "operator"
	case name == "" || name == id:
		return id
	default:
		return name + " (" + id + ")"
	}
}

// parseKey parses a command line "ID[/REV]".
func parseKey(line, s string) (api.Key, error) {
	k, err := api.ParseKey(s)
	if err != nil {
		return k, usagef(line, "%v", err)
	}
	return k, nil
}

// dash prints "" as "-" in tables.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// yesNo prints a bool for tables.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// join formats a list for a table cell.
func join[T any](s []T) string {
	if len(s) == 0 {
		return "-"
	}
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, ",")
}
