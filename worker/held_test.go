package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
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

// queueRouter sends each task to the client of its queue, as a cluster
// sends each queue to its shard: here one shard is down.
type queueRouter struct {
	clients map[string]tasks.Enqueuer
	tries   map[string]int
}

func (r *queueRouter) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	q := ""
	for _, o := range opts {
		if o.Type() == asynq.QueueOpt {
			q = o.Value().(string)
		}
	}
	r.tries[q]++
	return r.clients[q].EnqueueContext(ctx, t, opts...)
}

// With the critical queues spread over shards, a shard that fails holds
// its own queue's attempts for tasks.RetryRedisAfter; the other queue's
// go on to Redis at once, and the failed queue is tried again after the
// pause.
func TestOneShardDownHoldsOnlyItsQueue(t *testing.T) {
	b := setup(t)
	down := asynq.NewClient(asynq.RedisClientOpt{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { down.Close() })
	up := asynq.NewClient(testenv.RedisOpt())
	t.Cleanup(func() { up.Close() })
	router := &queueRouter{clients: map[string]tasks.Enqueuer{"critical-0": down, "critical-1": up}, tries: map[string]int{}}
	client := tasks.NewClient(router, b.store, b.clock.Now, tasks.WithLayout(tasks.Layout{CriticalQueues: 2}))

	company := map[string]string{}
	for i := 0; len(company) < 2; i++ {
		id := testenv.UniqueID(fmt.Sprintf("shard%d", i))
		company[tasks.CriticalQueue(id, 2)] = id
	}
	report := func(q, key string) {
		t.Helper()
		p := tasks.LoginAttempt{CompanyID: company[q], LoginID: "u", Method: policy.MethodPassword, AttemptKey: key, At: b.clock.Now()}
		if err := client.ReportLoginAttempt(b.ctx, p); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	held := func(key string) bool {
		return b.count(t, `SELECT count(*) FROM task_outbox WHERE task_id = $1`, tasks.LoginAttemptTaskID(key)) == 1
	}
	key := testenv.UniqueID("k")
	report("critical-0", key+"-a")
	report("critical-1", key+"-b")
	report("critical-0", key+"-c")
	if !held(key+"-a") || held(key+"-b") || !held(key+"-c") {
		t.Errorf("held: a %v, b %v, c %v; want the down queue's (a, c) held and b enqueued", held(key+"-a"), held(key+"-b"), held(key+"-c"))
	}
	if _, err := b.inspect.GetTaskInfo("critical-1", tasks.LoginAttemptTaskID(key+"-b")); err != nil {
		t.Errorf("b is not in critical-1: %v", err)
	} else if err := b.inspect.DeleteTask("critical-1", tasks.LoginAttemptTaskID(key+"-b")); err != nil {
		// Its company exists nowhere: another test's worker would reject it.
		t.Fatal(err)
	}
	if router.tries["critical-0"] != 1 || router.tries["critical-1"] != 1 {
		t.Errorf("enqueue tries %v; want critical-0 tried once, then rested, and critical-1 once", router.tries)
	}
	b.clock.Add(tasks.RetryRedisAfter)
	report("critical-0", key+"-d")
	if router.tries["critical-0"] != 2 || !held(key+"-d") {
		t.Errorf("after the pause: critical-0 tried %d times, d held %v; want tried again, and held", router.tries["critical-0"], held(key+"-d"))
	}
}
