package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/dormancy/dormancy/policy"
)

// Actor is the account an administrator acts as, with what the permission
// check reads.
type Actor struct {
	AccountID          int64
	CompanyID          string
	Name               string
	CanManageEmployees bool
	Retired            bool
	// CanAct is policy.CanAct at the time the actor was loaded: an
	// administrator who is locked, lapsed or dormant cannot act.
	CanAct bool
}

// Administers reports whether the actor may manage the employees of
// companyID now: an administrator of that company who can act.
func (a Actor) Administers(companyID string) bool {
	return a.AccountID != 0 && a.CompanyID == companyID && a.CanAct
}

// Actor loads the account an API call or a page acts as, judged at now.
// Every request reads it afresh, so a permission withdrawn, a person
// retired or locked counts at once.
func (s *Store) Actor(ctx context.Context, accountID int64, now time.Time) (Actor, error) {
	sub, err := scanSubject(ctx, s.db.NewRaw(`SELECT `+employeeColumns+`
		FROM accounts a JOIN companies c ON c.id = a.company_id WHERE a.id = ?`, accountID))
	if err != nil {
		return Actor{}, fmt.Errorf("postgres.Actor(%d): %w", accountID, err)
	}
	return actorOf(sub, now), nil
}

func actorOf(sub Subject, now time.Time) Actor {
	e := sub.Employee
	return Actor{AccountID: e.ID, CompanyID: e.CompanyID, Name: e.Name, CanManageEmployees: e.CanManageEmployees,
		Retired: e.Retired, CanAct: policy.CanAct(e, sub.Company.Policy, now)}
}

// CompanyInfo is what the admin pages show of a company.
type CompanyInfo struct {
	ID       string
	Name     string
	Location *time.Location
	Locale   policy.Locale
}

// Company returns the company's name, time zone and locale, or ErrNotFound.
func (s *Store) Company(ctx context.Context, companyID string) (CompanyInfo, error) {
	var r struct {
		ID       string
		Name     string
		TimeZone string
		Locale   string
	}
	err := s.db.NewRaw(`SELECT id, name, time_zone, locale FROM companies WHERE id = ?`, companyID).Scan(ctx, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return CompanyInfo{}, fmt.Errorf("postgres.Company(%q): %w", companyID, ErrNotFound)
	}
	if err != nil {
		return CompanyInfo{}, fmt.Errorf("postgres.Company(%q): %w", companyID, err)
	}
	loc, err := loadLocation(r.TimeZone)
	if err != nil {
		return CompanyInfo{}, fmt.Errorf("postgres.Company(%q): time zone %q: %w", companyID, r.TimeZone, err)
	}
	return CompanyInfo{ID: r.ID, Name: r.Name, Location: loc, Locale: policy.Locale(r.Locale)}, nil
}

// MissingAccounts returns the ids among ids that are not accounts of the
// company, so a request naming another company's account is refused before
// anything changes.
func (s *Store) MissingAccounts(ctx context.Context, companyID string, ids []int64) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var missing []int64
	err := s.db.NewRaw(`SELECT x.id FROM unnest(?::bigint[]) AS x(id)
		WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = x.id AND a.company_id = ?)
		ORDER BY x.id`, pgdialect.Array(ids), companyID).Scan(ctx, &missing)
	if err != nil {
		return nil, fmt.Errorf("postgres.MissingAccounts(%q): %w", companyID, err)
	}
	return missing, nil
}

// LoginNotificationRecipients lists the company's recipients.
func (s *Store) LoginNotificationRecipients(ctx context.Context, companyID string, now time.Time) ([]AccountView, error) {
	var rows []accountViewRow
	err := s.db.NewRaw(`SELECT `+accountViewColumns+`, 0 AS total
		FROM login_notification_recipients r JOIN accounts a ON a.id = r.account_id AND a.company_id = r.company_id
		JOIN companies c ON c.id = a.company_id
		WHERE r.company_id = ?1 ORDER BY a.department, a.name, a.id`, now, companyID).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("postgres.LoginNotificationRecipients(%q): %w", companyID, err)
	}
	out := make([]AccountView, len(rows))
	for i, r := range rows {
		out[i] = r.view()
	}
	return out, nil
}

// RecipientCandidates lists the accounts that may be chosen as recipients:
// active, of the company, with an address to mail.
func (s *Store) RecipientCandidates(ctx context.Context, companyID string, now time.Time) ([]AccountView, error) {
	var rows []accountViewRow
	err := s.db.NewRaw(`SELECT `+accountViewColumns+`, 0 AS total
		FROM `+accountsWithCompany+` WHERE a.company_id = ?1 AND a.status = 'active' AND a.email IS NOT NULL
		ORDER BY a.department, a.name, a.id`, now, companyID).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("postgres.RecipientCandidates(%q): %w", companyID, err)
	}
	out := make([]AccountView, len(rows))
	for i, r := range rows {
		out[i] = r.view()
	}
	return out, nil
}

// RecipientRefusedError names the account that cannot be a recipient.
type RecipientRefusedError struct {
	AccountID int64
	// Reason is "not_found" (no such account in the company), "retired" or
	// "no_email".
	Reason string
}

func (e *RecipientRefusedError) Error() string {
	return fmt.Sprintf("account %d cannot be a login notification recipient: %s", e.AccountID, e.Reason)
}

// Unwrap makes an account of another company ErrNotFound.
func (e *RecipientRefusedError) Unwrap() error {
	if e.Reason == "not_found" {
		return ErrNotFound
	}
	return nil
}

// ReplaceLoginNotificationRecipients replaces the company's recipients
// with accountIDs, all or nothing: an id that is not an active account of
// the company with an address refuses the whole change, so a request
// naming another company's account changes nothing. An actor other than 0
// (a seed or a test) must be an active administrator of the company, else
// policy.ErrForbidden. The change is an audit event carrying the actor.
func (s *Store) ReplaceLoginNotificationRecipients(ctx context.Context, companyID string, actorID int64, accountIDs []int64, now time.Time, requestID string) error {
	ids := append([]int64{}, accountIDs...)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	return s.WithTx(ctx, func(t *Tx) error {
		var found []struct {
			ID     int64
			Status string
			Email  sql.NullString
		}
		// Locks the company row so two administrators saving at once apply
		// one after the other.
		var locked string
		if err := t.tx.NewRaw(`SELECT id FROM companies WHERE id = ? FOR UPDATE`, companyID).Scan(ctx, &locked); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				err = ErrNotFound
			}
			return fmt.Errorf("postgres.ReplaceLoginNotificationRecipients(%q): %w", companyID, err)
		}
		// An actor (actorID != 0) must be an active administrator of the
		// company at this moment: the row is share-locked, so a permission
		// removed concurrently lands first and refuses this, or waits.
		if actorID != 0 {
			var admin bool
			err := t.tx.NewRaw(`SELECT can_manage_employees AND status = 'active' FROM accounts
				WHERE id = ? AND company_id = ? FOR SHARE`, actorID, companyID).Scan(ctx, &admin)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("postgres.ReplaceLoginNotificationRecipients(%q): %w", companyID, err)
			}
			if !admin {
				return fmt.Errorf("postgres.ReplaceLoginNotificationRecipients(%q): actor %d: %w", companyID, actorID, policy.ErrForbidden)
			}
		}
		if len(ids) > 0 {
			if err := t.tx.NewRaw(`SELECT id, status, email FROM accounts WHERE company_id = ? AND id = ANY(?) ORDER BY id`,
				companyID, pgdialect.Array(ids)).Scan(ctx, &found); err != nil {
				return fmt.Errorf("postgres.ReplaceLoginNotificationRecipients(%q): %w", companyID, err)
			}
		}
		byID := make(map[int64]int, len(found))
		for i, f := range found {
			byID[f.ID] = i
		}
		for _, id := range ids {
			i, ok := byID[id]
			switch {
			case !ok:
				return &RecipientRefusedError{AccountID: id, Reason: "not_found"}
			case found[i].Status != "active":
				return &RecipientRefusedError{AccountID: id, Reason: "retired"}
			case !found[i].Email.Valid:
				return &RecipientRefusedError{AccountID: id, Reason: "no_email"}
			}
		}
		var before []int64
		if err := t.tx.NewRaw(`SELECT account_id FROM login_notification_recipients WHERE company_id = ? ORDER BY account_id`, companyID).Scan(ctx, &before); err != nil {
			return fmt.Errorf("postgres.ReplaceLoginNotificationRecipients(%q): %w", companyID, err)
		}
		if slices.Equal(before, ids) {
			return nil
		}
		if _, err := t.tx.NewRaw(`DELETE FROM login_notification_recipients WHERE company_id = ? AND NOT (account_id = ANY(?))`,
			companyID, pgdialect.Array(ids)).Exec(ctx); err != nil {
			return fmt.Errorf("postgres.ReplaceLoginNotificationRecipients(%q): %w", companyID, err)
		}
		if len(ids) > 0 {
			if _, err := t.tx.NewRaw(`INSERT INTO login_notification_recipients (company_id, account_id, created_at, created_by)
				SELECT ?, x.id, ?, nullif(?, 0) FROM unnest(?::bigint[]) AS x(id)
				ON CONFLICT (company_id, account_id) DO NOTHING`,
				companyID, now, actorID, pgdialect.Array(ids)).Exec(ctx); err != nil {
				return fmt.Errorf("postgres.ReplaceLoginNotificationRecipients(%q): %w", companyID, err)
			}
		}
		if before == nil {
			before = []int64{}
		}
		return t.Audit(ctx, Event{
			Kind: EventRecipientsChanged, CompanyID: companyID, ActorAccountID: actorID, RequestID: requestID, OccurredAt: now,
			Detail: map[string]any{"before": before, "after": ids},
		})
	})
}
