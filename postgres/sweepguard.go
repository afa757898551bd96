package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun/dialect/pgdialect"
)

// SweepCount is, for one company, how many accounts the sweep at now
// would lock and how many are employed (active, locked or not).
type SweepCount struct {
	CompanyID string
	WouldLock int
	Employed  int
}

// SweepCounts counts, per company with something to lock at now, what the
// sweep would lock.
func (s *Store) SweepCounts(ctx context.Context, now time.Time) ([]SweepCount, error) {
	var out []SweepCount
	err := s.db.NewRaw(`SELECT a.company_id, count(*) FILTER (WHERE `+sqlSweepable("?0::timestamptz")+`) AS would_lock,
			count(*) FILTER (WHERE a.status = 'active') AS employed
		FROM `+accountsWithCompany+`
		GROUP BY a.company_id
		HAVING count(*) FILTER (WHERE `+sqlSweepable("?0::timestamptz")+`) > 0`, now).Scan(ctx, &out)
	if err != nil {
		return nil, fmt.Errorf("postgres.SweepCounts: %w", err)
	}
	return out, nil
}

// SweepHold is a company whose sweep waits for a confirmation.
type SweepHold struct {
	CompanyID   string    `json:"company_id"`
	WouldLock   int       `json:"would_lock"`
	Employed    int       `json:"employed"`
	HeldAt      time.Time `json:"held_at"`
	ConfirmedAt time.Time `json:"confirmed_at,omitzero"`
	ConfirmedBy string    `json:"confirmed_by,omitempty"`
}

// HoldSweep holds the company's sweep and returns the hold, reporting
// whether it is new (and so its alerts are due). A hold already there
// keeps its first figures; a confirmed one (ConfirmedAt set) lets the
// sweep proceed.
func (s *Store) HoldSweep(ctx context.Context, c SweepCount, now time.Time) (h SweepHold, fresh bool, err error) {
	var rows []struct {
		SweepHold
		Fresh bool
	}
	err = s.db.NewRaw(`WITH ins AS (
			INSERT INTO sweep_holds (company_id, would_lock, employed, held_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (company_id) DO NOTHING RETURNING company_id, would_lock, employed, held_at, confirmed_at, confirmed_by)
		SELECT *, true AS fresh FROM ins
		UNION ALL
		SELECT company_id, would_lock, employed, held_at, confirmed_at, confirmed_by, false FROM sweep_holds
		WHERE company_id = ? AND NOT EXISTS (SELECT 1 FROM ins)`,
		c.CompanyID, c.WouldLock, c.Employed, now, c.CompanyID).Scan(ctx, &rows)
	if err != nil {
		return h, false, fmt.Errorf("postgres.HoldSweep(%q): %w", c.CompanyID, err)
	}
	if len(rows) == 0 { // held by a transaction that committed after this statement began
		return SweepHold{CompanyID: c.CompanyID, WouldLock: c.WouldLock, Employed: c.Employed, HeldAt: now}, false, nil
	}
	return rows[0].SweepHold, rows[0].Fresh, nil
}

// EndSweepHolds removes the holds a sweep is done with: confirmed ones,
// whose sweep has now run, and unconfirmed ones of companies no longer
// over the guard (held names those that still are).
func (s *Store) EndSweepHolds(ctx context.Context, held []string) error {
	_, err := s.db.NewRaw(`DELETE FROM sweep_holds WHERE confirmed_at IS NOT NULL OR NOT (company_id = ANY(?))`,
		pgdialect.Array(held)).Exec(ctx)
	if err != nil {
		return fmt.Errorf("postgres.EndSweepHolds: %w", err)
	}
	return nil
}

// ConfirmSweep lets the company's held sweep proceed at its next run. A
// company without a hold is ErrNotFound.
func (s *Store) ConfirmSweep(ctx context.Context, companyID, by string, now time.Time) (SweepHold, error) {
	var h SweepHold
	err := s.db.NewRaw(`UPDATE sweep_holds SET confirmed_at = coalesce(confirmed_at, ?), confirmed_by = CASE WHEN confirmed_at IS NULL THEN ? ELSE confirmed_by END
		WHERE company_id = ? RETURNING company_id, would_lock, employed, held_at, confirmed_at, confirmed_by`, now, by, companyID).Scan(ctx, &h)
	if errors.Is(err, sql.ErrNoRows) {
		return h, fmt.Errorf("postgres.ConfirmSweep(%q): no sweep is held: %w", companyID, ErrNotFound)
	}
	if err != nil {
		return h, fmt.Errorf("postgres.ConfirmSweep(%q): %w", companyID, err)
	}
	err = s.Audit(ctx, Event{Kind: EventSweepConfirmed, CompanyID: companyID, OccurredAt: now,
		Detail: map[string]any{"would_lock": h.WouldLock, "employed": h.Employed, "by": h.ConfirmedBy}})
	return h, err
}

// SweepHoldOf is the company's hold, if any.
func (s *Store) SweepHoldOf(ctx context.Context, companyID string) (SweepHold, bool, error) {
	var hs []SweepHold
	if err := s.db.NewRaw(`SELECT company_id, would_lock, employed, held_at, confirmed_at, confirmed_by FROM sweep_holds WHERE company_id = ?`,
		companyID).Scan(ctx, &hs); err != nil {
		return SweepHold{}, false, fmt.Errorf("postgres.SweepHoldOf(%q): %w", companyID, err)
	}
	if len(hs) == 0 {
		return SweepHold{}, false, nil
	}
	return hs[0], true, nil
}

// SweepCandidate is an account the sweep would lock.
type SweepCandidate struct {
	CompanyID    string
	LoginID      string
	LastActivity time.Time
	Held         bool
}

// SweepPreview calls fn with every account the sweep at now would lock, of
// one company or (companyID empty) all, by company and login ID, saying
// whether the company's sweep is held. It locks nothing.
func (s *Store) SweepPreview(ctx context.Context, now time.Time, companyID string, fn func(SweepCandidate) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT a.company_id, a.login_id, `+sqlLastActivity+` AS last_activity,
			EXISTS (SELECT 1 FROM sweep_holds h WHERE h.company_id = a.company_id AND h.confirmed_at IS NULL) AS held
		FROM `+accountsWithCompany+`
		WHERE `+sqlSweepable("?0::timestamptz")+` AND (?1 = '' OR a.company_id = ?1)
		ORDER BY a.company_id, a.login_id`, now, companyID)
	if err != nil {
		return fmt.Errorf("postgres.SweepPreview: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c SweepCandidate
		if err := rows.Scan(&c.CompanyID, &c.LoginID, &c.LastActivity, &c.Held); err != nil {
			return fmt.Errorf("postgres.SweepPreview: %w", err)
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	return rows.Err()
}

// SweepHeldKey is the idempotency key of the hold notice to one
// administrator: one per hold. It carries the hold's figures, so a retry
// renders the same body after the hold is gone.
func SweepHeldKey(h SweepHold, adminID int64) string {
	return fmt.Sprintf("%s:%d:%d:%d:%d:%s", MailSweepHeld, h.HeldAt.UnixMicro(), adminID, h.WouldLock, h.Employed, h.CompanyID)
}

// ParseSweepHeldKey reads the figures back from a SweepHeldKey.
func ParseSweepHeldKey(key string) (wouldLock, employed int, err error) {
	parts := strings.SplitN(key, ":", 6)
	if len(parts) != 6 || parts[0] != string(MailSweepHeld) {
		return 0, 0, fmt.Errorf("postgres.ParseSweepHeldKey(%q): not a hold notice key", key)
	}
	if wouldLock, err = strconv.Atoi(parts[3]); err == nil {
		employed, err = strconv.Atoi(parts[4])
	}
	if err != nil {
		return 0, 0, fmt.Errorf("postgres.ParseSweepHeldKey(%q): %w", key, err)
	}
	return wouldLock, employed, nil
}

// RecordSweepHeld writes the hold notice to each of the company's
// administrators who can act at now (policy.CanAct) and has an address,
// once per hold, with an audit event; it returns the mails to queue.
func (s *Store) RecordSweepHeld(ctx context.Context, h SweepHold, now time.Time) ([]int64, error) {
	var ids []int64
	err := s.WithTx(ctx, func(t *Tx) error {
		admins, err := s.noticeTargets(ctx, t.tx, h.CompanyID, `a.can_manage_employees`, canActAt(now))
		if err != nil {
			return err
		}
		keys := make([]string, len(admins))
		for i, id := range admins {
			keys[i] = SweepHeldKey(h, id)
		}
		if ids, err = insertNotices(ctx, t.tx, MailSweepHeld, admins, keys, now); err != nil {
			return err
		}
		return t.Audit(ctx, Event{Kind: EventSweepHeld, CompanyID: h.CompanyID, OccurredAt: now,
			Detail: map[string]any{"would_lock": h.WouldLock, "employed": h.Employed, "administrators_told": len(ids)}})
	})
	if err != nil {
		return nil, fmt.Errorf("postgres.RecordSweepHeld(%q): %w", h.CompanyID, err)
	}
	return ids, nil
}

// LockNoticeKey is the idempotency key of the notice for one lock: the
// account and the instant it was locked.
func LockNoticeKey(accountID int64, lockedAt time.Time) string {
	return fmt.Sprintf("%s:%d:%d", MailLockNotice, accountID, lockedAt.UnixMicro())
}

// PendingLockNotices returns up to limit lock notices (SweepBatch wrote
// them) not yet sent, after the mail id afterID, in id order: the sweep
// queues them paced. One queued before is queued again harmlessly (the
// task ID names the mail).
func (s *Store) PendingLockNotices(ctx context.Context, afterID int64, limit int) ([]int64, error) {
	var ids []int64
	err := s.db.NewRaw(`SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM (
			SELECT id FROM mails WHERE kind = ? AND status = ? AND id > ? ORDER BY id LIMIT ?) m`,
		string(MailLockNotice), MailPending, afterID, limit).Scan(ctx, pgdialect.Array(&ids))
	if err != nil {
		return nil, fmt.Errorf("postgres.PendingLockNotices: %w", err)
	}
	return ids, nil
}

// PauseLockNotices keeps the next sweep from sending lock notices in these
// companies: an import's first sweep may lock half of them at once.
func (s *Store) PauseLockNotices(ctx context.Context, companies []string) error {
	_, err := s.db.NewRaw(`UPDATE companies SET lock_notices_paused = true WHERE notice_on_lock AND id = ANY(?)`,
		pgdialect.Array(companies)).Exec(ctx)
	if err != nil {
		return fmt.Errorf("postgres.PauseLockNotices: %w", err)
	}
	return nil
}

// ResumeLockNotices ends the pauses: called when a sweep is done.
func (s *Store) ResumeLockNotices(ctx context.Context) error {
	if _, err := s.db.NewRaw(`UPDATE companies SET lock_notices_paused = false WHERE lock_notices_paused`).Exec(ctx); err != nil {
		return fmt.Errorf("postgres.ResumeLockNotices: %w", err)
	}
	return nil
}
