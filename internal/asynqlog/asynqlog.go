// Package asynqlog routes asynq's own logs (server, scheduler) through
// slog, as JSON lines like the rest of a process's log.
package asynqlog

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/dormancy/dormancy/internal/outage"
)

// Logger is an asynq.Logger writing to L. With a Redis watch, asynq's
// complaints that it cannot reach Redis (every poll of every loop, during
// an outage) become the watch's one line.
type Logger struct {
	L     *slog.Logger
	Redis *outage.Watch
}

// outage hands a warning or error about reaching Redis to the watch, and
// keeps the rest of what asynq says during an outage (a completion it will
// retry recording, …) at debug: the outage's one line covers it.
func (a Logger) outage(msg string) bool {
	switch {
	case a.Redis == nil:
		return false
	case outage.IsConnectionFailure(msg):
		a.Redis.Down(msg)
		return true
	case a.Redis.IsDown():
		a.L.Debug(msg, "component", "asynq")
		return true
	}
	return false
}

func (a Logger) Debug(args ...any) { a.L.Debug(fmt.Sprint(args...), "component", "asynq") }
func (a Logger) Info(args ...any)  { a.L.Info(fmt.Sprint(args...), "component", "asynq") }
func (a Logger) Warn(args ...any) {
	msg := fmt.Sprint(args...)
	if a.outage(msg) {
		return
	}
	// Every task that ends for good has already said why in one line (a
	// rejection at ERROR, or "task failed" on its last try); asynq's own
	// word on it is for debugging.
	if strings.HasPrefix(msg, "Retry exhausted for task") {
		a.L.Debug(msg, "component", "asynq")
		return
	}
	a.L.Warn(msg, "component", "asynq")
}
func (a Logger) Error(args ...any) {
	if msg := fmt.Sprint(args...); !a.outage(msg) {
		a.L.Error(msg, "component", "asynq")
	}
}

// Fatal is logged as an error: asynq calls it where it would exit, and the
// process decides that itself.
func (a Logger) Fatal(args ...any) { a.L.Error(fmt.Sprint(args...), "component", "asynq") }
