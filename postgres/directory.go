package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/dormancy/dormancy/policy"
)

// CompanyRecord is a company as the host describes it.
type CompanyRecord struct {
	ID                 string
	Name               string
	TimeZone           string
	InactivityDays     int
	VerificationTTL    time.Duration
	AlertWindow        time.Duration
	ResendInterval     time.Duration
	Locale             policy.Locale
	PrelockWarningDays []int
}

// UpsertCompany creates or updates a company with its settings; zero
// settings take the manual's defaults.
func (s *Store) UpsertCompany(ctx context.Context, c CompanyRecord) error {
	def := policy.DefaultPolicy()
	if c.TimeZone == "" {
		c.TimeZone = policy.DefaultTimeZone
	}
	if c.InactivityDays == 0 {
		c.InactivityDays = int(def.InactivityPeriod / (24 * time.Hour))
	}
	if c.VerificationTTL == 0 {
		c.VerificationTTL = def.VerificationTTL
	}
	if c.AlertWindow == 0 {
		c.AlertWindow = def.AlertWindow
	}
	if c.ResendInterval == 0 {
		c.ResendInterval = def.ResendInterval
	}
	if c.Locale == "" {
		c.Locale = def.Locale
	}
	days := c.PrelockWarningDays
	if days == nil {
		days = []int{}
	}
	_, err := s.db.NewRaw(`INSERT INTO companies (id, name, time_zone, inactivity_days, verification_ttl_seconds,
			alert_window_seconds, resend_interval_seconds, locale, prelock_warning_days)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, time_zone = excluded.time_zone,
			inactivity_days = excluded.inactivity_days, verification_ttl_seconds = excluded.verification_ttl_seconds,
			alert_window_seconds = excluded.alert_window_seconds, resend_interval_seconds = excluded.resend_interval_seconds,
			locale = excluded.locale, prelock_warning_days = excluded.prelock_warning_days, updated_at = now()`,
		c.ID, c.Name, c.TimeZone, c.InactivityDays, int(c.VerificationTTL/time.Second), int(c.AlertWindow/time.Second),
		int(c.ResendInterval/time.Second), string(c.Locale), pgdialect.Array(days)).Exec(ctx)
	if err != nil {
		return fmt.Errorf("postgres.UpsertCompany(%q): %w", c.ID, err)
	}
	return nil
}

// AccountRecord is an employee as the host describes it.
type AccountRecord struct {
	CompanyID          string
	LoginID            string
	IDKind             policy.IDKind
	Email              string
	Name               string
	Department         string
	CanManageEmployees bool
	Retired            bool
	Exempt             bool
	CreatedAt          time.Time
	LastLoginAt        time.Time
}

// UpsertAccount creates or updates an employee and returns dormancy's id.
// The lock state is dormancy's own and is not touched.
func (s *Store) UpsertAccount(ctx context.Context, a AccountRecord) (int64, error) {
	status := "active"
	if a.Retired {
		status = "retired"
	}
	var last any
	if !a.LastLoginAt.IsZero() {
		last = a.LastLoginAt
	}
	var id int64
	err := s.db.NewRaw(`INSERT INTO accounts (company_id, login_id, id_kind, email, name, department,
			can_manage_employees, status, exempt, created_at, last_login_at)
		VALUES (?, ?, ?, nullif(?, ''), ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (company_id, login_id) DO UPDATE SET id_kind = excluded.id_kind, email = excluded.email,
			name = excluded.name, department = excluded.department,
			can_manage_employees = excluded.can_manage_employees, status = excluded.status,
			exempt = excluded.exempt, last_login_at = greatest(accounts.last_login_at, excluded.last_login_at),
			updated_at = now()
		RETURNING id`,
		a.CompanyID, a.LoginID, string(a.IDKind), a.Email, a.Name, a.Department, a.CanManageEmployees,
		status, a.Exempt, a.CreatedAt, last).Scan(ctx, &id)
	if err != nil {
		return 0, fmt.Errorf("postgres.UpsertAccount(%q, %q): %w", a.CompanyID, a.LoginID, err)
	}
	return id, nil
}

// SetLoginNotificationRecipients replaces the company's recipients. Only
// active accounts of the same company are kept; the rest are ignored.
func (s *Store) SetLoginNotificationRecipients(ctx context.Context, companyID string, actorID int64, accountIDs []int64) error {
	return s.WithTx(ctx, func(t *Tx) error {
		if _, err := t.tx.NewRaw(`DELETE FROM login_notification_recipients WHERE company_id = ?`, companyID).Exec(ctx); err != nil {
			return fmt.Errorf("postgres.SetLoginNotificationRecipients(%q): %w", companyID, err)
		}
		if len(accountIDs) == 0 {
			return nil
		}
		_, err := t.tx.NewRaw(`INSERT INTO login_notification_recipients (company_id, account_id, created_by)
			SELECT company_id, id, nullif(?, 0) FROM accounts
			WHERE company_id = ? AND status = 'active' AND id = ANY(?)`,
			actorID, companyID, pgdialect.Array(accountIDs)).Exec(ctx)
		if err != nil {
			return fmt.Errorf("postgres.SetLoginNotificationRecipients(%q): %w", companyID, err)
		}
		return nil
	})
}
