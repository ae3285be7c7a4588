package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
)

// syncLoop keeps the replica following the cluster: snapshot when the
// replica is new or the server no longer has the log it needs, then the
// stream of committed entries from the replica's applied index. On any
// failure it goes offline, backs off and tries the next server. Entries are
// applied in index order without gaps, so a reconnect or a failover never
// loses or repeats one.
func (db *DB) syncLoop() {
	defer db.wg.Done()
	backoff := 100 * time.Millisecond
	for db.ctx.Err() == nil {
		err := db.follow()
		if db.ctx.Err() != nil {
			return
		}
		db.setOnline(false, err)
		if errors.Is(err, ErrWrongCluster) {
			db.log.Error("client: server refused: wrong cluster", "server", db.serverList()[0], "err", err)
		}
		db.rotate()
		if !db.sleep(backoff + rand.N(backoff)) {
			return
		}
		backoff = min(2*backoff, 5*time.Second)
		if db.Online() {
			backoff = 100 * time.Millisecond
		}
	}
}

// follow syncs from the current server until an error.
func (db *DB) follow() error {
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
	db.setOnline(true, nil)
	if db.replica.AppliedIndex() == 0 {
		if err := db.resync(c); err != nil {
			return err
		}
	}
	for {
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
		db.setOnline(true, nil)
		db.apply(page)
	}
}

// apply applies one log page to the replica and publishes its events.
func (db *DB) apply(page api.LogPage) {
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
		return
	}
	results := db.replica.ApplyBatch(entries)
	var evs []Event
	for _, r := range results {
		for _, e := range r.Events {
			evs = append(evs, Event{Event: e})
		}
	}
	db.events.publish(evs...)
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
		return fmt.Errorf("client: snapshot from %s: %w", c.BaseURL(), err)
	}
	if got := db.replica.ClusterID(); got != db.ClusterID() {
		return api.Errorf(api.CodeWrongCluster, "snapshot from %s holds cluster %s, this client is pinned to %s", c.BaseURL(), got, db.ClusterID())
	}
	db.log.Info("client: replica loaded from snapshot", "server", c.BaseURL(), "from", before, "to", db.replica.AppliedIndex())
	db.events.publish(Event{Event: api.Event{Index: db.replica.AppliedIndex(), Type: EventResynced, Time: time.Now().UTC()}})
	return nil
}
