package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dormancy/dormancy/policy"
)

// ReportSummary is what an assessor reads first: how many accounts are
// inactive past their company's period, how many of those are locked, why
// the others are not, and what dormancy did in the report's period. The
// counts apply the policy through its SQL twins (rules.go), as of now.
type ReportSummary struct {
	Accounts int `json:"accounts"`
	// Inactive counts the accounts whose last activity is at least the
	// period old, whatever their state.
	Inactive int `json:"inactive_past_period"`
	// InactiveLocked are locked, or their same-day unlock has lapsed: a
	// login is refused.
	InactiveLocked int `json:"inactive_locked"`
	// InactiveNotLocked is Inactive minus InactiveLocked, by reason.
	InactiveNotLocked int `json:"inactive_not_locked"`
	NotLockedExempt   int `json:"not_locked_exempt"`
	NotLockedRetired  int `json:"not_locked_retired"`
	// NotLockedUnlocked were unlocked by an administrator until a deadline
	// still ahead.
	NotLockedUnlocked int `json:"not_locked_unlocked"`
	// NotLockedPending are active, unexempt and dormant: the next login or
	// sweep locks them (a login is already refused).
	NotLockedPending int `json:"not_locked_pending_sweep"`

	// Events in the report's period.
	Locks   int `json:"locks"`
	Unlocks int `json:"unlocks"`
	Relocks int `json:"relocks"`
	Alerts  int `json:"alerts"`
}

// Report reads a company and the summary of its accounts at now, with the
// events of [since, until). An unknown company is ErrNotFound.
func (s *Store) Report(ctx context.Context, companyID string, now, since, until time.Time) (policy.Company, ReportSummary, error) {
	var sum ReportSummary
	var zone []struct {
		Name, TimeZone string
		InactivityDays int
	}
	if err := s.db.NewRaw(`SELECT name, time_zone, inactivity_days FROM companies WHERE id = ?`, companyID).Scan(ctx, &zone); err != nil {
		return policy.Company{}, sum, fmt.Errorf("postgres.Report(%q): %w", companyID, err)
	}
	if len(zone) == 0 {
		return policy.Company{}, sum, fmt.Errorf("postgres.Report(%q): %w", companyID, ErrNotFound)
	}
	loc, err := loadLocation(zone[0].TimeZone)
	if err != nil {
		return policy.Company{}, sum, fmt.Errorf("postgres.Report(%q): %w", companyID, err)
	}
	co := policy.Company{ID: companyID, Name: zone[0].Name, Policy: policy.Policy{Location: loc, InactivityPeriod: time.Duration(zone[0].InactivityDays) * 24 * time.Hour}}

	inactive := sqlDormant("?::timestamptz")
	locked := `(a.lock_state = 'locked' OR ` + sqlUnlockLapsed("?::timestamptz") + `)`
	q := `SELECT count(*) AS accounts,
			count(*) FILTER (WHERE ` + inactive + `) AS inactive,
			count(*) FILTER (WHERE ` + inactive + ` AND ` + locked + `) AS inactive_locked,
			count(*) FILTER (WHERE ` + inactive + ` AND NOT ` + locked + ` AND a.status = 'retired') AS not_locked_retired,
			count(*) FILTER (WHERE ` + inactive + ` AND NOT ` + locked + ` AND a.status <> 'retired' AND a.exempt) AS not_locked_exempt,
			count(*) FILTER (WHERE ` + inactive + ` AND NOT ` + locked + ` AND a.status <> 'retired' AND NOT a.exempt AND a.lock_state = 'unlocked_until') AS not_locked_unlocked,
			count(*) FILTER (WHERE ` + inactive + ` AND NOT ` + locked + ` AND a.status <> 'retired' AND NOT a.exempt AND a.lock_state = 'active') AS not_locked_pending
		FROM ` + accountsWithCompany + ` WHERE a.company_id = ?`
	// Every placeholder but the last is the instant of the report.
	args := make([]any, strings.Count(q, "?"))
	for i := range args {
		args[i] = now
	}
	args[len(args)-1] = companyID
	err = s.db.NewRaw(q, args...).Scan(ctx,
		&sum.Accounts, &sum.Inactive, &sum.InactiveLocked, &sum.NotLockedRetired, &sum.NotLockedExempt, &sum.NotLockedUnlocked, &sum.NotLockedPending)
	if err != nil {
		return co, sum, fmt.Errorf("postgres.Report(%q): %w", companyID, err)
	}
	sum.InactiveNotLocked = sum.Inactive - sum.InactiveLocked
	var kinds []struct {
		Kind string
		N    int
	}
	err = s.db.NewRaw(`SELECT kind, count(*) AS n FROM audit_events
		WHERE company_id = ? AND occurred_at >= ? AND occurred_at <= ? AND kind IN (?, ?, ?, ?) GROUP BY kind`,
		companyID, since, until, EventLocked, EventUnlocked, EventRelocked, EventAlertSent).Scan(ctx, &kinds)
	if err != nil {
		return co, sum, fmt.Errorf("postgres.Report(%q): %w", companyID, err)
	}
	for _, k := range kinds {
		switch EventKind(k.Kind) {
		case EventLocked:
			sum.Locks = k.N
		case EventUnlocked:
			sum.Unlocks = k.N
		case EventRelocked:
			sum.Relocks = k.N
		case EventAlertSent:
			sum.Alerts = k.N
		}
	}
	return co, sum, nil
}

// ReportAccounts calls fn with every account of the company, by login ID,
// from one streaming query: memory stays flat however many there are.
func (s *Store) ReportAccounts(ctx context.Context, companyID string, fn func(policy.Employee) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT `+accountColumns+`
		FROM accounts a WHERE a.company_id = ? ORDER BY a.login_id`, companyID)
	if err != nil {
		return fmt.Errorf("postgres.ReportAccounts(%q): %w", companyID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r employeeRow
		if err := r.scanAccount(rows); err != nil {
			return fmt.Errorf("postgres.ReportAccounts(%q): %w", companyID, err)
		}
		if err := fn(r.employee()); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres.ReportAccounts(%q): %w", companyID, err)
	}
	return nil
}
