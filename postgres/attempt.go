package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/dormancy/dormancy/policy"
)

// Attempt is one login attempt as recorded.
type Attempt struct {
	Key       string
	CompanyID string
	LoginID   string
	AccountID int64
	Method    policy.Method
	Outcome   policy.Outcome
	IP        netip.Addr
	UserAgent string
	Device    policy.DeviceKind
	// AttemptedAt is the host's time of the attempt, kept for the record.
	AttemptedAt time.Time
	// DecidedAt is when dormancy answered the login: the decision and the
	// login date go by it, never by AttemptedAt.
	DecidedAt  time.Time
	RequestID  string
	RecordedAt time.Time
}

// InsertAttempt records a; it returns the new row's id and true, or, when
// an attempt with the same key and time was recorded before (a redelivered
// task), that row's id and false. The time is part of the key because the
// table is partitioned by it (migration 000019).
func (t *Tx) InsertAttempt(ctx context.Context, a Attempt) (int64, bool, error) {
	var ip any
	if a.IP.IsValid() {
		ip = a.IP.String()
	}
	var id int64
	err := t.tx.NewRaw(`INSERT INTO login_attempts
		(attempt_key, company_id, account_id, method, outcome, ip, user_agent, device_kind, attempted_at, decided_at, request_id, recorded_at)
		VALUES (?, ?, ?, ?, ?, ?::inet, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING
		RETURNING id`,
		a.Key, a.CompanyID, a.AccountID, string(a.Method), string(a.Outcome), ip, a.UserAgent,
		string(a.Device), a.AttemptedAt, a.DecidedAt, a.RequestID, a.RecordedAt).Scan(ctx, &id)
	if err == nil {
		return id, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, false, fmt.Errorf("postgres.InsertAttempt(%q): %w", a.Key, err)
	}
	err = t.tx.NewRaw(`SELECT id FROM login_attempts WHERE attempt_key = ? AND attempted_at = ?`, a.Key, a.AttemptedAt).Scan(ctx, &id)
	if err != nil {
		return 0, false, fmt.Errorf("postgres.InsertAttempt(%q): existing: %w", a.Key, err)
	}
	return id, false, nil
}
