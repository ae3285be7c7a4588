package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
	"github.com/shelfdb/shelf/fsm"
)

// expiryLoop ends borrows whose time ran out, as replicated commands, so
// that every replica records the expiry at the same point of the log.
//
// The rule: a borrow with a ttl expires at the moment the leader that
// accepted it read on its clock, plus the ttl (Expires, in the replicated
// state). From then on it no longer counts as held for any command, since
// commands carry their leader's time. The leader applies an expire
// command once its own clock has passed Expires; the command is checked
// when applied, so a borrow renewed or returned meanwhile stays as it is,
// and a borrow ends exactly once (by this command, or by the next borrow
// of the record if that comes first). A leader change loses no borrow
// (borrows are replicated) and extends none by more than the new leader's
// clock lags the old one's: expiry times are absolute. A new leader waits
// ExpiryGrace after it took over before expiring anything, so that a
// leader elected amid trouble does not expire a batch of borrows in its
// first moments (a holder that just lost its connection gets a moment to
// renew).
// maxExpiresPerRound bounds the expire commands of one expiry round.
const maxExpiresPerRound = 1000

func (n *Node) expiryLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.ExpiryInterval)
	defer t.Stop()
	var since time.Time // when this node was first seen leading, zero when not
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-t.C:
		}
		if n.raft.State() != raft.Leader {
			since = time.Time{}
			continue
		}
		now := time.Now()
		if since.IsZero() {
			since = now
		}
		if now.Sub(since) < n.cfg.ExpiryGrace {
			continue
		}
		n.expireDue(now)
	}
}

// expireDue applies an expire command for every borrow due at now.
func (n *Node) expireDue(now time.Time) {
	due, err := n.fsm.DueBorrows(now.UnixNano(), maxExpiresPerRound)
	if err != nil {
		n.log.Warn("cluster: reading borrows for expiry", "err", err)
		return
	}
	cmds := make([]*fsm.Command, 0, len(due))
	for _, b := range due {
		cmds = append(cmds, &fsm.Command{Op: fsm.OpExpire, Tree: b.Tree, Key: b.Key})
	}
	if len(cmds) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
	defer cancel()
	res, err := n.applyLocalMany(ctx, cmds, false)
	if err != nil {
		n.log.Warn("cluster: expiring borrows", "due", len(cmds), "err", err)
		return
	}
	expired := 0
	for _, r := range res {
		if r != nil && len(r.Events) > 0 {
			expired++
		}
	}
	n.log.Info("cluster: borrows expired", "expired", expired, "due", len(cmds))
}

// DefaultBorrowTTL returns the expiry given to borrows that ask for none.
func (n *Node) DefaultBorrowTTL() time.Duration { return n.cfg.DefaultBorrowTTL }
