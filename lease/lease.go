// Package lease owns the borrow rules of Shelf: who may edit a record, when
// a borrow counts as held, and what a conflicting borrow answers. The rules
// are pure functions of the stored borrow, the acting client and the
// command's time, so every replica that applies the same log entry reaches
// the same verdict.
//
// The rules:
//   - A borrow belongs to a client id, not to a connection: it survives
//     restarts of servers and clients.
//   - A borrow with an expiry is held while now < Expires, where now is the
//     time carried by the command (chosen by the leader before the entry is
//     appended). Once now >= Expires the borrow is no longer held, whether or
//     not an expiry command has removed it yet.
//   - Only the holder may edit, delete or release a borrowed record; a
//     record nobody holds can be edited by nobody.
//   - Borrowing a record held by another client fails with api.ErrBorrowed;
//     borrowing a record one already holds renews it.
//   - A borrow whose time ran out ends exactly once, as expired: by the
//     expire command the leader applies once its clock passes the expiry
//     (after a grace period when it has just taken over, see cluster), or
//     by whatever command touches the borrow first (a borrow, a return, a
//     force-return, a take-over, the removal of its holder).
//   - An operator may end any borrow (force-return, with a reason), move it
//     to another client in one step (take-over), or remove a client, which
//     returns all its borrows.
//   - Every change of a borrow is kept in the record's replicated history
//     (api.AuditEntry): borrowed, renewed, returned, forced, expired,
//     taken, released, deleted, client_removed.
package lease

import (
	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/storage"
)

// Held reports whether b is a borrow still in force at time now (unix ns).
func Held(b *storage.Borrow, now int64) bool {
	return b != nil && (b.Expires == 0 || now < b.Expires)
}

// CanEdit returns nil when client holds b at time now, and an error
// matching api.ErrNotBorrowed otherwise (an *api.Error, ready to be a
// state machine rejection). name describes the record.
func CanEdit(b *storage.Borrow, client, name string, now int64) *api.Error {
	switch {
	case client == "":
		return api.Errorf(api.CodeNotBorrowed, "%s: editing needs a borrow, and the request names no client", name)
	case !Held(b, now):
		return api.Errorf(api.CodeNotBorrowed, "%s is not borrowed by client %s: check it out first", name, client)
	case b.Client != client:
		return api.Errorf(api.CodeNotBorrowed, "%s is borrowed by client %s, not by %s", name, b.Client, client)
	}
	return nil
}

// CanBorrow returns nil when client may borrow a record whose current
// borrow is b, and an error matching api.ErrBorrowed when another client
// holds it. holderName is the holder's registered name, for the message.
func CanBorrow(b *storage.Borrow, client, holderName, name string, now int64) *api.Error {
	if Held(b, now) && b.Client != client {
		return api.Errorf(api.CodeBorrowed, "%s is borrowed by %s (client %s)", name, holderName, b.Client)
	}
	return nil
}
