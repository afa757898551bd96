package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/dormancy/dormancy/policy"
)

// employeeRow is an account joined with its company's settings: everything
// one decision reads, fetched in one statement.
type employeeRow struct {
	ID                 int64
	CompanyID          string
	LoginID            string
	IDKind             string
	Email              sql.NullString
	Name               string
	Department         string
	CanManageEmployees bool
	Status             string
	Exempt             bool
	CreatedAt          time.Time
	LastLoginAt        sql.NullTime
	LockState          string
	LockReason         sql.NullString
	UnlockedUntil      sql.NullTime
	LockedAt           sql.NullTime
	LapsedUnlockUntil  sql.NullTime
	ExemptReason       string
	ExemptGrantedBy    string
	ExemptUntil        sql.NullTime

	CompanyName            string
	TimeZone               string
	InactivityDays         int
	VerificationTTLSeconds int
	AlertWindowSeconds     int
	ResendIntervalSeconds  int
	Locale                 string
	PrelockWarningDays     []int64 `bun:",array"`
	FallbackContact        string

	Administrators json.RawMessage
}

const employeeColumns = `
	a.id, a.company_id, a.login_id, a.id_kind, a.email, a.name, a.department,
	a.can_manage_employees, a.status, a.exempt, a.created_at, a.last_login_at,
	a.lock_state, a.lock_reason, a.unlocked_until, a.locked_at, a.lapsed_unlock_until,
	a.exempt_reason, a.exempt_granted_by, a.exempt_until,
	c.name AS company_name, c.time_zone, c.inactivity_days, c.verification_ttl_seconds,
	c.alert_window_seconds, c.resend_interval_seconds, c.locale, c.prelock_warning_days, c.fallback_contact`

func (r *employeeRow) employee() policy.Employee {
	return policy.Employee{
		ID:                 r.ID,
		CompanyID:          r.CompanyID,
		LoginID:            r.LoginID,
		Email:              r.Email.String,
		Name:               r.Name,
		Department:         r.Department,
		CanManageEmployees: r.CanManageEmployees,
		ExemptReason:       r.ExemptReason,
		ExemptGrantedBy:    r.ExemptGrantedBy,
		ExemptUntil:        r.ExemptUntil.Time,
		Account: policy.Account{
			IDKind:         policy.IDKind(r.IDKind),
			Retired:        r.Status == "retired",
			Exempt:         r.Exempt,
			CreatedAt:      r.CreatedAt,
			LastLoginAt:    r.LastLoginAt.Time,
			State:          policy.LockState(r.LockState),
			Reason:         policy.LockReason(r.LockReason.String),
			UnlockedUntil:  r.UnlockedUntil.Time,
			LockedAt:       r.LockedAt.Time,
			LapsedDeadline: r.LapsedUnlockUntil.Time,
		},
	}
}

func (r *employeeRow) company() (policy.Company, error) {
	loc, err := time.LoadLocation(r.TimeZone)
	if err != nil {
		return policy.Company{}, fmt.Errorf("company %q: time zone %q: %w", r.CompanyID, r.TimeZone, err)
	}
	days := make([]int, len(r.PrelockWarningDays))
	for i, d := range r.PrelockWarningDays {
		days[i] = int(d)
	}
	return policy.Company{
		ID:   r.CompanyID,
		Name: r.CompanyName,
		Policy: policy.Policy{
			Location:         loc,
			InactivityPeriod: time.Duration(r.InactivityDays) * 24 * time.Hour,
			VerificationTTL:  time.Duration(r.VerificationTTLSeconds) * time.Second,
			AlertWindow:      time.Duration(r.AlertWindowSeconds) * time.Second,
			ResendInterval:   time.Duration(r.ResendIntervalSeconds) * time.Second,
			Locale:           policy.Locale(r.Locale),
		},
		PrelockWarningDays: days,
		FallbackContact:    r.FallbackContact,
	}, nil
}

// Subject is an account with its company, as one decision needs them.
type Subject struct {
	Employee policy.Employee
	Company  policy.Company
}

func scanSubject(ctx context.Context, q *bun.RawQuery) (Subject, []policy.Employee, error) {
	var r employeeRow
	if err := q.Scan(ctx, &r); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Subject{}, nil, ErrNotFound
		}
		return Subject{}, nil, err
	}
	c, err := r.company()
	if err != nil {
		return Subject{}, nil, err
	}
	var admins []policy.Employee
	if len(r.Administrators) > 0 {
		var rows []administratorJSON
		if err := json.Unmarshal(r.Administrators, &rows); err != nil {
			return Subject{}, nil, err
		}
		admins = make([]policy.Employee, len(rows))
		for i, a := range rows {
			admins[i] = a.employee(r.CompanyID)
		}
	}
	return Subject{Employee: r.employee(), Company: c}, admins, nil
}

// administratorJSON is one administrator as CheckAccount aggregates them:
// what the lock message shows and what policy.CanAct reads.
type administratorJSON struct {
	ID                int64      `json:"id"`
	Department        string     `json:"department"`
	Name              string     `json:"name"`
	IDKind            string     `json:"id_kind"`
	Exempt            bool       `json:"exempt"`
	CreatedAt         time.Time  `json:"created_at"`
	LastLoginAt       *time.Time `json:"last_login_at"`
	LockState         string     `json:"lock_state"`
	LockReason        *string    `json:"lock_reason"`
	UnlockedUntil     *time.Time `json:"unlocked_until"`
	LockedAt          *time.Time `json:"locked_at"`
	LapsedUnlockUntil *time.Time `json:"lapsed_unlock_until"`
}

func (a administratorJSON) employee(companyID string) policy.Employee {
	t := func(p *time.Time) time.Time {
		if p == nil {
			return time.Time{}
		}
		return *p
	}
	var reason string
	if a.LockReason != nil {
		reason = *a.LockReason
	}
	return policy.Employee{
		ID: a.ID, CompanyID: companyID, Name: a.Name, Department: a.Department, CanManageEmployees: true,
		Account: policy.Account{
			IDKind: policy.IDKind(a.IDKind), Exempt: a.Exempt, CreatedAt: a.CreatedAt, LastLoginAt: t(a.LastLoginAt),
			State: policy.LockState(a.LockState), Reason: policy.LockReason(reason), UnlockedUntil: t(a.UnlockedUntil),
			LockedAt: t(a.LockedAt), LapsedDeadline: t(a.LapsedUnlockUntil),
		},
	}
}

// CheckAccount loads an account, its company and, for a platform ID that a
// lock refuses at now, the company's active administrators with their lock
// state, in one round trip: the synchronous check a login page makes must
// cost one query, and the 98 % of logins that are allowed must not pay for
// the administrators' list they never show. The caller keeps those
// policy.CanAct lets act.
func (s *Store) CheckAccount(ctx context.Context, companyID, loginID string, now time.Time) (policy.Employee, policy.Company, []policy.Employee, error) {
	q := s.db.NewRaw(`SELECT `+employeeColumns+`,
		CASE WHEN a.id_kind = 'platform' AND a.status = 'active' AND `+sqlRefusedByLock("?::timestamptz")+` THEN (
			SELECT coalesce(json_agg(json_build_object(
				'id', ad.id, 'department', ad.department, 'name', ad.name, 'id_kind', ad.id_kind, 'exempt', ad.exempt,
				'created_at', ad.created_at, 'last_login_at', ad.last_login_at, 'lock_state', ad.lock_state,
				'lock_reason', ad.lock_reason, 'unlocked_until', ad.unlocked_until, 'locked_at', ad.locked_at,
				'lapsed_unlock_until', ad.lapsed_unlock_until)
				ORDER BY ad.department, ad.name, ad.id), '[]')
			FROM accounts ad
			WHERE ad.company_id = a.company_id AND ad.can_manage_employees AND ad.status = 'active'
		) END AS administrators
		FROM accounts a JOIN companies c ON c.id = a.company_id
		WHERE a.company_id = ? AND a.login_id = ?`, now, now, companyID, loginID)
	sub, admins, err := scanSubject(ctx, q)
	if err != nil {
		return policy.Employee{}, policy.Company{}, nil, fmt.Errorf("postgres.CheckAccount(%q, %q): %w", companyID, loginID, err)
	}
	return sub.Employee, sub.Company, admins, nil
}

// LockAccount loads an account and its company and holds the account's row
// lock until the transaction ends, so attempts on one account run one at a
// time and a racing duplicate sees the first one's result.
func (t *Tx) LockAccount(ctx context.Context, companyID, loginID string) (Subject, error) {
	q := t.tx.NewRaw(`SELECT `+employeeColumns+`, NULL AS administrators
		FROM accounts a JOIN companies c ON c.id = a.company_id
		WHERE a.company_id = ? AND a.login_id = ?
		FOR UPDATE OF a`, companyID, loginID)
	sub, _, err := scanSubject(ctx, q)
	if err != nil {
		return Subject{}, fmt.Errorf("postgres.LockAccount(%q, %q): %w", companyID, loginID, err)
	}
	return sub, nil
}

// LockAccountByID is LockAccount for callers that hold dormancy's id.
func (t *Tx) LockAccountByID(ctx context.Context, id int64) (Subject, error) {
	q := t.tx.NewRaw(`SELECT `+employeeColumns+`, NULL AS administrators
		FROM accounts a JOIN companies c ON c.id = a.company_id
		WHERE a.id = ?
		FOR UPDATE OF a`, id)
	sub, _, err := scanSubject(ctx, q)
	if err != nil {
		return Subject{}, fmt.Errorf("postgres.LockAccountByID(%d): %w", id, err)
	}
	return sub, nil
}

// ApplyDecision writes the lock state and login date a decision made at
// decidedAt asks for, with an audit event for each change of lock state.
// decidedAt is dormancy's own time of the answer: a lock takes effect from
// it, and it is the login date an allowed interactive login sets.
func (t *Tx) ApplyDecision(ctx context.Context, e policy.Employee, d policy.Decision, decidedAt time.Time, ev Event) error {
	var err error
	switch d.Transition {
	case policy.TransitionLock:
		_, err = t.tx.NewRaw(`UPDATE accounts SET lock_state = 'locked', lock_reason = ?, locked_at = ?,
			unlocked_until = NULL, lapsed_unlock_until = NULL, updated_at = now() WHERE id = ?`, string(d.Reason), decidedAt, e.ID).Exec(ctx)
		ev.Kind = EventLocked
	case policy.TransitionRelock:
		// As the relock job does (RelockBatch): the lock dates from the
		// deadline, which it keeps, so a login answered before it counts.
		_, err = t.tx.NewRaw(`UPDATE accounts SET lock_state = 'locked', lock_reason = ?, locked_at = unlocked_until,
			lapsed_unlock_until = unlocked_until, unlocked_until = NULL, updated_at = now() WHERE id = ?`, string(d.Reason), e.ID).Exec(ctx)
		ev.Kind = EventRelocked
	case policy.TransitionActivate:
		_, err = t.tx.NewRaw(`UPDATE accounts SET lock_state = 'active', lock_reason = NULL, locked_at = NULL,
			unlocked_until = NULL, lapsed_unlock_until = NULL, last_login_at = greatest(last_login_at, ?), updated_at = now()
			WHERE id = ?`, decidedAt, e.ID).Exec(ctx)
		ev.Kind = EventActivated
	default:
		if d.UpdateLoginDate {
			_, err = t.tx.NewRaw(`UPDATE accounts SET last_login_at = greatest(last_login_at, ?) WHERE id = ?`, decidedAt, e.ID).Exec(ctx)
		}
	}
	if err != nil {
		return fmt.Errorf("postgres.ApplyDecision(%d): %w", e.ID, err)
	}
	if ev.Kind == "" {
		return nil
	}
	ev.CompanyID, ev.AccountID = e.CompanyID, e.ID
	ev.Detail = mergeDetail(ev.Detail, map[string]any{"reason": string(d.Reason), "outcome": string(d.Outcome)})
	return t.Audit(ctx, ev)
}
