package client

import (
	"math/rand/v2"
	"time"
)

// backoff is the delay between attempts of a loop that retries against the
// cluster (the sync loop, the outbox): it starts at min and doubles on every
// failure up to max, with up to as much again of random jitter so that many
// clients do not retry in step; reset starts again from min after a success.
// It is owned by one goroutine.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(lo, hi time.Duration) *backoff { return &backoff{min: lo, max: hi, cur: lo} }

// next returns the delay before the next attempt and doubles the following one.
func (b *backoff) next() time.Duration {
	d := b.cur + rand.N(b.cur)
	b.cur = min(2*b.cur, b.max)
	return d
}

// reset makes the next delay min again.
func (b *backoff) reset() { b.cur = b.min }
