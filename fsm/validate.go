package fsm

import (
	"bytes"
	"errors"

	"github.com/shelfdb/shelf/api"
	"github.com/ugorji/go/codec"
)

// MaxHash bounds Command.Hash (a schema definition's hash).
const MaxHash = 128

// Validate checks everything about c that does not depend on the state:
// a known op, the sizes of every field (value and schema definition up to
// maxRecord bytes, tree name, client id and name, reason, hash, session),
// a value or definition that is well-formed CBOR nested at most
// api.MaxDepth deep, and no field the op does not take. The same function runs before
// raft.Apply (on the node that takes the request and again on the leader:
// a refused command never reaches the log) and in apply (every replica
// refuses a bad entry alike). The error is an *api.Error (invalid or
// too_large), or nil.
func Validate(c *Command, maxRecord int) error {
	if e := validate(c, maxRecord, true); e != nil {
		return e
	}
	if len(c.Batch) > 0 {
		return api.Errorf(api.CodeInvalid, "%s: only a batch entry carries commands", c.Op)
	}
	return nil
}

// Validate is the package's Validate with this state machine's limit of
// a record's size (Config.MaxRecordSize).
func (f *FSM) Validate(c *Command) error {
	return Validate(c, f.cfg.MaxRecordSize)
}

// treeOps take a tree (and, all but register-schema, a record key).
var treeOps = map[Op]bool{
	OpCreate: true, OpUpdate: true, OpDelete: true, OpBorrow: true, OpReturn: true,
	OpForceReturn: true, OpRelease: true, OpSetState: true, OpRevise: true,
	OpRegisterSchema: true, OpExpire: true, OpTakeOver: true,
}

// validate is Validate; strict false gives the rules of version 1 (a state
// from before rules were versioned, see RulesVersion): what that code
// refused, and nothing more, so that a replica of this code applying an
// old log agrees with the replicas that wrote it. It accepted a
// register-client without a name, data on ops that take none, any
// well-formed CBOR value however deep, and ignored session fields and the
// reason of ops other than force-return, take-over and remove-client.
func validate(c *Command, maxRecord int, strict bool) *api.Error {
	if !strict {
		return validateV1(c, maxRecord)
	}
	if c == nil {
		return api.Errorf(api.CodeInvalid, "no command")
	}
	if c.Op == 0 || c.Op >= opMax {
		return api.Errorf(api.CodeInvalid, "unknown op %d", c.Op)
	}
	op := c.Op
	if op == OpBatch {
		return api.Errorf(api.CodeInvalid, "%s: batch entries are made by the leader, not taken as commands", op)
	}
	switch {
	case len(c.Cluster) > MaxClientID:
		return api.Errorf(api.CodeInvalid, "%s: cluster id longer than %d bytes", op, MaxClientID)
	case len(c.Client) > MaxClientID:
		return api.Errorf(api.CodeInvalid, "%s: client id longer than %d bytes", op, MaxClientID)
	case len(c.Name) > MaxClientName:
		return api.Errorf(api.CodeInvalid, "%s: name longer than %d bytes", op, MaxClientName)
	case len(c.Reason) > MaxReason:
		return api.Errorf(api.CodeInvalid, "%s: reason longer than %d bytes", op, MaxReason)
	case len(c.Hash) > MaxHash:
		return api.Errorf(api.CodeInvalid, "%s: hash longer than %d bytes", op, MaxHash)
	case len(c.Tree) > MaxTreeName:
		return api.Errorf(api.CodeInvalid, "%s: tree name longer than %d bytes", op, MaxTreeName)
	case c.TTL < 0:
		return api.Errorf(api.CodeInvalid, "%s: negative ttl", op)
	case len(c.Token) > MaxTokenName:
		return api.Errorf(api.CodeInvalid, "%s: token name longer than %d bytes", op, MaxTokenName)
	case len(c.Role) > 16:
		return api.Errorf(api.CodeInvalid, "%s: role longer than 16 bytes", op)
	}
	if e := validSession(c); e != nil {
		return e
	}
	if treeOps[op] {
		if e := treeNameErr(c.Tree); e != nil {
			return e
		}
	}
	switch op {
	case OpCreate, OpUpdate:
		return validData(op, c.Data, maxRecord)
	case OpRegisterSchema:
		if c.Hash == "" {
			return api.Errorf(api.CodeInvalid, "register-schema: no definition hash")
		}
		return validData(op, c.Data, maxRecord)
	case OpRegisterClient:
		if c.Client == "" {
			return api.Errorf(api.CodeInvalid, "register-client: no client id")
		}
		if c.Name == "" {
			return api.Errorf(api.CodeInvalid, "register-client: no name: a client needs a name (shown to operators as the borrower)")
		}
	case OpCreateToken, OpRevokeToken:
		if e := validToken(c); e != nil {
			return e
		}
	case OpGrantRange:
		if c.Size == 0 || c.Size > MaxRangeSize {
			return api.Errorf(api.CodeInvalid, "grant-range: size %d out of 1..%d", c.Size, MaxRangeSize)
		}
	}
	if len(c.Data) > 0 {
		return api.Errorf(api.CodeInvalid, "%s takes no data (got %d bytes)", op, len(c.Data))
	}
	return nil
}

// validateV1 is validate under rules 1.
func validateV1(c *Command, maxRecord int) *api.Error {
	if c == nil {
		return api.Errorf(api.CodeInvalid, "no command")
	}
	if c.Op == 0 || c.Op >= opMax {
		return api.Errorf(api.CodeInvalid, "unknown op %d", c.Op)
	}
	op := c.Op
	if c.TTL < 0 && (op == OpBorrow || op == OpTakeOver) {
		return api.Errorf(api.CodeInvalid, "%s: negative ttl", op)
	}
	if len(c.Reason) > MaxReason && (op == OpForceReturn || op == OpTakeOver || op == OpRemoveClient) {
		return api.Errorf(api.CodeInvalid, "%s: reason longer than %d bytes", op, MaxReason)
	}
	switch op {
	case OpSetCluster:
		if c.Cluster == "" || len(c.Cluster) > MaxClientID {
			return api.Errorf(api.CodeInvalid, "set-cluster: invalid cluster id %q", c.Cluster)
		}
	case OpRegisterClient:
		if c.Client == "" || len(c.Client) > MaxClientID {
			return api.Errorf(api.CodeInvalid, "register-client: invalid client id %q", c.Client)
		}
		if len(c.Name) > MaxClientName {
			return api.Errorf(api.CodeInvalid, "register-client: name longer than %d bytes", MaxClientName)
		}
	case OpCreateToken, OpRevokeToken:
		if e := validToken(c); e != nil {
			return e
		}
	case OpGrantRange:
		if c.Size == 0 || c.Size > MaxRangeSize {
			return api.Errorf(api.CodeInvalid, "grant-range: size %d out of 1..%d", c.Size, MaxRangeSize)
		}
	case OpCreate, OpRegisterSchema:
		if e := treeNameErr(c.Tree); e != nil {
			return e
		}
	}
	switch op {
	case OpCreate, OpUpdate:
		return validDataV1(op, c.Data, maxRecord)
	case OpRegisterSchema:
		if e := validDataV1(op, c.Data, maxRecord); e != nil {
			return e
		}
		if c.Hash == "" || len(c.Hash) > MaxHash {
			return api.Errorf(api.CodeInvalid, "register-schema: invalid hash %q", c.Hash)
		}
	}
	return nil
}

// validDataV1 is validData under rules 1: any well-formed CBOR item.
func validDataV1(op Op, data []byte, max int) *api.Error {
	if e := dataSize(op, data, max); e != nil {
		return e
	}
	var raw codec.Raw
	if err := api.Unmarshal(data, &raw); err != nil {
		return api.Errorf(api.CodeInvalid, "%s: value is not well-formed CBOR: %v", op, err)
	}
	return nil
}

// validSession checks the exactly-once fields: a session and a sequence
// number go together, within their sizes.
func validSession(c *Command) *api.Error {
	if c.Session == "" && c.Seq == 0 && c.ReqHash == "" {
		return nil
	}
	switch {
	case c.Session == "" || c.Seq == 0:
		return api.Errorf(api.CodeInvalid, "%s: a session and a sequence number go together (session %q, seq %d)", c.Op, c.Session, c.Seq)
	case len(c.Session) > MaxSessionID || bytes.IndexByte([]byte(c.Session), 0) >= 0:
		return api.Errorf(api.CodeInvalid, "%s: invalid session id: want 1-%d bytes without NUL", c.Op, MaxSessionID)
	case len(c.ReqHash) > MaxReqHash:
		return api.Errorf(api.CodeInvalid, "%s: request hash longer than %d bytes", c.Op, MaxReqHash)
	}
	return nil
}

// validData checks a record value or a schema definition: present, within
// max bytes, one well-formed CBOR item nested at most api.MaxDepth deep.
// That a record value is a map of fields is the API's rule
// (api.CheckValue), not the state machine's: values written before it
// stay valid.
func validData(op Op, data []byte, max int) *api.Error {
	if e := dataSize(op, data, max); e != nil {
		return e
	}
	if err := api.CheckCBOR(data); err != nil {
		return api.Errorf(api.CodeInvalid, "%s: %v", op, err)
	}
	return nil
}

// treeNameErr is ValidTreeName's refusal as an *api.Error, or nil.
func treeNameErr(tree string) *api.Error {
	err := ValidTreeName(tree)
	if err == nil {
		return nil
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae
	}
	return api.Errorf(api.CodeInvalid, "%v", err)
}

// dataSize refuses a value or definition that is empty or over max bytes.
func dataSize(op Op, data []byte, max int) *api.Error {
	if len(data) == 0 {
		return api.Errorf(api.CodeInvalid, "%s: empty value", op)
	}
	if len(data) > max {
		return api.Errorf(api.CodeTooLarge, "%s: value of %d bytes exceeds the limit of %d", op, len(data), max)
	}
	return nil
}
