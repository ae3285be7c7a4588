// Package storage owns Shelf's on-disk layout: one bbolt file holding the
// replicated state (trees of records, borrows, key ranges, clients, schemas,
// metadata). Servers and client replicas use the same layout, so a replica
// at log index N holds the same content as a server at index N.
//
// Layout (top-level buckets):
//
//	meta      format marker, cluster id, applied index, next free record id
//	trees     one nested bucket per tree; key = id (8 bytes BE) ++ rev (4 bytes BE)
//	treeinfo  tree name -> TreeInfo (record count, creation time)
//	clients   client id -> api.ClientInfo
//	borrows   tree ++ 0x00 ++ record key -> Borrow
//	ranges    start id (8 bytes BE) -> api.Range
//	schemas   tree ++ 0x00 ++ version (4 bytes BE) -> api.Schema
//	audit     tree ++ 0x00 ++ record key ++ log index (8 bytes BE) ++ seq (2 bytes BE) -> Audit
//	expiries  expiry (unix ns, 8 bytes BE) ++ borrows key -> nothing: the borrows that expire
//	removed   server node id -> start token: servers an operator removed
//	sessions  SessionKey (kind byte ++ session id) -> Session (exactly-once writes)
//	seqs      SessionKey ++ 0x00 ++ seq (8 bytes BE) -> SeqResult: a session's recorded results
//	keytimes  first use (unix ns, 8 bytes BE) ++ SessionKey -> nothing: idempotency keys by age
//	tokens    API token name -> role, bound client, SHA-256 of the secret (rules 3;
//	          created by the first token command, so older files lack it)
//	local     data a client derives from the state for itself (indexes):
//	          not replicated, not in the content hash, never in a server's file
//
// Keys are big-endian so that a cursor walks records in (id, rev) order.
package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/shelfdb/shelf/api"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FormatVersion is written to the meta bucket of every Shelf file.
const FormatVersion = "shelf/1"

// Bucket names.
var (
	BucketMeta     = []byte("meta")
	BucketTrees    = []byte("trees")
	BucketTreeInfo = []byte("treeinfo")
	BucketClients  = []byte("clients")
	BucketBorrows  = []byte("borrows")
	BucketRanges   = []byte("ranges")
	BucketSchemas  = []byte("schemas")
	BucketAudit    = []byte("audit")
	// BucketSessions, BucketSeqs and BucketKeyTimes hold what exactly-once
	// writes need: per session (a client, or an HTTP idempotency key) the
	// results of the sequence numbers it applied.
	BucketSessions = []byte("sessions")
	BucketSeqs     = []byte("seqs")
	BucketKeyTimes = []byte("keytimes")
	// BucketExpiries indexes the borrows that expire by expiry time
	// (ExpiryKey -> nothing), so that the leader finds the due ones
	// without reading every borrow.
	BucketExpiries = []byte("expiries")
	// BucketRemoved lists the servers an operator removed from the raft
	// configuration: node id -> the start token it ran with then. The
	// leader does not add such a server back until it restarts.
	BucketRemoved = []byte("removed")
	// BucketTokens holds the API tokens (name -> role, client, hash);
	// created on first use, not by Open.
	BucketTokens = []byte("tokens")
	// BucketLocal holds what a client derives from the replicated state
	// for its own use; it is created on demand and excluded from the
	// content hash.
	BucketLocal = []byte("local")

	allBuckets = [][]byte{BucketMeta, BucketTrees, BucketTreeInfo, BucketClients,
		BucketBorrows, BucketRanges, BucketSchemas, BucketAudit, BucketSessions, BucketSeqs, BucketKeyTimes, BucketExpiries, BucketRemoved}
)

// Meta keys.
var (
	MetaFormat  = []byte("format")
	MetaCluster = []byte("cluster")
	MetaApplied = []byte("applied")
	MetaNextID  = []byte("nextid")
	// MetaKeySessions counts the idempotency-key sessions kept.
	MetaKeySessions = []byte("keysessions")
	// MetaRules is the rules version the cluster runs (fsm.RulesVersion);
	// absent in states from before rules were versioned.
	MetaRules = []byte("rules")
)

// Session kinds: the first byte of a SessionKey.
const (
	SessionClient  byte = 'c' // a registered client's session (its id)
	SessionIdemKey byte = 'k' // an HTTP Idempotency-Key
)

// Errors returned by Open.
var (
	// ErrCorrupt means the file is not a readable bbolt database.
	ErrCorrupt = errors.New("storage: file is corrupt or not a database")
	// ErrForeign means the file is a bbolt database but not a Shelf one
	// (or one of an unknown format version).
	ErrForeign = errors.New("storage: file is not a Shelf database")
	// ErrLocked means another process holds the file open.
	ErrLocked = errors.New("storage: file is in use by another process")
)

// Options tune Open.
type Options struct {
	// NoSync skips fsync after each commit. Only for tests and bulk loads.
	NoSync bool
	// LockTimeout is how long Open waits for the file lock (default 2s).
	LockTimeout time.Duration
	// MmapSize is the initial size of the memory map (default 1 GiB of
	// address space, not memory). bbolt must remap to grow past it, and a
	// remap waits for every open read transaction, snapshots included; a
	// map larger than the file lets writes go on while a snapshot streams.
	MmapSize int
	// Verified skips the check of an existing file (see Verify): for a
	// file this process checked itself and nothing has written since
	// (fsm.Restore reopening the snapshot it verified). A file that
	// grew damaged in between is still caught by OpenBolt's guard.
	Verified bool
	// Shallow checks only the file's size, meta pages, freelist and root
	// page before bbolt maps it, not every page in use (Verify): for a
	// file its owner knows was fsync'ed and closed cleanly, where the full
	// check would cost a read of the whole file at every start.
	Shallow bool
}

// Open opens (creating if missing) the Shelf database file at path and
// checks its format marker. An existing file is verified first (see
// Verify, and Options.Shallow): a damaged file gets an error wrapping
// ErrCorrupt that names it and says what is wrong, never a panic or a
// crash in bbolt.
func Open(path string, opts Options) (*bolt.DB, error) {
	bopts := BoltOptions(opts)
	if !opts.Verified {
		if _, err := inspect(path, bopts.Timeout, opts.Shallow); err != nil {
			return nil, err
		}
	}
	db, err := OpenBolt(path, bopts)
	if err != nil {
		return nil, err
	}
	if err := Guard(path, func() error { return db.Update(initialise) }); err != nil {
		db.Close()
		if errors.Is(err, ErrCorrupt) {
			return nil, err
		}
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return db, nil
}

// BoltOptions returns the bbolt options Open uses for opts. bbolt's
// statistics are off: nothing reads them, and keeping them costs every
// transaction a global lock and a dozen atomic adds at its end (a fifth
// of a point read). Benchmarks open their raw bbolt floor with these too,
// so that the floor differs from Shelf's read only in Shelf's own work.
func BoltOptions(opts Options) *bolt.Options {
	if opts.LockTimeout == 0 {
		opts.LockTimeout = 2 * time.Second
	}
	if opts.MmapSize == 0 {
		opts.MmapSize = 1 << 30
	}
	return &bolt.Options{Timeout: opts.LockTimeout, NoSync: opts.NoSync, FreelistType: bolt.FreelistMapType,
		InitialMmapSize: opts.MmapSize, NoStatistics: true}
}

// OpenBolt opens a bbolt file that Verify accepted, turning what bbolt
// would panic or fault on into an error wrapping ErrCorrupt, and a lock
// timeout into ErrLocked. The checks of Verify come first; this is the
// second line of defence against damage Verify does not see.
func OpenBolt(path string, bopts *bolt.Options) (*bolt.DB, error) {
	var db *bolt.DB
	err := Guard(path, func() error {
		var err error
		db, err = bolt.Open(path, 0o600, bopts)
		return err
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		if errors.Is(err, ErrCorrupt) {
			return nil, err
		}
		if _, serr := os.Stat(path); serr == nil {
			return nil, corrupt(path, err.Error())
		}
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	return db, nil
}

// Guard runs fn with memory faults turned into panics (a page bbolt maps
// but the file lacks) and turns a panic into an error wrapping ErrCorrupt
// that names path. It covers only the calling goroutine: bbolt's Check,
// for one, runs in a goroutine of its own, which is why Verify reads the
// file itself rather than calling it.
func Guard(path string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = corrupt(path, fmt.Sprintf("bbolt failed on the file: %v", r))
		}
	}()
	return fn()
}

func initialise(tx *bolt.Tx) error {
	meta := tx.Bucket(BucketMeta)
	if meta == nil {
		// A new file has no buckets at all; anything else is foreign.
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if !empty {
			return ErrForeign
		}
	} else if f := meta.Get(MetaFormat); !bytes.Equal(f, []byte(FormatVersion)) {
		return fmt.Errorf("%w: format %q, want %q", ErrForeign, f, FormatVersion)
	}
	fillExpiries := meta != nil && tx.Bucket(BucketExpiries) == nil
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	if fillExpiries {
		// A file written before the expiry index existed.
		if err := indexExpiries(tx); err != nil {
			return err
		}
	}
	meta = tx.Bucket(BucketMeta)
	if meta.Get(MetaFormat) == nil {
		if err := meta.Put(MetaFormat, []byte(FormatVersion)); err != nil {
			return err
		}
		if err := PutUint(meta, MetaNextID, 1); err != nil {
			return err
		}
	}
	return nil
}

// Check verifies that tx belongs to a Shelf database of this format.
func Check(tx *bolt.Tx) error {
	meta := tx.Bucket(BucketMeta)
	if meta == nil || !bytes.Equal(meta.Get(MetaFormat), []byte(FormatVersion)) {
		return ErrForeign
	}
	for _, name := range allBuckets {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("%w: bucket %q missing", ErrCorrupt, name)
		}
	}
	return nil
}

// RecordKey encodes a record key so that byte order is (id, rev) order.
func RecordKey(k api.Key) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint64(b, k.ID)
	binary.BigEndian.PutUint32(b[8:], k.Rev)
	return b
}

// ParseRecordKey decodes a key made by RecordKey.
func ParseRecordKey(b []byte) (api.Key, error) {
	if len(b) != 12 {
		return api.Key{}, fmt.Errorf("%w: record key of %d bytes", ErrCorrupt, len(b))
	}
	return api.Key{ID: binary.BigEndian.Uint64(b), Rev: binary.BigEndian.Uint32(b[8:])}, nil
}

// BorrowKey is the borrows bucket key of a record.
func BorrowKey(tree string, k api.Key) []byte {
	return append(append([]byte(tree), 0), RecordKey(k)...)
}

// ExpiryKey is the expiries bucket key of a borrow (its BorrowKey bk)
// that expires at expires (unix ns).
func ExpiryKey(expires int64, bk []byte) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(bk)), uint64(expires))
	return append(b, bk...)
}

// SplitExpiryKey returns the expiry and the BorrowKey of an expiries key.
func SplitExpiryKey(k []byte) (expires int64, bk []byte, ok bool) {
	if len(k) < 9 {
		return 0, nil, false
	}
	return int64(binary.BigEndian.Uint64(k)), k[8:], true
}

// indexExpiries fills the expiries bucket from the borrows.
func indexExpiries(tx *bolt.Tx) error {
	ex := tx.Bucket(BucketExpiries)
	return tx.Bucket(BucketBorrows).ForEach(func(k, v []byte) error {
		var bw Borrow
		if err := api.Unmarshal(v, &bw); err != nil {
			return fmt.Errorf("%w: borrow %q: %v", ErrCorrupt, k, err)
		}
		if bw.Expires == 0 {
			return nil
		}
		return ex.Put(ExpiryKey(bw.Expires, k), nil)
	})
}

// SchemaKey is the schemas bucket key of a tree's schema version.
func SchemaKey(tree string, version uint32) []byte {
	b := append([]byte(tree), 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[len(tree)+1:], version)
	return b
}

// AuditKey is the audit bucket key of a record's borrow change: the
// record's BorrowKey, the log index of the change and its number among the
// changes of that entry (a borrow may end one borrow and start another).
func AuditKey(tree string, k api.Key, index uint64, seq uint16) []byte {
	b := binary.BigEndian.AppendUint64(BorrowKey(tree, k), index)
	return binary.BigEndian.AppendUint16(b, seq)
}

// TreePrefix is the prefix of a tree's keys in the borrows and schemas buckets.
func TreePrefix(tree string) []byte { return append([]byte(tree), 0) }

// SessionKey is the sessions bucket key of a session of kind (SessionClient
// or SessionIdemKey) named id.
func SessionKey(kind byte, id string) []byte {
	return append([]byte{kind}, id...)
}

// SeqKey is the seqs bucket key of a session's sequence number.
func SeqKey(session []byte, seq uint64) []byte {
	b := append(append(bytes.Clone(session), 0), make([]byte, 8)...)
	binary.BigEndian.PutUint64(b[len(session)+1:], seq)
	return b
}

// SeqPrefix is the prefix of a session's keys in the seqs bucket.
func SeqPrefix(session []byte) []byte { return append(bytes.Clone(session), 0) }

// KeyTimeKey is the keytimes bucket key of an idempotency-key session
// first used at t (unix ns).
func KeyTimeKey(t int64, session []byte) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(t)), session...)
}

// RangeKey is the ranges bucket key of a range starting at start.
func RangeKey(start uint64) []byte { return binary.BigEndian.AppendUint64(nil, start) }

// Uint reads an 8-byte big-endian counter (0 when absent).
func Uint(b *bolt.Bucket, key []byte) uint64 {
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// PutUint writes an 8-byte big-endian counter.
func PutUint(b *bolt.Bucket, key []byte, v uint64) error {
	return b.Put(key, binary.BigEndian.AppendUint64(nil, v))
}

// Get decodes the CBOR value stored under key into v; found is false when
// the key is absent.
func Get(b *bolt.Bucket, key []byte, v any) (found bool, err error) {
	raw := b.Get(key)
	if raw == nil {
		return false, nil
	}
	if err := api.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("%w: value at key %x: %v", ErrCorrupt, key, err)
	}
	return true, nil
}

// Put stores v as CBOR under key.
func Put(b *bolt.Bucket, key []byte, v any) error {
	raw, err := api.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

// Record is a record as stored: its value bytes and its metadata. The
// borrow lives in the borrows bucket, the tree and key in the bucket path.
type Record struct {
	Schema    uint32 `codec:"s,omitempty"`
	Data      []byte `codec:"d"`
	Released  bool   `codec:"r,omitempty"`
	State     int64  `codec:"st,omitempty"`
	CreatedBy string `codec:"cb,omitempty"`
	Created   int64  `codec:"c"`
	UpdatedBy string `codec:"ub,omitempty"`
	Updated   int64  `codec:"u"`
	Index     uint64 `codec:"i"`
}

// Borrow is a borrow as stored.
type Borrow struct {
	Client  string `codec:"c"`
	Since   int64  `codec:"s"`
	Expires int64  `codec:"e,omitempty"`
}

// Audit is one entry of a record's borrow history as stored (see
// api.AuditEntry); times are unix nanoseconds.
type Audit struct {
	Action  string `codec:"a"`
	Time    int64  `codec:"t"`
	Client  string `codec:"c,omitempty"`
	Holder  string `codec:"h,omitempty"`
	Reason  string `codec:"r,omitempty"`
	Expires int64  `codec:"e,omitempty"`
}

// TreeInfo is a tree's summary as stored.
type TreeInfo struct {
	Records uint64 `codec:"n"`
	Created int64  `codec:"c"`
}

// Session is an exactly-once session as stored: which sequence numbers it
// forgot and, for an idempotency key, the request it belongs to.
type Session struct {
	Floor uint64 `codec:"f,omitempty"` // highest sequence number forgotten (evicted from the window)
	Count uint32 `codec:"n"`           // sequence numbers recorded
	Hash  string `codec:"h,omitempty"` // idempotency key: hash of the request
	Time  int64  `codec:"t,omitempty"` // idempotency key: first use, unix ns (leader clock)
}

// SeqResult is the recorded result of one applied sequence number of a
// session: what a repeat of it is answered.
type SeqResult struct {
	Index   uint64     `codec:"i"`
	Key     api.Key    `codec:"k"`
	Err     *api.Error `codec:"e,omitempty"`
	Version uint32     `codec:"v,omitempty"`
	Client  string     `codec:"c,omitempty"` // register-client: the client's id
	Range   uint64     `codec:"r,omitempty"` // grant-range: the range's start
}
