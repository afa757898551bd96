package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/uptrace/bun"
)

// EventKind names an audit event. The names are stable: reports and
// assessors filter on them.
type EventKind string

const (
	EventLocked           EventKind = "locked"
	EventRelocked         EventKind = "relocked"
	EventActivated        EventKind = "activated"
	EventTokenIssued      EventKind = "token_issued"
	EventVerificationUsed EventKind = "verification_used"
	EventMailSent         EventKind = "mail_sent"
	EventAlertSent        EventKind = "alert_sent"
	EventMailFailed       EventKind = "mail_failed"
	EventTaskRejected     EventKind = "task_rejected"
)

// Event is one audit event.
type Event struct {
	Kind           EventKind
	CompanyID      string
	AccountID      int64
	ActorAccountID int64
	Detail         map[string]any
	RequestID      string
	OccurredAt     time.Time
}

// Audit records ev in the transaction, so the event exists exactly when the
// change it describes does.
func (t *Tx) Audit(ctx context.Context, ev Event) error { return audit(ctx, t.tx, ev) }

// Audit records ev on its own, for failures that have no transaction to
// join (a task rejected before it touched a row).
func (s *Store) Audit(ctx context.Context, ev Event) error { return audit(ctx, s.db, ev) }

func audit(ctx context.Context, db bun.IDB, ev Event) error {
	detail, err := json.Marshal(ev.Detail)
	if err != nil {
		return fmt.Errorf("postgres.Audit(%s): %w", ev.Kind, err)
	}
	if ev.Detail == nil {
		detail = []byte("{}")
	}
	_, err = db.NewRaw(`INSERT INTO audit_events
		(company_id, account_id, actor_account_id, kind, detail, request_id, occurred_at)
		VALUES (nullif(?, ''), nullif(?, 0), nullif(?, 0), ?, ?, ?, ?)`,
		ev.CompanyID, ev.AccountID, ev.ActorAccountID, string(ev.Kind), string(detail), ev.RequestID, ev.OccurredAt).Exec(ctx)
	if err != nil {
		return fmt.Errorf("postgres.Audit(%s): %w", ev.Kind, err)
	}
	return nil
}

func mergeDetail(base, extra map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(extra))
	maps.Copy(out, base)
	for k, v := range extra {
		if v != "" && v != nil {
			out[k] = v
		}
	}
	return out
}
