package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Code names a class of error. Codes travel over the wire, so a client
// library can turn an HTTP answer back into the same sentinel error the
// state machine produced.
type Code string

// The error codes of the Shelf API.
const (
	CodeInvalid         Code = "invalid"        // malformed request or command
	CodeTooLarge        Code = "too_large"      // body or record over the size limit
	CodeNotFound        Code = "not_found"      // record does not exist
	CodeTreeNotFound    Code = "tree_not_found" // tree does not exist
	CodeExists          Code = "exists"         // record key already taken
	CodeNotBorrowed     Code = "not_borrowed"   // edit without holding the borrow
	CodeBorrowed        Code = "borrowed"       // record is borrowed by another client
	CodeReleased        Code = "released"       // record is released (immutable)
	CodeNotReleased     Code = "not_released"   // operation needs a released record
	CodeNotInRange      Code = "not_in_range"   // id outside the client's granted ranges
	CodeUnknownClient   Code = "unknown_client" // client id not registered
	CodeUnknownSchema   Code = "unknown_schema" // schema version not registered for tree
	CodeIncompatible    Code = "incompatible"   // schema change refused by the compatibility rules
	CodeWrongCluster    Code = "wrong_cluster"  // peer or data belongs to another cluster
	CodeNoLeader        Code = "no_leader"      // cluster has no reachable leader right now
	CodeCompacted       Code = "compacted"      // requested log index no longer kept
	CodeUnknownMember   Code = "unknown_member" // raft server id not in configuration
	CodeUnavailable     Code = "unavailable"    // node shutting down or not ready
	CodeInternal        Code = "internal"       // bug or I/O failure on the server
	CodeMethodNotFound  Code = "method_not_allowed"
	CodeKeyReused       Code = "key_reused"      // idempotency key already used for a different request
	CodeSeqForgotten    Code = "seq_forgotten"   // session sequence number older than what the cluster remembers
	CodeForbidden       Code = "forbidden"       // the caller may not use this route
	CodeUnauthenticated Code = "unauthenticated" // no token, or an unknown or revoked one
)

// Error is the error type of every Shelf API answer and state machine
// rejection. Two Errors match with errors.Is when their codes are equal, so
// callers compare against the sentinels below whatever the message says.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Error implements error.
func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return e.Message
}

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code
	}
	return false
}

// Sentinel errors. Test with errors.Is(err, api.ErrNotBorrowed).
var (
	ErrInvalid         = &Error{Code: CodeInvalid, Message: "invalid request"}
	ErrTooLarge        = &Error{Code: CodeTooLarge, Message: "request too large"}
	ErrNotFound        = &Error{Code: CodeNotFound, Message: "record not found"}
	ErrTreeNotFound    = &Error{Code: CodeTreeNotFound, Message: "tree not found"}
	ErrExists          = &Error{Code: CodeExists, Message: "record already exists"}
	ErrNotBorrowed     = &Error{Code: CodeNotBorrowed, Message: "record is not borrowed by this client"}
	ErrBorrowed        = &Error{Code: CodeBorrowed, Message: "record is borrowed by another client"}
	ErrReleased        = &Error{Code: CodeReleased, Message: "record is released and cannot change"}
	ErrNotReleased     = &Error{Code: CodeNotReleased, Message: "record is not released"}
	ErrNotInRange      = &Error{Code: CodeNotInRange, Message: "id is not in a key range granted to this client"}
	ErrUnknownClient   = &Error{Code: CodeUnknownClient, Message: "client is not registered"}
	ErrUnknownSchema   = &Error{Code: CodeUnknownSchema, Message: "schema version is not registered"}
	ErrIncompatible    = &Error{Code: CodeIncompatible, Message: "schema change is incompatible with the tree's earlier versions"}
	ErrWrongCluster    = &Error{Code: CodeWrongCluster, Message: "belongs to another cluster"}
	ErrNoLeader        = &Error{Code: CodeNoLeader, Message: "no leader"}
	ErrCompacted       = &Error{Code: CodeCompacted, Message: "log index compacted, fetch a snapshot"}
	ErrUnknownMember   = &Error{Code: CodeUnknownMember, Message: "unknown cluster member"}
	ErrUnavailable     = &Error{Code: CodeUnavailable, Message: "node unavailable"}
	ErrInternal        = &Error{Code: CodeInternal, Message: "internal error"}
	ErrKeyReused       = &Error{Code: CodeKeyReused, Message: "idempotency key already used for a different request"}
	ErrForbidden       = &Error{Code: CodeForbidden, Message: "forbidden"}
	ErrUnauthenticated = &Error{Code: CodeUnauthenticated, Message: "unauthenticated: no valid token"}
	ErrSeqForgotten    = &Error{Code: CodeSeqForgotten, Message: "sequence number is older than the session's window; the cluster cannot tell whether it was applied"}
)

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of err if it is (or wraps) an *Error, and
// CodeInternal otherwise.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// HTTPStatus returns the HTTP status code an error code is answered with.
func HTTPStatus(code Code) int {
	switch code {
	case CodeInvalid, CodeUnknownSchema:
		return http.StatusBadRequest
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeNotFound, CodeTreeNotFound, CodeUnknownClient, CodeUnknownMember:
		return http.StatusNotFound
	case CodeExists, CodeNotBorrowed, CodeBorrowed, CodeReleased, CodeNotReleased, CodeWrongCluster, CodeIncompatible:
		return http.StatusConflict
	case CodeNotInRange, CodeForbidden:
		return http.StatusForbidden
	case CodeUnauthenticated:
		return http.StatusUnauthorized
	case CodeKeyReused:
		return http.StatusUnprocessableEntity
	case CodeSeqForgotten:
		return http.StatusConflict
	case CodeCompacted:
		return http.StatusGone
	case CodeNoLeader, CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeMethodNotFound:
		return http.StatusMethodNotAllowed
	default:
		return http.StatusInternalServerError
	}
}
