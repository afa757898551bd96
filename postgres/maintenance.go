package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/dormancy/dormancy/policy"
)

// The maintenance statements each change at most one batch of rows in one
// statement of their own: no transaction spans a table, rows another
// transaction holds are skipped (SKIP LOCKED) for the next run, and the
// audit events are written by the same statement as the change they record.
// The caller loops over batches and logs each.

// Cursor is a position in the accounts ordered by last activity, then id,
// the order of the sweep and of the pre-lock warnings: a run moves forward
// through it and never reads a row twice. The zero Cursor is the start.
type Cursor struct {
	Activity time.Time
	ID       int64
}

// RelockBatch locks again up to limit accounts whose same-day unlock
// passed at or before now, with a "relocked" audit event each, and returns
// how many it locked. Retired accounts are left alone: they are never
// locked.
func (s *Store) RelockBatch(ctx context.Context, now time.Time, limit int) (int, error) {
	var n int
	err := s.db.NewRaw(`WITH due AS (
			SELECT a.id, a.unlocked_until FROM accounts a
			WHERE `+sqlUnlockLapsed("?")+` AND a.status = 'active'
			ORDER BY a.unlocked_until, a.id
			LIMIT ?
			FOR UPDATE SKIP LOCKED
		), upd AS (
			UPDATE accounts a SET lock_state = 'locked', lock_reason = 'dormant', locked_at = due.unlocked_until,
				lapsed_unlock_until = due.unlocked_until, unlocked_until = NULL, updated_at = now()
			FROM due WHERE a.id = due.id
			RETURNING a.id, a.company_id, due.unlocked_until
		), ev AS (
			INSERT INTO audit_events (company_id, account_id, kind, detail, occurred_at)
			SELECT company_id, id, ?, json_build_object('by', 'relock', 'reason', 'dormant', 'unlocked_until', unlocked_until), ?
			FROM upd
		)
		SELECT count(*) FROM upd`, now, limit, string(EventRelocked), now).Scan(ctx, &n)
	if err != nil {
		return 0, fmt.Errorf("postgres.RelockBatch: %w", err)
	}
	return n, nil
}

// SweepBatch locks up to limit dormant accounts after the cursor: active,
// not retired, not exempt, and inactive for their company's inactivity
// period at now. Each gets a "locked" audit event marked as the sweep's. It
// returns how many it locked and the cursor to continue from; fewer than
// limit means the sweep is done.
//
// In a company that asked for lock notices (and whose import did not pause
// them), each locked owner with an address gets one, written by the same
// statement as the lock (LockNoticeKey), so a sweep retried after a crash
// finds every notice its first try owed; PendingLockNotices hands them to
// the queue. Elsewhere the owner learns of the lock at the next login,
// which then takes the usual locked path.
func (s *Store) SweepBatch(ctx context.Context, now time.Time, after Cursor, limit int) (int, Cursor, error) {
	var out struct {
		N        int
		Activity sql.NullTime
		ID       sql.NullInt64
	}
	// The bound on the shortest inactivity period of any company and the
	// cursor are what the accounts_sweep index answers, in its order; the
	// company's own period is checked on the rows it yields.
	err := s.db.NewRaw(`WITH due AS (
			SELECT a.id, `+sqlLastActivity+` AS activity
			FROM accounts a JOIN companies c ON c.id = a.company_id
			WHERE a.lock_state = 'active' AND a.status = 'active' AND NOT a.exempt
			  AND `+sqlLastActivity+` <= ?0::timestamptz - (SELECT min(inactivity_days) FROM companies) * interval '24 hours'
			  AND (`+sqlLastActivity+`, a.id) > (?1::timestamptz, ?2::bigint)
			  AND `+sqlSweepable("?0::timestamptz")+`
			  AND NOT EXISTS (SELECT 1 FROM sweep_holds h WHERE h.company_id = a.company_id AND h.confirmed_at IS NULL)
			ORDER BY `+sqlLastActivity+`, a.id
			LIMIT ?3
			FOR UPDATE OF a SKIP LOCKED
		), upd AS (
			UPDATE accounts a SET lock_state = 'locked', lock_reason = 'dormant', locked_at = ?0, updated_at = now()
			FROM due WHERE a.id = due.id
			RETURNING a.id, a.company_id, a.email
		), ev AS (
			INSERT INTO audit_events (company_id, account_id, kind, detail, occurred_at)
			SELECT company_id, id, ?4, '{"by": "sweep", "reason": "dormant"}', ?0 FROM upd
		), notice AS (
			INSERT INTO mails (kind, company_id, account_id, to_address, locale, idempotency_key, created_at)
			SELECT ?5, upd.company_id, upd.id, upd.email, c.locale, ?5 || ':' || upd.id || ':' || ?6, ?0
			FROM upd JOIN companies c ON c.id = upd.company_id
			WHERE c.notice_on_lock AND NOT c.lock_notices_paused AND upd.email IS NOT NULL
			ON CONFLICT (idempotency_key) DO NOTHING
		), last AS (
			SELECT activity, id FROM due ORDER BY activity DESC, id DESC LIMIT 1
		)
		SELECT (SELECT count(*) FROM upd) AS n, (SELECT activity FROM last), (SELECT id FROM last)`,
		now, cursorTime(after), after.ID, limit, string(EventLocked), string(MailLockNotice), now.UnixMicro()).Scan(ctx, &out.N, &out.Activity, &out.ID)
	if err != nil {
		return 0, after, fmt.Errorf("postgres.SweepBatch: %w", err)
	}
	if out.ID.Valid {
		after = Cursor{Activity: out.Activity.Time, ID: out.ID.Int64}
	}
	return out.N, after, nil
}

// cursorTime is the cursor's activity, or a time before any account for
// the zero Cursor.
func cursorTime(c Cursor) time.Time {
	if c.Activity.IsZero() {
		return time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return c.Activity
}

// PurgeTokensBatch deletes up to limit verification tokens that have been
// dead (expired, used or superseded) since before deadBefore, and returns
// how many it deleted. A mail that pointed at one keeps its row with the
// token id cleared.
func (s *Store) PurgeTokensBatch(ctx context.Context, deadBefore time.Time, limit int) (int, error) {
	return s.execCount(ctx, "postgres.PurgeTokensBatch", `DELETE FROM verification_tokens WHERE id IN (
			SELECT id FROM verification_tokens
			WHERE least(expires_at, consumed_at, revoked_at) < ?
			ORDER BY least(expires_at, consumed_at, revoked_at)
			LIMIT ?
			FOR UPDATE SKIP LOCKED)`, deadBefore, limit)
}

// PrelockCandidates lists up to limit accounts after the cursor that may
// be due a pre-lock warning at now: active, unexempt accounts with an email
// address, of companies that warn, within their company's longest warning
// (plus two days for calendar and DST edges) of the lock. The caller
// decides with policy.PrelockWarningDue; the next cursor is the last
// candidate's position, and fewer than limit means the end.
func (s *Store) PrelockCandidates(ctx context.Context, now time.Time, after Cursor, limit int) ([]Subject, Cursor, error) {
	var rows []employeeRow
	err := s.db.NewRaw(`WITH b AS (
			SELECT min(c.inactivity_days) AS min_days, max(c.inactivity_days) AS max_days, max(d) AS max_warn
			FROM companies c, unnest(c.prelock_warning_days) d
		)
		SELECT `+employeeColumns+`
		FROM accounts a JOIN companies c ON c.id = a.company_id
		WHERE a.lock_state = 'active' AND a.status = 'active' AND NOT a.exempt AND a.email IS NOT NULL
		  AND cardinality(c.prelock_warning_days) > 0
		  AND `+sqlLastActivity+` > ?0::timestamptz - (SELECT max_days FROM b) * interval '24 hours'
		  AND `+sqlLastActivity+` <= ?0::timestamptz + ((SELECT max_warn FROM b) + 2 - (SELECT min_days FROM b)) * interval '24 hours'
		  AND (`+sqlLastActivity+`, a.id) > (?1::timestamptz, ?2::bigint)
		  AND NOT `+sqlDormant("?0::timestamptz")+`
		  AND `+sqlLastActivity+` <= ?0::timestamptz
			+ ((SELECT max(d) FROM unnest(c.prelock_warning_days) d) + 2 - c.inactivity_days) * interval '24 hours'
		ORDER BY `+sqlLastActivity+`, a.id
		LIMIT ?3`, now, cursorTime(after), after.ID, limit).Scan(ctx, &rows)
	if err != nil {
		return nil, after, fmt.Errorf("postgres.PrelockCandidates: %w", err)
	}
	subs := make([]Subject, 0, len(rows))
	for i := range rows {
		r := &rows[i]
		c, err := r.company() // its zone is parsed once per process (loadLocation)
		if err != nil {
			return nil, after, fmt.Errorf("postgres.PrelockCandidates: %w", err)
		}
		subs = append(subs, Subject{Employee: r.employee(), Company: c})
	}
	if n := len(subs); n > 0 {
		last := subs[n-1].Employee
		after = Cursor{Activity: last.LastActivity(), ID: last.ID}
	}
	return subs, after, nil
}

// PrelockWarningKey is the idempotency key of a pre-lock warning mail. It
// names the account, the stage and the lock instant; the mail's template
// reads the lock date back from it (ParsePrelockWarningKey), so the mail
// says the date it was decided for even if it is sent late.
func PrelockWarningKey(accountID int64, daysBefore int, lockAt time.Time) string {
	return fmt.Sprintf("%s:%d:%d:%d", MailPrelockWarning, accountID, daysBefore, lockAt.UnixMicro())
}

// ParsePrelockWarningKey returns the lock instant a PrelockWarningKey names.
func ParsePrelockWarningKey(key string) (time.Time, error) {
	parts := strings.Split(key, ":")
	if len(parts) != 4 || parts[0] != string(MailPrelockWarning) {
		return time.Time{}, fmt.Errorf("postgres.ParsePrelockWarningKey(%q): not a pre-lock warning key", key)
	}
	us, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("postgres.ParsePrelockWarningKey(%q): %w", key, err)
	}
	return time.UnixMicro(us).UTC(), nil
}

// PrelockWarningDue is a warning the caller decided to send.
type PrelockWarningDue struct {
	AccountID int64
	policy.PrelockWarning
}

// RecordPrelockWarnings records the warnings and writes their mails to the
// outbox in one statement, and returns the ids of the mails written. A
// warning recorded before for the same account, cycle and stage writes no
// mail, and neither does one whose account has meanwhile logged in (a new
// cycle), been locked, retired or exempted, or lost its address.
func (s *Store) RecordPrelockWarnings(ctx context.Context, ws []PrelockWarningDue, now time.Time) ([]int64, error) {
	if len(ws) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(ws))
	cycles := make([]time.Time, len(ws))
	days := make([]int64, len(ws))
	locks := make([]time.Time, len(ws))
	keys := make([]string, len(ws))
	for i, w := range ws {
		ids[i], cycles[i], days[i], locks[i] = w.AccountID, w.Cycle, int64(w.DaysBefore), w.LockAt
		keys[i] = PrelockWarningKey(w.AccountID, w.DaysBefore, w.LockAt)
	}
	var mailIDs []int64
	err := s.db.NewRaw(`WITH input AS (
			SELECT * FROM unnest(?::bigint[], ?::timestamptz[], ?::int[], ?::timestamptz[], ?::text[])
				AS i(account_id, cycle, days_before, lock_at, key)
		), w AS (
			INSERT INTO prelock_warnings (account_id, cycle, days_before, lock_at, created_at)
			SELECT i.account_id, i.cycle, i.days_before, i.lock_at, ?
			FROM input i JOIN accounts a ON a.id = i.account_id
			WHERE a.lock_state = 'active' AND a.status = 'active' AND NOT a.exempt AND a.email IS NOT NULL
			  AND `+sqlLastActivity+` = i.cycle
			ON CONFLICT DO NOTHING
			RETURNING account_id, cycle, days_before
		), m AS (
			INSERT INTO mails (kind, company_id, account_id, to_address, locale, idempotency_key, created_at)
			SELECT ?, a.company_id, a.id, a.email, c.locale, i.key, ?
			FROM w JOIN input i USING (account_id, cycle, days_before)
			JOIN accounts a ON a.id = w.account_id JOIN companies c ON c.id = a.company_id
			ON CONFLICT (idempotency_key) DO NOTHING
			RETURNING id
		)
		SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM m`,
		pgdialect.Array(ids), pgdialect.Array(cycles), pgdialect.Array(days), pgdialect.Array(locks), pgdialect.Array(keys),
		now, string(MailPrelockWarning), now).Scan(ctx, pgdialect.Array(&mailIDs))
	if err != nil {
		return nil, fmt.Errorf("postgres.RecordPrelockWarnings(%d): %w", len(ws), err)
	}
	return mailIDs, nil
}

// StaleMail is a pending mail old enough that its task may have been lost.
type StaleMail struct {
	ID        int64
	Kind      MailKind
	AccountID int64
	AttemptID int64
	TokenID   int64
}

// StaleMails lists up to limit pending mails created at or before
// createdBefore with an id above afterID, in id order.
func (s *Store) StaleMails(ctx context.Context, createdBefore time.Time, afterID int64, limit int) ([]StaleMail, error) {
	var ms []StaleMail
	err := s.db.NewRaw(`SELECT id, kind, account_id, coalesce(attempt_id, 0) AS attempt_id, coalesce(token_id, 0) AS token_id
		FROM mails WHERE status = ? AND created_at <= ? AND id > ?
		ORDER BY id LIMIT ?`, MailPending, createdBefore, afterID, limit).Scan(ctx, &ms)
	if err != nil {
		return nil, fmt.Errorf("postgres.StaleMails: %w", err)
	}
	return ms, nil
}

// DropDeadVerificationMails marks dropped up to limit pending verification
// mails created at or before createdBefore whose link can no longer work
// (superseded by a newer email, expired, used, or purged). Sending one would
// deliver a dead link, and queueing it again would issue a link that
// supersedes the newer email's. It returns how many it dropped.
func (s *Store) DropDeadVerificationMails(ctx context.Context, createdBefore, now time.Time, limit int) (int, error) {
	res, err := s.db.NewRaw(`UPDATE mails SET status = ?, error = 'link no longer valid'
		WHERE id IN (
			SELECT m.id FROM mails m
			WHERE m.status = ? AND m.kind = ? AND m.created_at <= ?
			  AND NOT EXISTS (SELECT 1 FROM verification_tokens vt WHERE vt.id = m.token_id
				AND vt.consumed_at IS NULL AND vt.revoked_at IS NULL AND vt.expires_at > ?)
			ORDER BY m.id LIMIT ?
			FOR UPDATE OF m SKIP LOCKED)
		AND status = ?`, MailDropped, MailPending, MailVerification, createdBefore, now, limit, MailPending).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres.DropDeadVerificationMails: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("postgres.DropDeadVerificationMails: %w", err)
	}
	return int(n), nil
}

// EndExpiredExemptions ends up to limit exemptions whose end has come by
// now: the account follows the dormancy rule again, and an
// exemption_expired event keeps the terms it ended with.
func (s *Store) EndExpiredExemptions(ctx context.Context, now time.Time, limit int) (int, error) {
	var n int
	err := s.db.NewRaw(`WITH due AS (
			SELECT id FROM accounts WHERE exempt AND exempt_until <= ?0 ORDER BY exempt_until, id LIMIT ?1 FOR UPDATE SKIP LOCKED
		), old AS (
			SELECT a.id, a.company_id, a.exempt_reason, a.exempt_granted_by, a.exempt_until FROM accounts a JOIN due USING (id)
		), upd AS (
			UPDATE accounts a SET exempt = false, exempt_reason = '', exempt_granted_by = '', exempt_until = NULL, updated_at = ?0
			FROM due WHERE a.id = due.id RETURNING a.id
		), ev AS (
			INSERT INTO audit_events (company_id, account_id, kind, detail, occurred_at)
			SELECT company_id, id, ?2, jsonb_build_object('reason', exempt_reason, 'granted_by', exempt_granted_by, 'until', exempt_until), ?0
			FROM old
		)
		SELECT count(*) FROM upd`, now, limit, string(EventExemptionExpired)).Scan(ctx, &n)
	if err != nil {
		return 0, fmt.Errorf("postgres.EndExpiredExemptions: %w", err)
	}
	return n, nil
}
