package admin

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/mail"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
	"github.com/dormancy/dormancy/worker"
)

// The tests in this file walk the lock decision through the HTTP API and
// then the worker, on the same injected clock: what the API answered is
// what the worker records, whatever runs in between.

// midnight is the end of start's day in Tokyo: 2026-11-27 00:00 JST.
var midnight = time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC)

// worker returns the worker's task routing on the bundle's store and clock.
func (b *testBundle) worker(t *testing.T) *asynq.ServeMux {
	t.Helper()
	return b.workerSending(t, mail.NewDev(slog.New(slog.NewJSONHandler(io.Discard, nil))))
}

// workerSending is worker with its mail handed to sender.
func (b *testBundle) workerSending(t *testing.T, sender worker.Sender) *asynq.ServeMux {
	t.Helper()
	discard := slog.New(slog.NewJSONHandler(io.Discard, nil))
	h := worker.NewHandlers(worker.Config{TokenSecret: testenv.TokenSecret,
		Redis: testenv.RedisOpt(), Store: b.store, Sender: sender,
		Links: worker.Links{Base: mustURL("https://platform.example.com/")}, Logger: discard, Now: b.clock.Now,
	})
	t.Cleanup(h.Close)
	mux := asynq.NewServeMux()
	h.Register(mux)
	return mux
}

// runTask takes one queued task out of Redis and runs it as a worker
// would, at the clock's time.
func (b *testBundle) runTask(t *testing.T, mux *asynq.ServeMux, queue, taskID string) {
	t.Helper()
	info, err := b.inspect.GetTaskInfo(queue, taskID)
	if err != nil {
		t.Fatalf("task %s not queued: %v", taskID, err)
	}
	if err := b.inspect.DeleteTask(queue, taskID); err != nil {
		t.Fatal(err)
	}
	if err := mux.ProcessTask(b.ctx, asynq.NewTask(info.Type, info.Payload)); err != nil {
		t.Fatalf("%s: %v", info.Type, err)
	}
}

// platformAccount adds an active platform ID whose last login was ago.
func (b *testBundle) platformAccount(t *testing.T, company string, ago time.Duration) int64 {
	t.Helper()
	id, err := b.store.UpsertAccount(b.ctx, postgres.AccountRecord{
		CompanyID: company, LoginID: testenv.UniqueID("u"), IDKind: policy.IDKindPlatform, Name: "社員",
		CreatedAt: start.AddDate(-2, 0, 0), LastLoginAt: b.clock.Now().Add(-ago),
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

type accountState struct {
	state     string
	lastLogin time.Time
	until     *time.Time
}

func (b *testBundle) stateOf(t *testing.T, id int64) accountState {
	t.Helper()
	var s accountState
	if err := b.db.QueryRow(`SELECT lock_state, last_login_at, unlocked_until FROM accounts WHERE id = $1`, id).
		Scan(&s.state, &s.lastLogin, &s.until); err != nil {
		t.Fatal(err)
	}
	return s
}

// login posts a login attempt and returns the answer and the queued task.
func (b *testBundle) loginAPI(t *testing.T, company string, account int64, method, extra string) (loginAttemptResponse, string) {
	t.Helper()
	body := fmt.Sprintf(`{"company_id":%q,"login_id":%q,"method":%q%s}`, company, loginIDOf(t, b, account), method, extra)
	w := b.api("POST", "/api/v1/login-attempts", body, 0)
	if w.Code != http.StatusOK {
		t.Fatalf("login-attempts: %d %s", w.Code, w.Body.String())
	}
	var r loginAttemptResponse
	mustJSON(t, w, &r)
	return r, tasks.LoginAttemptTaskID(r.AttemptKey)
}

// Hole 1: naming the verification link in a login report lifts nothing.
func TestAPIVerificationLinkMethodUnlocksNothing(t *testing.T) {
	b := setup(t)
	mux := b.worker(t)
	before := b.stateOf(t, b.a.lockedEmail)
	r, task := b.loginAPI(t, b.a.id, b.a.lockedEmail, "verification_link", "")
	if r.Outcome != "verify_by_email" || !r.Locked {
		t.Errorf("answer = %+v, want verify_by_email, locked", r)
	}
	b.runTask(t, mux, tasks.QueueCritical, task)
	if got := b.stateOf(t, b.a.lockedEmail); got.state != "locked" || !got.lastLogin.Equal(before.lastLogin) {
		t.Errorf("after the worker: %+v, want still locked with the login date unchanged", got)
	}
	if n := testenv.Count(t, b.db, `SELECT count(*) FROM audit_events WHERE account_id = $1 AND kind IN ('activated', 'unlocked', 'verification_used')`, b.a.lockedEmail); n != 0 {
		t.Errorf("%d unlock events, want 0", n)
	}
}

// Hole 2: a back-dated "at" neither reopens a lapsed unlock nor moves the
// dormancy threshold; the worker records what the API answered.
func TestAPIBackdatedAtDecidesNothing(t *testing.T) {
	b := setup(t)
	mux := b.worker(t)

	// An unlock that lapsed at midnight, reported at 00:01 as 23:59.
	b.exec(t, `UPDATE accounts SET lock_state = 'unlocked_until', lock_reason = NULL, unlocked_until = $1 WHERE id = $2`, midnight, b.a.lockedPlatform)
	b.clock.Set(midnight.Add(time.Minute))
	at := fmt.Sprintf(`,"at":%q`, midnight.Add(-time.Minute).Format(time.RFC3339))
	r, task := b.loginAPI(t, b.a.id, b.a.lockedPlatform, "password", at)
	if r.Outcome != "ask_administrator" || !r.DecidedAt.Equal(b.clock.Now()) {
		t.Errorf("answer = %+v, want ask_administrator decided now", r)
	}
	b.runTask(t, mux, tasks.QueueCritical, task)
	if got := b.stateOf(t, b.a.lockedPlatform); got.state == "active" || got.state == "unlocked_until" && got.until.After(b.clock.Now()) {
		t.Errorf("after the worker: %+v, want not let in", got)
	}
	if r, _ := b.loginAPI(t, b.a.id, b.a.lockedPlatform, "password", ""); r.Outcome != "ask_administrator" {
		t.Errorf("the next login: %s, want ask_administrator", r.Outcome)
	}

	// An account one minute past the 90 days, reported two minutes back.
	justDormant := b.platformAccount(t, b.a.id, 90*24*time.Hour+time.Minute)
	at = fmt.Sprintf(`,"at":%q`, b.clock.Now().Add(-2*time.Minute).Format(time.RFC3339))
	r, task = b.loginAPI(t, b.a.id, justDormant, "password", at)
	if r.Outcome != "ask_administrator" {
		t.Errorf("just dormant: %s, want ask_administrator", r.Outcome)
	}
	b.runTask(t, mux, tasks.QueueCritical, task)
	if got := b.stateOf(t, justDormant); got.state != "locked" {
		t.Errorf("just dormant after the worker: %+v, want locked", got)
	}
}

// Hole 3: a login answered before midnight counts though the relock job
// ran before the worker reached it.
func TestAPILoginBeforeMidnightCountsAfterTheRelock(t *testing.T) {
	b := setup(t)
	mux := b.worker(t)
	b.exec(t, `UPDATE accounts SET lock_state = 'unlocked_until', lock_reason = NULL, unlocked_until = $1 WHERE id = $2`, midnight, b.a.lockedPlatform)
	b.clock.Set(midnight.Add(-10 * time.Second))
	r, task := b.loginAPI(t, b.a.id, b.a.lockedPlatform, "password", "")
	if r.Outcome != "allow" {
		t.Fatalf("answer = %+v, want allow", r)
	}
	b.clock.Set(midnight.Add(30 * time.Second))
	relock, err := tasks.NewMaintenanceTask(tasks.TypeMaintenanceRelock, tasks.Maintenance{Period: b.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := mux.ProcessTask(b.ctx, relock); err != nil {
		t.Fatal(err)
	}
	if got := b.stateOf(t, b.a.lockedPlatform); got.state != "locked" {
		t.Fatalf("the relock left %+v", got)
	}
	b.runTask(t, mux, tasks.QueueCritical, task)
	got := b.stateOf(t, b.a.lockedPlatform)
	if got.state != "active" || !got.lastLogin.Equal(midnight.Add(-10*time.Second)) {
		t.Errorf("after the worker: %+v, want active, logged in at 23:59:50", got)
	}
}

// Hole 4: the unlock's deadline is the request's local midnight; a task
// run after it changes nothing and its status says so.
func TestAPIUnlockDeadlineBelongsToTheClick(t *testing.T) {
	b := setup(t)
	mux := b.worker(t)
	unlock := func(requestID string, ids ...int64) string {
		t.Helper()
		body := fmt.Sprintf(`{"account_ids":[%s],"request_id":%q}`, strings.Trim(strings.Join(strings.Fields(fmt.Sprint(ids)), ","), "[]"), requestID)
		w := b.api("POST", "/api/v1/companies/"+b.a.id+"/unlocks", body, b.a.admin)
		if w.Code != http.StatusAccepted {
			t.Fatalf("unlock: %d %s", w.Code, w.Body.String())
		}
		var r struct {
			TaskID string `json:"task_id"`
		}
		mustJSON(t, w, &r)
		return r.TaskID
	}
	status := func(taskID string) unlockStatusResponse {
		t.Helper()
		w := b.api("GET", "/api/v1/companies/"+b.a.id+"/unlocks/"+taskID, "", b.a.admin)
		if w.Code != http.StatusOK {
			t.Fatalf("status: %d %s", w.Code, w.Body.String())
		}
		var r unlockStatusResponse
		mustJSON(t, w, &r)
		return r
	}

	// Clicked at 23:59:50, run at 00:00:10: nothing changes.
	b.clock.Set(midnight.Add(-10 * time.Second))
	late := unlock("click-1", b.a.lockedPlatform)
	b.clock.Set(midnight.Add(time.Second))
	if again := unlock("click-1", b.a.lockedPlatform); again != late {
		t.Errorf("a double click across midnight queued %s and %s", late, again)
	}
	b.clock.Set(midnight.Add(10 * time.Second))
	b.runTask(t, mux, tasks.QueueCritical, late)
	if got := b.stateOf(t, b.a.lockedPlatform); got.state != "locked" {
		t.Errorf("after a late unlock: %+v, want still locked", got)
	}
	if n := testenv.Count(t, b.db, `SELECT count(*) FROM audit_events WHERE kind = 'unlock_expired' AND detail->>'task_id' = $1`, late); n != 1 {
		t.Errorf("unlock_expired events = %d, want 1", n)
	}
	if s := status(late); s.State != "completed" || s.Outcome != "expired" || s.Unlocked != 0 || s.UnlockedUntil == nil || !s.UnlockedUntil.Equal(midnight) {
		t.Errorf("status of the late unlock = %+v", s)
	}

	// Clicked at 10:00 the next day and run at once: until that midnight.
	b.clock.Set(midnight.Add(10 * time.Hour))
	onTime := unlock("click-2", b.a.lockedPlatform)
	b.runTask(t, mux, tasks.QueueCritical, onTime)
	next := midnight.Add(24 * time.Hour)
	if got := b.stateOf(t, b.a.lockedPlatform); got.state != "unlocked_until" || got.until == nil || !got.until.Equal(next) {
		t.Errorf("after an unlock on time: %+v, want unlocked until %s", got, next)
	}
	if s := status(onTime); s.State != "completed" || s.Outcome != "unlocked" || s.Unlocked != 1 || s.UnlockedUntil == nil || !s.UnlockedUntil.Equal(next) {
		t.Errorf("status of the unlock = %+v", s)
	}
}

// Hole 5: only administrators who can act are listed and accepted; with
// none, the company's fallback contact is shown.
func TestAPIOnlyAdministratorsWhoCanAct(t *testing.T) {
	b := setup(t)
	w := b.api("PUT", "/api/v1/companies/"+b.a.id, `{"version":2,"fallback_contact":"情報システム部 内線 1234"}`, 0)
	if w.Code != http.StatusOK {
		t.Fatalf("company upsert: %d %s", w.Code, w.Body.String())
	}
	r, _ := b.loginAPI(t, b.a.id, b.a.lockedPlatform, "password", "")
	if len(r.Administrators) != 1 || r.Administrators[0].AccountID != b.a.admin || r.Contact != "" {
		t.Errorf("with an able administrator: %+v", r)
	}

	// Past the inactivity period (not yet swept): neither listed nor accepted.
	b.exec(t, `UPDATE accounts SET last_login_at = $1 WHERE id = $2`, start.AddDate(0, 0, -91), b.a.admin)
	r, _ = b.loginAPI(t, b.a.id, b.a.lockedPlatform, "password", "")
	if len(r.Administrators) != 0 || r.Contact != "情報システム部 内線 1234" {
		t.Errorf("with a dormant administrator: administrators %+v, contact %q", r.Administrators, r.Contact)
	}
	if w := b.api("POST", "/api/v1/companies/"+b.a.id+"/unlocks", `{"account_ids":[`+id(b.a.lockedPlatform)+`]}`, b.a.admin); w.Code != http.StatusForbidden {
		t.Errorf("unlock by a dormant administrator: %d, want 403", w.Code)
	}

	// Locked: the same.
	b.exec(t, `UPDATE accounts SET last_login_at = $1 WHERE id = $2`, start.Add(-time.Hour), b.a.admin)
	b.lock(t, b.a.admin)
	r, _ = b.loginAPI(t, b.a.id, b.a.lockedPlatform, "password", "")
	if len(r.Administrators) != 0 || r.Contact == "" {
		t.Errorf("with a locked administrator: %+v", r)
	}
	if w := b.api("POST", "/api/v1/companies/"+b.a.id+"/unlocks", `{"account_ids":[`+id(b.a.lockedPlatform)+`]}`, b.a.admin); w.Code != http.StatusForbidden {
		t.Errorf("unlock by a locked administrator: %d, want 403", w.Code)
	}
}

// Hole 6: an unlock naming email IDs is refused before anything is queued.
func TestAPIUnlockRefusesEmailIDs(t *testing.T) {
	b := setup(t)
	before := b.snapshot(t)
	body := `{"account_ids":[` + id(b.a.lockedPlatform) + `,` + id(b.a.lockedEmail) + `]}`
	w := b.api("POST", "/api/v1/companies/"+b.a.id+"/unlocks", body, b.a.admin)
	if w.Code != http.StatusBadRequest {
		t.Fatalf("unlock naming an email ID: %d %s, want 400", w.Code, w.Body.String())
	}
	e := apiErrorOf(t, w)
	if e.Field != "account_ids" || !strings.Contains(e.Message, id(b.a.lockedEmail)) || strings.Contains(e.Message, id(b.a.lockedPlatform)) {
		t.Errorf("error = %+v, want account_ids naming %d only", e, b.a.lockedEmail)
	}
	if after := b.snapshot(t); after != before {
		t.Errorf("something changed:\n%s\n%s", before, after)
	}
}
