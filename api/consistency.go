package api

import (
	"context"
	"net/url"
	"strconv"
)

// IndexHeader is the answer header of every state read (records, lists,
// borrows, history, ranges, clients, trees, schemas, hash): the node's
// applied log index when it served the read. The answer reflects every
// write up to that index.
const IndexHeader = "X-Shelf-Index"

// Consistency says what a read must reflect. It travels as the query
// parameter "consistency".
type Consistency string

// The read consistencies.
const (
	// Linearizable, the default, reflects every write acknowledged before
	// the read started, whichever node answers: the node confirms the
	// leader and catches up with its commit index first. A node that
	// cannot reach a leader answers no_leader, never old data.
	Linearizable Consistency = "linearizable"
	// Stale reads the answering node's applied state as it is: fast, and
	// possibly behind the cluster (a follower a few milliseconds, a node
	// cut off from the leader for as long as it is cut off).
	Stale Consistency = "stale"
)

type consistencyKey struct{}

type minIndexKey struct{}

// WithConsistency makes the Client's reads under ctx ask for c.
func WithConsistency(ctx context.Context, c Consistency) context.Context {
	return context.WithValue(ctx, consistencyKey{}, c)
}

// WithMinIndex makes the Client's reads under ctx wait until the
// answering node has applied index (query parameter "min_index"), for
// instance the Index of a WriteResult: a stale read then still sees that
// write.
func WithMinIndex(ctx context.Context, index uint64) context.Context {
	return context.WithValue(ctx, minIndexKey{}, index)
}

// readQuery adds the read options of ctx to q; def is the consistency
// when ctx names none.
func readQuery(ctx context.Context, def Consistency, q url.Values) url.Values {
	c, _ := ctx.Value(consistencyKey{}).(Consistency)
	if c == "" {
		c = def
	}
	mi, _ := ctx.Value(minIndexKey{}).(uint64)
	if c == "" && mi == 0 {
		return q
	}
	if q == nil {
		q = url.Values{}
	}
	if c != "" {
		q.Set("consistency", string(c))
	}
	if mi > 0 {
		q.Set("min_index", strconv.FormatUint(mi, 10))
	}
	return q
}
