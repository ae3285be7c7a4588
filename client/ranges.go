package client

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/shelfdb/shelf/api"
)

// idReserve hands out record ids from the key ranges granted to this
// client, and asks for a new range in the background before they run out,
// so that a create never waits for the network (and works offline).
//
// The replica knows each range and the highest id the cluster saw used;
// local.db keeps this client's own cursor per range, which also counts ids
// given to creates still in the outbox. An id is never handed out twice.
type idReserve struct {
	db      *DB
	mu      sync.Mutex // guards handing out ids (never held across the network)
	grantMu sync.Mutex // one range request at a time
	kick    chan struct{}

	cacheMu sync.Mutex
	cursors map[uint64]uint64 // range start -> next unused id, ahead of local.db until the outbox entry is stored
	// The replica's ranges of this client as read when its applied index
	// was rangesAt (the data is at least that new): a create reads them
	// again only once the replica applied something (a bbolt read saved
	// per create under load).
	ranges   []api.Range
	rangesAt uint64
}

// replicaRanges returns the replica's ranges of this client (read only:
// the slice is shared).
func (r *idReserve) replicaRanges() ([]api.Range, error) {
	at := r.db.replica.AppliedIndex() // before the read: the data is at least this new
	r.cacheMu.Lock()
	if r.ranges != nil && r.rangesAt == at {
		rs := r.ranges
		r.cacheMu.Unlock()
		return rs, nil
	}
	r.cacheMu.Unlock()
	rs, err := r.db.replica.Ranges(r.db.clientID)
	if err != nil {
		return nil, err
	}
	r.cacheMu.Lock()
	r.ranges, r.rangesAt = rs, at
	r.cacheMu.Unlock()
	return rs, nil
}

// cursor returns the next unused id of the range starting at start.
func (r *idReserve) cursor(start uint64) uint64 {
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	if n, ok := r.cursors[start]; ok {
		return n
	}
	return r.db.local.cursor(start)
}

func (r *idReserve) kickNow() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// ranges returns this client's ranges with the next free id of each.
func (r *idReserve) free() (ranges []api.Range, next []uint64, available uint64, err error) {
	ranges, err = r.replicaRanges()
	if err != nil {
		return nil, nil, 0, err
	}
	next = make([]uint64, len(ranges))
	for i, rg := range ranges {
		n := max(rg.Start, rg.Next, r.cursor(rg.Start))
		next[i] = n
		if n < rg.End {
			available += rg.End - n
		}
	}
	return ranges, next, available, nil
}

// take returns a fresh id and the range it came from. The new cursor is
// stored with the outbox entry that uses the id (one transaction, one
// fsync): if that never happens, the id was never used either.
func (r *idReserve) take(ctx context.Context) (id, rangeStart uint64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		ranges, next, available, err := r.free()
		if err != nil {
			return 0, 0, err
		}
		if available <= r.db.cfg.Reserve {
			r.kickNow()
		}
		for i, rg := range ranges {
			if next[i] < rg.End {
				r.cacheMu.Lock()
				if r.cursors == nil {
					r.cursors = map[uint64]uint64{}
				}
				r.cursors[rg.Start] = next[i] + 1
				r.cacheMu.Unlock()
				return next[i], rg.Start, nil
			}
		}
		// None left: only a new range helps.
		if !r.db.Online() {
			return 0, 0, ErrNoIDs
		}
		r.mu.Unlock()
		err = r.grantIfEmpty(ctx)
		r.mu.Lock()
		if err != nil {
			return 0, 0, err
		}
	}
}

// grantIfEmpty asks for a range unless one arrived meanwhile.
func (r *idReserve) grantIfEmpty(ctx context.Context) error {
	r.grantMu.Lock()
	defer r.grantMu.Unlock()
	if _, _, available, err := r.free(); err != nil || available > 0 {
		return err
	}
	return r.grant(ctx)
}

// grant asks the cluster for a new range and waits until the replica has it.
func (r *idReserve) grant(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var rg api.Range
	err := r.db.once(ctx, func(ctx context.Context, c *api.Client) error {
		var err error
		rg, err = c.GrantRange(ctx, r.db.clientID, r.db.cfg.RangeSize)
		return err
	})
	if err != nil {
		return fmt.Errorf("client: new key range: %w", err)
	}
	// The grant's log index is not in the answer; the range is there once
	// the replica lists it.
	for {
		rs, err := r.db.replica.Ranges(r.db.clientID)
		if err != nil {
			return err
		}
		for _, have := range rs {
			if have.Start == rg.Start {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("client: new key range %d-%d not replicated yet: %w", rg.Start, rg.End, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// run keeps the reserve topped up while online.
func (r *idReserve) run() {
	defer r.db.wg.Done()
	for {
		select {
		case <-r.db.ctx.Done():
			return
		case <-r.kick:
		case <-time.After(30 * time.Second):
		}
		if r.db.Online() {
			r.topUp()
		}
	}
}

// topUp asks for ranges until more than Reserve ids are in hand.
func (r *idReserve) topUp() {
	r.grantMu.Lock()
	defer r.grantMu.Unlock()
	for r.db.Online() && r.db.ctx.Err() == nil {
		_, _, available, err := r.free()
		if err != nil || available > r.db.cfg.Reserve {
			return
		}
		if err := r.grant(r.db.ctx); err != nil {
			r.db.log.Warn("client: could not top up the key range reserve", "available", available, "err", err)
			return
		}
	}
}

// IDsAvailable returns how many record ids this client holds for creates
// (offline ones included) before it needs a new key range.
func (db *DB) IDsAvailable() (uint64, error) {
	_, _, n, err := db.ids.free()
	return n, err
}
