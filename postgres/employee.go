package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
}

// accountColumns are the account's own columns of employeeRow, and
// companyColumns its company's; employeeColumns is both, over
// accountsWithCompany.
const accountColumns = `
	a.id, a.company_id, a.login_id, a.id_kind, a.email, a.name, a.department,
	a.can_manage_employees, a.status, a.exempt, a.created_at, a.last_login_at,
	a.lock_state, a.lock_reason, a.unlocked_until, a.locked_at, a.lapsed_unlock_until,
	a.exempt_reason, a.exempt_granted_by, a.exempt_until`

// scanAccount reads one row of accountColumns, in their order, without
// bun's reflection: the report scans a million of them.
func (r *employeeRow) scanAccount(rows interface{ Scan(...any) error }) error {
	return rows.Scan(&r.ID, &r.CompanyID, &r.LoginID, &r.IDKind, &r.Email, &r.Name, &r.Department,
		&r.CanManageEmployees, &r.Status, &r.Exempt, &r.CreatedAt, &r.LastLoginAt,
		&r.LockState, &r.LockReason, &r.UnlockedUntil, &r.LockedAt, &r.LapsedUnlockUntil,
		&r.ExemptReason, &r.ExemptGrantedBy, &r.ExemptUntil)
}

// accountColumnCount is how many columns accountColumns names.
var accountColumnCount = strings.Count(accountColumns, ",") + 1

// fromCopy reads one row of accountColumns, in their order, from a COPY
// text row (eachCopyRow: NULL is empty).
func (r *employeeRow) fromCopy(f []string) error {
	if len(f) != accountColumnCount {
		return errCopyText
	}
	var err error
	if r.ID, err = strconv.ParseInt(f[0], 10, 64); err != nil {
		return err
	}
	r.CompanyID, r.LoginID, r.IDKind, r.Name, r.Department = f[1], f[2], f[3], f[5], f[6]
	r.Email = sql.NullString{String: f[4], Valid: f[4] != ""}
	r.CanManageEmployees, r.Status, r.Exempt = f[7] == "t", f[8], f[9] == "t"
	r.LockState = f[12]
	r.LockReason = sql.NullString{String: f[13], Valid: f[13] != ""}
	r.ExemptReason, r.ExemptGrantedBy = f[17], f[18]
	if r.CreatedAt, err = parseTimestamptz(f[10]); err != nil {
		return err
	}
	if r.LastLoginAt, err = nullTimestamptz(f[11]); err != nil {
		return err
	}
	if r.UnlockedUntil, err = nullTimestamptz(f[14]); err != nil {
		return err
	}
	if r.LockedAt, err = nullTimestamptz(f[15]); err != nil {
		return err
	}
	if r.LapsedUnlockUntil, err = nullTimestamptz(f[16]); err != nil {
		return err
	}
	r.ExemptUntil, err = nullTimestamptz(f[19])
	return err
}

const companyColumns = `
	c.name AS company_name, c.time_zone, c.inactivity_days, c.verification_ttl_seconds,
	c.alert_window_seconds, c.resend_interval_seconds, c.locale, c.prelock_warning_days, c.fallback_contact`

const employeeColumns = accountColumns + `,` + companyColumns

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
	loc, err := loadLocation(r.TimeZone)
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

func scanSubject(ctx context.Context, q *bun.RawQuery) (Subject, error) {
	var r employeeRow
	if err := q.Scan(ctx, &r); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Subject{}, ErrNotFound
		}
		return Subject{}, err
	}
	return r.subject()
}

func (r *employeeRow) subject() (Subject, error) {
	c, err := r.company()
	if err != nil {
		return Subject{}, err
	}
	return Subject{Employee: r.employee(), Company: c}, nil
}

// lockSubject runs st, a statement of employeeColumns that locks one
// account, and reads its row.
func (t *Tx) lockSubject(ctx context.Context, st *statement, args ...any) (Subject, error) {
	var r employeeRow
	if err := t.scanOne(ctx, st, args, &r); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Subject{}, ErrNotFound
		}
		return Subject{}, err
	}
	return r.subject()
}

// checkAccountStmt is CheckAccount's statement: every login asks it.
var checkAccountStmt = newStatement("CheckAccount", `SELECT `+accountColumns+` FROM accounts a WHERE a.company_id = $1 AND a.login_id = $2`)

// CheckAccount loads an account and its company's settings for the
// synchronous check a login page makes, without a lock. The account is one
// row read by its unique key; the company comes from the cache when
// CacheCompanies turned it on, so the check costs one index lookup, where
// a join would plan and read two tables on every login.
func (s *Store) CheckAccount(ctx context.Context, companyID, loginID string) (policy.Employee, policy.Company, error) {
	co, err := s.companies.get(ctx, companyID, s.loadCompany)
	if err != nil {
		return policy.Employee{}, policy.Company{}, fmt.Errorf("postgres.CheckAccount(%q, %q): %w", companyID, loginID, err)
	}
	var r employeeRow
	stmt, err := s.stmt(ctx, nil, checkAccountStmt)
	if err == nil {
		sctx, end := checkAccountStmt.trace(ctx)
		err = r.scanAccount(stmt.QueryRowContext(sctx, companyID, loginID))
		end(err)
	}
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return policy.Employee{}, policy.Company{}, fmt.Errorf("postgres.CheckAccount(%q, %q): %w", companyID, loginID, err)
	}
	return r.employee(), co, nil
}

// loadCompany reads one company's settings.
func (s *Store) loadCompany(ctx context.Context, companyID string) (policy.Company, error) {
	var r employeeRow
	err := s.db.NewRaw(`SELECT c.id AS company_id, `+companyColumns+` FROM companies c WHERE c.id = ?`, companyID).Scan(ctx, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return policy.Company{}, ErrNotFound
	}
	if err != nil {
		return policy.Company{}, err
	}
	return r.company()
}

// Administrators lists the company's employed administrators with their
// lock state: those a platform ID refused by a lock may be told to ask,
// before policy.CanAct keeps the ones who can act. Only refused logins read
// it, so the allowed ones never pay for the list.
func (s *Store) Administrators(ctx context.Context, companyID string) ([]policy.Employee, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+accountColumns+` FROM accounts a
		WHERE a.company_id = ? AND a.can_manage_employees AND a.status = 'active'
		ORDER BY a.department, a.name, a.id`, companyID)
	if err != nil {
		return nil, fmt.Errorf("postgres.Administrators(%q): %w", companyID, err)
	}
	defer rows.Close()
	var out []policy.Employee
	for rows.Next() {
		var r employeeRow
		if err := r.scanAccount(rows); err != nil {
			return nil, fmt.Errorf("postgres.Administrators(%q): %w", companyID, err)
		}
		out = append(out, r.employee())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres.Administrators(%q): %w", companyID, err)
	}
	return out, nil
}

// LockAccount loads an account and its company and holds the account's row
// lock until the transaction ends, so attempts on one account run one at a
// time and a racing duplicate sees the first one's result.
func (t *Tx) LockAccount(ctx context.Context, companyID, loginID string) (Subject, error) {
	sub, err := t.lockSubject(ctx, lockAccount, companyID, loginID)
	if err != nil {
		return Subject{}, fmt.Errorf("postgres.LockAccount(%q, %q): %w", companyID, loginID, err)
	}
	return sub, nil
}

// LockAccountByID is LockAccount for callers that hold dormancy's id.
func (t *Tx) LockAccountByID(ctx context.Context, id int64) (Subject, error) {
	sub, err := t.lockSubject(ctx, lockAccountByID, id)
	if err != nil {
		return Subject{}, fmt.Errorf("postgres.LockAccountByID(%d): %w", id, err)
	}
	return sub, nil
}

var (
	lockAccount = newStatement("LockAccount", `SELECT `+employeeColumns+`
		FROM accounts a JOIN companies c ON c.id = a.company_id
		WHERE a.company_id = $1 AND a.login_id = $2
		FOR UPDATE OF a`)
	lockAccountByID = newStatement("LockAccountByID", `SELECT `+employeeColumns+`
		FROM accounts a JOIN companies c ON c.id = a.company_id
		WHERE a.id = $1
		FOR UPDATE OF a`)
)

var (
	applyLock = audited("ApplyDecision.lock", `UPDATE accounts SET lock_state = 'locked', lock_reason = $1, locked_at = $2,
		unlocked_until = NULL, lapsed_unlock_until = NULL, updated_at = now() WHERE id = $3`)
	// As the relock job does (RelockBatch): the lock dates from the
	// deadline, which it keeps, so a login answered before it counts.
	applyRelock = audited("ApplyDecision.relock", `UPDATE accounts SET lock_state = 'locked', lock_reason = $1, locked_at = unlocked_until,
		lapsed_unlock_until = unlocked_until, unlocked_until = NULL, updated_at = now() WHERE id = $2`)
	applyActivate = audited("ApplyDecision.activate", `UPDATE accounts SET lock_state = 'active', lock_reason = NULL, locked_at = NULL,
		unlocked_until = NULL, lapsed_unlock_until = NULL, last_login_at = greatest(last_login_at, $1), updated_at = now()
		WHERE id = $2`)
	applyLoginDate = newStatement("ApplyDecision.loginDate", `UPDATE accounts SET last_login_at = greatest(last_login_at, $1) WHERE id = $2`)
)

// ApplyDecision writes the lock state and login date a decision made at
// decidedAt asks for, with an audit event for each change of lock state.
// decidedAt is dormancy's own time of the answer: a lock takes effect from
// it, and it is the login date an allowed interactive login sets.
func (t *Tx) ApplyDecision(ctx context.Context, e policy.Employee, d policy.Decision, decidedAt time.Time, ev Event) error {
	event := func(k EventKind) Event {
		ev.Kind, ev.CompanyID, ev.AccountID = k, e.CompanyID, e.ID
		ev.Detail = mergeDetail(ev.Detail, map[string]any{"reason": string(d.Reason), "outcome": string(d.Outcome)})
		return ev
	}
	var err error
	switch d.Transition {
	case policy.TransitionLock:
		err = t.execAudited(ctx, applyLock, event(EventLocked), string(d.Reason), decidedAt, e.ID)
	case policy.TransitionRelock:
		err = t.execAudited(ctx, applyRelock, event(EventRelocked), string(d.Reason), e.ID)
	case policy.TransitionActivate:
		err = t.execAudited(ctx, applyActivate, event(EventActivated), decidedAt, e.ID)
	default:
		if d.UpdateLoginDate {
			err = t.exec(ctx, applyLoginDate, decidedAt, e.ID)
		}
	}
	if err != nil {
		return fmt.Errorf("postgres.ApplyDecision(%d): %w", e.ID, err)
	}
	return nil
}
