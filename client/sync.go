package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
)

// syncLoop keeps the replica following the cluster: snapshot when the
// replica is new or the server no longer has the log it needs, then the
// stream of committed entries from the replica's applied index. On any
// failure, and when the server it follows has had no leader for
// Config.LeaderTimeout, it goes offline, moves to the next server and
// tries again after a backoff (reset whenever a server with a leader
// answers). Entries are applied in index order without gaps, so a
// reconnect or a failover never loses or repeats one.
func (db *DB) syncLoop() {
	defer db.wg.Done()
	b := newBackoff(100*time.Millisecond, 5*time.Second)
	for db.ctx.Err() == nil {
		err := db.follow(b)
		if db.ctx.Err() != nil {
			return
		}
		db.setOnline(false, err)
		if errors.Is(err, ErrWrongCluster) {
			db.log.Error("client: server refused: wrong cluster", "server", db.serverList()[0], "err", err)
		}
		if errors.Is(err, ErrNeedsUpgrade) {
			// Applying the log with older rules would compute another
			// state than the cluster's: stop following until upgraded.
			db.log.Error("client: the cluster runs newer rules than this client; upgrade the application", "err", err)
			return
		}
		db.rotate()
		if !db.sleep(b.next()) {
			return
		}
	}
}

// follow syncs from the current server until an error, or until the
// server has reported no leader for Config.LeaderTimeout (the error then
// wraps ErrNoLeader). While the server reports no leader the client is
// offline; whenever it reports one, online, and b is reset.
func (db *DB) follow(b *backoff) error {
	c := db.current()
	ctx, cancel := context.WithTimeout(db.ctx, 10*time.Second)
	st, err := c.Status(ctx)
	cancel()
	if err != nil {
		return err
	}
	if err := db.pin(st.ClusterID); err != nil {
		return err
	}
	db.learn(st.Members)
	var leaderless time.Time // since when c reports no leader; zero while it has one
	leader := func(noLeader bool, contactMS int64) error {
		if !noLeader {
			leaderless = time.Time{}
			db.setOnline(true, nil)
			b.reset()
			return nil
		}
		if leaderless.IsZero() {
			leaderless = time.Now()
		}
		err := fmt.Errorf("client: server %s has no leader (last contact %dms ago) for %v: %w",
			c.BaseURL(), contactMS, time.Since(leaderless).Round(time.Millisecond), ErrNoLeader)
		db.setOnline(false, err)
		if time.Since(leaderless) >= db.cfg.LeaderTimeout {
			return err
		}
		return nil
	}
	if db.replicaBroken.Load() {
		// The replica failed to apply (disk full, I/O error): rebuild it
		// from a snapshot before anything else (the outbox is in the
		// other file and waits).
		if err := db.resync(c); err != nil {
			return fmt.Errorf("client: rebuilding the replica: %w", err)
		}
		db.replicaBroken.Store(false)
		db.log.Info("client: replica rebuilt from a snapshot after a storage failure", "applied", db.replica.AppliedIndex())
	}
	if db.replica.AppliedIndex() == 0 {
		// Before the client says it is online: WaitSynced returns once it
		// is, and the EventResynced of this load must come before that.
		if err := db.resync(c); err != nil {
			return err
		}
	}
	if err := leader(st.NoLeader, st.LeaderContactMS); err != nil {
		return err
	}
	for {
		// A server without a leader answers within a second (see api.LogPage).
		ctx, cancel := context.WithTimeout(db.ctx, db.cfg.PollWait+10*time.Second)
		page, err := c.LogAs(ctx, db.clientID, db.replica.AppliedIndex(), 1000, db.cfg.PollWait)
		cancel()
		if errors.Is(err, api.ErrCompacted) {
			if err := db.resync(c); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if err := db.pin(page.ClusterID); err != nil {
			return err
		}
		if err := db.apply(page); err != nil {
			return err
		}
		if err := leader(page.NoLeader, page.LeaderContactMS); err != nil {
			return err
		}
	}
}

// apply applies one log page to the replica and publishes its events. A
// failure leaves the replica as it was: ErrNeedsUpgrade when the cluster
// runs newer rules than this code, else a storage failure, after which
// the replica is rebuilt from a snapshot (replicaBroken). Either is
// published as an EventReplicaFailed.
func (db *DB) apply(page api.LogPage) error {
	entries := make([]fsm.Entry, 0, len(page.Entries)+1)
	last := db.replica.AppliedIndex()
	for _, e := range page.Entries {
		entries = append(entries, fsm.Entry{Index: e.Index, Data: e.Data})
		last = max(last, e.Index)
	}
	if page.Next > last {
		entries = append(entries, fsm.Entry{Index: page.Next}) // committed non-command entries
	}
	if len(entries) == 0 {
		return nil
	}
	results, err := db.replica.TryApplyBatch(entries)
	if err != nil {
		db.cache.abort() // nothing of the batch was applied
		var ae *api.Error
		if errors.Is(err, fsm.ErrNeedsUpgrade) {
			err = fmt.Errorf("%w: %w", ErrNeedsUpgrade, err)
			ae = api.Errorf(api.CodeUnavailable, "%v", err)
		} else {
			db.replicaBroken.Store(true)
			err = fmt.Errorf("client: the replica failed to apply entries %d..%d (it will be rebuilt from a snapshot; the outbox is kept): %w", entries[0].Index, last, err)
			ae = api.Errorf(api.CodeInternal, "%v", err)
		}
		db.log.Error("client: replica failed", "err", err)
		db.events.publish(Event{Event: api.Event{Index: db.replica.AppliedIndex(), Type: EventReplicaFailed, Time: time.Now().UTC()}, Err: ae})
		return err
	}
	var evs []Event
	for _, r := range results {
		for _, e := range r.Events {
			evs = append(evs, Event{Event: e})
		}
	}
	db.events.publish(evs...)
	return nil
}

// resync replaces the replica with a snapshot from c.
func (db *DB) resync(c *api.Client) error {
	before := db.replica.AppliedIndex()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(db.ctx, 30*time.Minute)
	defer cancel()
	go func() {
		_, err := c.Snapshot(ctx, pw)
		pw.CloseWithError(err)
	}()
	err := db.replica.Restore(pr)
	pr.CloseWithError(err) // unblock the download if Restore stopped early
	if err != nil {
		db.cache.reset() // the state may have been replaced without the hook
		return fmt.Errorf("client: snapshot from %s: %w", c.BaseURL(), err)
	}
	if got := db.replica.ClusterID(); got != db.ClusterID() {
		return api.Errorf(api.CodeWrongCluster, "snapshot from %s holds cluster %s, this client is pinned to %s; %s", c.BaseURL(), got, db.ClusterID(), wrongClusterAdvice(db.cfg.Dir))
	}
	db.log.Info("client: replica loaded from snapshot", "server", c.BaseURL(), "from", before, "to", db.replica.AppliedIndex())
	db.events.publish(Event{Event: api.Event{Index: db.replica.AppliedIndex(), Type: EventResynced, Time: time.Now().UTC()}})
	return nil
}
