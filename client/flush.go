package client

import (
	"context"
	"errors"
	"fmt"
)

// ErrConflicts is returned by Flush when some of the writes it waited for
// were rejected by the cluster: they are kept as Conflicts (see
// DB.Conflicts) for the app to retry or discard.
var ErrConflicts = errors.New("client: the cluster rejected outbox writes; they are kept as conflicts")

type noWaitKey struct{}

// NoWait returns a context under which Tree.Create, Update and Delete (and
// typed's, which pass their context on) return as soon as the write is
// durable in this client's local.db, without waiting for the cluster:
// the WriteResult has Pending set and the record's Key, and no Index. The
// outbox sends such writes in large batches, in order, in the
// background; reads of this client see them at once (Record.Pending), and
// events report them when the replica applies them (EventConfirmed with
// their outbox sequence number, and the record's change).
//
// What the cluster then rejects (a lost borrow, a released record)
// cannot be returned to the writer: it becomes a Conflict (DB.Conflicts,
// EventConflict). Flush waits until the writes made so far were applied
// or became conflicts.
//
// Use NoWait when the app writes much and must not wait for the network
// (ingest, offline-first apps), and call Flush where it needs to know its
// writes reached the cluster. Without NoWait a write online returns once
// the local replica applied it (read your own writes from the cluster's
// state, errors returned to the writer).
func NoWait(ctx context.Context) context.Context {
	return context.WithValue(ctx, noWaitKey{}, true)
}

func isNoWait(ctx context.Context) bool {
	v, _ := ctx.Value(noWaitKey{}).(bool)
	return v
}

// Flush waits until every write queued in the outbox before the call (by
// any goroutine of this DB, with or without NoWait, and left from an
// earlier run of the app) has left it: applied by the cluster and by the
// local replica (so reads and events show it), or rejected and kept as a
// Conflict. Writes queued after the call do not hold it up.
//
// It returns nil when every such write was applied; an error wrapping
// ErrConflicts when some became conflicts (all the others are applied);
// ctx's error, wrapped, when ctx ends first (the writes stay queued and are
// still sent); ErrClosed when the DB closes. Offline it waits for the
// cluster to come back, as long as ctx allows: bound it with a deadline.
func (db *DB) Flush(ctx context.Context) error {
	o := db.out
	o.mu.Lock()
	target := o.lastSeq
	low := target + 1 // the lowest entry at the call: conflicts from here on are this flush's
	if len(o.entries) > 0 {
		low = o.entries[0].Seq
	}
	o.mu.Unlock()
	for {
		o.mu.Lock()
		left := 0
		for _, e := range o.entries { // in sequence order
			if e.Seq > target {
				break
			}
			left++
		}
		progress := o.progress.C()
		o.mu.Unlock()
		if left == 0 {
			break
		}
		select {
		case <-progress:
		case <-ctx.Done():
			return fmt.Errorf("client: flush: %d writes not applied yet: %w", left, ctx.Err())
		case <-db.ctx.Done():
			return ErrClosed
		}
	}
	if low > target {
		return nil
	}
	cs, err := db.local.conflicts()
	if err != nil {
		return fmt.Errorf("client: flush: all writes settled, but the conflicts cannot be read: %w", err)
	}
	n := 0
	for _, c := range cs {
		if c.Seq >= low && c.Seq <= target {
			n++
		}
	}
	if n > 0 {
		return fmt.Errorf("%w: %d of the writes flushed (DB.Conflicts lists them)", ErrConflicts, n)
	}
	return nil
}
