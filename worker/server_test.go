package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

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
