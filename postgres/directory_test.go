package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

// dirNow is the fixed "now" of the directory tests.
var dirNow = time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)

type dirBundle struct {
	ctx     context.Context
	store   *postgres.Store
	db      *sql.DB
	company string
	tokyo   *time.Location
}

func dirSetup(t *testing.T) *dirBundle {
	t.Helper()
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	b := &dirBundle{ctx: context.Background(), store: testenv.Store(t), db: testenv.DB(t), tokyo: tokyo}
	b.company = testenv.UniqueID("co")
	if out, err := b.store.SyncCompany(b.ctx, b.companyAt(b.company, "Example"), 1, dirNow); err != nil || out != postgres.SyncCreated {
		t.Fatalf("SyncCompany = %q, %v", out, err)
	}
	return b
}

func (b *dirBundle) companyAt(id, name string) policy.Company {
	p := policy.DefaultPolicy()
	return policy.Company{ID: id, Name: name, Policy: p}
}

// employee is a valid email-ID employee of the bundle's company.
func (b *dirBundle) employee(login string) policy.Employee {
	return policy.Employee{
		CompanyID: b.company, LoginID: login, Email: login, Name: "山田 太郎", Department: "総務部",
		Account: policy.Account{IDKind: policy.IDKindEmail, CreatedAt: dirNow.Add(-400 * 24 * time.Hour)},
	}
}

func (b *dirBundle) sync(t *testing.T, e policy.Employee, version int64) (int64, string) {
	t.Helper()
	id, out, err := b.store.SyncAccount(b.ctx, e, version, dirNow)
	if err != nil {
		t.Fatalf("SyncAccount(v%d): %v", version, err)
	}
	return id, out
}

func (b *dirBundle) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	return testenv.Count(t, b.db, q, args...)
}

func TestSyncAccountAppliesNewerVersionsOnly(t *testing.T) {
	b := dirSetup(t)
	login := testenv.UniqueID("u") + "@example.com"
	v1 := b.employee(login)
	v2 := v1
	v2.Name, v2.Department, v2.CanManageEmployees = "山田 花子", "管理部", true

	id, out := b.sync(t, v2, 2)
	if out != postgres.SyncCreated {
		t.Fatalf("first event: %s, want created", out)
	}
	// Version 1, delivered late, changes nothing.
	if id1, out := b.sync(t, v1, 1); out != postgres.SyncStale || id1 != id {
		t.Errorf("late v1: %s (id %d), want stale (id %d)", out, id1, id)
	}
	var name, dept string
	var admin bool
	var version int64
	if err := b.db.QueryRow(`SELECT name, department, can_manage_employees, host_version FROM accounts WHERE id = $1`, id).
		Scan(&name, &dept, &admin, &version); err != nil {
		t.Fatal(err)
	}
	if name != v2.Name || dept != v2.Department || !admin || version != 2 {
		t.Errorf("after late v1: %s %s admin=%v v%d, want version 2's values", name, dept, admin, version)
	}

	// v3 twice: one change, one audit event.
	v3 := v2
	v3.Department = "システム部"
	if _, out := b.sync(t, v3, 3); out != postgres.SyncUpdated {
		t.Errorf("v3: %s, want updated", out)
	}
	if _, out := b.sync(t, v3, 3); out != postgres.SyncUnchanged {
		t.Errorf("v3 again: %s, want unchanged", out)
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE account_id = $1 AND kind = 'account_updated'`, id); got != 1 {
		t.Errorf("account_updated events = %d, want 1", got)
	}
	var changed string
	if err := b.db.QueryRow(`SELECT detail->>'changed' FROM audit_events WHERE account_id = $1 AND kind = 'account_updated'`, id).Scan(&changed); err != nil {
		t.Fatal(err)
	}
	if changed != `["department"]` {
		t.Errorf("changed = %s, want [\"department\"]", changed)
	}
	// A newer version with the same values is not a change, but it is
	// remembered: version 4 makes a late version 3 stale.
	if _, out := b.sync(t, v3, 5); out != postgres.SyncUnchanged {
		t.Errorf("v5 with v3's values: %s, want unchanged", out)
	}
	if _, out := b.sync(t, v2, 4); out != postgres.SyncStale {
		t.Errorf("v4 after v5: %s, want stale", out)
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE account_id = $1`, id); got != 2 {
		t.Errorf("audit events = %d, want 2 (created, one update)", got)
	}
}

// The login date is dormancy's as much as the host's: a host record with
// an older login date never moves it back.
func TestSyncAccountNeverMovesTheLoginDateBack(t *testing.T) {
	b := dirSetup(t)
	e := b.employee(testenv.UniqueID("u") + "@example.com")
	e.LastLoginAt = dirNow.Add(-time.Hour)
	id, _ := b.sync(t, e, 1)
	e.LastLoginAt = dirNow.Add(-48 * time.Hour)
	if _, out := b.sync(t, e, 2); out != postgres.SyncUnchanged {
		t.Errorf("older login date: %s, want unchanged", out)
	}
	var last time.Time
	if err := b.db.QueryRow(`SELECT last_login_at FROM accounts WHERE id = $1`, id).Scan(&last); err != nil {
		t.Fatal(err)
	}
	if !last.Equal(dirNow.Add(-time.Hour)) {
		t.Errorf("login date = %v, want %v", last, dirNow.Add(-time.Hour))
	}
}

func TestSyncAccountUnknownCompanyIsNotFound(t *testing.T) {
	b := dirSetup(t)
	e := b.employee("someone@example.com")
	e.CompanyID = testenv.UniqueID("nowhere")
	if _, _, err := b.store.SyncAccount(b.ctx, e, 1, dirNow); !errors.Is(err, policy.ErrNotFound) {
		t.Errorf("SyncAccount in an unknown company: %v, want ErrNotFound", err)
	}
	if _, _, err := b.store.SyncRetirement(b.ctx, e.CompanyID, e.LoginID, 1, dirNow); !errors.Is(err, policy.ErrNotFound) {
		t.Errorf("SyncRetirement in an unknown company: %v, want ErrNotFound", err)
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE company_id = $1`, e.CompanyID); got != 0 {
		t.Errorf("accounts = %d", got)
	}
}

// Many deliveries of one new employee's event at once: one account, one
// "created", the others unchanged, one audit event.
func TestSyncAccountRacingCreatesOnce(t *testing.T) {
	b := dirSetup(t)
	e := b.employee(testenv.UniqueID("u") + "@example.com")
	const n = 8
	outs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, outs[i], errs[i] = b.store.SyncAccount(b.ctx, e, 1, dirNow)
		}()
	}
	close(start)
	wg.Wait()
	created := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("delivery %d: %v", i, errs[i])
		}
		switch outs[i] {
		case postgres.SyncCreated:
			created++
		case postgres.SyncUnchanged:
		default:
			t.Errorf("delivery %d: %s", i, outs[i])
		}
	}
	if created != 1 {
		t.Errorf("created %d times, want 1", created)
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events a JOIN accounts ac ON ac.id = a.account_id
		WHERE ac.company_id = $1 AND ac.login_id = $2`, e.CompanyID, e.LoginID); got != 1 {
		t.Errorf("audit events = %d, want 1", got)
	}
}

func TestSyncCompanyVersionsAndSettings(t *testing.T) {
	b := dirSetup(t)
	id := testenv.UniqueID("co")
	c := b.companyAt(id, "Acme")
	if out, err := b.store.SyncCompany(b.ctx, c, 10, dirNow); err != nil || out != postgres.SyncCreated {
		t.Fatalf("create: %q, %v", out, err)
	}
	// An operator's tuning of the alert window is not the host's to reset.
	if _, err := b.db.Exec(`UPDATE companies SET alert_window_seconds = 7200 WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	c2 := c
	c2.Policy.Location, c2.Policy.InactivityPeriod, c2.Policy.Locale = ny, 30*24*time.Hour, policy.LocaleEN
	c2.PrelockWarningDays = []int{14, 3}
	if out, err := b.store.SyncCompany(b.ctx, c2, 12, dirNow); err != nil || out != postgres.SyncUpdated {
		t.Fatalf("v12: %q, %v", out, err)
	}
	if out, err := b.store.SyncCompany(b.ctx, c, 11, dirNow); err != nil || out != postgres.SyncStale {
		t.Errorf("late v11: %q, %v, want stale", out, err)
	}
	if out, err := b.store.SyncCompany(b.ctx, c2, 12, dirNow); err != nil || out != postgres.SyncUnchanged {
		t.Errorf("v12 again: %q, %v, want unchanged", out, err)
	}
	var tz, locale string
	var days, alert int
	var warn []byte
	if err := b.db.QueryRow(`SELECT time_zone, locale, inactivity_days, alert_window_seconds, prelock_warning_days::text
		FROM companies WHERE id = $1`, id).Scan(&tz, &locale, &days, &alert, &warn); err != nil {
		t.Fatal(err)
	}
	if tz != "America/New_York" || locale != "en" || days != 30 || alert != 7200 || string(warn) != "{14,3}" {
		t.Errorf("company = %s %s %d days, alert %d, warnings %s", tz, locale, days, alert, warn)
	}
	var changed string
	if err := b.db.QueryRow(`SELECT detail->>'changed' FROM audit_events WHERE company_id = $1 AND kind = 'company_updated'`, id).Scan(&changed); err != nil {
		t.Fatal(err)
	}
	if want := `["time_zone", "inactivity_days", "locale", "prelock_warning_days"]`; changed != want {
		t.Errorf("changed = %s, want %s", changed, want)
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE company_id = $1 AND kind LIKE 'company_%'`, id); got != 2 {
		t.Errorf("company events = %d, want 2", got)
	}
}

// A retirement that arrives before the employee's first upsert is kept,
// so the upsert, older, cannot bring the person back.
func TestSyncRetirementBeforeTheUpsertWins(t *testing.T) {
	b := dirSetup(t)
	e := b.employee(testenv.UniqueID("u") + "@example.com")
	id, out, err := b.store.SyncRetirement(b.ctx, b.company, e.LoginID, 2, dirNow)
	if err != nil || out != postgres.SyncCreated {
		t.Fatalf("retire unseen: %q, %v", out, err)
	}
	if id2, out := b.sync(t, e, 1); out != postgres.SyncStale || id2 != id {
		t.Errorf("late upsert v1: %s, want stale", out)
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE id = $1 AND status = 'retired'`, id); got != 1 {
		t.Error("not retired")
	}
	// A newer upsert is a rehire.
	if _, out := b.sync(t, e, 3); out != postgres.SyncUpdated {
		t.Errorf("upsert v3: %s, want updated", out)
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE id = $1 AND status = 'active' AND retired_at IS NULL AND name = $2`, id, e.Name); got != 1 {
		t.Error("not reinstated with the host's record")
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE account_id = $1 AND kind = 'account_reinstated'`, id); got != 1 {
		t.Errorf("account_reinstated events = %d, want 1", got)
	}
	// Retiring twice, and retiring late, change nothing.
	if _, out, _ := b.store.SyncRetirement(b.ctx, b.company, e.LoginID, 4, dirNow); out != postgres.SyncUpdated {
		t.Errorf("retire v4: %s", out)
	}
	if _, out, _ := b.store.SyncRetirement(b.ctx, b.company, e.LoginID, 4, dirNow); out != postgres.SyncUnchanged {
		t.Errorf("retire v4 again: %s", out)
	}
	if _, out, _ := b.store.SyncRetirement(b.ctx, b.company, e.LoginID, 3, dirNow); out != postgres.SyncStale {
		t.Errorf("retire v3: %s", out)
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE account_id = $1 AND kind = 'account_retired'`, id); got != 2 {
		t.Errorf("account_retired events = %d, want 2 (unseen, v4)", got)
	}
}

// Retirement, in the same transaction: live links revoked, recipients
// gone, pending mail about or to the person dropped; other accounts and
// sent mail untouched.
func TestSyncRetirementConsequences(t *testing.T) {
	b := dirSetup(t)
	leaver := b.employee(testenv.UniqueID("u") + "@example.com")
	leaver.CanManageEmployees = true
	other := b.employee(testenv.UniqueID("u") + "@example.com")
	lid, _ := b.sync(t, leaver, 1)
	oid, _ := b.sync(t, other, 1)
	if err := b.store.ReplaceLoginNotificationRecipients(b.ctx, b.company, 0, []int64{lid, oid}, dirNow, ""); err != nil {
		t.Fatal(err)
	}
	for i, id := range []int64{lid, oid} {
		if _, err := b.db.Exec(`INSERT INTO verification_tokens (account_id, token_hash, email, created_at, expires_at)
			VALUES ($1, decode(repeat($2, 32), 'hex'), 'x@example.com', $3, $4)`, id, []string{"aa", "bb"}[i], dirNow, dirNow.Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	mail := func(kind string, about, to int64, status string) {
		t.Helper()
		if _, err := b.db.Exec(`INSERT INTO mails (kind, company_id, account_id, recipient_account_id, to_address, locale,
			idempotency_key, status, created_at) VALUES ($1, $2, $3, nullif($4, 0), 'x@example.com', 'ja', $5, $6, $7)`,
			kind, b.company, about, to, testenv.UniqueID("k"), status, dirNow); err != nil {
			t.Fatal(err)
		}
	}
	mail("verification", lid, 0, "pending")          // to the leaver
	mail("dormant_login_alert", oid, lid, "pending") // to the leaver, about another
	mail("dormant_login_alert", lid, oid, "pending") // about the leaver
	mail("dormant_login_alert", lid, oid, "sent")    // history stays
	mail("verification", oid, 0, "pending")          // unrelated
	mail("unlocked", oid, 0, "pending")              // unrelated

	// A locked platform ID is shown the company's administrators: the
	// leaver among them, until the retirement.
	probe := b.employee(testenv.UniqueID("p"))
	probe.IDKind, probe.Email = policy.IDKindPlatform, ""
	pid, _ := b.sync(t, probe, 1)
	if _, err := b.db.Exec(`UPDATE accounts SET lock_state = 'locked', lock_reason = 'dormant', locked_at = $2 WHERE id = $1`, pid, dirNow); err != nil {
		t.Fatal(err)
	}
	listed := func(t *testing.T) bool {
		t.Helper()
		admins, err := b.store.Administrators(b.ctx, b.company)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(admins, func(a policy.Employee) bool { return a.ID == lid })
	}
	if !listed(t) {
		t.Fatal("the administrator is not listed to a locked platform ID before retiring")
	}
	if _, out, err := b.store.SyncRetirement(b.ctx, b.company, leaver.LoginID, 2, dirNow); err != nil || out != postgres.SyncUpdated {
		t.Fatalf("retire: %q, %v", out, err)
	}
	if got := b.count(t, `SELECT count(*) FROM verification_tokens WHERE account_id = $1 AND revoked_reason = 'retired' AND revoked_at = $2`, lid, dirNow); got != 1 {
		t.Error("leaver's link not revoked as retired")
	}
	if got := b.count(t, `SELECT count(*) FROM verification_tokens WHERE account_id = $1 AND revoked_at IS NULL`, oid); got != 1 {
		t.Error("other's link revoked")
	}
	if got := b.count(t, `SELECT count(*) FROM login_notification_recipients WHERE company_id = $1`, b.company); got != 1 {
		t.Errorf("recipients = %d, want 1 (the other)", got)
	}
	if got := b.count(t, `SELECT count(*) FROM mails WHERE company_id = $1 AND status = 'dropped' AND error = 'retired'`, b.company); got != 3 {
		t.Errorf("dropped mails = %d, want 3", got)
	}
	if got := b.count(t, `SELECT count(*) FROM mails WHERE company_id = $1 AND status IN ('pending', 'sent')`, b.company); got != 3 {
		t.Errorf("untouched mails = %d, want 3", got)
	}
	// No longer an administrator anywhere dormancy looks.
	if listed(t) {
		t.Error("the leaver is still listed as an administrator to a locked platform ID")
	}
}

// A changed address kills the links sent to the old one, and mail still
// queued for the old address is not sent.
func TestSyncAccountAddressChangeRevokesLinks(t *testing.T) {
	b := dirSetup(t)
	e := b.employee(testenv.UniqueID("u") + "@example.com")
	e.IDKind = policy.IDKindPlatform
	e.Email = "old@example.com"
	id, _ := b.sync(t, e, 1)
	if _, err := b.db.Exec(`INSERT INTO verification_tokens (account_id, token_hash, email, created_at, expires_at)
		VALUES ($1, decode(repeat('cc', 32), 'hex'), 'old@example.com', $2, $3)`, id, dirNow, dirNow.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.Exec(`INSERT INTO mails (kind, company_id, account_id, to_address, locale, idempotency_key, created_at)
		VALUES ('admin_unlocked', $1, $2, 'old@example.com', 'ja', $3, $4)`, b.company, id, testenv.UniqueID("k"), dirNow); err != nil {
		t.Fatal(err)
	}
	// The same address again (a newer version of the name only) keeps them.
	e.Name = "山田 次郎"
	b.sync(t, e, 2)
	if got := b.count(t, `SELECT count(*) FROM verification_tokens WHERE account_id = $1 AND revoked_at IS NULL`, id); got != 1 {
		t.Fatal("a name change revoked the link")
	}
	e.Email = "new@example.com"
	if _, out := b.sync(t, e, 3); out != postgres.SyncUpdated {
		t.Fatalf("address change: %s", out)
	}
	if got := b.count(t, `SELECT count(*) FROM verification_tokens WHERE account_id = $1 AND revoked_reason = 'email_changed'`, id); got != 1 {
		t.Error("link to the old address not revoked")
	}
	if got := b.count(t, `SELECT count(*) FROM mails WHERE account_id = $1 AND status = 'dropped' AND error = 'email_changed'`, id); got != 1 {
		t.Error("mail to the old address not dropped")
	}
}

// Setting recipients takes an administrator, checked in the transaction:
// once the permission is gone, so is the right.
func TestReplaceLoginNotificationRecipientsChecksTheActor(t *testing.T) {
	b := dirSetup(t)
	admin := b.employee(testenv.UniqueID("u") + "@example.com")
	admin.CanManageEmployees = true
	aid, _ := b.sync(t, admin, 1)
	if err := b.store.ReplaceLoginNotificationRecipients(b.ctx, b.company, aid, []int64{aid}, dirNow, ""); err != nil {
		t.Fatalf("by an administrator: %v", err)
	}
	admin.CanManageEmployees = false
	b.sync(t, admin, 2)
	if err := b.store.ReplaceLoginNotificationRecipients(b.ctx, b.company, aid, nil, dirNow, ""); !errors.Is(err, policy.ErrForbidden) {
		t.Errorf("by an ex-administrator: %v, want ErrForbidden", err)
	}
	// An administrator of another company is no administrator here.
	otherCo := testenv.UniqueID("co")
	if _, err := b.store.SyncCompany(b.ctx, b.companyAt(otherCo, "Other"), 1, dirNow); err != nil {
		t.Fatal(err)
	}
	stranger := b.employee(testenv.UniqueID("u") + "@example.com")
	stranger.CompanyID, stranger.CanManageEmployees = otherCo, true
	sid, _ := b.sync(t, stranger, 1)
	if err := b.store.ReplaceLoginNotificationRecipients(b.ctx, b.company, sid, nil, dirNow, ""); !errors.Is(err, policy.ErrForbidden) {
		t.Errorf("by another company's administrator: %v, want ErrForbidden", err)
	}
	if got := b.count(t, `SELECT count(*) FROM login_notification_recipients WHERE company_id = $1`, b.company); got != 1 {
		t.Errorf("recipients = %d, want the 1 set by the administrator", got)
	}
}

// Import at the store's level: rows refused by the importer come back in
// line order with those the staging table refuses.
func TestImportStagesMergesAndRejects(t *testing.T) {
	b := dirSetup(t)
	im, err := b.store.BeginImport(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	row := func(line int64, company, login string) postgres.ImportRow {
		return postgres.ImportRow{Line: line, CompanyID: company, LoginID: login, IDKind: "platform", Name: `Back\slash	Tab`,
			CreatedAt: time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC), CreatedOn: true}
	}
	rows := []postgres.ImportRow{
		row(2, b.company, "E1"),
		{Line: 3, RejectField: "id_kind", RejectReason: "unknown ID kind \"x\""},
		row(4, "unknown-co", "E2"),
		row(5, b.company, "E1"),
		row(6, b.company, "E3"),
	}
	for _, r := range rows {
		if err := im.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	n, err := im.Prepare(b.ctx, postgres.ImportCompanies{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Rows != 2 || n.Rejected != 3 {
		t.Errorf("prepared %+v, want 2 rows, 3 rejected", n)
	}
	var rejects []string
	err = im.Rejects(b.ctx, func(line int64, field, reason string) error {
		rejects = append(rejects, fmt.Sprintf("%d %s: %s", line, field, reason))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`3 id_kind: unknown ID kind "x"`,
		`4 company_id: unknown company 'unknown-co': create it first, or import with -create-companies`,
		`5 login_id: duplicate of line 2 (same company_id and login_id)`,
	}
	if !slices.Equal(rejects, want) {
		t.Errorf("rejects:\n%q\nwant\n%q", rejects, want)
	}
	batch, err := im.Merge(b.ctx, 0, 1, dirNow)
	if err != nil {
		t.Fatal(err)
	}
	if batch.Last != 2 || batch.Rows != 1 || batch.Created != 1 {
		t.Errorf("first batch %+v", batch)
	}
	batch, err = im.Merge(b.ctx, batch.Last, 10, dirNow)
	if err != nil || batch.Last != 6 || batch.Created != 1 {
		t.Errorf("second batch %+v, %v", batch, err)
	}
	if batch, err = im.Merge(b.ctx, batch.Last, 10, dirNow); err != nil || batch.Rows != 0 {
		t.Errorf("third batch %+v, %v, want nothing left", batch, err)
	}
	// A date alone is midnight in the company's zone (Tokyo); names with
	// COPY's special characters arrive intact.
	var created time.Time
	var name string
	if err := b.db.QueryRow(`SELECT created_at, name FROM accounts WHERE company_id = $1 AND login_id = 'E1'`, b.company).Scan(&created, &name); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 4, 1, 0, 0, 0, 0, b.tokyo); !created.Equal(want) || name != "Back\\slash\tTab" {
		t.Errorf("E1 = %v %q, want %v", created, name, want)
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE company_id = $1 AND kind = 'accounts_imported'`, b.company); got != 2 {
		t.Errorf("accounts_imported events = %d, want one per batch", got)
	}
}
