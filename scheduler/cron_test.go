package scheduler

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/tasks"
)

// What a cron entry does when its time comes, without waiting for the
// minute: each entry enqueues its own job for the minute of the
// scheduler's clock.
func TestCronEntriesEnqueueTheirJobAtTheSchedulersClock(t *testing.T) {
	insp := asynq.NewInspector(testenv.RedisOpt())
	defer insp.Close()
	if queues, _ := insp.Queues(); slices.Contains(queues, tasks.QueueLow) {
		if _, err := insp.DeleteAllPendingTasks(tasks.QueueLow); err != nil {
			t.Fatal(err)
		}
	}
	q := asynq.NewClient(testenv.RedisOpt())
	defer q.Close()
	at := time.Date(2026, 11, 26, 4, 17, 42, 0, time.UTC)
	s, err := New(Config{Queue: q, Jobs: DefaultJobs(), Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	c := s.newCron(context.Background())
	entries := c.Entries()
	if got, want := len(entries), len(tasks.MaintenanceTypes); got != want {
		t.Fatalf("cron entries = %d, want %d", got, want)
	}
	for _, e := range entries {
		e.WrappedJob.Run()
	}
	for _, typ := range tasks.MaintenanceTypes {
		if _, err := insp.GetTaskInfo(tasks.QueueLow, tasks.MaintenanceTaskID(typ, at)); err != nil {
			t.Errorf("%s: no task for 04:17: %v", typ, err)
		}
	}
	if _, err := insp.DeleteAllPendingTasks(tasks.QueueLow); err != nil {
		t.Fatal(err)
	}
}

// enqueueFunc lets a test make enqueueing fail in ways Redis will not.
type enqueueFunc func(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)

func (f enqueueFunc) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	return f(ctx, t, opts...)
}

// A run that panics is recovered and logged: the scheduler process, and
// with it every other job, keeps going.
func TestCronRecoversAPanickingRun(t *testing.T) {
	var logs bytes.Buffer
	s, err := New(Config{
		Queue: enqueueFunc(func(context.Context, *asynq.Task, ...asynq.Option) (*asynq.TaskInfo, error) {
			panic("redis client exploded")
		}),
		Jobs:   []Job{{Type: tasks.TypeMaintenanceRelock, Spec: "* * * * *"}},
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	s.newCron(context.Background()).Entries()[0].WrappedJob.Run()
	if !strings.Contains(logs.String(), "redis client exploded") {
		t.Errorf("the panic was not logged:\n%s", logs.String())
	}
}
