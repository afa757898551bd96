package faults

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
)

// A worker is killed with SIGKILL while it is in the middle of
// login:attempt tasks (a burst it has half worked through), one of them
// sending its verification link, its request to Resend hanging. Postgres rolls back
// what the dead process had open; asynq hands the tasks it held to the new
// worker once their lease has expired (about a minute: the lease is 30 s
// and the recoverer runs every minute, waiting out another 30 s for clock
// skew; asynq v0.26 exposes neither as configuration). Afterwards every
// attempt is recorded once, each dormant account is locked once with one
// live link, and each person got each email once.
func TestWorkerKilledMidTaskCompletesOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("waits about a minute for asynq to recover the dead worker's tasks")
	}
	t.Parallel()
	e := newEnv(t, envOpts{})

	// One account whose verification link hangs at Resend; its company
	// has no recipients, so that link is the first request Resend sees.
	coV := e.company(t)
	loginV, idV := e.account(t, coV, acct{idle: 120 * day})

	co := e.company(t)
	_, r1 := e.account(t, co, acct{})
	_, r2 := e.account(t, co, acct{})
	e.recipients(t, co, r1, r2)
	var burst []*asynq.Task
	var keys []string
	for i := range 50 {
		o := acct{idle: 120 * day}
		if i%5 == 0 {
			o.kind = policy.IDKindPlatform
		}
		login, _ := e.account(t, co, o)
		for j := range 5 {
			task, key := attempt(t, co, login, []policy.Method{policy.MethodPassword, policy.MethodRemembered}[j%2])
			burst = append(burst, task)
			keys = append(keys, key)
		}
	}

	conc := map[string]string{"WORKER_CONCURRENCY": "8"}
	e.resend.HangNext(1)
	w1 := e.worker(t, "worker-1", conc)
	taskV, keyV := attempt(t, coV, loginV, policy.MethodPassword)
	e.enqueue(t, taskV)
	waitUntil(t, started, "the verification email to hang at Resend", func() (bool, error) {
		return e.resend.Requests() > 0, nil
	})
	for _, task := range burst {
		e.enqueue(t, task)
	}
	waitUntil(t, retried, "the burst under way", func() (bool, error) {
		n, err := e.recorded(keys)
		return n >= len(keys)/10, err
	})
	w1.Kill(t)
	killed := time.Now()

	atKill, err := e.recorded(keys)
	if err != nil {
		t.Fatal(err)
	}
	var interrupted []string
	for _, q := range []string{tasks.QueueCritical, tasks.QueueDefault} {
		active, err := e.inspect.ListActiveTasks(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range active {
			interrupted = append(interrupted, info.ID)
		}
	}
	// The attempt's task sends its link itself, so it is the one hanging.
	hungTask := tasks.LoginAttemptTaskID(keyV)
	var attemptsInterrupted int
	for _, id := range interrupted {
		if strings.HasPrefix(id, tasks.TypeLoginAttempt+":") {
			attemptsInterrupted++
		}
	}
	t.Logf("killed with %d of %d attempts recorded and %d tasks running: %v", atKill, len(keys), len(interrupted), interrupted)
	if atKill == len(keys) || attemptsInterrupted == 0 {
		t.Fatalf("the kill came after the burst: %d of %d recorded, %d attempts running", atKill, len(keys), attemptsInterrupted)
	}
	if !slices.Contains(interrupted, hungTask) {
		t.Fatalf("the attempt whose link hangs, %s, was not running at the kill: %v", hungTask, interrupted)
	}
	for _, m := range e.resend.Emails() {
		if m.To[0] == loginV {
			t.Fatalf("the email that was to hang was delivered before the kill")
		}
	}

	w2 := e.worker(t, "worker-2", conc)
	e.waitRecorded(t, append(keys, keyV), orphaned)
	e.waitMailsSettled(t, coV, 1, orphaned)
	e.waitMailsSettled(t, co, 40+50*2, orphaned)
	waitUntil(t, orphaned, "the queues drained", e.queuesIdle)
	t.Logf("recovered %v after the kill", time.Since(killed).Round(time.Second))

	// Each task the dead worker held was finished by the new one, once.
	// (The dead one may have finished some too, just before asynq could
	// record it: that is the redelivery the handlers are idempotent for.)
	for _, id := range interrupted {
		if got := done(w2, id); got != 1 {
			t.Errorf("task %s ran %d times in the new worker, want 1", id, got)
		}
	}
	for _, c := range []string{co, coV} {
		e.check(t, c, lockInvariants)
		e.check(t, c, mailInvariants)
		e.checkDelivered(t, c)
	}
	if got := e.count(t, `SELECT count(*) FROM accounts WHERE company_id = $1 AND lock_state = 'locked'`, co); got != 50 {
		t.Errorf("locked accounts = %d, want 50", got)
	}
	to := map[string]int{}
	for _, m := range e.resend.Emails() {
		to[m.To[0]]++
	}
	if got := to[loginV]; got != 1 {
		t.Errorf("emails to the account whose email hung = %d, want 1", got)
	}
	if got := e.count(t, `SELECT count(*) FROM verification_tokens WHERE account_id = $1`, idV); got != 1 {
		t.Errorf("links issued for the hung email = %d, want 1: the retry was to send the same link", got)
	}
	if got := e.rejectedSince(t); got != 0 {
		t.Errorf("%d tasks rejected", got)
	}
}
