package client

import (
	"context"
	"errors"
	"time"

	"github.com/shelfdb/shelf/api"
)

// onceAttempts bounds the attempts of a write made directly (not through
// the outbox).
const onceAttempts = 3

// once runs a write that needs the cluster (a checkout, a return, a
// schema, a range) with one Idempotency-Key for all its attempts: when an
// attempt's answer is lost (unreachable server, unavailable, no leader) it
// is sent again, up to onceAttempts in all, to the server the client
// follows then, and the cluster applies it once whatever happened to the
// earlier attempts. It returns the last attempt's error.
func (db *DB) once(ctx context.Context, write func(ctx context.Context, c *api.Client) error) error {
	ctx = api.WithIdempotencyKey(ctx, api.NewIdempotencyKey())
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := write(ctx, db.current())
		if err == nil || attempt == onceAttempts || !outcomeUnknown(err) {
			return err
		}
		db.log.Debug("client: write not answered; sending it again with the same idempotency key", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-db.ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// outcomeUnknown tells an error after which a write may or may not have
// been applied, or was not sent: sending it again is the way to know.
func outcomeUnknown(err error) bool {
	return errors.Is(err, api.ErrUnreachable) || errors.Is(err, api.ErrUnavailable) || errors.Is(err, api.ErrNoLeader)
}
