package fsm

import (
	"fmt"

	"github.com/shelfdb/shelf/api"
)

// Op is the kind of a command.
type Op uint8

// The commands of the state machine.
const (
	OpSetCluster     Op = iota + 1 // set the cluster id (once, by the first leader)
	OpRegisterClient               // register a client id with a name
	OpGrantRange                   // grant a key range to a client
	OpCreate                       // create a record
	OpUpdate                       // replace a record's value (borrow holder only)
	OpDelete                       // delete a record (borrow holder only)
	OpBorrow                       // check out a record
	OpReturn                       // check in a record
	OpForceReturn                  // operator ends someone's borrow
	OpRelease                      // make a record immutable
	OpSetState                     // set a record's state number
	OpRevise                       // make revision Rev+1 of a released record as a draft
	OpRegisterSchema               // register a schema version for a tree
	OpClientSeen                   // record that a client's replica was seen, and its applied index (proposed by older nodes only: sightings now stay out of the log)
	OpExpire                       // end a borrow whose expiry has passed (the leader's clock)
	OpTakeOver                     // operator moves a record's borrow to another client (Client)
	OpRemoveClient                 // operator removes a client (Client): borrows returned, ranges retired
	OpRemoveMember                 // operator removed a server (Member, as it ran: Start) from the raft configuration
	OpReadmitMember                // a removed server (Member) restarted and is a member again
	OpSetRules                     // the cluster moves to rules version Rules (see RulesVersion)
	OpCreateToken                  // operator creates API token Name (Role, Hash; Client for a bound writer), rules 3
	OpRevokeToken                  // operator revokes API token Name, rules 3
	OpBatch                        // several commands in one entry (Batch), applied in order, each as if it were its own entry; made by the leader only, rules 4
	opMax
)

var opNames = [...]string{
	OpSetCluster: "set-cluster", OpRegisterClient: "register-client", OpGrantRange: "grant-range",
	OpCreate: "create", OpUpdate: "update", OpDelete: "delete", OpBorrow: "borrow",
	OpReturn: "return", OpForceReturn: "force-return", OpRelease: "release",
	OpSetState: "set-state", OpRevise: "revise", OpRegisterSchema: "register-schema",
	OpClientSeen: "client-seen", OpExpire: "expire", OpTakeOver: "take-over", OpRemoveClient: "remove-client",
	OpRemoveMember: "remove-member", OpReadmitMember: "readmit-member", OpSetRules: "set-rules",
	OpCreateToken: "create-token", OpRevokeToken: "revoke-token", OpBatch: "batch",
}

// ParseOp returns the op named name (as String gives it).
func ParseOp(name string) (Op, bool) {
	for o := OpSetCluster; o < opMax; o++ {
		if opNames[o] == name {
			return o, true
		}
	}
	return 0, false
}

// String returns the op's name.
func (o Op) String() string {
	if o > 0 && o < opMax {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Command is one entry of the replicated log, or (rules 4) one of the
// commands of an OpBatch entry. Everything that must be the
// same on every replica travels inside it: the time (chosen by the leader
// before raft.Apply), new ids, the acting client. Apply never reads the
// clock, the network or random numbers.
type Command struct {
	Op      Op      `codec:"op"`
	Time    int64   `codec:"t"`             // unix nanoseconds, leader's clock
	Cluster string  `codec:"cl,omitempty"`  // OpSetCluster
	Client  string  `codec:"c,omitempty"`   // acting client id; "" = operator (OpTakeOver: the new holder; OpRemoveClient: the client removed)
	Name    string  `codec:"n,omitempty"`   // OpRegisterClient
	Tree    string  `codec:"tr,omitempty"`  // record and schema ops
	Key     api.Key `codec:"k"`             // record ops; Key.ID 0 on create = assign
	Schema  uint32  `codec:"s,omitempty"`   // schema version of Data
	Data    []byte  `codec:"d,omitempty"`   // record CBOR or schema definition
	Size    uint64  `codec:"sz,omitempty"`  // OpGrantRange
	State   int64   `codec:"st,omitempty"`  // OpSetState
	Reason  string  `codec:"r,omitempty"`   // OpForceReturn, OpTakeOver, OpRemoveClient
	TTL     int64   `codec:"ttl,omitempty"` // OpBorrow, OpTakeOver: expiry in ns after Time (leader clock); 0 = never
	Hash    string  `codec:"h,omitempty"`   // OpRegisterSchema: definition hash; OpCreateToken: SHA-256 (hex) of the token
	Role    string  `codec:"ro,omitempty"`  // OpCreateToken: reader, writer or admin
	Token   string  `codec:"tk,omitempty"`  // OpRegisterClient (rules 3): the name of the unbound writer token that registers, bound to the new client
	Applied uint64  `codec:"ap,omitempty"`  // OpClientSeen: the replica's applied index
	Member  string  `codec:"mb,omitempty"`  // OpRemoveMember, OpReadmitMember: the server's node id
	Start   string  `codec:"ms,omitempty"`  // OpRemoveMember: the start token the server gossiped when removed ("" if unknown)
	Rules   uint32  `codec:"rv,omitempty"`  // OpSetRules: the new rules version; OpSetCluster: the new cluster's

	// Exactly-once: a command with a session and a sequence number is
	// applied at most once; a repeat is answered with the recorded result
	// (Result.Repeat). Session is a registered client's id, or, with
	// ReqHash set, an HTTP idempotency key (see session.go).
	Session string `codec:"ses,omitempty"`
	Seq     uint64 `codec:"seq,omitempty"`
	ReqHash string `codec:"rh,omitempty"` // idempotency key: hash of the request it was first used with

	// Batch holds the commands of an OpBatch entry, in order (see
	// NewBatch). Each is applied as if it were an entry of its own at
	// the batch's index: its own checks, result, events and session.
	Batch []Command `codec:"b,omitempty"`
}

// Caps of one OpBatch entry, chosen by the leader when it packs commands
// into entries. An entry stays well under what the log stores and the
// transport carries in one piece: a log page to a client replica is
// MaxLogPageBytes (4 MiB) of entry data at most, but one entry larger
// still goes whole; a forwarded batch is at most api.MaxBatchOps commands.
const (
	// MaxBatchCommands bounds the commands of one batch entry.
	MaxBatchCommands = 256
	// MaxBatchBytes bounds the encoded commands of one batch entry; a
	// command larger than this is an entry of its own.
	MaxBatchBytes = 1 << 20
)

// BatchRules is the first rules version that applies OpBatch entries.
// Under older rules every command of a batch entry is rejected, as code
// of those versions does (it does not know the op); the leader proposes
// batch entries only once the cluster runs BatchRules.
const BatchRules uint32 = 4

// Batchable reports whether c may be one of the commands of a batch entry:
// every op but the ones that change the cluster's identity or rules (which
// change how the rest of an entry is applied) and OpBatch itself.
func Batchable(c *Command) bool {
	return c != nil && c.Op != OpBatch && c.Op != OpSetCluster && c.Op != OpSetRules
}

// NewBatch returns the OpBatch entry that carries cmds (Batchable ones),
// with time t (unix nanoseconds, the leader's clock) on the entry and on
// every command.
func NewBatch(t int64, cmds []*Command) *Command {
	b := &Command{Op: OpBatch, Time: t, Batch: make([]Command, len(cmds))}
	for i, c := range cmds {
		b.Batch[i] = *c
		b.Batch[i].Time = t
		b.Batch[i].Batch = nil
	}
	return b
}

// Encode returns the command's CBOR bytes, as stored in the raft log.
func (c *Command) Encode() ([]byte, error) {
	return api.Marshal(c)
}

// DecodeCommand decodes and checks the shape of a log entry. It never
// panics, whatever the bytes.
func DecodeCommand(b []byte) (*Command, error) {
	var c Command
	if err := api.Unmarshal(b, &c); err != nil {
		return nil, api.Errorf(api.CodeInvalid, "malformed command: %v", err)
	}
	if c.Op == 0 || c.Op >= opMax {
		return nil, api.Errorf(api.CodeInvalid, "malformed command: unknown op %d", c.Op)
	}
	return &c, nil
}

// Result is what applying a command returns. Err is set when the state
// machine rejected the command; the state is then unchanged.
type Result struct {
	Err     *api.Error      `codec:"err,omitempty"`
	Key     api.Key         `codec:"k"`
	Range   *api.Range      `codec:"rg,omitempty"`
	Client  *api.ClientInfo `codec:"cli,omitempty"`
	Version uint32          `codec:"v,omitempty"`
	Index   uint64          `codec:"i"`
	Events  []api.Event     `codec:"ev,omitempty"` // what the command changed, when accepted
	// Repeat marks the answer to a session's sequence number applied
	// before: the recorded Key, Index (of the original entry), Err,
	// Version, and the Client and Range it named, as they are now; no
	// Events, and nothing was applied again.
	Repeat bool `codec:"rep,omitempty"`
	// Batch holds, for an OpBatch entry, the result of each of its
	// commands, in order (each with the entry's Index, or a repeat's
	// original one, and its own Err and Events); Events of the entry's
	// Result is then the events of all of them, in order. Never encoded:
	// callers answer the commands' results one by one.
	Batch []*Result `codec:"-" json:"-"`

	cluster string // OpSetCluster applied: the new cluster id
	tokens  bool   // the command changed the tokens
}

// Error returns the rejection as an error, or nil.
func (r *Result) Error() error {
	if r == nil || r.Err == nil {
		return nil
	}
	return r.Err
}
