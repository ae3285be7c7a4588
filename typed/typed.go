// Package typed is the API applications write against: a Tree[T] holds
// records of the Go type T, addressed by Key[T], so keys of one tree cannot
// be used with another (a compile error). It is a thin layer over the
// untyped client package: reads are local, writes go through the client
// (and its outbox while offline).
//
// Records are CBOR maps keyed by field name (the codec tag, else the json
// tag, else the Go name). Open extracts T's schema by reflection and
// registers it in the cluster's replicated registry, which refuses
// changes that would break older or newer code (changing a field's type,
// narrowing an integer, reusing the key of a dropped field) and assigns
// versions; every record carries the version it was written with.
//
// Schema evolution: code reads records of any version (fields it does not
// know are ignored, fields a record lacks stay zero or take the values of
// SetDefaults), and when it writes a record back, the fields it does not
// know are kept, inside nested structs, slices and maps of structs too.
// Nothing is asked of T for this: Update merges the new value with the
// stored one by schema. One limit: elements of a slice of structs are
// paired by content (see Update), so old code that replaces an element, or
// edits every field of one and moves it, may attach unknown fields to the
// wrong element; an element type that tags its identifying fields
// `shelf:"key"` is paired by them instead.
package typed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
	"github.com/shelfdb/shelf/internal/schema"
)

// ErrDecode is wrapped by the errors of records that do not decode into T.
var ErrDecode = errors.New("typed: record does not decode")

// ErrDuplicateKey is wrapped by Open's error for a record type with two
// fields under one key (two codec or json tags alike, a tag equal to
// another field's Go name, a field of an embedded struct shadowed by
// another): codec would store only one of them, so Open refuses the type.
var ErrDuplicateKey = schema.ErrDuplicateKey

// Defaulter is implemented by record types, and by the types of structs
// inside them, that want defaults for fields a record lacks (records
// written before the field existed): SetDefaults is called on a zero value
// before its fields are decoded. Nested structs get theirs too: struct
// fields and arrays of structs before the struct holding them (depth
// first, so an outer SetDefaults can override an inner one), structs
// behind pointers, in slices and in maps when the record holds them (a
// slice element or map value gets its defaults, then its stored fields).
// An embedded struct is part of the struct embedding it: its SetDefaults,
// if promoted, is that struct's.
type Defaulter interface {
	SetDefaults()
}

// Tree is a tree of records of type T. It is cheap to copy around and safe
// for concurrent use.
type Tree[T any] struct {
	db      *client.DB
	t       *client.Tree
	def     *schema.Definition
	version uint32
	typ     string
	plan    *defaultsPlan // defaultsFor(T), looked up once
}

// Open returns the tree called name holding T records. It registers T's
// schema for the tree (a schema registered before, by this or any other
// client, needs no network; a new one needs the cluster). An incompatible
// change is refused with api.ErrIncompatible, naming the tree, the field,
// the old and the new type.
//
// What is registered is the shape of T's records (see the README): the
// keys and stored types of its fields, not their Go names, nor the names
// or packages of T and its struct types. A T of a shape registered before
// gets that version back (the first one, if several have it), also when
// it was registered by older code or from another package, or by code
// that names its fields differently.
func Open[T any](ctx context.Context, db *client.DB, name string) (*Tree[T], error) {
	rt := reflect.TypeFor[T]()
	def, err := schema.Extract(rt)
	if err != nil {
		return nil, fmt.Errorf("typed: tree %q: %w", name, err)
	}
	enc, err := def.Encode()
	if err != nil {
		return nil, fmt.Errorf("typed: tree %q: %w", name, err)
	}
	t := db.Tree(name)
	v, err := registeredShape(t, enc)
	if err == nil && v == 0 && db.Online() {
		// Not in the replica: catch up (for a while) before registering a
		// new version, in case it was registered meanwhile by code that
		// spells the shape differently (with Go names). If that fails,
		// registering reports what is wrong.
		sctx, cancel := context.WithTimeout(ctx, syncBeforeRegister)
		if db.WaitSynced(sctx) == nil {
			v, err = registeredShape(t, enc)
		}
		cancel()
	}
	if err == nil && v == 0 {
		v, err = t.RegisterSchema(ctx, enc)
	}
	if err != nil {
		return nil, fmt.Errorf("typed: open tree %q for %s: %w", name, typeName(rt), err)
	}
	return &Tree[T]{db: db, t: t, def: &def, version: v, typ: typeName(rt), plan: defaultsFor(rt)}, nil
}

// syncBeforeRegister bounds Open's wait for the replica to catch up before
// it registers a new schema version.
const syncBeforeRegister = 10 * time.Second

// registeredShape returns the first version of the tree registered in the
// local replica with the shape enc encodes (see schema.Definition.Encode),
// or 0. Definitions registered by older code have Go names in them.
func registeredShape(t *client.Tree, enc []byte) (uint32, error) {
	ss, err := t.Schemas()
	if err != nil {
		if errors.Is(err, api.ErrTreeNotFound) {
			return 0, nil
		}
		return 0, err
	}
	var first uint32
	for _, s := range ss {
		if first != 0 && s.Version > first {
			continue
		}
		if d, err := schema.Decode(s.Definition); err == nil {
			if shape, err := d.Encode(); err == nil && bytes.Equal(shape, enc) {
				first = s.Version
			}
		}
	}
	return first, nil
}

// Name returns the tree's name.
func (t *Tree[T]) Name() string { return t.t.Name() }

// Version returns the schema version of T in this tree: the version this
// code writes records with.
func (t *Tree[T]) Version() uint32 { return t.version }

// DB returns the client the tree belongs to.
func (t *Tree[T]) DB() *client.DB { return t.db }

func (t *Tree[T]) decode(r *client.Record, v *T) error {
	var zero T
	*v = zero
	if p := t.plan; p != nil {
		rv := reflect.ValueOf(v).Elem()
		p.setDefaults(rv)
		if cborValid(r.Data) == nil {
			p.prepare(rv, r.Data)
		}
	}
	if err := api.Unmarshal(r.Data, v); err != nil {
		return fmt.Errorf("%w: %s/%s (schema version %d) into %s: %w", ErrDecode, r.Tree, r.Key, r.Schema, t.typ, err)
	}
	return nil
}

// Record is a record with its metadata.
type Record[T any] struct {
	Key       Key[T]
	Value     T
	Schema    uint32 // schema version the record was written with
	Released  bool
	State     int64
	Borrow    *api.Borrow // nil: not borrowed
	Pending   bool        // the value is this client's write, not yet applied by the cluster
	CreatedBy string
	Created   time.Time
	UpdatedBy string
	Updated   time.Time
	Index     uint64 // log index of the record's last change
}

func (t *Tree[T]) record(r *client.Record) (Record[T], error) {
	out := Record[T]{Key: KeyOf[T](r.Key), Schema: r.Schema, Released: r.Released, State: r.State, Borrow: r.Borrow,
		Pending: r.Pending, CreatedBy: r.CreatedBy, Created: r.Created, UpdatedBy: r.UpdatedBy, Updated: r.Updated, Index: r.Index}
	return out, t.decode(r, &out.Value)
}

// Get returns the record's value from the local replica (no network),
// with this client's pending writes applied. key.Rev 0 means the latest
// revision.
func (t *Tree[T]) Get(key Key[T]) (T, error) {
	var v T
	err := t.t.ViewValue(key.Untyped(), func(r *client.Record) error { return t.decode(r, &v) })
	return v, err
}

// Record returns the record with its metadata (borrow, released, state).
func (t *Tree[T]) Record(key Key[T]) (Record[T], error) {
	var out Record[T]
	err := t.t.View(key.Untyped(), func(r *client.Record) (err error) {
		out, err = t.record(r)
		return err
	})
	return out, err
}

// View calls fn with the record's value, decoded straight from the
// replica's memory map without copying the stored bytes first. The value
// is fn's own, but fn runs inside a read transaction: keep it short.
func (t *Tree[T]) View(key Key[T], fn func(*T) error) error {
	return t.t.ViewValue(key.Untyped(), func(r *client.Record) error {
		var v T
		if err := t.decode(r, &v); err != nil {
			return err
		}
		return fn(&v)
	})
}

// Create creates a record with a fresh id from this client's key ranges:
// online it returns once the local replica has applied it; offline it
// returns at once and the create waits in the outbox (Record shows it as
// Pending). The creator does not hold the new record: Checkout it to edit
// or release it.
func (t *Tree[T]) Create(ctx context.Context, v T) (Key[T], error) {
	data, err := api.Marshal(&v)
	if err != nil {
		return Key[T]{}, fmt.Errorf("typed: create in %s: %w", t.Name(), err)
	}
	res, err := t.t.Create(ctx, t.version, data)
	return KeyOf[T](res.Key), err
}

// Update reads the record, lets fn change it and writes it back. It needs
// the record's borrow (ErrNotBorrowed otherwise) and may be queued
// offline. An error from fn cancels the update.
//
// Fields of the stored record that T does not know (written by newer code)
// are kept, in nested structs, pointers, slices and maps of structs too.
// Map values are paired by map key. Elements of a slice of structs are
// paired by key if T's element type tags one or more fields `shelf:"key"`
// (together they identify an element; elements with a key the stored
// slice lacks are new and get nothing). Without a key, the element the
// writer left unchanged pairs with its stored self, then an edited element
// with the stored one sharing the most field values, then by position: an
// element replaced in place, or edited in every field and moved, can take
// the unknown fields of another.
func (t *Tree[T]) Update(ctx context.Context, key Key[T], fn func(*T) error) error {
	var v T
	var old []byte
	var at api.Key
	err := t.t.View(key.Untyped(), func(r *client.Record) error {
		at, old = r.Key, bytes.Clone(r.Data)
		return t.decode(r, &v)
	})
	if err != nil {
		return err
	}
	if err := fn(&v); err != nil {
		return err
	}
	data, err := api.Marshal(&v)
	if err != nil {
		return fmt.Errorf("typed: update %s/%s: %w", t.Name(), at, err)
	}
	if data, err = merge(t.def, old, data); err != nil {
		return fmt.Errorf("typed: update %s/%s: keep the fields %s does not know: %w", t.Name(), at, t.typ, err)
	}
	_, err = t.t.Update(ctx, at, t.version, data)
	return err
}

// Checkout borrows the record for this client, without expiry; it needs
// the cluster. Another client's borrow refuses it (ErrBorrowed, naming
// the holder).
func (t *Tree[T]) Checkout(ctx context.Context, key Key[T]) error {
	return t.t.Checkout(ctx, key.Untyped(), 0)
}

// CheckoutFor borrows the record until ttl has passed (by the cluster
// leader's clock).
func (t *Tree[T]) CheckoutFor(ctx context.Context, key Key[T], ttl time.Duration) error {
	return t.t.Checkout(ctx, key.Untyped(), ttl)
}

// Return gives the borrowed record back (check-in).
func (t *Tree[T]) Return(ctx context.Context, key Key[T]) error {
	return t.t.Return(ctx, key.Untyped())
}

// Delete deletes the record; it needs the borrow and may be queued offline.
func (t *Tree[T]) Delete(ctx context.Context, key Key[T]) error {
	_, err := t.t.Delete(ctx, key.Untyped())
	return err
}

// Release makes the record immutable (it needs the borrow, which ends).
// A released record keeps one mutable number, its state (SetState).
func (t *Tree[T]) Release(ctx context.Context, key Key[T]) error {
	return t.t.Release(ctx, key.Untyped())
}

// SetState sets the record's state number, the one thing a released
// record may still change.
func (t *Tree[T]) SetState(ctx context.Context, key Key[T], state int64) error {
	return t.t.SetState(ctx, key.Untyped(), state)
}

// Revise makes revision Rev+1 of a released record as a draft copy,
// borrowed by this client, and returns its key.
func (t *Tree[T]) Revise(ctx context.Context, key Key[T]) (Key[T], error) {
	k, err := t.t.Revise(ctx, key.Untyped())
	return KeyOf[T](k), err
}

// List returns up to limit records with key after after, in key order,
// this client's pending writes included. A record that does not decode
// into T ends the listing with an error wrapping ErrDecode.
func (t *Tree[T]) List(after Key[T], limit int) ([]Record[T], error) {
	recs, err := t.t.List(after.Untyped(), limit)
	if err != nil {
		return nil, err
	}
	out := make([]Record[T], 0, len(recs))
	for i := range recs {
		r, err := t.record(&recs[i])
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// All iterates over every record of the tree in key order (every revision),
// pending writes included, a page at a time: no transaction stays open
// while the loop body runs. Records that do not decode into T are skipped;
// use List to see their errors.
func (t *Tree[T]) All() iter.Seq2[Key[T], T] {
	return func(yield func(Key[T], T) bool) {
		for r := range t.t.All() {
			var v T
			if t.decode(&r, &v) != nil {
				continue
			}
			if !yield(KeyOf[T](r.Key), v) {
				return
			}
		}
	}
}

// The event types of a tree (see api.EventType).
const (
	Created      = api.EventCreated
	Updated      = api.EventUpdated
	Deleted      = api.EventDeleted
	Borrowed     = api.EventBorrowed
	Returned     = api.EventReturned
	Released     = api.EventReleased
	StateChanged = api.EventStateChanged
)

// Event is a change to a record of the tree (or, with an empty Key, one
// of the client's events about the tree: a schema registered, the replica
// resynced or this subscriber lagged).
type Event[T any] struct {
	client.Event
	Key Key[T]
}

// Events returns the tree's changes from now on, in commit order, until
// ctx ends or the DB closes (see client.DB.Events). Read the value with
// Get: the event carries the key, not the record.
func (t *Tree[T]) Events(ctx context.Context) <-chan Event[T] {
	in := t.db.Events(ctx, t.Name())
	out := make(chan Event[T], 64)
	go func() {
		defer close(out)
		for e := range in {
			select {
			case out <- Event[T]{Event: e, Key: KeyOf[T](e.Event.Key)}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
