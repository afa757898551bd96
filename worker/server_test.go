package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
)

// The whole path through a real asynq server: a host reports a dormant
// attempt, and the verification email and the alert arrive at Resend.
func TestWorkerServesLoginAttemptsEndToEnd(t *testing.T) {
	b := setup(t)
	recipientLogin, r := b.account(t, accountOpts{lastLogin: day})
	login, id := b.account(t, accountOpts{lastLogin: 100 * day})
	b.recipients(t, b.company, r)

	cfg := b.cfg
	cfg.Concurrency = 4
	cfg.TaskCheckInterval = 10 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	b.serve(t, cfg)

	if err := b.client.ReportLoginAttempt(b.ctx, tasks.LoginAttempt{
		CompanyID: b.company, LoginID: login, Method: policy.MethodPassword, IP: "198.51.100.1",
		UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
	}); err != nil {
		t.Fatal(err)
	}
	wait, stop := context.WithTimeout(b.ctx, 20*time.Second)
	defer stop()
	emails, err := b.resend.WaitFor(wait, 2)
	if err != nil {
		t.Fatalf("waiting for 2 emails: %v (got %d)", err, len(emails))
	}
	if len(b.emailsTo(login)) != 1 || len(b.emailsTo(recipientLogin)) != 1 {
		t.Fatalf("emails: %+v", emails)
	}
	if alert := b.emailsTo(recipientLogin)[0]; !strings.Contains(alert.Text, "スマホ") {
		t.Errorf("alert does not say スマホ:\n%s", alert.Text)
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE id = $1 AND lock_state = 'locked'`, id); got != 1 {
		t.Error("not locked")
	}
}

// A worker serves critical and every spread queue up to its maximum: a
// host that spreads attempts over three queues and one that does not are
// both served, and the worker's own emails keep their retention setting.
func TestWorkerServesSpreadQueues(t *testing.T) {
	b := setup(t)
	if _, err := b.inspect.DeleteAllCompletedTasks(tasks.QueueDefault); err != nil {
		t.Fatal(err)
	}
	// One company on critical and one on each spread queue.
	companies := []string{b.company}
	for seen := map[string]bool{}; len(seen) < 3; {
		co := b.newCompany(t)
		if q := tasks.CriticalQueue(co, 3); !seen[q] {
			seen[q] = true
			companies = append(companies, co)
		}
	}
	var logins []string
	for _, co := range companies {
		login, _ := b.account(t, accountOpts{company: co, lastLogin: 100 * day})
		logins = append(logins, login)
	}
	cfg := b.cfg
	cfg.Concurrency = 4
	cfg.TaskCheckInterval = 10 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.ServedCriticalQueues = 3
	cfg.Layout = tasks.Layout{CriticalQueues: 3, Retention: tasks.TaskRetention{Emails: time.Minute}}
	b.serve(t, cfg)

	spread := tasks.NewClient(asynq.NewClient(testenv.RedisOpt()), b.store, b.clock.Now, tasks.WithLayout(tasks.Layout{CriticalQueues: 3}))
	for i, co := range companies {
		c := spread
		if i == 0 {
			c = b.client // the plain critical queue
		}
		if err := c.ReportLoginAttempt(b.ctx, tasks.LoginAttempt{CompanyID: co, LoginID: logins[i], Method: policy.MethodPassword}); err != nil {
			t.Fatal(err)
		}
	}
	wait, stop := context.WithTimeout(b.ctx, 20*time.Second)
	defer stop()
	if emails, err := b.resend.WaitFor(wait, len(companies)); err != nil {
		t.Fatalf("waiting for %d emails: %v (got %d)", len(companies), err, len(emails))
	}
	for _, login := range logins {
		if len(b.emailsTo(login)) != 1 {
			t.Errorf("%s: %d emails", login, len(b.emailsTo(login)))
		}
	}
	done, err := b.inspect.ListCompletedTasks(tasks.QueueDefault)
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range done {
		if info.Retention != time.Minute {
			t.Errorf("email task %s kept %s, want TASK_RETENTION_EMAILS", info.ID, info.Retention)
		}
	}
}
