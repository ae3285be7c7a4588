package fsm

import (
	"bytes"
	"fmt"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/schema"
	"github.com/shelfdb/shelf/lease"
	"github.com/shelfdb/shelf/storage"
	bolt "go.etcd.io/bbolt"
)

// Limits checked by the state machine. They are part of the replicated
// rules: changing them changes which commands are accepted.
const (
	MaxTreeName   = 128
	MaxClientID   = 64
	MaxClientName = 256
	MaxRangeSize  = 1_000_000
	MaxReason     = 1024
)

// ValidTreeName returns nil if name can name a tree: 1 to 128 characters
// of letters, digits, '.', '_' and '-' (ASCII), starting with a letter or
// digit. It runs on every write and read of a tree: a loop, not a regexp.
func ValidTreeName(name string) error {
	ok := len(name) > 0 && len(name) <= MaxTreeName
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		ok = alnum || i > 0 && (c == '.' || c == '_' || c == '-')
	}
	if !ok {
		return api.Errorf(api.CodeInvalid, "invalid tree name %q: want 1-%d letters, digits, '.', '_' or '-', starting with a letter or digit", name, MaxTreeName)
	}
	return nil
}

// tx bundles the buckets of one write transaction and the command's time.
type txn struct {
	tx       *bolt.Tx
	meta     *bolt.Bucket
	trees    *bolt.Bucket
	treeInfo *bolt.Bucket
	clients  *bolt.Bucket
	borrows  *bolt.Bucket
	ranges   *bolt.Bucket
	schemas  *bolt.Bucket
	audit    *bolt.Bucket
	sessions *bolt.Bucket
	seqs     *bolt.Bucket
	keyTimes *bolt.Bucket
	cfg      *Config
	memo     *memo  // values shared by the commands of this write transaction
	auditSeq uint16 // audit entries written by this command so far
	index    uint64
	c        *Command
	events   []api.Event
}

// emit records an event of the command being applied. Events of a
// rejected command are dropped with it.
func (t *txn) emit(typ api.EventType, key api.Key, fill ...func(*api.Event)) {
	e := api.Event{Index: t.index, Type: typ, Tree: t.c.Tree, Key: key, Client: t.c.Client, Time: unixTime(t.c.Time)}
	for _, f := range fill {
		f(&e)
	}
	t.events = append(t.events, e)
}

func reject(err *api.Error) (*Result, error) { return &Result{Err: err}, nil }

// applyCommand decodes and applies one log entry: a command, or a batch
// entry (OpBatch) of several. A rejection is returned in Result.Err with
// the state untouched; err is a storage failure.
func (f *FSM) applyCommand(base *txn, index uint64, data []byte) (*Result, error) {
	tx := base.tx
	c, derr := DecodeCommand(data)
	if derr != nil {
		return reject(derr.(*api.Error))
	}
	rules := rulesOf(tx)
	if err := checkRules(rules, c); err != nil {
		return nil, err
	}
	if c.Op == OpBatch {
		return f.applyBatch(base, index, c, rules)
	}
	if rules >= BatchRules && len(c.Batch) > 0 {
		// (Code of older rules ignores the field it does not know.)
		return reject(api.Errorf(api.CodeInvalid, "%s: only a batch entry carries commands", c.Op))
	}
	return f.applyOne(base.forCommand(index, c), rules)
}

// applyBatch applies the commands of a batch entry in order, each as if
// it were an entry of its own at index: its own checks, rejection,
// events and session. A rejected command changes nothing and does not
// stop the others. Under rules older than BatchRules every command is
// rejected, as code of those rules rejects the unknown op.
func (f *FSM) applyBatch(base *txn, index uint64, c *Command, rules uint32) (*Result, error) {
	out := &Result{Index: index, Batch: make([]*Result, len(c.Batch))}
	var whole *api.Error
	switch {
	case rules < BatchRules:
		whole = api.Errorf(api.CodeInvalid, "batch entries need cluster rules %d (the cluster runs %d until every server is upgraded)", BatchRules, rules)
	case len(c.Batch) == 0:
		whole = api.Errorf(api.CodeInvalid, "batch: no commands")
	}
	if whole != nil {
		out.Err = whole
		for i := range out.Batch {
			out.Batch[i] = &Result{Err: whole, Index: index}
		}
		return out, nil
	}
	var auditSeq uint16 // audit keys are (record, index, seq): unique across the entry
	for i := range c.Batch {
		cmd := &c.Batch[i]
		var r *Result
		if !Batchable(cmd) || len(cmd.Batch) > 0 {
			r = &Result{Err: api.Errorf(api.CodeInvalid, "%s cannot be part of a batch entry", cmd.Op)}
		} else {
			t := base.forCommand(index, cmd)
			t.auditSeq = auditSeq
			var err error
			if r, err = f.applyOne(t, rules); err != nil {
				return nil, fmt.Errorf("command %d of the batch: %w", i, err)
			}
			auditSeq = t.auditSeq
		}
		if !r.Repeat {
			r.Index = index
		}
		out.Batch[i] = r
		if r.Err == nil {
			out.Events = append(out.Events, r.Events...)
			out.tokens = out.tokens || r.tokens
		}
	}
	return out, nil
}

// newTxn returns the state of write transaction tx for applying commands:
// its buckets and its memo. forCommand makes, from it, the state for
// applying one command.
func (f *FSM) newTxn(tx *bolt.Tx) *txn {
	return &txn{
		tx:       tx,
		memo:     &memo{},
		meta:     tx.Bucket(storage.BucketMeta),
		trees:    tx.Bucket(storage.BucketTrees),
		treeInfo: tx.Bucket(storage.BucketTreeInfo),
		clients:  tx.Bucket(storage.BucketClients),
		borrows:  tx.Bucket(storage.BucketBorrows),
		ranges:   tx.Bucket(storage.BucketRanges),
		schemas:  tx.Bucket(storage.BucketSchemas),
		audit:    tx.Bucket(storage.BucketAudit),
		sessions: tx.Bucket(storage.BucketSessions),
		seqs:     tx.Bucket(storage.BucketSeqs),
		keyTimes: tx.Bucket(storage.BucketKeyTimes),
		cfg:      &f.cfg,
	}
}

// forCommand returns the state for applying c at index in t's transaction.
func (t *txn) forCommand(index uint64, c *Command) *txn {
	n := *t
	n.index, n.c, n.auditSeq, n.events = index, c, 0, nil
	return &n
}

// applyOne validates and applies one command (t.c) under rules.
func (f *FSM) applyOne(t *txn, rules uint32) (*Result, error) {
	r, err := f.applyChecked(t, rules)
	if err == nil && f.flushEachCommand {
		err = t.memo.flush(t.tx)
	}
	return r, err
}

// applyChecked is applyOne without the test switch flushEachCommand.
func (f *FSM) applyChecked(t *txn, rules uint32) (*Result, error) {
	c := t.c
	if rej := validate(c, f.cfg.MaxRecordSize, rules >= 2); rej != nil {
		return reject(rej)
	}
	var ses *session
	if (c.Session != "" || c.Seq != 0 || c.ReqHash != "") && rules >= 2 {
		// (Under rules 1 a session is ignored, as code of that version
		// does: the command is applied as a plain one.)
		s, r, err := t.openSession()
		if r != nil || err != nil {
			return r, err // a repeat, or a session refused
		}
		ses = s
	}
	r, err := t.dispatch()
	if err != nil || r == nil {
		return r, err
	}
	if r.Err == nil {
		r.Events = t.events
		r.tokens = c.Op == OpCreateToken || c.Op == OpRevokeToken || (c.Op == OpRegisterClient && c.Token != "")
	}
	if ses != nil {
		if err := t.recordSeq(ses, r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// dispatch applies the command, which Validate accepted: the op's own
// checks are the ones that need the state.
func (t *txn) dispatch() (*Result, error) {
	switch t.c.Op {
	case OpSetCluster:
		return t.setCluster()
	case OpRegisterClient:
		return t.registerClient()
	case OpGrantRange:
		return t.grantRange()
	case OpCreate:
		return t.create()
	case OpUpdate:
		return t.update()
	case OpDelete:
		return t.delete()
	case OpBorrow:
		return t.borrow()
	case OpReturn:
		return t.returnBorrow(false)
	case OpForceReturn:
		return t.returnBorrow(true)
	case OpRelease:
		return t.release()
	case OpSetState:
		return t.setState()
	case OpRevise:
		return t.revise()
	case OpRegisterSchema:
		return t.registerSchema()
	case OpClientSeen:
		return t.clientSeen()
	case OpExpire:
		return t.expire()
	case OpTakeOver:
		return t.takeOver()
	case OpRemoveClient:
		return t.removeClient()
	case OpRemoveMember:
		if err := t.needRules(2, "remove-member"); err != nil {
			return reject(err)
		}
		return t.removeMember()
	case OpReadmitMember:
		if err := t.needRules(2, "readmit-member"); err != nil {
			return reject(err)
		}
		return t.readmitMember()
	case OpSetRules:
		return t.setRules()
	case OpCreateToken:
		if err := t.needRules(3, "create-token"); err != nil {
			return reject(err)
		}
		return t.createToken()
	case OpRevokeToken:
		if err := t.needRules(3, "revoke-token"); err != nil {
			return reject(err)
		}
		return t.revokeToken()
	}
	return reject(api.Errorf(api.CodeInvalid, "unknown op %d", t.c.Op))
}

func (t *txn) setCluster() (*Result, error) {
	id := t.c.Cluster
	if id == "" || len(id) > MaxClientID {
		return reject(api.Errorf(api.CodeInvalid, "set-cluster: invalid cluster id %q", id))
	}
	if cur := string(t.meta.Get(storage.MetaCluster)); cur != "" {
		if cur != id {
			return reject(api.Errorf(api.CodeWrongCluster, "set-cluster: state belongs to cluster %s, not %s", cur, id))
		}
		return &Result{}, nil
	}
	if t.c.Rules > 0 {
		// A new cluster starts with the rules of the code that created it.
		if err := storage.PutUint(t.meta, storage.MetaRules, uint64(t.c.Rules)); err != nil {
			return nil, err
		}
	}
	return &Result{cluster: id}, t.meta.Put(storage.MetaCluster, []byte(id))
}

// knownClient refuses a command naming a client that is not registered.
// It only looks the client up; client decodes it too.
func (t *txn) knownClient(id string) *api.Error {
	if id != "" && t.clients.Get([]byte(id)) != nil {
		return nil
	}
	return t.clientRefused(id)
}

func (t *txn) client(id string) (*api.ClientInfo, *api.Error, error) {
	var cl api.ClientInfo
	if id != "" {
		found, err := storage.Get(t.clients, []byte(id), &cl)
		if err != nil {
			return nil, nil, err
		}
		if found {
			return &cl, nil, nil
		}
	}
	return nil, t.clientRefused(id), nil
}

// clientRefused says why a command naming client id, which is not
// registered, is refused.
func (t *txn) clientRefused(id string) *api.Error {
	if id == "" {
		return api.Errorf(api.CodeInvalid, "%s: no client id given", t.c.Op)
	}
	return api.Errorf(api.CodeUnknownClient, "%s: client %q is not registered", t.c.Op, id)
}

func (t *txn) registerClient() (*Result, error) {
	c := t.c
	if c.Token != "" {
		if rej, err := t.bindToken(); rej != nil || err != nil {
			return &Result{Err: rej}, err
		}
	}
	var cl api.ClientInfo
	found, err := storage.Get(t.clients, []byte(c.Client), &cl)
	if err != nil {
		return nil, err
	}
	if found && cl.Name == c.Name {
		return &Result{Client: &cl}, nil
	}
	if !found {
		cl = api.ClientInfo{ID: c.Client, Registered: time.Unix(0, c.Time).UTC()}
	}
	cl.Name = c.Name
	t.emit(api.EventClient, api.Key{})
	return &Result{Client: &cl}, storage.Put(t.clients, []byte(c.Client), &cl)
}

// clientSeen records when a client's replica was last seen (the command's
// time) and the applied index it reported. It changes no record, so it
// emits no event.
func (t *txn) clientSeen() (*Result, error) {
	c := t.c
	cl, rej, err := t.client(c.Client)
	if rej != nil || err != nil {
		return &Result{Err: rej}, err
	}
	cl.LastSeen = unixTime(c.Time)
	cl.ReplicaIndex = c.Applied
	return &Result{Client: cl}, storage.Put(t.clients, []byte(c.Client), cl)
}

// allocate takes n fresh ids from the cluster-wide counter. Every id is
// handed out once, ever: ranges and operator creates share the counter.
func (t *txn) allocate(n uint64) (uint64, error) {
	next := storage.Uint(t.meta, storage.MetaNextID)
	if next == 0 {
		next = 1
	}
	return next, storage.PutUint(t.meta, storage.MetaNextID, next+n)
}

func (t *txn) grantRange() (*Result, error) {
	c := t.c
	if rej := t.knownClient(c.Client); rej != nil {
		return reject(rej)
	}
	start, err := t.allocate(c.Size)
	if err != nil {
		return nil, err
	}
	r := api.Range{Start: start, End: start + c.Size, Client: c.Client, Granted: time.Unix(0, c.Time).UTC(), Next: start}
	t.emit(api.EventRange, api.Key{ID: start})
	return &Result{Range: &r}, storage.Put(t.ranges, storage.RangeKey(start), &r)
}

// rangeOf returns the range containing id, if any.
func (t *txn) rangeOf(id uint64) (*api.Range, error) {
	if r := t.memo.rangeContaining(id); r != nil {
		return r, nil
	}
	// The range containing id is the last one starting at or before id.
	c := t.ranges.Cursor()
	var k, v []byte
	if id == ^uint64(0) {
		k, v = c.Last()
	} else if k, _ = c.Seek(storage.RangeKey(id + 1)); k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	if k == nil {
		return nil, nil
	}
	var r api.Range
	if err := api.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("%w: range %x: %v", storage.ErrCorrupt, k, err)
	}
	if !r.Contains(id) {
		return nil, nil
	}
	return t.memo.keepRange(r), nil
}

func (t *txn) checkSchema(tree string, v uint32) *api.Error {
	if v != 0 && t.schemas.Get(storage.SchemaKey(tree, v)) == nil {
		return api.Errorf(api.CodeUnknownSchema, "%s: schema version %d is not registered for tree %q", t.c.Op, v, tree)
	}
	return nil
}

func (t *txn) name() string { return fmt.Sprintf("record %s/%s", t.c.Tree, t.c.Key) }

func (t *txn) create() (*Result, error) {
	c := t.c
	if c.Key.Rev > 1 {
		return reject(api.Errorf(api.CodeInvalid, "create: revision %d: new records start at revision 1 (use revise)", c.Key.Rev))
	}
	if rej := t.checkSchema(c.Tree, c.Schema); rej != nil {
		return reject(rej)
	}
	key := api.Key{ID: c.Key.ID, Rev: 1}
	var rng *api.Range
	if key.ID != 0 {
		if rej := t.knownClient(c.Client); rej != nil {
			return reject(rej)
		}
		r, err := t.rangeOf(key.ID)
		if err != nil {
			return nil, err
		}
		if r == nil || r.Client != c.Client || r.Retired {
			return reject(api.Errorf(api.CodeNotInRange, "create: id %d is not in a live range granted to client %s", key.ID, c.Client))
		}
		rng = r
	} else if c.Client != "" {
		if rej := t.knownClient(c.Client); rej != nil {
			return reject(rej)
		}
	}
	b, err := t.tree(c.Tree, true)
	if err != nil {
		return nil, err
	}
	if key.ID != 0 && b.Get(storage.RecordKey(key)) != nil {
		return reject(api.Errorf(api.CodeExists, "create: record %s/%s already exists", c.Tree, key))
	}
	// Validation done: from here on the command succeeds.
	if key.ID == 0 {
		if key.ID, err = t.allocate(1); err != nil {
			return nil, err
		}
	}
	if rng != nil {
		rng.Used++
		rng.Next = max64(rng.Next, key.ID+1)
		t.memo.putRange(rng.Start)
	}
	rec := storage.Record{Schema: c.Schema, Data: c.Data, CreatedBy: c.Client, Created: c.Time,
		UpdatedBy: c.Client, Updated: c.Time, Index: t.index}
	if err := storage.Put(b, storage.RecordKey(key), &rec); err != nil {
		return nil, err
	}
	t.emit(api.EventCreated, key)
	return &Result{Key: key}, t.count(c.Tree, +1)
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// treeFill is the fill percent of tree buckets' pages. Records are
// mostly appended (ids grow within each client's range), and bbolt's
// default of 0.5 then leaves every page half empty: the state file, every
// snapshot and every full sync of a new replica twice the size.
const treeFill = 0.9

// tree returns a tree's bucket, creating it (and its info) if create.
func (t *txn) tree(name string, create bool) (*bolt.Bucket, error) {
	if b := t.trees.Bucket([]byte(name)); b != nil || !create {
		if b != nil {
			b.FillPercent = treeFill
		}
		return b, nil
	}
	b, err := t.trees.CreateBucket([]byte(name))
	if err != nil {
		return nil, err
	}
	b.FillPercent = treeFill
	t.memo.forgetCount(name)
	return b, storage.Put(t.treeInfo, []byte(name), &storage.TreeInfo{Created: t.c.Time})
}

func (t *txn) count(tree string, delta int64) error {
	info, err := t.memo.count(t.treeInfo, tree)
	if err != nil {
		return err
	}
	info.Records = uint64(int64(info.Records) + delta)
	return nil
}

// record loads the command's record and its borrow.
func (t *txn) record() (*bolt.Bucket, *storage.Record, *storage.Borrow, *api.Error, error) {
	c := t.c
	if err := ValidTreeName(c.Tree); err != nil {
		return nil, nil, nil, err.(*api.Error), nil
	}
	if c.Key.ID == 0 || c.Key.Rev == 0 {
		return nil, nil, nil, api.Errorf(api.CodeInvalid, "%s: invalid key %s", c.Op, c.Key), nil
	}
	b := t.trees.Bucket([]byte(c.Tree))
	if b == nil {
		return nil, nil, nil, api.Errorf(api.CodeTreeNotFound, "%s: tree %q does not exist", c.Op, c.Tree), nil
	}
	b.FillPercent = treeFill
	var rec storage.Record
	found, err := storage.Get(b, storage.RecordKey(c.Key), &rec)
	if err != nil || !found {
		if err == nil {
			return nil, nil, nil, api.Errorf(api.CodeNotFound, "%s: %s does not exist", c.Op, t.name()), nil
		}
		return nil, nil, nil, nil, err
	}
	var bw storage.Borrow
	found, err = storage.Get(t.borrows, storage.BorrowKey(c.Tree, c.Key), &bw)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if !found {
		return b, &rec, nil, nil, nil
	}
	return b, &rec, &bw, nil, nil
}

func (t *txn) released(rec *storage.Record) *api.Error {
	if rec.Released {
		return api.Errorf(api.CodeReleased, "%s: %s is released and cannot change (revise it to make a new revision)", t.c.Op, t.name())
	}
	return nil
}

// editable loads the command's record for a change that needs the borrow:
// the record must exist, must not be released, and must be held by the
// acting client.
func (t *txn) editable() (*bolt.Bucket, *storage.Record, *api.Error, error) {
	b, rec, bw, rej, err := t.record()
	if rej != nil || err != nil {
		return nil, nil, rej, err
	}
	if rej := t.released(rec); rej != nil {
		return nil, nil, rej, nil
	}
	if rej := lease.CanEdit(bw, t.c.Client, t.name(), t.c.Time); rej != nil {
		return nil, nil, rej, nil
	}
	return b, rec, nil, nil
}

func (t *txn) put(b *bolt.Bucket, rec *storage.Record) error {
	rec.Index = t.index
	return storage.Put(b, storage.RecordKey(t.c.Key), rec)
}

func (t *txn) update() (*Result, error) {
	c := t.c
	b, rec, rej, err := t.editable()
	if rej != nil || err != nil {
		return &Result{Err: rej}, err
	}
	if rej := t.checkSchema(c.Tree, c.Schema); rej != nil {
		return reject(rej)
	}
	rec.Data, rec.Schema, rec.Updated, rec.UpdatedBy = c.Data, c.Schema, c.Time, c.Client
	t.emit(api.EventUpdated, c.Key)
	return &Result{Key: c.Key}, t.put(b, rec)
}

func (t *txn) delete() (*Result, error) {
	c := t.c
	b, _, rej, err := t.editable()
	if rej != nil || err != nil {
		return &Result{Err: rej}, err
	}
	if err := b.Delete(storage.RecordKey(c.Key)); err != nil {
		return nil, err
	}
	if err := t.endBorrow(c.Tree, c.Key, storage.Audit{Action: string(api.AuditDeleted), Holder: c.Client}); err != nil {
		return nil, err
	}
	t.emit(api.EventDeleted, c.Key)
	return &Result{Key: c.Key}, t.count(c.Tree, -1)
}

func (t *txn) borrow() (*Result, error) {
	c := t.c
	_, rec, bw, rej, err := t.record()
	if rej != nil || err != nil {
		return &Result{Err: rej}, err
	}
	if rej := t.released(rec); rej != nil {
		return reject(rej)
	}
	if rej := t.knownClient(c.Client); rej != nil {
		return reject(rej)
	}
	holder := ""
	if bw != nil {
		if h, _, err := t.client(bw.Client); err != nil {
			return nil, err
		} else if h != nil {
			holder = fmt.Sprintf("%q", h.Name)
		}
	}
	if rej := lease.CanBorrow(bw, c.Client, holder, t.name(), c.Time); rej != nil {
		return reject(rej)
	}
	nb := storage.Borrow{Client: c.Client, Since: c.Time}
	if c.TTL > 0 {
		nb.Expires = c.Time + c.TTL
	}
	action := api.AuditBorrowed
	switch {
	case lease.Held(bw, c.Time):
		nb.Since = bw.Since // renewal keeps the original start
		action = api.AuditRenewed
	case bw != nil:
		// The previous borrow ran out and no expire command removed it
		// yet: it ends here, and the history says so.
		if err := t.expired(c.Tree, c.Key, bw); err != nil {
			return nil, err
		}
	}
	t.emit(api.EventBorrowed, c.Key)
	if err := t.addAudit(c.Tree, c.Key, storage.Audit{Action: string(action), Client: c.Client, Expires: nb.Expires}); err != nil {
		return nil, err
	}
	return &Result{Key: c.Key}, t.putBorrow(c.Tree, c.Key, &nb)
}

func (t *txn) returnBorrow(force bool) (*Result, error) {
	c := t.c
	_, _, bw, rej, err := t.record()
	if rej != nil || err != nil {
		return &Result{Err: rej}, err
	}
	if force {
		if bw == nil {
			return reject(api.Errorf(api.CodeNotBorrowed, "force-return: %s is not borrowed", t.name()))
		}
	} else if rej := lease.CanEdit(bw, c.Client, t.name(), c.Time); rej != nil && (bw == nil || bw.Client != c.Client) {
		// An expired borrow may still be returned by its holder.
		return reject(rej)
	}
	if !lease.Held(bw, c.Time) {
		// Its time ran out before: it ends as expired, whoever asks.
		return &Result{Key: c.Key}, t.expired(c.Tree, c.Key, bw)
	}
	t.emit(api.EventReturned, c.Key, func(e *api.Event) { e.Holder, e.Forced, e.Reason = bw.Client, force, c.Reason })
	entry := storage.Audit{Action: string(api.AuditReturned), Holder: bw.Client}
	if force {
		entry.Action, entry.Reason = string(api.AuditForced), c.Reason
	}
	return &Result{Key: c.Key}, t.endBorrow(c.Tree, c.Key, entry)
}

func (t *txn) release() (*Result, error) {
	c := t.c
	b, rec, rej, err := t.editable()
	if rej != nil || err != nil {
		return &Result{Err: rej}, err
	}
	rec.Released, rec.Updated, rec.UpdatedBy = true, c.Time, c.Client
	if err := t.put(b, rec); err != nil {
		return nil, err
	}
	// A released record cannot be edited, so its borrow ends with release.
	t.emit(api.EventReleased, c.Key)
	t.emit(api.EventReturned, c.Key, func(e *api.Event) { e.Holder = c.Client })
	return &Result{Key: c.Key}, t.endBorrow(c.Tree, c.Key, storage.Audit{Action: string(api.AuditReleased), Holder: c.Client})
}

func (t *txn) setState() (*Result, error) {
	c := t.c
	b, rec, bw, rej, err := t.record()
	if rej != nil || err != nil {
		return &Result{Err: rej}, err
	}
	if lease.Held(bw, c.Time) && bw.Client != c.Client {
		return reject(api.Errorf(api.CodeBorrowed, "set-state: %s is borrowed by client %s", t.name(), bw.Client))
	}
	if rec.State == c.State {
		return &Result{Key: c.Key}, nil
	}
	rec.State, rec.Updated, rec.UpdatedBy = c.State, c.Time, c.Client
	t.emit(api.EventStateChanged, c.Key, func(e *api.Event) { e.State = c.State })
	return &Result{Key: c.Key}, t.put(b, rec)
}

func (t *txn) revise() (*Result, error) {
	c := t.c
	b, rec, _, rej, err := t.record()
	if rej != nil || err != nil {
		return &Result{Err: rej}, err
	}
	if !rec.Released {
		return reject(api.Errorf(api.CodeNotReleased, "revise: %s is a draft; release it before making a new revision", t.name()))
	}
	if c.Key.Rev == ^uint32(0) {
		return reject(api.Errorf(api.CodeInvalid, "revise: %s is at the last possible revision", t.name()))
	}
	if c.Client != "" {
		if rej := t.knownClient(c.Client); rej != nil {
			return reject(rej)
		}
	}
	next := api.Key{ID: c.Key.ID, Rev: c.Key.Rev + 1}
	if k, _ := b.Cursor().Seek(storage.RecordKey(next)); k != nil {
		if nk, err := storage.ParseRecordKey(k); err == nil && nk.ID == next.ID {
			return reject(api.Errorf(api.CodeExists, "revise: revision %s already exists", nk))
		}
	}
	draft := storage.Record{Schema: rec.Schema, Data: rec.Data, CreatedBy: c.Client, Created: c.Time,
		UpdatedBy: c.Client, Updated: c.Time, Index: t.index}
	if err := storage.Put(b, storage.RecordKey(next), &draft); err != nil {
		return nil, err
	}
	if c.Client != "" {
		// The reviser holds the new draft, ready to edit it.
		if err := t.putBorrow(c.Tree, next, &storage.Borrow{Client: c.Client, Since: c.Time}); err != nil {
			return nil, err
		}
	}
	t.emit(api.EventCreated, next)
	if c.Client != "" {
		t.emit(api.EventBorrowed, next)
	}
	return &Result{Key: next}, t.count(c.Tree, +1)
}

func (t *txn) registerSchema() (*Result, error) {
	c := t.c
	def, err := schema.Decode(c.Data)
	if err != nil {
		return reject(api.Errorf(api.CodeInvalid, "register-schema for tree %q: %v", c.Tree, err))
	}
	// A definition registered before (by any version, old code included)
	// gets its version back; a new one is checked against all of them.
	var history []schema.Definition
	prefix := storage.TreePrefix(c.Tree)
	cur := t.schemas.Cursor()
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		if len(k) != len(prefix)+4 {
			continue
		}
		var s api.Schema
		if err := api.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("%w: schema %x: %v", storage.ErrCorrupt, k, err)
		}
		if s.Hash == c.Hash {
			return &Result{Version: s.Version}, nil
		}
		// A definition registered before definitions were checked (any
		// bytes were accepted then) cannot take part in the check; it
		// still counts as a version.
		old, err := schema.Decode(s.Definition)
		if err != nil {
			old = schema.Definition{}
		}
		history = append(history, old)
	}
	if err := schema.Check(c.Tree, history, def); err != nil {
		return reject(api.Errorf(api.CodeIncompatible, "%v", err))
	}
	if _, err := t.tree(c.Tree, true); err != nil {
		return nil, err
	}
	s := api.Schema{Tree: c.Tree, Version: uint32(len(history)) + 1, Hash: c.Hash, Definition: c.Data, Registered: time.Unix(0, c.Time).UTC()}
	t.emit(api.EventSchema, api.Key{}, func(e *api.Event) { e.Version = s.Version })
	return &Result{Version: s.Version}, storage.Put(t.schemas, storage.SchemaKey(c.Tree, s.Version), &s)
}
