package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

// openLoopCalls calls call rate times a second for d, each call on its own
// goroutine when it is due, whatever the earlier calls' pace, and measures
// each latency from when the call was due, so a slow call delays nobody's
// clock (no coordinated omission).
func openLoopCalls(rate int, d time.Duration, call func(i int) error) openLoopResult {
	n := int(time.Duration(rate) * d / time.Second)
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, n)
	failed := make([]bool, n)
	var wg sync.WaitGroup
	before, start := cpuTime(), time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due))
		wg.Go(func() {
			failed[i] = call(i) != nil
			lat[i] = time.Since(due)
		})
	}
	wg.Wait()
	wall := time.Since(start)
	ok := n
	for _, f := range failed {
		if f {
			ok--
		}
	}
	slices.Sort(lat)
	return openLoopResult{p50: lat[n/2], p99: lat[n*99/100], success: float64(ok) / float64(n),
		cpu: float64(cpuTime()-before) / float64(wall) / float64(numCPU())}
}

// BenchmarkHostClient drives the Go host client in this process, Check
// then ReportLoginAttempt as a login page calls them, under a constant
// rate, beside the same I/O written bare: read the account by company and
// login ID, enqueue one task of the same size. Same company (imported),
// same pool sizes, same knobs as BenchmarkHostAPI. The load generator and
// the client share the process, so its CPU share is the client's too.
func BenchmarkHostClient(b *testing.B) {
	accounts := envInt("BENCH_API_ACCOUNTS", 20_000)
	runs := envInt("BENCH_API_RUNS", 3)
	d := envDuration("BENCH_API_SECONDS", 3*time.Second)
	ctx := context.Background()
	company, logins := importCompany(b, build(b, "./cmd/dormancy"), accounts)

	store, err := postgres.Open(ctx, testenv.DSN())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	// As `dormancy admin` does by default (ADMIN_COMPANY_CACHE_TTL).
	store.CacheCompanies(5*time.Second, nil)
	queue := asynq.NewClient(testenv.RedisOpt())
	defer queue.Close()
	client := tasks.NewClient(queue, store, nil)

	sqldb := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(testenv.DSN())))
	sqldb.SetMaxOpenConns(postgres.DefaultMaxConns)
	sqldb.SetMaxIdleConns(postgres.DefaultMaxConns)
	db := bun.NewDB(sqldb, pgdialect.New())
	defer db.Close()

	paths := []struct {
		name string
		call func(i int) error
	}{
		{"dormancy", func(i int) error {
			res, err := client.Check(ctx, company, logins[i%len(logins)], policy.MethodPassword)
			if err != nil {
				return err
			}
			return client.ReportLoginAttempt(ctx, tasks.LoginAttempt{CompanyID: company, LoginID: logins[i%len(logins)],
				Method: policy.MethodPassword, IP: "203.0.113.7", DecidedAt: res.DecidedAt})
		}},
		{"bare", func(i int) error {
			var acct struct {
				ID          int64
				LockState   string
				LastLoginAt sql.NullTime
			}
			if err := db.NewRaw(`SELECT id, lock_state, last_login_at FROM accounts WHERE company_id = ? AND login_id = ?`,
				company, logins[i%len(logins)]).Scan(ctx, &acct); err != nil {
				return err
			}
			key := tasks.NewKey()
			payload, _ := json.Marshal(map[string]any{"company_id": company, "login_id": logins[i%len(logins)], "method": "password",
				"ip": "203.0.113.7", "attempt_key": key, "at": time.Now(), "decided_at": time.Now(), "v": tasks.PayloadVersion})
			_, err := queue.EnqueueContext(ctx, asynq.NewTask(tasks.TypeLoginAttempt, payload),
				asynq.Queue(tasks.QueueCritical), asynq.TaskID(tasks.LoginAttemptTaskID(key)))
			return err
		}},
	}
	insp := asynq.NewInspector(testenv.RedisOpt())
	defer insp.Close()
	measure := func(call func(int) error, rate int) openLoopResult {
		var rs []openLoopResult
		for range runs {
			rs = append(rs, openLoopCalls(rate, d, call))
			_, _ = insp.DeleteAllPendingTasks(tasks.QueueCritical)
		}
		return median(rs)
	}
	for _, p := range paths {
		openLoopCalls(500, 2*time.Second, p.call)
		_, _ = insp.DeleteAllPendingTasks(tasks.QueueCritical)
	}
	calls := map[string]func(int) error{}
	for _, p := range paths {
		calls[p.name] = p.call
	}
	sideBySide("Go host client (Check + ReportLoginAttempt)", func(name string, rate int) openLoopResult {
		return measure(calls[name], rate)
	}, false)
}
