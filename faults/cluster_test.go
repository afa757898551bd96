package faults

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dormancy/dormancy/cluster"
	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

// holdCounter is the host's store, counting the attempts the host client
// held in Postgres because Redis did not take them for good.
type holdCounter struct {
	*postgres.Store
	held atomic.Int64
}

func (s *holdCounter) HoldTask(ctx context.Context, typ, taskID string, payload []byte, now time.Time) error {
	s.held.Add(1)
	return s.Store.HoldTask(ctx, typ, taskID, payload, now)
}

// A fleet on a Redis Cluster of three masters and three replicas: two
// workers, two schedulers and the admin server, login attempts spread over
// three queues (one per shard). A burst of attempts is under way when the
// master of one queue is killed (SIGKILL) and its replica promoted; the
// lost node then comes back as the new master's replica.
//
// Replication is asynchronous, so an enqueue the old master acknowledged
// could have died with it. The host's enqueue counts only once a replica
// holds the task (WAIT, REDIS_WAIT_REPLICAS); until then, and while the
// promoted master has no replica, attempts are held in Postgres and the
// requeue job queues them under the same task ID. So every attempt the
// host reported is recorded once, and each dormant account ends with one
// lock and one verification email at Resend.
func TestClusterFailoverUnderBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the requeue job's minute and asynq's recoverer")
	}
	t.Parallel()
	cl := testenv.StartCluster(t, clusterNodeTimeout)
	e := newEnv(t, envOpts{cluster: cl, ownDatabase: true})
	const queues = 3
	layout := tasks.Layout{CriticalQueues: queues}
	rc := cl.Client(t)
	store := &holdCounter{Store: e.store}
	host := tasks.NewClient(cluster.NewEnqueuer(rc, cluster.Options{Replicas: 1}), store, nil, tasks.WithLayout(layout))

	// Two companies on each queue, each with five dormant email IDs and
	// five active ones.
	var companies []string
	perQueue := map[string]int{}
	for len(companies) < 2*queues {
		co := e.company(t)
		if q := tasks.CriticalQueue(co, queues); perQueue[q] < 2 {
			perQueue[q]++
			companies = append(companies, co)
		}
	}
	type login struct{ company, id string }
	var logins []login
	dormant := 0
	for _, co := range companies {
		for i := range 10 {
			o := acct{}
			if i%2 == 0 {
				o.idle = 120 * day
				dormant++
			}
			id, _ := e.account(t, co, o)
			logins = append(logins, login{co, id})
		}
	}

	fleet := map[string]string{
		"CRITICAL_QUEUES": strconv.Itoa(queues), "CRITICAL_QUEUES_SERVED": strconv.Itoa(queues),
		"SCHEDULE_REQUEUE_MAIL": "* * * * *", "MAIL_REQUEUE_AFTER": "1s",
		"SCHEDULE_RELOCK": "off", "SCHEDULE_PURGE_TOKENS": "off", "SCHEDULE_SWEEP": "off",
		"SCHEDULE_PRELOCK_WARNING": "off", "SCHEDULE_RETENTION": "off", "SCHEDULE_DIGEST": "off",
	}
	adminAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	procs := []*proc{
		e.worker(t, "worker-1", fleet), e.worker(t, "worker-2", fleet),
		e.scheduler(t, "scheduler-1", fleet), e.scheduler(t, "scheduler-2", fleet),
		startProc(t, "admin", e.procEnv(map[string]string{
			"CRITICAL_QUEUES": strconv.Itoa(queues), "ADMIN_ADDR": adminAddr,
			"ADMIN_OPERATOR_USER": "operator", "ADMIN_OPERATOR_PASSWORD": "operator-password",
			"ADMIN_LINK_SECRET": string(testenv.TokenSecret),
		}), "admin"),
	}
	for i, msg := range []string{"worker started", "worker started", "scheduler started", "scheduler started", "admin server started"} {
		procs[i].WaitLog(t, msg, started)
	}

	var (
		mu       sync.Mutex
		reported []string
		errs     []error
	)
	counts := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(reported), len(errs)
	}
	stop := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			l := logins[i%len(logins)]
			key := tasks.NewKey()
			err := host.ReportLoginAttempt(e.ctx, tasks.LoginAttempt{
				AttemptKey: key, CompanyID: l.company, LoginID: l.id, Method: policy.MethodPassword,
				IP: "203.0.113.9", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
			})
			mu.Lock()
			if err != nil {
				errs = append(errs, err)
			} else {
				reported = append(reported, key)
			}
			mu.Unlock()
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-loadDone
	}()
	progress := func(n int) func() (bool, error) {
		return func() (bool, error) {
			ok, failed := counts()
			return ok >= n, fmt.Errorf("%d reported, %d failed, %d held", ok, failed, store.held.Load())
		}
	}

	waitUntil(t, margin, "the burst under way", progress(2*len(logins)))
	victim, err := cl.MasterOf(e.ctx, "asynq:{critical-0}:pending")
	if err != nil {
		t.Fatal(err)
	}
	victim.Kill()
	atKill, _ := counts()
	t.Logf("killed master %s (critical-0's) after %d attempts", victim.Addr(), atKill)
	waitUntil(t, failedOver, "the replica promoted", func() (bool, error) {
		ctx, cancel := context.WithTimeout(e.ctx, time.Second)
		defer cancel()
		err := cl.WaitHealthy(ctx, time.Second)
		return err == nil, err
	})
	waitUntil(t, margin, "the burst going on through the failover", progress(atKill+len(logins)))
	// The lost machine comes back, as the promoted master's replica:
	// until then that shard has no replica to hold an enqueue.
	if err := victim.Restart(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, failedOver, "the old master back as a replica", func() (bool, error) {
		ctx, cancel := context.WithTimeout(e.ctx, time.Second)
		defer cancel()
		err := cl.WaitHealthy(ctx, time.Second)
		if err == nil && len(cl.Alive()) != 6 {
			err = fmt.Errorf("%d nodes alive", len(cl.Alive()))
		}
		return err == nil, err
	})
	// Once the shard has its replica again, enqueues count in Redis
	// again rather than being held.
	direct := func() int { ok, _ := counts(); return ok - int(store.held.Load()) }
	directAtBack := direct()
	waitUntil(t, margin, "the burst enqueued directly after the recovery", func() (bool, error) {
		ok, failed := counts()
		return direct() >= directAtBack+2*len(logins), fmt.Errorf("%d reported, %d failed, %d held", ok, failed, store.held.Load())
	})
	close(stop)
	<-loadDone

	ok, failed := counts()
	t.Logf("host: %d attempts reported, %d of them held in Postgres, %d refused", ok, store.held.Load(), failed)
	for _, err := range errs[:min(len(errs), 5)] {
		t.Errorf("the host was refused: %v", err)
	}
	if store.held.Load() == 0 {
		t.Error("no attempt was held: the failover did not meet the burst")
	}

	// Held attempts wait for the requeue job's next minute; tasks the
	// failover left "active" wait for asynq's recoverer.
	e.waitRecorded(t, reported, max(requeued, orphaned))
	waitUntil(t, max(requeued, orphaned), "the outbox drained", func() (bool, error) {
		var pending, held int
		err := e.db.QueryRow(`SELECT (SELECT count(*) FROM mails WHERE status = 'pending'), (SELECT count(*) FROM task_outbox)`).Scan(&pending, &held)
		return err == nil && pending == 0 && held == 0, fmt.Errorf("%d mails pending, %d attempts held: %v", pending, held, err)
	})
	waitUntil(t, orphaned, "the queues drained", e.queuesIdle)

	if got := e.count(t, `SELECT count(*) FROM login_attempts`); got != len(reported) {
		t.Errorf("attempts recorded = %d, want %d", got, len(reported))
	}
	if got := e.count(t, `SELECT count(*) FROM accounts WHERE lock_state = 'locked'`); got != dormant {
		t.Errorf("locked accounts = %d, want the %d dormant ones", got, dormant)
	}
	if got := e.count(t, `SELECT count(*) FROM mails WHERE kind = 'verification' AND status = 'sent'`); got != dormant {
		t.Errorf("verification emails sent = %d, want %d", got, dormant)
	}
	for _, co := range companies {
		e.check(t, co, lockInvariants)
		e.check(t, co, mailInvariants)
		e.checkDelivered(t, co)
	}
	if got := e.rejectedSince(t); got != 0 {
		t.Errorf("%d tasks rejected", got)
	}
	for _, p := range procs {
		select {
		case <-p.done:
			t.Errorf("%s exited: %v", p.name, p.err)
		default:
		}
	}

	// The admin server reads the spread queues through the cluster:
	// Asynqmon's API and the queue metrics.
	for path, want := range map[string]string{
		"/monitoring/api/queues": `"critical-2"`,
		"/metrics":               `asynq_queue_size{queue="critical-1"}`,
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+adminAddr+path, nil)
		req.SetBasicAuth("operator", "operator-password")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %s, want %s in:\n%.2000s", path, res.Status, want, body)
		}
	}
}
