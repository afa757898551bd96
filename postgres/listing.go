package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/dormancy/dormancy/policy"
)

// AccountView is an account as the admin server shows it: who the person
// is, the login date and where the lock stands.
type AccountView struct {
	ID                 int64
	CompanyID          string
	LoginID            string
	IDKind             policy.IDKind
	Email              string
	Name               string
	Department         string
	CanManageEmployees bool
	Retired            bool
	// LastLoginAt is the login date; zero means never.
	LastLoginAt time.Time
	// State is the stored state, except that an unlock whose deadline has
	// passed reads as locked: deadlines are enforced when read.
	State         policy.LockState
	Reason        policy.LockReason
	LockedAt      time.Time
	UnlockedUntil time.Time
	// Recipient is set when the account is a login notification recipient.
	Recipient bool
}

// Locked reports whether the account refuses logins because of a lock.
func (a AccountView) Locked() bool { return a.State == policy.StateLocked }

type accountViewRow struct {
	ID                 int64
	CompanyID          string
	LoginID            string
	IDKind             string
	Email              sql.NullString
	Name               string
	Department         string
	CanManageEmployees bool
	Status             string
	LastLoginAt        sql.NullTime
	LockState          string
	LockReason         sql.NullString
	LockedAt           sql.NullTime
	UnlockedUntil      sql.NullTime
	Recipient          bool
	Total              int
}

func (r accountViewRow) view() AccountView {
	return AccountView{
		ID: r.ID, CompanyID: r.CompanyID, LoginID: r.LoginID, IDKind: policy.IDKind(r.IDKind),
		Email: r.Email.String, Name: r.Name, Department: r.Department,
		CanManageEmployees: r.CanManageEmployees, Retired: r.Status == "retired",
		LastLoginAt: r.LastLoginAt.Time, State: policy.LockState(r.LockState),
		Reason: policy.LockReason(r.LockReason.String), LockedAt: r.LockedAt.Time,
		UnlockedUntil: r.UnlockedUntil.Time, Recipient: r.Recipient,
	}
}

// accountViewColumns reads an account refused by a lock (an unlock whose
// deadline passed, or dormancy the sweep has not reached yet) as locked for
// the dormant reason, the way policy.Decide treats it, so the list never
// shows as open an account that would be refused. It needs the company
// (accountsWithCompany).
var accountViewColumns = `
	a.id, a.company_id, a.login_id, a.id_kind, a.email, a.name, a.department,
	a.can_manage_employees, a.status, a.last_login_at,
	CASE WHEN a.status = 'active' AND ` + sqlRefusedByLock("?0::timestamptz") + ` THEN 'locked' ELSE a.lock_state END AS lock_state,
	CASE WHEN a.status = 'active' AND a.lock_state <> 'locked' AND ` + sqlRefusedByLock("?0::timestamptz") + ` THEN 'dormant'
		ELSE a.lock_reason END AS lock_reason,
	a.locked_at,
	CASE WHEN a.lock_state = 'unlocked_until' AND NOT ` + sqlUnlockLapsed("?0") + ` THEN a.unlocked_until END AS unlocked_until,
	EXISTS (SELECT 1 FROM login_notification_recipients r WHERE r.company_id = a.company_id AND r.account_id = a.id) AS recipient`

// lockedAt is the locked-only filter, with the same reading of deadlines.
// A retired account is never one to unlock, whatever lock it kept.
var lockedAt = `a.status = 'active' AND ` + sqlRefusedByLock("?0::timestamptz")

// AccountFilter selects a page of a company's employee list.
type AccountFilter struct {
	// LockedOnly keeps the accounts that refuse logins because of a lock.
	LockedOnly bool
	// Page is 1-based; PerPage is capped at MaxPerPage.
	Page    int
	PerPage int
}

// MaxPerPage bounds one page, so one request cannot pull a whole company.
const MaxPerPage = 200

// AccountPage is one page of a company's employee list.
type AccountPage struct {
	Accounts []AccountView
	// Total counts every account the filter matches, over all pages.
	Total   int
	Page    int
	PerPage int
}

// ListAccounts returns a page of the company's accounts, ordered by
// department, name and id, with lock states as they read at now.
func (s *Store) ListAccounts(ctx context.Context, companyID string, f AccountFilter, now time.Time) (AccountPage, error) {
	if f.PerPage <= 0 {
		f.PerPage = 50
	}
	f.PerPage = min(f.PerPage, MaxPerPage)
	f.Page = max(f.Page, 1)
	where := `a.company_id = ?1`
	if f.LockedOnly {
		where += ` AND ` + lockedAt
	}
	var rows []accountViewRow
	err := s.db.NewRaw(`SELECT `+accountViewColumns+`, count(*) OVER () AS total
		FROM `+accountsWithCompany+` WHERE `+where+`
		ORDER BY a.department, a.name, a.id
		LIMIT ?2 OFFSET ?3`, now, companyID, f.PerPage, (f.Page-1)*f.PerPage).Scan(ctx, &rows)
	if err != nil {
		return AccountPage{}, fmt.Errorf("postgres.ListAccounts(%q): %w", companyID, err)
	}
	p := AccountPage{Accounts: make([]AccountView, len(rows)), Page: f.Page, PerPage: f.PerPage}
	for i, r := range rows {
		p.Accounts[i] = r.view()
		p.Total = r.Total
	}
	if len(rows) == 0 && f.Page > 1 {
		// Past the last page the window function has no row to ride on.
		q := `SELECT count(*) FROM ` + accountsWithCompany + ` WHERE ` + where
		if err := s.db.NewRaw(q, now, companyID).Scan(ctx, &p.Total); err != nil {
			return AccountPage{}, fmt.Errorf("postgres.ListAccounts(%q): count: %w", companyID, err)
		}
	}
	return p, nil
}

// Account returns one account as the admin server shows it, whatever its
// company; callers compare CompanyID with the actor's.
func (s *Store) Account(ctx context.Context, id int64, now time.Time) (AccountView, error) {
	var r accountViewRow
	err := s.db.NewRaw(`SELECT `+accountViewColumns+`, 0 AS total FROM `+accountsWithCompany+` WHERE a.id = ?1`, now, id).Scan(ctx, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return AccountView{}, fmt.Errorf("postgres.Account(%d): %w", id, ErrNotFound)
	}
	if err != nil {
		return AccountView{}, fmt.Errorf("postgres.Account(%d): %w", id, err)
	}
	return r.view(), nil
}
