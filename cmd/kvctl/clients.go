package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/shelfdb/shelf/api"
)

const clientsLine = "clients | clients remove NAME|ID [--reason R]"

func (c *cli) clients(ctx context.Context, args []string) error {
	fs := c.flagSet("clients")
	reason := fs.String("reason", "", "remove: why the client is removed (kept in the history of its borrows)")
	pos, err := c.parse(fs, clientsLine, args, 0, 2)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		if pos[0] != "remove" {
			return usagef(clientsLine, "clients: unknown subcommand %q", pos[0])
		}
		if len(pos) != 2 {
			return usagef(clientsLine, "clients remove: want the client's name or ID")
		}
		return c.removeClient(ctx, pos[1], *reason)
	}
	if *reason != "" {
		return usagef(clientsLine, "clients: --reason goes with clients remove")
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

// removal is what clients remove did, as -o json prints it. Returned and
// Retired are the client's borrows and live ranges as listed just before
// the removal.
type removal struct {
	Client   string       `json:"client"`
	Name     string       `json:"name,omitempty"`
	Reason   string       `json:"reason,omitempty"`
	Index    uint64       `json:"index"` // log index of the removal
	Returned []api.Borrow `json:"returned"`
	Retired  []api.Range  `json:"retired"`
}

func (c *cli) removeClient(ctx context.Context, client, reason string) error {
	// What the removal ends, listed before it happens: afterwards the
	// borrows are gone and the client's name with it.
	id, names, err := c.resolveClient(ctx, clientsLine, "clients remove", client)
	if err != nil {
		return err
	}
	bs, err := c.api().Borrows(ctx, "")
	if err != nil {
		return err
	}
	rs, err := c.api().Ranges(ctx, id)
	if err != nil {
		return err
	}
	rm := removal{Client: id, Name: names[id].Name, Reason: reason, Returned: []api.Borrow{}, Retired: []api.Range{}}
	for _, b := range bs {
		if b.Client == id {
			rm.Returned = append(rm.Returned, b)
		}
	}
	for _, r := range rs {
		if r.Client == id && !r.Retired {
			rm.Retired = append(rm.Retired, r)
		}
	}
	var res api.WriteResult
	err = c.write(ctx, func(ctx context.Context) error {
		res, err = c.api().RemoveClient(ctx, id, reason)
		return err
	})
	if err != nil {
		return err
	}
	rm.Index = res.Index
	return c.emit(rm, func(w io.Writer) {
		fmt.Fprintf(w, "removed client %s\n", who(id, rm.Name))
		if len(rm.Returned) == 0 {
			fmt.Fprintln(w, "returned no borrows")
		} else {
			fmt.Fprintf(w, "returned %d %s:\n", len(rm.Returned), plural(len(rm.Returned), "borrow", "borrows"))
			row(w, "  TREE", "RECORD", "SINCE", "EXPIRES")
			for _, b := range rm.Returned {
				expires := "never"
				if !b.Expires.IsZero() {
					expires = c.ago(b.Expires)
				}
				row(w, "  "+b.Tree, b.Key, c.ago(b.Since), expires)
			}
		}
		if len(rm.Retired) == 0 {
			fmt.Fprintln(w, "retired no ranges")
		} else {
			fmt.Fprintf(w, "retired %d %s (their unused ids are never used):\n", len(rm.Retired), plural(len(rm.Retired), "range", "ranges"))
			row(w, "  START", "END", "SIZE", "USED", "NEXT")
			for _, r := range rm.Retired {
				row(w, "  "+strconv.FormatUint(r.Start, 10), r.End, r.Size(), r.Used, r.Next)
			}
		}
	})
}

// plural picks the word for n things.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
