// Package client is the library an application embeds to use Shelf. It
// keeps a full local replica of the cluster's state on disk (bbolt),
// applied by the same fsm code as the servers from the committed log, so
// every read is local and instant; it sends writes to the cluster, keeps
// creates and edits of borrowed records in an outbox while offline, hands
// out record ids from key ranges granted in advance, and delivers every
// applied change as an event.
//
// Writes (Tree.Create, Update, Delete) go through the outbox in local.db.
// By default an online write returns once the cluster applied it and the
// local replica has it: its error is the cluster's answer, and the next
// read shows the cluster's state with it. Under NoWait(ctx) a write
// returns as soon as it is durable in local.db (WriteResult.Pending); the
// outbox sends such writes in large batches, in order, a
// rejection becomes a Conflict, and DB.Flush waits until the writes made
// before it were applied (or became conflicts). Use NoWait when the app
// writes much and must not wait for the network, Flush where it must
// know its writes reached the cluster. Either way a client's writes are
// applied in the order they were made.
//
// Reads (Tree.Get, View, typed Get) are local: the replica, with this
// client's pending writes over it. A bounded cache of the stored bytes of
// recently read records (Config.ReadCache, 32 MiB by default; negative
// turns it off) answers repeated reads without a bbolt transaction; the
// replica drops every record a change touches before the change
// commits, so a read never answers an older state than the replica's,
// and every read still returns a copy (or a fresh decoded value) of the
// caller's own.
//
// Files in Config.Dir: replica.db (the replicated state; replaceable at
// any time by a snapshot) and local.db (this client's identity, pinned
// cluster, outbox, conflicts and id cursors; never replaced).
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
	"github.com/shelfdb/shelf/internal/wake"
	"github.com/shelfdb/shelf/storage"
)

// Errors of the client. The state machine's rejections arrive as the api
// sentinels, re-exported here for convenience.
var (
	// ErrOffline: the operation needs the cluster and no server answers.
	ErrOffline = errors.New("client: offline: no server of the cluster answers")
	// ErrNoIDs: no id left in the key ranges granted to this client (only
	// while offline; online the client asks for a new range).
	ErrNoIDs = errors.New("client: no record id left in this client's key ranges; connect to the cluster to get a new range")
	// ErrClosed: the DB was closed.
	ErrClosed = errors.New("client: closed")
	// ErrNeedsUpgrade: the cluster runs newer state machine rules than
	// this client's code (fsm.RulesVersion); the replica stopped following
	// so as not to compute a different state. Upgrade the application.
	ErrNeedsUpgrade = errors.New("client: the cluster runs newer rules than this client knows: upgrade the application")

	ErrWrongCluster = api.ErrWrongCluster
	ErrNoLeader     = api.ErrNoLeader
	ErrNotBorrowed  = api.ErrNotBorrowed
	ErrBorrowed     = api.ErrBorrowed
	ErrReleased     = api.ErrReleased
	ErrNotReleased  = api.ErrNotReleased
	ErrNotFound     = api.ErrNotFound
	ErrTreeNotFound = api.ErrTreeNotFound
	ErrNotInRange   = api.ErrNotInRange
)

// DefaultLeaderTimeout is the default Config.LeaderTimeout.
const DefaultLeaderTimeout = 2 * time.Second

// Config configures Open.
type Config struct {
	// Dir holds the replica and the client's own file; created if missing.
	Dir string
	// Servers are HTTP addresses of cluster nodes ("host:port"); more are
	// learnt from the cluster and remembered in Dir.
	Servers []string
	// Name is shown to operators as the borrower (kvctl leases, clients);
	// "client@" and the host name if empty (the cluster requires one).
	Name string
	// RangeSize is the number of ids asked for at a time (default 1000).
	RangeSize uint64
	// Reserve is how many unused ids the client keeps in hand for offline
	// creates: while online, whenever it holds Reserve or fewer it asks for
	// ranges until it holds more (default RangeSize/2).
	Reserve uint64
	// PollWait is how long one log request waits for new entries (default 20s).
	PollWait time.Duration
	// EventBuffer is how many of the latest events the client keeps for
	// subscribers that read slowly (default DefaultEventBuffer); one that
	// falls further behind gets EventLagged. Memory grows with use, up to
	// this many events.
	EventBuffer int
	// LeaderTimeout is how long the client keeps following a server that
	// reports no leader (cut off from the rest of the cluster, or in an
	// election) before it moves to another known server (default 2s).
	// Online is false while the server reports no leader.
	LeaderTimeout time.Duration
	// HTTPClient carries the requests (default: a client without timeout,
	// every request having its own deadline, that keeps
	// api.DefaultIdleConns idle connections per node).
	HTTPClient *http.Client
	// TLS, when set, reaches the servers over HTTPS: addresses without a
	// scheme (in Servers, and those learnt from the cluster) get
	// https://, and the default HTTPClient uses this configuration (a
	// caller's own HTTPClient must carry it itself). api.TLSFiles loads
	// one from a CA file and an optional client certificate.
	TLS *tls.Config
	// Logger receives the client's logs (default slog.Default()).
	Logger *slog.Logger
	// Token is the API token sent on every request (the log stream and
	// snapshots included) to clusters with auth on: a writer token (kvctl
	// tokens create NAME --role writer), bound to the client it
	// registers first, or a reader token for a read-only replica.
	Token string
	// ReadCache is the memory, in bytes, of the cache of recently read
	// records (default DefaultReadCache; negative: no cache). A read it
	// answers skips the replica's bbolt transaction; every change the
	// replica applies drops the records it changes first, so a read never
	// answers an older state than the replica's. A record read for its
	// value (typed Get, ViewValue) counts its value's bytes plus about 185
	// bytes; one read whole (View, Get) about 210 more (DB.ReadCacheStats).
	ReadCache int64
}

// DB is an open client: a local replica kept in sync with a cluster.
type DB struct {
	cfg     Config
	log     *slog.Logger
	replica *fsm.FSM
	local   *local

	clientID string
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu        sync.Mutex
	cluster   string   // pinned cluster id
	servers   []string // known server addresses, current first
	clients   map[string]*api.Client
	lastErr   error
	recovered string // why the replica was rebuilt at open, if it was

	online atomic.Bool
	// replicaBroken: the replica failed to apply (storage failure); the
	// sync loop rebuilds it from a snapshot before it follows again.
	replicaBroken atomic.Bool
	onlineWake    wake.Signal // notified when online changes
	movedWake     wake.Signal // notified when the current server changes

	events *eventLog
	out    *outbox
	ids    *idReserve
	idx    *indexes
	cache  *readCache // nil: off
}

// Open opens (or creates) the replica in cfg.Dir and starts syncing it
// with the cluster in the background. The first Open of a new Dir needs a
// server, to register the client; later ones work offline.
//
// A replica file that is corrupt, not a Shelf file, or not closed cleanly
// before the machine stopped (replica.db commits without fsync; its
// marker tells a crashed process, whose file is whole, from a crashed
// machine) is moved aside (to replica.db.corrupt-TIME) and rebuilt from
// the cluster; the outbox and
// conflicts live in local.db and are kept. Recovered tells the app. A
// damaged local.db is never moved aside (its outbox holds writes the
// cluster has not seen): Open fails with an error naming it.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.Dir == "" {
		return nil, errors.New("client: Config.Dir is empty")
	}
	if cfg.Name == "" {
		cfg.Name = defaultName()
	}
	if cfg.RangeSize == 0 {
		cfg.RangeSize = 1000
	}
	if cfg.RangeSize > fsm.MaxRangeSize {
		return nil, fmt.Errorf("client: Config.RangeSize %d over the maximum %d", cfg.RangeSize, fsm.MaxRangeSize)
	}
	if cfg.Reserve == 0 {
		cfg.Reserve = cfg.RangeSize / 2
	}
	if cfg.PollWait <= 0 {
		cfg.PollWait = 20 * time.Second
	}
	if cfg.EventBuffer <= 0 {
		cfg.EventBuffer = DefaultEventBuffer
	}
	if cfg.LeaderTimeout <= 0 {
		cfg.LeaderTimeout = DefaultLeaderTimeout
	}
	if cfg.HTTPClient == nil {
		// http.DefaultTransport's settings, but keeping as many idle
		// connections per node as api.NewClient's shared client (the
		// default 2 makes an app's concurrent calls open and close a
		// connection each).
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = api.DefaultIdleConns
		t.MaxIdleConns = max(t.MaxIdleConns, 4*api.DefaultIdleConns)
		if cfg.TLS != nil {
			t.TLSClientConfig = cfg.TLS.Clone()
		}
		cfg.HTTPClient = &http.Client{Transport: t}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ReadCache == 0 {
		cfg.ReadCache = DefaultReadCache
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	db := &DB{cfg: cfg, log: cfg.Logger.With("client", cfg.Name), clients: map[string]*api.Client{},
		events: newEventLog(cfg.EventBuffer)}
	var err error
	if db.local, err = openLocal(filepath.Join(cfg.Dir, "local.db")); err != nil {
		return nil, err
	}
	if db.replica, err = db.openReplica(); err != nil {
		db.local.close()
		return nil, err
	}
	db.idx = &indexes{db: db}
	db.cache = newReadCache(cfg.ReadCache)
	db.replica.SetHook(replicaHook{cache: db.cache, idx: db.idx})
	db.cluster = db.local.get(keyCluster)
	if rc := db.replica.ClusterID(); rc != "" && db.cluster != "" && rc != db.cluster {
		db.Close()
		return nil, fmt.Errorf("%w: the replica in %s holds cluster %s, this client is pinned to %s; %s", ErrWrongCluster, cfg.Dir, rc, db.cluster, wrongClusterAdvice(cfg.Dir))
	} else if db.cluster == "" {
		db.cluster = rc
	}
	remembered := db.local.servers()
	db.servers = mergeServers(cfg.Servers, remembered)
	if len(db.servers) == 0 {
		db.Close()
		return nil, errors.New("client: Config.Servers is empty and no server is remembered in Dir")
	}
	if !slices.Equal(db.servers, remembered) {
		if err := db.local.setServers(db.servers); err != nil {
			db.Close()
			return nil, err
		}
	}
	db.clientID = db.local.get(keyClient)
	if db.clientID == "" {
		if err := db.register(ctx); err != nil {
			db.Close()
			return nil, err
		}
	}
	db.ctx, db.cancel = context.WithCancel(context.Background())
	db.out = newOutbox(db)
	if err := db.out.load(); err != nil {
		db.Close()
		return nil, err
	}
	db.ids = &idReserve{db: db, kick: make(chan struct{}, 1)}
	db.wg.Add(3)
	go db.syncLoop()
	go db.out.run()
	go db.ids.run()
	return db, nil
}

func (db *DB) openReplica() (*fsm.FSM, error) {
	path := filepath.Join(db.cfg.Dir, "replica.db")
	// The replica commits without fsync, as the servers' fsm.db does: the
	// cluster holds every entry durably, so a replica the machine may have
	// torn (ErrUntrusted: not closed cleanly, and the machine restarted
	// since) is rebuilt from the cluster like a damaged one. local.db (the
	// outbox) keeps its fsyncs.
	cfg := fsm.Config{Path: path, Logger: db.log, NoSync: true}
	f, err := fsm.Open(cfg)
	if err == nil || !(errors.Is(err, storage.ErrCorrupt) || errors.Is(err, storage.ErrForeign) || errors.Is(err, fsm.ErrUntrusted)) {
		return f, err
	}
	aside := fmt.Sprintf("%s.corrupt-%d", path, time.Now().Unix())
	if rerr := os.Rename(path, aside); rerr != nil {
		return nil, fmt.Errorf("client: replica unusable (%v) and cannot be moved aside: %w", err, rerr)
	}
	db.recovered = fmt.Sprintf("replica %s was unusable (%v); moved to %s and rebuilt from the cluster", path, err, aside)
	db.log.Warn("client: " + db.recovered)
	return fsm.Open(cfg)
}

func mergeServers(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, s := range l {
			if s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// register makes this client known to the cluster and pins the cluster.
// While the servers that answer are not ready (a new cluster electing its
// first leader), it tries again until ctx ends.
func (db *DB) register(ctx context.Context) error {
	// One idempotency key for every attempt, on every server: a
	// registration whose answer was lost is answered again, with the same
	// client, instead of registering a second one.
	ctx = api.WithIdempotencyKey(ctx, api.NewIdempotencyKey())
	for {
		err := db.registerOnce(ctx)
		if err == nil || !errors.Is(err, errNotReady) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%w)", err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// errNotReady marks a registration that failed only because the servers
// that answered are not ready yet.
var errNotReady = errors.New("client: the cluster is not ready")

func (db *DB) registerOnce(ctx context.Context) error {
	var errs []error
	ready := false
	for _, s := range db.serverList() {
		c := db.api(s)
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := c.Status(rctx)
		if err == nil {
			err = db.pin(st.ClusterID)
		}
		var info api.ClientInfo
		if err == nil {
			info, err = c.RegisterClient(rctx, db.cfg.Name)
		}
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s, err))
			if errors.Is(err, ErrWrongCluster) {
				return err
			}
			if !errors.Is(err, api.ErrUnavailable) && !errors.Is(err, api.ErrNoLeader) {
				ready = true // an answer that waiting will not change, or no answer
			}
			continue
		}
		db.clientID = info.ID
		return db.local.put(keyClient, info.ID)
	}
	err := fmt.Errorf("client: the first open of %s must register with the cluster: %w: %w", db.cfg.Dir, ErrOffline, errors.Join(errs...))
	if !ready && len(errs) > 0 {
		return fmt.Errorf("%w: %w", errNotReady, err)
	}
	return err
}

// wrongClusterAdvice says why a client meets another cluster than its own
// and what to do, for the errors wrapping ErrWrongCluster.
func wrongClusterAdvice(dir string) string {
	return fmt.Sprintf("if the cluster was restored from a backup (which gives it a new cluster id unless kept) or replaced, "+
		"this client's data in %s belongs to the old cluster: close the client, move %s aside and open it again "+
		"to register with the new cluster (borrows and queued writes of the old one are not carried over)", dir, dir)
}

// pin checks id against the pinned cluster, pinning it if none is.
func (db *DB) pin(id string) error {
	if id == "" {
		return api.Errorf(api.CodeUnavailable, "server has no cluster id yet")
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.cluster == "" {
		db.cluster = id
		return db.local.put(keyCluster, id)
	}
	if db.cluster != id {
		return api.Errorf(api.CodeWrongCluster, "server belongs to cluster %s, this client's replica to cluster %s; %s", id, db.cluster, wrongClusterAdvice(db.cfg.Dir))
	}
	return nil
}

func (db *DB) api(server string) *api.Client {
	db.mu.Lock()
	defer db.mu.Unlock()
	c := db.clients[server]
	if c == nil {
		base := server
		if db.cfg.TLS != nil && !strings.Contains(base, "://") {
			base = "https://" + base
		}
		c = api.NewClient(base, db.cfg.HTTPClient).WithToken(db.cfg.Token)
		db.clients[server] = c
	}
	return c
}

func (db *DB) serverList() []string {
	db.mu.Lock()
	defer db.mu.Unlock()
	return slices.Clone(db.servers)
}

// current returns the client for the server the replica syncs from.
func (db *DB) current() *api.Client { return db.api(db.serverList()[0]) }

// rotate moves the current server to the end of the list.
func (db *DB) rotate() {
	db.mu.Lock()
	defer db.mu.Unlock()
	if len(db.servers) > 1 {
		db.servers = append(db.servers[1:], db.servers[0])
		db.movedWake.Notify()
	}
}

// moved returns a channel closed when the sync loop next leaves the
// current server.
func (db *DB) moved() <-chan struct{} { return db.movedWake.C() }

// learn adds server addresses reported by the cluster.
func (db *DB) learn(members []api.Member) {
	db.mu.Lock()
	var add []string
	for _, m := range members {
		if m.HTTPAddr != "" && !slices.Contains(db.servers, m.HTTPAddr) {
			add = append(add, m.HTTPAddr)
		}
	}
	db.servers = append(db.servers, add...)
	all := slices.Clone(db.servers)
	db.mu.Unlock()
	if len(add) > 0 {
		if err := db.local.setServers(all); err != nil {
			db.log.Warn("client: cannot remember servers", "err", err)
		}
	}
}

// Close stops syncing and closes the files. Outbox entries not yet sent
// stay in Dir and are sent by the next Open.
func (db *DB) Close() error {
	if db.cancel != nil {
		db.cancel()
		db.wg.Wait()
	}
	db.events.close()
	db.cache.close()
	var errs []error
	if db.replica != nil {
		errs = append(errs, db.replica.Close())
	}
	if db.local != nil {
		if db.out != nil {
			// Confirmed entries still in the file would be sent again
			// (and answered as repeats) by the next Open.
			if err := db.out.flushGone(); err != nil {
				errs = append(errs, fmt.Errorf("client: outbox: %w", err))
			}
		}
		errs = append(errs, db.local.close())
	}
	return errors.Join(errs...)
}

// ClusterID returns the id of the cluster this client is pinned to.
func (db *DB) ClusterID() string {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.cluster
}

// ClientID returns this client's id, as the cluster knows it.
func (db *DB) ClientID() string { return db.clientID }

// Dir returns the directory of the replica.
func (db *DB) Dir() string { return db.cfg.Dir }

// Name returns the client's name.
func (db *DB) Name() string { return db.cfg.Name }

// Online reports whether the replica is following a server right now, and
// that server is in contact with the cluster's leader.
func (db *DB) Online() bool { return db.online.Load() }

// AppliedIndex returns the log index the local replica has applied.
func (db *DB) AppliedIndex() uint64 { return db.replica.AppliedIndex() }

// Err returns the last sync error (nil while online); it wraps
// ErrNoLeader while the server followed reports no leader. A wrong-cluster
// error stays until a server of the pinned cluster answers.
func (db *DB) Err() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.lastErr
}

// Recovered returns a description of the repair done at Open when the
// replica file was unusable, or "".
func (db *DB) Recovered() string { return db.recovered }

// ContentHash returns the replica's applied index and content hash; a
// server at the same index has the same hash.
func (db *DB) ContentHash() (uint64, string, error) { return db.replica.ContentHash() }

func (db *DB) setOnline(on bool, err error) {
	db.mu.Lock()
	// A wrong-cluster error stays until a server of the pinned cluster
	// answers: a later "connection refused" from another server must not
	// hide it.
	if on || err == nil || errors.Is(err, ErrWrongCluster) || !errors.Is(db.lastErr, ErrWrongCluster) {
		db.lastErr = err
	}
	changed := db.online.Swap(on) != on
	if changed {
		db.onlineWake.Notify()
	}
	db.mu.Unlock()
	if changed {
		if on {
			db.log.Info("client: online", "server", db.serverList()[0], "applied", db.replica.AppliedIndex())
			db.out.kickNow()
			db.ids.kickNow()
		} else {
			db.log.Info("client: offline", "err", err)
		}
	}
}

// onlineChanged returns a channel closed at the next change of Online.
func (db *DB) onlineChanged() <-chan struct{} { return db.onlineWake.C() }

// WaitSynced waits until the replica has applied everything a server of
// the cluster had applied when WaitSynced was called (a server applies
// what the cluster commits within milliseconds), and the client follows a
// server (Online), so that operations needing the cluster go through.
func (db *DB) WaitSynced(ctx context.Context) error {
	for {
		var target uint64
		var errs []error
		for _, s := range db.serverList() {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			st, err := db.api(s).Status(rctx)
			cancel()
			if err == nil {
				err = db.pin(st.ClusterID)
			}
			if err == nil && st.NoLeader {
				err = fmt.Errorf("client: %s: %w", s, ErrNoLeader) // its applied index may be behind
			}
			if err == nil {
				target = st.AppliedIndex
				break
			}
			if errors.Is(err, ErrWrongCluster) {
				return err
			}
			errs = append(errs, err)
		}
		if target > 0 {
			if err := db.replica.WaitApplied(ctx, target); err != nil {
				return err
			}
			return db.waitOnline(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("client: wait synced: %w (%w)", ctx.Err(), errors.Join(errs...))
		case <-time.After(200*time.Millisecond + rand.N(100*time.Millisecond)):
		}
	}
}

// waitOnline waits until the sync loop follows a server.
func (db *DB) waitOnline(ctx context.Context) error {
	for {
		ch := db.onlineChanged()
		if db.Online() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("client: wait synced: replica caught up, but not following a server yet: %w (%v)", ctx.Err(), db.Err())
		}
	}
}

// sleep waits d or until the DB closes; false means closed.
func (db *DB) sleep(d time.Duration) bool {
	select {
	case <-db.ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// defaultName is the name of a client whose Config has none.
func defaultName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "unknown-host"
	}
	return "client@" + h
}
