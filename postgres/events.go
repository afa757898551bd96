package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/uptrace/bun/dialect/pgdialect"
)

// StoredEvent is an audit event as read back.
type StoredEvent struct {
	ID             int64
	Kind           EventKind
	CompanyID      string
	AccountID      int64
	ActorAccountID int64
	Detail         json.RawMessage
	RequestID      string
	OccurredAt     time.Time
}

// EventCursor is where a page of events ends: the next page starts after
// it. Events are ordered newest first by (occurred_at, id), so a page read
// while events are written never skips or repeats one: a later write is
// newer than the first page, or, dated earlier, sorts after the cursor.
type EventCursor struct {
	At time.Time
	ID int64
}

// EventFilter narrows a read of the audit trail; zero values do not filter.
type EventFilter struct {
	CompanyID string
	AccountID int64
	Kinds     []string
	Since     time.Time // inclusive
	Until     time.Time // exclusive
	After     EventCursor
	Limit     int
}

// MaxEventsPage bounds a page of events.
const MaxEventsPage = 500

// Events reads one page of the audit trail, newest first, and the cursor of
// the next page (zero when this is the last).
func (s *Store) Events(ctx context.Context, f EventFilter) ([]StoredEvent, EventCursor, error) {
	if f.CompanyID == "" && f.AccountID == 0 {
		return nil, EventCursor{}, fmt.Errorf("postgres.Events: a company or an account is required")
	}
	if f.Limit <= 0 || f.Limit > MaxEventsPage {
		f.Limit = MaxEventsPage
	}
	var since, until, after any
	if !f.Since.IsZero() {
		since = f.Since
	}
	if !f.Until.IsZero() {
		until = f.Until
	}
	if !f.After.At.IsZero() {
		after = f.After.At
	}
	var rows []struct {
		ID             int64
		Kind           string
		CompanyID      *string
		AccountID      *int64
		ActorAccountID *int64
		Detail         json.RawMessage
		RequestID      string
		OccurredAt     time.Time
	}
	err := s.db.NewRaw(`SELECT id, kind, company_id, account_id, actor_account_id, detail, request_id, occurred_at
		FROM audit_events
		WHERE (?0 = '' OR company_id = ?0) AND (?1 = 0 OR account_id = ?1)
		  AND (coalesce(cardinality(?2::text[]), 0) = 0 OR kind = ANY(?2::text[]))
		  AND (?3::timestamptz IS NULL OR occurred_at >= ?3) AND (?4::timestamptz IS NULL OR occurred_at < ?4)
		  AND (?5::timestamptz IS NULL OR (occurred_at, id) < (?5, ?6))
		ORDER BY occurred_at DESC, id DESC
		LIMIT ?7`,
		f.CompanyID, f.AccountID, pgdialect.Array(f.Kinds), since, until, after, f.After.ID, f.Limit+1).Scan(ctx, &rows)
	if err != nil {
		return nil, EventCursor{}, fmt.Errorf("postgres.Events: %w", err)
	}
	var next EventCursor
	if len(rows) > f.Limit {
		rows = rows[:f.Limit]
		last := rows[len(rows)-1]
		next = EventCursor{At: last.OccurredAt, ID: last.ID}
	}
	out := make([]StoredEvent, len(rows))
	for i, r := range rows {
		e := StoredEvent{ID: r.ID, Kind: EventKind(r.Kind), Detail: r.Detail, RequestID: r.RequestID, OccurredAt: r.OccurredAt}
		if r.CompanyID != nil {
			e.CompanyID = *r.CompanyID
		}
		if r.AccountID != nil {
			e.AccountID = *r.AccountID
		}
		if r.ActorAccountID != nil {
			e.ActorAccountID = *r.ActorAccountID
		}
		out[i] = e
	}
	return out, next, nil
}
