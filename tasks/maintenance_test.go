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
