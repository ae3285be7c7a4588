package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/raft"
)

// errLeaderChanged is the cause given to a forward's context when the
// leader it went to was replaced while it waited for the answer.
var errLeaderChanged = errors.New("the leader changed")

// watchLeader turns raft's leader observations into wakeups of n.leaders
// until the node shuts down.
func (n *Node) watchLeader() {
	defer n.wg.Done()
	obsCh := make(chan raft.Observation, 8)
	obs := raft.NewObserver(obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)
	for {
		select {
		case <-obsCh:
			n.leaders.Notify()
		case <-n.shutdownCh:
			return
		}
	}
}

// untilLeaderChanges returns ctx cancelled also when this node stops
// following addr, the leader a write was forwarded to (raft reports
// another leader, or none), and addr has not answered within
// HeartbeatTimeout after that: a write forwarded to a leader that froze
// or was cut off would otherwise wait for its whole timeout although a
// new leader is already taking writes. A deposed leader that is alive
// (a leadership transfer) answers within the grace, with the write's
// result or no_leader, which the caller can retry safely. stop releases
// it.
func (n *Node) untilLeaderChanges(ctx context.Context, addr string) (_ context.Context, stop func()) {
	changed := n.leaders.C()
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() { // ends with stop at the latest
		for {
			select {
			case <-changed:
			case <-done:
				return
			}
			changed = n.leaders.C()
			if cur, err := n.leaderHTTP(); err == nil && cur == addr {
				continue // a late report of the change to addr itself
			}
			grace := time.NewTimer(n.cfg.HeartbeatTimeout)
			select {
			case <-grace.C:
				cancel(errLeaderChanged)
			case <-done:
				grace.Stop()
			}
			return
		}
	}()
	return ctx, func() { close(done); cancel(nil) }
}
