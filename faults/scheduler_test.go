package faults

import (
	"fmt"
	"testing"
	"time"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
)

// Two scheduler processes and two worker processes at once, every job due
// every minute: for the minute observed, each job is enqueued by one
// scheduler (the other is told the task exists), run by one worker, once,
// and its work is done once.
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
		"SCHEDULE_SWEEP": "* * * * *", "SCHEDULE_PRELOCK_WARNING": "* * * * *", "MAIL_REQUEUE_AFTER": "1s",
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
	ids := map[string]string{}
	for _, typ := range tasks.MaintenanceTypes {
		ids[typ] = tasks.MaintenanceTaskID(typ, period)
	}
	waitUntil(t, time.Until(period)+retried, "every job of "+period.Format("15:04")+" run", func() (bool, error) {
		done := tasksDone(w1, w2)
		n := 0
		for _, id := range ids {
			if done[id] > 0 {
				n++
			}
		}
		return n == len(ids), fmt.Errorf("%d of %d jobs done", n, len(ids))
	})
	e.waitMailsSettled(t, co, 1, retried)
	waitUntil(t, retried, "the queues drained", e.queuesIdle)

	done := tasksDone(w1, w2)
	for typ, id := range ids {
		if got := done[id]; got != 1 {
			t.Errorf("%s ran %d times, want 1", id, got)
		}
		var enqueued, refused int
		for _, s := range []*proc{s1, s2} {
			for _, l := range s.Lines("maintenance enqueued") {
				if l.str("task_id") == id {
					enqueued++
				}
			}
			for _, l := range s.Lines("maintenance already enqueued") {
				if l.str("task_type") == typ && l.str("period") == period.Format(time.RFC3339) {
					refused++
				}
			}
		}
		if enqueued != 1 || refused != 1 {
			t.Errorf("%s: enqueued by %d schedulers and refused to %d, want 1 and 1", id, enqueued, refused)
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
