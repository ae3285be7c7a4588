package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/shelfdb/shelf/api"
)

// watchWait is how long one event request waits for news (a variable for
// the tests).
var watchWait = 30 * time.Second

// watchRetry is the first and the longest pause between attempts to
// reach a node again while watching.
var watchRetry = struct{ first, max time.Duration }{100 * time.Millisecond, 2 * time.Second}

func (c *cli) watch(ctx context.Context, args []string) error {
	const line = "watch [TREE] [-from N|now]"
	fs := c.flagSet("watch")
	fromFlag := fs.String("from", "now", "start after this log index, or now")
	pos, err := c.parse(fs, line, args, 0, 1)
	if err != nil {
		return err
	}
	tree := ""
	if len(pos) == 1 {
		tree = pos[0]
	}
	from := api.EventsFromNow
	if *fromFlag != "now" {
		if from, err = strconv.ParseUint(*fromFlag, 10, 64); err != nil || from == api.EventsFromNow {
			return usagef(line, "watch: -from %q: want a log index or now", *fromFlag)
		}
	}
	names := &clientNames{c: c}
	enc := json.NewEncoder(c.stdout)
	var (
		last      uint64             // index up to which every event was printed (a page never splits an entry's events)
		lostSince time.Time          // when the nodes stopped answering; zero while one does
		wait      = watchRetry.first // before the next attempt
		node      = c.node()
	)
	for {
		// Each poll waits up to watchWait for news, plus --timeout for
		// the node to answer at all.
		pctx, cancel := c.bound(ctx, watchWait, "the next events from "+node)
		page, err := c.api().Events(pctx, from, 0, watchWait, tree)
		hung := pctx.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return nil // interrupted: the normal way to stop watching
		}
		if errors.Is(err, api.ErrCompacted) {
			return fmt.Errorf("watch: events after index %d are no longer kept by the cluster, so some would be missed; watch again with -from now: %w", from, err)
		}
		if err != nil {
			if !hung && !errors.Is(err, api.ErrUnreachable) && !errors.Is(err, api.ErrUnavailable) && !errors.Is(err, api.ErrNoLeader) {
				return err
			}
			c.demote(node) // a node that hung or failed is tried last next time
			if lostSince.IsZero() {
				lostSince = time.Now()
				fmt.Fprintf(c.stderr, "kvctl: watch: %v; trying the nodes again (%s)\n", err, resumeAt(from))
			} else if c.deadline.after > 0 && time.Since(lostSince) >= c.deadline.after {
				return fmt.Errorf("watch: no node answered for %s (--timeout): %w", c.deadline.after, err)
			}
			if !pause(ctx, wait) {
				return nil // interrupted
			}
			wait = min(2*wait, watchRetry.max)
			continue
		}
		lostSince, wait = time.Time{}, watchRetry.first
		if n := c.node(); n != node {
			fmt.Fprintf(c.stderr, "kvctl: watch: now watching %s (was %s), %s\n", n, node, resumeAt(from))
			node = n
		}
		for _, e := range page.Events {
			if e.Index <= last {
				continue // already printed (a node's answer may overlap)
			}
			// (Several events may share an index: a batch entry's, or
			// release and return. last moves after the page.)
			if c.output == "json" {
				if err := enc.Encode(e); err != nil {
					return err
				}
			} else if _, err := io.WriteString(c.stdout, c.eventLine(ctx, e, names)); err != nil {
				return err
			}
		}
		if n := len(page.Events); n > 0 {
			last = max(last, page.Events[n-1].Index)
		}
		if page.Next > from || from == api.EventsFromNow {
			from = page.Next
		}
	}
}

// resumeAt says where a watch goes on.
func resumeAt(from uint64) string {
	if from == api.EventsFromNow {
		return "starting from now"
	}
	return fmt.Sprintf("resuming after index %d", from)
}

// eventLine formats an event as one line: time, index, type, tree, key,
// acting client, and what else the event says.
func (c *cli) eventLine(ctx context.Context, e api.Event, names *clientNames) string {
	key := "-"
	if e.Key.ID != 0 && e.Type != api.EventRange {
		key = e.Key.String()
	}
	var extra []string
	switch e.Type {
	case api.EventRange:
		extra = append(extra, fmt.Sprintf("start=%d", e.Key.ID))
	case api.EventSchema:
		extra = append(extra, fmt.Sprintf("version=%d", e.Version))
	case api.EventStateChanged:
		extra = append(extra, fmt.Sprintf("state=%d", e.State))
	}
	if e.Type == api.EventClient {
		names.forget(e.Client) // registered or renamed: look the name up again
	}
	if e.Holder != "" && e.Holder != e.Client {
		extra = append(extra, "holder="+names.name(ctx, e.Holder))
	}
	if e.Forced {
		extra = append(extra, "forced")
	}
	if e.Expired {
		extra = append(extra, "expired")
	}
	if e.Reason != "" {
		extra = append(extra, "reason="+strconv.Quote(e.Reason))
	}
	s := fmt.Sprintf("%s  %d  %-13s  %s  %s  %s", e.Time.Format(time.RFC3339), e.Index, e.Type,
		dash(e.Tree), key, names.name(ctx, e.Client))
	if len(extra) > 0 {
		s += "  " + strings.Join(extra, " ")
	}
	return s + "\n"
}

// clientNames maps client ids to names for the watch output, asking the
// server again when an id is not known yet (once per id).
type clientNames struct {
	c     *cli
	names map[string]string
	asked map[string]bool
}

// name returns the client's name, or its id when the name is not known;
// "operator" for no client.
func (n *clientNames) name(ctx context.Context, id string) string {
	if id == "" {
		return "operator"
	}
	if _, ok := n.names[id]; !ok && !n.asked[id] {
		n.load(ctx)
		if n.asked == nil {
			n.asked = map[string]bool{}
		}
		n.asked[id] = true
	}
	if name := n.names[id]; name != "" {
		return name
	}
	return id
}

// forget makes the next name lookup of id ask the server.
func (n *clientNames) forget(id string) {
	delete(n.names, id)
	delete(n.asked, id)
}

// load fetches the registered clients; a failure leaves ids unnamed.
func (n *clientNames) load(ctx context.Context) {
	ctx, cancel := n.c.bound(ctx, 0, "the client names")
	defer cancel()
	cls, err := n.c.api().Clients(ctx)
	if err != nil {
		return
	}
	n.names = map[string]string{}
	for _, cl := range cls {
		n.names[cl.ID] = cl.Name
	}
}

func (c *cli) hash(ctx context.Context, args []string) error {
	if _, err := c.parse(c.flagSet("hash"), "hash", args, 0, 0); err != nil {
		return err
	}
	h, err := c.api().ContentHash(ctx)
	if err != nil {
		return err
	}
	return c.emit(h, func(w io.Writer) {
		row(w, "node", h.Node)
		row(w, "index", h.Index)
		row(w, "hash", h.Hash)
	})
}
