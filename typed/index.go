package typed

import (
	"encoding/binary"
	"math"
	"reflect"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
)

// IndexOption configures NewIndex and NewOrderedIndex.
type IndexOption func(*client.IndexSpec)

// IndexVersion sets the version of the indexing function (default 1).
// Change it whenever the function changes what it returns: the stored
// index is then rebuilt when the index is opened.
func IndexVersion(v uint32) IndexOption {
	return func(s *client.IndexSpec) { s.Version = v }
}

func addIndex[T any](t *Tree[T], name string, terms func(T) [][]byte, opts []IndexOption) (*client.Index, error) {
	spec := client.IndexSpec{Tree: t.Name(), Name: name, Version: 1, Terms: func(r *api.Record) ([][]byte, error) {
		var v T
		if err := t.decode(&client.Record{Record: *r}, &v); err != nil {
			return nil, err
		}
		return terms(v), nil
	}}
	for _, o := range opts {
		o(&spec)
	}
	return t.db.AddIndex(spec)
}

// Index is a secondary index over a tree of T by string terms, kept in the
// local replica and updated in the same transaction as every change the
// replica applies; this client's pending writes are seen too. It is cheap
// to copy and safe for concurrent use.
type Index[T any] struct {
	ix *client.Index
}

// NewIndex adds an index called name to the tree: fn returns the terms of
// a record (none: the record is not indexed). fn runs for every change the
// replica applies, inside its transaction: keep it quick and pure. The
// index is stored in the replica and built (or rebuilt, after its version
// changed) here.
func NewIndex[T any](t *Tree[T], name string, fn func(T) []string, opts ...IndexOption) (Index[T], error) {
	ix, err := addIndex(t, name, func(v T) [][]byte {
		ss := fn(v)
		out := make([][]byte, len(ss))
		for i, s := range ss {
			out[i] = []byte(s)
		}
		return out
	}, opts)
	return Index[T]{ix: ix}, err
}

// Lookup returns the keys of the records with the term, in key order.
func (i Index[T]) Lookup(term string) ([]Key[T], error) {
	keys, err := i.ix.Lookup([]byte(term))
	return typedKeys[T](keys), err
}

// Prefix returns the keys of the records with a term that starts with
// prefix, in term order (a record with several such terms once).
func (i Index[T]) Prefix(prefix string) ([]Key[T], error) {
	hits, err := i.ix.Prefix([]byte(prefix), 0)
	return hitKeys[T](hits), err
}

// Range returns the keys of the records with a term in [from, to), in term
// order ("" as to: no upper bound).
func (i Index[T]) Range(from, to string) ([]Key[T], error) {
	var hi []byte
	if to != "" {
		hi = []byte(to)
	}
	hits, err := i.ix.Scan([]byte(from), hi, 0)
	return hitKeys[T](hits), err
}

// Ordered are the types an OrderedIndex sorts by: numbers and times.
type Ordered interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr |
		~float32 | ~float64 | time.Time
}

// OrderedIndex is an index by numbers or times, in their natural order
// (negative numbers first; NaN after +Inf). Like Index it is cheap to copy
// and safe for concurrent use.
type OrderedIndex[T any, V Ordered] struct {
	ix *client.Index
}

// NewOrderedIndex adds an index called name to the tree, by the values fn
// returns for a record (see NewIndex).
func NewOrderedIndex[T any, V Ordered](t *Tree[T], name string, fn func(T) []V, opts ...IndexOption) (OrderedIndex[T, V], error) {
	ix, err := addIndex(t, name, func(v T) [][]byte {
		vs := fn(v)
		out := make([][]byte, len(vs))
		for i, x := range vs {
			out[i] = orderedBytes(x)
		}
		return out
	}, opts)
	return OrderedIndex[T, V]{ix: ix}, err
}

// Lookup returns the keys of the records with the value, in key order.
func (i OrderedIndex[T, V]) Lookup(v V) ([]Key[T], error) {
	keys, err := i.ix.Lookup(orderedBytes(v))
	return typedKeys[T](keys), err
}

// Range returns the keys of the records with a value in [from, to), in
// value order.
func (i OrderedIndex[T, V]) Range(from, to V) ([]Key[T], error) {
	hits, err := i.ix.Scan(orderedBytes(from), orderedBytes(to), 0)
	return hitKeys[T](hits), err
}

// From returns the keys of the records with a value of at least from, in
// value order, at most limit of them (0: all).
func (i OrderedIndex[T, V]) From(from V, limit int) ([]Key[T], error) {
	hits, err := i.ix.Scan(orderedBytes(from), nil, limit)
	return hitKeys[T](hits), err
}

// orderedBytes encodes v so that byte order is value order.
func orderedBytes[V Ordered](v V) []byte {
	if t, ok := any(v).(time.Time); ok {
		b := binary.BigEndian.AppendUint64(nil, uint64(t.Unix())^1<<63)
		return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return binary.BigEndian.AppendUint64(nil, uint64(rv.Int())^1<<63)
	case reflect.Float32, reflect.Float64:
		bits := math.Float64bits(rv.Float())
		if bits&(1<<63) != 0 {
			bits = ^bits
		} else {
			bits |= 1 << 63
		}
		return binary.BigEndian.AppendUint64(nil, bits)
	default: // unsigned
		return binary.BigEndian.AppendUint64(nil, rv.Uint())
	}
}

func typedKeys[T any](keys []api.Key) []Key[T] {
	out := make([]Key[T], len(keys))
	for i, k := range keys {
		out[i] = KeyOf[T](k)
	}
	return out
}

func hitKeys[T any](hits []client.IndexHit) []Key[T] {
	out := make([]Key[T], 0, len(hits))
	seen := make(map[api.Key]bool, len(hits))
	for _, h := range hits {
		if !seen[h.Key] {
			seen[h.Key] = true
			out = append(out, KeyOf[T](h.Key))
		}
	}
	return out
}
