package faults

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
)

// Two worker processes against one Redis and one Postgres, given a burst
// of every kind of task a host sends: each task runs once, on one of them,
// and each effect happens once. This is the horizontal scaling SCALING.md
// describes.
func TestTwoWorkersDoNothingTwice(t *testing.T) {
	e := newEnv(t, envOpts{})
	co := e.company(t)
	_, r1 := e.account(t, co, acct{})
	_, r2 := e.account(t, co, acct{})
	e.recipients(t, co, r1, r2)
	_, admin := e.account(t, co, acct{kind: policy.IDKindPlatform, admin: true})

	var burst []*asynq.Task
	var keys []string
	add := func(task *asynq.Task, key string) {
		burst = append(burst, task)
		if key != "" {
			keys = append(keys, key)
		}
	}
	attempts := func(login string, ms ...policy.Method) {
		for _, m := range ms {
			add(attempt(t, co, login, m))
		}
	}
	for range 30 { // dormant email IDs: locked, one link, one alert per recipient
		login, _ := e.account(t, co, acct{idle: 120 * day})
		attempts(login, policy.MethodPassword, policy.MethodRemembered, policy.MethodPassword)
	}
	for range 20 { // dormant platform IDs: locked, alerts only
		login, _ := e.account(t, co, acct{kind: policy.IDKindPlatform, idle: 120 * day})
		attempts(login, policy.MethodPassword, policy.MethodPassword)
	}
	var retire []string
	for i := range 50 { // active: the login date moves
		login, _ := e.account(t, co, acct{idle: 3 * day})
		attempts(login, policy.MethodPassword, policy.MethodRemembered)
		if i < 5 {
			retire = append(retire, login)
		}
	}
	var locked []int64
	for range 20 { // locked platform IDs with a contact address, unlocked two at a time
		_, id := e.account(t, co, acct{kind: policy.IDKindPlatform, idle: 120 * day, email: testenv.UniqueID("contact") + "@example.com"})
		locked = append(locked, id)
	}
	if _, err := e.db.Exec(`UPDATE accounts SET lock_state = 'locked', lock_reason = 'dormant', locked_at = now() WHERE id = ANY($1)`, int64s(locked)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(locked); i += 2 {
		task, err := tasks.NewAccountUnlockTask(tasks.AccountUnlock{CompanyID: co, ActorAccountID: admin, AccountIDs: locked[i : i+2], RequestID: "unlock-" + strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		add(task, "")
	}
	for i := range 30 { // new employees from the host's directory
		task, err := tasks.NewUpsertAccountTask(tasks.Account{
			CompanyID: co, LoginID: fmt.Sprintf("new%02d@example.com", i), Version: 1, IDKind: "email",
			Name: "新入 社員", CreatedAt: time.Now().Add(-day),
		})
		if err != nil {
			t.Fatal(err)
		}
		add(task, "")
	}
	for _, login := range retire {
		task, err := tasks.NewRetireAccountTask(tasks.Retirement{CompanyID: co, LoginID: login, Version: 1})
		if err != nil {
			t.Fatal(err)
		}
		add(task, "")
	}

	w1 := e.worker(t, "worker-1", nil)
	w2 := e.worker(t, "worker-2", nil)
	w1.WaitLog(t, "worker started", started)
	w2.WaitLog(t, "worker started", started)
	for _, task := range burst {
		e.enqueue(t, task)
	}
	const (
		verifications = 30
		alerts        = (30 + 20) * 2
		notices       = 20
	)
	e.waitRecorded(t, keys, retried)
	e.waitMailsSettled(t, co, verifications+alerts+notices, retried)
	waitUntil(t, retried, "queues drained", e.queuesIdle)
	// The "task done" line follows the handler's return by microseconds;
	// the queues are idle only after asynq recorded every task as done.
	// The links were sent by their attempts' tasks, with no task of their
	// own.
	want := len(burst) + alerts + notices
	waitUntil(t, margin, "every task logged", func() (bool, error) {
		n := 0
		for _, c := range tasksDone(w1, w2) {
			n += c
		}
		return n >= want, fmt.Errorf("%d of %d", n, want)
	})

	done := tasksDone(w1, w2)
	for id, n := range done {
		if n != 1 {
			t.Errorf("task %s ran %d times", id, n)
		}
	}
	if got := len(done); got != want {
		t.Errorf("tasks done = %d, want %d", got, want)
	}
	for _, w := range []*proc{w1, w2} {
		if n := len(tasksDone(w)); n == 0 {
			t.Errorf("%s ran no task: the burst did not spread over both workers", w.name)
		} else {
			t.Logf("%s ran %d tasks", w.name, n)
		}
		if failed := w.Lines("task failed"); len(failed) > 0 {
			t.Errorf("%s: %d tasks failed, first: %v", w.name, len(failed), failed[0])
		}
	}

	e.check(t, co, lockInvariants)
	e.check(t, co, mailInvariants)
	e.checkDelivered(t, co)
	if got, want := e.resend.Requests(), e.resend.Count(); got != want {
		t.Errorf("Resend saw %d requests for %d deliveries: a mail was sent twice", got, want)
	}
	if got, want := e.count(t, `SELECT count(*) FROM accounts WHERE company_id = $1 AND lock_state = 'locked'`, co), 50; got != want {
		t.Errorf("locked accounts = %d, want %d", got, want)
	}
	if got := e.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'unlocked' AND account_id = ANY($1)`, int64s(locked)); got != len(locked) {
		t.Errorf("unlocked events = %d, want %d", got, len(locked))
	}
	if got := e.count(t, `SELECT count(*) FROM accounts WHERE id = ANY($1) AND lock_state = 'unlocked_until'`, int64s(locked)); got != len(locked) {
		t.Errorf("unlocked accounts = %d, want %d", got, len(locked))
	}
	if got := e.count(t, `SELECT count(*) FROM accounts WHERE company_id = $1 AND login_id LIKE 'new%'`, co); got != 30 {
		t.Errorf("new employees = %d, want 30", got)
	}
	if got := e.count(t, `SELECT count(*) FROM accounts WHERE company_id = $1 AND status = 'retired'`, co); got != len(retire) {
		t.Errorf("retired = %d, want %d", got, len(retire))
	}
	if got := e.rejectedSince(t); got != 0 {
		t.Errorf("%d tasks rejected", got)
	}
}

// queuesIdle reports whether no task is pending, running or waiting for
// a retry in any queue.
func (e *env) queuesIdle() (bool, error) {
	queues, err := e.inspect.Queues()
	if err != nil {
		return false, err
	}
	for _, q := range queues {
		info, err := e.inspect.GetQueueInfo(q)
		if err != nil {
			return false, err
		}
		if n := info.Pending + info.Active + info.Scheduled + info.Retry; n > 0 {
			return false, fmt.Errorf("%s: %d pending, %d active, %d scheduled, %d retry", q, info.Pending, info.Active, info.Scheduled, info.Retry)
		}
	}
	return true, nil
}

// int64s is ids as a Postgres array literal.
func int64s(ids []int64) string { return pgArray(ids) }
