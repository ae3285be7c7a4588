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
	"slices"
	"strings"
	"sync/atomic"
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
	exitUnreachable = 5 // no answer from the server, or --timeout ran out
	exitDenied      = 6 // unauthenticated or forbidden (auth on)
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
  search TREE FIELD OP VALUE [-sort PATH] [-desc] [-limit N] [-offset N] [-scan N] [-revisions]
                               records whose FIELD (a dot path such as dims.w;
                               "" any top-level field; id the record id) compares
                               with VALUE by OP: eq, prefix, contains, lt, gt;
                               a scan (no indexes on the nodes), bounded by -scan
  put TREE JSON|-              create a record from JSON (argument, or stdin
                               for "-") with a cluster-assigned id; prints ID/REV
  edit TREE ID [--client C] [--ttl D]
                               check out, edit the value as JSON in $VISUAL,
                               $EDITOR or vi, check against the schema (reopens
                               on a mistake), check in; the borrow is returned
                               on every way out
  update TREE ID JSON|- [--client C]
                               replace a record's value (borrow, update, return)
  delete TREE ID [--client C]  delete a record (borrow, delete)
  checkout TREE ID [--ttl D] [--client C]
                               borrow a record as the operator client
  return TREE ID [--client C]  return the operator client's borrow
  release TREE ID [--client C] make a draft immutable (except its state)
  revise TREE ID               new draft revision of a released record
  state TREE ID N [--client C] set a record's state number
                               (--client: the client kvctl acts as, name or id,
                               env SHELF_CLIENT; default kvctl@HOSTNAME,
                               registered once per cluster: kvctl help edit)
  leases [TREE]                current borrows: record, holder (name and id),
                               since when, when it expires
  leases return TREE ID[/REV] (--client CLIENT | --force [--reason R])
                               end a borrow as its holder (name or id), or
                               force it as operator
  leases take TREE ID[/REV] --to CLIENT [--reason R] [--ttl D]
                               move a borrow to another client (id or name) as
                               operator, whoever holds it; --ttl: new expiry
  leases history TREE ID[/REV] a record's borrow history: time, action (borrowed,
                               renewed, returned, forced, expired, taken, released,
                               deleted, client_removed), holder, new holder, reason,
                               expiry
  ranges [CLIENT]              granted key ranges (of one client: name or id),
                               how much of each is used, and whether it is
                               retired (its client was removed)
  clients                      registered clients, when last seen, replica index
  clients remove NAME|ID [--reason R]
                               remove a client: its borrows are returned and its
                               ranges retired (both listed); it cannot come back
  watch [TREE] [-from N|now]   stream events (of one tree or all), one per line,
                               from now or after log index N, until interrupted;
                               moves to another -s node when its node goes away
  hash                         the node's applied index and content hash (equal
                               hashes at equal index: the replicas converged)
  snapshot save FILE [-q]      save a snapshot of the state while writes go on
                               (through a temporary file, checksum verified before
                               it gets its name; "-": stdout); progress on a
                               terminal unless -q
  export --sqlite FILE [TREE...] [-q]
                               write trees (default: all) to a new SQLite file: a
                               table per tree, a column per schema field
                               (docs/kvctl.md, "SQLite export and import")
  import --sqlite FILE [-q] [--client NAME]
                               create the file's records the cluster lacks, update
                               changed ones under a borrow; refusals reported
  snapshot inspect FILE        check a snapshot file and show its index, cluster id,
                               content hash, clients, borrows, records per tree
  snapshot restore FILE --data DIR --id ID [--raft ADDR] [--raft-log bolt|wal] [--keep-cluster-id]
                               seed a new single-node cluster in DIR (absent or
                               empty) from FILE, checksum verified, with a new
                               cluster id unless --keep-cluster-id; then start
                               kvnode -id ID -data DIR -raft ADDR (no -bootstrap)
  recover --data DIR --id ID [--raft ADDR]
                               quorum lost: make the stopped survivor in DIR the
                               only voter (docs/operations.md, "Quorum loss")
  certs init --dir DIR         make an office CA (DIR/ca.crt, DIR/ca.key)
  certs issue --ca DIR NAME (--node --hosts H[,H...] | --client) [--out DIR]
                               make a node certificate (server and client auth,
                               for the IPs and names in --hosts) or a client
                               certificate (CN=NAME): NAME.crt, NAME.key
  certs gossip-key             print a new -gossip-key
  tokens create NAME --role reader|writer|admin [--client CLIENT]
                               make an API token (admin); prints the secret, once.
                               A writer token acts as one client: --client (id or
                               name), or the first client it registers
  tokens [list]                API tokens: name, role, bound client, created (never
                               the secrets)
  tokens revoke NAME           delete a token: its requests are refused from now on
  version [-client]            kvctl's version and the answering node's (version,
                               commit, Go, state machine rules); -client: kvctl's only
  health [-ready]              exit 0 if the node serves (/healthz) or, with -ready,
                               is a member that knows a leader and caught up
                               (/readyz); else exit 1 with the reason (for probes)
  completion bash|zsh          print a shell completion script
  help [COMMAND [SUB]]         this text, or a command's usage, flags and examples
                               (also: kvctl COMMAND -h)

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
  --token TOKEN  API token for nodes with auth on (kvnode -auth), sent as
                 Authorization: Bearer (env SHELF_TOKEN)
  --token-file FILE
                 file holding the token, e.g. DATA/admin.token of the bootstrap
                 node (env SHELF_TOKEN_FILE); --token wins
  -o FORMAT      table for people, json for scripts (env SHELF_OUTPUT, default table);
                 with json, errors go to stderr as {"error":{"code":C,"message":M}}
  --timeout D    bound on all the network waits of a command, such as 10s or 1m
                 (env SHELF_TIMEOUT, default 10s; 0: none); then "timed out after
                 D waiting for ..." and exit 5. Not bounded: watch (each wait
                 for a node is: 30s long poll plus D), snapshot save, export,
                 import, and edit (D bounds each of its network steps)
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

Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 conflict, 5 cannot reach the server
or timed out, 6 refused (no valid token, or its role does not allow the command).
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
	tok                       tokenOptions  // --token, --token-file
	waiting                   inFlight      // the request last sent, for timeout errors
	failover                  *failover     // with several -s addresses

	cmd       string          // the command being run ("": none yet)
	helpFS    *flag.FlagSet   // the flags of the command whose help was asked for
	helpPos   []string        // the arguments before its -h (a subcommand)
	deadline  commandDeadline // --timeout
	wrote     bool            // a write was sent (with c.idemKey)
	unbounded bool            // --timeout does not bound the command (unboundedCommands)
	inEditor  atomic.Bool     // kvctl edit is running the editor: Ctrl-C is the editor's
	operator  string          // --client (env SHELF_CLIENT): the client kvctl acts as
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
	return newCLI(stdout, stderr).main(ctx, args)
}

// newCLI returns an invocation reading os.Stdin and the environment.
func newCLI(stdout, stderr io.Writer) *cli {
	return &cli{stdin: os.Stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv, now: time.Now}
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
	"search":   (*cli).search,
	"put":      (*cli).put,
	"update":   (*cli).update,
	"edit":     (*cli).edit,
	"delete":   (*cli).deleteRecord,
	"checkout": (*cli).checkout,
	"return":   (*cli).returnRecord,
	"release":  (*cli).release,
	"revise":   (*cli).revise,
	"state":    (*cli).state,
	"leases":   (*cli).leases,
	"ranges":   (*cli).ranges,
	"clients":  (*cli).clients,
	"watch":    (*cli).watch,
	"hash":     (*cli).hash,
	"snapshot": (*cli).snapshot,
	"export":   (*cli).export,
	"import":   (*cli).imports,
	"recover":  (*cli).recover,
	"certs":    (*cli).certs,
	"tokens":   (*cli).tokens,
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
	c.tokenEnv()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c.deadline.cancel = cancel
	defer c.deadline.stop()
	err := c.timeoutEnv()
	fs := c.flagSet("kvctl")
	if err == nil {
		err = fs.Parse(args)
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			err = usagef("", "%v", err)
		}
	}
	if err == nil {
		err = c.checkFlags("")
	}
	if err == nil {
		args = fs.Args()
		switch {
		case len(args) == 0:
			fmt.Fprint(c.stderr, usageText)
			return exitUsage
		case args[0] == "help":
			return c.fail(ctx, c.help(ctx, args[1:]))
		case args[0] == completeCommand:
			return c.fail(ctx, c.complete(ctx, args[1:]))
		}
		cmd, ok := commands[args[0]]
		if !ok {
			return c.fail(ctx, unknownCommand(args[0]))
		}
		c.cmd, c.unbounded = args[0], unboundedCommands[args[0]]
		err = cmd(c, ctx, args[1:])
	}
	return c.fail(ctx, err)
}

// fail reports err on stderr, as text or (with -o json) as
// {"error":{"code":…,"message":…}}, and returns its exit code.
func (c *cli) fail(ctx context.Context, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		c.printHelp()
		return exitOK
	}
	if ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	code, kind := classify(err)
	if code == exitUnreachable && c.wrote {
		err = fmt.Errorf("%w; the write may have been applied: run kvctl again with --idempotency-key %s to apply it at most once", err, c.idemKey)
	}
	var ue *usageError
	usage := ""
	if errors.As(err, &ue) {
		usage = ue.line
	}
	if c.output == "json" {
		e := jsonError{Code: kind, Message: err.Error()}
		if usage != "" {
			e.Usage = "kvctl " + usage
		}
		b, _ := json.Marshal(map[string]jsonError{"error": e})
		fmt.Fprintf(c.stderr, "%s\n", b)
		return code
	}
	fmt.Fprintf(c.stderr, "kvctl: %v\n", err)
	if ue != nil {
		if usage != "" {
			fmt.Fprintf(c.stderr, "usage: kvctl %s\n", usage)
		} else {
			fmt.Fprintln(c.stderr, `run "kvctl help" for usage`)
		}
	}
	return code
}

// jsonError is an error as -o json prints it on stderr.
type jsonError struct {
	Code    string `json:"code"`            // the API error code, or usage, unreachable, timeout, interrupted, exists, error
	Message string `json:"message"`         // what the text output prints after "kvctl: "
	Usage   string `json:"usage,omitempty"` // the command's synopsis, for usage errors
}

// classify returns err's exit code and the code -o json names it by.
func classify(err error) (int, string) {
	var ue *usageError
	var te *timeoutError
	var ae *api.Error
	switch {
	case errors.As(err, &ue):
		return exitUsage, "usage"
	case errors.As(err, &te):
		return exitUnreachable, "timeout"
	case errors.Is(err, context.Canceled):
		return exitError, "interrupted"
	case errors.Is(err, api.ErrUnreachable):
		return exitUnreachable, "unreachable"
	case errors.As(err, new(existsError)):
		return exitConflict, "exists"
	case errors.As(err, &ae):
		switch ae.Code {
		case api.CodeUnauthenticated, api.CodeForbidden:
			return exitDenied, string(ae.Code)
		case api.CodeNotFound, api.CodeTreeNotFound, api.CodeUnknownClient,
			api.CodeUnknownSchema, api.CodeUnknownMember:
			return exitNotFound, string(ae.Code)
		case api.CodeExists, api.CodeBorrowed, api.CodeNotBorrowed, api.CodeReleased,
			api.CodeNotReleased, api.CodeNotInRange, api.CodeWrongCluster, api.CodeIncompatible,
			api.CodeKeyReused, api.CodeSeqForgotten:
			return exitConflict, string(ae.Code)
		}
		return exitError, string(ae.Code)
	}
	return exitError, "error"
}

// flagSet returns a flag set with the global flags, bound to c.
func (c *cli) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.addr, "s", c.addr, "HTTP addresses of nodes, comma-separated")
	fs.StringVar(&c.output, "o", c.output, "output format: table or json")
	fs.StringVar(&c.consistency, "consistency", c.consistency, "reads: linearizable (default) or stale")
	fs.StringVar(&c.idemKey, "idempotency-key", c.idemKey, "idempotency key of a write")
	fs.DurationVar(&c.deadline.after, "timeout", c.deadline.after, "bound on a command's network waits (0: none)")
	c.tlsFlags(fs)
	c.tokenFlags(fs)
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
	if api.IdempotencyKey(ctx) == "" {
		// One write per command; commands with several give each its
		// own key (step).
		ctx = api.WithIdempotencyKey(ctx, c.idemKey)
	}
	c.wrote = true
	wait := c.retryWait
	if wait <= 0 {
		wait = 250 * time.Millisecond
	}
	for attempt := 1; ; attempt++ {
		err := send(ctx)
		if err == nil || attempt == writeAttempts || !(errors.Is(err, api.ErrUnreachable) ||
			errors.Is(err, api.ErrUnavailable) || errors.Is(err, api.ErrNoLeader)) || ctx.Err() != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "kvctl: %v; sending again in %s with idempotency key %s (attempt %d of %d)\n", err, wait, c.idemKey, attempt+1, writeAttempts)
		if !pause(ctx, wait) {
			return err
		}
		wait *= 2
	}
}

// pause waits d, or until ctx ends: then it returns false. The waits
// between attempts (write, watch) go through it.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// parse parses args with flags anywhere among the positional arguments
// ("--" ends the flags) and checks the positional count is in [min, max].
func (c *cli) parse(fs *flag.FlagSet, line string, args []string, min, max int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.helpFS, c.helpPos = fs, pos
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
	if !c.unbounded {
		c.deadline.start(&c.waiting)
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
	if err := c.loadToken(); err != nil {
		return err
	}
	if c.deadline.after < 0 {
		return usagef(line, "--timeout %s: want a positive duration, or 0 for none", c.deadline.after)
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
		// The request in flight is what a timeout names.
		base := hc.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		tracked := *hc
		tracked.Transport = &c.waiting
		c.waiting.next = base
		hc = &tracked
		addr := c.withScheme(c.addr)
		addrs, err := splitAddrs(addr)
		if err != nil || len(addrs) == 1 {
			c.client = api.NewClient(addr, hc).WithConsistency(api.Consistency(c.consistency)).WithToken(c.tok.loaded) // checkFlags reported a bad -s already
			return c.client
		}
		next := hc.Transport
		if next == nil {
			next = http.DefaultTransport
		}
		fo := *hc
		c.failover = &failover{next: next, nodes: addrs}
		fo.Transport = c.failover
		c.client = api.NewClient(addrs[0], &fo).WithConsistency(api.Consistency(c.consistency)).WithToken(c.tok.loaded)
	}
	return c.client
}

// node returns the address of the node requests go to first: the one
// that answered last.
func (c *cli) node() string {
	c.api()
	if c.failover == nil {
		return c.client.BaseURL()
	}
	c.failover.mu.Lock()
	defer c.failover.mu.Unlock()
	return c.failover.nodes[0]
}

// demote makes node the last one tried, with several -s addresses.
func (c *cli) demote(node string) {
	if c.failover == nil {
		return
	}
	f := c.failover
	f.mu.Lock()
	defer f.mu.Unlock()
	if i := slices.Index(f.nodes, node); i >= 0 {
		f.nodes = append(append(f.nodes[:i:i], f.nodes[i+1:]...), node)
	}
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
