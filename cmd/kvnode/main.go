// Command kvnode runs one Shelf server node: the replicated state machine
// under raft, gossip membership, and the HTTP API.
//
//	kvnode -dev                    one node, bootstrapped, data in ./shelf-data
//	kvnode -id n1 -data DIR -http ADDR -raft ADDR -gossip ADDR -bootstrap
//	kvnode -id n2 -data DIR -http ADDR -raft ADDR -gossip ADDR -join GOSSIP_ADDR[,...]
//	kvnode -healthcheck [-http ADDR] [TLS flags]   exit 0 if that node is ready (GET /readyz)
//
// Every flag can also be given as an environment variable SHELF_<NAME>
// (SHELF_ID, SHELF_DATA, SHELF_HTTP, SHELF_RAFT, SHELF_GOSSIP,
// SHELF_BOOTSTRAP, SHELF_JOIN, SHELF_DEV, SHELF_LOG_LEVEL,
// SHELF_ADVERTISE_HTTP, SHELF_TLS_CERT, SHELF_TLS_KEY, SHELF_TLS_CA,
// SHELF_TLS_CLIENT_CA, SHELF_GOSSIP_KEY, SHELF_RESTORE,
// SHELF_KEEP_CLUSTER_ID); a flag on the command line wins over the
// environment.
//
// Backup and restore (docs/operations.md): kvctl snapshot save takes a
// backup; kvnode -restore FILE -id ID -data NEWDIR ... seeds a new, empty
// data directory from it as a new single-node cluster (a new cluster id
// unless -keep-cluster-id) and starts; other nodes then -join it.
//
// TLS (docs/operations.md): with -tls-cert, -tls-key and -tls-ca the HTTP
// API serves HTTPS only, raft runs over mutually authenticated TLS, and
// the internal routes (/v1/internal/*) answer only nodes presenting a
// node certificate of the cluster CA (-tls-ca). -tls-client-ca makes the
// API require a client certificate of that CA as well. -gossip-key
// encrypts gossip. kvctl certs makes the CA, certificates and key.
// SHELF_PPROF is read too. "kvnode -version" prints the build and exits.
//
// Every node serves GET /metrics (Prometheus), /healthz, /readyz and
// /v1/version next to the API; -pprof adds /debug/pprof/ (see
// docs/operations.md, "Monitoring").
//
// A node restarted with its data directory needs neither -bootstrap nor
// -join: it finds its peers from its raft configuration and the gossip
// addresses it saved. kvnode prints "kvnode: listening on http://ADDR"
// once it serves, logs to stderr, and shuts down gracefully on SIGINT or
// SIGTERM. It exits 2 on bad flags and 1 on any other failure, such as a
// data directory that belongs to another cluster than its peers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/fsm"
	"github.com/shelfdb/shelf/internal/httpapi"
	"github.com/shelfdb/shelf/internal/metrics"
	"github.com/shelfdb/shelf/internal/tlsconf"
	"github.com/shelfdb/shelf/internal/version"
	"github.com/shelfdb/shelf/internal/viewer"
)

// Defaults of the address flags.
const (
	defaultHTTP   = "127.0.0.1:7001"
	defaultRaft   = "127.0.0.1:7002"
	defaultGossip = "127.0.0.1:7003"
	devDataDir    = "shelf-data"
	devID         = "dev"
)

// usageError is a bad command line: exit status 2.
type usageError struct{ err error }

// Error implements error.
func (u usageError) Error() string { return u.err.Error() }

// Unwrap returns the underlying error.
func (u usageError) Unwrap() error { return u.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.As(err, new(usageError)):
		fmt.Fprintf(os.Stderr, "kvnode: %v\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "kvnode: %v\n", err)
		os.Exit(1)
	}
}

// options are the parsed command line.
type options struct {
	id, data           string
	http, raft, gossip string
	advertiseHTTP      string
	bootstrap, dev     bool
	healthcheck        bool
	join               []string
	logLevel           slog.Level
	borrowTTL          time.Duration
	expiryGrace        time.Duration
	commitTimeout      time.Duration

	tls       tlsconf.NodeFiles // all empty: no TLS
	gossipKey []byte
	pprof     bool // serve /debug/pprof/
	ui        bool // serve the web viewer at /
	version   bool // print the version and exit
	raftLog   string

	restore       string // -restore: a snapshot file to seed -data from
	keepClusterID bool   // -keep-cluster-id
	auth          bool   // -auth: tokens and roles enforced
	clusterToken  string // -cluster-token: how nodes recognise each other without TLS
}

// parseFlags parses args, then fills unset flags from the environment.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("kvnode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o         options
		join      string
		logLevel  string
		gossipKey string
	)
	fs.StringVar(&o.id, "id", "", "node `id`, unique in the cluster and stable across restarts")
	fs.StringVar(&o.data, "data", "", "data `directory` (raft log, state machine, snapshots)")
	fs.StringVar(&o.http, "http", defaultHTTP, "HTTP API listen `address`")
	fs.StringVar(&o.raft, "raft", defaultRaft, "raft `address` to bind and advertise (must be reachable by peers)")
	fs.StringVar(&o.gossip, "gossip", defaultGossip, "gossip (memberlist) `address`, TCP and UDP")
	fs.StringVar(&o.advertiseHTTP, "advertise-http", "", "HTTP `address` advertised to peers (default: the -http address)")
	fs.BoolVar(&o.bootstrap, "bootstrap", false, "start a new cluster with this node if it has no state yet")
	fs.StringVar(&join, "join", "", "comma-separated gossip `addresses` of existing members to join")
	fs.BoolVar(&o.dev, "dev", false, "development mode: one bootstrapped node \"dev\", data in ./shelf-data")
	fs.StringVar(&logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.DurationVar(&o.borrowTTL, "borrow-ttl", 0, "expiry of borrows that ask for none (`duration`; 0: never expire; set the same on every node)")
	fs.DurationVar(&o.commitTimeout, "commit-timeout", cluster.DefaultCommitTimeout, "how long the leader lets an idle follower wait before telling it that entries committed (`duration`, raft's CommitTimeout; lower: events sooner at a follower between writes, more idle AppendEntries)")
	fs.StringVar(&o.raftLog, "raft-log", cluster.LogStoreAuto, "raft log `store`: bolt (raft.db), wal (raft-wal) or auto (the kind the data directory holds; "+cluster.DefaultLogStore+" for a new one); a data directory keeps the kind it was created with")
	fs.DurationVar(&o.expiryGrace, "expiry-grace", cluster.DefaultExpiryGrace, "how long a new leader waits before it expires borrows (`duration`)")
	fs.StringVar(&o.tls.Cert, "tls-cert", "", "node certificate `file` (PEM; kvctl certs issue --node): serve HTTPS and raft over TLS")
	fs.StringVar(&o.tls.Key, "tls-key", "", "private key `file` of -tls-cert")
	fs.StringVar(&o.tls.CA, "tls-ca", "", "cluster CA `file`: peers (raft, internal routes) must present a node certificate it signed")
	fs.StringVar(&o.tls.ClientCA, "tls-client-ca", "", "require clients of the HTTP API to present a certificate signed by this CA `file` (may be the -tls-ca file)")
	fs.BoolVar(&o.auth, "auth", false, "require API tokens and enforce roles (reader, writer, admin); the bootstrap node writes the first admin token to DATA/"+adminTokenFile)
	fs.StringVar(&o.clusterToken, "cluster-token", "", "shared `secret` the nodes present to each other on the internal routes when they do not use TLS (required by -auth without TLS; the same on every node)")
	fs.StringVar(&gossipKey, "gossip-key", "", "gossip encryption `key`, base64 of 16, 24 or 32 bytes, the same on every node (kvctl certs gossip-key)")
	fs.BoolVar(&o.healthcheck, "healthcheck", false, "ask the node of these flags (-http, TLS flags) whether it is ready (/readyz) and exit: 0 when it is, 1 otherwise (for container health checks)")
	fs.BoolVar(&o.pprof, "pprof", false, "serve Go profiles on /debug/pprof/ of the HTTP address (off by default: anyone who reaches the port may profile)")
	fs.BoolVar(&o.ui, "ui", true, "serve the web viewer at / of the HTTP address (-ui=false: the API only)")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.StringVar(&o.restore, "restore", "", "seed the new, empty -data directory from this snapshot `file` (kvctl snapshot save) as a new single-node cluster, then start; once only")
	fs.BoolVar(&o.keepClusterID, "keep-cluster-id", false, "with -restore: keep the backup's cluster id (default: a new one, which clients of the old cluster refuse)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage:\n  kvnode -dev\n  kvnode -id ID -data DIR [-http ADDR] [-raft ADDR] [-gossip ADDR] -bootstrap | -join ADDR[,ADDR...]\n\nFlags (each also read from SHELF_<NAME>, e.g. SHELF_DATA, SHELF_LOG_LEVEL):\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if o.version {
		return &o, nil
	}
	set := map[string]bool{"version": true} // -version has no SHELF_ variable
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErrs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		name := "SHELF_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s=%q: %v", name, v, err))
				return
			}
			set[f.Name] = true
		}
	})
	if len(envErrs) > 0 {
		return nil, usageError{errors.Join(envErrs...)}
	}
	for _, a := range strings.Split(join, ",") {
		if a = strings.TrimSpace(a); a != "" {
			o.join = append(o.join, a)
		}
	}
	if err := o.logLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return nil, usageError{fmt.Errorf("-log-level %q: want debug, info, warn or error", logLevel)}
	}
	if gossipKey != "" {
		k, err := tlsconf.ParseGossipKey(gossipKey)
		if err != nil {
			return nil, usageError{fmt.Errorf("-gossip-key: %v", err)}
		}
		o.gossipKey = k
	}
	return &o, o.validate()
}

// validate checks the options and applies -dev.
func (o *options) validate() error {
	var errs []error
	if o.healthcheck {
		// Only the address and TLS flags matter; the node's own
		// environment (SHELF_ID, SHELF_DATA...) may be there too.
		if err := checkAddr(o.http); err != nil {
			errs = append(errs, fmt.Errorf("-http %q: %v", o.http, err))
		}
		if t := o.tls; t != (tlsconf.NodeFiles{}) && (t.Cert == "" || t.Key == "" || t.CA == "") {
			errs = append(errs, errors.New("TLS needs -tls-cert, -tls-key and -tls-ca together"))
		}
		if len(errs) > 0 {
			return usageError{errors.Join(errs...)}
		}
		return nil
	}
	if o.dev {
		if o.id == "" {
			o.id = devID
		}
		if o.data == "" {
			o.data = devDataDir
		}
		if len(o.join) > 0 {
			errs = append(errs, errors.New("-dev runs a single node: it cannot -join"))
		}
		o.bootstrap = true
	}
	if o.id == "" {
		errs = append(errs, errors.New("-id is required (or -dev)"))
	}
	if o.raftLog != cluster.LogStoreBolt && o.raftLog != cluster.LogStoreWAL && o.raftLog != cluster.LogStoreAuto {
		errs = append(errs, fmt.Errorf("-raft-log %q: want %s, %s or %s", o.raftLog, cluster.LogStoreBolt, cluster.LogStoreWAL, cluster.LogStoreAuto))
	}
	if o.borrowTTL < 0 || o.expiryGrace < 0 {
		errs = append(errs, errors.New("-borrow-ttl and -expiry-grace must not be negative"))
	}
	if o.data == "" {
		errs = append(errs, errors.New("-data is required (or -dev)"))
	}
	if o.restore != "" && (o.dev || o.bootstrap || len(o.join) > 0) {
		errs = append(errs, errors.New("-restore starts a new cluster from a backup: it excludes -dev, -bootstrap and -join"))
	}
	if o.keepClusterID && o.restore == "" {
		errs = append(errs, errors.New("-keep-cluster-id goes with -restore"))
	}
	if o.bootstrap && len(o.join) > 0 && !o.dev {
		errs = append(errs, errors.New("-bootstrap and -join exclude each other: bootstrap the first node, join the others"))
	}
	for _, a := range []struct{ flag, addr string }{{"-http", o.http}, {"-raft", o.raft}, {"-gossip", o.gossip}} {
		if err := checkAddr(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %v", a.flag, a.addr, err))
		}
	}
	if o.advertiseHTTP != "" {
		if err := checkAddr(o.advertiseHTTP); err != nil {
			errs = append(errs, fmt.Errorf("-advertise-http %q: %v", o.advertiseHTTP, err))
		}
	}
	if host, _, err := net.SplitHostPort(o.raft); err == nil {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			errs = append(errs, fmt.Errorf("-raft %q: peers connect to this address, so give this host's IP or name, not %q", o.raft, host))
		}
	}
	if t := o.tls; t != (tlsconf.NodeFiles{}) && (t.Cert == "" || t.Key == "" || t.CA == "") {
		errs = append(errs, errors.New("TLS needs -tls-cert, -tls-key and -tls-ca together (-tls-client-ca is optional)"))
	}
	if o.auth && o.tls == (tlsconf.NodeFiles{}) && o.clusterToken == "" && !o.dev {
		errs = append(errs, errors.New("-auth without TLS needs -cluster-token (the same secret on every node) so that nodes recognise each other on the internal routes"))
	}
	for _, a := range o.join {
		if err := checkAddr(a); err != nil {
			errs = append(errs, fmt.Errorf("-join %q: %v", a, err))
		}
	}
	if len(errs) > 0 {
		return usageError{errors.Join(errs...)}
	}
	return nil
}

func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// advertised returns the HTTP address to tell peers: the listener's
// address, with the raft host when it listens on all interfaces.
func advertised(o *options, ln net.Listener) string {
	if o.advertiseHTTP != "" {
		return o.advertiseHTTP
	}
	addr := ln.Addr().String()
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if rh, _, err := net.SplitHostPort(o.raft); err == nil && rh != "" {
			return net.JoinHostPort(rh, port)
		}
	}
	return addr
}

// restoreData seeds the data directory from the -restore file.
func restoreData(o *options, logger *slog.Logger) error {
	f, err := os.Open(o.restore)
	if err != nil {
		return fmt.Errorf("-restore: %w", err)
	}
	defer f.Close()
	res, err := cluster.Restore(cluster.RestoreConfig{DataDir: o.data, NodeID: o.id, RaftAddr: o.raft, LogStore: o.raftLog, KeepClusterID: o.keepClusterID, Logger: logger}, f)
	if errors.Is(err, cluster.ErrDataDirNotEmpty) {
		return fmt.Errorf("-restore %s: %w; -restore only seeds a new data directory: if this node was restored already, start it without -restore", o.restore, err)
	}
	if err != nil {
		return fmt.Errorf("-restore %s: %w", o.restore, err)
	}
	logger.Info("kvnode: restored the data directory from a backup; start this node without -restore from now on",
		"file", o.restore, "index", res.Index, "cluster", res.ClusterID, "from_cluster", res.FromClusterID)
	return nil
}

// run runs a node until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	if o.healthcheck {
		return healthcheck(ctx, o, stdout)
	}
	if o.version {
		fmt.Fprintf(stdout, "kvnode %s\n", version.Get())
		return nil
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))

	if o.restore != "" {
		// Before anything is made in the data directory: a failed restore
		// leaves it as it was.
		if err := restoreData(o, logger); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(o.data, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if fi, err := os.Stat(o.data); err != nil || !fi.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", o.data)
	}

	var certs *tlsconf.Node
	if o.tls != (tlsconf.NodeFiles{}) {
		if certs, err = tlsconf.LoadNode(o.tls); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		if o.gossipKey == nil {
			logger.Warn("kvnode: TLS is on but gossip is not encrypted; set the same -gossip-key on every node")
		}
	}

	ln, err := net.Listen("tcp", o.http)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	defer ln.Close()
	var peerTLS *cluster.PeerTLS
	var peerCheck func(*http.Request) error
	var peerHTTP *http.Client
	scheme := "http"
	if certs != nil {
		peerTLS = &cluster.PeerTLS{Server: certs.PeerServer, Client: certs.PeerClient}
		peerCheck = func(r *http.Request) error { return certs.CheckPeer(r.TLS) }
		scheme = "https"
	} else if o.clusterToken != "" || o.auth {
		tok := o.clusterToken
		if tok == "" { // -dev -auth: one node, no peers to agree with
			if tok, err = api.NewToken(); err != nil {
				return err
			}
		}
		peerCheck = httpapi.ClusterTokenPeer(tok)
		// The transport of cluster.Config's default client, with the token.
		peerHTTP = &http.Client{Transport: httpapi.ClusterTokenTransport(tok, cluster.NewPeerTransport())}
	}

	// One node per process: raft's and memberlist's go-metrics (a
	// process-wide global) go to this node's registry.
	met := metrics.New()
	if err := metrics.InstallRaftSink(met.Registry()); err != nil {
		return err
	}
	node, err := cluster.New(cluster.Config{
		NodeID:     o.id,
		DataDir:    o.data,
		RaftAddr:   o.raft,
		GossipAddr: o.gossip,
		HTTPAddr:   advertised(o, ln),
		Bootstrap:  o.bootstrap,
		Join:       o.join,
		Logger:     logger,
		PeerTLS:    peerTLS,
		GossipKey:  o.gossipKey,
		HTTPClient: peerHTTP,

		DefaultBorrowTTL: o.borrowTTL,
		LogStore:         o.raftLog,
		CommitTimeout:    o.commitTimeout,
		ExpiryGrace:      noneIfZero(o.expiryGrace), // 0 on the command line: no grace
		Observer:         met,
	})
	if err != nil {
		if errors.Is(err, api.ErrWrongCluster) {
			return fmt.Errorf("refusing to start: %w", err)
		}
		return err
	}

	if err := met.WatchNode(node); err != nil {
		_ = node.Shutdown()
		return err
	}
	if o.pprof {
		if o.auth {
			logger.Info("kvnode: serving Go profiles on /debug/pprof/ (-pprof) to admin tokens")
		} else {
			logger.Warn("kvnode: serving Go profiles on /debug/pprof/ (-pprof): anyone who reaches the HTTP address can profile this node (-auth limits them to admins)")
		}
	}

	stopping := make(chan struct{})
	apiConf := httpapi.Config{Node: node, Logger: logger, Stopping: stopping, Peer: peerCheck, Metrics: met, Pprof: o.pprof, Auth: o.auth}
	if o.ui {
		apiConf.UI = viewer.Handler()
	}
	srv := &http.Server{
		Handler:           httpapi.New(apiConf),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	if certs != nil {
		// HTTPS only: a plain HTTP request gets 400 "Client sent an HTTP
		// request to an HTTPS server".
		srv.TLSConfig = certs.HTTPServer
		go func() { serveErr <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { serveErr <- srv.Serve(ln) }()
	}
	fmt.Fprintf(stdout, "kvnode: listening on %s://%s\n", scheme, ln.Addr())
	logger.Info("kvnode: serving", "http", ln.Addr().String(), "scheme", scheme, "id", o.id, "data", o.data, "version", version.Get().String())

	bctx, bcancel := context.WithCancel(ctx)
	bdone := make(chan struct{})
	go func() {
		defer close(bdone)
		if o.auth && o.bootstrap {
			bootstrapAdminToken(bctx, node, filepath.Join(o.data, adminTokenFile), logger)
		}
	}()
	defer func() { bcancel(); <-bdone }()
	if o.auth {
		logger.Info("kvnode: auth is on: requests need a token (kvctl --token-file, SHELF_TOKEN)")
	}

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("kvnode: shutting down")
	case err := <-serveErr:
		runErr = fmt.Errorf("http: %w", err)
	case <-node.Failed():
		runErr = fmt.Errorf("the state machine stopped: %w", node.FailedErr())
		if errors.Is(runErr, fsm.ErrNeedsUpgrade) {
			runErr = fmt.Errorf("%w; install a kvnode that knows the cluster's rules (state machine rules %d here) and start it again", runErr, fsm.RulesVersion)
		} else {
			runErr = fmt.Errorf("%w; fix the disk and start the node again: it applies the log again from where fsm.db stopped", runErr)
		}
	}
	bcancel()
	<-bdone
	close(stopping) // pending log long polls answer now
	// Requests in flight get a short grace: one that waits on the cluster
	// (a write forwarded to a leader that is stopping too) would otherwise
	// hold the stop for its whole timeout. Cut ones fail for their
	// clients, which retry elsewhere (writes carry their identity).
	sctx, cancel := context.WithTimeout(context.Background(), httpStopGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("kvnode: http shutdown", "err", err)
		_ = srv.Close()
	}
	if err := node.Shutdown(); err != nil {
		logger.Error("kvnode: node shutdown", "err", err)
		if runErr == nil {
			runErr = err
		}
	}
	if runErr == nil {
		logger.Info("kvnode: stopped")
	}
	return runErr
}

// httpStopGrace is how long a stopping node lets HTTP requests in flight
// finish before it closes their connections.
const httpStopGrace = 3 * time.Second

// noneIfZero turns a duration flag's 0 ("none") into the -1 that
// cluster.Config reads as none (its 0 means the default).
func noneIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
