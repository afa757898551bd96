package worker_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
)

func (b *testBundle) runDirectory(t *testing.T, task *asynq.Task) {
	t.Helper()
	if err := b.process(task); err != nil {
		t.Fatalf("%s: %v", task.Type(), err)
	}
}

// hostRecord is an employee as the host would send it; the fixtures'
// accounts were created with the same values.
func (b *testBundle) hostRecord(company, login string, kind policy.IDKind, version int64) tasks.Account {
	a := tasks.Account{
		CompanyID: company, LoginID: login, Version: version, IDKind: string(kind), Name: "山田 太郎",
		CreatedAt: start.Add(-400 * day),
	}
	if kind == policy.IDKindEmail {
		a.Email = login
	}
	return a
}

func upsertTask(t *testing.T, a tasks.Account) *asynq.Task {
	t.Helper()
	task, err := tasks.NewUpsertAccountTask(a)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func retireTask(t *testing.T, company, login string, version int64) *asynq.Task {
	t.Helper()
	task, err := tasks.NewRetireAccountTask(tasks.Retirement{CompanyID: company, LoginID: login, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func permanent(err error) bool { return errors.Is(err, asynq.SkipRetry) }

// Version 2, then version 1 delivered late: version 2's values stay. The
// same event twice: one change, one audit event.
func TestUpsertAccountOutOfOrderAndTwice(t *testing.T) {
	b := setup(t)
	login := testenv.UniqueID("user") + "@example.com"
	v1 := b.hostRecord(b.company, login, policy.IDKindEmail, 1)
	v1.Department = "総務部"
	v2 := v1
	v2.Version, v2.Department, v2.CanManageEmployees = 2, "管理部", true

	b.runDirectory(t, upsertTask(t, v2))
	b.runDirectory(t, upsertTask(t, v1))
	var dept string
	var admin bool
	var id int64
	if err := b.db.QueryRow(`SELECT id, department, can_manage_employees FROM accounts WHERE company_id = $1 AND login_id = $2`,
		b.company, login).Scan(&id, &dept, &admin); err != nil {
		t.Fatal(err)
	}
	if dept != "管理部" || !admin {
		t.Errorf("after a late v1: %s admin=%v, want version 2's 管理部 admin=true", dept, admin)
	}

	v3 := v2
	v3.Version, v3.Name = 3, "山田 花子"
	task := upsertTask(t, v3)
	b.runDirectory(t, task)
	b.runDirectory(t, task)
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE account_id = $1 AND kind = 'account_updated'`, id); got != 1 {
		t.Errorf("account_updated events = %d, want 1", got)
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE id = $1 AND name = '山田 花子' AND host_version = 3`, id); got != 1 {
		t.Error("v3 not applied")
	}
	// Nothing about a directory event sends mail.
	if n := b.drain(t); n != 0 {
		t.Errorf("%d email tasks queued", n)
	}
}

// An address change with a verification link outstanding: the old link is
// refused; a new attempt mails the new address.
func TestAddressChangeRefusesTheOldLink(t *testing.T) {
	b := setup(t)
	login, id := b.account(t, accountOpts{lastLogin: 100 * day})
	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	b.drain(t)
	old := tokenOf(t, b.emailsTo(login)[0])

	moved := b.hostRecord(b.company, login, policy.IDKindEmail, 1)
	moved.Email = "new-" + login
	b.clock.Add(10 * time.Minute)
	b.runDirectory(t, upsertTask(t, moved))
	if _, err := b.client.Redeem(b.ctx, b.company, login, old, ""); !errors.Is(err, policy.ErrTokenRefused) {
		t.Fatalf("old link after the address changed: %v, want ErrTokenRefused", err)
	}
	if got := b.count(t, `SELECT count(*) FROM verification_tokens WHERE account_id = $1 AND revoked_reason = 'email_changed'`, id); got != 1 {
		t.Error("link not revoked as email_changed")
	}

	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	b.drain(t)
	fresh := b.emailsTo(moved.Email)
	if len(fresh) != 1 {
		t.Fatalf("emails to the new address = %d, want 1", len(fresh))
	}
	if got := len(b.emailsTo(login)); got != 1 {
		t.Errorf("emails to the old address = %d, want still 1", got)
	}
	if _, err := b.client.Redeem(b.ctx, b.company, login, tokenOf(t, fresh[0]), ""); err != nil {
		t.Errorf("the new address's link: %v", err)
	}
}

// Retired with a live link and as a login notification recipient: the
// link is refused, the recipient is gone, and a later attempt by the
// retired login ID locks nothing and alerts no one.
func TestRetiredAccountIsLeftAlone(t *testing.T) {
	b := setup(t)
	watcherLogin, watcher := b.account(t, accountOpts{lastLogin: day})
	leaverLogin, leaver := b.account(t, accountOpts{lastLogin: 100 * day})
	otherLogin, _ := b.account(t, accountOpts{lastLogin: 100 * day})
	b.recipients(t, b.company, watcher, leaver)

	// The leaver, dormant, tries: locked, a live link; the watcher alerted.
	b.run(t, b.attempt(t, b.company, leaverLogin, policy.MethodPassword))
	b.drain(t)
	link := tokenOf(t, b.emailsTo(leaverLogin)[0])
	if got := len(b.emailsTo(watcherLogin)); got != 1 {
		t.Fatalf("alerts to the watcher = %d, want 1", got)
	}

	b.clock.Add(time.Minute)
	b.runDirectory(t, retireTask(t, b.company, leaverLogin, 1))
	if _, err := b.client.Redeem(b.ctx, b.company, leaverLogin, link, ""); !errors.Is(err, policy.ErrTokenRefused) {
		t.Errorf("retired account's link: %v, want ErrTokenRefused", err)
	}
	if got := b.count(t, `SELECT count(*) FROM login_notification_recipients WHERE account_id = $1`, leaver); got != 0 {
		t.Error("still a login notification recipient")
	}

	// The retired login ID tries again later: nothing happens.
	mailsBefore := b.count(t, `SELECT count(*) FROM mails WHERE company_id = $1`, b.company)
	tokensBefore := b.count(t, `SELECT count(*) FROM verification_tokens WHERE account_id = $1`, leaver)
	b.clock.Add(2 * time.Hour)
	b.run(t, b.attempt(t, b.company, leaverLogin, policy.MethodPassword))
	if n := b.drain(t); n != 0 {
		t.Errorf("%d email tasks after the retired account's attempt", n)
	}
	if got := b.count(t, `SELECT count(*) FROM mails WHERE company_id = $1`, b.company); got != mailsBefore {
		t.Errorf("mails %d → %d after the retired account's attempt", mailsBefore, got)
	}
	if got := b.count(t, `SELECT count(*) FROM verification_tokens WHERE account_id = $1`, leaver); got != tokensBefore {
		t.Error("a retired account got a new link")
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE account_id = $1 AND kind = 'locked'`, leaver); got != 1 {
		t.Errorf("locked events = %d, want the 1 from before the retirement", got)
	}

	// Another dormant account's attempt alerts the watcher, not the leaver.
	b.run(t, b.attempt(t, b.company, otherLogin, policy.MethodPassword))
	b.drain(t)
	if got := len(b.emailsTo(watcherLogin)); got != 2 {
		t.Errorf("alerts to the watcher = %d, want 2", got)
	}
	if got := len(b.emailsTo(leaverLogin)); got != 1 {
		t.Errorf("mails to the leaver = %d, want only the first link", got)
	}
}

// Login IDs are unique within a company, not across: the same ID in two
// companies is two accounts, and what happens to one leaves the other.
func TestSameLoginIDInTwoCompanies(t *testing.T) {
	b := setup(t)
	other := b.newCompany(t)
	const login = "E0100"
	for _, co := range []string{b.company, other} {
		b.runDirectory(t, upsertTask(t, b.hostRecord(co, login, policy.IDKindPlatform, 1)))
	}
	ids := map[string]int64{}
	for _, co := range []string{b.company, other} {
		var id int64
		if err := b.db.QueryRow(`SELECT id FROM accounts WHERE company_id = $1 AND login_id = $2`, co, login).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[co] = id
	}
	if ids[b.company] == ids[other] {
		t.Fatal("one account for two companies")
	}
	state := func(co string) string {
		var s string
		if err := b.db.QueryRow(`SELECT lock_state || '/' || status FROM accounts WHERE id = $1`, ids[co]).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Never logged in, created 400 days ago: dormant. The attempt locks one.
	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	if got, want := state(b.company), "locked/active"; got != want {
		t.Errorf("attempted one = %s, want %s", got, want)
	}
	if got, want := state(other), "active/active"; got != want {
		t.Errorf("the other = %s, want %s", got, want)
	}
	b.runDirectory(t, retireTask(t, other, login, 2))
	if got, want := state(other), "active/retired"; got != want {
		t.Errorf("retired one = %s, want %s", got, want)
	}
	if got, want := state(b.company), "locked/active"; got != want {
		t.Errorf("after retiring the other: %s, want %s", got, want)
	}
}

// Bad settings are a permanent failure naming the field, and change
// nothing.
func TestBadCompanySettingsFailPermanently(t *testing.T) {
	b := setup(t)
	before := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'task_rejected'`)
	cases := map[string]string{
		"time_zone":       `{"company_id":"` + b.company + `","version":5,"name":"Changed","time_zone":"Asia/Tokio"}`,
		"inactivity_days": `{"company_id":"` + b.company + `","version":5,"name":"Changed","inactivity_days":0}`,
		"locale":          `{"company_id":"` + b.company + `","version":5,"name":"Changed","locale":"xx"}`,
	}
	for field, payload := range cases {
		err := b.process(asynq.NewTask(tasks.TypeUpsertCompany, []byte(payload)))
		if !permanent(err) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v, want a permanent failure naming it", field, err)
		}
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'task_rejected'`) - before; got != len(cases) {
		t.Errorf("task_rejected events = %d, want %d", got, len(cases))
	}
	if got := b.count(t, `SELECT count(*) FROM companies WHERE id = $1 AND name = 'Example' AND time_zone = 'Asia/Tokyo'
		AND inactivity_days = 90 AND locale = 'ja' AND host_version = 0`, b.company); got != 1 {
		t.Error("a refused event changed the company")
	}
	// The same settings, valid, apply.
	task, err := tasks.NewUpsertCompanyTask(tasks.Company{CompanyID: b.company, Version: 5, Name: "Changed", TimeZone: "Asia/Seoul", InactivityDays: 60, Locale: "en"})
	if err != nil {
		t.Fatal(err)
	}
	b.runDirectory(t, task)
	if got := b.count(t, `SELECT count(*) FROM companies WHERE id = $1 AND time_zone = 'Asia/Seoul' AND inactivity_days = 60 AND locale = 'en'`, b.company); got != 1 {
		t.Error("valid settings not applied")
	}
}

// An employee's event may run before its new company's: it is retried,
// and succeeds once the company exists.
func TestAccountBeforeItsCompanyIsRetried(t *testing.T) {
	b := setup(t)
	company := testenv.UniqueID("co")
	task := upsertTask(t, b.hostRecord(company, "E1", policy.IDKindPlatform, 1))
	err := b.process(task)
	if err == nil || permanent(err) || !errors.Is(err, policy.ErrNotFound) {
		t.Fatalf("before the company: %v, want a retryable not-found", err)
	}
	ct, err := tasks.NewUpsertCompanyTask(tasks.Company{CompanyID: company, Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	b.runDirectory(t, ct)
	b.runDirectory(t, task)
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE company_id = $1 AND login_id = 'E1'`, company); got != 1 {
		t.Error("account not created on the retry")
	}
}

// failures signals the worker's permanent failures: the one "task
// rejected" line each, with its reason.
type failures struct {
	slog.Handler
	ch chan string
}

func (f failures) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "task rejected" {
		var msg string
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "reason" {
				msg = a.Value.String()
			}
			return true
		})
		f.ch <- msg
	}
	return nil
}

func (f failures) Enabled(context.Context, slog.Level) bool { return true }
func (f failures) WithAttrs([]slog.Attr) slog.Handler       { return f }

// On its last try, an employee's event whose company never appeared is
// rejected for good, with the reason recorded.
func TestAccountOfAnUnknownCompanyIsRejectedOnTheLastTry(t *testing.T) {
	b := setup(t)
	company := testenv.UniqueID("nowhere")
	cfg := b.cfg
	ch := make(chan string, 4)
	cfg.Logger = slog.New(failures{Handler: slog.DiscardHandler, ch: ch})
	cfg.Concurrency, cfg.TaskCheckInterval, cfg.ShutdownTimeout = 2, 10*time.Millisecond, 5*time.Second
	b.serve(t, cfg)

	q := asynq.NewClient(testenv.RedisOpt())
	defer q.Close()
	if _, err := q.Enqueue(upsertTask(t, b.hostRecord(company, "E1", policy.IDKindPlatform, 1)), asynq.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	wait, stop := context.WithTimeout(b.ctx, 20*time.Second)
	defer stop()
	select {
	case msg := <-ch:
		if !strings.Contains(msg, "not found") {
			t.Errorf("failure = %s", msg)
		}
	case <-wait.Done():
		t.Fatal("the task was not rejected")
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'task_rejected'
		AND detail->>'task_type' = $1 AND detail->>'reason' LIKE '%' || $2 || '%'`, tasks.TypeUpsertAccount, company); got != 1 {
		t.Errorf("task_rejected events = %d, want 1", got)
	}
}

// An administrator whose employee-management permission is removed is no
// longer listed to locked users, and can no longer unlock.
func TestRemovedPermissionEndsUnlocking(t *testing.T) {
	b := setup(t)
	adminLogin, admin := b.account(t, accountOpts{kind: policy.IDKindPlatform, admin: true, lastLogin: day, dept: "総務部"})
	lockedLogin, locked := b.account(t, accountOpts{kind: policy.IDKindPlatform, lastLogin: 100 * day})
	b.lock(t, locked)
	res, err := b.client.Check(b.ctx, b.company, lockedLogin, policy.MethodPassword)
	if err != nil || len(res.Administrators) != 1 || res.Administrators[0].AccountID != admin {
		t.Fatalf("before: administrators %+v, %v", res.Administrators, err)
	}

	demoted := b.hostRecord(b.company, adminLogin, policy.IDKindPlatform, 1)
	demoted.Department = "総務部"
	b.runDirectory(t, upsertTask(t, demoted))

	if res, err := b.client.Check(b.ctx, b.company, lockedLogin, policy.MethodPassword); err != nil || len(res.Administrators) != 0 {
		t.Errorf("after: administrators %+v, %v", res.Administrators, err)
	}
	err = b.process(unlockTask(t, tasks.AccountUnlock{CompanyID: b.company, ActorAccountID: admin, AccountIDs: []int64{locked}}))
	if !permanent(err) || !errors.Is(err, policy.ErrForbidden) {
		t.Errorf("unlock by the ex-administrator: %v, want a permanent ErrForbidden", err)
	}
	if got := b.lockState(t, locked).state; got != "locked" {
		t.Errorf("account is %s, want still locked", got)
	}
	if err := b.store.ReplaceLoginNotificationRecipients(b.ctx, b.company, admin, []int64{admin}, start, ""); !errors.Is(err, policy.ErrForbidden) {
		t.Errorf("recipients set by the ex-administrator: %v, want ErrForbidden", err)
	}
}

// syncBuffer is a log sink the worker's goroutines may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A rejected task says so once: one line at WARN or above, with its reason,
// not the handler's, asynq's and the error handler's three.
func TestRejectedTaskLogsOneLine(t *testing.T) {
	b := setup(t)
	var logs syncBuffer
	cfg := b.cfg
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.Concurrency, cfg.TaskCheckInterval, cfg.ShutdownTimeout = 2, 10*time.Millisecond, 5*time.Second
	b.serve(t, cfg)
	q := asynq.NewClient(testenv.RedisOpt())
	defer q.Close()
	info, err := q.Enqueue(asynq.NewTask(tasks.TypeLoginAttempt, []byte(`{"company_id":"x"`)), asynq.Queue(tasks.QueueCritical))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "task rejected") {
		if time.Now().After(deadline) {
			t.Fatalf("no rejection logged:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Let asynq finish archiving it, which is where its own line came from.
	for {
		if ti, err := b.inspect.GetTaskInfo(tasks.QueueCritical, info.ID); err == nil && ti.State == asynq.TaskStateArchived {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rejected task was not archived")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The line names the task, as every line a handler logs does.
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "task rejected") &&
			(!strings.Contains(line, `"task_id":"`+info.ID+`"`) || !strings.Contains(line, `"task_type":"login:attempt"`) || !strings.Contains(line, `"retry":0`)) {
			t.Errorf("the rejection does not name its task: %s", line)
		}
	}
	var loud int
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if (strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`)) && !strings.Contains(line, "started") {
			loud++
		}
	}
	if loud != 1 {
		t.Errorf("%d lines at WARN or above for one rejected task, want 1:\n%s", loud, logs.String())
	}
}
