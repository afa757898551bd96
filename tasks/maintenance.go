package tasks

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/robfig/cron/v3"
)

// MaintenanceTypes are the maintenance:* task types, all with a
// Maintenance payload.
var MaintenanceTypes = []string{
	TypeMaintenanceRelock,
	TypeMaintenanceSweep,
	TypeMaintenancePurgeTokens,
	TypeMaintenancePrelockWarning,
	TypeMaintenanceRequeueMail,
	TypeMaintenanceRetention,
	TypeMaintenanceDigest,
}

// Defaults of the maintenance jobs; the scheduler's configuration may
// change each.
const (
	// DefaultMaintenanceBatch is how many rows one statement changes: small
	// enough that no statement holds its row locks for more than a few
	// hundred milliseconds, large enough that per-statement costs stop
	// mattering (BENCHMARKS.md: the relock of 100,000 rows is 3.5× a bare
	// UPDATE in batches of 1,000 and 1.4× in batches of 10,000).
	DefaultMaintenanceBatch = 10_000
	MaxMaintenanceBatch     = 100_000
	// DefaultTokenRetention is how long a dead verification link is kept
	// after it expired, was used or was superseded: long enough to answer
	// "why did my link not work" from the database.
	DefaultTokenRetention = 7 * 24 * time.Hour
	// DefaultMailRequeueAfter is how old a pending mail must be before the
	// requeue job assumes its task was lost. A mail is normally queued
	// within milliseconds of its commit.
	DefaultMailRequeueAfter = 2 * time.Minute
)

// Maintenance is the payload of every maintenance:* task. Each run reads
// the clock itself: a task that waited in the queue works on the state of
// when it runs, not of when it was scheduled.
//
// A run belongs to a period, and the worker does one run per job and
// period however many tasks arrive for it (one per scheduler replica): the
// first task to claim the period in Postgres runs, the others find it
// claimed. The scheduler's tasks are identical on every run, so they carry
// the job's Spec and the period is the spec's latest minute at the
// worker's clock; a task enqueued by hand names its Period.
type Maintenance struct {
	Contract
	// Period is the run's minute, in UTC; it names the task. Zero when Spec
	// is set.
	Period time.Time `json:"period,omitzero"`
	// Spec is the scheduler's cron spec of the job (see ParseSchedule).
	Spec string `json:"spec,omitempty"`
	// BatchSize is the rows per statement; 0 means DefaultMaintenanceBatch.
	BatchSize int `json:"batch_size,omitempty"`
	// MinAgeSeconds leaves younger rows alone: tokens within their
	// retention (purge-tokens), mails that may still be on their way
	// (requeue-mail). 0 means the job's default.
	MinAgeSeconds int64 `json:"min_age_seconds,omitempty"`
}

// Batch is BatchSize with its default applied.
func (p Maintenance) Batch() int {
	if p.BatchSize == 0 {
		return DefaultMaintenanceBatch
	}
	return p.BatchSize
}

// MinAge is MinAgeSeconds as a duration, def when unset.
func (p Maintenance) MinAge(def time.Duration) time.Duration {
	if p.MinAgeSeconds == 0 {
		return def
	}
	return time.Duration(p.MinAgeSeconds) * time.Second
}

// Validate checks every field and names the first bad one.
func (p *Maintenance) Validate() error {
	if p.Spec != "" {
		if !p.Period.IsZero() {
			return &FieldError{Field: "period", Reason: "not with spec: a scheduled run's period is its spec's"}
		}
		if _, err := ParseSchedule(p.Spec); err != nil {
			return &FieldError{Field: "spec", Reason: err.Error()}
		}
	}
	switch {
	case p.Period.IsZero() && p.Spec == "":
		return &FieldError{Field: "period", Reason: "required, or spec"}
	case !p.Period.IsZero() && (p.Period.Year() < 2000 || p.Period.Year() > 9999):
		return &FieldError{Field: "period", Reason: "outside the years 2000-9999"}
	case p.BatchSize < 0 || p.BatchSize > MaxMaintenanceBatch:
		return &FieldError{Field: "batch_size", Reason: fmt.Sprintf("want 1 to %d, or 0 for the default", MaxMaintenanceBatch)}
	case p.MinAgeSeconds < 0 || p.MinAgeSeconds > 10*365*24*3600:
		return &FieldError{Field: "min_age_seconds", Reason: "want 0 to ten years in seconds"}
	}
	return nil
}

// RunPeriod is the period the run belongs to when it starts at now: Period,
// or the latest minute of Spec at or before now.
func (p Maintenance) RunPeriod(now time.Time) time.Time {
	if p.Spec == "" {
		return p.Period.UTC().Truncate(time.Minute)
	}
	s, err := ParseSchedule(p.Spec)
	if err != nil {
		return time.Time{}
	}
	now = now.UTC().Truncate(time.Minute)
	// Look back a minute, then further, until a run of the spec falls in
	// the window; a spec that runs at all runs at least once in 4 years
	// (29 February).
	for _, back := range []time.Duration{time.Minute, time.Hour, 25 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour, 4 * 367 * 24 * time.Hour} {
		var last time.Time
		for t := s.Next(now.Add(-back)); !t.IsZero() && !t.After(now); t = s.Next(t) {
			last = t
		}
		if !last.IsZero() {
			return last
		}
	}
	return time.Time{}
}

var specParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a maintenance job's cron spec: five fields or a
// descriptor (@hourly, @daily), in UTC. It refuses a time zone prefix
// (company time zones are handled by the jobs, so no entry falls into the
// hour a DST change skips) and @every, whose runs are not aligned to the
// clock: replicas started apart would fire in different periods.
func ParseSchedule(spec string) (cron.Schedule, error) {
	spec = strings.TrimSpace(spec)
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, fmt.Errorf("specs are in UTC; company time zones are handled by the jobs")
	}
	if strings.HasPrefix(spec, "@every") {
		return nil, fmt.Errorf("@every is not aligned to the clock; use a cron spec")
	}
	s, err := specParser.Parse(spec)
	if err != nil {
		return nil, err
	}
	// A spec that never comes (30 February) is refused here, not found
	// silent in production.
	if s.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, fmt.Errorf("never runs")
	}
	return s, nil
}

// MaintenanceTaskID is the task ID of typ's run for the period holding at:
// the type and the UTC minute.
func MaintenanceTaskID(typ string, at time.Time) string {
	return typ + ":" + at.UTC().Format("200601021504")
}

// NewMaintenanceTask builds a maintenance task of type typ on the low queue.
// A task naming its Period has an ID that names it too (MaintenanceTaskID),
// so a second enqueue for the period is refused with ErrTaskIDConflict
// while the first is kept. A scheduled task (Spec set) has a random ID;
// the worker's claim in Postgres makes its period run once.
func NewMaintenanceTask(typ string, p Maintenance) (*asynq.Task, error) {
	if !slices.Contains(MaintenanceTypes, typ) {
		return nil, fmt.Errorf("tasks.NewMaintenanceTask: %q is not a maintenance task type", typ)
	}
	if !p.Period.IsZero() {
		p.Period = p.Period.UTC().Truncate(time.Minute)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("tasks.NewMaintenanceTask(%s): %w", typ, err)
	}
	opts := []asynq.Option{asynq.Queue(QueueLow), asynq.MaxRetry(3), asynq.Timeout(30 * time.Minute)}
	if p.Spec == "" {
		opts = append(opts, asynq.TaskID(MaintenanceTaskID(typ, p.Period)), asynq.Retention(time.Minute))
	}
	return marshal(typ, &p, opts...)
}

// DecodeMaintenance parses and validates a maintenance task payload.
func DecodeMaintenance(data []byte) (Maintenance, error) {
	var p Maintenance
	if err := decode(data, &p); err != nil {
		return p, err
	}
	return p, p.Validate()
}
