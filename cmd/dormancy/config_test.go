package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/tasks"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadConfigDefaultsWorkOnLocalhost(t *testing.T) {
	c, err := LoadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.DatabaseURL, "postgres://postgres@127.0.0.1:5432/dormancy?sslmode=disable"; got != want {
		t.Errorf("DATABASE_URL = %q", got)
	}
	if c.Redis == nil || c.WorkerTaskCheckInterval != 5*time.Millisecond || c.DefaultLocale != "ja" {
		t.Errorf("defaults: %+v", c)
	}
}

func TestLoadConfigNamesEveryBadVariable(t *testing.T) {
	bad := map[string]string{
		"DATABASE_URL":               "mysql://x",
		"REDIS_URL":                  "http://nope",
		"MAIL_FROM":                  "not an address",
		"PUBLIC_BASE_URL":            "/relative",
		"DEFAULT_LOCALE":             "fr",
		"LOG_LEVEL":                  "loud",
		"WORKER_CONCURRENCY":         "many",
		"WORKER_TASK_CHECK_INTERVAL": "-1s",
		"RETRY_MAX":                  "soon",
		"RETRY_BACKOFF":              "email:=2s",
		"EMAIL_MAX_RETRY":            "-3",
		"DATABASE_MAX_CONNS":         "1",
		"CRITICAL_QUEUES":            "0",
		"TASK_RETENTION_EMAILS":      "forever",
		"TASK_RETENTION_DIRECTORY":   "500ms",
	}
	assertNamesEvery(t, bad)
	if _, err := LoadConfig(env(map[string]string{"CRITICAL_QUEUES": "4", "CRITICAL_QUEUES_SERVED": "3"})); err == nil || !strings.Contains(err.Error(), "CRITICAL_QUEUES_SERVED:") {
		t.Errorf("workers serving fewer queues than hosts use: %v", err)
	}
}

// The queue layout and the retention of done tasks in Redis: defaults,
// and 0 keeping none.
func TestLoadConfigLayout(t *testing.T) {
	c, err := LoadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := tasks.Layout{CriticalQueues: 1, Retention: tasks.TaskRetention{LoginAttempts: 10 * time.Minute, Emails: time.Hour, Directory: 10 * time.Minute}}
	if c.Layout != want || c.ServedCriticalQueues != 0 {
		t.Errorf("defaults: %+v, served %d", c.Layout, c.ServedCriticalQueues)
	}
	c, err = LoadConfig(env(map[string]string{"CRITICAL_QUEUES": "3", "CRITICAL_QUEUES_SERVED": "3", "TASK_RETENTION_LOGIN_ATTEMPTS": "0", "TASK_RETENTION_EMAILS": "2h"}))
	if err != nil {
		t.Fatal(err)
	}
	want = tasks.Layout{CriticalQueues: 3, Retention: tasks.TaskRetention{LoginAttempts: tasks.KeepNone, Emails: 2 * time.Hour, Directory: 10 * time.Minute}}
	if c.Layout != want || c.ServedCriticalQueues != 3 {
		t.Errorf("set: %+v, served %d", c.Layout, c.ServedCriticalQueues)
	}
	if c, err := LoadConfig(env(map[string]string{"CRITICAL_QUEUES": "4"})); err != nil || c.ServedCriticalQueues != 4 {
		t.Errorf("CRITICAL_QUEUES_SERVED unset: %v, %v", c.ServedCriticalQueues, err)
	}
}

// assertNamesEvery loads a configuration of bad values and checks that the
// error names each variable: one start tells the operator everything.
func assertNamesEvery(t *testing.T, bad map[string]string) {
	t.Helper()
	_, err := LoadConfig(env(bad))
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for name := range bad {
		if !strings.Contains(err.Error(), name+":") {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
}

func TestRunRefusesUnknownCommands(t *testing.T) {
	var out, errOut strings.Builder
	if err := run(t.Context(), []string{"frobnicate"}, env(nil), &out, &errOut); err == nil {
		t.Error("unknown command accepted")
	}
	if err := run(t.Context(), []string{"env"}, env(nil), &out, &errOut); err != nil || !strings.Contains(out.String(), "REDIS_URL") {
		t.Errorf("env: %v\n%s", err, out.String())
	}
}

// Each bad setting is refused by the process that reads it, naming the
// variable and what is allowed, without a panic; a process does not refuse
// to start on a setting only another one reads.
func TestBadSettingsNameTheirVariable(t *testing.T) {
	for _, c := range []struct {
		command, name, value, want string
	}{
		{"worker", "DATABASE_URL", "postgres://u@127.0.0.1:5432/d?sslmode=bogus", "sslmode is one of"},
		{"worker", "LOG_LEVEL", "verbose", "want debug, info, warn or error"},
		{"scheduler", "SCHEDULE_SWEEP", "61 * * * *", "want a cron spec in UTC"},
		{"admin", "ADMIN_SESSION_TTL", "30d", "want a duration up to 168h"},
	} {
		err := run(context.Background(), []string{c.command}, env(map[string]string{c.name: c.value}), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.name+": ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s with %s=%q: %v", c.command, c.name, c.value, err)
		}
	}
	// The worker does not read SCHEDULE_* or ADMIN_*: it gets past the
	// configuration (and fails later, on the unreachable database).
	err := run(context.Background(), []string{"worker"}, env(map[string]string{
		"SCHEDULE_SWEEP": "61 * * * *", "ADMIN_SESSION_TTL": "30d",
		"DATABASE_URL": "postgres://postgres:secret@127.0.0.1:1/x?sslmode=disable", "STARTUP_TIMEOUT": "1s",
	}), io.Discard, io.Discard)
	if err == nil || strings.Contains(err.Error(), "SCHEDULE_SWEEP") || strings.Contains(err.Error(), "ADMIN_SESSION_TTL") {
		t.Errorf("worker refused a setting it does not read: %v", err)
	}
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL (postgres://postgres:xxxxx@127.0.0.1:1/x") {
		t.Errorf("an unreachable database does not name DATABASE_URL (password hidden): %v", err)
	}
}

// Redis not answering at start: the process waits STARTUP_TIMEOUT, then
// exits naming REDIS_URL, before it ever says it started; go-redis's own
// lines are JSON in the same log.
func TestRedisDownAtStartIsABoundedExit(t *testing.T) {
	var logs bytes.Buffer
	start := time.Now()
	err := run(context.Background(), []string{"worker"}, env(map[string]string{
		"DATABASE_URL": testenv.NewDatabase(t), "REDIS_URL": "redis://127.0.0.1:1/0", "STARTUP_TIMEOUT": "1s",
	}), io.Discard, &logs)
	if err == nil || !strings.Contains(err.Error(), "REDIS_URL (redis://127.0.0.1:1/0): not answering after 1s") {
		t.Errorf("worker with Redis down: %v", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("gave up after %s, want about STARTUP_TIMEOUT", took)
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if !strings.HasPrefix(line, "{") {
			t.Errorf("a log line that is not JSON: %q", line)
		}
		if strings.Contains(line, "worker started") {
			t.Error("the worker said it started")
		}
	}
}
