package worker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
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
	// ByType overrides Base and Max for the task types starting with a
	// prefix ("email:", "maintenance:sweep"); the longest prefix wins.
	ByType []TypeBackoff
}

// TypeBackoff is the backoff of the task types that start with Prefix.
type TypeBackoff struct {
	Prefix    string
	Base, Max time.Duration
}

// ParseTypeBackoffs reads "prefix=base..max" entries separated by commas,
// as RETRY_BACKOFF holds them: "email:=2s..15m,login:attempt=500ms..1m".
func ParseTypeBackoffs(s string) ([]TypeBackoff, error) {
	var out []TypeBackoff
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		prefix, span, ok := strings.Cut(entry, "=")
		lo, hi, ok2 := strings.Cut(span, "..")
		if !ok || !ok2 || prefix == "" {
			return nil, fmt.Errorf("%q: want prefix=base..max, such as email:=2s..15m", entry)
		}
		base, err1 := time.ParseDuration(lo)
		max, err2 := time.ParseDuration(hi)
		if err1 != nil || err2 != nil || base <= 0 || max < base {
			return nil, fmt.Errorf("%q: want two positive durations, base no longer than max", entry)
		}
		out = append(out, TypeBackoff{Prefix: prefix, Base: base, Max: max})
	}
	return out, nil
}

// withWebhookDefault adds DefaultWebhookBackoff unless an entry covers
// webhook:deliver already.
func (p RetryPolicy) withWebhookDefault() RetryPolicy {
	for _, b := range p.ByType {
		if strings.HasPrefix("webhook:deliver", b.Prefix) && b.Prefix != "" {
			return p
		}
	}
	p.ByType = append(append([]TypeBackoff(nil), p.ByType...), DefaultWebhookBackoff)
	return p
}

// Delay is asynq's RetryDelayFunc. A provider's Retry-After wins over the
// computed backoff, so a 429 waits as long as Resend asks.
func (p RetryPolicy) Delay(n int, err error, t *asynq.Task) time.Duration {
	if d, ok := mail.RetryAfter(err); ok && d > 0 {
		return d
	}
	var wr *webhookRetry
	if errors.As(err, &wr) && wr.after > 0 {
		return wr.after
	}
	base, max := p.Base, p.Max
	best := -1
	for _, b := range p.ByType {
		if t != nil && strings.HasPrefix(t.Type(), b.Prefix) && len(b.Prefix) > best {
			base, max, best = b.Base, b.Max, len(b.Prefix)
		}
	}
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
