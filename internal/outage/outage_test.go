package outage

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// An outage is logged once, however many failures it has, and its end
// once, with its length on the watch's clock.
func TestOutageLoggedOnceAndRecoveryOnce(t *testing.T) {
	var buf bytes.Buffer
	w := New("redis", "REDIS_URL", slog.New(slog.NewJSONHandler(&buf, nil)))
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	w.now = func() time.Time { return now }

	w.Up() // nothing to say while up
	if !w.Down("dial tcp 127.0.0.1:6379: connect: connection refused") {
		t.Error("first failure not reported as news")
	}
	for range 50 {
		if w.Down("dial tcp 127.0.0.1:6379: connect: connection refused") {
			t.Fatal("a later failure reported as news")
		}
	}
	if !w.IsDown() {
		t.Error("IsDown false during the outage")
	}
	now = now.Add(42 * time.Second)
	w.Up()
	w.Up()
	if w.IsDown() {
		t.Error("IsDown true after the recovery")
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 || lines[0]["msg"] != "redis unavailable" || lines[0]["variable"] != "REDIS_URL" ||
		lines[1]["msg"] != "redis available again" || lines[1]["down_for"] != float64(42*time.Second) {
		t.Errorf("log = %v, want one outage line naming REDIS_URL and one recovery line after 42s", lines)
	}
	// A failure reported just after the recovery is a leftover of the
	// outage (a call begun before it ended, a dead pooled connection), not
	// news; the probe's own failure is.
	now = now.Add(settle / 2)
	if w.Down("read tcp 127.0.0.1:6379: connection reset by peer") || w.IsDown() {
		t.Error("a leftover failure right after the recovery reported as a new outage")
	}
	if !w.down("dial tcp 127.0.0.1:6379: connect: connection refused", true) {
		t.Error("the probe's failure right after a recovery not reported")
	}
	now = now.Add(time.Second)
	w.Up()
	// Past the settling time, a second outage is news again.
	now = now.Add(settle)
	if !w.Down("EOF") {
		t.Error("a new outage not reported")
	}
	var nilWatch *Watch
	if nilWatch.Down("x") || nilWatch.IsDown() {
		t.Error("a nil watch reports")
	}
	nilWatch.Up()
}

func TestIsConnectionFailure(t *testing.T) {
	for _, msg := range []string{
		"Dequeue error: UNKNOWN: redis eval error: dial tcp 127.0.0.1:6379: connect: connection refused",
		"redis: connection pool: failed to dial after 5 attempts: dial tcp 127.0.0.1:1: connect: connection refused",
		"read tcp 127.0.0.1:5432: i/o timeout",
	} {
		if !IsConnectionFailure(msg) {
			t.Errorf("%q: not a connection failure", msg)
		}
	}
	if IsConnectionFailure(`ERROR: duplicate key value violates unique constraint "accounts_pkey" (SQLSTATE=23505)`) {
		t.Error("a constraint violation taken for a connection failure")
	}
}
