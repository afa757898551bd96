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

// Employees as the host describes them: one versioned event at a time
// (SyncAccount, SyncRetirement) or a batch of an import (mergeSQL), with the
// consequences of each change applied in its transaction.

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
	src := db.NewRaw(`SELECT 0::bigint AS line, ?::text AS company_id, ?::text AS login_id, ?::bigint AS version,
			?::text AS id_kind, ?::text AS email, ?::text AS name, ?::text AS department,
			?::boolean AS can_manage_employees, ?::boolean AS exempt, ?::timestamptz AS created_at,
			?::timestamptz AS last_login_at, ?::boolean AS retired,
			true AS exempt_terms, ?::text AS exempt_reason, ?::text AS exempt_granted_by, ?::timestamptz AS exempt_until`,
		e.CompanyID, e.LoginID, version, string(e.IDKind), e.Email, e.Name, e.Department,
		e.CanManageEmployees, e.Exempt, e.CreatedAt, nullTime(e.LastLoginAt), e.Retired,
		e.ExemptReason, e.ExemptGrantedBy, nullTime(e.ExemptUntil))
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
		created_at, last_login_at, retired,
		exempt_terms, coalesce(exempt_reason, '') AS exempt_reason, coalesce(exempt_granted_by, '') AS exempt_granted_by, exempt_until
	FROM raw
),
cur AS (
	SELECT a.id, a.company_id, a.login_id, a.host_version, a.id_kind, a.email, a.name, a.department,
		a.can_manage_employees, a.exempt, a.created_at, a.last_login_at, a.status,
		a.exempt_reason, a.exempt_granted_by, a.exempt_until
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
			CASE WHEN s.exempt_terms AND s.exempt AND (c.exempt_reason IS DISTINCT FROM s.exempt_reason
				OR c.exempt_granted_by IS DISTINCT FROM s.exempt_granted_by OR c.exempt_until IS DISTINCT FROM s.exempt_until) THEN 'exempt_terms' END,
			CASE WHEN c.created_at IS DISTINCT FROM s.created_at THEN 'created_at' END,
			CASE WHEN s.last_login_at > coalesce(c.last_login_at, '-infinity') THEN 'last_login_at' END,
			CASE WHEN (c.status = 'retired') IS DISTINCT FROM s.retired THEN 'status' END
		], NULL) AS changed
	FROM src s LEFT JOIN cur c ON c.company_id = s.company_id AND c.login_id = s.login_id
),
ins AS (
	INSERT INTO accounts (company_id, login_id, id_kind, email, name, department, can_manage_employees,
		exempt, created_at, last_login_at, status, retired_at, host_version, updated_at,
		exempt_reason, exempt_granted_by, exempt_until)
	SELECT company_id, login_id, id_kind, email, name, department, can_manage_employees, exempt,
		created_at, last_login_at, CASE WHEN retired THEN 'retired' ELSE 'active' END,
		CASE WHEN retired THEN ?2::timestamptz END, version, ?2::timestamptz,
		CASE WHEN exempt THEN exempt_reason ELSE '' END, CASE WHEN exempt THEN exempt_granted_by ELSE '' END,
		CASE WHEN exempt THEN exempt_until END
	FROM plan WHERE action = 'create'
	ORDER BY company_id, login_id
	ON CONFLICT (company_id, login_id) DO NOTHING
	RETURNING id, company_id, login_id
),
upd AS (
	UPDATE accounts a SET id_kind = p.id_kind, email = p.email, name = p.name, department = p.department,
		can_manage_employees = p.can_manage_employees, exempt = p.exempt, created_at = p.created_at,
		-- An import carries no terms (exempt_terms false): it keeps those the
		-- API gave; ending an exemption ends its terms.
		exempt_reason = CASE WHEN NOT p.exempt THEN '' WHEN p.exempt_terms THEN p.exempt_reason ELSE a.exempt_reason END,
		exempt_granted_by = CASE WHEN NOT p.exempt THEN '' WHEN p.exempt_terms THEN p.exempt_granted_by ELSE a.exempt_granted_by END,
		exempt_until = CASE WHEN NOT p.exempt THEN NULL WHEN p.exempt_terms THEN p.exempt_until ELSE a.exempt_until END,
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

// nullTime is t as a parameter, NULL for the zero time.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}
