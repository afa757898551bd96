package postgres

import (
	"bufio"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"

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
				resend_interval_seconds, locale, prelock_warning_days, fallback_contact, host_version
			FROM companies WHERE id = ? FOR UPDATE`, c.ID).Scan(ctx, &cur)
		if errors.Is(err, sql.ErrNoRows) {
			var id string
			err = db.NewRaw(`INSERT INTO companies (id, name, time_zone, inactivity_days, verification_ttl_seconds,
					alert_window_seconds, resend_interval_seconds, locale, prelock_warning_days, fallback_contact,
					host_version, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (id) DO NOTHING RETURNING id`,
				c.ID, want.Name, want.TimeZone, want.InactivityDays, want.VerificationTTLSeconds,
				want.AlertWindowSeconds, want.ResendIntervalSeconds, want.Locale, pgdialect.Array(want.PrelockWarningDays),
				want.FallbackContact, version, o.at, o.at).Scan(ctx, &id)
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
				prelock_warning_days = ?, fallback_contact = ?, host_version = greatest(host_version, ?),
				updated_at = CASE WHEN ? THEN ?::timestamptz ELSE updated_at END
			WHERE id = ?`,
			want.Name, want.TimeZone, want.InactivityDays, want.VerificationTTLSeconds, want.AlertWindowSeconds,
			want.ResendIntervalSeconds, want.Locale, pgdialect.Array(want.PrelockWarningDays), want.FallbackContact, version,
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

// SyncAccount applies the host's employee record at version. e.Retired
// retires (the host client never sets it: an upsert means employed, and
// makes a retired account active again). Consequences of the change are
// applied in the same transaction: a changed address or ID kind revokes
// live verification links and drops pending mail to the old address.
//
// An unknown company is ErrNotFound.
func (s *Store) SyncAccount(ctx context.Context, e policy.Employee, version int64, at time.Time) (int64, string, error) {
	var row mergeRow
	err := s.WithTx(ctx, func(t *Tx) error {
		var err error
		row, err = syncOne(ctx, t.tx, e, version, syncOpts{audit: true, via: "host", at: at})
		return err
	})
	if err != nil {
		return 0, "", fmt.Errorf("postgres.SyncAccount(%q, %q): %w", e.CompanyID, e.LoginID, err)
	}
	return row.AccountID, row.Outcome, nil
}

func syncOne(ctx context.Context, db bun.IDB, e policy.Employee, version int64, o syncOpts) (mergeRow, error) {
	if err := companyExists(ctx, db, e.CompanyID); err != nil {
		return mergeRow{}, err
	}
	var last any
	if !e.LastLoginAt.IsZero() {
		last = e.LastLoginAt
	}
	src := db.NewRaw(`SELECT 0::bigint AS line, ?::text AS company_id, ?::text AS login_id, ?::bigint AS version,
			?::text AS id_kind, ?::text AS email, ?::text AS name, ?::text AS department,
			?::boolean AS can_manage_employees, ?::boolean AS exempt, ?::timestamptz AS created_at,
			?::timestamptz AS last_login_at, ?::boolean AS retired`,
		e.CompanyID, e.LoginID, version, string(e.IDKind), e.Email, e.Name, e.Department,
		e.CanManageEmployees, e.Exempt, e.CreatedAt, last, e.Retired)
	rows, err := mergeAccounts(ctx, db, func([]int64) *bun.RawQuery { return src }, false, o)
	if err != nil {
		return mergeRow{}, err
	}
	if len(rows) != 1 {
		return mergeRow{}, fmt.Errorf("merge returned %d rows for one account", len(rows))
	}
	return rows[0], nil
}

func companyExists(ctx context.Context, db bun.IDB, id string) error {
	var ok bool
	if err := db.NewRaw(`SELECT EXISTS (SELECT 1 FROM companies WHERE id = ?)`, id).Scan(ctx, &ok); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("company %q: %w", id, ErrNotFound)
	}
	return nil
}

// mergeRow is one source row's result.
type mergeRow struct {
	Line      int64
	AccountID int64
	Outcome   string
	// Changed names the fields an update changed.
	Changed  []string `bun:",array"`
	OldEmail string
	Retired  bool
	// N is how many rows this result stands for: 1, or in bulk a count of
	// rows with the same outcome.
	N int64
}

// mergeSQL applies a set of employee records (the "raw" source: one row
// from an event, or a batch of an import's staging table) in one
// statement: the accounts' rows are locked in id order, each source row is
// planned (create, apply, duplicate, stale) by the version rules, inserted
// or updated, and audited. The login date only moves forward.
//
// Rows inserted by a concurrent transaction after this statement's
// snapshot come back as "conflict"; the caller runs them again.
//
// Parameters: ?0 the source, ?1 force, ?2 the time, ?3 via, ?4 audit,
// ?5 bulk. In bulk (an import), the accounts created are audited with one
// event per company rather than one each, and only updated rows come back
// one by one; the other outcomes come back counted, with line 0.
var mergeSQL = `WITH raw AS (?0),
src AS (
	SELECT line, company_id, login_id, version, id_kind,
		coalesce(nullif(email, ''), CASE WHEN id_kind = 'email' THEN login_id END) AS email,
		name, coalesce(department, '') AS department, can_manage_employees, exempt,
		created_at, last_login_at, retired
	FROM raw
),
cur AS (
	SELECT a.id, a.company_id, a.login_id, a.host_version, a.id_kind, a.email, a.name, a.department,
		a.can_manage_employees, a.exempt, a.created_at, a.last_login_at, a.status
	FROM accounts a JOIN src s ON a.company_id = s.company_id AND a.login_id = s.login_id
	ORDER BY a.id
	FOR UPDATE OF a
),
plan AS (
	SELECT s.*, c.id AS cur_id, c.host_version AS cur_version, c.email AS old_email,
		CASE WHEN c.id IS NULL THEN 'create' ` + sqlVersionAction("?1", "s.version", "c.host_version") + ` END AS action,
		array_remove(ARRAY[
			CASE WHEN c.id_kind IS DISTINCT FROM s.id_kind THEN 'id_kind' END,
			CASE WHEN c.email IS DISTINCT FROM s.email THEN 'email' END,
			CASE WHEN c.name IS DISTINCT FROM s.name THEN 'name' END,
			CASE WHEN c.department IS DISTINCT FROM s.department THEN 'department' END,
			CASE WHEN c.can_manage_employees IS DISTINCT FROM s.can_manage_employees THEN 'can_manage_employees' END,
			CASE WHEN c.exempt IS DISTINCT FROM s.exempt THEN 'exempt' END,
			CASE WHEN c.created_at IS DISTINCT FROM s.created_at THEN 'created_at' END,
			CASE WHEN s.last_login_at > coalesce(c.last_login_at, '-infinity') THEN 'last_login_at' END,
			CASE WHEN (c.status = 'retired') IS DISTINCT FROM s.retired THEN 'status' END
		], NULL) AS changed
	FROM src s LEFT JOIN cur c ON c.company_id = s.company_id AND c.login_id = s.login_id
),
ins AS (
	INSERT INTO accounts (company_id, login_id, id_kind, email, name, department, can_manage_employees,
		exempt, created_at, last_login_at, status, retired_at, host_version, updated_at)
	SELECT company_id, login_id, id_kind, email, name, department, can_manage_employees, exempt,
		created_at, last_login_at, CASE WHEN retired THEN 'retired' ELSE 'active' END,
		CASE WHEN retired THEN ?2::timestamptz END, version, ?2::timestamptz
	FROM plan WHERE action = 'create'
	ORDER BY company_id, login_id
	ON CONFLICT (company_id, login_id) DO NOTHING
	RETURNING id, company_id, login_id
),
upd AS (
	UPDATE accounts a SET id_kind = p.id_kind, email = p.email, name = p.name, department = p.department,
		can_manage_employees = p.can_manage_employees, exempt = p.exempt, created_at = p.created_at,
		last_login_at = greatest(a.last_login_at, p.last_login_at),
		status = CASE WHEN p.retired THEN 'retired' ELSE 'active' END,
		retired_at = CASE WHEN p.retired THEN coalesce(a.retired_at, ?2::timestamptz) END,
		host_version = greatest(a.host_version, p.version),
		updated_at = CASE WHEN cardinality(p.changed) > 0 THEN ?2::timestamptz ELSE a.updated_at END
	FROM plan p
	WHERE a.id = p.cur_id AND p.action = 'apply' AND (cardinality(p.changed) > 0 OR p.version > p.cur_version)
	RETURNING a.id
),
res AS (
	SELECT p.line, coalesce(i.id, p.cur_id, 0) AS account_id, p.company_id, p.version, p.retired, p.old_email,
		CASE WHEN p.action = 'create' THEN CASE WHEN i.id IS NULL THEN 'conflict' ELSE 'created' END
			WHEN p.action = 'apply' AND cardinality(p.changed) > 0 THEN 'updated'
			WHEN p.action = 'stale' THEN 'stale'
			ELSE 'unchanged' END AS outcome,
		CASE WHEN p.action = 'apply' THEN p.changed ELSE '{}'::text[] END AS changed
	FROM plan p LEFT JOIN ins i ON i.company_id = p.company_id AND i.login_id = p.login_id
),
ev AS (
	INSERT INTO audit_events (company_id, account_id, kind, detail, occurred_at)
	SELECT company_id, account_id,
		CASE WHEN outcome = 'created' THEN 'account_created'
			WHEN 'status' = ANY(changed) AND retired THEN 'account_retired'
			WHEN 'status' = ANY(changed) THEN 'account_reinstated'
			ELSE 'account_updated' END,
		jsonb_build_object('version', version, 'via', ?3::text)
			|| CASE WHEN outcome = 'updated' THEN jsonb_build_object('changed', to_jsonb(changed)) ELSE '{}'::jsonb END,
		?2::timestamptz
	FROM res WHERE ?4 AND (outcome = 'updated' OR (outcome = 'created' AND NOT ?5))
),
bulk_ev AS (
	INSERT INTO audit_events (company_id, kind, detail, occurred_at)
	SELECT company_id, 'accounts_imported',
		jsonb_build_object('via', ?3::text, 'count', count(*), 'account_ids', jsonb_agg(account_id ORDER BY account_id)),
		?2::timestamptz
	FROM res WHERE ?4 AND ?5 AND outcome = 'created'
	GROUP BY company_id
)
SELECT line, account_id, outcome, changed, coalesce(old_email, '') AS old_email, retired, 1::bigint AS n
FROM res WHERE NOT ?5 OR outcome IN ('updated', 'conflict')
UNION ALL
SELECT 0, 0, outcome, '{}'::text[], '', false, count(*)
FROM res WHERE ?5 AND outcome NOT IN ('updated', 'conflict')
GROUP BY outcome
ORDER BY line`

// mergeAccounts runs mergeSQL over source(nil), runs again the rows that
// lost an insert race (source(lines)), and applies the consequences of
// the changes.
func mergeAccounts(ctx context.Context, db bun.IDB, source func(lines []int64) *bun.RawQuery, bulk bool, o syncOpts) ([]mergeRow, error) {
	var out []mergeRow
	var lines []int64
	for round := 0; ; round++ {
		var rows []mergeRow
		err := db.NewRaw(mergeSQL, source(lines), o.force, o.at, o.via, o.audit, bulk).Scan(ctx, &rows)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
		lines = lines[:0]
		for _, r := range rows {
			if r.Outcome == "conflict" {
				lines = append(lines, r.Line)
				continue
			}
			out = append(out, r)
		}
		if len(lines) == 0 {
			break
		}
		if round == 2 {
			return nil, fmt.Errorf("accounts created concurrently and not found again (lines %v)", lines)
		}
	}
	return out, applyConsequences(ctx, db, out, o.at)
}

// applyConsequences does what a change implies beyond the account's row.
func applyConsequences(ctx context.Context, db bun.IDB, rows []mergeRow, at time.Time) error {
	var retired, readdressed []int64
	var oldEmails []string
	for _, r := range rows {
		if r.Outcome != SyncUpdated {
			continue
		}
		switch {
		case r.Retired && slices.Contains(r.Changed, "status"):
			retired = append(retired, r.AccountID)
		case r.Retired:
		case slices.Contains(r.Changed, "email"), slices.Contains(r.Changed, "id_kind"):
			readdressed = append(readdressed, r.AccountID)
			oldEmails = append(oldEmails, r.OldEmail)
		}
	}
	if err := retireConsequences(ctx, db, retired, at); err != nil {
		return err
	}
	return readdressConsequences(ctx, db, readdressed, oldEmails, at)
}

// retireConsequences: a retired person's links stop working, nobody is
// alerted about them or by way of them, and pending mail about or to them
// is not sent.
func retireConsequences(ctx context.Context, db bun.IDB, ids []int64, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := db.NewRaw(`WITH tok AS (
			UPDATE verification_tokens SET revoked_at = ?, revoked_reason = 'retired'
			WHERE account_id = ANY(?::bigint[]) AND consumed_at IS NULL AND revoked_at IS NULL
			RETURNING 1
		), rcp AS (
			DELETE FROM login_notification_recipients WHERE account_id = ANY(?::bigint[]) RETURNING 1
		)
		UPDATE mails SET status = ?, error = 'retired'
		WHERE status = ? AND (account_id = ANY(?::bigint[]) OR recipient_account_id = ANY(?::bigint[]))`,
		at, pgdialect.Array(ids), pgdialect.Array(ids), MailDropped, MailPending, pgdialect.Array(ids), pgdialect.Array(ids)).Exec(ctx)
	if err != nil {
		return fmt.Errorf("retire %d accounts: %w", len(ids), err)
	}
	return nil
}

// readdressConsequences: a link sent to an address the person may no
// longer own stops working, and pending mail for the person to the old
// address is not sent.
func readdressConsequences(ctx context.Context, db bun.IDB, ids []int64, oldEmails []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := db.NewRaw(`WITH x AS (
			SELECT * FROM unnest(?::bigint[], ?::text[]) AS x(id, old_email)
		), tok AS (
			UPDATE verification_tokens vt SET revoked_at = ?, revoked_reason = 'email_changed'
			FROM x WHERE vt.account_id = x.id AND vt.consumed_at IS NULL AND vt.revoked_at IS NULL
			RETURNING 1
		)
		UPDATE mails m SET status = ?, error = 'email_changed'
		FROM x
		WHERE m.status = ? AND m.to_address = x.old_email
		  AND (m.recipient_account_id = x.id OR (m.account_id = x.id AND m.recipient_account_id IS NULL))`,
		pgdialect.Array(ids), pgdialect.Array(oldEmails), at, MailDropped, MailPending).Exec(ctx)
	if err != nil {
		return fmt.Errorf("readdress %d accounts: %w", len(ids), err)
	}
	return nil
}

// SyncRetirement retires the employee at version, with the consequences of
// retirement in the same transaction. A login ID not seen before is
// recorded as retired ("created"): an older upsert delivered later is then
// stale instead of bringing the person back.
//
// An unknown company is ErrNotFound.
func (s *Store) SyncRetirement(ctx context.Context, companyID, loginID string, version int64, at time.Time) (int64, string, error) {
	var id int64
	var outcome string
	err := s.WithTx(ctx, func(t *Tx) error {
		var err error
		id, outcome, err = syncRetirement(ctx, t.tx, companyID, loginID, version, syncOpts{audit: true, via: "host", at: at})
		return err
	})
	if err != nil {
		return 0, "", fmt.Errorf("postgres.SyncRetirement(%q, %q): %w", companyID, loginID, err)
	}
	return id, outcome, nil
}

func syncRetirement(ctx context.Context, db bun.IDB, companyID, loginID string, version int64, o syncOpts) (int64, string, error) {
	if err := companyExists(ctx, db, companyID); err != nil {
		return 0, "", err
	}
	ev := Event{Kind: EventAccountRetired, CompanyID: companyID, Detail: map[string]any{"version": version, "via": o.via}}
	for range 3 {
		var cur struct {
			ID          int64
			HostVersion int64
			Status      string
		}
		err := db.NewRaw(`SELECT id, host_version, status FROM accounts WHERE company_id = ? AND login_id = ? FOR UPDATE`,
			companyID, loginID).Scan(ctx, &cur)
		if errors.Is(err, sql.ErrNoRows) {
			var id int64
			err = db.NewRaw(`INSERT INTO accounts (company_id, login_id, id_kind, name, created_at, status,
					retired_at, host_version, updated_at)
				VALUES (?, ?, 'platform', '', ?, 'retired', ?, ?, ?)
				ON CONFLICT (company_id, login_id) DO NOTHING RETURNING id`,
				companyID, loginID, o.at, o.at, version, o.at).Scan(ctx, &id)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return 0, "", err
			}
			ev.AccountID = id
			ev.Detail["not_seen_before"] = true
			return id, SyncCreated, auditIf(ctx, db, o, ev)
		}
		if err != nil {
			return 0, "", err
		}
		switch versionAction(version, cur.HostVersion, o.force) {
		case actionStale:
			return cur.ID, SyncStale, nil
		case actionDuplicate:
			return cur.ID, SyncUnchanged, nil
		}
		if cur.Status == "retired" {
			_, err := db.NewRaw(`UPDATE accounts SET host_version = greatest(host_version, ?) WHERE id = ?`, version, cur.ID).Exec(ctx)
			return cur.ID, SyncUnchanged, err
		}
		_, err = db.NewRaw(`UPDATE accounts SET status = 'retired', retired_at = ?, host_version = greatest(host_version, ?),
			updated_at = ? WHERE id = ?`, o.at, version, o.at, cur.ID).Exec(ctx)
		if err != nil {
			return 0, "", err
		}
		if err := retireConsequences(ctx, db, []int64{cur.ID}, o.at); err != nil {
			return 0, "", err
		}
		ev.AccountID = cur.ID
		return cur.ID, SyncUpdated, auditIf(ctx, db, o, ev)
	}
	return 0, "", fmt.Errorf("account %q: created concurrently and not found again", loginID)
}

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
	loc, err := time.LoadLocation(c.TimeZone)
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

// ImportRow is one row of an import file after the importer checked it. A
// row the importer refused carries only Line and the reject fields, so the
// refusals come back in line order with the ones found here.
type ImportRow struct {
	Line         int64
	RejectField  string
	RejectReason string

	CompanyID          string
	LoginID            string
	Version            int64
	IDKind             string
	Email              string
	Name               string
	Department         string
	CanManageEmployees bool
	Exempt             bool
	Retired            bool
	CreatedAt          time.Time
	// CreatedOn marks CreatedAt as a calendar date (held at UTC midnight)
	// that starts at midnight in the company's time zone.
	CreatedOn   bool
	LastLoginAt time.Time // zero: never logged in
	LastLoginOn bool
}

// Import is one bulk import on a connection of its own: rows are streamed
// with COPY into a temporary staging table, checked against each other and
// the companies there, then merged into accounts batch by batch, each
// batch one transaction. Memory stays flat however large the file: the
// rows live in the staging table, not in the process.
type Import struct {
	conn    bun.Conn
	pw      *io.PipeWriter
	w       *bufio.Writer
	copied  chan error
	buf     []byte
	copying bool
	// broken: the COPY failed or was cut short; see Close.
	broken bool
}

const importColumns = `line, reject_field, reject_reason, company_id, login_id, version, id_kind, email, name,
	department, can_manage_employees, exempt, retired, created_at, created_on, last_login_at, last_login_on`

// BeginImport opens the staging table and starts the COPY that Add feeds.
func (s *Store) BeginImport(ctx context.Context) (*Import, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres.BeginImport: %w", err)
	}
	_, err = conn.ExecContext(ctx, `CREATE TEMP TABLE import_rows (
			line bigint NOT NULL, reject_field text, reject_reason text,
			company_id text, login_id text, version bigint, id_kind text, email text, name text,
			department text, can_manage_employees boolean, exempt boolean, retired boolean,
			created_at timestamptz, created_on date, last_login_at timestamptz, last_login_on date)`)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("postgres.BeginImport: staging table: %w", err)
	}
	pr, pw := io.Pipe()
	im := &Import{conn: conn, pw: pw, w: bufio.NewWriterSize(pw, 256<<10), copied: make(chan error, 1), copying: true}
	go func() {
		_, err := pgdriver.CopyFrom(ctx, conn, pr, `COPY import_rows (`+importColumns+`) FROM STDIN`)
		// A failed COPY stops reading: make Add fail instead of blocking.
		pr.CloseWithError(cmpErr(err, io.ErrClosedPipe))
		im.copied <- err
	}()
	return im, nil
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// Add streams one row into the staging table.
func (im *Import) Add(r ImportRow) error {
	b := strconv.AppendInt(im.buf[:0], r.Line, 10)
	if r.RejectField != "" {
		b = append(b, '\t')
		b = appendCopyText(b, copySafe(r.RejectField))
		b = append(b, '\t')
		b = appendCopyText(b, copySafe(r.RejectReason))
		b = append(b, strings.Repeat("\t\\N", 14)...)
	} else {
		b = append(b, "\t\\N\t\\N\t"...)
		for _, s := range []string{r.CompanyID, r.LoginID} {
			b = appendCopyText(b, s)
			b = append(b, '\t')
		}
		b = strconv.AppendInt(b, r.Version, 10)
		for _, s := range []string{r.IDKind, r.Email, r.Name, r.Department} {
			b = append(b, '\t')
			b = appendCopyText(b, s)
		}
		for _, v := range []bool{r.CanManageEmployees, r.Exempt, r.Retired} {
			b = append(b, '\t')
			b = strconv.AppendBool(b, v)
		}
		b = appendCopyTime(b, r.CreatedAt, r.CreatedOn)
		b = appendCopyTime(b, r.LastLoginAt, r.LastLoginOn)
	}
	b = append(b, '\n')
	im.buf = b
	if _, err := im.w.Write(b); err != nil {
		return fmt.Errorf("postgres.Import.Add(line %d): %w", r.Line, err)
	}
	return nil
}

// appendCopyTime appends two columns: the instant, and the calendar date.
func appendCopyTime(b []byte, t time.Time, date bool) []byte {
	switch {
	case t.IsZero():
		return append(b, "\t\\N\t\\N"...)
	case date:
		b = append(b, "\t\\N\t"...)
		return t.AppendFormat(b, time.DateOnly)
	}
	b = append(b, '\t')
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.999999Z07:00")
	return append(b, "\t\\N"...)
}

// copySafe makes a reject's text storable: a reason may quote what it
// refused, and Postgres takes neither bad UTF-8 nor NUL in text.
func copySafe(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// appendCopyText escapes s for COPY's text format.
func appendCopyText(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, c)
		}
	}
	return b
}

// ImportCounts says how many rows are left to merge and how many the
// staging table refused, after Prepare.
type ImportCounts struct {
	Rows     int64
	Rejected int64
}

// ImportCompanies says what to do with companies an import names that
// dormancy does not know.
type ImportCompanies struct {
	// Create them with default settings in this locale (and an audit
	// event each); otherwise their rows are refused.
	Create bool
	Locale policy.Locale
	// FallbackContact is the created companies' fallback contact
	// (tasks.Company.FallbackContact).
	FallbackContact string
	At              time.Time
}

// Prepare ends the COPY and refuses, in the staging table, rows whose
// company dormancy does not know (unless c.Create) and every repeat of a
// login ID after its first line.
func (im *Import) Prepare(ctx context.Context, c ImportCompanies) (ImportCounts, error) {
	if err := im.endCopy(); err != nil {
		return ImportCounts{}, fmt.Errorf("postgres.Import.Prepare: copy: %w", err)
	}
	if c.Locale == "" {
		c.Locale = policy.DefaultLocale
	}
	if c.Create {
		_, err := im.conn.NewRaw(`WITH new AS (
				INSERT INTO companies (id, locale, fallback_contact, created_at, updated_at)
				SELECT DISTINCT company_id, ?, ?, ?::timestamptz, ?::timestamptz FROM import_rows WHERE reject_field IS NULL
				ORDER BY company_id
				ON CONFLICT (id) DO NOTHING RETURNING id)
			INSERT INTO audit_events (company_id, kind, detail, occurred_at)
			SELECT id, ?, jsonb_build_object('version', 0, 'via', 'import'), ? FROM new`,
			string(c.Locale), c.FallbackContact, c.At, c.At, string(EventCompanyCreated), c.At).Exec(ctx)
		if err != nil {
			return ImportCounts{}, fmt.Errorf("postgres.Import.Prepare: create companies: %w", err)
		}
	}
	for _, q := range []string{
		`ALTER TABLE import_rows ADD PRIMARY KEY (line)`,
		`ANALYZE import_rows`,
		`UPDATE import_rows s SET reject_field = 'company_id',
			reject_reason = 'unknown company ' || quote_literal(s.company_id) || ': create it first, or import with -create-companies'
		WHERE s.reject_field IS NULL AND NOT EXISTS (SELECT 1 FROM companies c WHERE c.id = s.company_id)`,
		`UPDATE import_rows s SET reject_field = 'login_id',
			reject_reason = 'duplicate of line ' || d.first || ' (same company_id and login_id)'
		FROM (SELECT line, first_value(line) OVER (PARTITION BY company_id, login_id ORDER BY line) AS first
			FROM import_rows WHERE reject_field IS NULL) d
		WHERE s.line = d.line AND d.line <> d.first`,
	} {
		if _, err := im.conn.ExecContext(ctx, q); err != nil {
			return ImportCounts{}, fmt.Errorf("postgres.Import.Prepare: %w", err)
		}
	}
	var n ImportCounts
	err := im.conn.NewRaw(`SELECT count(*) FILTER (WHERE reject_field IS NULL) AS rows,
			count(*) FILTER (WHERE reject_field IS NOT NULL) AS rejected
		FROM import_rows`).Scan(ctx, &n)
	if err != nil {
		return ImportCounts{}, fmt.Errorf("postgres.Import.Prepare: %w", err)
	}
	return n, nil
}

func (im *Import) endCopy() error {
	if !im.copying {
		return nil
	}
	im.copying = false
	flushErr := im.w.Flush()
	im.pw.Close()
	err := cmpErr(<-im.copied, flushErr)
	if err != nil {
		im.broken = true
	}
	return err
}

// ImportBatch is what one Merge did.
type ImportBatch struct {
	// Last is the line the batch ended at: the next batch starts after it.
	Last                               int64
	Rows                               int64
	Created, Updated, Unchanged, Stale int64
}

// Merge applies the next batch of up to limit rows after line `after`, in
// one transaction, with the versions rules and consequences of
// SyncAccount. Rows = 0 means nothing is left. A failed batch changed
// nothing and may be run again.
func (im *Import) Merge(ctx context.Context, after int64, limit int, at time.Time) (ImportBatch, error) {
	var span struct {
		Last sql.NullInt64
		Rows int64
	}
	err := im.conn.NewRaw(`SELECT max(line) AS last, count(*) AS rows FROM (
			SELECT line FROM import_rows WHERE reject_field IS NULL AND line > ? ORDER BY line LIMIT ?) b`,
		after, limit).Scan(ctx, &span)
	if err != nil {
		return ImportBatch{}, fmt.Errorf("postgres.Import.Merge(after %d): %w", after, err)
	}
	b := ImportBatch{Last: after, Rows: span.Rows}
	if span.Rows == 0 {
		return b, nil
	}
	b.Last = span.Last.Int64
	err = im.conn.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		source := func(lines []int64) *bun.RawQuery {
			q := `SELECT s.line, s.company_id, s.login_id, s.version, s.id_kind, s.email, s.name, s.department,
					s.can_manage_employees, s.exempt,
					coalesce(s.created_at, s.created_on::timestamp AT TIME ZONE c.time_zone) AS created_at,
					coalesce(s.last_login_at, s.last_login_on::timestamp AT TIME ZONE c.time_zone) AS last_login_at,
					s.retired
				FROM import_rows s JOIN companies c ON c.id = s.company_id
				WHERE s.reject_field IS NULL AND s.line > ? AND s.line <= ?`
			if lines == nil {
				return tx.NewRaw(q, after, b.Last)
			}
			return tx.NewRaw(q+` AND s.line = ANY(?::bigint[])`, after, b.Last, pgdialect.Array(lines))
		}
		rows, err := mergeAccounts(ctx, tx, source, true, syncOpts{audit: true, via: "import", at: at})
		if err != nil {
			return err
		}
		b.Created, b.Updated, b.Unchanged, b.Stale = 0, 0, 0, 0
		for _, r := range rows {
			switch r.Outcome {
			case SyncCreated:
				b.Created += r.N
			case SyncUpdated:
				b.Updated += r.N
			case SyncUnchanged:
				b.Unchanged += r.N
			case SyncStale:
				b.Stale += r.N
			}
		}
		if n := b.Created + b.Updated + b.Unchanged + b.Stale; n != b.Rows {
			return fmt.Errorf("merged %d of %d rows", n, b.Rows)
		}
		return nil
	})
	if err != nil {
		return ImportBatch{}, fmt.Errorf("postgres.Import.Merge(after %d): %w", after, err)
	}
	return b, nil
}

// Rejects calls fn for every refused row in line order: the importer's
// and the staging table's refusals together.
func (im *Import) Rejects(ctx context.Context, fn func(line int64, field, reason string) error) error {
	rows, err := im.conn.QueryContext(ctx, `SELECT line, reject_field, reject_reason FROM import_rows
		WHERE reject_field IS NOT NULL ORDER BY line`)
	if err != nil {
		return fmt.Errorf("postgres.Import.Rejects: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var line int64
		var field, reason string
		if err := rows.Scan(&line, &field, &reason); err != nil {
			return fmt.Errorf("postgres.Import.Rejects: %w", err)
		}
		if err := fn(line, field, reason); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres.Import.Rejects: %w", err)
	}
	return nil
}

// Close drops the staging table and returns the connection to the pool.
// A connection whose COPY was cut short is in the middle of the protocol
// and is discarded instead.
func (im *Import) Close() error {
	if im.copying {
		im.copying = false
		im.broken = true
		im.pw.CloseWithError(errors.New("import closed"))
		<-im.copied
	}
	if im.broken {
		_ = im.conn.Raw(func(any) error { return driver.ErrBadConn })
		return im.conn.Close()
	}
	_, err := im.conn.ExecContext(context.Background(), `DROP TABLE IF EXISTS pg_temp.import_rows`)
	return errors.Join(err, im.conn.Close())
}
