package cluster

// Crash stops the node without handing over leadership or leaving gossip,
// as if the process died.
func (n *Node) Crash() error { return n.shutdown(false) }

// WithBootID returns cfg with the kernel's boot id replaced by id, so that
// a test can simulate a restart of the machine.
func WithBootID(cfg Config, id string) Config { cfg.bootID = id; return cfg }

// WithWALSegmentSize returns cfg with raft-wal segments of size bytes, so
// that a test gets sealed segments from a few records.
func WithWALSegmentSize(cfg Config, size int) Config { cfg.walSegmentSize = size; return cfg }

// WithRules returns cfg for a node whose code claims to know state
// machine rules up to v only (an older binary, for the cluster's rules).
func WithRules(cfg Config, v uint32) Config { cfg.rules = v; return cfg }
