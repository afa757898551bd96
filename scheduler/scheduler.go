// Package scheduler is the process that starts dormancy's maintenance:
// relocking passed same-day unlocks, sweeping dormant accounts, purging dead
// verification links, pre-lock warnings and requeueing lost mail.
//
// It is asynq's own Scheduler (robfig/cron underneath), so its entries are
// registered in Redis and Asynqmon's Schedulers tab lists each job with
// its spec, its last and its next run. A run does no work itself: it
// enqueues the job's maintenance:* task, the same task every period. Any
// number of scheduler replicas may run, each enqueueing every period; the
// worker's claim of the period in Postgres (tasks.Maintenance) makes each
// period run once.
//
// Specs are read in UTC. The jobs that depend on a company's calendar
// (the same-day deadline, the pre-lock warning's date and hour) compute it
// in the company's time zone themselves, so no cron entry falls into the
// hour a DST change skips.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/robfig/cron/v3"

	"github.com/dormancy/dormancy/internal/asynqlog"
	"github.com/dormancy/dormancy/internal/outage"
	"github.com/dormancy/dormancy/tasks"
)

// Job is one maintenance job and when it runs.
type Job struct {
	// Type is the maintenance task type the job enqueues.
	Type string
	// Spec is a five-field cron spec or a descriptor (@hourly, @daily),
	// in UTC (tasks.ParseSchedule); Off disables the job.
	Spec string
	// MaxRetry is how often a failed run is retried before it is archived;
	// the next period runs regardless.
	MaxRetry int
	// BatchSize and MinAge go into the task's payload; zero means the
	// job's default (see tasks.Maintenance).
	BatchSize int
	MinAge    time.Duration
}

// Off as a spec disables a job.
const Off = "off"

// DefaultJobs are the jobs with their default schedules.
func DefaultJobs() []Job {
	return []Job{
		{Type: tasks.TypeMaintenanceRelock, Spec: "* * * * *", MaxRetry: 3},
		{Type: tasks.TypeMaintenanceRequeueMail, Spec: "* * * * *", MaxRetry: 3, MinAge: tasks.DefaultMailRequeueAfter},
		{Type: tasks.TypeMaintenancePurgeTokens, Spec: "0 * * * *", MaxRetry: 3, MinAge: tasks.DefaultTokenRetention},
		{Type: tasks.TypeMaintenanceSweep, Spec: "0 3 * * *", MaxRetry: 3},
		// Hourly, so that each company's warnings go out in the first hour
		// after policy.PrelockSendFrom in its own time zone.
		{Type: tasks.TypeMaintenancePrelockWarning, Spec: "0 * * * *", MaxRetry: 3},
		// Daily, after the sweep, away from the hour's other jobs.
		{Type: tasks.TypeMaintenanceRetention, Spec: "30 4 * * *", MaxRetry: 3},
		// Hourly: each company's digest goes out in its own 09:00 hour.
		{Type: tasks.TypeMaintenanceDigest, Spec: "5 * * * *", MaxRetry: 3},
	}
}

// Config is what the scheduler needs; cmd/dormancy fills it from the
// environment.
type Config struct {
	Redis  asynq.RedisConnOpt
	Jobs   []Job
	Logger *slog.Logger
	// Now is the clock of the start-up log's next runs; nil means
	// time.Now. The runs themselves fire on the wall clock, and the worker
	// reads the period off its own clock.
	Now func() time.Time
	// LastRun, when set, is told each job's run enqueued.
	LastRun func(typ string, at time.Time)
	// RedisWatch, when set, turns asynq's repeated complaints during a
	// Redis outage into its one line.
	RedisWatch *outage.Watch
	// Heartbeat is how often the entries are written to Redis for
	// Asynqmon; 0 means asynq's default (5 s).
	Heartbeat time.Duration
}

type job struct {
	Job
	schedule cron.Schedule
	task     *asynq.Task
}

// Scheduler enqueues the maintenance tasks on their schedules.
type Scheduler struct {
	cfg  Config
	jobs []job
}

// New checks every job and returns a scheduler; Run starts it.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Redis == nil {
		return nil, errors.New("scheduler.New: Redis is required")
	}
	if cfg.LastRun == nil {
		cfg.LastRun = func(string, time.Time) {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Scheduler{cfg: cfg}
	seen := map[string]bool{}
	for _, j := range cfg.Jobs {
		switch {
		case !slices.Contains(tasks.MaintenanceTypes, j.Type):
			return nil, fmt.Errorf("scheduler.New: %q is not a maintenance task type", j.Type)
		case seen[j.Type]:
			return nil, fmt.Errorf("scheduler.New: %s is configured twice", j.Type)
		case j.MaxRetry < 0:
			return nil, fmt.Errorf("scheduler.New: %s: negative MaxRetry", j.Type)
		}
		seen[j.Type] = true
		if strings.EqualFold(strings.TrimSpace(j.Spec), Off) {
			continue
		}
		sched, err := tasks.ParseSchedule(j.Spec)
		if err != nil {
			return nil, fmt.Errorf("scheduler.New: %s: spec %q: %w", j.Type, j.Spec, err)
		}
		// A payload the task constructor would refuse is refused at start,
		// not at the first run.
		t, err := tasks.NewMaintenanceTask(j.Type, tasks.Maintenance{
			Spec: strings.TrimSpace(j.Spec), BatchSize: j.BatchSize, MinAgeSeconds: int64(j.MinAge / time.Second)})
		if err != nil {
			return nil, fmt.Errorf("scheduler.New: %s: %w", j.Type, err)
		}
		s.jobs = append(s.jobs, job{Job: j, schedule: sched, task: t})
	}
	return s, nil
}

// Next is when job typ runs next after t, zero if it is off.
func (s *Scheduler) Next(typ string, t time.Time) time.Time {
	for _, j := range s.jobs {
		if j.Type == typ {
			return j.schedule.Next(t.UTC())
		}
	}
	return time.Time{}
}

// Run schedules the jobs until ctx is cancelled, then waits for runs in
// progress and removes its entries from Redis.
func (s *Scheduler) Run(ctx context.Context) error {
	log := s.cfg.Logger
	sch := asynq.NewScheduler(s.cfg.Redis, &asynq.SchedulerOpts{
		Location:          time.UTC,
		Logger:            asynqlog.Logger{L: log, Redis: s.cfg.RedisWatch},
		LogLevel:          asynq.WarnLevel,
		HeartbeatInterval: s.cfg.Heartbeat,
		// asynq's cron has no recovery of its own: the hooks keep a panic
		// of theirs from ending the process, and the enqueue is asynq's.
		PostEnqueueFunc: func(info *asynq.TaskInfo, err error) {
			defer recoverRun(log)
			if err != nil {
				return // EnqueueErrorHandler has it
			}
			log.Debug("maintenance enqueued", slog.String("task_type", info.Type), slog.String("task_id", info.ID))
			s.cfg.LastRun(info.Type, time.Now())
		},
		// PostEnqueueFunc gets no task on a failure; this says which job.
		//lint:ignore SA1019 the replacement cannot name the job that failed
		EnqueueErrorHandler: func(t *asynq.Task, _ []asynq.Option, err error) {
			defer recoverRun(log)
			log.Error("maintenance not enqueued", slog.String("task_type", t.Type()), slog.String("error", err.Error()))
		},
	})
	for _, j := range s.jobs {
		if _, err := sch.Register(j.Spec, j.task, asynq.MaxRetry(j.MaxRetry)); err != nil {
			return fmt.Errorf("scheduler.Run: %s: %w", j.Type, err)
		}
		log.Info("job scheduled", slog.String("task_type", j.Type), slog.String("spec", j.Spec),
			slog.Time("next", j.schedule.Next(s.cfg.Now().UTC())))
	}
	if err := sch.Start(); err != nil {
		return fmt.Errorf("scheduler.Run: %w", err)
	}
	<-ctx.Done()
	sch.Shutdown()
	return nil
}

func recoverRun(log *slog.Logger) {
	if r := recover(); r != nil {
		log.Error("maintenance run panicked", slog.Any("panic", r))
	}
}
