package worker_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

// maintenanceTask builds a maintenance task with the public constructor,
// as the scheduler would for the minute of at.
func maintenanceTask(t *testing.T, typ string, at time.Time, batch ...int) *asynq.Task {
	t.Helper()
	p := tasks.Maintenance{Period: at}
	if len(batch) > 0 {
		p.BatchSize = batch[0]
	}
	task, err := tasks.NewMaintenanceTask(typ, p)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// array is a Postgres array literal of xs, for queries through
// database/sql, which takes no slices. The values here are ids and company
// ids, which need no quoting.
func array[T int64 | string](xs ...T) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// companyWith creates a company with the given settings on top of the
// defaults.
func (b *testBundle) companyWith(t *testing.T, c postgres.CompanyRecord) string {
	t.Helper()
	c.ID = testenv.UniqueID("co")
	if c.Name == "" {
		c.Name = "Example"
	}
	if err := b.store.UpsertCompany(b.ctx, c); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// dormantByRule counts, by a formula of its own, the accounts a sweep at
// now must lock: active, not retired, not exempt, and inactive for at
// least the company's period.
const dormantByRule = `SELECT count(*) FROM accounts a JOIN companies c ON c.id = a.company_id
	WHERE a.lock_state = 'active' AND a.status = 'active' AND NOT a.exempt
	  AND extract(epoch FROM ($1::timestamptz - coalesce(a.last_login_at, a.created_at))) >= c.inactivity_days * 86400`

// The sweep over 100,000 generated accounts in three companies (30, 90 and
// 180 days) locks exactly those past their company's threshold, and a
// second run changes nothing.
func TestSweepLocksExactlyTheDormantOf100000Accounts(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 rows")
	}
	b := setup(t)
	now := b.clock.Now()
	cos := []string{
		b.companyWith(t, postgres.CompanyRecord{InactivityDays: 30}),
		b.companyWith(t, postgres.CompanyRecord{InactivityDays: 90}),
		b.companyWith(t, postgres.CompanyRecord{InactivityDays: 180}),
	}
	// Last activity spread over 0-250 days with microsecond fractions;
	// every 11th never logged in (counts from creation), every 17th
	// retired, every 23rd exempt, every 29th already locked, every 31st
	// unlocked for the day.
	began := time.Now()
	_, err := b.db.Exec(`INSERT INTO accounts (company_id, login_id, id_kind, email, name, status, exempt, created_at,
			last_login_at, lock_state, lock_reason, locked_at, unlocked_until)
		SELECT ($2::text[])[1 + g % 3], 'sweep-' || g,
			CASE WHEN g % 2 = 0 THEN 'email' ELSE 'platform' END,
			CASE WHEN g % 2 = 0 THEN 'sweep-' || g || '@example.com' END,
			'Sweep ' || g,
			CASE WHEN g % 17 = 0 THEN 'retired' ELSE 'active' END,
			g % 23 = 0,
			$1::timestamptz - interval '1 second' * ((g::bigint * 104729) % (250 * 86400)) - interval '1 microsecond' * (g % 1000000),
			CASE WHEN g % 11 <> 0 THEN
				$1::timestamptz - interval '1 second' * ((g::bigint * 7919) % (250 * 86400)) - interval '1 microsecond' * (g % 997) END,
			CASE WHEN g % 29 = 0 THEN 'locked' WHEN g % 31 = 0 THEN 'unlocked_until' ELSE 'active' END,
			CASE WHEN g % 29 = 0 THEN 'dormant' END,
			CASE WHEN g % 29 = 0 THEN $1::timestamptz - interval '1 day' END,
			CASE WHEN g % 29 <> 0 AND g % 31 = 0 THEN $1::timestamptz + interval '1 hour' END
		FROM generate_series(1, 100000) g`, now, array(cos...))
	if err != nil {
		t.Fatal(err)
	}
	// The edges, per company: exactly at the threshold is dormant, one
	// microsecond short of it is not.
	for i, days := range []int{30, 90, 180} {
		period := time.Duration(days) * day
		b.account(t, accountOpts{company: cos[i], lastLogin: period})
		b.account(t, accountOpts{company: cos[i], lastLogin: period - time.Microsecond})
	}
	t.Logf("generated 100,000 accounts in %v", time.Since(began))

	want := b.count(t, dormantByRule, now)
	wantMine := b.count(t, dormantByRule+` AND a.company_id = ANY($2::text[])`, now, array(cos...))
	lockedBefore := b.count(t, `SELECT count(*) FROM accounts WHERE company_id = ANY($1::text[]) AND lock_state = 'locked'`, array(cos...))
	if wantMine < 10000 || wantMine > 90000 {
		t.Fatalf("the generated data has %d dormant accounts; the test wants a substantial mix", wantMine)
	}

	began = time.Now()
	b.run(t, maintenanceTask(t, tasks.TypeMaintenanceSweep, now))
	took := time.Since(began)
	t.Logf("sweep locked %d accounts (%d in the test's companies) in %v", want, wantMine, took)

	// Other tests of the package sweep at the same instant: the events
	// counted are this test's companies'.
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'locked' AND detail->>'by' = 'sweep' AND occurred_at = $1
		AND company_id = ANY($2::text[])`, now, array(cos...)); got != wantMine {
		t.Errorf("sweep lock events = %d, want %d (SQL count before the sweep)", got, wantMine)
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE company_id = ANY($1::text[]) AND lock_state = 'locked'`, array(cos...)) - lockedBefore; got != wantMine {
		t.Errorf("newly locked in the test's companies = %d, want %d", got, wantMine)
	}
	if got := b.count(t, dormantByRule, now); got != 0 {
		t.Errorf("%d dormant accounts left active", got)
	}
	// Nothing but the dormant was touched: every account the sweep locked
	// really is past its company's threshold.
	if got := b.count(t, `SELECT count(*) FROM accounts a JOIN companies c ON c.id = a.company_id
		WHERE a.locked_at = $1 AND a.company_id = ANY($2::text[]) AND (a.status <> 'active' OR a.exempt
		  OR extract(epoch FROM ($1::timestamptz - coalesce(a.last_login_at, a.created_at))) < c.inactivity_days * 86400)`, now, array(cos...)); got != 0 {
		t.Errorf("%d accounts locked that are not dormant, or are retired or exempt", got)
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE company_id = ANY($1::text[]) AND lock_state = 'unlocked_until'`, array(cos...)); got == 0 {
		t.Error("the sweep relocked same-day unlocks; that is the relock job's work")
	}
	if got := b.count(t, `SELECT count(*) FROM mails WHERE account_id IN (SELECT id FROM accounts WHERE company_id = ANY($1::text[]))`, array(cos...)); got != 0 {
		t.Errorf("the sweep wrote %d mails; it sends none", got)
	}

	// A second run, even a day later, changes nothing.
	events := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'locked'`)
	b.run(t, maintenanceTask(t, tasks.TypeMaintenanceSweep, now.Add(time.Minute)))
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'locked'`); got != events {
		t.Errorf("second sweep wrote %d lock events, want 0", got-events)
	}
}

// Two sweeps racing lock each account once.
func TestSweepsRacingLockEachAccountOnce(t *testing.T) {
	b := setup(t)
	now := b.clock.Now()
	co := b.companyWith(t, postgres.CompanyRecord{InactivityDays: 60})
	if _, err := b.db.Exec(`INSERT INTO accounts (company_id, login_id, id_kind, email, name, created_at)
		SELECT $1, 'race-' || g, 'email', 'race-' || g || '@example.com', 'Race', $2::timestamptz - interval '1 day' * (g % 120)
		FROM generate_series(1, 5000) g`, co, now); err != nil {
		t.Fatal(err)
	}
	want := b.count(t, dormantByRule+` AND a.company_id = $2`, now, co)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.process(maintenanceTask(t, tasks.TypeMaintenanceSweep, now, 100))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events ev JOIN accounts a ON a.id = ev.account_id
		WHERE ev.kind = 'locked' AND a.company_id = $1`, co); got != want {
		t.Errorf("lock events = %d, want %d, one per dormant account", got, want)
	}
}

func TestRelockBatchesAndSkipsRetired(t *testing.T) {
	b := setup(t)
	now := b.clock.Now()
	var due []int64
	for range 5 {
		_, id := b.account(t, accountOpts{kind: policy.IDKindPlatform})
		due = append(due, id)
	}
	_, retired := b.account(t, accountOpts{kind: policy.IDKindPlatform, retired: true})
	_, ahead := b.account(t, accountOpts{kind: policy.IDKindPlatform})
	set := func(id int64, until time.Time) {
		if _, err := b.db.Exec(`UPDATE accounts SET lock_state = 'unlocked_until', unlocked_until = $2 WHERE id = $1`, id, until); err != nil {
			t.Fatal(err)
		}
	}
	for i, id := range due {
		set(id, now.Add(-time.Duration(i)*time.Hour)) // the first exactly at its deadline
	}
	set(retired, now.Add(-time.Hour))
	set(ahead, now.Add(time.Millisecond))

	b.run(t, maintenanceTask(t, tasks.TypeMaintenanceRelock, now, 2))
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE id = ANY($1::bigint[]) AND lock_state = 'locked' AND lock_reason = 'dormant' AND unlocked_until IS NULL`, array(due...)); got != len(due) {
		t.Errorf("relocked = %d, want %d", got, len(due))
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'relocked' AND account_id = ANY($1::bigint[])`, array(due...)); got != len(due) {
		t.Errorf("relocked events = %d, want %d", got, len(due))
	}
	for _, id := range []int64{retired, ahead} {
		if got := b.lockState(t, id); got.state != "unlocked_until" {
			t.Errorf("account %d: %+v, want left alone", id, got)
		}
	}
}

func TestPurgeTokensPastTheRetention(t *testing.T) {
	b := setup(t)
	now := b.clock.Now()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	type tok struct {
		name              string
		created, expires  time.Time
		consumed, revoked *time.Time
		purged            bool
	}
	ptr := func(t time.Time) *time.Time { return &t }
	toks := []tok{
		{"expired 8 days ago", ago(9 * day), ago(8 * day), nil, nil, true},
		{"expired 6 days ago", ago(7 * day), ago(6 * day), nil, nil, false},
		{"consumed 8 days ago, long TTL", ago(10 * day), now.Add(20 * day), ptr(ago(8 * day)), nil, true},
		{"superseded 8 days ago, long TTL", ago(10 * day), now.Add(20 * day), nil, ptr(ago(8 * day)), true},
		{"superseded yesterday", ago(2 * day), now.Add(day), nil, ptr(ago(day)), false},
		{"live", ago(time.Hour), now.Add(23 * time.Hour), nil, nil, false},
	}
	ids := map[string]int64{}
	var id int64 // the account of the last token, for the mail below
	for _, k := range toks {
		_, id = b.account(t, accountOpts{}) // one live link per account
		var tid int64
		err := b.db.QueryRow(`INSERT INTO verification_tokens (account_id, token_hash, email, created_at, expires_at, consumed_at, revoked_at, revoked_reason)
			VALUES ($1, sha256(random()::text::bytea), 'x@example.com', $2, $3, $4, $5, CASE WHEN $5::timestamptz IS NOT NULL THEN 'superseded' END)
			RETURNING id`, id, k.created, k.expires, k.consumed, k.revoked).Scan(&tid)
		if err != nil {
			t.Fatal(err)
		}
		ids[k.name] = tid
	}
	// A sent mail that carried the oldest link keeps its row.
	var mailID int64
	if err := b.db.QueryRow(`SELECT account_id FROM verification_tokens WHERE id = $1`, ids["expired 8 days ago"]).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if err := b.db.QueryRow(`INSERT INTO mails (kind, company_id, account_id, to_address, locale, idempotency_key, token_id, status, created_at)
		VALUES ('verification', $1, $2, 'x@example.com', 'ja', $3, $4, 'sent', $5) RETURNING id`,
		b.company, id, testenv.UniqueID("purge"), ids["expired 8 days ago"], ago(9*day)).Scan(&mailID); err != nil {
		t.Fatal(err)
	}

	for range 2 {
		b.run(t, maintenanceTask(t, tasks.TypeMaintenancePurgeTokens, now, 2))
	}
	for _, k := range toks {
		left := b.count(t, `SELECT count(*) FROM verification_tokens WHERE id = $1`, ids[k.name])
		if (left == 0) != k.purged {
			t.Errorf("%s: kept = %v, want purged = %v", k.name, left == 1, k.purged)
		}
	}
	if got := b.count(t, `SELECT count(*) FROM mails WHERE id = $1 AND token_id IS NULL`, mailID); got != 1 {
		t.Error("the mail of a purged token lost its row or still points at the token")
	}
}

func TestPrelockWarningOncePerStageAndCycle(t *testing.T) {
	b := setup(t)
	co := b.companyWith(t, postgres.CompanyRecord{PrelockWarningDays: []int{30, 14, 3}})
	quiet := b.companyWith(t, postgres.CompanyRecord{})
	// The clock starts at 2026-11-26 10:00 Tokyo; 60 days inactive leaves 30.
	owner, ownerID := b.account(t, accountOpts{company: co, name: "警告 太郎", lastLogin: 60 * day})
	_, withEmail := b.account(t, accountOpts{company: co, kind: policy.IDKindPlatform, email: "platform@example.com", lastLogin: 60 * day})
	_, noEmail := b.account(t, accountOpts{company: co, kind: policy.IDKindPlatform, lastLogin: 60 * day})
	retired, _ := b.account(t, accountOpts{company: co, retired: true, lastLogin: 60 * day})
	exempt, _ := b.account(t, accountOpts{company: co, exempt: true, lastLogin: 60 * day})
	locked, lockedID := b.account(t, accountOpts{company: co, lastLogin: 60 * day})
	b.lock(t, lockedID)
	recent, _ := b.account(t, accountOpts{company: co, lastLogin: 10 * day})
	dormant, _ := b.account(t, accountOpts{company: co, lastLogin: 100 * day})
	late, _ := b.account(t, accountOpts{company: co, lastLogin: 88 * day})
	elsewhere, _ := b.account(t, accountOpts{company: quiet, lastLogin: 60 * day})

	warn := func() {
		t.Helper()
		b.run(t, maintenanceTask(t, tasks.TypeMaintenancePrelockWarning, b.clock.Now(), 3))
		b.drain(t)
	}
	warn()
	warn() // the same hour again
	first := b.emailsTo(owner)
	if len(first) != 1 {
		t.Fatalf("warnings to the email-ID owner = %d, want 1", len(first))
	}
	if got, want := first[0].Subject, "【ご注意】まもなくアカウントがロックされます"; got != want {
		t.Errorf("subject = %q, want %q", got, want)
	}
	if !strings.Contains(first[0].Text, "2026年12月26日（あと30日）") {
		t.Errorf("warning does not give the lock date and days:\n%s", first[0].Text)
	}
	if got := len(b.emailsTo("platform@example.com")); got != 1 {
		t.Errorf("warnings to the platform ID with an email = %d, want 1", got)
	}
	if got := len(b.emailsTo(late)); got != 1 {
		t.Errorf("warnings to the account 2 days from its lock = %d, want 1 (the 3-day stage only)", got)
	}
	for _, addr := range []string{retired, exempt, locked, recent, dormant, elsewhere} {
		if got := len(b.emailsTo(addr)); got != 0 {
			t.Errorf("%s got %d warnings, want none", addr, got)
		}
	}
	if got := b.count(t, `SELECT count(*) FROM mails WHERE account_id = $1`, noEmail); got != 0 {
		t.Errorf("mails for the platform ID without email = %d", got)
	}

	// Days later, still in the 30-day stage: nothing new.
	b.clock.Add(5 * day)
	warn()
	if got := len(b.emailsTo(owner)); got != 1 {
		t.Errorf("warnings after 5 days = %d, want still 1", got)
	}
	// 14 days before: the second stage.
	b.clock.Set(start.Add(16 * day))
	warn()
	if got := len(b.emailsTo(owner)); got != 2 {
		t.Fatalf("warnings at 14 days = %d, want 2", got)
	}
	if !strings.Contains(b.emailsTo(owner)[1].Text, "（あと14日）") {
		t.Errorf("second warning:\n%s", b.emailsTo(owner)[1].Text)
	}
	if got := len(b.emailsTo("platform@example.com")); got != 2 {
		t.Errorf("platform ID warnings at 14 days = %d, want 2", got)
	}

	// A login starts a new cycle: 60 days after it, the 30-day warning
	// comes again, once.
	b.run(t, b.attempt(t, co, owner, policy.MethodPassword))
	b.clock.Add(60 * day)
	warn()
	warn()
	if got := len(b.emailsTo(owner)); got != 3 {
		t.Errorf("warnings after a new cycle = %d, want 3", got)
	}
	if got := b.count(t, `SELECT count(*) FROM prelock_warnings WHERE account_id = $1`, ownerID); got != 3 {
		t.Errorf("warning records = %d, want 3 (two stages of the first cycle, one of the second)", got)
	}
	// The platform ID without a login is dormant by now: no third warning.
	if got := len(b.emailsTo("platform@example.com")); got != 2 {
		t.Errorf("platform ID warnings after its lock date = %d, want 2", got)
	}
	if got := b.count(t, `SELECT count(*) FROM prelock_warnings WHERE account_id = $1`, withEmail); got != 2 {
		t.Errorf("warning records of the platform ID = %d, want 2", got)
	}
}

// Mail whose task was lost is queued again by the requeue job once it is
// old enough: an alert as it was, a verification email with its link (still live),
// a notice as it was; a verification email whose link was superseded is
// dropped instead.
func TestRequeueMailSendsWhatWasLostOnce(t *testing.T) {
	b := setup(t)
	recipient, r := b.account(t, accountOpts{lastLogin: day})
	login, id := b.account(t, accountOpts{lastLogin: 100 * day})
	b.recipients(t, b.company, r)
	_, admin := b.account(t, accountOpts{kind: policy.IDKindPlatform, admin: true, lastLogin: day})
	_, platform := b.account(t, accountOpts{kind: policy.IDKindPlatform, email: "notice@example.com"})
	b.lock(t, platform)

	// The job works on the whole outbox: earlier tests' pending mail, queued
	// or not, is set aside so that what is counted here is this test's.
	if queues, _ := b.inspect.Queues(); slices.Contains(queues, tasks.QueueDefault) {
		if _, err := b.inspect.DeleteAllPendingTasks(tasks.QueueDefault); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.db.Exec(`UPDATE mails SET status = 'dropped', error = 'set aside by a test' WHERE status = 'pending'`); err != nil {
		t.Fatal(err)
	}
	b.resend.FailNext(1, 422, nil) // Resend refuses the link's first try: it is left to its task
	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	b.run(t, unlockTask(t, tasks.AccountUnlock{CompanyID: b.company, ActorAccountID: admin, AccountIDs: []int64{platform}}))
	if n, err := b.inspect.DeleteAllPendingTasks(tasks.QueueDefault); err != nil || n != 3 {
		t.Fatalf("lost tasks = %d, %v; want 3 (link, alert, notice)", n, err)
	}
	requeue := func() {
		t.Helper()
		b.run(t, maintenanceTask(t, tasks.TypeMaintenanceRequeueMail, b.clock.Now()))
	}
	// Younger than two minutes: perhaps still on its way, left alone.
	b.clock.Add(time.Minute)
	requeue()
	if n := b.drain(t); n != 0 {
		t.Fatalf("requeued %d mails younger than 2 minutes", n)
	}
	b.clock.Add(time.Minute)
	tokens := b.count(t, `SELECT count(*) FROM verification_tokens WHERE account_id = $1`, id)
	requeue()
	requeue() // the verification task is queued now: queued once
	if got := b.count(t, `SELECT count(*) FROM verification_tokens WHERE account_id = $1`, id); got != tokens {
		t.Errorf("tokens = %d, want %d (the live link sent again, no fresh one)", got, tokens)
	}
	if n := b.drain(t); n != 3 {
		t.Errorf("ran %d mail tasks, want 3", n)
	}
	requeue()
	b.drain(t)
	for addr, want := range map[string]int{login: 1, recipient: 1, "notice@example.com": 1} {
		if got := len(b.emailsTo(addr)); got != want {
			t.Errorf("emails to %s = %d, want %d", addr, got, want)
		}
	}
	if _, err := b.client.Redeem(b.ctx, b.company, login, tokenOf(t, b.emailsTo(login)[0]), ""); err != nil {
		t.Errorf("the link sent again: %v", err)
	}

	// A lost verification email overtaken by a newer one is dropped, and the
	// newer link keeps working.
	login2, id2 := b.account(t, accountOpts{lastLogin: 100 * day})
	b.resend.FailNext(1, 422, nil)
	b.run(t, b.attempt(t, b.company, login2, policy.MethodPassword))
	if _, err := b.inspect.DeleteAllPendingTasks(tasks.QueueDefault); err != nil {
		t.Fatal(err)
	}
	b.clock.Add(6 * time.Minute)
	b.run(t, b.attempt(t, b.company, login2, policy.MethodPassword))
	b.drain(t)
	requeue()
	b.drain(t)
	if got := len(b.emailsTo(login2)); got != 1 {
		t.Fatalf("emails to the second owner = %d, want 1", got)
	}
	if got := b.count(t, `SELECT count(*) FROM mails WHERE account_id = $1 AND kind = 'verification' AND status = 'dropped'`, id2); got != 1 {
		t.Errorf("dropped verification mails = %d, want 1", got)
	}
	b.clock.Add(time.Minute)
	if _, err := b.client.Redeem(b.ctx, b.company, login2, tokenOf(t, b.emailsTo(login2)[0]), ""); err != nil {
		t.Errorf("the newer link after the requeue job: %v", err)
	}
	b.drain(t) // the unlock notices, so that no task of this test outlives it
}

func TestBadMaintenancePayloadIsArchived(t *testing.T) {
	b := setup(t)
	before := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'task_rejected'`)
	for _, typ := range tasks.MaintenanceTypes {
		for _, payload := range []string{`{}`, `{"period":"2026-11-26T01:00:00Z","batch_size":-1}`, `{"period":"2026-11-26T01:00:00Z","extra":1}`} {
			if err := b.process(asynq.NewTask(typ, []byte(payload))); !errors.Is(err, asynq.SkipRetry) {
				t.Errorf("%s %s: %v, want SkipRetry", typ, payload, err)
			}
		}
	}
	if got, want := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'task_rejected'`)-before, 3*len(tasks.MaintenanceTypes); got != want {
		t.Errorf("task_rejected events = %d, want %d", got, want)
	}
}
