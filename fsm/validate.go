package fsm

import (
	"bytes"
	"errors"

	"github.com/shelfdb/shelf/api"
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
	if e := validate(c, maxRecord); e != nil {
		return e
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

func validate(c *Command, maxRecord int) *api.Error {
	if c == nil {
		return api.Errorf(api.CodeInvalid, "no command")
	}
	if c.Op == 0 || c.Op >= opMax {
		return api.Errorf(api.CodeInvalid, "unknown op %d", c.Op)
	}
	op := c.Op
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
	}
	if e := validSession(c); e != nil {
		return e
	}
	if treeOps[op] {
		if err := ValidTreeName(c.Tree); err != nil {
			var ae *api.Error
			if errors.As(err, &ae) {
				return ae
			}
			return api.Errorf(api.CodeInvalid, "%v", err)
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
	if len(data) == 0 {
		return api.Errorf(api.CodeInvalid, "%s: empty value", op)
	}
	if len(data) > max {
		return api.Errorf(api.CodeTooLarge, "%s: value of %d bytes exceeds the limit of %d", op, len(data), max)
	}
	if err := api.CheckCBOR(data); err != nil {
		return api.Errorf(api.CodeInvalid, "%s: %v", op, err)
	}
	return nil
}
