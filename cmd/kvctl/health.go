package main

import (
	"context"
	"fmt"
	"io"
)

// health asks one node whether it serves (GET /healthz) or, with -ready,
// whether it is ready (GET /readyz): exit 0 if so, 1 with the reason if
// not, 5 if it cannot be reached. Meant for probes, such as a container
// health check in an image without curl: give one -s address.
func (c *cli) health(ctx context.Context, args []string) error {
	const line = "health [-ready]"
	fs := c.flagSet("health")
	ready := fs.Bool("ready", false, "ask /readyz: a member that knows a leader and has caught up")
	if _, err := c.parse(fs, line, args, 0, 0); err != nil {
		return err
	}
	if !*ready {
		h, err := c.api().Health(ctx)
		if err != nil {
			return err
		}
		return c.emit(h, func(w io.Writer) { fmt.Fprintf(w, "%s: healthy\n", h.NodeID) })
	}
	rd, err := c.api().Ready(ctx)
	if err != nil {
		return err
	}
	if err := c.emit(rd, func(w io.Writer) {
		if rd.Ready {
			fmt.Fprintf(w, "%s: ready (leader %s, applied index %d, %d behind)\n", rd.NodeID, rd.Leader, rd.AppliedIndex, rd.Lag)
		}
	}); err != nil {
		return err
	}
	if !rd.Ready {
		return fmt.Errorf("node %s is not ready: %s", rd.NodeID, rd.Reason)
	}
	return nil
}
