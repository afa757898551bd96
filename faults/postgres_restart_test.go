package faults

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
)

// Postgres goes away under load, as the worker sees a restart: every
// connection drops in the middle of whatever it was doing (a transaction,
// a commit, an email held under its row lock) and new connections are
// refused, then it comes back. The failed tasks are classified retryable,
// retried, and complete; nothing is half-applied and nothing is done twice.
//
// The cut is made by a TCP proxy between the worker and Postgres rather
// than by restarting the shared cluster, which other test binaries are
// using: from the worker's side the two are the same fault.
func TestPostgresRestartedUnderLoad(t *testing.T) {
	e := newEnv(t, envOpts{})
	u, err := url.Parse(e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newPGProxy(t, u.Host)

	co := e.company(t)
	_, r1 := e.account(t, co, acct{})
	_, r2 := e.account(t, co, acct{})
	e.recipients(t, co, r1, r2)
	var burst []*asynq.Task
	var keys []string
	add := func(login string, n int) {
		for i := range n {
			task, key := attempt(t, co, login, []policy.Method{policy.MethodPassword, policy.MethodRemembered}[i%2])
			burst = append(burst, task)
			keys = append(keys, key)
		}
	}
	for range 30 {
		login, _ := e.account(t, co, acct{idle: 120 * day})
		add(login, 3)
	}
	for range 10 {
		login, _ := e.account(t, co, acct{kind: policy.IDKindPlatform, idle: 120 * day})
		add(login, 3)
	}
	for range 60 {
		login, _ := e.account(t, co, acct{})
		add(login, 2)
	}

	w := e.worker(t, "worker", map[string]string{"DATABASE_URL": proxy.URL(t, e.dsn)})
	w.WaitLog(t, "worker started", started)
	for _, task := range burst {
		e.enqueue(t, task)
	}
	waitUntil(t, retried, "the burst under way", func() (bool, error) {
		n, err := e.recorded(keys)
		return n >= len(keys)/6, err
	})
	open := proxy.Conns()
	proxy.Cut()
	down := time.Now()
	cutAt, _ := e.recorded(keys)
	// Down until a task has failed on it, been retried, and failed again,
	// as it would through a restart that takes seconds.
	waitUntil(t, retried, "a task failing twice on the lost database", func() (bool, error) {
		seen := map[string]bool{}
		for _, l := range w.Lines("task failed") {
			if seen[l.str("task_id")] {
				return true, nil
			}
			seen[l.str("task_id")] = true
		}
		return false, fmt.Errorf("%d failures", len(w.Lines("task failed")))
	})

	proxy.Restore(t)
	t.Logf("cut %d connections with %d of %d attempts recorded; down %v, %d task failures", open, cutAt, len(keys), time.Since(down).Round(time.Millisecond), len(w.Lines("task failed")))
	if cutAt == len(keys) {
		t.Fatal("the cut came after the burst")
	}

	e.waitRecorded(t, keys, retried)
	e.waitMailsSettled(t, co, 30+40*2, retried)
	waitUntil(t, retried, "the queues drained", e.queuesIdle)

	// A permanent failure is logged as "task rejected"; a retryable one as
	// "task failed".
	for _, l := range w.Lines("task rejected") {
		t.Errorf("a database failure was classified permanent: %v", l)
	}
	if got := e.rejectedSince(t); got != 0 {
		t.Errorf("%d tasks rejected", got)
	}
	if got := e.count(t, `SELECT count(*) FROM login_attempts WHERE company_id = $1`, co); got != len(keys) {
		t.Errorf("attempts recorded = %d, want %d", got, len(keys))
	}
	if got := e.count(t, `SELECT count(*) FROM accounts WHERE company_id = $1 AND lock_state = 'locked'`, co); got != 40 {
		t.Errorf("locked accounts = %d, want 40", got)
	}
	// The login date moved for every active account, and only forward.
	if got := e.count(t, `SELECT count(*) FROM accounts WHERE company_id = $1 AND lock_state = 'active'
		AND last_login_at < $2`, co, e.start.Add(-time.Minute)); got != 2 {
		t.Errorf("active accounts whose login date did not move = %d, want the 2 recipients", got)
	}
	e.check(t, co, lockInvariants)
	e.check(t, co, mailInvariants)
	e.checkDelivered(t, co)
}
