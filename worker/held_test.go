package worker_test

import (
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
)

// With Redis unreachable the host client still answers from Postgres: a
// dormant login is refused, an active one allowed, and both attempts are
// held in Postgres. Once Redis is back, the requeue job queues each held
// attempt once and the worker records it with the decision the host
// showed, however late it runs.
func TestLoginsDecidedAndHeldWhileRedisIsDown(t *testing.T) {
	b := setup(t)
	// A real client, to an address where no Redis listens.
	down := asynq.NewClient(asynq.RedisClientOpt{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { down.Close() })
	client := tasks.NewClient(down, b.store, b.clock.Now)

	active, activeID := b.account(t, accountOpts{kind: policy.IDKindPlatform, lastLogin: 24 * time.Hour})
	dormant, dormantID := b.account(t, accountOpts{kind: policy.IDKindPlatform, lastLogin: 120 * 24 * time.Hour})
	for _, c := range []struct {
		login string
		want  policy.Outcome
	}{{active, policy.OutcomeAllow}, {dormant, policy.OutcomeAskAdministrator}} {
		for range 2 { // the host retries the same attempt: held once
			res, err := client.Login(b.ctx, tasks.LoginAttempt{CompanyID: b.company, LoginID: c.login, Method: policy.MethodPassword, AttemptKey: "held-" + c.login, At: b.clock.Now()})
			if err != nil {
				t.Fatalf("%s: Login with Redis down: %v", c.login, err)
			}
			if res.Decision.Outcome != c.want {
				t.Errorf("%s: %s, want %s", c.login, res.Decision.Outcome, c.want)
			}
		}
	}
	if got := b.count(t, `SELECT count(*) FROM task_outbox WHERE task_id LIKE 'login:attempt:held-%'`); got != 2 {
		t.Fatalf("held attempts = %d, want 2", got)
	}
	if got := b.count(t, `SELECT count(*) FROM login_attempts WHERE account_id IN ($1, $2)`, activeID, dormantID); got != 0 {
		t.Fatalf("attempts recorded before Redis is back = %d", got)
	}

	// Redis is back; the requeue job runs after midnight, and the worker
	// later still.
	b.clock.Add(20 * time.Hour)
	b.run(t, maintenanceTask(t, tasks.TypeMaintenanceRequeueMail, b.clock.Now()))
	if got := b.count(t, `SELECT count(*) FROM task_outbox`); got != 0 {
		t.Errorf("held tasks left after the requeue job = %d", got)
	}
	pending, err := b.inspect.ListPendingTasks(tasks.QueueCritical)
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, info := range pending {
		if info.ID == tasks.LoginAttemptTaskID("held-"+active) || info.ID == tasks.LoginAttemptTaskID("held-"+dormant) {
			b.run(t, asynq.NewTask(info.Type, info.Payload))
			ran++
		}
	}
	if ran != 2 {
		t.Fatalf("held attempts queued = %d, want 2", ran)
	}
	if got := b.count(t, `SELECT count(*) FROM login_attempts WHERE account_id = $1 AND outcome = 'allow' AND decided_at = $2`, activeID, start); got != 1 {
		t.Errorf("active account's attempts recorded as allowed at the answer's instant = %d, want 1", got)
	}
	if got := b.count(t, `SELECT count(*) FROM login_attempts WHERE account_id = $1 AND outcome = 'ask_administrator'`, dormantID); got != 1 {
		t.Errorf("dormant account's refused attempts = %d, want 1", got)
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE id = $1 AND lock_state = 'locked'`, dormantID); got != 1 {
		t.Error("the dormant account is not locked after its held attempt ran")
	}
}
