package main

import (
	"context"
	"fmt"
	"io"

	"github.com/shelfdb/shelf/api"
)

func (c *cli) status(ctx context.Context, args []string) error {
	if _, err := c.parse(c.flagSet("status"), "status", args, 0, 0); err != nil {
		return err
	}
	st, err := c.api().Status(ctx)
	if err != nil {
		return err
	}
	st.Members = orEmpty(st.Members)
	return c.emit(st, func(w io.Writer) {
		leader := dash(st.Leader)
		if st.LeaderHTTP != "" {
			leader += " (" + st.LeaderHTTP + ")"
		}
		row(w, "cluster", dash(st.ClusterID))
		row(w, "node", fmt.Sprintf("%s (%s)", st.NodeID, st.State))
		row(w, "leader", leader)
		row(w, "term", st.Term)
		row(w, "commit index", st.CommitIndex)
		row(w, "applied index", st.AppliedIndex)
		row(w, "last log index", st.LastLogIndex)
		row(w)
		memberTable(w, st.Members)
	})
}

func (c *cli) members(ctx context.Context, args []string) error {
	const line = "members | members remove ID"
	pos, err := c.parse(c.flagSet("members"), line, args, 0, 2)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		if pos[0] != "remove" || len(pos) != 2 {
			return usagef(line, "members: unexpected arguments %q", pos)
		}
		if err := c.api().RemoveMember(ctx, pos[1]); err != nil {
			return err
		}
		return c.emit(map[string]string{"removed": pos[1]}, func(w io.Writer) {
			fmt.Fprintf(w, "removed member %s\n", pos[1])
		})
	}
	ms, err := c.api().Members(ctx)
	if err != nil {
		return err
	}
	return c.emit(orEmpty(ms), func(w io.Writer) { memberTable(w, ms) })
}

func memberTable(w io.Writer, ms []api.Member) {
	row(w, "ID", "SUFFRAGE", "HEALTH", "LEADER", "RAFT", "HTTP", "GOSSIP")
	for _, m := range ms {
		leader := ""
		if m.Leader {
			leader = "*"
		}
		row(w, m.ID, dash(m.Suffrage), dash(m.Health), leader, dash(m.RaftAddr), dash(m.HTTPAddr), dash(m.GossipAddr))
	}
}

func (c *cli) leader(ctx context.Context, args []string) error {
	const line = "leader transfer [ID]"
	pos, err := c.parse(c.flagSet("leader"), line, args, 1, 2)
	if err != nil {
		return err
	}
	if pos[0] != "transfer" {
		return usagef(line, "leader: unknown subcommand %q", pos[0])
	}
	pos = pos[1:]
	to := ""
	if len(pos) == 1 {
		to = pos[0]
	}
	if err := c.api().TransferLeadership(ctx, to); err != nil {
		return err
	}
	return c.emit(map[string]string{"transferred_to": to}, func(w io.Writer) {
		if to == "" {
			fmt.Fprintln(w, "leadership transferred")
		} else {
			fmt.Fprintf(w, "leadership transferred to %s\n", to)
		}
	})
}
