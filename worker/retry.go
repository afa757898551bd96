package worker

import (
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/mail"
)

// RetryPolicy is exponential backoff with jitter. Someone is waiting for a
// verification email, so the first retries come within seconds rather than
// asynq's default of a quarter minute and more.
type RetryPolicy struct {
	Base time.Duration // first delay; default 1 s
	Max  time.Duration // cap; default 10 min
}

// Delay is asynq's RetryDelayFunc. A provider's Retry-After wins over the
// computed backoff, so a 429 waits as long as Resend asks.
func (p RetryPolicy) Delay(n int, err error, _ *asynq.Task) time.Duration {
	if d, ok := mail.RetryAfter(err); ok && d > 0 {
		return d
	}
	base, max := p.Base, p.Max
	if base <= 0 {
		base = time.Second
	}
	if max <= 0 {
		max = 10 * time.Minute
	}
	d := base
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	// ±20% jitter spreads the retries of a burst that failed together.
	return d - d/5 + time.Duration(rand.Int64N(int64(d/5)*2+1))
}
