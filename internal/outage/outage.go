// Package outage tells of a service's outages once: a process that loses
// Redis or Postgres logs that once, naming the variable that points at it,
// and logs the recovery once, with how long it lasted. Every failure in
// between, from asynq, go-redis or the process's own calls, is the same
// news and goes to debug.
package outage

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Watch follows one service.
type Watch struct {
	name, variable string
	log            *slog.Logger
	now            func() time.Time

	mu    sync.Mutex
	since time.Time // when the outage began; zero while the service answers
	upAt  time.Time // when the service last answered after an outage
}

// settle is how long after a recovery a failure reported by a client is
// taken for a leftover of the outage (a call begun before it ended, a
// pooled connection that died with the old server) rather than a new one.
// A new outage in that window is still seen: the probe's own failure
// always counts, and it pings every second.
const settle = 2 * time.Second

// New watches the service name ("redis", "postgres") that the variable
// (REDIS_URL, DATABASE_URL) points at. A nil Watch is a valid one that
// never reports anything.
func New(name, variable string, log *slog.Logger) *Watch {
	return &Watch{name: name, variable: variable, log: log, now: time.Now}
}

// Down records a failure to reach the service. The first of an outage is
// logged at ERROR and reported true; the rest go to debug.
func (w *Watch) Down(cause string) bool {
	return w.down(cause, false)
}

func (w *Watch) down(cause string, probed bool) bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	if !probed && w.since.IsZero() && !w.upAt.IsZero() && w.now().Sub(w.upAt) < settle {
		w.mu.Unlock()
		w.log.Debug(w.name+" failure left over from the last outage", slog.String("error", cause))
		return false
	}
	first := w.since.IsZero()
	if first {
		w.since = w.now()
	}
	w.mu.Unlock()
	if first {
		w.log.Error(w.name+" unavailable", slog.String("variable", w.variable), slog.String("error", cause))
	} else {
		w.log.Debug(w.name+" still unavailable", slog.String("error", cause))
	}
	return first
}

// Up records that the service answered; the first answer after an outage
// is logged once.
func (w *Watch) Up() {
	if w == nil {
		return
	}
	w.mu.Lock()
	since := w.since
	w.since = time.Time{}
	if !since.IsZero() {
		w.upAt = w.now()
	}
	w.mu.Unlock()
	if !since.IsZero() {
		w.log.Info(w.name+" available again", slog.String("variable", w.variable),
			slog.Duration("down_for", w.now().Sub(since).Round(time.Millisecond)))
	}
}

// IsDown reports whether an outage is under way.
func (w *Watch) IsDown() bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.since.IsZero()
}

// Probe pings the service every interval until ctx ends, so that an
// outage is seen, and its end, even when nothing else calls the service.
func (w *Watch) Probe(ctx context.Context, every time.Duration, ping func(context.Context) error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, every)
		err := ping(pctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			w.down(err.Error(), true)
		default:
			w.Up()
		}
	}
}

// connectionFailures are what a failure to reach a service says, in the
// messages of asynq, go-redis and the drivers.
var connectionFailures = []string{
	"dial tcp", "connection refused", "connection reset", "broken pipe", "i/o timeout",
	"EOF", "no such host", "LOADING", "connection pool", "use of closed network connection",
	"context deadline exceeded",
}

// IsConnectionFailure reports whether a log message or error text says
// a service could not be reached, rather than that it refused something.
func IsConnectionFailure(msg string) bool {
	for _, s := range connectionFailures {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
