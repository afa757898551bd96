package postgres

import (
	"context"
	"fmt"
	"time"
)

// Retention says how long each kind of record is kept. Zero keeps it
// forever.
type Retention struct {
	// LoginAttempts: attempts (with their IP address and User-Agent) are
	// deleted this long after they were made.
	LoginAttempts time.Duration
	// MailPersonal: a mail that is no longer pending keeps its row as
	// evidence that it was sent, but its address, subject, bodies and
	// error are cleared this long after it was written.
	MailPersonal time.Duration
	// AuditEvents: the audit trail, and the mail rows with it, are deleted
	// this long after they happened. PCI DSS 10.5.1 asks for a year.
	AuditEvents time.Duration
	// WebhookDeliveries: the delivery log's finished rows (delivered or
	// failed) are deleted this long after the event was written; pending
	// ones stay until they finish.
	WebhookDeliveries time.Duration
}

// DefaultRetention keeps the audit trail 400 days (a year and the weeks an
// assessment takes), login attempts as long, and mail addresses 90 days.
var DefaultRetention = Retention{LoginAttempts: 400 * 24 * time.Hour, MailPersonal: 90 * 24 * time.Hour, AuditEvents: 400 * 24 * time.Hour,
	WebhookDeliveries: 30 * 24 * time.Hour}

// timeColumn is, per table that retention trims, the column that dates
// its rows: what the retention compares, and what partitions them.
var timeColumn = map[string]string{
	"login_attempts": "attempted_at", "audit_events": "occurred_at", "mails": "created_at", "webhook_deliveries": "created_at",
}

// keep is how long r keeps the rows of table; zero keeps them forever.
// Mail rows go with the audit trail they are evidence for.
func (r Retention) keep(table string) time.Duration {
	switch table {
	case "login_attempts":
		return r.LoginAttempts
	case "audit_events", "mails":
		return r.AuditEvents
	case "webhook_deliveries":
		return r.WebhookDeliveries
	}
	return 0
}

// RetentionStep is one kind of record the retention job handles, a batch
// at a time: Batch changes up to limit rows older than the cutoff at now
// and reports how many it changed.
type RetentionStep struct {
	Name  string
	Batch func(ctx context.Context, now time.Time, limit int) (int, error)
}

// RetentionSteps are the batches that apply r, in the order the job runs
// them; a kind kept forever has none.
func (s *Store) RetentionSteps(r Retention) []RetentionStep {
	var steps []RetentionStep
	// Each walks the table by id, which grows with time, so a batch is an
	// index range scan from the oldest row that stops at the limit.
	del := func(name, table, also string) {
		keep := r.keep(table)
		if keep <= 0 {
			return
		}
		steps = append(steps, RetentionStep{Name: name, Batch: func(ctx context.Context, now time.Time, limit int) (int, error) {
			return s.execCount(ctx, "postgres.Retention("+name+")", `DELETE FROM `+table+` WHERE id IN (
				SELECT id FROM `+table+` WHERE `+timeColumn[table]+` < ? AND `+also+` ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED)`, now.Add(-keep), limit)
		}})
	}
	del("login attempts deleted", "login_attempts", "true")
	del("audit events deleted", "audit_events", "true")
	del("mails deleted", "mails", "true")
	del("webhook deliveries deleted", "webhook_deliveries", "status <> 'pending'")
	if r.MailPersonal > 0 {
		steps = append(steps, RetentionStep{Name: "mail personal fields cleared", Batch: func(ctx context.Context, now time.Time, limit int) (int, error) {
			return s.execCount(ctx, "postgres.Retention(mails)", `UPDATE mails SET to_address = '', subject = '', body_text = NULL, body_html = NULL, error = NULL
				WHERE id IN (SELECT id FROM mails WHERE created_at < ? AND status <> 'pending' AND to_address <> ''
					ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED)`, now.Add(-r.MailPersonal), limit)
		}})
	}
	return steps
}

// execCount runs a statement and returns how many rows it changed, its
// errors named by what.
func (s *Store) execCount(ctx context.Context, what, q string, args ...any) (int, error) {
	res, err := s.db.NewRaw(q, args...).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return int(n), nil
}

// OldestRows is, per table that retention trims, the time of its oldest
// row; zero for an empty table.
func (s *Store) OldestRows(ctx context.Context) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	for _, table := range []string{"login_attempts", "audit_events", "mails"} {
		var ts []time.Time
		if err := s.db.NewRaw(`SELECT `+timeColumn[table]+` FROM `+table+` ORDER BY id LIMIT 1`).Scan(ctx, &ts); err != nil {
			return nil, fmt.Errorf("postgres.OldestRows(%s): %w", table, err)
		}
		if len(ts) > 0 {
			out[table] = ts[0]
		} else {
			out[table] = time.Time{}
		}
	}
	return out, nil
}
