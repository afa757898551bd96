package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

// The SQL twins of policy's rules (postgres/rules.go) are held to their Go
// functions here: every production statement that embeds a fragment runs
// on the same edge cases as policy.Decide, and each account must come out
// the way the policy reads it.

// ruleCase is one account as the rules must read it at now.
type ruleCase struct {
	name            string
	last, created   time.Time // last zero: never logged in
	exempt, retired bool
	state           policy.LockState
	until           time.Time
}

func ruleCases(now time.Time, period time.Duration) []ruleCase {
	longAgo := now.Add(-2 * period)
	return []ruleCase{
		{name: "recent", last: now.Add(-time.Hour), created: longAgo},
		{name: "one microsecond inside", last: now.Add(-period + time.Microsecond), created: longAgo},
		{name: "exactly at the threshold", last: now.Add(-period), created: longAgo},
		{name: "one microsecond past", last: now.Add(-period - time.Microsecond), created: longAgo},
		{name: "never logged in, created at the threshold", created: now.Add(-period)},
		{name: "never logged in, created inside", created: now.Add(-period + time.Microsecond)},
		{name: "exempt and dormant", last: longAgo, created: longAgo, exempt: true},
		{name: "retired and dormant", last: longAgo, created: longAgo, retired: true},
		{name: "retired and locked", last: longAgo, created: longAgo, retired: true, state: policy.StateLocked},
		{name: "locked", last: longAgo, created: longAgo, state: policy.StateLocked},
		{name: "unlock one microsecond before its deadline", last: longAgo, created: longAgo, state: policy.StateUnlockedUntil, until: now.Add(time.Microsecond)},
		{name: "unlock at its deadline", last: longAgo, created: longAgo, state: policy.StateUnlockedUntil, until: now},
		{name: "unlock an hour past its deadline", last: longAgo, created: longAgo, state: policy.StateUnlockedUntil, until: now.Add(-time.Hour)},
	}
}

func (c ruleCase) account() policy.Account {
	a := policy.Account{IDKind: policy.IDKindPlatform, Retired: c.retired, Exempt: c.exempt, CreatedAt: c.created,
		LastLoginAt: c.last, State: c.state, UnlockedUntil: c.until}
	if a.State == "" {
		a.State = policy.StateActive
	}
	if a.State == policy.StateLocked {
		a.Reason, a.LockedAt = policy.ReasonDormant, c.created
	}
	return a
}

// ruleWorld is one company holding every case, in a zone, at an instant.
type ruleWorld struct {
	ctx     context.Context
	store   *postgres.Store
	company string
	pol     policy.Policy
	now     time.Time
	cases   []ruleCase
	ids     []int64
	logins  []string
	admin   int64
}

func newRuleWorld(t *testing.T, store *postgres.Store, zone string, now time.Time) *ruleWorld {
	t.Helper()
	ctx := context.Background()
	w := &ruleWorld{ctx: ctx, store: store, company: testenv.UniqueID("rules"), now: now}
	if err := store.UpsertCompany(ctx, postgres.CompanyRecord{ID: w.company, TimeZone: zone}); err != nil {
		t.Fatal(err)
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	w.pol = policy.DefaultPolicy()
	w.pol.Location = loc
	w.cases = ruleCases(now, w.pol.InactivityPeriod)
	db := testenv.DB(t)
	for i, c := range w.cases {
		login := fmt.Sprintf("u%d", i)
		id, err := store.UpsertAccount(ctx, postgres.AccountRecord{CompanyID: w.company, LoginID: login, IDKind: policy.IDKindPlatform,
			Name: c.name, Retired: c.retired, Exempt: c.exempt, CreatedAt: c.created, LastLoginAt: c.last})
		if err != nil {
			t.Fatal(err)
		}
		a := c.account()
		_, err = db.Exec(`UPDATE accounts SET lock_state = $2, lock_reason = nullif($3, ''), unlocked_until = $4, locked_at = $5 WHERE id = $1`,
			id, string(a.State), string(a.Reason), nullTime(a.UnlockedUntil), nullTime(a.LockedAt))
		if err != nil {
			t.Fatal(err)
		}
		w.ids, w.logins = append(w.ids, id), append(w.logins, login)
	}
	w.admin, err = store.UpsertAccount(ctx, postgres.AccountRecord{CompanyID: w.company, LoginID: "admin", IDKind: policy.IDKindPlatform,
		Name: "admin", CanManageEmployees: true, CreatedAt: now.AddDate(-1, 0, 0), LastLoginAt: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// decide is the policy's reading of case i at the world's instant.
func (w *ruleWorld) decide(i int) policy.Decision {
	return policy.Decide(w.cases[i].account(), w.pol, policy.MethodPassword, w.now)
}

// agree fails the test for each case where the statement's answer differs
// from the policy's.
func (w *ruleWorld) agree(t *testing.T, statement string, got func(i int) bool, want func(d policy.Decision) bool) {
	t.Helper()
	for i, c := range w.cases {
		d := w.decide(i)
		if g, wt := got(i), want(d); g != wt {
			t.Errorf("%s at %s in %s, %q: statement says %v, policy %v (decision %+v)",
				statement, w.now.In(w.pol.Location).Format(time.RFC3339Nano), w.pol.Location, c.name, g, wt, d)
		}
	}
}

func (w *ruleWorld) states(t *testing.T) map[int64]string {
	t.Helper()
	page, err := w.store.ListAccounts(w.ctx, w.company, postgres.AccountFilter{PerPage: postgres.MaxPerPage}, w.now)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]string{}
	for _, a := range page.Accounts {
		out[a.ID] = string(a.State)
	}
	return out
}

func TestSQLRulesAgreeWithPolicy(t *testing.T) {
	store := testenv.Store(t)
	worlds := []struct {
		zone string
		now  time.Time
	}{
		{"Asia/Tokyo", time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)},
		// New York's spring-forward and fall-back days: a 23- and a 25-hour
		// day inside the period, and the instant on the short night itself.
		{"America/New_York", time.Date(2026, 3, 8, 7, 30, 0, 0, time.UTC)},
		{"America/New_York", time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC)},
		{"America/New_York", time.Date(2026, 6, 7, 16, 0, 0, 0, time.UTC)},
	}
	for _, wd := range worlds {
		// RecordAllowedLogins: the fast path handles exactly what the policy
		// allows with no transition, at the decision's instant.
		w := newRuleWorld(t, store, wd.zone, wd.now)
		var batch []postgres.Attempt
		for i := range w.cases {
			batch = append(batch, postgres.Attempt{Key: testenv.UniqueID("k"), CompanyID: w.company, LoginID: w.logins[i],
				Method: policy.MethodPassword, Device: policy.DevicePC, AttemptedAt: wd.now.Add(-48 * time.Hour), DecidedAt: wd.now, RecordedAt: wd.now})
		}
		handled, err := store.RecordAllowedLogins(w.ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		w.agree(t, "RecordAllowedLogins", func(i int) bool { return handled[i] },
			func(d policy.Decision) bool {
				return d.Outcome == policy.OutcomeAllow && d.Transition == policy.TransitionNone
			})

		// ListAccounts: the state shown, and the locked-only filter.
		w = newRuleWorld(t, store, wd.zone, wd.now)
		states := w.states(t)
		locked, err := store.ListAccounts(w.ctx, w.company, postgres.AccountFilter{LockedOnly: true, PerPage: postgres.MaxPerPage}, wd.now)
		if err != nil {
			t.Fatal(err)
		}
		inLocked := map[int64]bool{}
		for _, a := range locked.Accounts {
			inLocked[a.ID] = true
		}
		w.agree(t, "ListAccounts(locked only)", func(i int) bool { return inLocked[w.ids[i]] },
			func(d policy.Decision) bool { return d.Outcome.Locked() })
		// A retired account keeps whatever lock it had; it is listed as
		// retired, and only the others' states are the policy's reading.
		w.agree(t, "ListAccounts state", func(i int) bool {
			return !w.cases[i].retired && states[w.ids[i]] == string(policy.StateLocked)
		}, func(d policy.Decision) bool { return d.Outcome.Locked() })

		// SweepBatch locks what the policy would lock at the next login.
		w = newRuleWorld(t, store, wd.zone, wd.now)
		for after := (postgres.Cursor{}); ; {
			n, next, err := store.SweepBatch(w.ctx, wd.now, after, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if n < 1000 {
				break
			}
			after = next
		}
		before := w.cases
		states = w.states(t)
		w.agree(t, "SweepBatch", func(i int) bool {
			return before[i].state == "" && !before[i].retired && states[w.ids[i]] == string(policy.StateLocked)
		}, func(d policy.Decision) bool { return d.Transition == policy.TransitionLock })

		// RelockBatch relocks exactly the lapsed unlocks.
		w = newRuleWorld(t, store, wd.zone, wd.now)
		if _, err := store.RelockBatch(w.ctx, wd.now, 1000); err != nil {
			t.Fatal(err)
		}
		states = w.states(t)
		w.agree(t, "RelockBatch", func(i int) bool {
			return w.cases[i].state == policy.StateUnlockedUntil && states[w.ids[i]] == string(policy.StateLocked)
		}, func(d policy.Decision) bool { return d.Transition == policy.TransitionRelock })

		// Unlock (all) unlocks exactly what a lock refuses.
		w = newRuleWorld(t, store, wd.zone, wd.now)
		res, err := store.Unlock(w.ctx, postgres.Unlock{CompanyID: w.company, ActorID: w.admin, All: true, At: wd.now, RequestID: "r", TaskID: "t"})
		if err != nil {
			t.Fatal(err)
		}
		unlocked := map[int64]bool{}
		for _, id := range res.Unlocked {
			unlocked[id] = true
		}
		w.agree(t, "Unlock(all)", func(i int) bool { return unlocked[w.ids[i]] },
			func(d policy.Decision) bool { return d.Outcome.Locked() })
	}
}

// TestVersionRuleAgrees holds mergeSQL's version rule (sqlVersionAction,
// through SyncAccount) and versionAction (through SyncCompany and
// SyncRetirement) against each other: stored and incoming versions equal,
// older, newer and unversioned.
func TestVersionRuleAgrees(t *testing.T) {
	b := dirSetup(t)
	outcome := map[string]string{
		postgres.ActionApply: postgres.SyncUpdated, postgres.ActionDuplicate: postgres.SyncUnchanged, postgres.ActionStale: postgres.SyncStale,
	}
	for _, c := range []struct{ stored, incoming int64 }{
		{3, 2}, {3, 3}, {3, 4}, {0, 0}, {0, 1}, {1, 0},
	} {
		want := outcome[postgres.VersionAction(c.incoming, c.stored, false)]
		name := fmt.Sprintf("stored v%d, incoming v%d", c.stored, c.incoming)

		e := b.employee(testenv.UniqueID("u") + "@example.com")
		b.sync(t, e, c.stored)
		e.Name = "改名 " + name
		if _, got := b.sync(t, e, c.incoming); got != want {
			t.Errorf("account %s: SQL says %q, Go %q", name, got, want)
		}

		co := b.companyAt(testenv.UniqueID("co"), "会社")
		if _, err := b.store.SyncCompany(b.ctx, co, c.stored, dirNow); err != nil {
			t.Fatal(err)
		}
		co.Name = "改名 " + name
		if got, err := b.store.SyncCompany(b.ctx, co, c.incoming, dirNow); err != nil || got != want {
			t.Errorf("company %s: %q (%v), want %q", name, got, err, want)
		}
	}
}

// TestAlertRuleAgrees holds InsertAlertMails (sqlAlertedWithin) against
// policy.AlertDue: a recipient alerted about the account exactly one window
// ago, a microsecond either side of it, long ago, or never.
func TestAlertRuleAgrees(t *testing.T) {
	b := dirSetup(t)
	p := policy.DefaultPolicy()
	now := dirNow
	for _, c := range []struct {
		name string
		last time.Time // zero: never alerted
	}{
		{"never", time.Time{}},
		{"exactly one window ago", now.Add(-p.AlertWindow)},
		{"a microsecond inside the window", now.Add(-p.AlertWindow + time.Microsecond)},
		{"a microsecond past the window", now.Add(-p.AlertWindow - time.Microsecond)},
		{"just now", now},
		{"long ago", now.Add(-10 * p.AlertWindow)},
	} {
		account, _ := b.sync(t, b.employee(testenv.UniqueID("u")+"@example.com"), 1)
		recipient, _ := b.sync(t, b.employee(testenv.UniqueID("r")+"@example.com"), 1)
		if err := b.store.ReplaceLoginNotificationRecipients(b.ctx, b.company, 0, []int64{recipient}, now, ""); err != nil {
			t.Fatal(err)
		}
		if !c.last.IsZero() {
			if _, err := b.db.Exec(`INSERT INTO mails (kind, company_id, account_id, recipient_account_id, to_address, locale, idempotency_key, created_at)
				VALUES ($1, $2, $3, $4, 'r@example.com', 'ja', $5, $6)`,
				string(postgres.MailDormantLoginAlert), b.company, account, recipient, testenv.UniqueID("alert"), c.last); err != nil {
				t.Fatal(err)
			}
		}
		var ids []int64
		if err := b.store.WithTx(b.ctx, func(tx *postgres.Tx) error {
			var err error
			ids, err = tx.InsertAlertMails(b.ctx, b.company, account, 0, policy.LocaleJA, p.AlertWindow, now)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		got := false
		if len(ids) == 1 {
			var to int64
			var key string
			if err := b.db.QueryRow(`SELECT recipient_account_id, idempotency_key FROM mails WHERE id = $1 AND kind = $2 AND account_id = $3`,
				ids[0], string(postgres.MailDormantLoginAlert), account).Scan(&to, &key); err != nil {
				t.Fatal(err)
			}
			got = to == recipient
			if want := fmt.Sprintf("alert:0:%d", recipient); key != want {
				t.Errorf("%s: idempotency key %q, want %q", c.name, key, want)
			}
		}
		if want := policy.AlertDue(p, c.last, now); got != want || len(ids) > 1 {
			t.Errorf("%s: SQL wrote alerts %v (due %v), policy says due %v", c.name, ids, got, want)
		}
	}
}

// A date given alone begins at the same instant in SQL (the import) and in
// Go (the API), on ordinary days and on days whose midnight a DST change
// skips or repeats.
func TestStartOfDateAgrees(t *testing.T) {
	db := testenv.DB(t)
	for _, c := range []struct {
		zone string
		date string
	}{
		{"Asia/Tokyo", "2026-04-01"}, {"UTC", "2026-02-28"}, {"America/New_York", "2026-03-08"}, {"America/New_York", "2026-11-01"},
		{"America/Santiago", "2026-09-06"}, {"America/Santiago", "2026-04-05"}, {"America/Havana", "2026-03-08"},
		{"America/Havana", "2026-11-01"}, {"Asia/Beirut", "2026-03-29"}, {"Australia/Lord_Howe", "2026-10-04"},
	} {
		loc, err := time.LoadLocation(c.zone)
		if err != nil {
			t.Fatal(err)
		}
		d, err := time.Parse(time.DateOnly, c.date)
		if err != nil {
			t.Fatal(err)
		}
		var inSQL time.Time
		if err := db.QueryRow(`SELECT `+postgres.SQLStartOfDate("$1::date", "$2::text"), c.date, c.zone).Scan(&inSQL); err != nil {
			t.Fatal(err)
		}
		if inGo := policy.StartOfDate(d.Year(), d.Month(), d.Day(), loc); !inGo.Equal(inSQL) {
			t.Errorf("%s in %s: SQL %v, Go %v", c.date, c.zone, inSQL.UTC(), inGo.UTC())
		}
	}
}
