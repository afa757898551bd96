package faults

import (
	"fmt"
	"testing"
	"time"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
)

// Two scheduler processes and two worker processes at once, every job due
// every minute: for the minute observed, each job is enqueued by both
// schedulers, run once (the task that claims the period), and its work is
// done once.
func TestTwoSchedulersTwoWorkersRunEachPeriodOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the next minute, when cron fires")
	}
	t.Parallel()
	// The jobs act on every row of the database: this test has a database
	// and a Redis of its own, so it can run beside the others.
	e := newEnv(t, envOpts{redis: startRedis(t, false), ownDatabase: true})
	co := e.company(t)

	var relock, sweep []int64
	for range 5 {
		_, id := e.account(t, co, acct{kind: policy.IDKindPlatform, idle: 120 * day})
		relock = append(relock, id)
		_, id = e.account(t, co, acct{idle: 120 * day})
		sweep = append(sweep, id)
	}
	// Unlocked by an administrator until a deadline that has passed.
	if _, err := e.db.Exec(`UPDATE accounts SET lock_state = 'unlocked_until', unlocked_until = now() - interval '1 hour' WHERE id = ANY($1)`, int64s(relock)); err != nil {
		t.Fatal(err)
	}
	// A notice whose task was lost, and a link dead for longer than the
	// retention.
	owner, ownerID := e.account(t, co, acct{})
	var mailID int64
	if err := e.db.QueryRow(`INSERT INTO mails (kind, company_id, account_id, to_address, locale, idempotency_key, created_at)
		VALUES ('unlocked', $1, $2, $3, 'ja', 'unlocked:faults', now() - interval '10 minutes') RETURNING id`, co, ownerID, owner).Scan(&mailID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec(`INSERT INTO verification_tokens (account_id, token_hash, email, created_at, expires_at, revoked_at, revoked_reason)
		VALUES ($1, sha256('faults'::bytea), $2, now() - interval '40 days', now() - interval '39 days', now() - interval '39 days', 'superseded')`, ownerID, owner); err != nil {
		t.Fatal(err)
	}

	every := map[string]string{
		"SCHEDULE_RELOCK": "* * * * *", "SCHEDULE_REQUEUE_MAIL": "* * * * *", "SCHEDULE_PURGE_TOKENS": "* * * * *",
		"SCHEDULE_SWEEP": "* * * * *", "SCHEDULE_PRELOCK_WARNING": "* * * * *", "SCHEDULE_RETENTION": "* * * * *", "SCHEDULE_DIGEST": "* * * * *", "MAIL_REQUEUE_AFTER": "1s",
	}
	w1 := e.worker(t, "worker-1", nil)
	w2 := e.worker(t, "worker-2", nil)
	s1 := e.scheduler(t, "scheduler-1", every)
	s2 := e.scheduler(t, "scheduler-2", every)
	for _, p := range []*proc{w1, w2, s1, s2} {
		p.WaitLog(t, map[bool]string{true: "worker started", false: "scheduler started"}[p == w1 || p == w2], started)
	}
	// The first minute both schedulers are surely running for.
	period := time.Now().Add(2 * time.Second).Truncate(time.Minute).Add(time.Minute).UTC()
	claimed := func() (bool, error) {
		n := e.count(t, `SELECT count(*) FROM maintenance_runs WHERE period = $1 AND finished_at IS NOT NULL`, period)
		return n == len(tasks.MaintenanceTypes), fmt.Errorf("%d of %d jobs done", n, len(tasks.MaintenanceTypes))
	}
	waitUntil(t, time.Until(period)+retried, "every job of "+period.Format("15:04")+" run", claimed)
	e.waitMailsSettled(t, co, 1, retried)
	waitUntil(t, retried, "the queues drained", e.queuesIdle)

	// Each scheduler enqueued each job; of the two tasks, the one that
	// claimed the period ran it and the other found it claimed.
	for _, typ := range tasks.MaintenanceTypes {
		var enqueued int
		ids := map[string]bool{}
		for _, s := range []*proc{s1, s2} {
			for _, l := range s.Lines("maintenance enqueued") {
				if l.str("task_type") == typ {
					enqueued++
					ids[l.str("task_id")] = true
				}
			}
		}
		var ran, skipped int
		for _, w := range []*proc{w1, w2} {
			for _, l := range w.Lines("maintenance done") {
				if l.str("task_type") == typ && l.str("period") == period.Format(time.RFC3339) && ids[l.str("task_id")] {
					ran++
				}
			}
			for _, l := range w.Lines("maintenance period already claimed") {
				if l.str("task_type") == typ && l.str("period") == period.Format(time.RFC3339) && ids[l.str("task_id")] {
					skipped++
				}
			}
		}
		// A scheduler may have fired once more, for the next minute, by
		// now, and a task of the minute before that ran late belongs to
		// the period of when it ran.
		if enqueued < 2 || ran != 1 || skipped < 1 {
			t.Errorf("%s of %s: enqueued %d times (want 2 or more), ran %d, found claimed %d; want ran 1, found claimed 1 or more", typ, period.Format("15:04"), enqueued, ran, skipped)
		}
	}
	for _, c := range []struct {
		what  string
		query string
		ids   []int64
	}{
		{"relocked", `SELECT count(*) FROM audit_events WHERE kind = 'relocked' AND account_id = ANY($1)`, relock},
		{"relocked accounts", `SELECT count(*) FROM accounts WHERE lock_state = 'locked' AND id = ANY($1)`, relock},
		{"swept", `SELECT count(*) FROM audit_events WHERE kind = 'locked' AND detail->>'by' = 'sweep' AND account_id = ANY($1)`, sweep},
		{"swept accounts", `SELECT count(*) FROM accounts WHERE lock_state = 'locked' AND id = ANY($1)`, sweep},
	} {
		if got := e.count(t, c.query, int64s(c.ids)); got != len(c.ids) {
			t.Errorf("%s = %d, want %d", c.what, got, len(c.ids))
		}
	}
	if got := e.count(t, `SELECT count(*) FROM verification_tokens WHERE account_id = $1`, ownerID); got != 0 {
		t.Errorf("dead links left = %d, want 0", got)
	}
	e.check(t, co, mailInvariants)
	e.checkDelivered(t, co)
	if got := e.resend.Count(); got != 1 {
		t.Errorf("delivered %d emails, want the lost notice once", got)
	}
	if got := e.rejectedSince(t); got != 0 {
		t.Errorf("%d tasks rejected", got)
	}
}
