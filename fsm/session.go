package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/storage"
)

// Exactly-once writes. A command may carry a session and a sequence
// number (Command.Session, Command.Seq). The state machine records, per
// session, the result of every sequence number it applied (accepted or
// rejected) and answers a repeat with that record (Result.Repeat) instead
// of applying the command again: a client that lost an answer sends the
// same command again and learns what happened to the first.
//
// A session is either a registered client (Session = its id; its
// sessions go when the client is removed) or an HTTP idempotency key
// (Session = the key, ReqHash = a hash of the request; a key used again
// with another request is refused with api.ErrKeyReused).
//
// Each session remembers its last SessionWindow sequence numbers; older
// ones are forgotten, lowest first, and a sequence number at or below the
// highest forgotten one that is not recorded is refused with
// api.ErrSeqForgotten: the cluster cannot tell whether it was applied, so
// it never applies it a second time.
//
// Idempotency keys are kept at least IdemKeyRetention of leader time
// (Command.Time) after their first use, unless more than MaxIdemKeys keys
// are in use: then the oldest are forgotten first. A key forgotten is new
// again.
const (
	DefaultSessionWindow    = 1024
	DefaultMaxIdemKeys      = 100_000
	DefaultIdemKeyRetention = 24 * time.Hour
	// MaxSessionID bounds Command.Session (an idempotency key included).
	MaxSessionID = 255
	// MaxReqHash bounds Command.ReqHash.
	MaxReqHash = 128
	// maxExpiredPerCommand bounds how many expired keys one command
	// forgets, so that no single apply does unbounded work.
	maxExpiredPerCommand = 64
)

// session is the session of the command being applied.
type session struct {
	kind byte
	key  []byte // storage.SessionKey
	s    storage.Session
}

// openSession checks the command's session. It returns the recorded
// result (Repeat) when the sequence number was applied before, a
// rejection when the session or sequence number is not acceptable, or
// the session to record the result in.
func (t *txn) openSession() (*session, *Result, error) {
	c := t.c
	ses := &session{kind: storage.SessionClient}
	if c.ReqHash != "" {
		ses.kind = storage.SessionIdemKey
	} else if t.knownClient(c.Session) != nil {
		rej := api.Errorf(api.CodeUnknownClient, "%s: session of client %q: the client is not registered", c.Op, c.Session)
		return nil, &Result{Err: rej}, nil
	}
	ses.key = storage.SessionKey(ses.kind, c.Session)
	s, found, err := t.memo.session(t.sessions, ses.key)
	if err != nil {
		return nil, nil, err
	}
	ses.s = s
	if found && ses.kind == storage.SessionIdemKey && ses.s.Hash != c.ReqHash {
		r, err := reject(api.Errorf(api.CodeKeyReused, "idempotency key %q was first used with a different request (%s); use a new key for a new request", c.Session, c.Op))
		return nil, r, err
	}
	var rec storage.SeqResult
	if ok, err := storage.Get(t.seqs, storage.SeqKey(ses.key, c.Seq), &rec); err != nil || ok {
		if err != nil {
			return nil, nil, err
		}
		r, err := t.repeat(&rec)
		return nil, r, err
	}
	if c.Seq <= ses.s.Floor {
		r, err := reject(api.Errorf(api.CodeSeqForgotten, "%s: sequence number %d of session %q is at or below %d, the highest the cluster forgot: it cannot tell whether it was applied, so it does not apply it", c.Op, c.Seq, c.Session, ses.s.Floor))
		return nil, r, err
	}
	if !found && ses.kind == storage.SessionIdemKey {
		if err := t.newIdemKey(ses); err != nil {
			return nil, nil, err
		}
	}
	return ses, nil, nil
}

// repeat answers a sequence number applied before with its record.
func (t *txn) repeat(rec *storage.SeqResult) (*Result, error) {
	r := &Result{Key: rec.Key, Index: rec.Index, Err: rec.Err, Version: rec.Version, Repeat: true}
	if rec.Client != "" {
		var cl api.ClientInfo
		found, err := storage.Get(t.clients, []byte(rec.Client), &cl)
		if err != nil {
			return nil, err
		}
		if found {
			r.Client = &cl
		} else {
			r.Client = &api.ClientInfo{ID: rec.Client}
		}
	}
	if rec.Range != 0 {
		var rg api.Range
		if m := t.memo.rangeAt(rec.Range); m != nil {
			rg = *m
			r.Range = &rg
		} else if found, err := storage.Get(t.ranges, storage.RangeKey(rec.Range), &rg); err != nil {
			return nil, err
		} else if found {
			r.Range = &rg
		}
	}
	return r, nil
}

// newIdemKey makes room for a new idempotency key (forgetting expired and,
// over the limit, the oldest keys) and stores it.
func (t *txn) newIdemKey(ses *session) error {
	count := storage.Uint(t.meta, storage.MetaKeySessions)
	cutoff := t.c.Time - int64(t.cfg.IdemKeyRetention)
	var drop [][]byte
	cur := t.keyTimes.Cursor()
	for k, _ := cur.First(); k != nil; k, _ = cur.Next() {
		if len(k) < 8 {
			return fmt.Errorf("%w: key time %x", storage.ErrCorrupt, k)
		}
		over := count-uint64(len(drop)) >= uint64(t.cfg.MaxIdemKeys)
		expired := int64(binary.BigEndian.Uint64(k)) < cutoff && len(drop) < maxExpiredPerCommand
		if !over && !expired {
			break
		}
		drop = append(drop, bytes.Clone(k))
	}
	for _, k := range drop {
		if err := t.keyTimes.Delete(k); err != nil {
			return err
		}
		if err := t.dropSession(k[8:]); err != nil {
			return err
		}
	}
	ses.s = storage.Session{Hash: t.c.ReqHash, Time: t.c.Time}
	if err := t.keyTimes.Put(storage.KeyTimeKey(t.c.Time, ses.key), nil); err != nil {
		return err
	}
	return storage.PutUint(t.meta, storage.MetaKeySessions, count-uint64(len(drop))+1)
}

// dropSession forgets a session and everything it recorded.
func (t *txn) dropSession(key []byte) error {
	if _, found, err := t.memo.session(t.sessions, key); err != nil || !found {
		return err
	}
	t.memo.dropSession(key)
	if err := t.sessions.Delete(key); err != nil {
		return err
	}
	prefix := storage.SeqPrefix(key)
	var keys [][]byte
	cur := t.seqs.Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := t.seqs.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// recordSeq stores the result of the command's sequence number in its
// session, forgetting the lowest ones beyond the window.
func (t *txn) recordSeq(ses *session, r *Result) error {
	c := t.c
	if ses.kind == storage.SessionClient && t.clients.Get([]byte(c.Session)) == nil {
		return nil // the command removed its own client, and the session with it
	}
	rec := storage.SeqResult{Index: t.index}
	if r.Err != nil {
		rec.Err = r.Err
	} else {
		rec.Key, rec.Version = r.Key, r.Version
		if r.Client != nil {
			rec.Client = r.Client.ID
		}
		if r.Range != nil {
			rec.Range = r.Range.Start
		}
	}
	if err := storage.Put(t.seqs, storage.SeqKey(ses.key, c.Seq), &rec); err != nil {
		return err
	}
	ses.s.Count++
	if int(ses.s.Count) > t.cfg.SessionWindow {
		prefix := storage.SeqPrefix(ses.key)
		var drop [][]byte
		cur := t.seqs.Cursor()
		for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && int(ses.s.Count)-len(drop) > t.cfg.SessionWindow; k, _ = cur.Next() {
			if len(k) != len(prefix)+8 {
				return fmt.Errorf("%w: seq key %x", storage.ErrCorrupt, k)
			}
			drop = append(drop, bytes.Clone(k))
		}
		for _, k := range drop {
			if err := t.seqs.Delete(k); err != nil {
				return err
			}
			ses.s.Floor = max(ses.s.Floor, binary.BigEndian.Uint64(k[len(prefix):]))
		}
		ses.s.Count -= uint32(len(drop))
	}
	t.memo.putSession(ses.key, ses.s)
	return nil
}

// dropClientSessions forgets the sessions of a removed client.
func (t *txn) dropClientSessions(id string) error {
	return t.dropSession(storage.SessionKey(storage.SessionClient, id))
}
