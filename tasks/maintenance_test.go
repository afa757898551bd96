package tasks_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/tasks"
)

func TestNewMaintenanceTask(t *testing.T) {
	at := time.Date(2026, 11, 26, 3, 0, 41, 500, time.FixedZone("JST", 9*3600))
	for _, typ := range tasks.MaintenanceTypes {
		task, err := tasks.NewMaintenanceTask(typ, tasks.Maintenance{Period: at, BatchSize: 10, MinAgeSeconds: 60})
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		p, err := tasks.DecodeMaintenance(task.Payload())
		if err != nil {
			t.Fatalf("%s: decode: %v", typ, err)
		}
		if want := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC); !p.Period.Equal(want) || p.Period.Location() != time.UTC {
			t.Errorf("%s: period = %v, want the UTC minute %v", typ, p.Period, want)
		}
		if p.Batch() != 10 || p.MinAge(time.Hour) != time.Minute {
			t.Errorf("%s: batch %d, min age %v", typ, p.Batch(), p.MinAge(time.Hour))
		}
	}
	if got, want := tasks.MaintenanceTaskID(tasks.TypeMaintenanceSweep, at), "maintenance:sweep:202611251800"; got != want {
		t.Errorf("MaintenanceTaskID = %q, want %q", got, want)
	}
	var p tasks.Maintenance
	if p.Batch() != tasks.DefaultMaintenanceBatch || p.MinAge(time.Hour) != time.Hour {
		t.Errorf("defaults: batch %d, min age %v", p.Batch(), p.MinAge(time.Hour))
	}
	for name, c := range map[string]struct {
		typ string
		p   tasks.Maintenance
	}{
		"not a maintenance type": {tasks.TypeLoginAttempt, tasks.Maintenance{Period: at}},
		"no period":              {tasks.TypeMaintenanceSweep, tasks.Maintenance{}},
		"batch too large":        {tasks.TypeMaintenanceSweep, tasks.Maintenance{Period: at, BatchSize: tasks.MaxMaintenanceBatch + 1}},
		"negative batch":         {tasks.TypeMaintenanceSweep, tasks.Maintenance{Period: at, BatchSize: -1}},
		"negative age":           {tasks.TypeMaintenanceSweep, tasks.Maintenance{Period: at, MinAgeSeconds: -1}},
	} {
		if _, err := tasks.NewMaintenanceTask(c.typ, c.p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// One task per job and minute: a second enqueue in the same minute is
// refused, the next minute's is not.
func TestMaintenanceTaskIDNamesTheMinute(t *testing.T) {
	q := asynq.NewClient(testenv.RedisOpt())
	defer q.Close()
	at := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	enqueue := func(typ string, at time.Time) error {
		task, err := tasks.NewMaintenanceTask(typ, tasks.Maintenance{Period: at})
		if err != nil {
			t.Fatal(err)
		}
		info, err := q.Enqueue(task)
		if err == nil && info.Queue != tasks.QueueLow {
			t.Errorf("queue = %q, want low", info.Queue)
		}
		return err
	}
	if err := enqueue(tasks.TypeMaintenanceRelock, at); err != nil {
		t.Fatal(err)
	}
	if err := enqueue(tasks.TypeMaintenanceRelock, at.Add(59*time.Second)); !errors.Is(err, asynq.ErrTaskIDConflict) {
		t.Errorf("same minute: %v, want ErrTaskIDConflict", err)
	}
	if err := enqueue(tasks.TypeMaintenanceRelock, at.Add(time.Minute)); err != nil {
		t.Errorf("next minute: %v", err)
	}
	if err := enqueue(tasks.TypeMaintenanceSweep, at); err != nil {
		t.Errorf("another job, same minute: %v", err)
	}
}

func TestParseSchedule(t *testing.T) {
	for _, spec := range []string{"* * * * *", "0 * * * *", "0 3 * * *", "*/5 * * * *", "@hourly", "@daily", " 0 3 * * 1-5 "} {
		if _, err := tasks.ParseSchedule(spec); err != nil {
			t.Errorf("ParseSchedule(%q): %v", spec, err)
		}
	}
	for _, spec := range []string{"", "TZ=Asia/Tokyo 0 3 * * *", "CRON_TZ=America/New_York * * * * *", "@every 1m", "61 * * * *", "* * * * * *", "often", "0 0 30 2 *"} {
		if _, err := tasks.ParseSchedule(spec); err == nil {
			t.Errorf("ParseSchedule(%q) accepted", spec)
		}
	}
}

// A scheduled run belongs to its spec's latest minute at the worker's
// clock, however late in the period it runs; a task naming its period
// belongs to that.
func TestRunPeriod(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct{ spec, now, want string }{
		{"* * * * *", "2026-11-26T03:00:00Z", "2026-11-26T03:00:00Z"},
		{"* * * * *", "2026-11-26T03:00:59.999Z", "2026-11-26T03:00:00Z"},
		{"0 * * * *", "2026-11-26T03:59:10Z", "2026-11-26T03:00:00Z"},
		{"0 3 * * *", "2026-11-26T02:59:00Z", "2026-11-25T03:00:00Z"},
		{"0 3 * * *", "2026-11-26T03:00:01Z", "2026-11-26T03:00:00Z"},
		{"0 0 1 * *", "2026-11-26T03:00:00Z", "2026-11-01T00:00:00Z"},
		{"0 0 1 1 *", "2026-11-26T03:00:00Z", "2026-01-01T00:00:00Z"},
		{"0 0 29 2 *", "2026-11-26T03:00:00Z", "2024-02-29T00:00:00Z"},
		{"*/15 * * * *", "2026-11-26T03:44:00+09:00", "2026-11-25T18:30:00Z"},
	} {
		p := tasks.Maintenance{Spec: c.spec}
		if err := p.Validate(); err != nil {
			t.Fatalf("%s: %v", c.spec, err)
		}
		if got := p.RunPeriod(at(c.now)); !got.Equal(at(c.want)) {
			t.Errorf("RunPeriod(%s at %s) = %v, want %s", c.spec, c.now, got, c.want)
		}
	}
	p := tasks.Maintenance{Period: at("2026-11-26T03:00:30Z")}
	if got := p.RunPeriod(at("2026-11-27T00:00:00Z")); !got.Equal(at("2026-11-26T03:00:00Z")) {
		t.Errorf("RunPeriod of a named period = %v", got)
	}
	bad := tasks.Maintenance{Spec: "* * * * *", Period: at("2026-11-26T03:00:00Z")}
	if err := bad.Validate(); err == nil {
		t.Error("a spec and a period at once: accepted")
	}
	// A scheduled task has no fixed ID: replicas' tasks are told apart by
	// asynq, and the period is claimed in Postgres.
	task, err := tasks.NewMaintenanceTask(tasks.TypeMaintenanceSweep, tasks.Maintenance{Spec: "0 3 * * *"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tasks.DecodeMaintenance(task.Payload()); err != nil || got.Spec != "0 3 * * *" || !got.Period.IsZero() {
		t.Errorf("scheduled payload decodes to %+v, %v", got, err)
	}
}
