package main

import (
	"strings"
	"testing"
	"time"

	"github.com/dormancy/dormancy/scheduler"
	"github.com/dormancy/dormancy/tasks"
)

func TestSchedulerConfigDefaults(t *testing.T) {
	c, err := LoadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	defaults := map[string]string{}
	for _, j := range scheduler.DefaultJobs() {
		defaults[j.Type] = j.Spec
	}
	if got, want := len(c.Jobs), len(tasks.MaintenanceTypes); got != want {
		t.Fatalf("jobs = %d, want %d", got, want)
	}
	for _, j := range c.Jobs {
		if j.Spec != defaults[j.Type] || j.MaxRetry != 3 || j.BatchSize != tasks.DefaultMaintenanceBatch {
			t.Errorf("%s: %+v, want spec %q, 3 retries, batches of %d", j.Type, j, defaults[j.Type], tasks.DefaultMaintenanceBatch)
		}
		want := map[string]time.Duration{tasks.TypeMaintenancePurgeTokens: 168 * time.Hour, tasks.TypeMaintenanceRequeueMail: 2 * time.Minute}[j.Type]
		if j.MinAge != want {
			t.Errorf("%s: min age %v, want %v", j.Type, j.MinAge, want)
		}
	}
	var out, errOut strings.Builder
	if err := run(t.Context(), []string{"env"}, env(nil), &out, &errOut); err != nil || !strings.Contains(out.String(), "0 3 * * *") {
		t.Errorf("env does not list the sweep's default spec: %v\n%s", err, out.String())
	}
}

func TestSchedulerConfigNamesEveryBadVariable(t *testing.T) {
	bad := map[string]string{
		"SCHEDULE_SWEEP":         "TZ=Asia/Tokyo 0 3 * * *",
		"SCHEDULE_RELOCK":        "@every 1m",
		"SCHEDULE_PURGE_TOKENS":  "0 24 * * *",
		"MAINTENANCE_MAX_RETRY":  "-1",
		"MAINTENANCE_BATCH_SIZE": "0",
		"TOKEN_RETENTION":        "1ms",
		"MAIL_REQUEUE_AFTER":     "soon",
	}
	assertNamesEvery(t, bad)
}

func TestSchedulerConfigTurnsAJobOff(t *testing.T) {
	c, err := LoadConfig(env(map[string]string{"SCHEDULE_PRELOCK_WARNING": "off", "SCHEDULE_SWEEP": "30 18 * * *"}))
	if err != nil {
		t.Fatal(err)
	}
	s, err := scheduler.New(scheduler.Config{Redis: c.Redis, Jobs: c.Jobs})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	if got := s.Next(tasks.TypeMaintenancePrelockWarning, at); !got.IsZero() {
		t.Errorf("prelock warning is off but runs at %v", got)
	}
	if got, want := s.Next(tasks.TypeMaintenanceSweep, at), at.Add(18*time.Hour+30*time.Minute); !got.Equal(want) {
		t.Errorf("sweep runs at %v, want %v", got, want)
	}
}
