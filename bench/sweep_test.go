package bench

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/mail/resendtest"
	"github.com/dormancy/dormancy/tasks"
)

// timed runs fn and returns how long it took.
func timed(b *testing.B, fn func() error) time.Duration {
	b.Helper()
	t0 := time.Now()
	if err := fn(); err != nil {
		b.Fatal(err)
	}
	return time.Since(t0)
}

func execSQL(db *sql.DB, q string, args ...any) error {
	_, err := db.Exec(q, args...)
	return err
}

// BenchmarkSweepAndRelock runs the dormancy sweep and the relock job over
// BENCH_ACCOUNTS accounts (1M by default) beside one bare UPDATE of the
// same rows in the same database. Half the accounts are dormant; a tenth
// are in an administrator's unlock whose deadline passed.
func BenchmarkSweepAndRelock(b *testing.B) {
	n := envInt("BENCH_ACCOUNTS", 1_000_000)
	batch := envInt("BENCH_SWEEP_BATCH", tasks.DefaultMaintenanceBatch)
	ctx := context.Background()
	db := testenv.DB(b)
	store := testenv.Store(b)
	h := newHandlers(b, store, resendtest.New(b))
	company := testenv.UniqueID("sweep")
	now := time.Now().UTC().Truncate(time.Second)
	if err := execSQL(db, `INSERT INTO companies (id) VALUES ($1)`, company); err != nil {
		b.Fatal(err)
	}
	// Accounts spread over 180 days of last activity: those past 90 days
	// are dormant. Every tenth is platform ID in a lapsed unlock.
	load := timed(b, func() error {
		return execSQL(db, `INSERT INTO accounts (company_id, login_id, id_kind, email, name, created_at, last_login_at, lock_state, unlocked_until)
			SELECT $1, 'u' || g, 'platform', NULL, 'n' || g, $2::timestamptz - interval '400 days',
				$2::timestamptz - (g % 180) * interval '1 day' - interval '1 hour',
				CASE WHEN g % 10 = 0 THEN 'unlocked_until' ELSE 'active' END,
				CASE WHEN g % 10 = 0 THEN $2::timestamptz - interval '1 minute' END
			FROM generate_series(1, `+strconv.Itoa(n)+`) g`, company, now)
	})
	mustExec := func(q string) {
		if err := execSQL(db, q, company); err != nil {
			b.Fatal(err)
		}
	}
	mustExec(`VACUUM ANALYZE accounts -- $1`)
	dormant := testenv.Count(b, db, `SELECT count(*) FROM accounts WHERE company_id = $1 AND lock_state = 'active'
		AND coalesce(last_login_at, created_at) <= $2::timestamptz - interval '2160 hours'`, company, now)
	lapsed := testenv.Count(b, db, `SELECT count(*) FROM accounts WHERE company_id = $1 AND lock_state = 'unlocked_until'`, company)

	// Baseline: the same rows, one bare UPDATE each, then put back.
	bareSweep := timed(b, func() error {
		return execSQL(db, `UPDATE accounts SET lock_state = 'locked', lock_reason = 'dormant', locked_at = $2
			WHERE company_id = $1 AND lock_state = 'active' AND status = 'active' AND NOT exempt
			AND coalesce(last_login_at, created_at) <= $2::timestamptz - interval '2160 hours'`, company, now)
	})
	bareRelock := timed(b, func() error {
		return execSQL(db, `UPDATE accounts SET lock_state = 'locked', lock_reason = 'dormant', locked_at = unlocked_until, unlocked_until = NULL
			WHERE lock_state = 'unlocked_until' AND unlocked_until <= $2 AND status = 'active' AND company_id = $1`, company, now)
	})
	if err := execSQL(db, `UPDATE accounts SET lock_state = CASE WHEN login_id ~ '^u[0-9]*0$' THEN 'unlocked_until' ELSE 'active' END,
		lock_reason = NULL, locked_at = NULL,
		unlocked_until = CASE WHEN login_id ~ '^u[0-9]*0$' THEN $2::timestamptz - interval '1 minute' END
		WHERE company_id = $1`, company, now); err != nil {
		b.Fatal(err)
	}
	mustExec(`VACUUM ANALYZE accounts -- $1`)
	// BENCH_WEBHOOK_ENDPOINT=1 subscribes one endpoint of the company to
	// the locks and relocks: the outbox trigger then writes a delivery per
	// event inside the sweep's statements, which the run measures.
	endpoint := envInt("BENCH_WEBHOOK_ENDPOINT", 0) > 0
	if endpoint {
		mustExec(`INSERT INTO webhook_endpoints (company_id, url, event_kinds, secret, created_at, updated_at)
			VALUES ($1, 'https://hooks.example.com/bench', '{locked,relocked}', '0123456789abcdef', now(), now())`)
	}

	run := func(typ string) func() error {
		return func() error {
			task, err := tasks.NewMaintenanceTask(typ, tasks.Maintenance{Period: now, BatchSize: batch})
			if err != nil {
				return err
			}
			switch typ {
			case tasks.TypeMaintenanceSweep:
				return h.SweepDormant(ctx, task)
			default:
				return h.Relock(ctx, task)
			}
		}
	}
	sweep := timed(b, run(tasks.TypeMaintenanceSweep))
	relock := timed(b, run(tasks.TypeMaintenanceRelock))
	if got := testenv.Count(b, db, `SELECT count(*) FROM audit_events WHERE company_id = $1 AND kind = 'locked'`, company); got != dormant {
		b.Fatalf("sweep locked %d, SQL counts %d dormant", got, dormant)
	}
	if got := testenv.Count(b, db, `SELECT count(*) FROM audit_events WHERE company_id = $1 AND kind = 'relocked'`, company); got != lapsed {
		b.Fatalf("relock locked %d of %d", got, lapsed)
	}
	if endpoint {
		if got := testenv.Count(b, db, `SELECT count(*) FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
			WHERE e.company_id = $1`, company); got != dormant+lapsed {
			b.Fatalf("webhook deliveries %d, want one per lock and relock (%d)", got, dormant+lapsed)
		}
		mustExec(`DELETE FROM webhook_endpoints WHERE company_id = $1`)
	}
	b.ReportMetric(sweep.Seconds()/bareSweep.Seconds(), "sweep-ratio")
	b.ReportMetric(relock.Seconds()/bareRelock.Seconds(), "relock-ratio")
	record(row{
		name:     fmt.Sprintf("dormancy sweep, %d of %d accounts (batches of %d, with audit rows)", dormant, n, batch),
		value:    fmt.Sprintf("%.2f s", sweep.Seconds()),
		baseline: fmt.Sprintf("%.2f s one bare UPDATE", bareSweep.Seconds()),
		ratio:    fmt.Sprintf("%.2f", sweep.Seconds()/bareSweep.Seconds()),
		target:   "≤ 1.5",
	})
	record(row{
		name:     fmt.Sprintf("relock of lapsed unlocks, %d of %d accounts", lapsed, n),
		value:    fmt.Sprintf("%.2f s", relock.Seconds()),
		baseline: fmt.Sprintf("%.2f s one bare UPDATE", bareRelock.Seconds()),
		ratio:    fmt.Sprintf("%.2f", relock.Seconds()/bareRelock.Seconds()),
		target:   "≤ 1.5",
	})
	b.Logf("generated %d accounts in %v", n, load)
}
