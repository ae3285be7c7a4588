package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
)

// outboxEntry is a write queued in local.db until the cluster applied it.
type outboxEntry struct {
	Seq    uint64  `codec:"seq"`
	Op     fsm.Op  `codec:"op"` // OpCreate, OpUpdate or OpDelete
	Tree   string  `codec:"tree"`
	Key    api.Key `codec:"key"`
	Schema uint32  `codec:"schema,omitempty"`
	Data   []byte  `codec:"data,omitempty"`
	Queued int64   `codec:"queued"` // unix ns, this machine's clock
}

// Conflict is an outbox entry the cluster rejected: the write is kept,
// with the reason, until the app resolves it (RetryConflict) or drops it
// (DiscardConflict). Nothing a user typed is lost silently.
type Conflict struct {
	Seq      uint64     `json:"seq" codec:"seq"`
	Op       string     `json:"op" codec:"op"`
	Tree     string     `json:"tree" codec:"tree"`
	Key      api.Key    `json:"key" codec:"key"`
	Schema   uint32     `json:"schema,omitempty" codec:"schema,omitempty"`
	Data     []byte     `json:"data,omitempty" codec:"data,omitempty"`
	Err      *api.Error `json:"error" codec:"err"`
	Queued   time.Time  `json:"queued" codec:"queued"`
	Rejected time.Time  `json:"rejected" codec:"rejected"`
}

// outcome is what a waiting writer learns about its entry.
type outcome struct {
	res     api.WriteResult
	err     error
	pending bool // not sent yet (offline): still in the outbox
}

// outbox sends queued writes in order, one at a time, and keeps the
// pending overlay that reads see.
type outbox struct {
	db   *DB
	kick chan struct{}

	mu      sync.Mutex
	entries []*outboxEntry                // in sequence order
	waiters map[uint64]chan outcome       // seq -> the writer still waiting
	drained chan struct{}                 // closed when entries becomes empty
	byKey   map[string]map[api.Key]uint64 // tree -> key -> latest pending seq
}

func newOutbox(db *DB) *outbox {
	return &outbox{db: db, kick: make(chan struct{}, 1), waiters: map[uint64]chan outcome{},
		byKey: map[string]map[api.Key]uint64{}, drained: make(chan struct{})}
}

func (o *outbox) load() error {
	entries, err := o.db.local.outbox()
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range entries {
		o.add(e)
	}
	if len(o.entries) == 0 {
		close(o.drained)
	}
	return nil
}

// add indexes e; o.mu held.
func (o *outbox) add(e *outboxEntry) {
	if len(o.entries) == 0 {
		select {
		case <-o.drained:
			o.drained = make(chan struct{})
		default:
		}
	}
	o.entries = append(o.entries, e)
	m := o.byKey[e.Tree]
	if m == nil {
		m = map[api.Key]uint64{}
		o.byKey[e.Tree] = m
	}
	m[e.Key] = e.Seq
}

// remove unindexes the entry seq; o.mu held.
func (o *outbox) remove(seq uint64) *outboxEntry {
	for i, e := range o.entries {
		if e.Seq != seq {
			continue
		}
		o.entries = append(o.entries[:i], o.entries[i+1:]...)
		if m := o.byKey[e.Tree]; m[e.Key] == seq {
			delete(m, e.Key)
			// An older entry for the same key may still be pending.
			for _, older := range o.entries {
				if older.Tree == e.Tree && older.Key == e.Key {
					m[e.Key] = older.Seq
				}
			}
		}
		if len(o.entries) == 0 {
			close(o.drained)
		}
		return e
	}
	return nil
}

// pending returns the latest pending entry for a record, if any.
func (o *outbox) pending(tree string, key api.Key) *outboxEntry {
	o.mu.Lock()
	defer o.mu.Unlock()
	seq, ok := o.byKey[tree][key]
	if !ok {
		return nil
	}
	for _, e := range o.entries {
		if e.Seq == seq {
			return e
		}
	}
	return nil
}

// pendingCreates returns the tree's pending creates, in key order.
func (o *outbox) pendingKeys(tree string) map[api.Key]*outboxEntry {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[api.Key]*outboxEntry{}
	for _, e := range o.entries {
		if e.Tree == tree {
			out[e.Key] = e
		}
	}
	return out
}

// Pending returns the number of writes waiting in the outbox.
func (db *DB) Pending() int {
	db.out.mu.Lock()
	defer db.out.mu.Unlock()
	return len(db.out.entries)
}

// submit queues e and, while online, waits for the cluster's answer.
// Offline (or once the connection drops) it returns with pending set:
// the entry stays queued and is sent, in order, when a server answers.
func (o *outbox) submit(ctx context.Context, e *outboxEntry) (outcome, error) {
	e.Queued = time.Now().UnixNano()
	ch := make(chan outcome, 1)
	o.mu.Lock()
	if _, err := o.db.local.appendOutbox(e); err != nil {
		o.mu.Unlock()
		return outcome{}, fmt.Errorf("client: outbox: %w", err)
	}
	o.add(e)
	o.waiters[e.Seq] = ch
	o.mu.Unlock()
	o.kickNow()
	if !o.db.Online() {
		o.forget(e.Seq)
		return outcome{pending: true}, nil
	}
	select {
	case out := <-ch:
		return out, nil
	case <-ctx.Done():
		o.forget(e.Seq)
		return outcome{pending: true}, nil
	case <-o.db.ctx.Done():
		return outcome{pending: true}, nil
	}
}

func (o *outbox) forget(seq uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.waiters, seq)
}

func (o *outbox) kickNow() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// drain waits until every entry queued so far has been settled, so that
// an operation that needs the cluster comes after the writes before it.
func (o *outbox) drain(ctx context.Context) error {
	for {
		o.mu.Lock()
		done := o.drained
		n := len(o.entries)
		o.mu.Unlock()
		if n == 0 {
			return nil
		}
		if !o.db.Online() {
			return fmt.Errorf("%w (%d outbox entries waiting)", ErrOffline, n)
		}
		select {
		case <-done:
		case <-o.db.onlineChanged():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (o *outbox) run() {
	defer o.db.wg.Done()
	for {
		select {
		case <-o.db.ctx.Done():
			return
		case <-o.kick:
		case <-time.After(5 * time.Second):
		}
		for o.db.Online() && o.db.ctx.Err() == nil {
			o.mu.Lock()
			var e *outboxEntry
			if len(o.entries) > 0 {
				e = o.entries[0]
			}
			o.mu.Unlock()
			if e == nil {
				break
			}
			if !o.send(e) {
				break
			}
		}
	}
}

// send sends e and settles it. False means it could not be sent (network):
// it stays first in line.
func (o *outbox) send(e *outboxEntry) bool {
	db := o.db
	c := db.current()
	ctx, cancel := context.WithTimeout(db.ctx, 30*time.Second)
	defer cancel()
	req := api.WriteRequest{Client: db.clientID, Schema: e.Schema, Data: e.Data}
	var res api.WriteResult
	var err error
	switch e.Op {
	case fsm.OpCreate:
		req.ID = e.Key.ID
		res, err = c.Create(ctx, e.Tree, req)
		if errors.Is(err, api.ErrExists) && o.alreadyApplied(ctx, c, e) {
			res, err = api.WriteResult{Key: e.Key}, nil // our earlier send went through
		}
	case fsm.OpUpdate:
		res, err = c.Update(ctx, e.Tree, e.Key, req)
	case fsm.OpDelete:
		res, err = c.Delete(ctx, e.Tree, e.Key, db.clientID)
		if errors.Is(err, api.ErrNotFound) && o.deletedByUs(e) {
			res, err = api.WriteResult{Key: e.Key}, nil
		}
	default:
		err = api.Errorf(api.CodeInvalid, "outbox entry %d: op %s cannot be queued", e.Seq, e.Op)
	}
	var apiErr *api.Error
	if err != nil && (!errors.As(err, &apiErr) || apiErr.Code == api.CodeNoLeader || apiErr.Code == api.CodeUnavailable || apiErr.Code == api.CodeInternal) {
		// Not an answer from the state machine: try again later, in order.
		db.log.Debug("client: outbox entry not sent", "seq", e.Seq, "err", err)
		o.notify(e.Seq, outcome{pending: true})
		db.sleep(200 * time.Millisecond)
		return false
	}
	if err == nil && res.Index > 0 {
		// Read your own writes: settle once the replica has the change.
		if werr := db.replica.WaitApplied(ctx, res.Index); werr != nil {
			return false
		}
	}
	o.settle(e, res, apiErr)
	return true
}

// settle removes e from the outbox: confirmed, or rejected. A rejection
// goes to the writer if it is still waiting, else it becomes a Conflict.
func (o *outbox) settle(e *outboxEntry, res api.WriteResult, rej *api.Error) {
	db := o.db
	o.mu.Lock()
	ch, waiting := o.waiters[e.Seq]
	delete(o.waiters, e.Seq)
	var c *Conflict
	if rej != nil && !waiting {
		c = &Conflict{Seq: e.Seq, Op: e.Op.String(), Tree: e.Tree, Key: e.Key, Schema: e.Schema, Data: e.Data,
			Err: rej, Queued: time.Unix(0, e.Queued).UTC(), Rejected: time.Now().UTC()}
	}
	if err := db.local.settle(e.Seq, c); err != nil {
		o.mu.Unlock()
		db.log.Error("client: cannot settle outbox entry; it will be sent again", "seq", e.Seq, "err", err)
		return
	}
	o.remove(e.Seq)
	o.mu.Unlock()
	ev := Event{Event: api.Event{Index: res.Index, Tree: e.Tree, Key: e.Key, Client: db.clientID, Time: time.Now().UTC()}, Outbox: e.Seq}
	switch {
	case rej == nil:
		ev.Type = EventConfirmed
	case c != nil:
		ev.Type, ev.Err = EventConflict, rej
		db.log.Warn("client: outbox entry rejected by the cluster; kept as a conflict", "seq", e.Seq, "op", e.Op, "tree", e.Tree, "key", e.Key, "err", rej)
	}
	if ev.Type != "" {
		db.events.publish(ev)
	}
	if waiting {
		var err error
		if rej != nil {
			err = rej
		}
		ch <- outcome{res: res, err: err}
	}
}

func (o *outbox) notify(seq uint64, out outcome) {
	o.mu.Lock()
	ch, ok := o.waiters[seq]
	delete(o.waiters, seq)
	o.mu.Unlock()
	if ok {
		ch <- out
	}
}

// alreadyApplied tells whether a create that the cluster says exists is
// our own, sent before and answered into a broken connection.
func (o *outbox) alreadyApplied(ctx context.Context, c *api.Client, e *outboxEntry) bool {
	rec, err := c.Get(ctx, e.Tree, e.Key)
	return err == nil && rec.CreatedBy == o.db.clientID && bytes.Equal(rec.Data, e.Data)
}

// deletedByUs tells whether a delete the cluster cannot find was already
// applied: the replica shows the record gone and no one else could have
// deleted it while we held the borrow.
func (o *outbox) deletedByUs(e *outboxEntry) bool {
	_, err := o.db.replica.Get(e.Tree, e.Key)
	return errors.Is(err, api.ErrNotFound)
}

// Conflicts returns the outbox entries the cluster rejected, oldest first.
func (db *DB) Conflicts() ([]Conflict, error) { return db.local.conflicts() }

// DiscardConflict drops a conflict: the app decided the write is not wanted.
func (db *DB) DiscardConflict(seq uint64) error { return db.local.dropConflict(seq) }

// RetryConflict sends a conflicting write again (after the app fixed its
// cause, for instance checked the record out again) and drops the
// conflict if the cluster takes it. It needs the cluster.
func (db *DB) RetryConflict(ctx context.Context, seq uint64) error {
	cs, err := db.local.conflicts()
	if err != nil {
		return err
	}
	for _, c := range cs {
		if c.Seq != seq {
			continue
		}
		op := fsm.OpCreate
		switch c.Op {
		case fsm.OpUpdate.String():
			op = fsm.OpUpdate
		case fsm.OpDelete.String():
			op = fsm.OpDelete
		}
		if !db.Online() {
			return ErrOffline
		}
		out, err := db.out.submit(ctx, &outboxEntry{Op: op, Tree: c.Tree, Key: c.Key, Schema: c.Schema, Data: c.Data})
		if err != nil {
			return err
		}
		if out.pending {
			return db.local.dropConflict(seq) // queued again: the outbox owns it now
		}
		if out.err != nil {
			return out.err
		}
		return db.local.dropConflict(seq)
	}
	return fmt.Errorf("client: no conflict %d", seq)
}
