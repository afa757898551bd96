package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/dormancy/dormancy/policy"
)

// Unlock is an administrator's request to unlock locked platform-ID
// accounts of a company: the accounts named, or all of them.
type Unlock struct {
	CompanyID  string
	ActorID    int64
	AccountIDs []int64
	All        bool
	// RequestedAt is when the administrator asked; its local midnight is
	// the deadline (policy.UnlockDeadline). Zero means At.
	RequestedAt time.Time
	// At is when the unlock is carried out: the clock the actor is judged
	// by and the deadline is held to.
	At        time.Time
	RequestID string
	// TaskID is the account:unlock task's, recorded in the audit events so
	// the outcome can be read back after asynq has forgotten the task.
	TaskID string
}

// UnlockResult says what an unlock did.
type UnlockResult struct {
	// Unlocked are the accounts this call unlocked, in id order. An account
	// already unlocked (by an earlier delivery of the same task) is not in
	// it.
	Unlocked []int64
	// Deadline is the next local midnight in the company's time zone.
	Deadline time.Time
	// NoticeMailIDs are the owners' notices still pending for this
	// deadline, including those an earlier delivery wrote but may not have
	// queued: the caller hands them to the queue.
	NoticeMailIDs []int64
	// Expired is set when the unlock ran at or after its deadline and
	// changed nothing but its unlock_expired event.
	Expired bool
}

// AdminUnlockedKey is the idempotency key of the notice to the owner of
// account unlocked until deadline: one notice per unlock. The notice's
// template reads the deadline back from it (ParseAdminUnlockedKey), so a
// notice sent after its owner already logged in still names its deadline.
func AdminUnlockedKey(accountID int64, deadline time.Time) string {
	return fmt.Sprintf("%s:%d:%d", MailAdminUnlocked, accountID, deadline.UnixMicro())
}

// ParseAdminUnlockedKey returns the deadline an AdminUnlockedKey names.
func ParseAdminUnlockedKey(key string) (time.Time, error) {
	parts := strings.Split(key, ":")
	if len(parts) != 3 || parts[0] != string(MailAdminUnlocked) {
		return time.Time{}, fmt.Errorf("postgres.ParseAdminUnlockedKey(%q): not an admin unlock notice key", key)
	}
	us, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("postgres.ParseAdminUnlockedKey(%q): %w", key, err)
	}
	return time.UnixMicro(us).UTC(), nil
}

// UnlockAccounts unlocks the accounts named, or all locked platform-ID
// accounts of the company, until the next local midnight, and returns the
// ids it unlocked. See Unlock for the rules; this is the form an HTTP
// handler uses to report how many were unlocked. The owners' notices are
// written to the outbox and reach the queue through the requeue job; a
// caller that wants them sent at once uses Unlock and queues them.
func (s *Store) UnlockAccounts(ctx context.Context, companyID string, actorID int64, accountIDs []int64, all bool, now time.Time, requestID string) ([]int64, error) {
	r, err := s.Unlock(ctx, Unlock{CompanyID: companyID, ActorID: actorID, AccountIDs: accountIDs, All: all, At: now, RequestID: requestID})
	return r.Unlocked, err
}

// Unlock carries out an administrator's unlock in one transaction:
//
//   - the actor must be an active account of the company with the
//     employee-management permission, else policy.ErrForbidden;
//   - every account named must belong to the company, else
//     policy.ErrNotFound and nothing changes (which of them is foreign, or
//     whether it exists at all, is not said);
//   - only active platform-ID accounts that are locked, or whose same-day
//     unlock has already passed, are unlocked; the rest are left alone;
//   - each unlocked account gets an "unlocked" audit event with the actor,
//     and, if it has an email address, an owner's notice in the outbox.
//
// Running it again changes nothing: the accounts are no longer locked.
func (s *Store) Unlock(ctx context.Context, u Unlock) (UnlockResult, error) {
	op := fmt.Sprintf("postgres.Unlock(%q, actor %d)", u.CompanyID, u.ActorID)
	if u.All == (len(u.AccountIDs) > 0) {
		return UnlockResult{}, fmt.Errorf("%s: %w", op, &policy.FieldError{Field: "account_ids", Reason: "exactly one of account_ids and all is required"})
	}
	ids := slices.Clone(u.AccountIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if ids == nil {
		ids = []int64{}
	}
	var res UnlockResult
	err := s.WithTx(ctx, func(t *Tx) error {
		res = UnlockResult{}
		// The actor's row is share-locked: a retirement or lock of the actor
		// in the same instant either commits first, and the unlock is
		// refused, or waits for the unlock to commit.
		actor, err := scanSubject(ctx, t.tx.NewRaw(`SELECT `+employeeColumns+`
			FROM accounts a JOIN companies c ON c.id = a.company_id
			WHERE a.id = ? AND a.company_id = ? FOR SHARE OF a`, u.ActorID, u.CompanyID))
		if errors.Is(err, ErrNotFound) {
			var exists bool
			if err := t.tx.NewRaw(`SELECT EXISTS (SELECT 1 FROM companies WHERE id = ?)`, u.CompanyID).Scan(ctx, &exists); err != nil {
				return err
			}
			if !exists {
				return fmt.Errorf("company: %w", ErrNotFound)
			}
		} else if err != nil {
			return err
		}
		if !actorOf(actor, u.At).Administers(u.CompanyID) {
			return fmt.Errorf("actor %d is not an active administrator of the company (one who can act now): %w", u.ActorID, policy.ErrForbidden)
		}
		if !u.All {
			var n int
			emailIDs := []int64{}
			err := t.tx.NewRaw(`SELECT count(*), coalesce(array_agg(id ORDER BY id) FILTER (WHERE id_kind = 'email'), '{}')
				FROM accounts WHERE company_id = ? AND id = ANY(?)`,
				u.CompanyID, pgdialect.Array(ids)).Scan(ctx, &n, pgdialect.Array(&emailIDs))
			if err != nil {
				return err
			}
			if n != len(ids) {
				return fmt.Errorf("%d of %d accounts are not of the company: %w", len(ids)-n, len(ids), ErrNotFound)
			}
			if len(emailIDs) > 0 {
				return &policy.FieldError{Field: "account_ids", Reason: EmailIDsRefused(emailIDs)}
			}
		}
		var ok bool
		res.Deadline, ok = policy.UnlockDeadline(u.RequestedAt, u.At, actor.Company.Policy.Location)
		if !ok {
			res.Expired = true
			return t.recordExpiredUnlock(ctx, u, res.Deadline)
		}
		// The notices' keys are AdminUnlockedKey, built in SQL per account.
		keyPrefix := string(MailAdminUnlocked) + ":"
		keySuffix := fmt.Sprintf(":%d", res.Deadline.UnixMicro())
		// Rows are locked in id order, as every multi-row lock here is, so
		// two bulk unlocks of one company cannot deadlock.
		err = t.tx.NewRaw(`WITH target AS (
				SELECT a.id FROM (SELECT ?::timestamptz AS at) n, `+accountsWithCompany+`
				WHERE a.company_id = ? AND (? OR a.id = ANY(?))
				  AND a.id_kind = 'platform' AND a.status = 'active'
				  AND `+sqlRefusedByLock("n.at")+`
				ORDER BY a.id
				FOR UPDATE OF a
			), upd AS (
				UPDATE accounts a SET lock_state = 'unlocked_until', lock_reason = NULL, locked_at = NULL,
					lapsed_unlock_until = NULL, unlocked_until = ?, updated_at = now()
				FROM target WHERE a.id = target.id
				RETURNING a.id, a.company_id, a.email
			), ev AS (
				INSERT INTO audit_events (company_id, account_id, actor_account_id, kind, detail, request_id, occurred_at)
				SELECT upd.company_id, upd.id, ?, ?, json_build_object('unlocked_until', ?::timestamptz, 'all', ?::boolean, 'task_id', ?::text), ?, ?
				FROM upd
			), notice AS (
				INSERT INTO mails (kind, company_id, account_id, to_address, locale, idempotency_key, created_at)
				SELECT ?, upd.company_id, upd.id, upd.email, c.locale, ? || upd.id || ?, ?
				FROM upd JOIN companies c ON c.id = upd.company_id
				WHERE upd.email IS NOT NULL
				ON CONFLICT (idempotency_key) DO NOTHING
			)
			SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM upd`,
			u.At, u.CompanyID, u.All, pgdialect.Array(ids),
			res.Deadline,
			u.ActorID, string(EventUnlocked), res.Deadline, u.All, u.TaskID, u.RequestID, u.At,
			string(MailAdminUnlocked), keyPrefix, keySuffix, u.At,
		).Scan(ctx, pgdialect.Array(&res.Unlocked))
		if err != nil {
			return err
		}
		// A later statement sees the notices written above, and those of
		// an earlier delivery that unlocked the same accounts today.
		return t.tx.NewRaw(`SELECT coalesce(array_agg(m.id ORDER BY m.id), '{}')
			FROM accounts a JOIN mails m ON m.idempotency_key = ? || a.id || ?
			WHERE a.company_id = ? AND (? OR a.id = ANY(?)) AND a.lock_state = 'unlocked_until'
			  AND a.unlocked_until = ? AND m.status = ?`,
			keyPrefix, keySuffix, u.CompanyID, u.All, pgdialect.Array(ids), res.Deadline, MailPending,
		).Scan(ctx, pgdialect.Array(&res.NoticeMailIDs))
	})
	if err != nil {
		return UnlockResult{}, fmt.Errorf("%s: %w", op, err)
	}
	return res, nil
}

// recordExpiredUnlock writes the unlock_expired event of an unlock that
// came too late, once per task however often it is delivered.
func (t *Tx) recordExpiredUnlock(ctx context.Context, u Unlock, deadline time.Time) error {
	_, err := t.tx.NewRaw(`INSERT INTO audit_events (company_id, actor_account_id, kind, detail, request_id, occurred_at)
		SELECT ?, ?, ?, json_build_object('task_id', ?::text, 'requested_at', ?::timestamptz, 'unlocked_until', ?::timestamptz,
			'account_ids', ?::bigint[], 'all', ?::boolean), ?, ?
		WHERE NOT EXISTS (SELECT 1 FROM audit_events WHERE company_id = ? AND kind = ? AND detail->>'task_id' = ?)`,
		u.CompanyID, u.ActorID, string(EventUnlockExpired), u.TaskID, u.RequestedAt, deadline, pgdialect.Array(u.AccountIDs), u.All,
		u.RequestID, u.At, u.CompanyID, string(EventUnlockExpired), u.TaskID).Exec(ctx)
	return err
}

// UnlockOutcome is what an unlock task did, read back from the audit
// trail: it outlives asynq's memory of the task.
type UnlockOutcome struct {
	// Unlocked counts the accounts the task unlocked.
	Unlocked int
	// Expired is set when the task ran after its deadline.
	Expired bool
	// Deadline is the unlock's deadline, when either is known.
	Deadline time.Time
}

// Known reports whether the audit trail holds anything of the task.
func (o UnlockOutcome) Known() bool { return o.Unlocked > 0 || o.Expired }

// UnlockOutcome reads what the unlock task taskID did in companyID.
func (s *Store) UnlockOutcome(ctx context.Context, companyID, taskID string) (UnlockOutcome, error) {
	var o UnlockOutcome
	var deadline sql.NullTime
	err := s.db.NewRaw(`SELECT count(*) FILTER (WHERE kind = ?), count(*) FILTER (WHERE kind = ?) > 0,
			max((detail->>'unlocked_until')::timestamptz)
		FROM audit_events WHERE company_id = ? AND kind IN (?, ?) AND detail->>'task_id' = ?`,
		string(EventUnlocked), string(EventUnlockExpired), companyID, string(EventUnlocked), string(EventUnlockExpired), taskID,
	).Scan(ctx, &o.Unlocked, &o.Expired, &deadline)
	if err != nil {
		return UnlockOutcome{}, fmt.Errorf("postgres.UnlockOutcome(%q, %q): %w", companyID, taskID, err)
	}
	o.Deadline = deadline.Time
	return o, nil
}

// EmailIDsRefused says why an administrator's unlock naming email IDs is
// refused: the API's answer and the worker's task_rejected reason.
func EmailIDsRefused(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return "accounts " + strings.Join(s, ", ") + " have email IDs: they unlock themselves through the verification email, not through an administrator"
}

// EmailIDsAmong returns, in id order, those of ids that are email-ID
// accounts of the company: they unlock themselves through the
// verification email, so an administrator's unlock naming them is refused
// before it is queued.
func (s *Store) EmailIDsAmong(ctx context.Context, companyID string, ids []int64) ([]int64, error) {
	out := []int64{}
	if len(ids) == 0 {
		return out, nil
	}
	err := s.db.NewRaw(`SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM accounts
		WHERE company_id = ? AND id = ANY(?) AND id_kind = 'email'`, companyID, pgdialect.Array(ids)).Scan(ctx, pgdialect.Array(&out))
	if err != nil {
		return nil, fmt.Errorf("postgres.EmailIDsAmong(%q): %w", companyID, err)
	}
	return out, nil
}
