package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/dormancy/dormancy/policy"
)

// Directory sync keeps dormancy's copy of the host's companies and
// employees. Every change is versioned by the host, and applied together
// with what it implies (links revoked, mail dropped, recipients removed) in
// the transaction that makes it, so no reader ever sees the change without
// its consequences.

// Outcomes of a directory event; package tasks names the same strings.
const (
	SyncCreated   = "created"
	SyncUpdated   = "updated"
	SyncUnchanged = "unchanged"
	SyncStale     = "stale"
)

// syncOpts are what distinguishes the callers of one sync path.
type syncOpts struct {
	// force applies whatever the versions: fixtures and seeds, which
	// carry none.
	force bool
	// audit records an event per change; seeds are not audited.
	audit bool
	// via says in the audit detail where the change came from.
	via string
	at  time.Time
}

// companySettings is a companies row as sync compares it.
type companySettings struct {
	Name                   string
	TimeZone               string
	InactivityDays         int
	VerificationTTLSeconds int
	AlertWindowSeconds     int
	ResendIntervalSeconds  int
	Locale                 string
	PrelockWarningDays     []int64 `bun:",array"`
	FallbackContact        string
	PlatformName           string
	Digest                 string
	NoticeOnLock           bool
	HostVersion            int64
}

// tuning is the part of a company's settings the host does not send; nil
// keeps the stored values.
type tuning struct {
	alertWindow, resendInterval time.Duration
}

func settingsOf(c policy.Company, t *tuning) companySettings {
	days := make([]int64, len(c.PrelockWarningDays))
	for i, d := range c.PrelockWarningDays {
		days[i] = int64(d)
	}
	s := companySettings{
		Name:                   c.Name,
		TimeZone:               c.Policy.Location.String(),
		InactivityDays:         int(c.Policy.InactivityPeriod / (24 * time.Hour)),
		VerificationTTLSeconds: int(c.Policy.VerificationTTL / time.Second),
		AlertWindowSeconds:     int(policy.DefaultAlertWindow / time.Second),
		ResendIntervalSeconds:  int(policy.DefaultResendInterval / time.Second),
		Locale:                 string(c.Policy.Locale),
		PrelockWarningDays:     days,
		FallbackContact:        c.FallbackContact,
		PlatformName:           c.PlatformName,
		Digest:                 string(c.Digest),
		NoticeOnLock:           c.NoticeOnLock,
	}
	if s.Digest == "" {
		s.Digest = string(policy.DigestOff)
	}
	if t != nil {
		s.AlertWindowSeconds = int(t.alertWindow / time.Second)
		s.ResendIntervalSeconds = int(t.resendInterval / time.Second)
	}
	return s
}

// changedSettings names the settings that differ, for the audit event.
func changedSettings(cur, want companySettings, t *tuning) []string {
	var out []string
	add := func(name string, differ bool) {
		if differ {
			out = append(out, name)
		}
	}
	add("name", cur.Name != want.Name)
	add("time_zone", cur.TimeZone != want.TimeZone)
	add("inactivity_days", cur.InactivityDays != want.InactivityDays)
	add("verification_ttl_seconds", cur.VerificationTTLSeconds != want.VerificationTTLSeconds)
	add("locale", cur.Locale != want.Locale)
	add("prelock_warning_days", !slices.Equal(cur.PrelockWarningDays, want.PrelockWarningDays))
	add("fallback_contact", cur.FallbackContact != want.FallbackContact)
	add("platform_name", cur.PlatformName != want.PlatformName)
	add("digest", cur.Digest != want.Digest)
	add("notice_on_lock", cur.NoticeOnLock != want.NoticeOnLock)
	if t != nil {
		add("alert_window_seconds", cur.AlertWindowSeconds != want.AlertWindowSeconds)
		add("resend_interval_seconds", cur.ResendIntervalSeconds != want.ResendIntervalSeconds)
	}
	return out
}

// SyncCompany applies the host's company record at version: created,
// updated, unchanged (same version, or nothing differs) or stale. The alert
// window and resend interval are not the host's; they keep their values.
func (s *Store) SyncCompany(ctx context.Context, c policy.Company, version int64, at time.Time) (string, error) {
	var outcome string
	err := s.WithTx(ctx, func(t *Tx) error {
		var err error
		outcome, err = syncCompany(ctx, t.tx, c, version, nil, syncOpts{audit: true, via: "host", at: at})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("postgres.SyncCompany(%q): %w", c.ID, err)
	}
	// This process's own checks see the change at once; other processes
	// within their cache's ttl.
	s.companies.forget(c.ID)
	return outcome, nil
}

func syncCompany(ctx context.Context, db bun.IDB, c policy.Company, version int64, t *tuning, o syncOpts) (string, error) {
	if c.Policy.Location == nil {
		return "", errors.New("company without a time zone")
	}
	want := settingsOf(c, t)
	// A company created by a concurrent transaction between our read and
	// our insert is read again; three rounds cannot all lose that race
	// unless something is badly wrong.
	for range 3 {
		var cur companySettings
		err := db.NewRaw(`SELECT name, time_zone, inactivity_days, verification_ttl_seconds, alert_window_seconds,
				resend_interval_seconds, locale, prelock_warning_days, fallback_contact, platform_name, digest, notice_on_lock, host_version
			FROM companies WHERE id = ? FOR UPDATE`, c.ID).Scan(ctx, &cur)
		if errors.Is(err, sql.ErrNoRows) {
			var id string
			err = db.NewRaw(`INSERT INTO companies (id, name, time_zone, inactivity_days, verification_ttl_seconds,
					alert_window_seconds, resend_interval_seconds, locale, prelock_warning_days, fallback_contact,
					platform_name, digest, notice_on_lock, host_version, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (id) DO NOTHING RETURNING id`,
				c.ID, want.Name, want.TimeZone, want.InactivityDays, want.VerificationTTLSeconds,
				want.AlertWindowSeconds, want.ResendIntervalSeconds, want.Locale, pgdialect.Array(want.PrelockWarningDays),
				want.FallbackContact, want.PlatformName, want.Digest, want.NoticeOnLock, version, o.at, o.at).Scan(ctx, &id)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return "", err
			}
			return SyncCreated, auditIf(ctx, db, o, Event{Kind: EventCompanyCreated, CompanyID: c.ID,
				Detail: map[string]any{"version": version, "via": o.via}})
		}
		if err != nil {
			return "", err
		}
		switch versionAction(version, cur.HostVersion, o.force) {
		case actionStale:
			return SyncStale, nil
		case actionDuplicate:
			return SyncUnchanged, nil
		}
		if t == nil {
			want.AlertWindowSeconds, want.ResendIntervalSeconds = cur.AlertWindowSeconds, cur.ResendIntervalSeconds
		}
		changed := changedSettings(cur, want, t)
		if len(changed) == 0 && version <= cur.HostVersion {
			return SyncUnchanged, nil
		}
		// A newer version with equal values still moves host_version, so
		// that an event older than it is refused later.
		_, err = db.NewRaw(`UPDATE companies SET name = ?, time_zone = ?, inactivity_days = ?,
				verification_ttl_seconds = ?, alert_window_seconds = ?, resend_interval_seconds = ?, locale = ?,
				prelock_warning_days = ?, fallback_contact = ?, platform_name = ?, digest = ?, notice_on_lock = ?, host_version = greatest(host_version, ?),
				updated_at = CASE WHEN ? THEN ?::timestamptz ELSE updated_at END
			WHERE id = ?`,
			want.Name, want.TimeZone, want.InactivityDays, want.VerificationTTLSeconds, want.AlertWindowSeconds,
			want.ResendIntervalSeconds, want.Locale, pgdialect.Array(want.PrelockWarningDays), want.FallbackContact, want.PlatformName, want.Digest, want.NoticeOnLock, version,
			len(changed) > 0, o.at, c.ID).Exec(ctx)
		if err != nil {
			return "", err
		}
		if len(changed) == 0 {
			return SyncUnchanged, nil
		}
		return SyncUpdated, auditIf(ctx, db, o, Event{Kind: EventCompanyUpdated, CompanyID: c.ID,
			Detail: map[string]any{"version": version, "via": o.via, "changed": changed}})
	}
	return "", fmt.Errorf("company %q: created concurrently and not found again", c.ID)
}

func auditIf(ctx context.Context, db bun.IDB, o syncOpts, ev Event) error {
	if !o.audit {
		return nil
	}
	ev.OccurredAt = o.at
	return audit(ctx, db, ev)
}

// CompanyLocation is the company's time zone: where a date given alone
// begins. An unknown company is ErrNotFound.
func (s *Store) CompanyLocation(ctx context.Context, companyID string) (*time.Location, error) {
	var zone []string
	if err := s.db.NewRaw(`SELECT time_zone FROM companies WHERE id = ?`, companyID).Scan(ctx, &zone); err != nil {
		return nil, fmt.Errorf("postgres.CompanyLocation(%q): %w", companyID, err)
	}
	if len(zone) == 0 {
		return nil, fmt.Errorf("postgres.CompanyLocation(%q): %w", companyID, ErrNotFound)
	}
	loc, err := loadLocation(zone[0])
	if err != nil {
		return nil, fmt.Errorf("postgres.CompanyLocation(%q): %w", companyID, err)
	}
	return loc, nil
}
