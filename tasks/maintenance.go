package tasks

import (
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"
)

// MaintenanceTypes are the maintenance:* task types, all with a
// Maintenance payload.
var MaintenanceTypes = []string{
	TypeMaintenanceRelock,
	TypeMaintenanceSweep,
	TypeMaintenancePurgeTokens,
	TypeMaintenancePrelockWarning,
	TypeMaintenanceRequeueMail,
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
type Maintenance struct {
	Contract
	// Period is the scheduled minute of the run, in UTC. It names the task,
	// so every scheduler replica enqueues the same task for one period.
	Period time.Time `json:"period"`
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
	switch {
	case p.Period.IsZero():
		return &FieldError{Field: "period", Reason: "required"}
	case p.Period.Year() < 2000 || p.Period.Year() > 9999:
		return &FieldError{Field: "period", Reason: "outside the years 2000-9999"}
	case p.BatchSize < 0 || p.BatchSize > MaxMaintenanceBatch:
		return &FieldError{Field: "batch_size", Reason: fmt.Sprintf("want 1 to %d, or 0 for the default", MaxMaintenanceBatch)}
	case p.MinAgeSeconds < 0 || p.MinAgeSeconds > 10*365*24*3600:
		return &FieldError{Field: "min_age_seconds", Reason: "want 0 to ten years in seconds"}
	}
	return nil
}

// MaintenanceTaskID is the task ID of typ's run for the period holding at:
// the type and the UTC minute.
func MaintenanceTaskID(typ string, at time.Time) string {
	return typ + ":" + at.UTC().Format("200601021504")
}

// NewMaintenanceTask builds a maintenance task of type typ on the low queue.
// Its ID names the period (see MaintenanceTaskID), so a second enqueue for
// the same period is refused with ErrTaskIDConflict while the first task is
// kept; the scheduler sets the retention to the period's length.
func NewMaintenanceTask(typ string, p Maintenance) (*asynq.Task, error) {
	if !slices.Contains(MaintenanceTypes, typ) {
		return nil, fmt.Errorf("tasks.NewMaintenanceTask: %q is not a maintenance task type", typ)
	}
	p.Period = p.Period.UTC().Truncate(time.Minute)
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("tasks.NewMaintenanceTask(%s): %w", typ, err)
	}
	return marshal(typ, &p,
		asynq.Queue(QueueLow),
		asynq.TaskID(MaintenanceTaskID(typ, p.Period)),
		asynq.MaxRetry(3),
		asynq.Timeout(30*time.Minute),
		asynq.Retention(time.Minute),
	)
}

// DecodeMaintenance parses and validates a maintenance task payload.
func DecodeMaintenance(data []byte) (Maintenance, error) {
	var p Maintenance
	if err := decode(data, &p); err != nil {
		return p, err
	}
	return p, p.Validate()
}
