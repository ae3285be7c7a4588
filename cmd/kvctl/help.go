package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// helpEntry is the help of a command or subcommand: "kvctl help NAME",
// "kvctl NAME -h", "kvctl NAME --help".
type helpEntry struct {
	usage    []string // synopses, without "kvctl "
	about    string   // what it does
	flags    []string // the command flags it takes (nil: every one of its flag set; empty: none)
	examples []string // command lines, without "kvctl "
}

// commandHelp holds the help of each command, and of subcommands under
// "COMMAND SUB". The synopses are those of usageText.
var commandHelp = map[string]helpEntry{
	"status": {usage: []string{"status"},
		about:    "The cluster id, this node's state, the leader, term, commit, applied and last log index, and the members.",
		examples: []string{"status", "-s 10.0.0.1:7001,10.0.0.2:7001 -o json status"}},
	"members": {usage: []string{"members", "members remove ID"},
		about:    "Members with their raft suffrage and gossip health. remove takes node ID out of the raft configuration (do this for a node that is gone for good).",
		examples: []string{"members", "members remove n3"}},
	"leader": {usage: []string{"leader transfer [ID]"},
		about:    "Hand leadership to node ID, or to any other node.",
		examples: []string{"leader transfer", "leader transfer n2"}},
	"trees": {usage: []string{"trees"},
		about:    "Trees with their record counts, schema versions and creation time.",
		examples: []string{"trees"}},
	"schema": {usage: []string{"schema TREE [VERSION]"},
		about:    "A tree's registered schema versions (or one), when registered, and their fields: stored key path (\"dims.w\", \"lots[].code\", \"stock{}.n\"), Go name, type.",
		examples: []string{"schema parts", "schema parts 2"}},
	"get": {usage: []string{"get TREE ID[/REV]"},
		about:    "One record, its value as JSON; without /REV the latest revision.",
		examples: []string{"get parts 12", "get parts 12/3 -o json"}},
	"list": {usage: []string{"list TREE [-limit N] [-after ID/REV] [-all]"},
		about:    "Records of a tree: one page (-limit per page, server default 100), or every page with -all.",
		examples: []string{"list parts -limit 20", "list parts -all -o json"}},
	"search": {usage: []string{searchLine},
		about: "Records of a tree whose FIELD compares with VALUE by OP. FIELD is a dot path into the value (name, dims.w, lots.0.code: a number indexes an array), \"\" for any top-level field, or id for the record id (eq, lt, gt only; read by key, not scanned). " +
			"OP: eq (numbers by value, so 3 equals 3.0), prefix and contains (strings; contains also finds an element of an array), lt and gt (numbers numerically, strings lexically, times in time order). " +
			"VALUE is read as JSON when it parses (3, true, \"3\", [\"a\"]), else as a string; a string field compares with it as text, so code eq 12 finds \"12\". " +
			"Only the latest revision of each id is searched unless -revisions. The nodes have no secondary indexes: the search scans the tree in key order, at most -scan records (default 100000); stderr says how many were examined and whether the scan stopped before the tree's end. " +
			"-sort PATH orders the matches (records without it last; id: by key), -desc reverses, -offset and -limit page (default 50 shown, at most 1000).",
		examples: []string{"search parts name eq R1", "search parts dims.w gt 2.5 -sort dims.w -desc", `search parts '' contains steel -limit 10`, "search parts made gt 2026-01-01 -o json", "search parts id lt 100 -revisions"}},
	"put": {usage: []string{"put TREE JSON|-"},
		about:    "Create a record from JSON (the argument, or stdin for \"-\") with a cluster-assigned id; prints ID/REV. The write carries an idempotency key and is sent again when its answer is lost: it is applied once.",
		examples: []string{`put parts '{"name": "R1", "qty": 10}'`, "put parts - < part.json"}},
	"edit": {usage: []string{editLine},
		about: "Edit a record in $VISUAL, $EDITOR or vi (as git picks it): check it out as the operator client, write its value as indented JSON to a temporary file, open the editor, check the result against the record's schema version and check it in (update, then return). " +
			"An invalid edit reopens the editor with the error above the value as \"// kvctl:\" lines (removed before parsing); saving an empty file, the value unchanged, or the error file unchanged aborts. " +
			"The borrow is returned on every way out (abort, editor failure, refused update, timeout, Ctrl-C outside the editor, SIGTERM, SIGHUP); --ttl (default 1h) ends it if kvctl is killed. Ctrl-C inside the editor is the editor's. " +
			"--timeout bounds each network step, not the editing. A record the operator client has checked out (kvctl checkout) stays checked out. " +
			"The operator client: --client (name or id, env SHELF_CLIENT), else kvctl@HOSTNAME, registered once per cluster and remembered in $XDG_CONFIG_HOME/shelf/kvctl.json (default ~/.config/shelf/kvctl.json).",
		examples: []string{"edit parts 12", "EDITOR=nano kvctl edit parts 12/2 --ttl 10m"}},
	"update": {usage: []string{updateLine},
		about:    "Replace a record's value with JSON (the argument, or stdin for \"-\"), checked against its schema version: borrow as the operator client (see kvctl help edit), update, return (a record the operator client has checked out stays so). Refusals: borrowed by another client, released, incompatible value (exit 4).",
		examples: []string{`update parts 12 '{"name": "R1", "qty": 12}'`, "update parts 12 - < part.json"}},
	"delete": {usage: []string{deleteLine},
		about:    "Delete a record (its latest revision, or ID/REV): borrow as the operator client, delete (which ends the borrow). Refused if another client holds it or it is released.",
		examples: []string{"delete parts 12"}},
	"checkout": {usage: []string{checkoutLine},
		about:    "Borrow a record as the operator client (see kvctl help edit) until kvctl return; --ttl sets an expiry. While checked out, kvctl edit, update, delete and release use this borrow and leave it in place.",
		examples: []string{"checkout parts 12 --ttl 30m"}},
	"return": {usage: []string{returnLine},
		about:    "Return a borrow the operator client holds (kvctl checkout). To end another client's borrow: kvctl leases return.",
		examples: []string{"return parts 12"}},
	"release": {usage: []string{releaseLine},
		about:    "Release a draft: it becomes immutable except for its state number (borrow as the operator client, release, which ends the borrow).",
		examples: []string{"release parts 12"}},
	"revise": {usage: []string{reviseLine},
		about:    "Make the next revision of a released record as a draft (a copy of its value), not borrowed by anyone; prints its ID/REV.",
		flags:    []string{},
		examples: []string{"revise parts 12", "revise parts 12/2 -o json"}},
	"state": {usage: []string{stateLine},
		about:    "Set a record's state number (allowed on released records too) as the operator client; refused if another client holds its borrow.",
		examples: []string{"state parts 12 3"}},
	"leases": {usage: []string{leasesListLine, leasesReturnLine, leasesTakeLine, leasesHistoryLine},
		about:    "Current borrows (record, holder, since when, expiry), and the operator's actions on them; \"kvctl help leases return|take|history\" for each.",
		flags:    []string{},
		examples: []string{"leases", "leases parts"}},
	"leases return": {usage: []string{leasesReturnLine},
		about:    "End a borrow as its holder (--client, a client name or id), or force it back as operator (--force, with a --reason kept in the record's history).",
		flags:    leasesFlags["return"],
		examples: []string{"leases return parts 12 --client ws-7", `leases return parts 12 --force --reason "left for the day"`}},
	"leases take": {usage: []string{leasesTakeLine},
		about:    "Move a borrow to another client (name or id) as operator, whoever holds it; --ttl sets the new expiry.",
		flags:    leasesFlags["take"],
		examples: []string{"leases take parts 12 --to laptop --ttl 2h --reason handover"}},
	"leases history": {usage: []string{leasesHistoryLine},
		about:    "A record's borrow history: time, action (borrowed, renewed, returned, forced, expired, taken, released, deleted, client_removed), holder, new holder, reason, expiry.",
		flags:    []string{},
		examples: []string{"leases history parts 12"}},
	"ranges": {usage: []string{"ranges [CLIENT]"},
		about:    "Granted key ranges (of every client, or of one, by name or id), how much of each is used, and whether it is retired (its client was removed).",
		examples: []string{"ranges", "ranges ws-7"}},
	"clients": {usage: []string{"clients", "clients remove NAME|ID [--reason R]"},
		about:    "Registered clients, when last seen, and their replica index. remove (by name or id) returns the client's borrows and retires its ranges, listing both; the client cannot come back.",
		examples: []string{"clients", `clients remove ws-7 --reason "left the company"`}},
	"watch": {usage: []string{"watch [TREE] [-from N|now]"},
		about: "Stream events (of one tree or all), one per line, from now or after log index N, until interrupted. With several -s nodes it moves to another node when its node goes away and resumes after the last event printed. " +
			"--timeout bounds each wait for a node (on top of the 30s long poll), not the watch. If the events it needs are no longer kept (compacted), it says so and exits 1.",
		examples: []string{"watch parts", "-s a:7001,b:7001,c:7001 watch -from 120 -o json"}},
	"hash": {usage: []string{"hash"},
		about:    "The node's applied index and content hash: equal hashes at equal index mean the replicas converged.",
		examples: []string{"hash", "-s 10.0.0.2:7001 hash"}},
	"export": {usage: []string{exportLine},
		about: "Write trees (default: every tree) to a new SQLite file: one table per tree with id, rev, schema_version, released, state and a column per field of the tree's latest schema " +
			"(nested values as JSON text, keys of other trees as their ids), and shelf_schemas with every schema version. Read page by page; progress on stderr when it is a terminal, unless -q. " +
			"--timeout does not bound it. Column mapping: docs/kvctl.md, \"SQLite export and import\".",
		flags:    []string{"sqlite", "q"},
		examples: []string{"export --sqlite shelf.sqlite", "export --sqlite parts.sqlite parts boards", "export --sqlite x.sqlite -q -o json"}},
	"import": {usage: []string{importLine},
		about: "Apply a file written by export --sqlite: records the cluster lacks are created (with new ids: keys to them are rewritten), changed ones updated under a borrow of a client registered as --client and returned, " +
			"unchanged ones skipped; a changed released record, a record borrowed by another client or an incompatible value is refused and reported, and the import goes on. " +
			"The whole file is checked first: not SQLite, an unknown column or a value of the wrong type stops it before any write. Progress on stderr when it is a terminal, unless -q. --timeout does not bound it.",
		flags:    []string{"sqlite", "q", "client"},
		examples: []string{"import --sqlite shelf.sqlite", "-s 10.0.0.9:7001 import --sqlite shelf.sqlite -o json"}},
	"snapshot": {usage: []string{snapshotSaveLine, snapshotInspectLine, snapshotRestoreLine},
		about:    "Backups: save a snapshot of the state while writes go on, check one, or restore one as a new cluster; \"kvctl help snapshot save|inspect|restore\" for each (docs/operations.md, \"Backup and restore\").",
		flags:    []string{},
		examples: []string{"snapshot save shelf.snap", "snapshot inspect shelf.snap", "snapshot restore shelf.snap --data /var/lib/shelf-new --id kv1 --raft 10.0.0.1:7002"}},
	"snapshot save": {usage: []string{snapshotSaveLine},
		about: "Save a snapshot of the answering node's state to FILE while writes go on: through a temporary file whose size and SHA-256 are checked before it gets its name (\"-\": the stream to stdout, unchecked). " +
			"Progress (bytes, rate) on stderr when it is a terminal, unless -q. --timeout does not bound it.",
		flags:    snapshotFlags["save"],
		examples: []string{"-s 10.0.0.2:7001 snapshot save /backup/shelf.snap", "snapshot save -q -o json shelf.snap"}},
	"snapshot inspect": {usage: []string{snapshotInspectLine},
		about:    "Check a snapshot file offline (size, SHA-256, state file) and show its index, cluster id, rules version, content hash (as kvctl hash shows at that index), clients, borrows and records per tree.",
		flags:    snapshotFlags["inspect"],
		examples: []string{"snapshot inspect shelf.snap", "snapshot inspect shelf.snap -o json"}},
	"snapshot restore": {usage: []string{snapshotRestoreLine},
		about: "Seed DIR (absent or empty) for a new single-node cluster from FILE, checksum verified, with a new cluster id unless --keep-cluster-id; nothing is left in DIR on an error. " +
			"Then start kvnode -id ID -data DIR -raft ADDR (no -bootstrap) and let the other nodes -join it with empty data directories.",
		flags:    snapshotFlags["restore"],
		examples: []string{"snapshot restore shelf.snap --data /var/lib/shelf-new --id kv1 --raft 10.0.0.1:7002"}},
	"recover": {usage: []string{recoverLine},
		about: "Quorum lost for good: make the stopped survivor in DIR the only voter of its cluster (every entry of its log taken as committed, as raft's RecoverCluster does; the cluster id kept). " +
			"Start it again with its usual flags; new nodes join it with empty data directories. Never restart the lost nodes with their old data (docs/operations.md, \"Quorum loss\").",
		examples: []string{"recover --data /var/lib/shelf --id kv1 --raft 10.0.0.1:7002"}},
	"certs": {usage: []string{"certs init --dir DIR", "certs issue --ca DIR NAME (--node --hosts H[,H...] | --client) [--out DIR]", "certs gossip-key"},
		about:    "An office CA, node and client certificates, and gossip keys, made with crypto/x509; \"kvctl help certs init|issue\" for their flags.",
		examples: []string{"certs init --dir ca", "certs issue --ca ca kv1 --node --hosts 10.0.0.1,kv1.office", "certs issue --ca ca ws-7 --client"}},
	"certs init": {usage: []string{"certs init --dir DIR [--name NAME] [--days N] [--force]"},
		about:    "Make the office CA: DIR/ca.crt and DIR/ca.key.",
		examples: []string{"certs init --dir /etc/shelf/ca"}},
	"certs issue": {usage: []string{"certs issue --ca DIR NAME (--node --hosts H[,H...] | --client) [--out DIR] [--days N] [--force]"},
		about:    "Make a node certificate (server and client auth, for the IPs and names in --hosts) or a client certificate (CN=NAME): NAME.crt, NAME.key.",
		examples: []string{"certs issue --ca /etc/shelf/ca kv1 --node --hosts 10.0.0.1,kv1.office,localhost"}},
	"certs gossip-key": {usage: []string{"certs gossip-key"},
		about:    "Print a new key for kvnode -gossip-key.",
		examples: []string{"certs gossip-key"}},
	"tokens": {usage: []string{"tokens create NAME --role reader|writer|admin [--client CLIENT]", "tokens list", "tokens revoke NAME"},
		about:    "API tokens of a cluster with auth on (kvnode -auth), for admins: create prints the secret once (the cluster keeps only its hash), list shows name, role, bound client and creation time, never secrets, revoke deletes one. \"kvctl help tokens create\" for the roles.",
		examples: []string{"--token-file /var/lib/shelf/admin.token tokens create alice --role admin", "tokens list", "tokens revoke ws-7"}},
	"tokens create": {usage: []string{"tokens create NAME --role reader|writer|admin [--client CLIENT]"},
		about:    "Make an API token and print its secret, once. reader: every read, the log, events and snapshot; writer: also writes as one client (--client, an id or name, or else the first client the token registers); admin: everything, operator actions and tokens included.",
		flags:    []string{"role", "client"},
		examples: []string{"tokens create ws-7 --role writer > ws-7.token", "tokens create dashboards --role reader", "-o json tokens create alice --role admin"}},
	"tokens list": {usage: []string{"tokens list"},
		about:    "The API tokens: name, role, bound client, created. Never the secrets.",
		flags:    []string{},
		examples: []string{"tokens list", "-o json tokens"}},
	"tokens revoke": {usage: []string{"tokens revoke NAME"},
		about:    "Delete a token: each node refuses it (401) once it has applied the revoke.",
		flags:    []string{},
		examples: []string{"tokens revoke ws-7"}},
	"version": {usage: []string{"version [-client]"},
		about:    "kvctl's version and the answering node's (version, commit, Go, state machine rules); -client: kvctl's only.",
		examples: []string{"version", "version -client -o json"}},
	"health": {usage: []string{"health [-ready]"},
		about:    "Exit 0 if the node serves (/healthz) or, with -ready, is a member that knows a leader and has caught up (/readyz); else exit 1 with the reason, 5 if it cannot be reached. For probes: give one -s address.",
		examples: []string{"-s 127.0.0.1:7001 health", "-s 127.0.0.1:7001 health -ready --timeout 2s"}},
	"completion": {usage: []string{"completion bash|zsh"},
		about: "Print a shell completion script: commands, subcommands, flags and tree names (asked of the node by \"kvctl __complete trees\").",
		examples: []string{"completion bash > /etc/bash_completion.d/kvctl", "completion zsh > \"${fpath[1]}/_kvctl\"",
			`source <(kvctl completion bash)`}},
}

// help runs "kvctl help [COMMAND [SUB]]".
func (c *cli) help(ctx context.Context, args []string) error {
	if len(args) == 0 || (len(args) == 1 && args[0] == "help") {
		_, err := io.WriteString(c.stdout, usageText)
		return err
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return unknownCommand(args[0])
	}
	c.cmd = args[0]
	// The command parses "-h" before it does anything, and reports its
	// flag set: fail prints the help.
	err := cmd(c, ctx, append(slices.Clone(args[1:]), "-h"))
	if err == nil {
		return fmt.Errorf("help %s: the command ran instead of printing its help", args[0])
	}
	return err
}

// printHelp prints the help of the command (or subcommand) whose -h ended
// it: usage, what it does, its flags, examples.
func (c *cli) printHelp() {
	key := c.cmd
	if c.helpFS != nil && c.helpFS.Name() != "kvctl" {
		key = c.helpFS.Name()
		if len(c.helpPos) > 0 {
			if _, ok := commandHelp[key+" "+c.helpPos[0]]; ok {
				key += " " + c.helpPos[0]
			}
		}
	}
	h, ok := commandHelp[key]
	if !ok {
		h, ok = commandHelp[c.cmd]
	}
	if !ok {
		fmt.Fprint(c.stdout, usageText)
		return
	}
	w := c.stdout
	fmt.Fprintln(w, "Usage:")
	for _, u := range h.usage {
		fmt.Fprintf(w, "  kvctl %s\n", u)
	}
	fmt.Fprintf(w, "\n%s\n", wrap(h.about, 76))
	if c.helpFS != nil {
		global := globalFlags()
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		n := 0
		c.helpFS.VisitAll(func(f *flag.Flag) {
			if global[f.Name] || (h.flags != nil && !slices.Contains(h.flags, f.Name)) {
				return
			}
			if n == 0 {
				fmt.Fprintln(tw, "\nFlags:")
			}
			n++
			arg, usage := flag.UnquoteUsage(f)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
				usage += fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(tw, "  --%s %s\t%s\n", f.Name, arg, usage)
		})
		tw.Flush()
	}
	if len(h.examples) > 0 {
		fmt.Fprintln(w, "\nExamples:")
		for _, e := range h.examples {
			fmt.Fprintf(w, "  kvctl %s\n", e)
		}
	}
	fmt.Fprintln(w, "\nGlobal flags (-s, -o, --timeout, -consistency, --idempotency-key, --cacert, --cert, --key): see \"kvctl help\".")
}

// globalFlags names the flags every command takes.
func globalFlags() map[string]bool {
	names := map[string]bool{}
	new(cli).flagSet("").VisitAll(func(f *flag.Flag) { names[f.Name] = true })
	return names
}

// wrap breaks s into lines of at most width runes, at spaces.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(s) {
		switch {
		case i == 0:
		case n+1+len(word) > width:
			b.WriteByte('\n')
			n = 0
		default:
			b.WriteByte(' ')
			n++
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}

// unknownCommand is the usage error of an unknown command, suggesting the
// closest command name when one is close.
func unknownCommand(name string) error {
	best, bestDist := "", 3 // suggest within an edit distance of 2
	for cand := range commands {
		d := editDistance(name, cand)
		if strings.HasPrefix(cand, name) && len(name) >= 2 {
			d = 1
		}
		if d < bestDist || (d == bestDist && cand < best) {
			best, bestDist = cand, d
		}
	}
	if d := editDistance(name, "help"); d < bestDist {
		best = "help"
	}
	if best != "" && len(name) > 1 {
		return usagef("", "unknown command %q; did you mean %q?", name, best)
	}
	return usagef("", "unknown command %q", name)
}

// editDistance is the Levenshtein distance of a and b (in bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
