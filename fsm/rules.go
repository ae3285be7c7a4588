package fsm

import (
	"errors"
	"fmt"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/storage"
	bolt "go.etcd.io/bbolt"
)

// RulesVersion is the version of the rules this code applies commands
// by. The replicated state records the rules version the cluster runs
// (OpSetRules); every replica, server or client, applies the log only
// while that version is one it knows, so replicas of different versions
// never compute different states from the same log: a replica that meets
// newer rules stops with ErrNeedsUpgrade instead.
//
// Versions:
//
//	1  the rules before they were versioned (a state without the key)
//	2  exactly-once sessions (Command.Session, Seq, ReqHash), the
//	   replicated list of removed members, the expiry index
//	3  API tokens and roles (OpCreateToken, OpRevokeToken, the tokens
//	   bucket, Command.Token binding a writer token on register-client)
//	4  batch entries (OpBatch, BatchRules): several commands in one log
//	   entry, each applied as its own entry would be
const RulesVersion uint32 = 4

// ErrNeedsUpgrade stops a replica whose code is older than the rules the
// cluster runs: it must not apply the log with older rules. Upgrade it
// (a client: the application; a server: kvnode) and start it again.
var ErrNeedsUpgrade = errors.New("fsm: the cluster runs newer rules than this code knows: upgrade it")

// Rules returns the rules version of the state (1 for a state from
// before versioning).
func (f *FSM) Rules() uint32 { return f.rules.Load() }

// rulesOf reads the rules version of a state.
func rulesOf(tx *bolt.Tx) uint32 {
	v := storage.Uint(tx.Bucket(storage.BucketMeta), storage.MetaRules)
	if v == 0 {
		return 1
	}
	return uint32(min(v, 1<<32-1))
}

// checkRules refuses to go on with a state or a command that needs newer
// rules than this code's.
func checkRules(state uint32, c *Command) error {
	if state > RulesVersion {
		return fmt.Errorf("%w (cluster rules %d, this code knows up to %d)", ErrNeedsUpgrade, state, RulesVersion)
	}
	if c != nil && (c.Op == OpSetRules || c.Op == OpSetCluster) && c.Rules > RulesVersion {
		return fmt.Errorf("%w (the cluster moves to rules %d, this code knows up to %d)", ErrNeedsUpgrade, c.Rules, RulesVersion)
	}
	return nil
}

// setRules raises the cluster's rules version; it never lowers it.
func (t *txn) setRules() (*Result, error) {
	if t.c.Rules == 0 {
		return reject(api.Errorf(api.CodeInvalid, "set-rules: no version"))
	}
	if t.c.Rules <= rulesOf(t.tx) {
		return &Result{}, nil
	}
	return &Result{}, storage.PutUint(t.meta, storage.MetaRules, uint64(t.c.Rules))
}

// needRules rejects a command that uses a feature of rules version v
// while the state runs older rules: code of that older version rejects
// it too (it does not know the op), so every replica agrees.
func (t *txn) needRules(v uint32, what string) *api.Error {
	if rulesOf(t.tx) >= v {
		return nil
	}
	return api.Errorf(api.CodeInvalid, "%s needs cluster rules %d (the cluster runs %d until every server is upgraded)", what, v, rulesOf(t.tx))
}
