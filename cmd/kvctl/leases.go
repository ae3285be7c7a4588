package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/shelfdb/shelf/api"
)

func (c *cli) leases(ctx context.Context, args []string) error {
	const line = "leases [TREE] | leases return TREE ID[/REV] (--client ID | --force [--reason R])"
	fs := c.flagSet("leases")
	client := fs.String("client", "", "return as this client (the holder)")
	force := fs.Bool("force", false, "force the return as operator, whoever holds the borrow")
	reason := fs.String("reason", "", "why the borrow was forced back (kept in the log)")
	pos, err := c.parse(fs, line, args, 0, 3)
	if err != nil {
		return err
	}
	if len(pos) > 0 && pos[0] == "return" {
		return c.returnLease(ctx, pos[1:], *client, *force, *reason)
	}
	switch {
	case len(pos) > 1:
		return usagef(line, "leases: unexpected arguments %q", pos[1:])
	case *client != "" || *force || *reason != "":
		return usagef(line, "leases: --client, --force and --reason go with leases return")
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
		row(w, "TREE", "KEY", "BORROWER", "SINCE", "EXPIRES")
		for _, b := range bs {
			expires := "never"
			if !b.Expires.IsZero() {
				expires = c.ago(b.Expires)
			}
			row(w, b.Tree, b.Key, who(b.Client, b.ClientName), c.ago(b.Since), expires)
		}
	})
}

func (c *cli) returnLease(ctx context.Context, pos []string, client string, force bool, reason string) error {
	const line = "leases return TREE ID[/REV] (--client ID | --force [--reason R])"
	switch {
	case len(pos) != 2:
		return usagef(line, "leases return: want TREE and ID[/REV]")
	case force == (client != ""):
		return usagef(line, "leases return: want either --client ID (the holder) or --force")
	case reason != "" && !force:
		return usagef(line, "leases return: --reason goes with --force")
	}
	tree := pos[0]
	key, err := parseKey(line, pos[1])
	if err != nil {
		return err
	}
	if key.Rev == 0 {
		r, err := c.api().Get(ctx, tree, key)
		if err != nil {
			return err
		}
		key = r.Key
	}
	var res api.WriteResult
	if force {
		res, err = c.api().ForceReturn(ctx, tree, key, reason)
	} else {
		res, err = c.api().Return(ctx, tree, key, client)
	}
	if err != nil {
		return err
	}
	return c.emit(res, func(w io.Writer) { fmt.Fprintf(w, "returned %s %s\n", tree, res.Key) })
}

func (c *cli) ranges(ctx context.Context, args []string) error {
	pos, err := c.parse(c.flagSet("ranges"), "ranges [CLIENT]", args, 0, 1)
	if err != nil {
		return err
	}
	client := ""
	if len(pos) == 1 {
		client = pos[0]
	}
	rs, err := c.api().Ranges(ctx, client)
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.emit(orEmpty(rs), nil)
	}
	// Names make the table readable; without them it still is.
	names := map[string]string{}
	if len(rs) > 0 {
		if cls, err := c.api().Clients(ctx); err == nil {
			for _, cl := range cls {
				names[cl.ID] = cl.Name
			}
		}
	}
	return c.emit(rs, func(w io.Writer) {
		row(w, "CLIENT", "START", "END", "SIZE", "USED", "NEXT", "GRANTED")
		for _, r := range rs {
			used := fmt.Sprint(r.Used)
			if r.Size() > 0 {
				used = fmt.Sprintf("%d (%d%%)", r.Used, r.Used*100/r.Size())
			}
			row(w, who(r.Client, names[r.Client]), r.Start, r.End, r.Size(), used, r.Next, c.ago(r.Granted))
		}
	})
}

func (c *cli) clients(ctx context.Context, args []string) error {
	if _, err := c.parse(c.flagSet("clients"), "clients", args, 0, 0); err != nil {
		return err
	}
	cls, err := c.api().Clients(ctx)
	if err != nil {
		return err
	}
	return c.emit(orEmpty(cls), func(w io.Writer) {
		row(w, "NAME", "ID", "REGISTERED", "LAST SEEN", "REPLICA INDEX")
		for _, cl := range cls {
			index := "-"
			if !cl.LastSeen.IsZero() {
				index = strconv.FormatUint(cl.ReplicaIndex, 10)
			}
			row(w, dash(cl.Name), cl.ID, c.ago(cl.Registered), c.ago(cl.LastSeen), index)
		}
	})
}
