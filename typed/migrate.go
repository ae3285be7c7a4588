package typed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
)

// MigrateOptions configures Migrate.
type MigrateOptions struct {
	// Steps holds the step from each schema version N to N+1. A step gets
	// the record's fields as plain values (see api.DecodeGeneric: maps as
	// map[string]any, or map[any]any when a key is not a string, []any,
	// string, int64 or uint64, float64, bool, []byte, time.Time) and changes them
	// in place: rename a field, compute a new one, convert units. It needs
	// no Go type of the old versions. A version without a step needs no
	// change (fields were only added or dropped). Steps[0] migrates records
	// written without a schema (by kvctl put).
	Steps map[uint32]func(fields map[string]any) error
	// Progress, if set, is called after each record with the number of
	// records handled so far and the number to handle.
	Progress func(done, total int)
}

// MigrateReport tells what Migrate did.
type MigrateReport struct {
	Total    int           // records below the tree's version when Migrate started
	Migrated int           // records rewritten at the tree's version
	Borrowed []api.Borrow  // skipped: borrowed by another client (run again once returned)
	Released []api.Key     // skipped: released records never change
	Failed   []MigrateFail // skipped: a step failed or the record does not decode
	Returned []api.Key     // borrows an earlier, interrupted run left on migrated records, returned now
}

// migrateBorrow is how long Migrate borrows a record for: a borrow that an
// interrupted run leaves behind (a crash, a lost answer) ends by itself.
// Its odd length also marks the borrow as Migrate's own, so a later run
// can tell it from a borrow the application holds and return it.
const migrateBorrow = 10*time.Minute + 317*time.Millisecond

// returnTimeout bounds giving a borrow back once the caller's context has
// ended.
const returnTimeout = 30 * time.Second

// migrateBorrowed reports whether b is a borrow Migrate took for this
// client (see migrateBorrow).
func (t *Tree[T]) migrateBorrowed(b *api.Borrow) bool {
	return b != nil && b.Client == t.db.ClientID() && !b.Expires.IsZero() && b.Expires.Sub(b.Since) == migrateBorrow
}

// giveBack returns the record's borrow, with a context of its own: also
// when ctx has ended, for at most returnTimeout.
func (t *Tree[T]) giveBack(ctx context.Context, key api.Key) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), returnTimeout)
	defer cancel()
	return t.t.Return(ctx, key)
}

// MigrateFail is a record Migrate could not rewrite.
type MigrateFail struct {
	Key api.Key
	Err error
}

// Migrate rewrites every record written with an older schema version
// through the cluster at this tree's version (Version), running the steps
// from the record's version up. Each record is borrowed for the rewrite
// (unless this client holds it already: that borrow is kept) and returned,
// also when ctx ends or a step fails (the return then has a context of its
// own, bounded). Records others hold borrowed and released records are
// skipped and reported. Migrate is resumable: run it again after an
// interruption or once skipped records are returned, and it handles only
// what is still old; it also returns the borrows an earlier run left (a
// crash between a record's write and its return: Migrate's borrows expire
// after ten minutes anyway). It needs the cluster.
func (t *Tree[T]) Migrate(ctx context.Context, opts MigrateOptions) (MigrateReport, error) {
	var rep MigrateReport
	var todo []client.Record
	var after api.Key
	for {
		page, err := t.t.List(after, 1000)
		if err != nil {
			if errors.Is(err, api.ErrTreeNotFound) {
				break
			}
			return rep, err
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			switch {
			case r.Schema < t.version:
				todo = append(todo, r)
			case t.migrateBorrowed(r.Borrow):
				if err := t.giveBack(ctx, r.Key); err != nil {
					return rep, fmt.Errorf("typed: migrate %s: return %s, left borrowed by an earlier run: %w", t.Name(), r.Key, err)
				}
				rep.Returned = append(rep.Returned, r.Key)
			}
		}
		after = page[len(page)-1].Key
	}
	rep.Total = len(todo)
	for i, r := range todo {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("typed: migrate %s: %w", t.Name(), err)
		}
		err := t.migrateOne(ctx, r.Key, opts.Steps, &rep)
		if err != nil {
			if errors.Is(err, client.ErrOffline) || ctx.Err() != nil {
				return rep, fmt.Errorf("typed: migrate %s: record %s: %w", t.Name(), r.Key, err)
			}
			rep.Failed = append(rep.Failed, MigrateFail{Key: r.Key, Err: err})
		}
		if opts.Progress != nil {
			opts.Progress(i+1, len(todo))
		}
	}
	return rep, nil
}

// migrateOne rewrites one record; a skip goes into rep, a failure is
// returned.
func (t *Tree[T]) migrateOne(ctx context.Context, key api.Key, steps map[uint32]func(map[string]any) error, rep *MigrateReport) (err error) {
	rec, err := t.t.Get(key)
	if err != nil {
		if errors.Is(err, api.ErrNotFound) {
			return nil // deleted meanwhile
		}
		return err
	}
	switch {
	case rec.Schema >= t.version:
		return nil // migrated meanwhile
	case rec.Released:
		rep.Released = append(rep.Released, key)
		return nil
	case rec.Borrow != nil && rec.Borrow.Client != t.db.ClientID():
		rep.Borrowed = append(rep.Borrowed, *rec.Borrow)
		return nil
	}
	// The caller's own borrow is kept; Migrate's (this run's, or one an
	// earlier run left) is returned, whatever happens.
	held := rec.Borrow != nil && !t.migrateBorrowed(rec.Borrow)
	leftover := rec.Borrow != nil && !held
	giveBack := func() {
		if rerr := t.giveBack(ctx, key); rerr != nil && err == nil {
			err = rerr
		}
	}
	if leftover {
		defer giveBack()
	}
	// A record the steps cannot migrate is reported before it is borrowed.
	data, err := t.migrated(&rec, steps)
	if err != nil {
		return err
	}
	if rec.Borrow == nil {
		if err := t.t.Checkout(ctx, key, migrateBorrow); err != nil {
			if !errors.Is(err, api.ErrBorrowed) {
				if ctx.Err() != nil {
					// The borrow may have been taken though its answer
					// was lost; returning a record this client does not
					// hold is refused, harmlessly.
					_ = t.giveBack(ctx, key)
				}
				return err
			}
			// Someone borrowed it since the replica last heard: catch up
			// to report who.
			if werr := t.db.WaitSynced(ctx); werr != nil {
				return werr
			}
			if again, gerr := t.t.Get(key); gerr == nil && again.Borrow != nil {
				rep.Borrowed = append(rep.Borrowed, *again.Borrow)
				return nil
			}
			return err
		}
		defer giveBack()
		// Read it again under the borrow: it may have changed meanwhile.
		if rec, err = t.t.Get(key); err != nil {
			return err
		}
		if data, err = t.migrated(&rec, steps); err != nil {
			return err
		}
	}
	if _, err := t.t.Update(ctx, key, t.version, data); err != nil {
		return err
	}
	rep.Migrated++
	return nil
}

// migrated runs the steps from the record's version up and returns the
// new value, which must decode into T.
func (t *Tree[T]) migrated(rec *client.Record, steps map[uint32]func(map[string]any) error) ([]byte, error) {
	v, err := api.DecodeGeneric(rec.Data)
	fields, ok := v.(map[string]any)
	if err != nil || !ok {
		return nil, fmt.Errorf("%w: %s/%s is not a map of fields (a %T; %v)", ErrDecode, t.Name(), rec.Key, v, err)
	}
	for ver := rec.Schema; ver < t.version; ver++ {
		if step := steps[ver]; step != nil {
			if err := step(fields); err != nil {
				return nil, fmt.Errorf("typed: migrate %s/%s from version %d: %w", t.Name(), rec.Key, ver, err)
			}
		}
	}
	data, err := api.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("typed: migrate %s/%s: %w", t.Name(), rec.Key, err)
	}
	var check T
	if err := t.decode(&client.Record{Record: api.Record{Tree: t.Name(), Key: rec.Key, Schema: t.version, Data: data}}, &check); err != nil {
		return nil, fmt.Errorf("typed: migrate %s/%s: the migrated value does not fit %s: %w", t.Name(), rec.Key, t.typ, err)
	}
	return data, nil
}
