// Package fsm is Shelf's deterministic state machine: it validates and
// applies log entries (Command) to the bbolt state laid out by package
// storage, and answers reads from that state. Servers run it under raft
// (see package cluster); client replicas run the same code on the same
// committed entries, so a replica at index N equals a server at index N.
//
// Apply never reads the clock, the network or random numbers: everything
// that must agree across replicas travels in the Command. The applied log
// index is stored in the same bbolt transaction as the change it belongs
// to, so an entry replayed after a crash is recognised and skipped.
package fsm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shelfdb/shelf/internal/wake"
	"github.com/shelfdb/shelf/storage"
	bolt "go.etcd.io/bbolt"
)

// DefaultMaxRecordSize is the largest record value accepted by default.
const DefaultMaxRecordSize = 1 << 20

// Config configures an FSM.
type Config struct {
	// Path is the bbolt file; created if missing.
	Path string
	// Logger receives the FSM's logs; slog.Default() if nil.
	Logger *slog.Logger
	// MaxRecordSize caps a record's value (and a schema definition) in
	// bytes; DefaultMaxRecordSize if 0. Every replica must use the same
	// value, so it is a cluster-wide constant in practice.
	MaxRecordSize int
	// NoSync skips the fsync of each commit: for a state that can be
	// rebuilt from elsewhere (a server's state, from its snapshots and
	// raft log), and for tests. The file is fsync'ed on Close, and a
	// marker beside it (MarkerPath) records whether it was closed
	// cleanly: Open refuses, with ErrUntrusted, a file that was not and
	// that the machine may have lost pages of since (another boot, see
	// BootID). A process that dies without Close loses nothing (the
	// kernel keeps what it wrote), and the log replays what is missing.
	NoSync bool
	// BootID identifies the running boot of the machine for the marker of
	// NoSync; when empty it is read from /proc/sys/kernel/random/boot_id
	// (empty where there is none: then every unclean stop counts as a
	// possible machine crash). Tests set it to simulate a reboot.
	BootID string
	// SessionWindow is how many sequence numbers each exactly-once
	// session remembers (DefaultSessionWindow if 0); MaxIdemKeys how many
	// idempotency keys are kept at most (DefaultMaxIdemKeys if 0), and
	// IdemKeyRetention how long at least, in leader time, unless over
	// MaxIdemKeys (DefaultIdemKeyRetention if 0). Like MaxRecordSize they
	// are replicated rules: every replica must use the same values, so
	// only tests change them.
	SessionWindow    int
	MaxIdemKeys      int
	IdemKeyRetention time.Duration
}

// FSM is the state machine over one bbolt file. Reads may run concurrently
// with each other and with Apply; Apply, ApplyBatch and Restore are
// serialised internally.
type FSM struct {
	cfg Config
	log *slog.Logger

	applyMu sync.Mutex   // serialises Apply, ApplyBatch and Restore
	dbMu    sync.RWMutex // guards db against the swap in Restore
	db      *bolt.DB

	applied atomic.Uint64
	rules   atomic.Uint32
	cluster atomic.Pointer[string]
	tokens  atomic.Pointer[tokenCache]

	applyWake wake.Signal // notified whenever applied grows

	hook atomic.Pointer[Hook]

	closed bool // Close ran; guarded by applyMu and dbMu

	// flushEachCommand writes the memo back after every command, as the
	// state machine did before it had one: tests compare the two.
	flushEachCommand bool
}

// Entry is one log entry handed to ApplyBatch. Data nil marks an entry that
// is not a command (a raft configuration change): it only advances the
// applied index.
type Entry struct {
	Index uint64
	Data  []byte
}

// Open opens or creates the state file at cfg.Path.
func Open(cfg Config) (*FSM, error) {
	if cfg.Path == "" {
		return nil, errors.New("fsm: Config.Path is empty")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxRecordSize <= 0 {
		cfg.MaxRecordSize = DefaultMaxRecordSize
	}
	if cfg.SessionWindow <= 0 {
		cfg.SessionWindow = DefaultSessionWindow
	}
	if cfg.MaxIdemKeys <= 0 {
		cfg.MaxIdemKeys = DefaultMaxIdemKeys
	}
	if cfg.IdemKeyRetention <= 0 {
		cfg.IdemKeyRetention = DefaultIdemKeyRetention
	}
	if cfg.BootID == "" {
		cfg.BootID = currentBootID()
	}
	last, err := checkMarker(cfg.Path, cfg.BootID)
	if err != nil {
		return nil, err
	}
	if last == closeSameBoot {
		cfg.Logger.Warn("fsm: state file was not closed cleanly, but the machine has not restarted since: "+
			"the kernel kept every page written, so the file is consistent at its last commit; the log replays what follows",
			"file", cfg.Path)
	}
	if cfg.NoSync {
		// Durable before the first commit that is not fsync'ed.
		if err := writeMarker(cfg.Path, marker{State: markerOpen, BootID: cfg.BootID, PID: os.Getpid(), Time: time.Now().UTC()}); err != nil {
			return nil, err
		}
	}
	// After a clean close, with the file as it was left, only the cheap
	// checks run: the full one reads every page in use, seconds at a
	// million records.
	db, err := storage.Open(cfg.Path, storage.Options{NoSync: cfg.NoSync, Shallow: last == closeUntouched})
	if err != nil {
		return nil, err
	}
	f := &FSM{cfg: cfg, log: cfg.Logger, db: db}
	if err := f.loadMeta(); err != nil {
		db.Close()
		return nil, err
	}
	return f, nil
}

func (f *FSM) loadMeta() error {
	return f.db.View(func(tx *bolt.Tx) error {
		if err := storage.Check(tx); err != nil {
			return err
		}
		meta := tx.Bucket(storage.BucketMeta)
		f.applied.Store(storage.Uint(meta, storage.MetaApplied))
		f.rules.Store(rulesOf(tx))
		id := string(meta.Get(storage.MetaCluster))
		f.cluster.Store(&id)
		tc, err := loadTokens(tx)
		if err != nil {
			return fmt.Errorf("fsm: reading the tokens: %w", err)
		}
		f.tokens.Store(tc)
		return nil
	})
}

// Close closes the state file. With Config.NoSync it fsyncs the file
// first and then marks it closed cleanly.
func (f *FSM) Close() error {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	f.dbMu.Lock()
	defer f.dbMu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	if !f.cfg.NoSync {
		return f.db.Close()
	}
	if err := f.db.Sync(); err != nil {
		f.db.Close()
		return fmt.Errorf("fsm: sync %s: %w", f.cfg.Path, err)
	}
	if err := f.db.Close(); err != nil {
		return fmt.Errorf("fsm: close %s: %w", f.cfg.Path, err)
	}
	stamp, _ := fileStamp(f.cfg.Path)
	return writeMarker(f.cfg.Path, marker{State: markerClean, BootID: f.cfg.BootID, PID: os.Getpid(), Time: time.Now().UTC(), Stamp: stamp})
}

// Path returns the state file's path.
func (f *FSM) Path() string { return f.cfg.Path }

// AppliedIndex returns the index of the last applied log entry.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// ClusterID returns the cluster id, or "" before OpSetCluster was applied.
func (f *FSM) ClusterID() string { return *f.cluster.Load() }

// WaitApplied blocks until the applied index reaches index or ctx ends.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		ch := f.applyWake.C()
		if f.applied.Load() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for index %d (applied %d): %w", index, f.applied.Load(), ctx.Err())
		}
	}
}

func (f *FSM) setApplied(index uint64) {
	f.applied.Store(index)
	f.applyWake.Notify()
}

// Apply applies one log entry in its own transaction.
func (f *FSM) Apply(index uint64, data []byte) *Result {
	return f.ApplyBatch([]Entry{{Index: index, Data: data}})[0]
}

// ApplyBatch applies entries, in order, in one bbolt transaction: one fsync
// for the whole batch. Entries at or below the applied index are skipped
// (a replay after restart). A command the state machine rejects leaves the
// state unchanged and reports the rejection in its Result; the batch goes
// on. A storage failure is fatal: the node cannot know what it applied, so
// it stops (panics) rather than diverge from its peers.
func (f *FSM) ApplyBatch(entries []Entry) []*Result {
	results, err := f.TryApplyBatch(entries)
	if err != nil {
		panic(err.Error())
	}
	return results
}

// TryApplyBatch is ApplyBatch that returns a failure instead of
// panicking: a storage failure, or ErrNeedsUpgrade when the log or the
// state needs newer rules than RulesVersion. Nothing of the batch is
// applied then (one transaction), and the applied index stays where it
// was; the caller must stop applying (the next entries depend on these).
func (f *FSM) TryApplyBatch(entries []Entry) ([]*Result, error) {
	results := make([]*Result, len(entries))
	if len(entries) == 0 {
		return results, nil
	}
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	f.dbMu.RLock()
	defer f.dbMu.RUnlock()

	var last uint64
	var newCluster *string
	var newTokens *tokenCache
	var rules uint32
	err := f.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(storage.BucketMeta)
		base := f.newTxn(tx)
		applied := storage.Uint(meta, storage.MetaApplied)
		last = applied
		for i, e := range entries {
			if e.Index <= applied {
				results[i] = &Result{Index: e.Index}
				continue
			}
			applied = e.Index
			if e.Data == nil {
				results[i] = &Result{Index: e.Index}
				continue
			}
			r, err := f.applyCommand(base, e.Index, e.Data)
			if err != nil {
				return fmt.Errorf("apply entry %d: %w", e.Index, err)
			}
			if !r.Repeat {
				r.Index = e.Index // a repeat keeps the index of the original
			}
			results[i] = r
			if r.Err == nil && r.cluster != "" {
				c := r.cluster
				newCluster = &c
			}
			if r.Err == nil && r.tokens {
				newTokens = &tokenCache{} // loaded below, once for the batch
			}
		}
		if err := base.memo.flush(tx); err != nil {
			return err
		}
		if newTokens != nil {
			tc, err := loadTokens(tx)
			if err != nil {
				return fmt.Errorf("reading the tokens: %w", err)
			}
			newTokens = tc
		}
		rules = rulesOf(tx)
		if applied == last {
			return nil
		}
		last = applied
		if err := f.runHook(tx, applied, results); err != nil {
			return err
		}
		return storage.PutUint(meta, storage.MetaApplied, applied)
	})
	if err != nil {
		if errors.Is(err, ErrNeedsUpgrade) {
			return nil, fmt.Errorf("fsm: %s: %w", f.cfg.Path, err)
		}
		return nil, fmt.Errorf("fsm: storage failure while applying to %s: %w", f.cfg.Path, err)
	}
	if newCluster != nil {
		f.cluster.Store(newCluster)
	}
	if newTokens != nil {
		f.tokens.Store(newTokens)
	}
	f.rules.Store(rules)
	if last > f.applied.Load() {
		f.setApplied(last)
	}
	return results, nil
}

// view runs fn in a read transaction.
func (f *FSM) view(fn func(tx *bolt.Tx) error) error {
	f.dbMu.RLock()
	defer f.dbMu.RUnlock()
	return f.db.View(fn)
}
