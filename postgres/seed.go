package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/dormancy/dormancy/policy"
)

// Fixtures and seeds (tests, the dev server, benchmarks) write companies
// and accounts through the sync path with versions ignored and no audit:
// these are not for a host's data.

// CompanyRecord is a company with every setting, as fixtures and seeds
// write it.
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
	FallbackContact    string
}

// UpsertCompany writes a company whatever the stored version, without an
// audit event: for seeding a database and for tests. Zero settings take
// the manual's defaults. Hosts use SyncCompany (through tasks.Client).
func (s *Store) UpsertCompany(ctx context.Context, c CompanyRecord) error {
	def := policy.DefaultPolicy()
	if c.TimeZone == "" {
		c.TimeZone = policy.DefaultTimeZone
	}
	loc, err := loadLocation(c.TimeZone)
	if err != nil {
		return fmt.Errorf("postgres.UpsertCompany(%q): %w", c.ID, err)
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
	pc := policy.Company{ID: c.ID, Name: c.Name, PrelockWarningDays: c.PrelockWarningDays, FallbackContact: c.FallbackContact, Policy: policy.Policy{
		Location: loc, InactivityPeriod: time.Duration(c.InactivityDays) * 24 * time.Hour,
		VerificationTTL: c.VerificationTTL, Locale: c.Locale,
	}}
	err = s.WithTx(ctx, func(t *Tx) error {
		_, err := syncCompany(ctx, t.tx, pc, 0, &tuning{c.AlertWindow, c.ResendInterval}, syncOpts{force: true, at: time.Now()})
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres.UpsertCompany(%q): %w", c.ID, err)
	}
	return nil
}

// AccountRecord is an employee as fixtures and seeds write it.
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

// UpsertAccount writes an employee whatever the stored version, without an
// audit event, and returns dormancy's id: for seeding a database and for
// tests. The consequences of a change apply as for SyncAccount. The lock
// state is dormancy's own and is not touched.
func (s *Store) UpsertAccount(ctx context.Context, a AccountRecord) (int64, error) {
	e := policy.Employee{
		CompanyID: a.CompanyID, LoginID: a.LoginID, Email: a.Email, Name: a.Name, Department: a.Department,
		CanManageEmployees: a.CanManageEmployees,
		Account: policy.Account{
			IDKind: a.IDKind, Retired: a.Retired, Exempt: a.Exempt, CreatedAt: a.CreatedAt, LastLoginAt: a.LastLoginAt,
		},
	}
	var row mergeRow
	err := s.WithTx(ctx, func(t *Tx) error {
		var err error
		row, err = syncOne(ctx, t.tx, e, 0, syncOpts{force: true, at: time.Now()})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres.UpsertAccount(%q, %q): %w", a.CompanyID, a.LoginID, err)
	}
	return row.AccountID, nil
}
