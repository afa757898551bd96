package worker_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

// companyIn creates a company in time zone tz.
func (b *testBundle) companyIn(t *testing.T, tz string) string {
	t.Helper()
	id := b.newCompany(t)
	if err := b.store.UpsertCompany(b.ctx, postgres.CompanyRecord{ID: id, Name: "Example", TimeZone: tz}); err != nil {
		t.Fatal(err)
	}
	return id
}

// lock puts accounts in the locked state directly, as a sweep or an
// attempt would have.
func (b *testBundle) lock(t *testing.T, ids ...int64) {
	t.Helper()
	for _, id := range ids {
		if _, err := b.db.Exec(`UPDATE accounts SET lock_state = 'locked', lock_reason = 'dormant', locked_at = $2,
			unlocked_until = NULL WHERE id = $1`, id, b.clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

// unlockTask builds an account:unlock task with the public constructor.
func unlockTask(t *testing.T, p tasks.AccountUnlock) *asynq.Task {
	t.Helper()
	task, err := tasks.NewAccountUnlockTask(p)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

type lockRow struct {
	state string
	until time.Time
}

func (b *testBundle) lockState(t *testing.T, id int64) lockRow {
	t.Helper()
	var r lockRow
	var until *time.Time
	if err := b.db.QueryRow(`SELECT lock_state, unlocked_until FROM accounts WHERE id = $1`, id).Scan(&r.state, &until); err != nil {
		t.Fatal(err)
	}
	if until != nil {
		r.until = *until
	}
	return r
}

// Asia/Tokyo: unlocked at 09:00, the account may log in until 23:59:59.999
// that day; from 00:00:00 it is refused and told to ask an administrator,
// even before the relock job moves the row back to locked.
func TestAdminUnlockLastsUntilLocalMidnightInTokyo(t *testing.T) {
	b := setup(t)
	b.clock.Set(time.Date(2026, 11, 26, 9, 0, 0, 0, b.tokyo))
	_, admin := b.account(t, accountOpts{kind: policy.IDKindPlatform, name: "管理 花子", dept: "総務部", admin: true, lastLogin: day})
	early, a := b.account(t, accountOpts{kind: policy.IDKindPlatform, name: "早い 一郎", email: "early@example.com", lastLogin: 100 * day})
	late, bb := b.account(t, accountOpts{kind: policy.IDKindPlatform, name: "遅い 二郎", lastLogin: 100 * day})
	_, c := b.account(t, accountOpts{kind: policy.IDKindPlatform, name: "来ない 三郎", lastLogin: 100 * day})
	for _, login := range []string{early, late} {
		b.run(t, b.attempt(t, b.company, login, policy.MethodPassword)) // locked on a real attempt
	}
	b.lock(t, c)

	b.run(t, unlockTask(t, tasks.AccountUnlock{CompanyID: b.company, ActorAccountID: admin, AccountIDs: []int64{a, bb, c}, RequestID: "req-unlock"}))
	deadline := time.Date(2026, 11, 27, 0, 0, 0, 0, b.tokyo)
	for _, id := range []int64{a, bb, c} {
		if got := b.lockState(t, id); got.state != "unlocked_until" || !got.until.Equal(deadline) {
			t.Errorf("account %d after unlock: %+v, want unlocked_until %v", id, got, deadline)
		}
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'unlocked' AND actor_account_id = $1
		AND request_id = 'req-unlock' AND account_id = ANY($2::bigint[])`, admin, array(a, bb, c)); got != 3 {
		t.Errorf("unlocked events with the actor = %d, want 3", got)
	}
	// Only the person with an address is told, in the company's language.
	b.drain(t)
	notices := b.emailsTo("early@example.com")
	if len(notices) != 1 {
		t.Fatalf("notices to early@example.com = %d, want 1", len(notices))
	}
	if got, want := notices[0].Subject, "【お知らせ】管理者がアカウントのロックを解除しました"; got != want {
		t.Errorf("subject = %q, want %q", got, want)
	}
	if !strings.Contains(notices[0].Text, "2026/11/26 24:00 JST") {
		t.Errorf("notice does not give the deadline 2026/11/26 24:00 JST:\n%s", notices[0].Text)
	}
	if got := b.count(t, `SELECT count(*) FROM mails WHERE kind = 'admin_unlocked' AND account_id = ANY($1::bigint[])`, array(bb, c)); got != 0 {
		t.Errorf("notices written for accounts without an address: %d", got)
	}

	// 23:59:59.999 local: let in, active again, login date now.
	lastMoment := deadline.Add(-time.Millisecond)
	b.clock.Set(lastMoment)
	if res, err := b.client.Check(b.ctx, b.company, early, policy.MethodPassword); err != nil || res.Decision.Outcome != policy.OutcomeAllow {
		t.Fatalf("Check at 23:59:59.999 = %+v, %v; want allow", res, err)
	}
	b.run(t, b.attempt(t, b.company, early, policy.MethodPassword))
	var last time.Time
	if err := b.db.QueryRow(`SELECT last_login_at FROM accounts WHERE id = $1`, a).Scan(&last); err != nil {
		t.Fatal(err)
	}
	if got := b.lockState(t, a); got.state != "active" || !last.Equal(lastMoment) {
		t.Errorf("after the login at 23:59:59.999: %+v, login date %v; want active, %v", got, last, lastMoment)
	}

	// 00:00:00 the next day, no relock run yet: refused, ask an administrator.
	b.clock.Set(deadline)
	res, err := b.client.Check(b.ctx, b.company, late, policy.MethodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if res.Decision.Outcome != policy.OutcomeAskAdministrator || len(res.Administrators) != 1 || res.Administrators[0].AccountID != admin {
		t.Errorf("Check at 00:00:00 = %+v; want ask_administrator listing the administrator", res)
	}
	if got := b.lockState(t, bb); got.state != "unlocked_until" {
		t.Fatalf("Check changed the row: %+v", got)
	}
	b.run(t, b.attempt(t, b.company, late, policy.MethodPassword))
	if got := b.lockState(t, bb); got.state != "locked" {
		t.Errorf("after the login at 00:00:00: %+v, want locked", got)
	}

	// The relock job moves the one nobody used back to locked, once.
	for range 2 {
		b.run(t, maintenanceTask(t, tasks.TypeMaintenanceRelock, b.clock.Now()))
	}
	if got := b.lockState(t, c); got.state != "locked" {
		t.Errorf("after the relock job: %+v, want locked", got)
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'relocked' AND account_id = $1 AND detail->>'by' = 'relock'`, c); got != 1 {
		t.Errorf("relock events by the job = %d, want 1", got)
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'relocked' AND account_id = $1`, bb); got != 1 {
		t.Errorf("relock events of the account refused at midnight = %d, want 1 (from its attempt)", got)
	}
	if got := b.lockState(t, a); got.state != "active" {
		t.Errorf("the account that logged in: %+v, want active", got)
	}
}

// America/New_York on the day summer time begins (23 hours) and the day it
// ends (25 hours): the deadline is that local day's own midnight.
func TestAdminUnlockDeadlineOnDSTDays(t *testing.T) {
	b := setup(t)
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	co := b.companyIn(t, "America/New_York")
	_, admin := b.account(t, accountOpts{company: co, kind: policy.IDKindPlatform, admin: true, lastLogin: day})
	cases := []struct {
		name     string
		at       time.Time
		deadline time.Time // as UTC, to check the arithmetic independently
		dayHours float64
	}{
		{"DST begins, before the change", time.Date(2026, 3, 8, 1, 30, 0, 0, ny), time.Date(2026, 3, 9, 4, 0, 0, 0, time.UTC), 23},
		{"DST begins, after the change", time.Date(2026, 3, 8, 22, 0, 0, 0, ny), time.Date(2026, 3, 9, 4, 0, 0, 0, time.UTC), 23},
		{"DST ends, first 01:30", time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC), time.Date(2026, 11, 2, 5, 0, 0, 0, time.UTC), 25},
		{"DST ends, second 01:30", time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC), time.Date(2026, 11, 2, 5, 0, 0, 0, time.UTC), 25},
		{"DST ends, evening", time.Date(2026, 11, 1, 23, 0, 0, 0, ny), time.Date(2026, 11, 2, 5, 0, 0, 0, time.UTC), 25},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			login, id := b.account(t, accountOpts{company: co, kind: policy.IDKindPlatform, createdAgo: 500 * day})
			b.lock(t, id)
			b.clock.Set(c.at)
			got, err := b.store.UnlockAccounts(b.ctx, co, admin, []int64{id}, false, c.at, "")
			if err != nil || !slices.Equal(got, []int64{id}) {
				t.Fatalf("UnlockAccounts = %v, %v", got, err)
			}
			row := b.lockState(t, id)
			if !row.until.Equal(c.deadline) {
				t.Fatalf("deadline = %v (%v), want %v", row.until.In(ny), row.until.UTC(), c.deadline)
			}
			y, m, d := c.at.In(ny).Date()
			if h := row.until.Sub(time.Date(y, m, d, 0, 0, 0, 0, ny)).Hours(); h != c.dayHours {
				t.Errorf("local day is %v hours long, want %v", h, c.dayHours)
			}
			b.clock.Set(c.deadline.Add(-time.Millisecond))
			if res, _ := b.client.Check(b.ctx, co, login, policy.MethodPassword); res.Decision.Outcome != policy.OutcomeAllow {
				t.Errorf("1 ms before the deadline: %q, want allow", res.Decision.Outcome)
			}
			b.clock.Set(c.deadline)
			if res, _ := b.client.Check(b.ctx, co, login, policy.MethodPassword); res.Decision.Outcome != policy.OutcomeAskAdministrator {
				t.Errorf("at the deadline: %q, want ask_administrator", res.Decision.Outcome)
			}
		})
	}
}

// Every refused unlock is archived with its reason and changes nothing:
// not the named accounts of the actor's own company either.
func TestUnlockRefusalsArePermanentAndChangeNothing(t *testing.T) {
	b := setup(t)
	other := b.newCompany(t)
	_, admin := b.account(t, accountOpts{kind: policy.IDKindPlatform, admin: true, lastLogin: day})
	_, plain := b.account(t, accountOpts{kind: policy.IDKindPlatform, lastLogin: day})
	_, retiredAdmin := b.account(t, accountOpts{kind: policy.IDKindPlatform, admin: true, retired: true})
	_, otherAdmin := b.account(t, accountOpts{company: other, kind: policy.IDKindPlatform, admin: true, lastLogin: day})
	_, mine := b.account(t, accountOpts{kind: policy.IDKindPlatform, email: "mine@example.com"})
	_, theirs := b.account(t, accountOpts{company: other, kind: policy.IDKindPlatform, email: "theirs@example.com"})
	b.lock(t, mine, theirs)

	cases := []struct {
		name    string
		p       tasks.AccountUnlock
		wantErr error // from the synchronous store call
	}{
		{"an account of another company among them", tasks.AccountUnlock{CompanyID: b.company, ActorAccountID: admin, AccountIDs: []int64{mine, theirs}}, policy.ErrNotFound},
		{"an account that does not exist", tasks.AccountUnlock{CompanyID: b.company, ActorAccountID: admin, AccountIDs: []int64{mine, 1 << 60}}, policy.ErrNotFound},
		{"actor without the permission", tasks.AccountUnlock{CompanyID: b.company, ActorAccountID: plain, AccountIDs: []int64{mine}}, policy.ErrForbidden},
		{"actor without the permission, all", tasks.AccountUnlock{CompanyID: b.company, ActorAccountID: plain, All: true}, policy.ErrForbidden},
		{"retired administrator", tasks.AccountUnlock{CompanyID: b.company, ActorAccountID: retiredAdmin, AccountIDs: []int64{mine}}, policy.ErrForbidden},
		{"administrator of another company", tasks.AccountUnlock{CompanyID: b.company, ActorAccountID: otherAdmin, All: true}, policy.ErrForbidden},
		{"administrator naming the company he administers, with our account", tasks.AccountUnlock{CompanyID: other, ActorAccountID: otherAdmin, AccountIDs: []int64{mine}}, policy.ErrNotFound},
		{"actor that does not exist", tasks.AccountUnlock{CompanyID: b.company, ActorAccountID: 1 << 60, All: true}, policy.ErrForbidden},
		{"company that does not exist", tasks.AccountUnlock{CompanyID: "no-such-company", ActorAccountID: admin, All: true}, policy.ErrNotFound},
	}
	rejected := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'task_rejected'`)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := b.process(unlockTask(t, c.p))
			if !errors.Is(err, asynq.SkipRetry) {
				t.Errorf("handler: %v, want SkipRetry", err)
			}
			got, err := b.store.UnlockAccounts(b.ctx, c.p.CompanyID, c.p.ActorAccountID, c.p.AccountIDs, c.p.All, b.clock.Now(), "")
			if !errors.Is(err, c.wantErr) || got != nil {
				t.Errorf("UnlockAccounts = %v, %v; want %v", got, err, c.wantErr)
			}
		})
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'task_rejected'`) - rejected; got != len(cases) {
		t.Errorf("task_rejected events = %d, want %d", got, len(cases))
	}
	for _, id := range []int64{mine, theirs} {
		if got := b.lockState(t, id); got.state != "locked" {
			t.Errorf("account %d: %+v, want still locked", id, got)
		}
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'unlocked' AND account_id = ANY($1::bigint[])`, array(mine, theirs)); got != 0 {
		t.Errorf("unlocked events = %d, want 0", got)
	}
	if got := b.count(t, `SELECT count(*) FROM mails WHERE account_id = ANY($1::bigint[])`, array(mine, theirs)); got != 0 {
		t.Errorf("mails = %d, want 0", got)
	}
	// The reason is on record.
	var reason string
	if err := b.db.QueryRow(`SELECT detail->>'reason' FROM audit_events WHERE kind = 'task_rejected'
		AND detail->>'task_type' = 'account:unlock' AND detail->>'reason' LIKE '%not an active administrator%' LIMIT 1`).Scan(&reason); err != nil {
		t.Errorf("no task_rejected event naming the actor check: %v", err)
	}
}

// Unlock all touches exactly the company's locked platform IDs: not its
// email IDs, active, retired or still-unlocked accounts, and nothing of
// another company. An unlock whose deadline has passed counts as locked.
func TestBulkUnlockTouchesExactlyTheLockedPlatformIDs(t *testing.T) {
	b := setup(t)
	other := b.newCompany(t)
	_, admin := b.account(t, accountOpts{kind: policy.IDKindPlatform, admin: true, lastLogin: day})
	_, p1 := b.account(t, accountOpts{kind: policy.IDKindPlatform, email: "p1@example.com"})
	_, p2 := b.account(t, accountOpts{kind: policy.IDKindPlatform})
	_, passed := b.account(t, accountOpts{kind: policy.IDKindPlatform, email: "passed@example.com"})
	_, still := b.account(t, accountOpts{kind: policy.IDKindPlatform})
	_, active := b.account(t, accountOpts{kind: policy.IDKindPlatform, lastLogin: day})
	_, emailID := b.account(t, accountOpts{})
	_, retired := b.account(t, accountOpts{kind: policy.IDKindPlatform, retired: true})
	_, foreign := b.account(t, accountOpts{company: other, kind: policy.IDKindPlatform, email: "foreign@example.com"})
	b.lock(t, p1, p2, emailID, retired, foreign)
	stillUntil := b.clock.Now().Add(time.Hour)
	for id, until := range map[int64]time.Time{passed: b.clock.Now().Add(-time.Hour), still: stillUntil} {
		if _, err := b.db.Exec(`UPDATE accounts SET lock_state = 'unlocked_until', unlocked_until = $2 WHERE id = $1`, id, until); err != nil {
			t.Fatal(err)
		}
	}

	task := unlockTask(t, tasks.AccountUnlock{CompanyID: b.company, ActorAccountID: admin, All: true})
	b.run(t, task)
	b.run(t, task) // a redelivery changes nothing
	want := []int64{p1, p2, passed}
	got := column[int64](t, b, `SELECT account_id FROM audit_events WHERE kind = 'unlocked' AND actor_account_id = $1 ORDER BY account_id`, admin)
	if !slices.Equal(got, want) {
		t.Errorf("unlocked events for %v, want %v (one each)", got, want)
	}
	for id, wantState := range map[int64]string{
		p1: "unlocked_until", p2: "unlocked_until", passed: "unlocked_until", still: "unlocked_until",
		active: "active", emailID: "locked", retired: "locked", foreign: "locked",
	} {
		if got := b.lockState(t, id); got.state != wantState {
			t.Errorf("account %d: %q, want %q", id, got.state, wantState)
		}
	}
	if got := b.lockState(t, still); !got.until.Equal(stillUntil) {
		t.Errorf("an unlock still running was moved: %v, want %v", got.until, stillUntil)
	}
	b.drain(t)
	for addr, want := range map[string]int{"p1@example.com": 1, "passed@example.com": 1, "foreign@example.com": 0} {
		if got := len(b.emailsTo(addr)); got != want {
			t.Errorf("notices to %s = %d, want %d", addr, got, want)
		}
	}
	// The synchronous form reports what it unlocked: nothing is left.
	if got, err := b.store.UnlockAccounts(b.ctx, b.company, admin, nil, true, b.clock.Now(), ""); err != nil || len(got) != 0 {
		t.Errorf("UnlockAccounts again = %v, %v; want none", got, err)
	}
}

// A worker that died after its commit and before queueing the notice: the
// redelivered task queues it, and the owner gets it once.
func TestUnlockRedeliveryQueuesTheLostNotice(t *testing.T) {
	b := setup(t)
	_, admin := b.account(t, accountOpts{kind: policy.IDKindPlatform, admin: true, lastLogin: day})
	_, id := b.account(t, accountOpts{kind: policy.IDKindPlatform, email: "lost@example.com"})
	b.lock(t, id)
	task := unlockTask(t, tasks.AccountUnlock{CompanyID: b.company, ActorAccountID: admin, AccountIDs: []int64{id}})
	b.run(t, task)
	if n, err := b.inspect.DeleteAllPendingTasks(tasks.QueueDefault); err != nil || n != 1 {
		t.Fatalf("delete pending: %d, %v", n, err)
	}
	b.clock.Add(time.Minute)
	b.run(t, task)
	b.run(t, task)
	b.drain(t)
	if got := len(b.emailsTo("lost@example.com")); got != 1 {
		t.Errorf("notices = %d, want 1", got)
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'unlocked' AND account_id = $1`, id); got != 1 {
		t.Errorf("unlocked events = %d, want 1", got)
	}
}

// A double click enqueues the unlock once.
func TestUnlockDoubleClickEnqueuesOnce(t *testing.T) {
	b := setup(t)
	p := tasks.AccountUnlock{CompanyID: b.company, ActorAccountID: 7, AccountIDs: []int64{3, 1, 2}, RequestID: "form-1"}
	if err := b.client.Enqueue(b.ctx, unlockTask(t, p)); err != nil {
		t.Fatal(err)
	}
	p.AccountIDs = []int64{2, 3, 1, 1}
	again := unlockTask(t, p)
	q := asynq.NewClient(testenv.RedisOpt())
	defer q.Close()
	if _, err := q.Enqueue(again); !errors.Is(err, asynq.ErrTaskIDConflict) {
		t.Errorf("second enqueue: %v, want ErrTaskIDConflict", err)
	}
	infos, err := b.inspect.ListPendingTasks(tasks.QueueCritical)
	if err != nil || len(infos) != 1 {
		t.Fatalf("pending unlocks = %d, %v; want 1", len(infos), err)
	}
	if _, err := b.inspect.DeleteAllPendingTasks(tasks.QueueCritical); err != nil {
		t.Fatal(err)
	}
}

// The admin server's synchronous unlock leaves the notice in the outbox;
// the requeue job sends it, and if the owner logged in meanwhile it still
// names the deadline of the unlock.
func TestSynchronousUnlockNoticeGoesOutThroughTheRequeueJob(t *testing.T) {
	b := setup(t)
	_, admin := b.account(t, accountOpts{kind: policy.IDKindPlatform, admin: true, lastLogin: day})
	login, id := b.account(t, accountOpts{kind: policy.IDKindPlatform, email: "sync@example.com", lastLogin: 100 * day})
	b.lock(t, id)
	got, err := b.store.UnlockAccounts(b.ctx, b.company, admin, []int64{id}, false, b.clock.Now(), "req-sync")
	if err != nil || !slices.Equal(got, []int64{id}) {
		t.Fatalf("UnlockAccounts = %v, %v", got, err)
	}
	b.clock.Add(time.Minute)
	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	if got := b.lockState(t, id); got.state != "active" {
		t.Fatalf("after the login: %+v, want active", got)
	}
	b.clock.Add(2 * time.Minute)
	b.run(t, maintenanceTask(t, tasks.TypeMaintenanceRequeueMail, b.clock.Now()))
	b.drain(t)
	notices := b.emailsTo("sync@example.com")
	if len(notices) != 1 {
		t.Fatalf("notices = %d, want 1", len(notices))
	}
	if !strings.Contains(notices[0].Text, "2026/11/26 24:00 JST") {
		t.Errorf("notice does not name the unlock's deadline:\n%s", notices[0].Text)
	}
}
