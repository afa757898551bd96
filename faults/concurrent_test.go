package faults

import (
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
)

// A thousand attempts on one dormant account at once, from many host
// goroutines, run by two worker processes with fifty handlers each: the
// account's row lock serialises them, and the result is one lock, one live
// link, one verification email, and one alert per recipient.
func TestThousandConcurrentAttemptsOnOneDormantAccount(t *testing.T) {
	e := newEnv(t, envOpts{})
	co := e.company(t)
	var recipients []int64
	for range 3 {
		_, id := e.account(t, co, acct{})
		recipients = append(recipients, id)
	}
	e.recipients(t, co, recipients...)
	login, id := e.account(t, co, acct{idle: 200 * day})

	const n = 1000
	burst := make([]*asynq.Task, n)
	keys := make([]string, n)
	methods := []policy.Method{policy.MethodPassword, policy.MethodRemembered}
	for i := range burst {
		burst[i], keys[i] = attempt(t, co, login, methods[i%2])
	}
	conc := map[string]string{"WORKER_CONCURRENCY": "50"}
	w1 := e.worker(t, "worker-1", conc)
	w2 := e.worker(t, "worker-2", conc)
	w1.WaitLog(t, "worker started", started)
	w2.WaitLog(t, "worker started", started)

	began := time.Now()
	var wg sync.WaitGroup
	for g := range 50 {
		wg.Go(func() {
			for i := g; i < n; i += 50 {
				if err := e.host.Enqueue(e.ctx, burst[i]); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	e.waitRecorded(t, keys, retried)
	t.Logf("%d attempts on one account recorded in %v", n, time.Since(began).Round(10*time.Millisecond))
	e.waitMailsSettled(t, co, 1+len(recipients), retried)
	waitUntil(t, retried, "the queues drained", e.queuesIdle)

	if got := e.count(t, `SELECT count(*) FROM login_attempts WHERE account_id = $1 AND outcome = 'verify_by_email'`, id); got != n {
		t.Errorf("attempts refused for verification = %d, want %d", got, n)
	}
	for _, c := range []struct {
		what  string
		query string
		want  int
	}{
		{"lock events", `SELECT count(*) FROM audit_events WHERE account_id = $1 AND kind = 'locked'`, 1},
		{"links issued", `SELECT count(*) FROM verification_tokens WHERE account_id = $1`, 1},
		{"live links", `SELECT count(*) FROM verification_tokens WHERE account_id = $1 AND consumed_at IS NULL AND revoked_at IS NULL`, 1},
		{"verification emails", `SELECT count(*) FROM mails WHERE account_id = $1 AND kind = 'verification'`, 1},
		{"alerts", `SELECT count(*) FROM mails WHERE account_id = $1 AND kind = 'dormant_login_alert'`, len(recipients)},
		{"alerted recipients", `SELECT count(DISTINCT recipient_account_id) FROM mails WHERE account_id = $1 AND kind = 'dormant_login_alert'`, len(recipients)},
	} {
		if got := e.count(t, c.query, id); got != c.want {
			t.Errorf("%s = %d, want %d", c.what, got, c.want)
		}
	}
	e.check(t, co, lockInvariants)
	e.check(t, co, mailInvariants)
	e.checkDelivered(t, co)
	to := map[string]int{}
	for _, m := range e.resend.Emails() {
		to[m.To[0]]++
	}
	if got := to[login]; got != 1 {
		t.Errorf("emails to the dormant account = %d, want 1", got)
	}
	if got, want := e.resend.Count(), 1+len(recipients); got != want {
		t.Errorf("emails delivered = %d, want %d", got, want)
	}
	if got := e.rejectedSince(t); got != 0 {
		t.Errorf("%d tasks rejected", got)
	}
	t.Logf("worker-1 ran %d tasks, worker-2 %d", len(tasksDone(w1)), len(tasksDone(w2)))
}
