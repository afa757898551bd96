package worker_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
)

// The tests in this file take the lock decision through the two entry
// points a host has besides the HTTP API (admin/decision_test.go): the Go
// client (tasks.Client) and a raw task a non-Go host enqueues itself.

// midnight ends start's day in Tokyo: 2026-11-27 00:00 JST.
var midnight = time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC)

// runCritical runs every queued critical task, as a worker would now.
func (b *testBundle) runCritical(t *testing.T) int {
	t.Helper()
	infos, err := b.inspect.ListPendingTasks(tasks.QueueCritical)
	if err != nil {
		return 0
	}
	for _, info := range infos {
		if err := b.inspect.DeleteTask(tasks.QueueCritical, info.ID); err != nil {
			t.Fatal(err)
		}
		b.run(t, asynq.NewTask(info.Type, info.Payload))
	}
	return len(infos)
}

// relock runs the relock job at the clock's time.
func (b *testBundle) relock(t *testing.T) {
	t.Helper()
	b.run(t, maintenanceTask(t, tasks.TypeMaintenanceRelock, b.clock.Now()))
}

// lapsingUnlock makes id a platform ID unlocked until midnight.
func (b *testBundle) lapsingUnlock(t *testing.T, id int64) {
	t.Helper()
	if _, err := b.db.Exec(`UPDATE accounts SET lock_state = 'unlocked_until', lock_reason = NULL, locked_at = NULL,
		unlocked_until = $2 WHERE id = $1`, id, midnight); err != nil {
		t.Fatal(err)
	}
}

func (b *testBundle) lastLogin(t *testing.T, id int64) time.Time {
	t.Helper()
	var at time.Time
	if err := b.db.QueryRow(`SELECT coalesce(last_login_at, 'epoch') FROM accounts WHERE id = $1`, id).Scan(&at); err != nil {
		t.Fatal(err)
	}
	return at
}

// rawAttempt is a login:attempt written by hand, as a non-Go host would.
func rawAttempt(company, login, method string, at time.Time, extra string) *asynq.Task {
	return asynq.NewTask(tasks.TypeLoginAttempt, fmt.Appendf(nil,
		`{"v":2,"company_id":%q,"login_id":%q,"method":%q,"attempt_key":"raw-%s","at":%q%s}`,
		company, login, method, login, rfc(at), extra))
}

func rfc(t time.Time) string { return t.Format(time.RFC3339Nano) }

// Hole 1: the method named in a report unlocks nothing, through either
// entry point.
func TestVerificationLinkMethodUnlocksNothing(t *testing.T) {
	b := setup(t)
	login, id := b.account(t, accountOpts{kind: policy.IDKindEmail, lastLogin: 100 * 24 * time.Hour})
	b.lock(t, id)
	before := b.lastLogin(t, id)

	res, err := b.client.Login(b.ctx, tasks.LoginAttempt{CompanyID: b.company, LoginID: login, Method: policy.MethodVerificationLink})
	if err != nil {
		t.Fatal(err)
	}
	if res.Decision.Outcome != policy.OutcomeVerifyByEmail {
		t.Errorf("tasks.Client: %s, want verify_by_email", res.Decision.Outcome)
	}
	b.runCritical(t)
	b.run(t, rawAttempt(b.company, login, "verification_link", b.clock.Now(), ""))
	if got := b.lockState(t, id); got.state != "locked" || !b.lastLogin(t, id).Equal(before) {
		t.Errorf("after both reports: %+v, login date %s, want still locked and unchanged", got, b.lastLogin(t, id))
	}
	if n := b.count(t, `SELECT count(*) FROM audit_events WHERE account_id = $1 AND kind IN ('activated', 'unlocked', 'verification_used')`, id); n != 0 {
		t.Errorf("%d unlock events, want 0", n)
	}
}

// Hole 2: "at" dates the record only. Through tasks.Client the worker
// records the decision Check made; a raw task without decided_at is
// decided at the worker's clock, whatever its "at" says.
func TestBackdatedAtDecidesNothing(t *testing.T) {
	b := setup(t)
	viaClient, clientID := b.account(t, accountOpts{kind: policy.IDKindPlatform})
	viaRaw, rawID := b.account(t, accountOpts{kind: policy.IDKindPlatform})
	b.lapsingUnlock(t, clientID)
	b.lapsingUnlock(t, rawID)
	b.clock.Set(midnight.Add(time.Minute))
	backdated := midnight.Add(-time.Minute)

	res, err := b.client.Check(b.ctx, b.company, viaClient, policy.MethodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if res.Decision.Outcome != policy.OutcomeAskAdministrator {
		t.Errorf("Check at 00:01: %s, want ask_administrator", res.Decision.Outcome)
	}
	err = b.client.ReportLoginAttempt(b.ctx, tasks.LoginAttempt{CompanyID: b.company, LoginID: viaClient,
		Method: policy.MethodPassword, At: backdated, DecidedAt: res.DecidedAt})
	if err != nil {
		t.Fatal(err)
	}
	b.runCritical(t)
	b.run(t, rawAttempt(b.company, viaRaw, "password", backdated, ""))
	for _, id := range []int64{clientID, rawID} {
		if got := b.lockState(t, id); got.state == "active" || got.state == "unlocked_until" && got.until.After(b.clock.Now()) {
			t.Errorf("account %d after a back-dated report: %+v, want not let in", id, got)
		}
	}

	// One minute past the 90 days, reported two minutes back: the
	// threshold is the decision's instant, not "at".
	justDormant, jdID := b.account(t, accountOpts{kind: policy.IDKindPlatform, lastLogin: 90*24*time.Hour - (b.clock.Now().Sub(start)) + time.Minute})
	b.run(t, rawAttempt(b.company, justDormant, "password", b.clock.Now().Add(-2*time.Minute), ""))
	if got := b.lockState(t, jdID); got.state != "locked" {
		t.Errorf("just dormant after a back-dated report: %+v, want locked", got)
	}
}

// Hole 3: a login answered before midnight counts although the relock ran
// before the worker reached it.
func TestLoginBeforeMidnightCountsAfterTheRelock(t *testing.T) {
	b := setup(t)
	viaClient, clientID := b.account(t, accountOpts{kind: policy.IDKindPlatform})
	viaRaw, rawID := b.account(t, accountOpts{kind: policy.IDKindPlatform})
	b.lapsingUnlock(t, clientID)
	b.lapsingUnlock(t, rawID)
	answered := midnight.Add(-10 * time.Second)
	b.clock.Set(answered)
	res, err := b.client.Login(b.ctx, tasks.LoginAttempt{CompanyID: b.company, LoginID: viaClient, Method: policy.MethodPassword})
	if err != nil {
		t.Fatal(err)
	}
	if res.Decision.Outcome != policy.OutcomeAllow || !res.DecidedAt.Equal(answered) {
		t.Fatalf("Login at 23:59:50: %+v", res)
	}
	b.clock.Set(midnight.Add(30 * time.Second))
	b.relock(t)
	if got := b.lockState(t, clientID); got.state != "locked" {
		t.Fatalf("the relock left %+v", got)
	}
	b.runCritical(t)
	b.run(t, rawAttempt(b.company, viaRaw, "password", answered, `,"decided_at":"`+rfc(answered)+`"`))
	for _, id := range []int64{clientID, rawID} {
		if got := b.lockState(t, id); got.state != "active" || !b.lastLogin(t, id).Equal(answered) {
			t.Errorf("account %d: %+v, login date %s; want active, logged in at 23:59:50", id, got, b.lastLogin(t, id))
		}
	}
}

// Hole 4: a raw unlock's deadline is its requested_at's midnight, clamped
// to the worker's clock; run after it, it changes nothing and says so.
func TestUnlockDeadlineIsTheRequests(t *testing.T) {
	b := setup(t)
	_, admin := b.account(t, accountOpts{admin: true, kind: policy.IDKindPlatform})
	_, late := b.account(t, accountOpts{kind: policy.IDKindPlatform})
	_, future := b.account(t, accountOpts{kind: policy.IDKindPlatform})
	b.lock(t, late, future)

	b.clock.Set(midnight.Add(10 * time.Second))
	b.run(t, unlockTask(t, tasks.AccountUnlock{CompanyID: b.company, ActorAccountID: admin, AccountIDs: []int64{late},
		RequestID: "late", RequestedAt: midnight.Add(-10 * time.Second)}))
	if got := b.lockState(t, late); got.state != "locked" {
		t.Errorf("an unlock run after its deadline: %+v, want still locked", got)
	}
	if n := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'unlock_expired' AND company_id = $1`, b.company); n != 1 {
		t.Errorf("unlock_expired events = %d, want 1", n)
	}

	// A requested_at ahead of the worker (a host's clock a day fast) cannot
	// stretch the unlock past the worker's own midnight.
	b.run(t, unlockTask(t, tasks.AccountUnlock{CompanyID: b.company, ActorAccountID: admin, AccountIDs: []int64{future},
		RequestID: "future", RequestedAt: b.clock.Now().Add(24 * time.Hour)}))
	if got := b.lockState(t, future); got.state != "unlocked_until" || !got.until.Equal(midnight.Add(24*time.Hour)) {
		t.Errorf("an unlock requested in the future: %+v, want until the next midnight", got)
	}
}

// Hole 5: through tasks.Client, only administrators who can act are
// listed, else the fallback contact; a raw unlock by one who cannot act is
// refused for good.
func TestOnlyAdministratorsWhoCanAct(t *testing.T) {
	b := setup(t)
	if _, err := b.client.UpsertCompany(b.ctx, tasks.Company{CompanyID: b.company, Version: 1, FallbackContact: "ヘルプデスク"}); err != nil {
		t.Fatal(err)
	}
	_, able := b.account(t, accountOpts{admin: true, kind: policy.IDKindPlatform, name: "有効 管理者"})
	_, locked := b.account(t, accountOpts{admin: true, kind: policy.IDKindPlatform, name: "ロック 管理者"})
	_, dormant := b.account(t, accountOpts{admin: true, kind: policy.IDKindPlatform, name: "休眠 管理者", lastLogin: 91 * 24 * time.Hour})
	b.lock(t, locked)
	user, userID := b.account(t, accountOpts{kind: policy.IDKindPlatform, lastLogin: 100 * 24 * time.Hour})
	b.lock(t, userID)

	res, err := b.client.Check(b.ctx, b.company, user, policy.MethodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Administrators) != 1 || res.Administrators[0].AccountID != able || res.Contact != "" {
		t.Errorf("Check: administrators %+v, contact %q; want %d only", res.Administrators, res.Contact, able)
	}
	b.lock(t, able)
	if res, _ = b.client.Check(b.ctx, b.company, user, policy.MethodPassword); len(res.Administrators) != 0 || res.Contact != "ヘルプデスク" {
		t.Errorf("Check without an able administrator: administrators %+v, contact %q", res.Administrators, res.Contact)
	}

	for _, actor := range []int64{locked, dormant} {
		err := b.process(unlockTask(t, tasks.AccountUnlock{CompanyID: b.company, ActorAccountID: actor, AccountIDs: []int64{userID}, RequestID: fmt.Sprint(actor)}))
		if !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("unlock by %d: %v, want a permanent refusal", actor, err)
		}
	}
	if got := b.lockState(t, userID); got.state != "locked" {
		t.Errorf("after refused unlocks: %+v", got)
	}
}

// Hole 6: a raw unlock naming an email ID is refused for good, with the
// ids and the reason on record.
func TestRawUnlockRefusesEmailIDs(t *testing.T) {
	b := setup(t)
	_, admin := b.account(t, accountOpts{admin: true, kind: policy.IDKindPlatform})
	_, email := b.account(t, accountOpts{kind: policy.IDKindEmail})
	_, platform := b.account(t, accountOpts{kind: policy.IDKindPlatform})
	b.lock(t, email, platform)
	err := b.process(unlockTask(t, tasks.AccountUnlock{CompanyID: b.company, ActorAccountID: admin, AccountIDs: []int64{platform, email}, RequestID: "r"}))
	if !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("unlock naming an email ID: %v, want a permanent refusal", err)
	}
	for _, id := range []int64{email, platform} {
		if got := b.lockState(t, id); got.state != "locked" {
			t.Errorf("account %d: %+v, want still locked", id, got)
		}
	}
	if n := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'task_rejected' AND company_id = $1
		AND detail->>'reason' LIKE $2`, b.company, fmt.Sprintf("%%accounts %d have email IDs%%", email)); n != 1 {
		t.Errorf("task_rejected events naming the email ID = %d, want 1", n)
	}
}
