// Package scheduler is the process that starts dormancy's maintenance:
// relocking passed same-day unlocks, sweeping dormant accounts, purging dead
// verification links, pre-lock warnings and requeueing lost mail.
//
// A cron run does no work itself: it enqueues one maintenance:* task whose
// ID names the job and the run's minute, kept in Redis for the job's
// period. Any number of scheduler replicas may run; for each period the
// first enqueue wins, the others are told the task exists, and the worker
// runs it once.
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

	"github.com/dormancy/dormancy/tasks"
)

// Enqueuer is the part of *asynq.Client the scheduler uses.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Job is one maintenance job and when it runs.
type Job struct {
	// Type is the maintenance task type the job enqueues.
	Type string
	// Spec is a five-field cron spec or a descriptor (@hourly, @daily),
	// in UTC; Off disables the job.
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
	}
}

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSpec parses a job's spec. It refuses a time zone prefix (specs are
// UTC) and @every, whose runs are not aligned to the clock: two replicas
// started apart would run in different minutes, and both would do the work.
func ParseSpec(spec string) (cron.Schedule, error) {
	spec = strings.TrimSpace(spec)
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, fmt.Errorf("scheduler.ParseSpec(%q): specs are in UTC; company time zones are handled by the jobs", spec)
	}
	if strings.HasPrefix(spec, "@every") {
		return nil, fmt.Errorf("scheduler.ParseSpec(%q): @every is not aligned to the clock; use a cron spec", spec)
	}
	s, err := parser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("scheduler.ParseSpec(%q): %w", spec, err)
	}
	return s, nil
}

// Config is what the scheduler needs; cmd/dormancy fills it from the
// environment.
type Config struct {
	Queue  Enqueuer
	Jobs   []Job
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests inject their own.
	Now func() time.Time
	// LastRun, when set, is told each job's latest successful run: its
	// period enqueued, or found enqueued by another scheduler.
	LastRun func(typ string, at time.Time)
}

type job struct {
	Job
	schedule cron.Schedule
}

// Scheduler enqueues the maintenance tasks on their schedules.
type Scheduler struct {
	queue   Enqueuer
	jobs    []job
	log     *slog.Logger
	now     func() time.Time
	lastRun func(typ string, at time.Time)
}

// New checks every job and returns a scheduler; Run starts it.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Queue == nil {
		return nil, errors.New("scheduler.New: Queue is required")
	}
	s := &Scheduler{queue: cfg.Queue, log: cfg.Logger, now: cfg.Now, lastRun: cfg.LastRun}
	if s.lastRun == nil {
		s.lastRun = func(string, time.Time) {}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
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
		sched, err := ParseSpec(j.Spec)
		if err != nil {
			return nil, fmt.Errorf("scheduler.New: %s: %w", j.Type, err)
		}
		next := sched.Next(s.now().UTC())
		if next.IsZero() {
			return nil, fmt.Errorf("scheduler.New: %s: spec %q never runs", j.Type, j.Spec)
		}
		// A payload the task constructor would refuse is refused at start,
		// not at the first run.
		payload := tasks.Maintenance{Period: next, BatchSize: j.BatchSize, MinAgeSeconds: int64(j.MinAge / time.Second)}
		if err := payload.Validate(); err != nil {
			return nil, fmt.Errorf("scheduler.New: %s: %w", j.Type, err)
		}
		s.jobs = append(s.jobs, job{Job: j, schedule: sched})
	}
	return s, nil
}

func (s *Scheduler) job(typ string) (job, bool) {
	for _, j := range s.jobs {
		if j.Type == typ {
			return j, true
		}
	}
	return job{}, false
}

// RunOnce enqueues the run of job typ for the period holding now: the UTC
// minute of now. It is what each cron entry calls, with the scheduler's
// clock. It reports whether this call enqueued the task; false with a nil
// error means another replica (or an earlier call) already did for this
// period.
//
// The task is kept in Redis for the job's period after it finished, so a
// replica that fires a little later still finds it; the next period's task
// has another ID and is not blocked.
func (s *Scheduler) RunOnce(ctx context.Context, typ string, now time.Time) (bool, error) {
	j, ok := s.job(typ)
	if !ok {
		return false, fmt.Errorf("scheduler.RunOnce(%s): no such job, or it is off", typ)
	}
	period := now.UTC().Truncate(time.Minute)
	keep := time.Minute
	if next := j.schedule.Next(period); !next.IsZero() && next.Sub(period) > keep {
		keep = next.Sub(period)
	}
	t, err := tasks.NewMaintenanceTask(typ, tasks.Maintenance{
		Period: period, BatchSize: j.BatchSize, MinAgeSeconds: int64(j.MinAge / time.Second),
	})
	if err != nil {
		return false, fmt.Errorf("scheduler.RunOnce(%s): %w", typ, err)
	}
	info, err := s.queue.EnqueueContext(ctx, t, asynq.Retention(keep), asynq.MaxRetry(j.MaxRetry))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		s.log.Debug("maintenance already enqueued", slog.String("task_type", typ), slog.Time("period", period))
		s.lastRun(typ, s.now())
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("scheduler.RunOnce(%s, %s): %w", typ, period.Format(time.RFC3339), err)
	}
	s.log.Debug("maintenance enqueued", slog.String("task_type", typ), slog.String("task_id", info.ID), slog.Time("period", period))
	s.lastRun(typ, s.now())
	return true, nil
}

// Next is when job typ runs next after t, zero if it is off.
func (s *Scheduler) Next(typ string, t time.Time) time.Time {
	j, ok := s.job(typ)
	if !ok {
		return time.Time{}
	}
	return j.schedule.Next(t.UTC())
}

// enqueueTimeout bounds one cron run's enqueue; a run that cannot reach
// Redis is logged and the next period tries again.
const enqueueTimeout = 30 * time.Second

// newCron builds the cron with one entry per job. A panic in a run is
// recovered and logged rather than ending the process.
func (s *Scheduler) newCron(ctx context.Context) *cron.Cron {
	l := cronLogger{s.log}
	c := cron.New(cron.WithLocation(time.UTC), cron.WithParser(parser), cron.WithLogger(l), cron.WithChain(cron.Recover(l)))
	for _, j := range s.jobs {
		c.Schedule(j.schedule, cron.FuncJob(func() {
			// A run started before shutdown finishes its enqueue.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), enqueueTimeout)
			defer cancel()
			if _, err := s.RunOnce(ctx, j.Type, s.now()); err != nil {
				s.log.Error("maintenance not enqueued", slog.String("task_type", j.Type), slog.String("error", err.Error()))
			}
		}))
	}
	return c
}

// Run schedules the jobs until ctx is cancelled, then waits for runs in
// progress.
func (s *Scheduler) Run(ctx context.Context) error {
	c := s.newCron(ctx)
	for _, j := range s.jobs {
		s.log.Info("job scheduled", slog.String("task_type", j.Type), slog.String("spec", j.Spec),
			slog.Time("next", j.schedule.Next(s.now().UTC())))
	}
	c.Start()
	<-ctx.Done()
	<-c.Stop().Done()
	return nil
}

// cronLogger routes cron's logs through slog; its routine chatter (every
// wake-up) goes to debug.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) {
	c.l.Debug(msg, append([]any{"component", "cron"}, kv...)...)
}

func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error(msg, append([]any{"component", "cron", "error", err.Error()}, kv...)...)
}
