package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
	"github.com/dormancy/dormancy/worker"
)

// pendingEmail runs an attempt that locks an email-ID account, with Resend
// refusing (422) the attempt's own try at the link, which leaves the link
// to its task at once, and returns that task, removed from the queue.
func (b *testBundle) pendingEmail(t *testing.T) (*asynq.Task, int64) {
	t.Helper()
	login, id := b.account(t, accountOpts{lastLogin: 100 * day})
	b.resend.FailNext(1, 422, nil)
	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	if got := b.count(t, `SELECT count(*) FROM mails WHERE account_id = $1 AND status = 'pending'`, id); got != 1 {
		t.Fatalf("pending mails after a failed first try = %d, want 1", got)
	}
	infos, err := b.inspect.ListPendingTasks(tasks.QueueDefault)
	if err != nil || len(infos) != 1 {
		t.Fatalf("pending email tasks: %d, %v", len(infos), err)
	}
	b.inspect.DeleteTask(tasks.QueueDefault, infos[0].ID)
	return asynq.NewTask(infos[0].Type, infos[0].Payload), id
}

func TestResend500IsRetriedAndDeliveredOnce(t *testing.T) {
	b := setup(t)
	task, id := b.pendingEmail(t)
	b.resend.FailNext(1, 500, nil)
	err := b.process(task)
	if err == nil || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("500: err = %v, want a retryable error", err)
	}
	if got := b.count(t, `SELECT count(*) FROM mails WHERE account_id = $1 AND status = 'pending'`, id); got != 1 {
		t.Error("mail not left pending for the retry")
	}
	b.run(t, task) // the retry
	b.run(t, task) // and a duplicate delivery of it
	if got := b.resend.Count(); got != 1 {
		t.Errorf("delivered %d times, want 1", got)
	}
	if got := b.count(t, `SELECT count(*) FROM mails WHERE account_id = $1 AND status = 'sent'`, id); got != 1 {
		t.Error("mail not marked sent")
	}
}

func TestResend422IsPermanentAndAudited(t *testing.T) {
	b := setup(t)
	task, id := b.pendingEmail(t)
	b.resend.FailNext(1, 422, nil)
	if err := b.process(task); !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("422: err = %v, want SkipRetry", err)
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE account_id = $1 AND kind = 'mail_failed'`, id); got != 1 {
		t.Errorf("mail_failed events = %d, want 1", got)
	}
	if got := b.count(t, `SELECT count(*) FROM mails WHERE account_id = $1 AND status = 'failed'`, id); got != 1 {
		t.Error("mail not marked failed")
	}
	// The link was never delivered, so it must not stay usable.
	if got := b.count(t, `SELECT count(*) FROM verification_tokens WHERE account_id = $1 AND revoked_reason = 'undelivered'`, id); got != 1 {
		t.Error("undelivered link not revoked")
	}
	if err := b.process(task); err != nil {
		t.Errorf("rerun of a failed mail: %v, want nil (nothing to do)", err)
	}
	if got := b.resend.Count(); got != 0 {
		t.Errorf("delivered %d", got)
	}
}

func TestResendHangIsRetryable(t *testing.T) {
	b := setup(t)
	task, _ := b.pendingEmail(t)
	b.resend.HangNext(1)
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	err := b.h.Email(ctx, task) // the sender's own 2 s timeout ends the hang
	if err == nil || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("hang: err = %v, want a retryable error", err)
	}
	b.run(t, task)
	if got := b.resend.Count(); got != 1 {
		t.Errorf("delivered %d, want 1", got)
	}
}

func TestSupersededEmailIsDroppedNotSent(t *testing.T) {
	b := setup(t)
	login, id := b.account(t, accountOpts{lastLogin: 100 * day})
	b.resend.FailNext(1, 422, nil) // Resend refuses the link's first try: it is left to its task
	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	infos, _ := b.inspect.ListPendingTasks(tasks.QueueDefault)
	first := asynq.NewTask(infos[0].Type, infos[0].Payload)
	b.inspect.DeleteAllPendingTasks(tasks.QueueDefault)
	// After the resend interval a new attempt issues a new link before the
	// first email went out.
	b.clock.Add(10 * time.Minute)
	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	b.run(t, first)
	b.drain(t)
	if got := b.resend.Count(); got != 1 {
		t.Errorf("delivered %d, want only the newest link", got)
	}
	if got := b.count(t, `SELECT count(*) FROM mails WHERE account_id = $1 AND status = 'dropped' AND error = 'link no longer valid'`, id); got != 1 {
		t.Error("superseded mail not dropped")
	}
}

func TestRetryDelayHonoursRetryAfterAndGrows(t *testing.T) {
	p := worker.RetryPolicy{Base: time.Second, Max: time.Minute}
	prev := time.Duration(0)
	for n := 0; n < 10; n++ {
		d := p.Delay(n, errors.New("x"), nil)
		if d <= 0 || d > time.Minute+time.Minute/5 {
			t.Fatalf("delay %d = %v", n, d)
		}
		if n < 5 && d < prev/2 {
			t.Errorf("delay %d = %v shrank from %v", n, d, prev)
		}
		prev = d
	}
}

func TestResend429WaitsAsLongAsResendAsks(t *testing.T) {
	b := setup(t)
	task, _ := b.pendingEmail(t)
	b.resend.FailNext(1, 429, map[string]string{"retry-after": "7"})
	err := b.process(task)
	if err == nil || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("429: err = %v, want retryable", err)
	}
	if got, want := (worker.RetryPolicy{}).Delay(0, err, task), 7*time.Second; got != want {
		t.Errorf("delay after 429 = %v, want %v", got, want)
	}
}

func TestRetryBackoffPerTaskType(t *testing.T) {
	by, err := worker.ParseTypeBackoffs("email:=2s..15m, email:verification=100ms..1s")
	if err != nil {
		t.Fatal(err)
	}
	p := worker.RetryPolicy{Base: time.Minute, Max: time.Hour, ByType: by}
	for _, c := range []struct {
		typ      string
		n        int
		min, max time.Duration
	}{
		{tasks.TypeEmailAlert, 0, 1600 * time.Millisecond, 2400 * time.Millisecond},
		{tasks.TypeEmailVerification, 10, 800 * time.Millisecond, 1200 * time.Millisecond},
		{tasks.TypeLoginAttempt, 0, 48 * time.Second, 72 * time.Second},
	} {
		if d := p.Delay(c.n, errors.New("x"), asynq.NewTask(c.typ, nil)); d < c.min || d > c.max {
			t.Errorf("%s retry %d: %v, want %v..%v", c.typ, c.n, d, c.min, c.max)
		}
	}
	for _, bad := range []string{"email:", "email:=1s", "=1s..2s", "email:=2s..1s", "email:=x..1s"} {
		if _, err := worker.ParseTypeBackoffs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A link whose send by its attempt's task fails in a way that may pass
// counts that as its first try: its task is scheduled after Resend's
// Retry-After rather than run at once, and sends the same link.
func TestLinkFailingInItsAttemptWaitsForRetryAfter(t *testing.T) {
	b := setup(t)
	login, id := b.account(t, accountOpts{lastLogin: 100 * day})
	b.resend.FailNext(1, 429, map[string]string{"retry-after": "7"})
	before := time.Now()
	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	if pending, err := b.inspect.ListPendingTasks(tasks.QueueDefault); err != nil || len(pending) != 0 {
		t.Fatalf("pending email tasks: %d, %v; want none before the Retry-After", len(pending), err)
	}
	scheduled, err := b.inspect.ListScheduledTasks(tasks.QueueDefault)
	if err != nil || len(scheduled) != 1 || scheduled[0].Type != tasks.TypeEmailVerification {
		t.Fatalf("scheduled email tasks: %v, %v; want the verification", scheduled, err)
	}
	if at := scheduled[0].NextProcessAt; at.Before(before.Add(7*time.Second - time.Second)) {
		t.Errorf("retry at %v, %v after the attempt; want Resend's 7 s", at, at.Sub(before))
	}
	b.run(t, asynq.NewTask(scheduled[0].Type, scheduled[0].Payload))
	emails := b.emailsTo(login)
	if len(emails) != 1 || b.resend.Requests() != 2 {
		t.Fatalf("emails = %d after %d requests, want 1 after 2", len(emails), b.resend.Requests())
	}
	if got := b.count(t, `SELECT count(*) FROM verification_tokens WHERE account_id = $1`, id); got != 1 {
		t.Errorf("tokens = %d, want 1: the retry sends the same link", got)
	}
}
