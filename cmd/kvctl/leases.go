package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/shelfdb/shelf/api"
)

// The synopses of leases and its subcommands.
const (
	leasesListLine    = "leases [TREE]"
	leasesReturnLine  = "leases return TREE ID[/REV] (--client CLIENT | --force [--reason R])"
	leasesTakeLine    = "leases take TREE ID[/REV] --to CLIENT [--reason R] [--ttl D]"
	leasesHistoryLine = "leases history TREE ID[/REV]"
	leasesLine        = leasesListLine + " | " + leasesReturnLine + " | " + leasesTakeLine + " | " + leasesHistoryLine
)

// leasesFlags says which flags each leases subcommand takes ("": the list).
var leasesFlags = map[string][]string{
	"":        nil,
	"return":  {"client", "force", "reason"},
	"take":    {"to", "reason", "ttl"},
	"history": nil,
}

// leasesFlagHome names where a flag of leases belongs, for the error.
var leasesFlagHome = map[string]string{
	"client": "leases return", "force": "leases return", "reason": "leases return and leases take",
	"to": "leases take", "ttl": "leases take",
}

func (c *cli) leases(ctx context.Context, args []string) error {
	fs := c.flagSet("leases")
	client := fs.String("client", "", "return as this client (the holder; name or id)")
	force := fs.Bool("force", false, "force the return as operator, whoever holds the borrow")
	reason := fs.String("reason", "", "why the borrow was forced back or taken over (kept in its history)")
	to := fs.String("to", "", "take: the client (id or name) that gets the borrow")
	ttl := fs.Duration("ttl", 0, "take: the new borrow's expiry (Go duration; none if not given)")
	pos, err := c.parse(fs, leasesLine, args, 0, 3)
	if err != nil {
		return err
	}
	sub, line := "", leasesListLine
	if len(pos) > 0 {
		switch pos[0] {
		case "return":
			sub, line = pos[0], leasesReturnLine
		case "take":
			sub, line = pos[0], leasesTakeLine
		case "history":
			sub, line = pos[0], leasesHistoryLine
		}
	}
	name := "leases"
	if sub != "" {
		name += " " + sub
		pos = pos[1:]
	}
	var bad error
	fs.Visit(func(f *flag.Flag) {
		if bad == nil && f.Name != "s" && f.Name != "o" && !slices.Contains(leasesFlags[sub], f.Name) {
			bad = usagef(line, "%s: --%s goes with %s", name, f.Name, leasesFlagHome[f.Name])
		}
	})
	if bad != nil {
		return bad
	}
	switch sub {
	case "return":
		return c.returnLease(ctx, pos, *client, *force, *reason)
	case "take":
		return c.takeLease(ctx, pos, *to, *reason, *ttl)
	case "history":
		return c.leaseHistory(ctx, pos)
	}
	if len(pos) > 1 {
		return usagef(line, "leases: unexpected arguments %q", pos[1:])
	}
	tree := ""
	if len(pos) == 1 {
		tree = pos[0]
	}
	bs, err := c.api().Borrows(ctx, tree)
	if err != nil {
		return err
	}
	return c.emit(orEmpty(bs), func(w io.Writer) {
		row(w, "TREE", "RECORD", "HOLDER", "HOLDER ID", "SINCE", "EXPIRES")
		for _, b := range bs {
			expires := "never"
			switch {
			case b.Expires.IsZero():
			case b.Expires.After(c.now()):
				expires = c.ago(b.Expires)
			default:
				// Ran out; the leader ends it soon, or the next borrow does.
				expires = "expired " + c.ago(b.Expires)
			}
			row(w, b.Tree, b.Key, dash(b.ClientName), b.Client, c.ago(b.Since), expires)
		}
	})
}

// recordKey parses the TREE ID[/REV] of a leases subcommand; without a
// revision it looks up the latest.
func (c *cli) recordKey(ctx context.Context, line, name string, pos []string) (string, api.Key, error) {
	if len(pos) != 2 {
		return "", api.Key{}, usagef(line, "%s: want TREE and ID[/REV]", name)
	}
	tree := pos[0]
	key, err := parseKey(line, pos[1])
	if err != nil {
		return "", api.Key{}, err
	}
	if key.Rev == 0 {
		r, err := c.api().Get(ctx, tree, key)
		if err != nil {
			return "", api.Key{}, err
		}
		key = r.Key
	}
	return tree, key, nil
}

func (c *cli) returnLease(ctx context.Context, pos []string, client string, force bool, reason string) error {
	const line = leasesReturnLine
	switch {
	case len(pos) != 2:
		return usagef(line, "leases return: want TREE and ID[/REV]")
	case force == (client != ""):
		return usagef(line, "leases return: want either --client CLIENT (the holder, by name or id) or --force")
	case reason != "" && !force:
		return usagef(line, "leases return: --reason goes with --force")
	}
	if client != "" {
		var err error
		if client, _, err = c.resolveClient(ctx, line, "leases return: --client", client); err != nil {
			return err
		}
	}
	tree, key, err := c.recordKey(ctx, line, "leases return", pos)
	if err != nil {
		return err
	}
	var res api.WriteResult
	err = c.write(ctx, func(ctx context.Context) error {
		if force {
			res, err = c.api().ForceReturn(ctx, tree, key, reason)
		} else {
			res, err = c.api().Return(ctx, tree, key, client)
		}
		return err
	})
	if err != nil {
		return err
	}
	return c.emit(res, func(w io.Writer) { fmt.Fprintf(w, "returned %s %s\n", tree, res.Key) })
}

func (c *cli) takeLease(ctx context.Context, pos []string, to, reason string, ttl time.Duration) error {
	const line = leasesTakeLine
	switch {
	case len(pos) != 2:
		return usagef(line, "leases take: want TREE and ID[/REV]")
	case to == "":
		return usagef(line, "leases take: want --to CLIENT, the client that gets the borrow")
	case ttl < 0:
		return usagef(line, "leases take: --ttl %s: want a positive duration", ttl)
	}
	client, names, err := c.resolveClient(ctx, line, "leases take: --to", to)
	if err != nil {
		return err
	}
	tree, key, err := c.recordKey(ctx, line, "leases take", pos)
	if err != nil {
		return err
	}
	var res api.WriteResult
	err = c.write(ctx, func(ctx context.Context) error {
		res, err = c.api().TakeOver(ctx, tree, key, client, reason, ttl)
		return err
	})
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.emit(res, nil)
	}
	// The history entry of the take-over names the previous holder.
	var entry *api.AuditEntry
	if h, err := c.api().History(ctx, tree, res.Key); err == nil {
		for i := range h {
			if h[i].Index == res.Index && h[i].Action == api.AuditTaken {
				entry = &h[i]
			}
		}
	}
	return c.emit(res, func(w io.Writer) {
		msg := fmt.Sprintf("borrow of %s %s moved to %s", tree, res.Key, names.who(client))
		if entry != nil {
			if entry.Holder == "" {
				msg = fmt.Sprintf("borrow of %s %s given to %s (nobody held it)", tree, res.Key, names.who(client))
			} else {
				msg = fmt.Sprintf("borrow of %s %s moved from %s to %s", tree, res.Key, names.who(entry.Holder), names.who(client))
			}
			if !entry.Expires.IsZero() {
				msg += ", expires " + c.when(entry.Expires)
			}
		}
		fmt.Fprintln(w, msg)
	})
}

func (c *cli) leaseHistory(ctx context.Context, pos []string) error {
	tree, key, err := c.recordKey(ctx, leasesHistoryLine, "leases history", pos)
	if err != nil {
		return err
	}
	h, err := c.api().History(ctx, tree, key)
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.emit(orEmpty(h), nil)
	}
	if len(h) == 0 {
		fmt.Fprintf(c.stdout, "%s %s has no borrow history\n", tree, key)
		return nil
	}
	// Names for the table; a removed client shows as its id.
	names, _ := c.clientNames(ctx)
	return c.emit(h, func(w io.Writer) {
		row(w, "TIME", "ACTION", "HOLDER", "NEW HOLDER", "REASON", "EXPIRES")
		for _, a := range h {
			expires := "-"
			switch {
			case !a.Expires.IsZero():
				expires = a.Expires.Format(time.RFC3339)
			case a.Action == api.AuditBorrowed || a.Action == api.AuditRenewed || a.Action == api.AuditTaken:
				expires = "never"
			}
			row(w, a.Time.Format(time.RFC3339), a.Action, names.name(a.Holder), names.name(a.Client), dash(a.Reason), expires)
		}
	})
}

func (c *cli) ranges(ctx context.Context, args []string) error {
	const line = "ranges [CLIENT]"
	pos, err := c.parse(c.flagSet("ranges"), line, args, 0, 1)
	if err != nil {
		return err
	}
	client := ""
	var names clientIndex
	if len(pos) == 1 {
		if client, names, err = c.resolveClient(ctx, line, "ranges", pos[0]); err != nil {
			return err
		}
	}
	rs, err := c.api().Ranges(ctx, client)
	if err != nil {
		return err
	}
	if client != "" && len(rs) == 0 {
		if _, ok := names[client]; !ok {
			// Neither a registered client nor a removed one (whose
			// retired ranges are still listed).
			return notFoundClient(pos[0])
		}
	}
	if c.output == "json" {
		return c.emit(orEmpty(rs), nil)
	}
	// Names make the table readable; without them it still is.
	if names == nil && len(rs) > 0 {
		names, _ = c.clientNames(ctx)
	}
	return c.emit(rs, func(w io.Writer) {
		row(w, "CLIENT", "START", "END", "SIZE", "USED", "NEXT", "GRANTED", "RETIRED")
		for _, r := range rs {
			used := fmt.Sprint(r.Used)
			if r.Size() > 0 {
				used = fmt.Sprintf("%d (%d%%)", r.Used, r.Used*100/r.Size())
			}
			retired := "-"
			if r.Retired {
				retired = "yes"
			}
			row(w, names.who(r.Client), r.Start, r.End, r.Size(), used, r.Next, c.ago(r.Granted), retired)
		}
	})
}

// clientIndex holds the registered clients by id, for names in tables.
type clientIndex map[string]api.ClientInfo

// clientNames fetches the registered clients.
func (c *cli) clientNames(ctx context.Context) (clientIndex, error) {
	cls, err := c.api().Clients(ctx)
	if err != nil {
		return nil, err
	}
	idx := make(clientIndex, len(cls))
	for _, cl := range cls {
		idx[cl.ID] = cl
	}
	return idx, nil
}

// name is the client's name if it is registered and has one, else its id;
// "-" for none.
func (x clientIndex) name(id string) string {
	if cl, ok := x[id]; ok && cl.Name != "" {
		return cl.Name
	}
	return dash(id)
}

// who is "name (id)" for a registered client with a name, else the id.
func (x clientIndex) who(id string) string { return who(id, x[id].Name) }

// resolveClient turns s, a client's id or the name of exactly one
// registered client, into the id (an unknown s is returned as it is: the
// server says whether it is a client). It also returns the registered
// clients. An ambiguous name is a usage error naming the ids; what names
// the argument in errors ("ranges", "leases take: --to").
func (c *cli) resolveClient(ctx context.Context, line, what, s string) (string, clientIndex, error) {
	names, err := c.clientNames(ctx)
	if err != nil {
		return "", nil, err
	}
	id, err := names.resolve(s)
	if err != nil {
		return "", nil, usagef(line, "%s: %v", what, err)
	}
	return id, names, nil
}

// notFoundClient is the error of a client name or id that names no client.
func notFoundClient(s string) error {
	return api.Errorf(api.CodeUnknownClient, "client %s not found", s)
}

// resolve turns a client id, or the name of exactly one registered
// client, into its id. Anything else is returned as it is: the server
// says whether it is registered.
func (x clientIndex) resolve(s string) (string, error) {
	if _, ok := x[s]; ok {
		return s, nil
	}
	var ids []string
	for id, cl := range x {
		if cl.Name == s {
			ids = append(ids, id)
		}
	}
	switch len(ids) {
	case 0:
		return s, nil
	case 1:
		return ids[0], nil
	}
	slices.Sort(ids)
	return "", fmt.Errorf("%d clients are named %s (%s): give the id", len(ids), strconv.Quote(s), join(ids))
}
