package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Role is what an API token may do (docs/http-api.md, "Authentication").
type Role string

// The roles, each allowed everything the one before it may do.
const (
	// RoleReader reads: state, the log and snapshot a replica follows, metrics.
	RoleReader Role = "reader"
	// RoleWriter writes as one client: its registration, records, borrows,
	// ranges and session (a writer token is bound to that client).
	RoleWriter Role = "writer"
	// RoleAdmin may do everything: operator actions (force-return, take,
	// clients remove, members, leader transfer), tokens, debugging.
	RoleAdmin Role = "admin"
)

// Rank orders the roles: 0 for an unknown role, then reader, writer, admin.
func (r Role) Rank() int {
	switch r {
	case RoleReader:
		return 1
	case RoleWriter:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// ParseRole returns the role named s, or an error naming the roles.
func ParseRole(s string) (Role, error) {
	if r := Role(s); r.Rank() > 0 {
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q: want reader, writer or admin", s)
}

// TokenPrefix starts every token, so that one pasted into a log or a
// repository is recognisable (and secret scanners can find it).
const TokenPrefix = "shelf_"

// NewToken returns a new random token secret: TokenPrefix and 32 random
// bytes (256 bits) in base64url.
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// TokenHash is what the cluster stores of a token: the SHA-256 of it, in
// hex. A token has 256 random bits, so the hash needs no salt or
// stretching.
func TokenHash(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

// CleanToken trims a token read from a file or a variable (surrounding
// space, a trailing newline).
func CleanToken(s string) string { return strings.TrimSpace(s) }

// TokenInfo describes an API token; the secret is never kept, nor shown.
type TokenInfo struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Client is the client a writer token acts as ("" until the token
	// registers one, or for other roles).
	Client  string    `json:"client,omitempty" codec:"client,omitempty"`
	Created time.Time `json:"created"`
}

// CreateTokenRequest is the body of POST /v1/tokens.
type CreateTokenRequest struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Client binds a writer token to an existing client; without it the
	// token is bound to the first client it registers.
	Client string `json:"client,omitempty" codec:"client,omitempty"`
}

// CreatedToken is the answer to POST /v1/tokens: the only time the
// secret is shown.
type CreatedToken struct {
	TokenInfo
	Token string `json:"token"`
}
