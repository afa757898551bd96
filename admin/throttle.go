package admin

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/dormancy/dormancy/internal/outage"
	"github.com/go-redis/redis_rate/v10"
)

// Throttle bounds failed attempts at a guessable or brute-forceable
// credential: Attempts failures per key, one more each Window/Attempts
// after that (GCRA on Redis's own clock, so every admin process counts
// together and tests can use a short window).
type Throttle struct {
	Attempts int
	Window   time.Duration
}

// DefaultThrottle: ten failures, then one more every 90 seconds.
var DefaultThrottle = Throttle{Attempts: 10, Window: 15 * time.Minute}

// throttle counts failures of one kind of credential.
type throttle struct {
	lim   *redis_rate.Limiter
	limit redis_rate.Limit
	kind  string
	log   *slog.Logger
	redis *outage.Watch
}

func newThrottle(lim *redis_rate.Limiter, t Throttle, kind string, log *slog.Logger, redis *outage.Watch) throttle {
	return throttle{lim: lim, limit: redis_rate.Limit{Rate: t.Attempts, Burst: t.Attempts, Period: t.Window}, kind: kind, log: log, redis: redis}
}

// unavailable records a failed throttle call: with a watch, as the
// outage's one line; without, on its own line.
func (t throttle) unavailable(ctx context.Context, err error) {
	if t.redis == nil {
		t.log.WarnContext(ctx, "admin: throttle unavailable", slog.String("kind", t.kind), slog.String("error", err.Error()))
		return
	}
	t.redis.Down(err.Error())
}

func (t throttle) key(k string) string { return "dormancy:throttle:" + t.kind + ":" + k }

// blocked reports whether key has used up its failures, and when to try
// again. It is asked before the credential is checked, so a guesser who is
// blocked learns nothing, not even from the right credential. A Redis
// failure lets the request through (logged): the credential check still
// stands, and an outage must not lock operators and hosts out.
func (t throttle) blocked(ctx context.Context, key string) (retryAfter time.Duration, blocked bool) {
	if t.redis.IsDown() {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(ctx, throttleWait)
	defer cancel()
	res, err := t.lim.AllowN(ctx, t.key(key), t.limit, 0)
	if err != nil {
		t.unavailable(ctx, err)
		return 0, false
	}
	if res.Remaining >= 1 {
		return 0, false
	}
	return t.limit.Period / time.Duration(t.limit.Rate), true
}

// throttleWait bounds a throttle's Redis call: a Redis that does not
// answer must not hold up every API call and login behind go-redis's dial
// retries. A healthy Redis answers in well under a millisecond.
const throttleWait = 250 * time.Millisecond

// failed counts one failure of key, and logs once when it uses up the
// allowance (not every refusal after it).
func (t throttle) failed(ctx context.Context, key string) {
	if t.redis.IsDown() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, throttleWait)
	defer cancel()
	res, err := t.lim.AllowN(ctx, t.key(key), t.limit, 1)
	if err != nil {
		t.unavailable(ctx, err)
		return
	}
	if res.Allowed > 0 && res.Remaining < 1 {
		t.log.WarnContext(ctx, "admin: throttled", slog.String("kind", t.kind), slog.String("key", key),
			slog.Int("failures", t.limit.Burst), slog.Duration("window", t.limit.Period), slog.String("request_id", requestID(ctx)))
	}
}

// setRetryAfter says, in whole seconds, when a throttled client may try
// again.
func setRetryAfter(w http.ResponseWriter, retryAfter time.Duration) {
	secs := int((retryAfter + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
}

// clientIP is the request's client: the peer address, or, when the peer
// is a trusted proxy, the nearest address in X-Forwarded-For that is not
// one. A forwarded header from anyone else is ignored, so a client cannot
// pick the key it is counted under.
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	if !isTrusted(peer) {
		return peer.Unmap().String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if !isTrusted(a) {
			return a.Unmap().String()
		}
	}
	return peer.Unmap().String()
}
