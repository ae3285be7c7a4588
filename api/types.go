package api

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Key identifies a record within a tree: an id and a revision. Revisions
// start at 1; Revise makes Rev+1 from a released record.
type Key struct {
	ID  uint64 `json:"id"`
	Rev uint32 `json:"rev"`
}

// String formats the key as "ID/REV".
func (k Key) String() string { return fmt.Sprintf("%d/%d", k.ID, k.Rev) }

// ParseKey parses "ID/REV" or "ID" (revision 0, meaning "latest" where an
// API accepts it).
func ParseKey(s string) (Key, error) {
	idPart, revPart, hasRev := strings.Cut(s, "/")
	id, err := strconv.ParseUint(idPart, 10, 64)
	if err != nil || id == 0 {
		return Key{}, Errorf(CodeInvalid, "invalid record id %q: want a positive integer", idPart)
	}
	k := Key{ID: id}
	if hasRev {
		rev, err := strconv.ParseUint(revPart, 10, 32)
		if err != nil || rev == 0 {
			return Key{}, Errorf(CodeInvalid, "invalid revision %q: want a positive integer", revPart)
		}
		k.Rev = uint32(rev)
	}
	return k, nil
}

// Record is a record as the API returns it. In CBOR the value travels as
// Data (the record's CBOR bytes, untouched); in JSON it travels as Value
// (the same bytes decoded to JSON, with field names from the record).
type Record struct {
	Tree      string    `json:"tree"`
	Key       Key       `json:"key"`
	Schema    uint32    `json:"schema"` // schema version the record was written with; 0 = schemaless
	Data      []byte    `json:"-" codec:"data"`
	Value     any       `json:"value" codec:"-"`
	Released  bool      `json:"released"`
	State     int64     `json:"state"`
	CreatedBy string    `json:"created_by,omitempty"`
	Created   time.Time `json:"created"`
	UpdatedBy string    `json:"updated_by,omitempty"`
	Updated   time.Time `json:"updated"`
	Index     uint64    `json:"index"` // raft index of the record's last change
	Borrow    *Borrow   `json:"borrow,omitempty"`
	// ValueError, in a JSON answer, says why Value is null although the
	// record has data: the stored bytes have no JSON view (say, nested
	// deeper than the decoder takes, or a NaN float). The record is
	// listed all the same; CBOR answers carry the bytes as stored.
	ValueError string `json:"value_error,omitempty" codec:"-"`
}

// Borrow is a check-out of one record by one client.
type Borrow struct {
	Tree       string    `json:"tree"`
	Key        Key       `json:"key"`
	Client     string    `json:"client"`
	ClientName string    `json:"client_name,omitempty"`
	Since      time.Time `json:"since"`
	Expires    time.Time `json:"expires,omitzero"` // zero: no expiry
}

// Range is a block of record ids granted to one client: [Start, End).
type Range struct {
	Start   uint64    `json:"start"`
	End     uint64    `json:"end"` // exclusive
	Client  string    `json:"client"`
	Granted time.Time `json:"granted"`
	Used    uint64    `json:"used"` // ids of this range used by creates
	Next    uint64    `json:"next"` // one past the highest id used, or Start
	// Retired is set when the client was removed: no id of the range is
	// ever used again (ranges are never granted twice anyway).
	Retired bool `json:"retired,omitempty" codec:"retired,omitempty"`
}

// Size returns the number of ids in the range.
func (r Range) Size() uint64 { return r.End - r.Start }

// Contains reports whether id lies in the range.
func (r Range) Contains(id uint64) bool { return id >= r.Start && id < r.End }

// ClientInfo is a registered client (an application replica or a tool).
// LastSeen and ReplicaIndex come from the client's log stream requests: a
// node serving GET /v1/log?client=ID notes, in memory, when it saw the
// client and the applied index of its replica (the log request's from),
// and GET /v1/clients shows the latest sighting of any node. Older nodes
// committed sightings to the state (at most every 30s per client); a
// client never seen is stored as before these fields existed (CBOR omits
// them), so its bytes, and the content hash, are too.
type ClientInfo struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Registered   time.Time `json:"registered"`
	LastSeen     time.Time `json:"last_seen,omitzero" codec:"last_seen,omitempty"` // zero: never seen
	ReplicaIndex uint64    `json:"replica_index" codec:"replica_index,omitempty"`  // applied index of its replica when last seen
}

// Schema is one registered version of a tree's schema. The definition is
// opaque to the state machine: CBOR in Definition, decoded in Value for JSON.
type Schema struct {
	Tree       string    `json:"tree"`
	Version    uint32    `json:"version"`
	Hash       string    `json:"hash"`
	Definition []byte    `json:"-" codec:"definition"`
	Value      any       `json:"definition" codec:"-"`
	Registered time.Time `json:"registered"`
}

// Tree summarises a tree.
type Tree struct {
	Name    string    `json:"name"`
	Records uint64    `json:"records"`
	Schemas []uint32  `json:"schemas"` // registered schema versions, ascending
	Created time.Time `json:"created"`
}

// AuditAction names what happened to a record's borrow.
type AuditAction string

// The actions of the borrow audit history.
const (
	AuditBorrowed      AuditAction = "borrowed"       // Client checked the record out
	AuditRenewed       AuditAction = "renewed"        // Client borrowed it again while holding it (new expiry)
	AuditReturned      AuditAction = "returned"       // the holder checked it in
	AuditForced        AuditAction = "forced"         // an operator ended Holder's borrow (Reason)
	AuditExpired       AuditAction = "expired"        // Holder's borrow ran out of time
	AuditTaken         AuditAction = "taken"          // an operator moved the borrow from Holder to Client (Reason)
	AuditReleased      AuditAction = "released"       // the holder released the record, which ended the borrow
	AuditDeleted       AuditAction = "deleted"        // the holder deleted the record, which ended the borrow
	AuditClientRemoved AuditAction = "client_removed" // an operator removed Holder, which ended the borrow (Reason)
)

// AuditEntry is one change of a record's borrow, as replicated: every
// replica holds the same history.
type AuditEntry struct {
	Tree    string      `json:"tree"`
	Key     Key         `json:"key"`
	Index   uint64      `json:"index"` // log index of the change
	Time    time.Time   `json:"time"`  // the leader's clock
	Action  AuditAction `json:"action"`
	Client  string      `json:"client,omitempty"` // the new holder (borrowed, renewed, taken)
	Holder  string      `json:"holder,omitempty"` // the holder whose borrow ended
	Reason  string      `json:"reason,omitempty"` // forced, taken, client_removed
	Expires time.Time   `json:"expires,omitzero"` // borrowed, renewed, taken: the expiry, if any
}

// Status describes a node and the cluster as that node sees it.
type Status struct {
	ClusterID    string   `json:"cluster_id"`
	NodeID       string   `json:"node_id"`
	State        string   `json:"state"` // Leader, Follower, Candidate, Shutdown
	Leader       string   `json:"leader"`
	LeaderHTTP   string   `json:"leader_http,omitempty"`
	Term         uint64   `json:"term"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	LastLogIndex uint64   `json:"last_log_index"`
	Members      []Member `json:"members"`
	// LeaderContactMS and NoLeader: as in LogPage.
	LeaderContactMS int64 `json:"leader_contact_ms,omitempty"`
	NoLeader        bool  `json:"no_leader,omitempty"`
}

// Member is one node: its raft role and its gossip health.
type Member struct {
	ID         string `json:"id"`
	RaftAddr   string `json:"raft_addr"`
	HTTPAddr   string `json:"http_addr,omitempty"`
	GossipAddr string `json:"gossip_addr,omitempty"`
	Suffrage   string `json:"suffrage"` // Voter, Nonvoter, or "" when not in the raft configuration
	Health     string `json:"health"`   // alive, suspect, dead, left, unknown
	Leader     bool   `json:"leader"`
}

// LogEntry is one applied command entry of the replicated log.
type LogEntry struct {
	Index uint64 `json:"index"`
	Data  []byte `json:"data"` // an encoded fsm.Command
}

// LogPage answers a log stream request. Entries are the command entries
// with index in (from, Next], in order and without gaps: a replica that
// applies them may set its applied index to Next.
//
// Leader, LeaderContactMS and NoLeader tell how the serving node sees the
// cluster's leader: its id ("" when the node knows none), how long ago the
// node last heard from it in milliseconds (0 on the leader itself), and
// whether the node is cut off: it knows no leader, or has not heard from it
// for several heartbeats. Such a node's log may be behind the cluster's and
// writes through it fail with no_leader: a follower of the cluster should
// move to another node. A node with no leader answers a long poll early.
type LogPage struct {
	ClusterID       string     `json:"cluster_id"`
	Entries         []LogEntry `json:"entries"`
	Next            uint64     `json:"next"`
	Leader          string     `json:"leader,omitempty"`
	LeaderContactMS int64      `json:"leader_contact_ms,omitempty"`
	NoLeader        bool       `json:"no_leader,omitempty"`
}

// RecordPage is one page of a record listing. After is the cursor of the
// next page ("" when this is the last page).
type RecordPage struct {
	Records []Record `json:"records"`
	After   string   `json:"after,omitempty"`
}

// RegisterClientRequest registers a new client.
type RegisterClientRequest struct {
	Name string `json:"name"`
}

// GrantRangeRequest asks for a new key range for a client.
type GrantRangeRequest struct {
	Size uint64 `json:"size"`
}

// WriteRequest creates or updates a record. Client is the writing client's
// id (empty for operator creates, which get a cluster-assigned id). ID is
// set for creates from a granted range, 0 to let the cluster assign one.
type WriteRequest struct {
	Client string `json:"client,omitempty"`
	ID     uint64 `json:"id,omitempty"`
	Schema uint32 `json:"schema,omitempty"`
	Data   []byte `json:"-" codec:"data"`
	Value  any    `json:"value" codec:"-"`
}

// ActionRequest carries the parameters of borrow, return, force-return,
// release, set-state and revise.
type ActionRequest struct {
	Client string `json:"client,omitempty"`
	Reason string `json:"reason,omitempty"`
	State  int64  `json:"state,omitempty"`
	TTL    string `json:"ttl,omitempty"` // borrow expiry as a Go duration, "" for none
}

// SchemaRequest registers a schema definition for a tree.
type SchemaRequest struct {
	Definition []byte `json:"-" codec:"definition"`
	Value      any    `json:"definition" codec:"-"`
}

// WriteResult answers a write: the key written and the log index at which
// the change was applied.
type WriteResult struct {
	Key     Key    `json:"key"`
	Index   uint64 `json:"index"`
	Version uint32 `json:"version,omitempty"` // schema registration: the version
	// Repeat: the request repeated one applied before (same Idempotency-Key
	// or session sequence number); this is the first one's result.
	Repeat bool `json:"repeat,omitempty"`
}

// EventType names a change to the replicated state.
type EventType string

// The events of the state machine.
const (
	EventCreated      EventType = "created"        // a record was created (also the draft of a revise)
	EventUpdated      EventType = "updated"        // a record's value changed
	EventDeleted      EventType = "deleted"        // a record was deleted (its borrow with it)
	EventBorrowed     EventType = "borrowed"       // a record was checked out (or its borrow renewed)
	EventReturned     EventType = "returned"       // a borrow ended: check-in, force-return (Forced) or release
	EventReleased     EventType = "released"       // a record became immutable
	EventStateChanged EventType = "state_changed"  // a record's state number changed
	EventSchema       EventType = "schema"         // a schema version was registered (Key.Rev holds no meaning)
	EventClient       EventType = "client"         // a client registered or was renamed
	EventRange        EventType = "range"          // a key range was granted to Client
	EventClientGone   EventType = "client_removed" // an operator removed Client: its borrows were returned, its ranges retired
)

// Event is one change, produced by applying the log entry at Index. An
// entry may produce several events (revise: created and borrowed).
type Event struct {
	Index   uint64    `json:"index"`
	Type    EventType `json:"type"`
	Tree    string    `json:"tree,omitempty"`
	Key     Key       `json:"key"`
	Client  string    `json:"client,omitempty"` // the acting client ("" for the operator)
	Holder  string    `json:"holder,omitempty"` // EventReturned: the client whose borrow ended
	State   int64     `json:"state,omitempty"`
	Version uint32    `json:"version,omitempty"` // EventSchema: the version
	Forced  bool      `json:"forced,omitempty"`  // EventReturned by an operator
	Expired bool      `json:"expired,omitempty"` // EventReturned because the borrow's time ran out
	Reason  string    `json:"reason,omitempty"`
	Time    time.Time `json:"time"`
}

// EventsFromNow, as the from of an event stream request, starts at the
// serving node's current applied index: only events applied after the
// request arrived are answered. On the wire it is from=now.
const EventsFromNow = ^uint64(0)

// EventPage answers an event stream request (GET /v1/events). Events are
// the events with Index in (from, Next], in order; a page never splits the
// events of one log entry. Next is the index up to which the page is
// complete: continue with from=Next. Next may be past the last event's
// index, since log entries that changed nothing (or nothing matching the
// tree filter) produce no events; with nothing new it equals from.
type EventPage struct {
	Events []Event `json:"events"`
	Next   uint64  `json:"next"`
}

// ContentHash is a node's content hash: a SHA-256 (hex) over its whole
// replicated state at applied index Index. Two replicas at the same index
// have the same hash when they converged.
type ContentHash struct {
	Index uint64 `json:"index"`
	Hash  string `json:"hash"`
	Node  string `json:"node"`
}

// MaxBatchOps is the largest number of writes one batch may carry.
const MaxBatchOps = 1000

// BatchOp is one write of a batch.
type BatchOp struct {
	Op     string `json:"op"` // "create", "update" or "delete"
	Tree   string `json:"tree"`
	Key    Key    `json:"key"` // create: Key.ID from one of the client's ranges (0: the cluster assigns one)
	Schema uint32 `json:"schema,omitempty"`
	Data   []byte `json:"data,omitempty"`
	// Seq, when not 0, is the op's sequence number in the session of the
	// batch's Client: the cluster applies it at most once and answers a
	// repeat (a batch sent again after a lost answer) with the result of
	// the first. Sequence numbers of a client never repeat for another
	// write; the cluster remembers the last 1024 of each client.
	Seq uint64 `json:"seq,omitempty"`
}

// BatchRequest carries writes of one client, applied as consecutive log
// entries in their order. Each is accepted or rejected on its own. Ops
// with a Seq need Client; with an Idempotency-Key header instead, op i is
// sequence number i+1 of the key's session and the ops carry no Seq.
type BatchRequest struct {
	Client string    `json:"client,omitempty"`
	Ops    []BatchOp `json:"ops"`
}

// BatchItem is the outcome of one write of a batch: applied at Index, or
// rejected with Err. Err with code unavailable means the outcome is not
// known (the batch was cut short): send that write again.
type BatchItem struct {
	Key    Key    `json:"key"`
	Index  uint64 `json:"index,omitempty"`
	Err    *Error `json:"error,omitempty"`
	Repeat bool   `json:"repeat,omitempty"` // answered from the record of an earlier send (see BatchOp.Seq)
}

// BatchResult answers a batch, one item per op, in order.
type BatchResult struct {
	Results []BatchItem `json:"results"`
}
