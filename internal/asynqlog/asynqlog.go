// Package asynqlog routes asynq's own logs (server, scheduler) through
// slog, as JSON lines like the rest of a process's log.
package asynqlog

import (
	"fmt"
	"log/slog"
	"strings"
)

// Logger is an asynq.Logger writing to l.
type Logger struct{ L *slog.Logger }

func (a Logger) Debug(args ...any) { a.L.Debug(fmt.Sprint(args...), "component", "asynq") }
func (a Logger) Info(args ...any)  { a.L.Info(fmt.Sprint(args...), "component", "asynq") }
func (a Logger) Warn(args ...any) {
	msg := fmt.Sprint(args...)
	// Every task that ends for good has already said why in one line (a
	// rejection at ERROR, or "task failed" on its last try); asynq's own
	// word on it is for debugging.
	if strings.HasPrefix(msg, "Retry exhausted for task") {
		a.L.Debug(msg, "component", "asynq")
		return
	}
	a.L.Warn(msg, "component", "asynq")
}
func (a Logger) Error(args ...any) { a.L.Error(fmt.Sprint(args...), "component", "asynq") }

// Fatal is logged as an error: asynq calls it where it would exit, and the
// process decides that itself.
func (a Logger) Fatal(args ...any) { a.L.Error(fmt.Sprint(args...), "component", "asynq") }
