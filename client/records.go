package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
)

// Record is a record as this client sees it: the replica's record, or a
// write of this client that the cluster has not applied yet (Pending).
type Record struct {
	api.Record
	// Pending is set when the value comes from this client's outbox.
	Pending bool `json:"pending,omitempty"`
}

// Tree is the untyped access to one tree: values are CBOR bytes. Package
// typed wraps it with Go types. A Tree is cheap; get one per use.
type Tree struct {
	db   *DB
	name string
}

// Tree returns the tree called name (which need not exist yet).
func (db *DB) Tree(name string) *Tree { return &Tree{db: db, name: name} }

// Trees lists the trees of the replica.
func (db *DB) Trees() ([]api.Tree, error) { return db.replica.Trees() }

// Borrowed lists the records this client holds borrowed, in any tree.
func (db *DB) Borrowed() ([]api.Borrow, error) {
	all, err := db.replica.Borrows("")
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(b api.Borrow) bool { return b.Client != db.clientID }), nil
}

// Name returns the tree's name.
func (t *Tree) Name() string { return t.name }

// Schemas returns the tree's registered schema versions.
func (t *Tree) Schemas() ([]api.Schema, error) { return t.db.replica.Schemas(t.name) }

// Get returns a record from the local replica (no network), with this
// client's pending writes applied. key.Rev 0 means the latest revision.
func (t *Tree) Get(key api.Key) (Record, error) {
	var out Record
	err := t.View(key, func(r *Record) error {
		out = *r
		out.Data = bytes.Clone(r.Data)
		return nil
	})
	return out, err
}

// View calls fn with a record valid only during the call: the *Record is
// reused after fn returns, and its Data may point into the database map
// (do not keep or modify either; copy what you need, as Get does).
func (t *Tree) View(key api.Key, fn func(*Record) error) error { return t.view(key, true, fn) }

// ViewValue is View for a reader of the value alone: only the record's
// Tree, Key, Schema, Data and Pending are sure to be set, the rest may be
// zero (the stored metadata is not decoded, the borrow not looked up,
// which saves a third of a read). Everything else is as View's.
func (t *Tree) ViewValue(key api.Key, fn func(*Record) error) error { return t.view(key, false, fn) }

// records reuses the Record a replica read fills: a read allocates none of
// its own (fn gets the pointer only for the call, as View says).
var records = sync.Pool{New: func() any { return new(Record) }}

// view reads the record for View (all: every field) and ViewValue.
func (t *Tree) view(key api.Key, all bool, fn func(*Record) error) error {
	if key.Rev != 0 {
		if e := t.db.out.pending(t.name, key); e != nil {
			rec, err := t.overlay(e)
			if err != nil {
				return err
			}
			return fn(rec)
		}
	}
	rec := records.Get().(*Record)
	defer func() {
		*rec = Record{} // nothing of this read stays reachable from the pool
		records.Put(rec)
	}()
	cache := t.db.cache
	if e := cache.get(t.name, key, all); e != nil {
		// A hit: the cache's copy of the stored record, no transaction.
		e.fill(t.name, &rec.Record, all)
		return t.viewed(key, rec, fn)
	}
	gen := cache.begin()
	err := t.db.replica.ViewRecord(t.name, key, &rec.Record, all, func() error {
		cache.put(t.name, key, &rec.Record, all, gen)
		return t.viewed(key, rec, fn)
	})
	if key.Rev == 0 && (errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrTreeNotFound)) {
		// Only pending revisions of this id exist (an offline create).
		var latest *outboxEntry
		for k, e := range t.db.out.pendingKeys(t.name) {
			if k.ID == key.ID && e.Op != fsm.OpDelete && (latest == nil || k.Rev > latest.Key.Rev) {
				latest = e
			}
		}
		if latest != nil {
			rec, oerr := t.overlay(latest)
			if oerr != nil {
				return oerr
			}
			return fn(rec)
		}
	}
	return err
}

// viewed calls fn with rec, the replica's record of key, or with this
// client's pending write of it over rec for a read of the latest revision
// (a read of a given revision checked the outbox before).
func (t *Tree) viewed(key api.Key, rec *Record, fn func(*Record) error) error {
	if key.Rev == 0 {
		if e := t.db.out.pending(t.name, rec.Key); e != nil {
			// rec is the base: no second read of the replica while this
			// one holds it (a restore waiting in between would block both).
			over, err := t.overlayOn(e, &rec.Record)
			if err != nil {
				return err
			}
			return fn(over)
		}
	}
	return fn(rec)
}

// overlay builds the record a pending outbox entry stands for, on the
// replica's record of the same key if there is one. It reads the replica:
// never call it while a replica read is open (use overlayOn).
func (t *Tree) overlay(e *outboxEntry) (*Record, error) {
	if e.Op == fsm.OpDelete {
		return nil, api.Errorf(api.CodeNotFound, "record %s/%s is deleted (pending)", t.name, e.Key)
	}
	if base, err := t.db.replica.Get(t.name, e.Key); err == nil {
		return t.overlayOn(e, &base)
	}
	return t.overlayOn(e, nil)
}

// overlayOn builds the record a pending outbox entry stands for on base,
// the replica's record of e.Key (nil: none).
func (t *Tree) overlayOn(e *outboxEntry, base *api.Record) (*Record, error) {
	if e.Op == fsm.OpDelete {
		return nil, api.Errorf(api.CodeNotFound, "record %s/%s is deleted (pending)", t.name, e.Key)
	}
	rec := Record{Pending: true}
	if base != nil {
		rec.Record = *base
	} else {
		rec.Record = api.Record{Tree: t.name, Key: e.Key, CreatedBy: t.db.clientID, Created: time.Unix(0, e.Queued).UTC()}
	}
	rec.Data, rec.Schema, rec.UpdatedBy, rec.Updated = e.Data, e.Schema, t.db.clientID, time.Unix(0, e.Queued).UTC()
	return &rec, nil
}

// List returns up to limit records with key > after, in key order, pending
// writes included.
func (t *Tree) List(after api.Key, limit int) ([]Record, error) {
	if limit <= 0 {
		limit = 1000
	}
	pend := t.db.out.pendingKeys(t.name)
	recs, err := t.db.replica.List(t.name, after, limit)
	if err != nil && !(errors.Is(err, api.ErrTreeNotFound) && len(pend) > 0) {
		return nil, err
	}
	var out []Record
	seen := map[api.Key]bool{}
	for _, r := range recs {
		seen[r.Key] = true
		if e := pend[r.Key]; e != nil {
			if e.Op == fsm.OpDelete {
				continue
			}
			o, _ := t.overlay(e)
			out = append(out, *o)
			continue
		}
		out = append(out, Record{Record: r})
	}
	// Pending creates inside the page's key span (or past it when the
	// replica page was short).
	var hi api.Key
	if len(recs) == limit {
		hi = recs[len(recs)-1].Key
	}
	for k, e := range pend {
		if seen[k] || e.Op != fsm.OpCreate || !keyLess(after, k) || (hi != (api.Key{}) && keyLess(hi, k)) {
			continue
		}
		o, _ := t.overlay(e)
		out = append(out, *o)
	}
	slices.SortFunc(out, func(a, b Record) int {
		if keyLess(a.Key, b.Key) {
			return -1
		}
		if a.Key == b.Key {
			return 0
		}
		return 1
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func keyLess(a, b api.Key) bool { return a.ID < b.ID || (a.ID == b.ID && a.Rev < b.Rev) }

// All iterates over every record of the tree in key order, pending writes
// included, a page at a time (no transaction stays open while the loop
// body runs). Errors end the iteration; see List to handle them.
func (t *Tree) All() iter.Seq[Record] {
	return func(yield func(Record) bool) {
		var after api.Key
		for {
			page, err := t.List(after, 512)
			if err != nil || len(page) == 0 {
				return
			}
			for _, r := range page {
				if !yield(r) {
					return
				}
			}
			after = page[len(page)-1].Key
		}
	}
}

// WriteResult tells how a write ended: applied by the cluster (Index set),
// or queued in the outbox while offline (Pending).
type WriteResult struct {
	Key     api.Key
	Index   uint64
	Pending bool
}

func (t *Tree) queue(ctx context.Context, e *outboxEntry) (WriteResult, error) {
	e.Tree = t.name
	// What the cluster would refuse whatever its state (a value nested
	// deeper than api.MaxDepth, over the size limit, not well-formed)
	// is refused here, not queued. (Create checked it before taking an
	// id: the check decodes the whole value, once is enough.)
	if e.Op != fsm.OpCreate {
		if err := t.db.replica.Validate(&fsm.Command{Op: e.Op, Tree: e.Tree, Key: e.Key, Schema: e.Schema, Data: e.Data}); err != nil {
			return WriteResult{}, err
		}
	}
	out, err := t.db.out.submit(ctx, e)
	if err != nil {
		return WriteResult{}, err
	}
	if out.err != nil {
		return WriteResult{}, out.err
	}
	return WriteResult{Key: e.Key, Index: out.res.Index, Pending: out.pending}, nil
}

// Create creates a record with a fresh id from this client's key ranges.
// Online it returns once the local replica has applied the create; offline
// it returns at once with Pending set, and the create is sent when the
// cluster is back; under NoWait(ctx) it returns, Pending, once the create
// is stored in local.db (see NoWait and DB.Flush). schema is the value's
// schema version (0: none).
func (t *Tree) Create(ctx context.Context, schema uint32, data []byte) (WriteResult, error) {
	if err := fsm.ValidTreeName(t.name); err != nil {
		return WriteResult{}, err
	}
	if len(data) == 0 {
		return WriteResult{}, api.Errorf(api.CodeInvalid, "create in %s: empty value", t.name)
	}
	if err := t.db.replica.Validate(&fsm.Command{Op: fsm.OpCreate, Tree: t.name, Schema: schema, Data: data}); err != nil {
		return WriteResult{}, err // refused before it takes an id
	}
	id, start, err := t.db.ids.take(ctx)
	if err != nil {
		return WriteResult{}, err
	}
	return t.queue(ctx, &outboxEntry{Op: fsm.OpCreate, Key: api.Key{ID: id, Rev: 1}, Schema: schema, Data: data, rangeStart: start})
}

// holds checks in the replica that this client holds the record's borrow,
// which an edit queued offline needs (the cluster checks again).
func (t *Tree) holds(key api.Key) error {
	if e := t.db.out.pending(t.name, key); e != nil && e.Op == fsm.OpCreate {
		return nil // our own pending create: nobody else can see it yet
	}
	rec, err := t.db.replica.Get(t.name, key)
	if err != nil {
		return err
	}
	if rec.Borrow == nil || rec.Borrow.Client != t.db.clientID {
		return api.Errorf(api.CodeNotBorrowed, "record %s/%s is not borrowed by this client: check it out first", t.name, key)
	}
	if rec.Released {
		return api.Errorf(api.CodeReleased, "record %s/%s is released", t.name, key)
	}
	return nil
}

// Update replaces a record's value. It needs the record's borrow; it may
// be queued offline (the cluster checks the borrow again when it arrives;
// a lost borrow then makes a Conflict).
func (t *Tree) Update(ctx context.Context, key api.Key, schema uint32, data []byte) (WriteResult, error) {
	if err := t.holds(key); err != nil {
		return WriteResult{}, err
	}
	if len(data) == 0 {
		return WriteResult{}, api.Errorf(api.CodeInvalid, "update %s/%s: empty value", t.name, key)
	}
	return t.queue(ctx, &outboxEntry{Op: fsm.OpUpdate, Key: key, Schema: schema, Data: data})
}

// Delete deletes a record; it needs the borrow, and may be queued offline.
func (t *Tree) Delete(ctx context.Context, key api.Key) (WriteResult, error) {
	if err := t.holds(key); err != nil {
		return WriteResult{}, err
	}
	return t.queue(ctx, &outboxEntry{Op: fsm.OpDelete, Key: key})
}

// action runs an operation that needs the cluster, after the writes queued
// before it, and waits until the replica has applied it.
func (t *Tree) action(ctx context.Context, key api.Key, name string, req api.ActionRequest) (api.WriteResult, error) {
	if err := t.db.out.drain(ctx); err != nil {
		return api.WriteResult{}, fmt.Errorf("%s %s/%s: %w", name, t.name, key, err)
	}
	if !t.db.Online() {
		return api.WriteResult{}, fmt.Errorf("%s %s/%s: %w", name, t.name, key, ErrOffline)
	}
	req.Client = t.db.clientID
	var res api.WriteResult
	err := t.db.once(ctx, func(ctx context.Context, c *api.Client) error {
		var err error
		res, err = c.Action(ctx, t.name, key, name, req)
		return err
	})
	if err != nil {
		var apiErr *api.Error
		if !errors.As(err, &apiErr) {
			return res, fmt.Errorf("%s %s/%s: %w: %w", name, t.name, key, ErrOffline, err)
		}
		return res, err
	}
	return res, t.db.replica.WaitApplied(ctx, res.Index)
}

// Checkout borrows a record for this client until ttl has passed (0: the
// cluster's default, no expiry unless the nodes set one; negative: no
// expiry whatever the default). It needs the cluster.
func (t *Tree) Checkout(ctx context.Context, key api.Key, ttl time.Duration) error {
	req := api.ActionRequest{TTL: api.TTLString(ttl)}
	_, err := t.action(ctx, key, "borrow", req)
	return err
}

// Return gives a borrowed record back (check-in). It needs the cluster.
func (t *Tree) Return(ctx context.Context, key api.Key) error {
	_, err := t.action(ctx, key, "return", api.ActionRequest{})
	return err
}

// Release makes a record immutable (it needs the borrow, which ends).
func (t *Tree) Release(ctx context.Context, key api.Key) error {
	_, err := t.action(ctx, key, "release", api.ActionRequest{})
	return err
}

// SetState sets a record's state number, the one thing a released record
// may still change.
func (t *Tree) SetState(ctx context.Context, key api.Key, state int64) error {
	_, err := t.action(ctx, key, "state", api.ActionRequest{State: state})
	return err
}

// Revise makes revision Rev+1 of a released record as a draft, borrowed
// by this client, and returns its key.
func (t *Tree) Revise(ctx context.Context, key api.Key) (api.Key, error) {
	res, err := t.action(ctx, key, "revise", api.ActionRequest{})
	return res.Key, err
}
