package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

// IdempotencyHeader is the request header that makes a write safe to
// send again: the cluster applies the first request with a given key and
// answers every later one with the same key with the first one's result
// (ReplayedHeader set, WriteResult.Repeat true). The same key with a
// different request (method, path, query or body) is refused with
// ErrKeyReused. Keys are 1 to 255 visible ASCII characters; the cluster
// keeps a key at least 24 hours (leader time) after its first use, unless
// more than 100,000 keys are in use, when the oldest are forgotten first.
const IdempotencyHeader = "Idempotency-Key"

// ReplayedHeader is set to "true" on the answer to a request whose
// Idempotency-Key was used before: the answer is the first request's.
const ReplayedHeader = "Idempotent-Replayed"

type idempotencyKey struct{}

// WithIdempotencyKey returns a context that makes every write a Client
// sends with it carry key in the Idempotency-Key header. Use one key per
// logical write and the same key for each retry of it:
//
//	ctx := api.WithIdempotencyKey(ctx, api.NewIdempotencyKey())
//	res, err := c.Create(ctx, "parts", req)
//	if errors.Is(err, api.ErrUnreachable) || errors.Is(err, api.ErrUnavailable) {
//		res, err = c.Create(ctx, "parts", req) // applied once, whatever happened to the first
//	}
//
// An empty key removes it.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKey{}, key)
}

// IdempotencyKey returns the key set by WithIdempotencyKey, or "".
func IdempotencyKey(ctx context.Context) string {
	k, _ := ctx.Value(idempotencyKey{}).(string)
	return k
}

// NewIdempotencyKey returns a fresh random key (128 bits, hex).
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
